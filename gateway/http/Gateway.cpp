#include "gateway/http/Gateway.h"

#include "gateway/config/ConfigLoader.h"
#include "gateway/core/Problem.h"
#include "gateway/http/Log.h"
#include "gateway/http/NativeServer.h"
#include "gateway/http/RequestDispatcher.h"
#include "gateway/http/ServerEngine.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timestamp.h>

#include <thread>

namespace idem::http {
namespace {

// ---------------------------------------------------------------------------------------------------
// The Poco engine (`server.engine: poco`): Poco's HTTPServer parses and frames, the RequestDispatcher
// decides. Kept as the fallback of the native engine.

using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

void writeResponse(HTTPServerResponse& out, const core::HttpResponse& response) {
    out.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status));
    out.setReason(response.reason.empty()
                      ? Poco::Net::HTTPResponse::getReasonForStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status))
                      : response.reason);
    for (const auto& [name, value] : response.headers) {
        if (core::iequals(name, "Content-Length") || core::iequals(name, "Transfer-Encoding") ||
            core::iequals(name, "Connection") || core::iequals(name, "Keep-Alive") || core::iequals(name, "Date"))
            continue;
        out.add(name, value);
    }
    out.set("Date", Poco::DateTimeFormatter::format(Poco::Timestamp(), Poco::DateTimeFormat::HTTP_FORMAT));
    if (response.body) {
        out.sendBuffer(response.body->data(), response.body->size());
    } else {
        // 204/304: no body, and no positive Content-Length.
        out.setContentLength(0);
        out.send();
    }
}

bool hasBody(const HTTPServerRequest& request) {
    return request.getChunkedTransferEncoding() || (request.hasContentLength() && request.getContentLength64() != 0);
}

enum class BodyRead { Complete, TooLarge, ClientGone };

/// Reads the request body up to `limit` bytes.
BodyRead readBody(HTTPServerRequest& request, HTTPServerResponse& response, std::size_t limit, std::string& body) {
    if (request.hasContentLength()) {
        const auto length = request.getContentLength64();
        if (length < 0 || static_cast<std::uint64_t>(length) > limit) return BodyRead::TooLarge;
        body.reserve(static_cast<std::size_t>(length));
    }
    // HTTP/1.1: a request with neither Content-Length nor chunked framing has no body (RFC 9112
    // §6.3). Poco would read it until the connection closes, so never touch the stream then.
    if (!request.hasContentLength() && !request.getChunkedTransferEncoding()) return BodyRead::Complete;
    if (request.getExpectContinue()) response.sendContinue();
    std::istream& in = request.stream();
    char buffer[16384];
    while (in) {
        in.read(buffer, sizeof buffer);
        const auto n = static_cast<std::size_t>(in.gcount());
        if (n == 0) break;
        if (body.size() + n > limit) return BodyRead::TooLarge;
        body.append(buffer, n);
    }
    if (request.hasContentLength() && static_cast<std::int64_t>(body.size()) != request.getContentLength64())
        return BodyRead::ClientGone;  // the client closed before sending the whole body: nothing was begun
    return BodyRead::Complete;
}

class RouteHandler final : public Poco::Net::HTTPRequestHandler {
public:
    explicit RouteHandler(RequestDispatcher& dispatcher) : dispatcher_(dispatcher) {}

    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
        core::HttpRequest in;
        in.method = request.getMethod();
        const auto& uri = request.getURI();
        const auto q = uri.find('?');
        in.path = uri.substr(0, q);
        if (q != std::string::npos) in.query = uri.substr(q + 1);
        for (const auto& [name, value] : request) in.headers.emplace_back(name, value);

        RequestDispatcher::Exchange exchange(dispatcher_);  // the configuration snapshot of this request
        PipelineResult result;
        try {
            if (auto answer = dispatcher_.admit(exchange, in)) {
                result = std::move(*answer);
                if (hasBody(request)) response.setKeepAlive(false);  // the body is not read
            } else {
                switch (readBody(request, response, exchange.bodyLimit(), in.body)) {
                    case BodyRead::Complete:
                        result = dispatcher_.run(exchange, in);
                        break;
                    case BodyRead::TooLarge:
                        result = dispatcher_.bodyTooLarge(exchange, in);
                        response.setKeepAlive(false);  // the rest of the body is not read
                        break;
                    case BodyRead::ClientGone:
                        dispatcher_.finish(exchange, in, 0, Outcome::Rejected, "", "client closed mid-body");
                        return;
                }
            }
        } catch (const std::exception& e) {  // reading the body: Poco's timeouts and resets
            logError(std::string("internal error while handling a request: ") + e.what());
            result.response = core::makeProblem(500, core::ProblemType::Internal, "internal gateway error");
            result.outcome = Outcome::Rejected;
        }
        std::string_view note;
        try {
            writeResponse(response, result.response);
        } catch (const std::exception&) {
            note = "client gone before the response was written";
        }
        dispatcher_.finish(exchange, in, result.response.status, result.outcome, result.keyForLog, note);
    }

private:
    RequestDispatcher& dispatcher_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit HandlerFactory(RequestDispatcher& dispatcher) : dispatcher_(dispatcher) {}

    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
        return new RouteHandler(dispatcher_);
    }

private:
    RequestDispatcher& dispatcher_;
};

Poco::Timespan span(std::chrono::milliseconds ms) { return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000); }

class PocoEngine final : public ServerEngine {
public:
    PocoEngine(const config::ServerConfig& config, RequestDispatcher& dispatcher) : config_(config), dispatcher_(dispatcher) {}

    ~PocoEngine() override {
        if (server_) stop(std::chrono::milliseconds(0));
    }

    void start() override {
        const auto& s = config_;
        auto* params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(s.maxThreads);
        params->setMaxQueued(s.maxQueued);
        params->setKeepAlive(true);
        params->setKeepAliveTimeout(span(s.keepAliveTimeout));
        params->setMaxKeepAliveRequests(s.maxKeepAliveRequests);
        params->setTimeout(span(s.receiveTimeout));
        params->setServerName("idemgate");
        params->setSoftwareVersion("idemgate/0.1");

        // Poco gives each keep-alive connection a pool thread for as long as it is open, and a pool
        // passed in caps the server at its capacity: size it to max_threads.
        pool_ = std::make_unique<Poco::ThreadPool>(2, s.maxThreads, 60, 256 * 1024);
        Poco::Net::ServerSocket socket;
        socket.bind(Poco::Net::SocketAddress(s.host, s.port), true, false);
        socket.listen(std::max(64, s.maxQueued));
        server_ = std::make_unique<Poco::Net::HTTPServer>(new HandlerFactory(dispatcher_), *pool_, socket, params);
        server_->start();
    }

    std::uint16_t port() const override { return server_ ? server_->port() : 0; }

    void stop(std::chrono::milliseconds drain) override {
        if (!server_) return;
        server_->stop();  // stop accepting; connections finish their current request
        const auto until = std::chrono::steady_clock::now() + drain;
        while (dispatcher_.inFlight() > 0 && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        server_->stopAll(true);
        pool_->joinAll();
        server_.reset();
    }

private:
    config::ServerConfig config_;
    RequestDispatcher& dispatcher_;
    std::unique_ptr<Poco::ThreadPool> pool_;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
};

/// Store settings as text, to tell whether a reload changes them (passwords compared separately,
/// since the description masks them).
std::string describeStore(const storage::StoreConfig& store) {
    config::Config probe;
    probe.store = store;
    return config::describeConfig(probe) + store.redis.password + "\n" + store.postgres.password;
}

}  // namespace

LogLevel toLogLevel(config::LogConfig::Level level) {
    switch (level) {
        case config::LogConfig::Level::Error: return LogLevel::Error;
        case config::LogConfig::Level::Warning: return LogLevel::Warning;
        case config::LogConfig::Level::Information: return LogLevel::Information;
        case config::LogConfig::Level::Debug: return LogLevel::Debug;
    }
    return LogLevel::Information;
}

Gateway::Gateway(config::Config config, std::unique_ptr<storage::Store> store)
    : store_(std::move(store)), metrics_(std::make_unique<Metrics>()) {
    runtime_ = std::make_shared<RuntimeSlot>(std::make_shared<Runtime>(std::move(config), *store_, *metrics_));
    dispatcher_ = std::make_unique<RequestDispatcher>(runtime_, *store_, *metrics_);
}

std::vector<std::string> Gateway::reload(config::Config config) {
    const auto current = runtime_->load();
    std::vector<std::string> notApplied;
    const auto& oldServer = current->config.server;
    auto& newServer = config.server;
    if (newServer.host != oldServer.host || newServer.port != oldServer.port) notApplied.push_back("server.listen");
    if (newServer.engine != oldServer.engine || newServer.maxConnections != oldServer.maxConnections ||
        newServer.ioThreads != oldServer.ioThreads ||
        newServer.maxThreads != oldServer.maxThreads || newServer.maxQueued != oldServer.maxQueued ||
        newServer.keepAliveTimeout != oldServer.keepAliveTimeout ||
        newServer.maxKeepAliveRequests != oldServer.maxKeepAliveRequests ||
        newServer.receiveTimeout != oldServer.receiveTimeout || newServer.sendTimeout != oldServer.sendTimeout)
        notApplied.push_back("server (engine, connections, threads, queue, timeouts)");
    newServer = oldServer;
    if (config.store.type != current->config.store.type || describeStore(config.store) != describeStore(current->config.store))
        notApplied.push_back("store");
    config.store = current->config.store;
    auto next = std::make_shared<Runtime>(std::move(config), *store_, *metrics_);
    setLogLevel(toLogLevel(next->config.log.level));
    runtime_->store(std::move(next));
    return notApplied;
}

Gateway::~Gateway() {
    if (engine_) stop(std::chrono::milliseconds(0));
}

void Gateway::start() {
    const auto& server = runtime_->load()->config.server;
    if (server.engine == config::ServerConfig::Engine::Poco) engine_ = std::make_unique<PocoEngine>(server, *dispatcher_);
    else engine_ = std::make_unique<NativeServer>(server, *dispatcher_);
    try {
        engine_->start();
    } catch (...) {
        engine_.reset();
        throw;
    }
}

std::uint16_t Gateway::port() const { return engine_ ? engine_->port() : 0; }

void Gateway::stop(std::chrono::milliseconds drain) {
    if (!engine_) return;
    engine_->stop(drain);
    engine_.reset();
}

}  // namespace idem::http
