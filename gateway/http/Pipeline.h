#pragma once
// Pipeline: performs the decisions of the pure IdempotencyMachine against a Store and an upstream.
// It holds no policy of its own: every "what happens now" comes from gateway/core. No Poco here, so
// it can be driven in tests with a fake Forwarder.
//
// Thread-safety: one Pipeline serves all requests concurrently; it keeps no per-request state.

#include "gateway/core/Clock.h"
#include "gateway/core/IdempotencyMachine.h"
#include "gateway/http/Metrics.h"
#include "storage/Store.h"

#include <functional>
#include <string>

namespace idem::http {

/// Sends one request upstream and classifies the outcome (core::UpstreamResult::Kind). The request's
/// headers are already the ones to send (hop-by-hop removed, key header set).
class Forwarder {
public:
    virtual ~Forwarder() = default;
    virtual core::UpstreamResult forward(const core::HttpRequest& request) = 0;
};

/// What the pipeline did with a request, for the access log and metrics.
enum class Outcome {
    PassThrough,  ///< not idempotent here: forwarded without a record
    Unprotected,  ///< store down with store_failure: open: forwarded without protection
    Forwarded,    ///< first request: forwarded, response recorded (completed, unknown or tombstone)
    Released,     ///< forwarded, and the key released (release_on, not sent, on_unknown: release)
    Replayed,     ///< answered from the record
    Rejected,     ///< the gateway answered itself (400, 409, 410, 422, 503, 500)
};

std::string_view outcomeName(Outcome outcome);

struct PipelineResult {
    core::HttpResponse response;
    Outcome outcome = Outcome::Rejected;
    std::string keyForLog;  ///< redacted client key, empty when none
};

class Pipeline {
public:
    Pipeline(storage::Store& store, Metrics& metrics);

    /// Runs one request through the idempotency rules of `policy`. `forwarder` sends it upstream if
    /// the rules say so. `version` is the resolved API version ("" if none) and `scopePath` the path of
    /// the record scope (core::ResolvedVersion::scopePath; the request path for an unversioned route).
    PipelineResult handle(core::HttpRequest& request, const core::RoutePolicy& policy, std::string_view version,
                          std::string_view scopePath, Forwarder& forwarder) const;

private:
    PipelineResult runBegun(core::HttpRequest& request, const core::BeginRecord& begun, const core::RoutePolicy& policy,
                            Forwarder& forwarder) const;
    PipelineResult forwardOwned(core::HttpRequest& request, const core::BeginRecord& begun, const storage::Token& token,
                                const core::RoutePolicy& policy, Forwarder& forwarder) const;
    PipelineResult forwardWithoutRecord(core::HttpRequest& request, Forwarder& forwarder, bool unprotected) const;
    bool completeWithRetry(const core::BeginRecord& begun, const storage::Token& token,
                           const storage::StoredResponse& record, const core::RoutePolicy& policy) const;

    storage::Store& store_;
    Metrics& metrics_;
};

/// Rewrites the client's request headers into the upstream request's: hop-by-hop headers (and those
/// named in Connection) removed, the client's key header replaced by the route's forwarded key.
void prepareUpstreamHeaders(core::HttpRequest& request, const core::RoutePolicy& policy,
                            const std::string& forwardedKey, bool idempotent);

}  // namespace idem::http
