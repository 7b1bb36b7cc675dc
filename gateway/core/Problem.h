#pragma once
// RFC 9457 problem responses for every answer the gateway makes itself (SEMANTICS.md §7).
//
// makeProblem builds the body
//   {"type":"urn:idemgate:problem:<slug>","title":<fixed title of the type>,"status":N,"detail":<detail>,
//    then, when set, "retryable", "idempotency_key", "operation_state", then `strings` and `numbers`
//    in their order}
// with JSON string escaping (Json.h appendJsonString: invalid UTF-8 becomes U+FFFD), and the headers
// `Content-Type: application/problem+json` and `Cache-Control: no-store`. Extension names in `strings` and
// `numbers` must be distinct and must not reuse the member names above.
//
// Thread-safety: pure functions.

#include "gateway/core/Http.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idem::core {

/// One type per situation a client must tell apart (distinct `type` URNs, CASES.md conventions).
enum class ProblemType {
    KeyMissing,
    KeyInvalid,
    TenantMissing,
    InvalidBody,
    VersionInvalid,
    BodyTooLarge,
    FingerprintMismatch,
    InFlight,
    StoreUnavailable,
    RecordUnreadable,
    UpstreamUnreachable,
    OutcomeUnknown,
    ResponseNotReplayable,
    RouteNotFound,
    RouteDisabled,
    RequestInvalid,       ///< not a valid HTTP/1.1 request (syntax, framing): 400, 501, 505
    RequestHeadTooLarge,  ///< request line or header fields over the server's limits: 414, 431
    RequestTimeout,       ///< the request did not arrive in time: 408
    Overloaded,           ///< the server is at its connection limit: 503
    Internal,
};

/// Kebab-case slug: key-missing, key-invalid, tenant-missing, invalid-body, version-invalid,
/// body-too-large, fingerprint-mismatch, in-flight, store-unavailable, record-unreadable,
/// upstream-unreachable, outcome-unknown, response-not-replayable, route-not-found, route-disabled,
/// request-invalid, request-head-too-large, request-timeout, overloaded, internal.
std::string_view problemSlug(ProblemType type);

/// The fixed human title of the type (the `title` member).
std::string_view problemTitle(ProblemType type);

/// Optional extension members.
struct ProblemExtras {
    std::optional<bool> retryable;
    std::optional<std::string> idempotencyKey;  ///< already redacted (redactKey)
    std::optional<std::string> operationState;  ///< "unknown", "completed"
    std::vector<std::pair<std::string, std::string>> strings;
    std::vector<std::pair<std::string, long long>> numbers;
};

/// The problem response: status, the body above, Content-Type and Cache-Control. `reason` is empty
/// (the standard phrase).
HttpResponse makeProblem(int status, ProblemType type, std::string detail, const ProblemExtras& extras = {});

/// The 503 answer of a route switched off with `enabled: false` and `disabled: reject`: problem type
/// route-disabled naming the method and path (not the route's config id). No Retry-After: the route
/// returns only when an operator enables it again.
HttpResponse routeDisabledProblem(std::string_view method, std::string_view path);

}  // namespace idem::core
