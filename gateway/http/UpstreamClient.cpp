#include "gateway/http/UpstreamClient.h"

#include "gateway/core/ResponseHeaders.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timespan.h>

#include <istream>
#include <ostream>

namespace idem::http {

using Poco::Net::HTTPClientSession;

namespace {

// Idle keep-alive connections are dropped before common upstream idle timeouts (nginx: 60-75 s,
// Node: 5 s) can close them under us.
constexpr std::chrono::seconds kIdleLimit{4};

Poco::Timespan toTimespan(core::Millis ms) { return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000); }

core::UpstreamResult failure(core::UpstreamResult::Kind kind, std::string detail) {
    core::UpstreamResult r;
    r.kind = kind;
    r.detail = std::move(detail);
    return r;
}

bool bodyless(int status, const std::string& method) {
    return method == "HEAD" || status == 204 || status == 304 || (status >= 100 && status < 200);
}

}  // namespace

UpstreamClient::UpstreamClient(const config::UpstreamConfig& config)
    : config_(config), address_(config.host, config.port) {
    hostHeader_ = config.host;
    if (config.port != 80) hostHeader_ += ":" + std::to_string(config.port);
}

UpstreamClient::~UpstreamClient() = default;

std::unique_ptr<HTTPClientSession> UpstreamClient::acquire() {
    const auto now = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    while (!idle_.empty()) {
        Idle entry = std::move(idle_.back());
        idle_.pop_back();
        if (now - entry.since > kIdleLimit) continue;
        lock.unlock();
        // A live idle connection has nothing to read; readable means the peer closed it (or sent
        // something unsolicited): either way it must not carry a request.
        bool stale = true;
        try {
            stale = entry.session->socket().poll(Poco::Timespan(0), Poco::Net::Socket::SELECT_READ | Poco::Net::Socket::SELECT_ERROR);
        } catch (const Poco::Exception&) {
            stale = true;
        }
        if (!stale) return std::move(entry.session);
        lock.lock();
    }
    return nullptr;
}

void UpstreamClient::giveBack(std::unique_ptr<HTTPClientSession> session) {
    std::lock_guard lock(mutex_);
    if (idle_.size() >= config_.poolSize) return;
    idle_.push_back(Idle{std::move(session), std::chrono::steady_clock::now()});
}

core::UpstreamResult UpstreamClient::forward(const core::HttpRequest& request) {
    auto session = acquire();
    if (!session) {
        // Connect ourselves so that a failure here is known to have sent nothing.
        try {
            Poco::Net::StreamSocket socket;
            socket.connect(address_, toTimespan(config_.connectTimeout));
            socket.setNoDelay(true);
            session = std::make_unique<HTTPClientSession>(socket);
        } catch (const Poco::TimeoutException&) {
            return failure(core::UpstreamResult::Kind::NotSent, "connect to upstream '" + config_.name + "' timed out");
        } catch (const Poco::Exception& e) {
            return failure(core::UpstreamResult::Kind::NotSent,
                           "cannot connect to upstream '" + config_.name + "': " + e.displayText());
        }
        // Poco reconnects on its own after this many seconds of idleness; we drop idle sessions
        // ourselves well before, so make sure it never silently opens a connection of its own.
        session->setKeepAliveTimeout(Poco::Timespan(3600, 0));
    }
    session->setKeepAlive(true);
    session->setTimeout(toTimespan(config_.connectTimeout), toTimespan(config_.timeout), toTimespan(config_.timeout));

    Poco::Net::HTTPRequest out(request.method, config_.basePath + request.path + (request.query.empty() ? "" : "?" + request.query),
                               Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : request.headers) out.add(name, value);
    out.set("Host", hostHeader_);
    out.setKeepAlive(true);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH")
        out.setContentLength(static_cast<std::streamsize>(request.body.size()));

    core::UpstreamResult result;
    Poco::Net::HTTPResponse in;
    try {
        std::ostream& os = session->sendRequest(out);
        if (!request.body.empty()) os.write(request.body.data(), static_cast<std::streamsize>(request.body.size()));
        os.flush();
        if (!os.good()) return failure(core::UpstreamResult::Kind::Reset, "connection to upstream broke while sending");
        std::istream& is = session->receiveResponse(in);
        result.response.status = static_cast<int>(in.getStatus());
        result.response.reason = in.getReason();
        for (const auto& [name, value] : in) result.response.headers.emplace_back(name, value);
        if (!bodyless(result.response.status, request.method)) {
            std::string body;
            if (in.hasContentLength()) body.reserve(static_cast<std::size_t>(std::max<std::streamsize>(0, std::min<std::streamsize>(in.getContentLength(), 64 << 20))));
            Poco::StreamCopier::copyToString(is, body);
            if (is.bad())
                return failure(core::UpstreamResult::Kind::Reset, "upstream response body broke off");
            if (in.hasContentLength() && static_cast<std::streamsize>(body.size()) != in.getContentLength())
                return failure(core::UpstreamResult::Kind::Reset,
                               "upstream closed the connection after " + std::to_string(body.size()) + " of " +
                                   std::to_string(in.getContentLength()) + " body bytes");
            result.response.body = std::move(body);
        }
    } catch (const Poco::TimeoutException&) {
        return failure(core::UpstreamResult::Kind::TimedOut,
                       "upstream '" + config_.name + "' did not answer within " + std::to_string(config_.timeout.count()) + " ms");
    } catch (const Poco::Exception& e) {
        return failure(core::UpstreamResult::Kind::Reset, "upstream '" + config_.name + "' connection failed: " + e.displayText());
    }
    result.kind = core::UpstreamResult::Kind::Response;
    if (in.getKeepAlive() && session->connected()) giveBack(std::move(session));
    return result;
}

}  // namespace idem::http
