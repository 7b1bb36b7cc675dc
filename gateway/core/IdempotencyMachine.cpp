#include "gateway/core/IdempotencyMachine.h"

#include "gateway/core/Fingerprint.h"
#include "gateway/core/Key.h"
#include "gateway/core/Problem.h"
#include "gateway/core/ResponseHeaders.h"
#include "gateway/core/Scope.h"

#include <algorithm>

namespace idem::core {
namespace {

using storage::Settlement;

/// Bounds of one on_in_flight: wait step: short enough to replay soon after the owner completes, long
/// enough that waiting duplicates cost the store a handful of begins per second each.
constexpr Millis kMinWaitStep{25};
constexpr Millis kMaxWaitStep{250};

/// Seconds for Retry-After on a 409: the lease left, rounded up, at least 1 (never 0, B08).
long long retryAfterSeconds(Millis leaseLeft) {
    const long long ms = std::max<long long>(leaseLeft.count(), 0);
    return std::max<long long>((ms + 999) / 1000, 1);
}

/// The status is in the route's release_on list: an explicit refusal, the key is freed.
bool releasesRecord(int status, const RoutePolicy& policy) {
    return std::find(policy.releaseOn.begin(), policy.releaseOn.end(), status) != policy.releaseOn.end();
}

/// Non-empty after trimming SP/HTAB.
bool hasContent(std::string_view v) {
    return v.find_first_not_of(" \t") != std::string_view::npos;
}

ProblemExtras keyExtras(const BeginRecord& begun) {
    ProblemExtras e;
    e.idempotencyKey = redactKey(begun.key);
    return e;
}

/// The outcome-unknown problem (timeout, reset, abandoned lease): never retryable, state unknown.
HttpResponse outcomeUnknown(int status, std::string detail, const BeginRecord& begun) {
    ProblemExtras e = keyExtras(begun);
    e.retryable = false;
    e.operationState = "unknown";
    return makeProblem(status, ProblemType::OutcomeUnknown, std::move(detail), e);
}

std::string withCause(std::string sentence, const std::string& cause) {
    if (!cause.empty()) sentence += " (" + cause + ")";
    return sentence;
}

/// CompleteRecord for an upstream response: the record (or its tombstone if too large) and the fresh
/// answer, which the client always receives in full.
UpstreamDecision completeWith(const HttpResponse& upstream, Settlement settlement, HttpResponse fresh,
                              const RoutePolicy& policy) {
    StoredResponse record = toStoredResponse(upstream, policy.allowSetCookie, settlement);
    if (storedResponseSize(record) > policy.maxStoredResponse)
        record = StoredResponse{upstream.status, {}, std::nullopt, Settlement::Unreplayable};
    return CompleteRecord{std::move(record), std::move(fresh)};
}

}  // namespace

ArrivalDecision onArrival(const HttpRequest& request, const RoutePolicy& policy, std::string_view version,
                          std::string_view scopePath) {
    if (policy.mode == IdempotencyMode::Off || !policy.takesPart(request.method)) return PassThrough{};

    KeyParse key = parseKey(request.headers, policy.keyHeader, policy.keyFormat);
    switch (key.status) {
        case KeyParse::Status::Absent:
            if (policy.mode == IdempotencyMode::Optional) return PassThrough{};
            return Reject{makeProblem(400, ProblemType::KeyMissing,
                                      "this route requires the " + policy.keyHeader + " header on " + request.method +
                                          " requests")};
        case KeyParse::Status::Invalid:
            return Reject{makeProblem(400, ProblemType::KeyInvalid, std::move(key.problem))};
        case KeyParse::Status::Ok: break;
    }

    std::string tenant;
    if (!policy.tenantHeader.empty()) {
        // Every line of the tenant header joins the credential; a missing or blank one is refused rather
        // than mapped to a shared anonymous bucket (B15).
        std::string credential;
        std::size_t lines = 0;
        for (const auto& [name, value] : request.headers) {
            if (!iequals(name, policy.tenantHeader)) continue;
            if (lines++ > 0) credential.push_back('\n');
            credential += value;
        }
        if (lines == 0 || !hasContent(credential))
            return Reject{makeProblem(400, ProblemType::TenantMissing,
                                      "this route identifies the caller by the " + policy.tenantHeader +
                                          " header, which is missing or empty")};
        tenant = tenantHash(credential);
    }

    auto fp = fingerprint(request, policy, version);
    if (!fp) return Reject{makeProblem(400, ProblemType::InvalidBody, std::move(fp.error()))};

    // B14: the shared scope of a versioned route leaves the version out (the fingerprint keeps it).
    const std::string path = normalizePath(scopePath);
    const std::string_view scopeVersion = policy.versions.sharedScope ? std::string_view{} : version;
    BeginRecord begin;
    begin.id = recordId(tenant, policy.routeId, scopeVersion, request.method, path, key.key);
    begin.fingerprint = std::move(*fp);
    switch (policy.forwardKey) {
        case ForwardKey::Derived:
            begin.forwardedKey =
                derivedForwardKey(tenant, policy.routeId, scopeVersion, request.method, path, key.key);
            break;
        case ForwardKey::Client: begin.forwardedKey = key.key; break;
        case ForwardKey::None: break;
    }
    begin.key = std::move(key.key);
    return begin;
}

BeginDecision onBegin(const storage::BeginOutcome& outcome, const BeginRecord& begun, const Token& token,
                      const RoutePolicy& policy, Millis waited) {
    // Owned carries the token we began with (or resent after an ambiguous store reply): forward under it.
    if (std::holds_alternative<storage::Owned>(outcome)) return Forward{token};
    if (const auto* busy = std::get_if<storage::InProgress>(&outcome)) {
        if (policy.onInFlight == OnInFlight::Wait && waited < policy.waitMax) {
            const Millis step = std::clamp(waited / 2, kMinWaitStep, kMaxWaitStep);
            return Wait{std::min(step, policy.waitMax - waited)};
        }
        const long long seconds = retryAfterSeconds(busy->leaseLeft);
        ProblemExtras e = keyExtras(begun);
        e.retryable = true;
        HttpResponse r = makeProblem(409, ProblemType::InFlight,
                                     "a request with this idempotency key is still being processed; retry after " +
                                         std::to_string(seconds) + " s",
                                     e);
        r.headers.emplace_back("Retry-After", std::to_string(seconds));
        return Reject{std::move(r)};
    }
    if (const auto* done = std::get_if<storage::Done>(&outcome)) {
        const StoredResponse& stored = done->response;
        if (stored.settlement != Settlement::Unreplayable)
            return Replay{replayResponse(stored, begun.key, policy.keyHeader)};
        ProblemExtras e = keyExtras(begun);
        e.operationState = "completed";
        e.numbers.emplace_back("original_status", stored.status);
        HttpResponse r = makeProblem(410, ProblemType::ResponseNotReplayable,
                                     "the request with this idempotency key was executed, but its response was "
                                     "too large to keep and cannot be replayed",
                                     e);
        setHeader(r.headers, "Idempotent-Replayed", "true");
        setHeader(r.headers, policy.keyHeader, begun.key);
        return Reject{std::move(r)};
    }
    if (std::holds_alternative<storage::Mismatch>(outcome)) {
        return Reject{makeProblem(422, ProblemType::FingerprintMismatch,
                                  "this idempotency key was already used with a different request (method, path, "
                                  "query, version, listed headers or body)",
                                  keyExtras(begun))};
    }
    const auto& abandoned = std::get<storage::Abandoned>(outcome);
    if (policy.onUnknown == OnUnknown::Release) return TakeOver{abandoned.token};
    HttpResponse problem = outcomeUnknown(
        504,
        "the gateway instance that forwarded this request stopped before recording the upstream's answer; the "
        "operation may or may not have happened",
        begun);
    return SettleAbandoned{abandoned.token,
                           StoredResponse{problem.status, std::move(problem.headers), std::move(problem.body),
                                          Settlement::Unknown}};
}

StoreErrorDecision onStoreError(const storage::StoreError& error, const BeginRecord& begun, const RoutePolicy& policy) {
    using Kind = storage::StoreError::Kind;
    if (error.kind == Kind::Corrupt) {
        // Never a miss (B10): forwarding would execute the operation a second time.
        ProblemExtras e = keyExtras(begun);
        e.retryable = false;
        return Reject{makeProblem(500, ProblemType::RecordUnreadable,
                                  "the idempotency record for this key exists but cannot be read; nothing was "
                                  "forwarded",
                                  e)};
    }
    if (error.kind == Kind::TooLarge) {
        // The record address exceeded the store's limit: a request property, not an outage (B22).
        return Reject{makeProblem(400, ProblemType::KeyInvalid,
                                  "the idempotency key's record address is over the store's limit", keyExtras(begun))};
    }
    if (policy.storeFailure == StoreFailure::Open) return ForwardUnprotected{};
    ProblemExtras e = keyExtras(begun);
    e.retryable = true;
    HttpResponse r = makeProblem(503, ProblemType::StoreUnavailable,
                                 "the idempotency store is unavailable, so the request was not forwarded", e);
    r.headers.emplace_back("Retry-After", "1");
    return Reject{std::move(r)};
}

UpstreamDecision onUpstream(const UpstreamResult& result, const BeginRecord& begun, const RoutePolicy& policy) {
    switch (result.kind) {
        case UpstreamResult::Kind::Response: {
            const HttpResponse& up = result.response;
            HttpResponse fresh = freshResponse(up, policy.allowSetCookie, begun.key, policy.keyHeader);
            if (releasesRecord(up.status, policy)) return ReleaseRecord{std::move(fresh)};
            if (up.status >= 500 && up.status <= 599) {
                if (policy.onUnknown == OnUnknown::Release) return ReleaseRecord{std::move(fresh)};
                return completeWith(up, Settlement::Unknown, std::move(fresh), policy);
            }
            return completeWith(up, Settlement::Definite, std::move(fresh), policy);
        }
        case UpstreamResult::Kind::NotSent: {
            ProblemExtras e = keyExtras(begun);
            e.retryable = true;
            HttpResponse r = makeProblem(
                502, ProblemType::UpstreamUnreachable,
                withCause("the upstream could not be reached and nothing was sent; retrying is safe", result.detail),
                e);
            return ReleaseRecord{withFreshHeaders(std::move(r), begun.key, policy.keyHeader)};
        }
        case UpstreamResult::Kind::TimedOut:
        case UpstreamResult::Kind::Reset: {
            const bool timedOut = result.kind == UpstreamResult::Kind::TimedOut;
            HttpResponse problem = outcomeUnknown(
                timedOut ? 504 : 502,
                withCause(timedOut ? "the request was sent but the upstream did not answer in time; the operation "
                                     "may or may not have happened"
                                   : "the request was sent but the upstream connection broke before a complete "
                                     "answer; the operation may or may not have happened",
                          result.detail),
                begun);
            HttpResponse fresh = withFreshHeaders(problem, begun.key, policy.keyHeader);
            if (policy.onUnknown == OnUnknown::Release) return ReleaseRecord{std::move(fresh)};
            return CompleteRecord{StoredResponse{problem.status, std::move(problem.headers), std::move(problem.body),
                                                 Settlement::Unknown},
                                  std::move(fresh)};
        }
    }
    return ReleaseRecord{makeProblem(500, ProblemType::Internal, "unexpected upstream result")};
}

HttpResponse passThroughResponse(UpstreamResult result, bool unprotected) {
    HttpResponse r;
    switch (result.kind) {
        case UpstreamResult::Kind::Response:
            r = std::move(result.response);
            r.headers = forwardableHeaders(r.headers);
            break;
        case UpstreamResult::Kind::NotSent: {
            ProblemExtras e;
            e.retryable = true;
            r = makeProblem(502, ProblemType::UpstreamUnreachable,
                            withCause("the upstream could not be reached and nothing was sent", result.detail), e);
            break;
        }
        case UpstreamResult::Kind::TimedOut:
        case UpstreamResult::Kind::Reset: {
            const bool timedOut = result.kind == UpstreamResult::Kind::TimedOut;
            ProblemExtras e;
            e.retryable = false;
            e.operationState = "unknown";
            r = makeProblem(timedOut ? 504 : 502, ProblemType::OutcomeUnknown,
                            withCause(timedOut ? "the upstream did not answer in time"
                                               : "the upstream connection broke before a complete answer",
                                      result.detail),
                            e);
            break;
        }
    }
    if (unprotected) setHeader(r.headers, "Idempotency-Enforced", "false");
    return r;
}

}  // namespace idem::core
