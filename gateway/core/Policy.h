#pragma once
// The idempotency policy of one route: every rule of ../shared/SEMANTICS.md that the config may change,
// with its default. Built once by the config loader, immutable afterwards, shared by requests.

#include "gateway/core/Versions.h"

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace idem::core {

using Millis = std::chrono::milliseconds;

enum class IdempotencyMode { Required, Optional, Off };
enum class KeyFormat { Default, Uuid };
enum class BodyMode { Raw, Json };
enum class OnUnknown { Hold, Release };
enum class OnInFlight { Reject, Wait };
enum class StoreFailure { Closed, Open };
/// What the upstream receives in its idempotency-key header.
enum class ForwardKey {
    Derived,  ///< "idg_" + first 40 hex of SHA-256 over the scope: stable across retries, instances,
              ///< takeovers and restarts, and never equal for two tenants (B24). Default.
    Client,   ///< the client's key verbatim
    None,     ///< nothing is forwarded
};

struct RoutePolicy {
    std::string routeId;                              ///< config name of the route; part of the scope
    IdempotencyMode mode = IdempotencyMode::Required;  ///< Default: required
    std::vector<std::string> methods{"POST", "PATCH"};  ///< methods taking part. Default: POST, PATCH
    std::string keyHeader = "Idempotency-Key";          ///< Default: Idempotency-Key (case-insensitive)
    KeyFormat keyFormat = KeyFormat::Default;           ///< Default: 1-255 chars 0x21-0x7E
    std::string tenantHeader;                           ///< header naming the tenant; empty = no tenant
    BodyMode body = BodyMode::Raw;                      ///< fingerprint of the body. Default: raw
    bool fingerprintQuery = true;                       ///< sorted query in the fingerprint. Default: on
    std::vector<std::string> fingerprintHeaders;        ///< extra request headers in the fingerprint
    std::size_t maxBody = 1 << 20;                      ///< request body limit (413). Default: 1 MiB
    std::size_t maxStoredResponse = 1 << 20;            ///< larger answers become a tombstone (B20)
    Millis ttl = std::chrono::hours(24);                ///< retention of a record. Default: 24h
    Millis lease = std::chrono::seconds(35);            ///< in-flight lease. Default: upstream timeout + 5s
    std::vector<int> releaseOn{408, 425, 429, 503};     ///< statuses that release the key
    OnUnknown onUnknown = OnUnknown::Hold;              ///< Default: hold (at most once)
    OnInFlight onInFlight = OnInFlight::Reject;         ///< Default: reject with 409
    Millis waitMax = std::chrono::seconds(10);          ///< bound for on_in_flight: wait
    StoreFailure storeFailure = StoreFailure::Closed;   ///< Default: closed (503)
    std::string forwardKeyHeader = "Idempotency-Key";   ///< header the key is forwarded under
    ForwardKey forwardKey = ForwardKey::Derived;
    bool allowSetCookie = false;                        ///< keep Set-Cookie in records. Default: off
    VersionPolicy versions;                             ///< API versions (Versions.h). Default: unversioned

    bool takesPart(std::string_view method) const {
        for (const auto& m : methods)
            if (m == method) return true;
        return false;
    }
};

}  // namespace idem::core
