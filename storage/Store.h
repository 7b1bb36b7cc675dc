#pragma once
// The store contract shared by every backend (memory, Redis, Redis Cluster, PostgreSQL).
//
// A record is addressed by a RecordId: the hex SHA-256 of the request's scope (tenant, route, version,
// method, client key), computed by the core. The store never sees the raw client key, never parses
// HTTP, and judges every lease and expiry with its own clock (steady clock for memory, Redis TIME,
// Postgres now()). See ../shared/STORE-DESIGN.md and its amendment, and the README's "Store contract".
//
// Thread-safety: every Store implementation is safe for concurrent use from many threads.
// Errors: every call returns std::expected; an error is never mistaken for "key not found".

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace idem::storage {

using Millis = std::chrono::milliseconds;

/// Record address: 64 lowercase hex characters (SHA-256 of the scope). Stores reject anything longer
/// than kMaxRecordIdBytes with StoreError::Kind::TooLarge.
using RecordId = std::string;
/// Request fingerprint: 64 lowercase hex characters (SHA-256).
using Fingerprint = std::string;
/// Fencing token: 32 lowercase hex characters (128 random bits), fresh for every attempt.
using Token = std::string;

inline constexpr std::size_t kMaxRecordIdBytes = 255;

using Header = std::pair<std::string, std::string>;
using Headers = std::vector<Header>;

/// How a completed record was settled (SEMANTICS.md §5).
enum class Settlement : std::uint8_t {
    Definite = 'C',      ///< a definite answer from the upstream (2xx/3xx/4xx): replayed
    Unknown = 'U',       ///< the upstream may or may not have acted (5xx, timeout, reset, abandoned lease)
    Unreplayable = 'T',  ///< executed, but the answer was too large to store (a tombstone, B20)
};

/// The response kept in a completed record. Bytes are opaque to the store; status and headers are
/// kept exactly (order and repeated names preserved). `body` absent and `body` empty are different.
struct StoredResponse {
    int status = 0;
    Headers headers;
    std::optional<std::string> body;
    Settlement settlement = Settlement::Definite;

    bool operator==(const StoredResponse&) const = default;
};

/// begin: the key was free (new, expired, or released) and now belongs to `token`.
/// Also returned when `token` already owns the record (a resend by the owner after an ambiguous
/// store reply): the fence is not bumped then.
struct Owned {
    Token token;
    std::int64_t fence = 0;  ///< informational, for logs only; never compared across stores
};
/// begin: another attempt holds a live lease on the record.
struct InProgress {
    Millis leaseLeft{0};  ///< time left on the lease, > 0
};
/// begin: the record is completed with the same fingerprint.
struct Done {
    StoredResponse response;
};
/// begin: the record exists with a different fingerprint (takes precedence over every other state).
struct Mismatch {};
/// begin: the record is in flight but its lease is over: its owner vanished (crash, partition).
/// The caller either takes it over (`takeover`) or settles it as unknown (`complete` with `token`).
struct Abandoned {
    Token token;  ///< the stale owner's token
};

using BeginOutcome = std::variant<Owned, InProgress, Done, Mismatch, Abandoned>;

enum class CompleteOutcome { Ok, Fenced };

struct StoreError {
    enum class Kind {
        Unavailable,  ///< cannot reach the store, or it refused (OOM, read-only, down): retryable
        Timeout,      ///< the call's outcome is unknown; safe to resend with the same token
        TooLarge,     ///< record id or response over the store's limits; not retryable
        Full,         ///< the store is at its record cap and refuses new keys (never evicts)
        Corrupt,      ///< a record exists but cannot be decoded; never treated as a miss
    };
    Kind kind;
    std::string message;

    bool retryable() const { return kind == Kind::Unavailable || kind == Kind::Timeout || kind == Kind::Full; }
};

template <class T>
using Result = std::expected<T, StoreError>;

/// Limits every store enforces identically (conformance case 18).
struct StoreLimits {
    std::size_t maxResponseBytes = 1 << 20;  ///< body + serialized headers of one stored response
};

class Store {
public:
    virtual ~Store() = default;

    /// Atomically begin a record. If absent (or expired): create it in flight, owned by `token`, with
    /// lease `lease` and retention `retention` (both from now, store clock) and return Owned.
    /// Otherwise, in this precedence: different fingerprint -> Mismatch; completed -> Done; owned by
    /// `token` -> Owned (no fence bump); lease live -> InProgress; lease over -> Abandoned.
    virtual Result<BeginOutcome> begin(const RecordId& id, const Fingerprint& fp, const Token& token,
                                       Millis lease, Millis retention) = 0;

    /// Compare-and-set takeover of an Abandoned record: only if the record is in flight, has fingerprint
    /// `fp`, its lease is over and its token is `staleToken`, give it to `freshToken` (fence bumped) with
    /// lease and retention from now, and return Owned. Otherwise return what `begin` would return for
    /// `freshToken` (it may then be Owned, if the record expired meanwhile and was begun afresh).
    virtual Result<BeginOutcome> takeover(const RecordId& id, const Fingerprint& fp, const Token& staleToken,
                                          const Token& freshToken, Millis lease, Millis retention) = 0;

    /// Write the response if `token` still owns the in-flight record: state becomes completed and the
    /// record lives `retention` from now. A repeat by the owner after completion is Ok and changes
    /// nothing. Missing record or another token: Fenced, nothing written. An oversize response is
    /// StoreError::TooLarge and leaves the record untouched.
    virtual Result<CompleteOutcome> complete(const RecordId& id, const Token& token, const StoredResponse& response,
                                             Millis retention) = 0;

    /// Delete the record only if it is in flight and owned by `token`. Returns true if deleted.
    virtual Result<bool> release(const RecordId& id, const Token& token) = 0;

    /// Heartbeat: set the lease to `lease` from now if `token` owns the in-flight record.
    virtual Result<bool> extend(const RecordId& id, const Token& token, Millis lease) = 0;

    /// Remove up to `batch` expired records; returns how many were removed. Reads already ignore
    /// expired records, so this reclaims space only. Stores that expire natively (Redis) return 0.
    virtual Result<std::size_t> purgeExpired(std::size_t batch) = 0;

    /// Cheap liveness probe (health endpoint, recovery detection).
    virtual Result<void> ping() = 0;

    /// Counters of the store's own background work, for metrics. Thread-safe.
    struct Stats {
        std::uint64_t reapedRecords = 0;  ///< expired records removed by a background cleaner
        std::uint64_t reapPasses = 0;     ///< cleaner passes that ran (this instance held the lock)
        std::uint64_t reapFailures = 0;   ///< cleaner passes that failed
        /// Records held (in flight, completed, not yet swept) where the store can count them cheaply:
        /// the memory store; unset for the shared stores (ask Redis DBSIZE / the table instead).
        std::optional<std::uint64_t> records;
    };
    virtual Stats stats() const { return {}; }

    /// "memory", "redis", "redis-cluster", "postgres".
    virtual std::string name() const = 0;
};

}  // namespace idem::storage
