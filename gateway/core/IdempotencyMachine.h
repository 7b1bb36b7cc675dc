#pragma once
// The idempotency rules of ../shared/SEMANTICS.md §1-§7 as a pure state machine: events in, decisions
// out, as values. No I/O, no Poco, no clock reads: the caller (gateway/http/Pipeline) performs each
// decision against the store and the upstream and feeds the result back in.
//
//   onArrival(request)            -> PassThrough | Reject | BeginRecord
//   onBegin(store outcome)        -> Forward | Replay | Reject | Wait | TakeOver | SettleAbandoned
//   onStoreError(error)           -> Reject(503 / 500 corrupt) | ForwardUnprotected
//   onUpstream(upstream result)   -> CompleteRecord | ReleaseRecord
//
// Thread-safety: stateless; every function is safe to call from any thread.

#include "gateway/core/Http.h"
#include "gateway/core/Policy.h"
#include "storage/Store.h"

#include <string>
#include <variant>

namespace idem::core {

using storage::Fingerprint;
using storage::RecordId;
using storage::StoredResponse;
using storage::Token;

// ---- arrival ------------------------------------------------------------------------------------

/// Forward without idempotency: the method does not take part, the route is `off`, or the route is
/// `optional` and the request has no key. Nothing is recorded.
struct PassThrough {};

/// The gateway answers itself (400, 404, 409, 413, 422, 503...). Never creates or keeps a record.
struct Reject {
    HttpResponse response;
};

/// Begin a record for this request.
struct BeginRecord {
    RecordId id;             ///< hex SHA-256 of the scope (tenant hash, route, version, method, scope path, key)
    Fingerprint fingerprint;  ///< hex SHA-256 of method, path, sorted query, listed headers, body
    std::string key;          ///< the client's key, unquoted (echoed back, never logged in full)
    std::string forwardedKey;  ///< the value forwarded upstream (policy.forwardKey), empty for None
};

using ArrivalDecision = std::variant<PassThrough, Reject, BeginRecord>;

/// `version` is the resolved API version name ("" when the route has none) and `scopePath` the path of the
/// record scope (ResolvedVersion::scopePath; request.path for an unversioned route). The fingerprint
/// covers the version and the real request path. The record id and the derived forward key cover
/// `scopePath`, and the version only when policy.versions.sharedScope is off: with the shared scope (the
/// default) the same key on two versions of a route finds one record and differs by fingerprint (422).
/// The caller has already enforced the body limit (413) while reading the body.
ArrivalDecision onArrival(const HttpRequest& request, const RoutePolicy& policy, std::string_view version,
                          std::string_view scopePath);

// ---- after begin ----------------------------------------------------------------------------------

/// We own the record: forward upstream, then report with onUpstream.
struct Forward {
    Token token;
};
/// Send this response (a completed record, with the replay headers of §6 already applied).
struct Replay {
    HttpResponse response;
};
/// on_in_flight: wait: sleep `delay`, then begin again with the same token.
struct Wait {
    Millis delay;
};
/// on_unknown: release: the owner vanished; take the record over (Store::takeover) with a new token.
struct TakeOver {
    Token staleToken;
};
/// on_unknown: hold: the owner vanished; settle the record as unknown with `record` (Store::complete
/// with `staleToken`), then answer `response` (the replay of that record).
struct SettleAbandoned {
    Token staleToken;
    StoredResponse record;
};

using BeginDecision = std::variant<Forward, Replay, Reject, Wait, TakeOver, SettleAbandoned>;

/// `token` is the token this attempt used for begin; `waited` is how long this request has already
/// waited in on_in_flight: wait mode (zero on the first begin).
BeginDecision onBegin(const storage::BeginOutcome& outcome, const BeginRecord& begun, const Token& token,
                      const RoutePolicy& policy, Millis waited);

/// Forward without protection (store_failure: open). The response carries `Idempotency-Enforced: false`.
struct ForwardUnprotected {};

using StoreErrorDecision = std::variant<Reject, ForwardUnprotected>;

/// A store call failed during begin. Corrupt -> 500 "record unreadable" (never a miss, B10); anything
/// else -> 503 with Retry-After (closed) or ForwardUnprotected (open). TooLarge -> 400 bad key.
StoreErrorDecision onStoreError(const storage::StoreError& error, const BeginRecord& begun, const RoutePolicy& policy);

// ---- after the upstream ---------------------------------------------------------------------------

struct UpstreamResult {
    enum class Kind {
        Response,  ///< a complete response arrived
        NotSent,   ///< nothing was sent: connect refused, DNS, TLS handshake, no healthy endpoint
        TimedOut,  ///< sent, no complete response before the deadline
        Reset,     ///< sent, connection broken before a complete response
    };
    Kind kind = Kind::Response;
    HttpResponse response;  ///< for Kind::Response
    std::string detail;     ///< for the problem body and the log (no secrets)
};

/// Write `record` with Store::complete, then send `response` to the client (even if complete fails:
/// the client gets the answer; a retry then gets 409 until the lease ends, never a second forward).
struct CompleteRecord {
    StoredResponse record;
    HttpResponse response;
};
/// Release the record with Store::release, then send `response`.
struct ReleaseRecord {
    HttpResponse response;
};

using UpstreamDecision = std::variant<CompleteRecord, ReleaseRecord>;

UpstreamDecision onUpstream(const UpstreamResult& result, const BeginRecord& begun, const RoutePolicy& policy);

/// A response forwarded without a record (PassThrough / ForwardUnprotected): hop-by-hop headers
/// removed; nothing added except `Idempotency-Enforced: false` when `unprotected`.
HttpResponse passThroughResponse(UpstreamResult result, bool unprotected);

}  // namespace idem::core
