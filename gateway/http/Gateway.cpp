#include "gateway/http/Gateway.h"

#include "gateway/config/ConfigLoader.h"
#include "gateway/core/Problem.h"
#include "gateway/core/Router.h"
#include "gateway/core/Versions.h"
#include "gateway/http/Log.h"
#include "gateway/http/Pipeline.h"
#include "gateway/http/Upstream.h"

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

/// Everything derived from one Config, shared read-only by all requests.
struct Runtime {
    config::Config config;
    core::Router router;
    std::vector<std::shared_ptr<Upstream>> upstreams;               ///< by config.upstreams index
    std::vector<std::shared_ptr<RouteForwarder>> upstreamOfRoute;  ///< by route index: upstream + route timeouts
    std::vector<std::vector<std::shared_ptr<RouteForwarder>>> versionForwarders;  ///< [route][version]
    std::vector<core::RoutePolicy> passThroughPolicies;  ///< [route]: the policy of a switched-off route
    Pipeline pipeline;

    Runtime(config::Config c, storage::Store& store, Metrics& metrics)
        : config(std::move(c)), router(makeSpecs(config)), pipeline(store, metrics) {
        for (const auto& u : config.upstreams) upstreams.push_back(std::make_shared<Upstream>(u));
        for (const auto& route : config.routes) {
            upstreamOfRoute.push_back(forwarder(route, route.upstream));
            auto& perVersion = versionForwarders.emplace_back();
            for (const auto& v : route.policy.versions.versions)
                perVersion.push_back(forwarder(route, v.upstream.empty() ? route.upstream : v.upstream));
            core::RoutePolicy off = route.policy;
            off.mode = core::IdempotencyMode::Off;  // enabled: false, disabled: pass_through
            passThroughPolicies.push_back(std::move(off));
        }
    }

    /// The forwarder for `route` to the upstream named `upstreamName` (the route's, or a version's).
    std::shared_ptr<RouteForwarder> forwarder(const config::RouteConfig& route, const std::string& upstreamName) const {
        for (const auto& u : upstreams)
            if (u->config().name == upstreamName)
                return std::make_shared<RouteForwarder>(
                    u, config::effectiveTimeouts(u->config().timeouts, route.upstreamTimeouts));
        return nullptr;
    }

    static std::vector<core::RouteSpec> makeSpecs(const config::Config& c) {
        std::vector<core::RouteSpec> specs;
        for (const auto& r : c.routes) specs.push_back(core::RouteSpec{r.matchMethods, r.path});
        return specs;
    }
};

namespace {

using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr std::string_view kAdminPrefix = "/__idemgate/";

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

/// Reads the request body up to `limit` bytes. Returns false (and fills `problem`) when the body is
/// over the limit; returns false with an empty problem when the client went away mid-body.
bool readBody(HTTPServerRequest& request, HTTPServerResponse& response, std::size_t limit, std::string& body,
              std::optional<core::HttpResponse>& problem) {
    const auto tooLarge = [&] {
        problem = core::makeProblem(413, core::ProblemType::BodyTooLarge,
                                    "the request body is larger than this route's limit of " + std::to_string(limit) + " bytes");
    };
    if (request.hasContentLength()) {
        const auto length = request.getContentLength64();
        if (length < 0 || static_cast<std::uint64_t>(length) > limit) {
            tooLarge();
            return false;
        }
        body.reserve(static_cast<std::size_t>(length));
    }
    // HTTP/1.1: a request with neither Content-Length nor chunked framing has no body (RFC 9112
    // §6.3). Poco would read it until the connection closes, so never touch the stream then.
    if (!request.hasContentLength() && !request.getChunkedTransferEncoding()) return true;
    if (request.getExpectContinue()) response.sendContinue();
    std::istream& in = request.stream();
    char buffer[16384];
    while (in) {
        in.read(buffer, sizeof buffer);
        const auto n = static_cast<std::size_t>(in.gcount());
        if (n == 0) break;
        if (body.size() + n > limit) {
            tooLarge();
            return false;
        }
        body.append(buffer, n);
    }
    if (request.hasContentLength() && static_cast<std::int64_t>(body.size()) != request.getContentLength64()) {
        return false;  // the client closed before sending the whole body: nothing was begun
    }
    return true;
}

class AdminHandler final : public Poco::Net::HTTPRequestHandler {
public:
    AdminHandler(storage::Store& store, Metrics& metrics) : store_(store), metrics_(metrics) {}

    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
        const auto& uri = request.getURI();
        core::HttpResponse out;
        if (uri == "/__idemgate/health") {
            auto ping = store_.ping();
            out.status = ping ? 200 : 503;
            out.headers.emplace_back("Content-Type", "application/json");
            out.headers.emplace_back("Cache-Control", "no-store");
            out.body = ping ? std::string(R"({"status":"ok","store":")") + store_.name() + "\"}"
                            : std::string(R"({"status":"degraded","store":")") + store_.name() + R"(","store_ok":false})";
        } else if (uri == "/__idemgate/metrics") {
            out.status = 200;
            out.headers.emplace_back("Content-Type", "text/plain; version=0.0.4");
            out.body = metrics_.render(store_.stats());
        } else {
            out = core::makeProblem(404, core::ProblemType::RouteNotFound, "no such gateway endpoint");
        }
        try {
            writeResponse(response, out);
        } catch (const Poco::Exception&) {
        }
    }

private:
    storage::Store& store_;
    Metrics& metrics_;
};

using RuntimeSlot = std::atomic<std::shared_ptr<Runtime>>;

/// Sends the request upstream under another path (a version's `rewrite`); everything else unchanged.
class RewritingForwarder final : public Forwarder {
public:
    RewritingForwarder(Forwarder& inner, std::string path) : inner_(inner), path_(std::move(path)) {}
    core::UpstreamResult forward(const core::HttpRequest& request) override {
        core::HttpRequest rewritten = request;
        rewritten.path = path_;
        return inner_.forward(rewritten);
    }

private:
    Forwarder& inner_;
    std::string path_;
};

class RouteHandler final : public Poco::Net::HTTPRequestHandler {
public:
    /// `runtime` is the configuration snapshot this request runs under from start to end.
    RouteHandler(std::shared_ptr<Runtime> runtime, std::shared_ptr<std::atomic<int>> inFlight)
        : runtime_(std::move(runtime)), inFlight_(std::move(inFlight)) {}

    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
        inFlight_->fetch_add(1, std::memory_order_relaxed);
        const auto started = std::chrono::steady_clock::now();
        core::HttpRequest in;
        in.method = request.getMethod();
        const auto& uri = request.getURI();
        const auto q = uri.find('?');
        in.path = uri.substr(0, q);
        if (q != std::string::npos) in.query = uri.substr(q + 1);

        PipelineResult result;
        std::string routeId = "-";
        try {
            auto match = runtime_->router.match(in.method, in.path);
            if (!match) {
                result.response = core::makeProblem(404, core::ProblemType::RouteNotFound,
                                                    "no route is configured for " + in.method + " " + in.path);
                result.outcome = Outcome::Rejected;
                response.setKeepAlive(false);  // the body (if any) is not read
            } else {
                const auto& route = runtime_->config.routes[match->index];
                routeId = route.id;
                std::optional<core::HttpResponse> problem;
                if (!route.enabled && route.disabledAction == config::RouteConfig::DisabledAction::Reject) {
                    result.response = core::routeDisabledProblem(in.method, in.path);
                    result.outcome = Outcome::Rejected;
                    response.setKeepAlive(false);  // the body (if any) is not read
                } else if (!readBody(request, response, route.policy.maxBody, in.body, problem)) {
                    if (!problem) {
                        finish(started, in, routeId, 0, Outcome::Rejected, "", "client closed mid-body");
                        return;
                    }
                    result.response = std::move(*problem);
                    result.outcome = Outcome::Rejected;
                    response.setKeepAlive(false);  // the rest of the body is not read
                } else {
                    for (const auto& [name, value] : request) in.headers.emplace_back(name, value);
                    result = dispatch(in, match->index, match->params);
                }
            }
        } catch (const std::exception& e) {
            logError(std::string("internal error while handling a request: ") + e.what());
            result.response = core::makeProblem(500, core::ProblemType::Internal, "internal gateway error");
            result.outcome = Outcome::Rejected;
        }
        const int status = result.response.status;
        std::string note;
        try {
            writeResponse(response, result.response);
        } catch (const Poco::Exception& e) {
            note = "client gone before the response was written";
        } catch (const std::exception& e) {
            note = "client gone before the response was written";
        }
        finish(started, in, routeId, status, result.outcome, result.keyForLog, note);
    }

private:
    /// Resolves the API version (if the route has versions), picks the version's upstream and path,
    /// runs the pipeline, and adds the version's deprecation headers to whatever is answered.
    PipelineResult dispatch(core::HttpRequest& in, std::size_t routeIndex, const core::RouteParams& params) {
        const auto& rt = *runtime_;
        const auto& route = rt.config.routes[routeIndex];
        const core::RoutePolicy& policy = route.enabled ? route.policy : rt.passThroughPolicies[routeIndex];
        const auto& versions = policy.versions.versions;
        if (versions.empty())
            return rt.pipeline.handle(in, policy, "", in.path, *rt.upstreamOfRoute[routeIndex]);

        auto resolved = core::resolveVersion(policy.versions, in, params);
        if (!resolved) return PipelineResult{std::move(resolved.error()), Outcome::Rejected, {}};
        const core::VersionSpec& spec = *resolved->spec;
        Forwarder* forwarder = rt.versionForwarders[routeIndex][static_cast<std::size_t>(&spec - versions.data())].get();
        PipelineResult result;
        if (spec.rewrite.empty()) {
            result = rt.pipeline.handle(in, policy, spec.name, resolved->scopePath, *forwarder);
        } else {
            RewritingForwarder rewriting(*forwarder, core::rewritePath(spec.rewrite, params));
            result = rt.pipeline.handle(in, policy, spec.name, resolved->scopePath, rewriting);
        }
        core::addDeprecationHeaders(result.response, spec);
        return result;
    }

    void finish(std::chrono::steady_clock::time_point started, const core::HttpRequest& in, const std::string& routeId,
                int status, Outcome outcome, const std::string& key, const std::string& note) {
        inFlight_->fetch_sub(1, std::memory_order_relaxed);
        if (!runtime_->config.log.accessLog || !logEnabled(LogLevel::Information)) return;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
        std::string line = "access method=" + in.method + " path=" + in.path + " route=" + routeId +
                           " status=" + std::to_string(status) + " outcome=" + std::string(outcomeName(outcome)) +
                           " key=" + (key.empty() ? "-" : key) + " us=" + std::to_string(us);
        if (!note.empty()) line += " note=\"" + note + "\"";
        logLine(LogLevel::Information, line);
    }

    std::shared_ptr<Runtime> runtime_;
    std::shared_ptr<std::atomic<int>> inFlight_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    HandlerFactory(std::shared_ptr<RuntimeSlot> runtime, std::shared_ptr<std::atomic<int>> inFlight, storage::Store& store,
                   Metrics& metrics)
        : runtime_(std::move(runtime)), inFlight_(std::move(inFlight)), store_(store), metrics_(metrics) {}

    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest& request) override {
        if (request.getURI().starts_with(kAdminPrefix)) return new AdminHandler(store_, metrics_);
        return new RouteHandler(runtime_->load(std::memory_order_acquire), inFlight_);
    }

private:
    std::shared_ptr<RuntimeSlot> runtime_;
    std::shared_ptr<std::atomic<int>> inFlight_;
    storage::Store& store_;
    Metrics& metrics_;
};

/// Store settings as text, to tell whether a reload changes them (passwords compared separately,
/// since the description masks them).
std::string describeStore(const storage::StoreConfig& store) {
    config::Config probe;
    probe.store = store;
    return config::describeConfig(probe) + store.redis.password + "\n" + store.postgres.password;
}

Poco::Timespan span(std::chrono::milliseconds ms) { return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000); }

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
    : store_(std::move(store)),
      metrics_(std::make_unique<Metrics>()),
      inFlight_(std::make_shared<std::atomic<int>>(0)) {
    runtime_ = std::make_shared<RuntimeSlot>(std::make_shared<Runtime>(std::move(config), *store_, *metrics_));
}

std::vector<std::string> Gateway::reload(config::Config config) {
    const auto current = runtime_->load(std::memory_order_acquire);
    std::vector<std::string> notApplied;
    const auto& oldServer = current->config.server;
    auto& newServer = config.server;
    if (newServer.host != oldServer.host || newServer.port != oldServer.port) notApplied.push_back("server.listen");
    if (newServer.maxThreads != oldServer.maxThreads || newServer.maxQueued != oldServer.maxQueued ||
        newServer.keepAliveTimeout != oldServer.keepAliveTimeout ||
        newServer.maxKeepAliveRequests != oldServer.maxKeepAliveRequests ||
        newServer.receiveTimeout != oldServer.receiveTimeout || newServer.sendTimeout != oldServer.sendTimeout)
        notApplied.push_back("server (threads, queue, timeouts)");
    newServer = oldServer;
    if (config.store.type != current->config.store.type || describeStore(config.store) != describeStore(current->config.store))
        notApplied.push_back("store");
    config.store = current->config.store;
    auto next = std::make_shared<Runtime>(std::move(config), *store_, *metrics_);
    setLogLevel(toLogLevel(next->config.log.level));
    runtime_->store(std::move(next), std::memory_order_release);
    return notApplied;
}

Gateway::~Gateway() {
    if (server_) stop(std::chrono::milliseconds(0));
}

void Gateway::start() {
    const auto& s = runtime_->load()->config.server;
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
    server_ = std::make_unique<Poco::Net::HTTPServer>(new HandlerFactory(runtime_, inFlight_, *store_, *metrics_), *pool_,
                                                      socket, params);
    server_->start();
}

std::uint16_t Gateway::port() const { return server_ ? server_->port() : 0; }

void Gateway::stop(std::chrono::milliseconds drain) {
    if (!server_) return;
    server_->stop();  // stop accepting; connections finish their current request
    const auto until = std::chrono::steady_clock::now() + drain;
    while (inFlight_->load() > 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    server_->stopAll(true);
    pool_->joinAll();
    server_.reset();
}

}  // namespace idem::http
