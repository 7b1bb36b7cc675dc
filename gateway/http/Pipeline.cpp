#include "gateway/http/Pipeline.h"

#include "gateway/core/Key.h"
#include "gateway/core/Problem.h"
#include "gateway/core/ResponseHeaders.h"
#include "gateway/core/Scope.h"
#include "gateway/http/Log.h"
#include "gateway/io/Fiber.h"

#include <thread>

namespace idem::http {

using core::HttpRequest;
using core::HttpResponse;
using core::RoutePolicy;

namespace {

// Bounds on loops that re-run begin: a takeover race or a settle race ends in a few rounds; more means
// the store is misbehaving, and the client gets a 503 rather than a spinning thread.
constexpr int kMaxBeginRounds = 8;
// complete() is idempotent per token, so a failed write is retried a few times before the record is
// left in flight (it then expires into "unknown" after the lease, never into a second forward).
constexpr int kCompleteAttempts = 3;
constexpr core::Millis kCompleteBackoff{50};

const char* storeErrorKind(const storage::StoreError& e) {
    switch (e.kind) {
        case storage::StoreError::Kind::Unavailable: return "unavailable";
        case storage::StoreError::Kind::Timeout: return "timeout";
        case storage::StoreError::Kind::TooLarge: return "too-large";
        case storage::StoreError::Kind::Full: return "full";
        case storage::StoreError::Kind::Corrupt: return "corrupt";
    }
    return "unknown";
}

std::string describe(const char* what, const core::RoutePolicy& policy, const core::BeginRecord& begun,
                     const storage::StoreError& e) {
    std::string s = what;
    s += " route=";
    s += policy.routeId;
    s += " key=";
    s += core::redactKey(begun.key);
    s += " record=";
    s += begun.id.substr(0, 16);
    s += " store_error=";
    s += storeErrorKind(e);
    s += " detail=\"";
    s += e.message;
    s += '"';
    return s;
}

}  // namespace

std::string_view outcomeName(Outcome outcome) {
    switch (outcome) {
        case Outcome::PassThrough: return "pass-through";
        case Outcome::Unprotected: return "unprotected";
        case Outcome::Forwarded: return "forwarded";
        case Outcome::Released: return "released";
        case Outcome::Replayed: return "replayed";
        case Outcome::Rejected: return "rejected";
    }
    return "unknown";
}

void prepareUpstreamHeaders(HttpRequest& request, const RoutePolicy& policy, const std::string& forwardedKey,
                            bool idempotent) {
    // Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    std::vector<std::string> connectionNamed;
    for (const auto& [name, value] : request.headers) {
        if (!core::iequals(name, "Connection")) continue;
        std::size_t pos = 0;
        while (pos <= value.size()) {
            auto comma = value.find(',', pos);
            if (comma == std::string::npos) comma = value.size();
            auto token = std::string_view(value).substr(pos, comma - pos);
            while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
            while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
            if (!token.empty()) connectionNamed.emplace_back(token);
            pos = comma + 1;
        }
    }
    std::erase_if(request.headers, [&](const core::Header& h) {
        if (core::isHopByHop(h.first) || core::iequals(h.first, "Host") || core::iequals(h.first, "Content-Length") ||
            core::iequals(h.first, "Expect"))
            return true;
        for (const auto& n : connectionNamed)
            if (core::iequals(h.first, n)) return true;
        return false;
    });
    if (!idempotent) return;
    core::eraseHeader(request.headers, policy.keyHeader);
    core::eraseHeader(request.headers, policy.forwardKeyHeader);
    if (!forwardedKey.empty()) request.headers.emplace_back(policy.forwardKeyHeader, forwardedKey);
}

Pipeline::Pipeline(storage::Store& store, Metrics& metrics) : store_(store), metrics_(metrics) {}

PipelineResult Pipeline::handle(HttpRequest& request, const RoutePolicy& policy, std::string_view version,
                                std::string_view scopePath, Forwarder& forwarder) const {
    Metrics::inc(metrics_.requests);
    auto arrival = core::onArrival(request, policy, version, scopePath);
    if (auto* reject = std::get_if<core::Reject>(&arrival)) {
        Metrics::inc(metrics_.rejected);
        return {std::move(reject->response), Outcome::Rejected, {}};
    }
    if (std::holds_alternative<core::PassThrough>(arrival)) {
        Metrics::inc(metrics_.passThrough);
        prepareUpstreamHeaders(request, policy, {}, false);
        return forwardWithoutRecord(request, forwarder, false);
    }
    const auto& begun = std::get<core::BeginRecord>(arrival);
    auto result = runBegun(request, begun, policy, forwarder);
    result.keyForLog = core::redactKey(begun.key);
    return result;
}

PipelineResult Pipeline::runBegun(HttpRequest& request, const core::BeginRecord& begun, const RoutePolicy& policy,
                                  Forwarder& forwarder) const {
    storage::Token token = core::newToken();
    core::Millis waited{0};
    auto outcome = store_.begin(begun.id, begun.fingerprint, token, policy.lease, policy.ttl);

    for (int round = 0; round < kMaxBeginRounds; ++round) {
        if (!outcome) {
            Metrics::inc(metrics_.storeErrors);
            logWarning(describe("store begin failed", policy, begun, outcome.error()));
            auto decision = core::onStoreError(outcome.error(), begun, policy);
            if (auto* reject = std::get_if<core::Reject>(&decision)) {
                Metrics::inc(metrics_.rejected);
                return {std::move(reject->response), Outcome::Rejected, {}};
            }
            // store_failure: open. Forwarded without protection: counted, logged, marked in the response.
            Metrics::inc(metrics_.unprotected);
            logWarning("forwarding WITHOUT idempotency protection (store_failure: open) route=" + policy.routeId +
                       " key=" + core::redactKey(begun.key));
            prepareUpstreamHeaders(request, policy, begun.forwardedKey, true);
            return forwardWithoutRecord(request, forwarder, true);
        }

        auto decision = core::onBegin(*outcome, begun, token, policy, waited);
        if (auto* forward = std::get_if<core::Forward>(&decision)) {
            return forwardOwned(request, begun, forward->token, policy, forwarder);
        }
        if (auto* replay = std::get_if<core::Replay>(&decision)) {
            Metrics::inc(metrics_.replayed);
            return {std::move(replay->response), Outcome::Replayed, {}};
        }
        if (auto* reject = std::get_if<core::Reject>(&decision)) {
            Metrics::inc(metrics_.rejected);
            if (reject->response.status == 409) Metrics::inc(metrics_.inFlightConflicts);
            if (reject->response.status == 422) Metrics::inc(metrics_.mismatches);
            return {std::move(reject->response), Outcome::Rejected, {}};
        }
        if (auto* wait = std::get_if<core::Wait>(&decision)) {
            io::sleepFor(wait->delay);
            waited += wait->delay;
            outcome = store_.begin(begun.id, begun.fingerprint, token, policy.lease, policy.ttl);
            --round;  // waiting is bounded by policy.waitMax inside the machine, not by the round count
            continue;
        }
        if (auto* takeOver = std::get_if<core::TakeOver>(&decision)) {
            Metrics::inc(metrics_.takeovers);
            token = core::newToken();
            logWarning("taking over an abandoned record (on_unknown: release) route=" + policy.routeId +
                       " key=" + core::redactKey(begun.key));
            outcome = store_.takeover(begun.id, begun.fingerprint, takeOver->staleToken, token, policy.lease, policy.ttl);
            continue;
        }
        auto& settle = std::get<core::SettleAbandoned>(decision);
        auto settled = store_.complete(begun.id, settle.staleToken, settle.record, policy.ttl);
        if (settled && *settled == storage::CompleteOutcome::Ok) {
            Metrics::inc(metrics_.abandonedSettled);
            logWarning("abandoned record settled as outcome unknown (on_unknown: hold) route=" + policy.routeId +
                       " key=" + core::redactKey(begun.key));
            Metrics::inc(metrics_.replayed);
            return {core::replayResponse(settle.record, begun.key, policy.keyHeader), Outcome::Replayed, {}};
        }
        if (!settled) {
            outcome = std::unexpected(settled.error());
            continue;
        }
        // Fenced: another instance settled or took it over first; look again.
        outcome = store_.begin(begun.id, begun.fingerprint, token, policy.lease, policy.ttl);
    }
    logError("idempotency record did not settle after repeated rounds route=" + policy.routeId +
             " key=" + core::redactKey(begun.key));
    auto decision = core::onStoreError(
        storage::StoreError{storage::StoreError::Kind::Unavailable, "record did not settle"}, begun, policy);
    Metrics::inc(metrics_.rejected);
    if (auto* reject = std::get_if<core::Reject>(&decision)) return {std::move(reject->response), Outcome::Rejected, {}};
    // Even with store_failure: open we do not forward here: the record exists and someone may own it.
    return {core::makeProblem(503, core::ProblemType::StoreUnavailable, "the idempotency record did not settle"),
            Outcome::Rejected,
            {}};
}

PipelineResult Pipeline::forwardOwned(HttpRequest& request, const core::BeginRecord& begun, const storage::Token& token,
                                      const RoutePolicy& policy, Forwarder& forwarder) const {
    Metrics::inc(metrics_.forwarded);
    prepareUpstreamHeaders(request, policy, begun.forwardedKey, true);
    // The upstream call and the store write below run to the end even if the client has gone away:
    // the handler thread is not cancelled by a client disconnect (B06).
    auto result = forwarder.forward(request);
    if (result.kind != core::UpstreamResult::Kind::Response) Metrics::inc(metrics_.upstreamFailures);
    auto decision = core::onUpstream(result, begun, policy);
    if (auto* complete = std::get_if<core::CompleteRecord>(&decision)) {
        completeWithRetry(begun, token, complete->record, policy);
        return {std::move(complete->response), Outcome::Forwarded, {}};
    }
    auto& release = std::get<core::ReleaseRecord>(decision);
    Metrics::inc(metrics_.released);
    auto released = store_.release(begun.id, token);
    if (!released) {
        Metrics::inc(metrics_.storeErrors);
        logWarning(describe("store release failed; the key stays in flight until its lease ends", policy, begun,
                            released.error()));
    }
    return {std::move(release.response), Outcome::Released, {}};
}

bool Pipeline::completeWithRetry(const core::BeginRecord& begun, const storage::Token& token,
                                 const storage::StoredResponse& record, const RoutePolicy& policy) const {
    for (int attempt = 1;; ++attempt) {
        auto done = store_.complete(begun.id, token, record, policy.ttl);
        if (done && *done == storage::CompleteOutcome::Ok) return true;
        Metrics::inc(metrics_.completeFailures);
        if (done) {
            logWarning("response not recorded: the record was taken over after the lease ended (fenced) route=" +
                       policy.routeId + " key=" + core::redactKey(begun.key));
            return false;
        }
        Metrics::inc(metrics_.storeErrors);
        if (!done.error().retryable() || attempt >= kCompleteAttempts) {
            logError(describe("response not recorded; retries get 409 until the lease ends, then outcome unknown",
                              policy, begun, done.error()));
            return false;
        }
        io::sleepFor(kCompleteBackoff * attempt);
    }
}

PipelineResult Pipeline::forwardWithoutRecord(HttpRequest& request, Forwarder& forwarder, bool unprotected) const {
    auto result = forwarder.forward(request);
    if (result.kind != core::UpstreamResult::Kind::Response) Metrics::inc(metrics_.upstreamFailures);
    return {core::passThroughResponse(std::move(result), unprotected),
            unprotected ? Outcome::Unprotected : Outcome::PassThrough,
            {}};
}

}  // namespace idem::http
