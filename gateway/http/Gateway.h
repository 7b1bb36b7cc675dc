#pragma once
// Gateway: the Poco HTTP edge. Owns the HTTPServer, the store, the upstream clients and the router
// built from one Config, and turns each Poco request into a core::HttpRequest for the Pipeline.
//
// Endpoints besides the configured routes (never matched by a route):
//   GET /__idemgate/health   200 {"status":"ok"} or 503 when the store does not answer
//   GET /__idemgate/metrics  Prometheus text counters
//
// Lifecycle: construct, start(), later stop(); stop() stops accepting, lets requests in flight
// finish (their upstream calls and store writes complete) for up to `drain`, then closes.
// Thread-safety: start/stop from one thread; requests are served on Poco's pool threads.

#include "gateway/config/Config.h"
#include "gateway/http/Metrics.h"
#include "storage/Store.h"

#include <atomic>
#include <chrono>
#include <memory>

namespace Poco {
class ThreadPool;
}
namespace Poco::Net {
class HTTPServer;
}

namespace idem::http {

struct Runtime;

class Gateway {
public:
    Gateway(config::Config config, std::unique_ptr<storage::Store> store);
    ~Gateway();

    void start();
    void stop(std::chrono::milliseconds drain);

    std::uint16_t port() const;
    Metrics& metrics() { return *metrics_; }

private:
    std::unique_ptr<storage::Store> store_;
    std::unique_ptr<Metrics> metrics_;
    std::shared_ptr<Runtime> runtime_;
    std::shared_ptr<std::atomic<int>> inFlight_;
    std::unique_ptr<Poco::ThreadPool> pool_;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace idem::http
