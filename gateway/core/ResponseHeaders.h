#pragma once
// Which upstream response headers are stored and replayed, and the headers the gateway adds to fresh
// and replayed answers (SEMANTICS.md §6, B17, B18, B19, B21).
//
//  - Hop-by-hop headers (Connection, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade, Proxy-*) and
//    every header named in a Connection header's comma list are never stored: they describe one
//    connection. Content-Length and Date are not stored either: the HTTP edge frames every answer itself
//    and dates it fresh. Set-Cookie is dropped unless the route allows it. Everything else is kept in
//    order, repeated names included.
//  - A fresh answer carries the storable headers plus `Idempotent-Replayed: false`; a replay carries the
//    stored headers plus `Idempotent-Replayed: true` and `Cache-Control: no-store` (replacing a stored
//    Cache-Control: a replay must not be cached as an original). Both echo the client's key (unquoted)
//    under the route's key header name, replacing any such header from the upstream.
//  - Status and body are kept exactly (an absent body stays absent); the reason phrase is left empty
//    (standard phrase) in both, since records do not keep it and a replay must look like the original.
//
// Thread-safety: pure functions.

#include "gateway/core/Http.h"

#include <string_view>

namespace idem::core {

using storage::Settlement;
using storage::StoredResponse;

/// True for Connection, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade and Proxy-* (ASCII
/// case-insensitive).
bool isHopByHop(std::string_view name);

/// The upstream headers as they may be stored (rules above), in order.
Headers storableHeaders(const Headers& upstream, bool allowSetCookie);

/// `upstream` without hop-by-hop headers, headers named by Connection, and Content-Length (for
/// responses forwarded without a record: Set-Cookie and Date are kept).
Headers forwardableHeaders(const Headers& upstream);

/// The record for an upstream response: same status and body, storable headers, `settlement`.
StoredResponse toStoredResponse(const HttpResponse& upstream, bool allowSetCookie, Settlement settlement);

/// Bytes the record occupies for the route's max_stored_response check; the same measure as
/// storage::storedSize (body + for each header name + value + 8), kept here so that the core does not
/// link the storage library.
std::size_t storedResponseSize(const StoredResponse& response);

/// The answer to the first caller: upstream status and body, storable headers, `Idempotent-Replayed:
/// false`, and `keyHeaderName: clientKey`.
HttpResponse freshResponse(const HttpResponse& upstream, bool allowSetCookie, std::string_view clientKey,
                           std::string_view keyHeaderName);

/// Adds `Idempotent-Replayed: false` and the key echo to a response the gateway made itself after a
/// forward attempt (the outcome-unknown and upstream-unreachable problems).
HttpResponse withFreshHeaders(HttpResponse response, std::string_view clientKey, std::string_view keyHeaderName);

/// A stored record replayed: same status and body, stored headers, `Idempotent-Replayed: true`,
/// `Cache-Control: no-store`, and `keyHeaderName: clientKey`.
HttpResponse replayResponse(const StoredResponse& stored, std::string_view clientKey, std::string_view keyHeaderName);

}  // namespace idem::core
