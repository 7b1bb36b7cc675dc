#include "gateway/http/RequestDispatcher.h"

#include "gateway/core/Problem.h"
#include "gateway/core/Versions.h"
#include "gateway/http/Log.h"
#include "gateway/http/Upstream.h"

namespace idem::http {
namespace {

constexpr std::string_view kAdminPrefix = "/__idemgate/";

std::vector<core::RouteSpec> makeSpecs(const config::Config& c) {
    std::vector<core::RouteSpec> specs;
    for (const auto& r : c.routes) specs.push_back(core::RouteSpec{r.matchMethods, r.path});
    return specs;
}

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

PipelineResult rejected(core::HttpResponse response) { return PipelineResult{std::move(response), Outcome::Rejected, {}}; }

/// A deprecated version announces itself on every answer, also on those the gateway gives before the
/// pipeline runs (413, 503 route-disabled): the headers of the version the request names, if it names a
/// valid one.
void announceDeprecation(core::HttpResponse& response, const config::RouteConfig& route, const core::HttpRequest& in,
                         const core::RouteParams& params) {
    if (route.policy.versions.versions.empty()) return;
    if (auto resolved = core::resolveVersion(route.policy.versions, in, params))
        core::addDeprecationHeaders(response, *resolved->spec);
}

PipelineResult internalError(const char* what) {
    logError(std::string("internal error while handling a request: ") + what);
    return rejected(core::makeProblem(500, core::ProblemType::Internal, "internal gateway error"));
}

}  // namespace

Runtime::Runtime(config::Config c, storage::Store& store, Metrics& metrics)
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

std::shared_ptr<RouteForwarder> Runtime::forwarder(const config::RouteConfig& route, const std::string& upstreamName) const {
    for (const auto& u : upstreams)
        if (u->config().name == upstreamName)
            return std::make_shared<RouteForwarder>(u, config::effectiveTimeouts(u->config().timeouts, route.upstreamTimeouts));
    return nullptr;
}

RequestDispatcher::RequestDispatcher(std::shared_ptr<RuntimeSlot> runtime, storage::Store& store, Metrics& metrics)
    : runtime_(std::move(runtime)), store_(store), metrics_(metrics) {}

RequestDispatcher::Exchange::Exchange(RequestDispatcher& dispatcher)
    : dispatcher_(dispatcher),
      runtime_(dispatcher.runtime_->load()),
      started_(std::chrono::steady_clock::now()) {
    dispatcher_.inFlight_.fetch_add(1, std::memory_order_acq_rel);
}

RequestDispatcher::Exchange::~Exchange() { dispatcher_.inFlight_.fetch_sub(1, std::memory_order_acq_rel); }

std::optional<PipelineResult> RequestDispatcher::admit(Exchange& exchange, const core::HttpRequest& request) {
    if (request.path.starts_with(kAdminPrefix)) {
        exchange.admin_ = true;
        try {
            return PipelineResult{admin(request.path), Outcome::Rejected, {}};
        } catch (const std::exception& e) {
            return internalError(e.what());
        }
    }
    const Runtime& rt = *exchange.runtime_;
    exchange.match_ = rt.router.match(request.method, request.path);
    if (!exchange.match_)
        return rejected(core::makeProblem(404, core::ProblemType::RouteNotFound,
                                          "no route is configured for " + request.method + " " + request.path));
    const auto& route = rt.config.routes[exchange.match_->index];
    exchange.routeId_ = route.id;
    if (!route.enabled && route.disabledAction == config::RouteConfig::DisabledAction::Reject) {
        auto result = rejected(core::routeDisabledProblem(request.method, request.path));
        announceDeprecation(result.response, route, request, exchange.match_->params);
        return result;
    }
    exchange.bodyLimit_ = route.policy.maxBody;
    return std::nullopt;
}

PipelineResult RequestDispatcher::bodyTooLarge(const Exchange& exchange, const core::HttpRequest& request) const {
    auto result = rejected(core::makeProblem(413, core::ProblemType::BodyTooLarge,
                                             "the request body is larger than this route's limit of " +
                                                 std::to_string(exchange.bodyLimit_) + " bytes"));
    if (exchange.match_)
        announceDeprecation(result.response, exchange.runtime_->config.routes[exchange.match_->index], request,
                            exchange.match_->params);
    return result;
}

PipelineResult RequestDispatcher::run(Exchange& exchange, core::HttpRequest& request) {
    try {
        return dispatch(*exchange.runtime_, request, exchange.match_->index, exchange.match_->params);
    } catch (const std::exception& e) {
        return internalError(e.what());
    }
}

PipelineResult RequestDispatcher::dispatch(const Runtime& rt, core::HttpRequest& in, std::size_t routeIndex,
                                           const core::RouteParams& params) {
    // Resolves the API version (if the route has versions), picks the version's upstream and path, runs
    // the pipeline, and adds the version's deprecation headers to whatever is answered.
    const auto& route = rt.config.routes[routeIndex];
    const core::RoutePolicy& policy = route.enabled ? route.policy : rt.passThroughPolicies[routeIndex];
    const auto& versions = policy.versions.versions;
    if (versions.empty()) return rt.pipeline.handle(in, policy, "", in.path, *rt.upstreamOfRoute[routeIndex]);

    auto resolved = core::resolveVersion(policy.versions, in, params);
    if (!resolved) return rejected(std::move(resolved.error()));
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

core::HttpResponse RequestDispatcher::admin(std::string_view path) const {
    core::HttpResponse out;
    if (path == "/__idemgate/health") {
        const auto ping = store_.ping();
        out.status = ping ? 200 : 503;
        out.headers.emplace_back("Content-Type", "application/json");
        out.headers.emplace_back("Cache-Control", "no-store");
        out.body = ping ? std::string(R"({"status":"ok","store":")") + store_.name() + "\"}"
                        : std::string(R"({"status":"degraded","store":")") + store_.name() + R"(","store_ok":false})";
    } else if (path == "/__idemgate/metrics") {
        out.status = 200;
        out.headers.emplace_back("Content-Type", "text/plain; version=0.0.4");
        out.body = metrics_.render(store_.stats());
    } else {
        out = core::makeProblem(404, core::ProblemType::RouteNotFound, "no such gateway endpoint");
    }
    return out;
}

void RequestDispatcher::finish(const Exchange& exchange, const core::HttpRequest& request, int status, Outcome outcome,
                               std::string_view key, std::string_view note) const {
    if (exchange.admin_ || !exchange.runtime_->config.log.accessLog || !logEnabled(LogLevel::Information)) return;
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - exchange.started_).count();
    std::string line;
    line.reserve(160 + request.path.size() + note.size());
    line += "access method=";
    line += request.method;
    line += " path=";
    line += request.path;
    line += " route=";
    line += exchange.routeId_;
    line += " status=";
    line += std::to_string(status);
    line += " outcome=";
    line += outcomeName(outcome);
    line += " key=";
    line += key.empty() ? std::string_view("-") : key;
    line += " us=";
    line += std::to_string(us);
    if (!note.empty()) {
        line += " note=\"";
        line += note;
        line += '"';
    }
    logLine(LogLevel::Information, line);
}

}  // namespace idem::http
