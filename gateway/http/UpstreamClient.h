#pragma once
// UpstreamClient: forwards requests to one upstream over a bounded pool of keep-alive HTTP/1.1
// connections (Poco 1.11 has no client pool of its own), and classifies every failure the way
// SEMANTICS.md §5 needs it:
//   - connect refused / connect timeout / DNS failure: NotSent (nothing left this process);
//   - any failure after the first byte of the request was written: TimedOut or Reset (outcome unknown).
// A request is never retried here once anything was sent.
//
// A pooled connection is checked before reuse (a peer that closed an idle connection makes it
// readable): a stale connection is dropped instead of being written to, so a request is not lost
// to the keep-alive race. Idle connections older than kIdleLimit are dropped for the same reason.
//
// Thread-safety: forward() may be called from many threads at once.

#include "gateway/config/Config.h"
#include "gateway/http/Pipeline.h"

#include <Poco/Net/SocketAddress.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace Poco::Net {
class HTTPClientSession;
}

namespace idem::http {

class UpstreamClient final : public Forwarder {
public:
    /// Resolves the upstream's address (throws Poco::Exception at startup if it cannot).
    explicit UpstreamClient(const config::UpstreamConfig& config);
    ~UpstreamClient() override;

    core::UpstreamResult forward(const core::HttpRequest& request) override;

    const config::UpstreamConfig& config() const { return config_; }

private:
    struct Idle {
        std::unique_ptr<Poco::Net::HTTPClientSession> session;
        std::chrono::steady_clock::time_point since;
    };

    std::unique_ptr<Poco::Net::HTTPClientSession> acquire();
    void giveBack(std::unique_ptr<Poco::Net::HTTPClientSession> session);

    config::UpstreamConfig config_;
    Poco::Net::SocketAddress address_;
    std::string hostHeader_;
    std::mutex mutex_;
    std::vector<Idle> idle_;
};

}  // namespace idem::http
