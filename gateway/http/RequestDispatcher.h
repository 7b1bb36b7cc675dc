#pragma once
// RequestDispatcher: what happens to one request between the HTTP edge and the Pipeline, shared by
// both server engines (NativeServer, and the Poco adapter in Gateway.cpp). No Poco here: an engine
// parses the head into a core::HttpRequest, asks admit() whether to read the body, reads it, calls
// run(), writes the answer, and calls finish() for the access log.
//
//  - admin endpoints (path under /__idemgate/): health and metrics, answered at once (admit());
//  - route match: no route is 404 route-not-found; a disabled route with `disabled: reject` is 503
//    route-disabled; both answered before the body is read (so admit() needs the headers);
//  - body limit: the matched route's max_body (Exchange::bodyLimit); an engine answers bodyTooLarge()
//    when the body is longer, without reading the rest;
//  - a deprecated API version announces itself (Deprecation, Sunset, Link) on every answer of its
//    route: the pipeline's, and also 503 route-disabled and 413 when the request names a valid version;
//  - run(): versions (resolve, per-version upstream, rewrite), the pipeline, deprecation headers; an
//    exception becomes a 500 internal problem;
//  - finish(): the access log line (when log.access_log is on).
//
// Each request runs under the Runtime snapshot taken when its Exchange is made: a reload swaps the
// slot, requests already begun keep theirs to the end. An Exchange counts as in flight from its
// construction to its destruction (inFlight()).
// Thread-safety: one dispatcher serves all requests concurrently; an Exchange belongs to one thread.

#include "gateway/config/Config.h"
#include "gateway/core/Http.h"
#include "gateway/core/Router.h"
#include "gateway/http/Metrics.h"
#include "gateway/http/Pipeline.h"
#include "storage/Store.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace idem::http {

class Upstream;
class RouteForwarder;

/// Everything derived from one Config, shared read-only by all requests.
struct Runtime {
    config::Config config;
    core::Router router;
    std::vector<std::shared_ptr<Upstream>> upstreams;               ///< by config.upstreams index
    std::vector<std::shared_ptr<RouteForwarder>> upstreamOfRoute;  ///< by route index: upstream + route timeouts
    std::vector<std::vector<std::shared_ptr<RouteForwarder>>> versionForwarders;  ///< [route][version]
    std::vector<core::RoutePolicy> passThroughPolicies;  ///< [route]: the policy of a switched-off route
    Pipeline pipeline;

    Runtime(config::Config c, storage::Store& store, Metrics& metrics);

    /// The forwarder for `route` to the upstream named `upstreamName` (the route's, or a version's).
    std::shared_ptr<RouteForwarder> forwarder(const config::RouteConfig& route, const std::string& upstreamName) const;
};

/// The current Runtime: requests take it (load), a reload replaces it (store). A mutex rather than
/// std::atomic<std::shared_ptr>: libstdc++ 12 releases that one's internal lock with a relaxed order
/// after a load, a data race with the next store (ThreadSanitizer reports it). The lock is held for a
/// reference count increment only; the replaced Runtime is released outside it.
class RuntimeSlot {
public:
    explicit RuntimeSlot(std::shared_ptr<Runtime> runtime) : current_(std::move(runtime)) {}

    std::shared_ptr<Runtime> load() const {
        std::lock_guard lock(mutex_);
        return current_;
    }

    void store(std::shared_ptr<Runtime> next) {
        {
            std::lock_guard lock(mutex_);
            current_.swap(next);
        }
        // `next` now holds the previous Runtime: freed here (or by its last request), not under the lock.
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<Runtime> current_;
};

class RequestDispatcher {
public:
    RequestDispatcher(std::shared_ptr<RuntimeSlot> runtime, storage::Store& store, Metrics& metrics);

    /// One request, from its parsed head to its access-log line.
    class Exchange {
    public:
        explicit Exchange(RequestDispatcher& dispatcher);
        ~Exchange();
        Exchange(const Exchange&) = delete;
        Exchange& operator=(const Exchange&) = delete;

        /// The matched route's body limit (valid after admit() returned nullopt).
        std::size_t bodyLimit() const { return bodyLimit_; }
        const Runtime& runtime() const { return *runtime_; }

    private:
        friend class RequestDispatcher;
        RequestDispatcher& dispatcher_;
        std::shared_ptr<Runtime> runtime_;  ///< the snapshot this request runs under
        std::chrono::steady_clock::time_point started_;
        std::optional<core::RouteMatch> match_;
        std::string_view routeId_ = "-";    ///< points into runtime_->config
        std::size_t bodyLimit_ = 0;
        bool admin_ = false;                ///< an admin endpoint: not in the access log
    };

    /// After the head (method, path, query, headers): nullopt means "read the body, at most
    /// exchange.bodyLimit() bytes, then call run()"; a result is the answer, given without reading the
    /// body (admin endpoint, no route, disabled route).
    std::optional<PipelineResult> admit(Exchange& exchange, const core::HttpRequest& request);

    /// The 413 answer for a body over exchange.bodyLimit() (with the deprecation headers of the version
    /// the request names).
    PipelineResult bodyTooLarge(const Exchange& exchange, const core::HttpRequest& request) const;

    /// With the whole body in `request`: versions, pipeline, deprecation headers. Never throws.
    PipelineResult run(Exchange& exchange, core::HttpRequest& request);

    /// The access log line (none for admin endpoints). `status` 0: nothing was answered; `note` a short
    /// reason, or empty.
    void finish(const Exchange& exchange, const core::HttpRequest& request, int status, Outcome outcome,
                std::string_view key, std::string_view note) const;

    /// Requests between Exchange construction and destruction.
    int inFlight() const { return inFlight_.load(std::memory_order_acquire); }

private:
    PipelineResult dispatch(const Runtime& rt, core::HttpRequest& in, std::size_t routeIndex,
                            const core::RouteParams& params);
    core::HttpResponse admin(std::string_view path) const;

    std::shared_ptr<RuntimeSlot> runtime_;
    storage::Store& store_;
    Metrics& metrics_;
    std::atomic<int> inFlight_{0};
};

}  // namespace idem::http
