#pragma once
// Typed configuration of the store, filled by the config loader (gateway/config) and consumed by
// StoreFactory. Durations carry their unit in the type. Secrets are resolved by the loader from an
// environment variable or a file before they land here; they are never printed.

#include "storage/Store.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace idem::storage {

struct HostPort {
    std::string host;
    std::uint16_t port = 0;
};

struct MemoryStoreConfig {
    std::size_t maxRecords = 1'000'000;  ///< cap: at the cap `begin` of a new key fails with Kind::Full
    std::size_t shards = 64;             ///< independent mutex + map shards
    Millis sweepInterval{1000};          ///< how often the sweeper reclaims expired records
};

struct RedisStoreConfig {
    HostPort address{"127.0.0.1", 6379};  ///< type: redis
    std::vector<HostPort> nodes;          ///< type: redis-cluster: seed nodes
    std::string password;                 ///< resolved from password_env / password_file; empty: no AUTH
    std::string keyPrefix = "idem:v1:";   ///< records live at <prefix>{<record id>}
    std::size_t pipelineConnections = 2;  ///< shared connections per node on which the record commands of
                                          ///< concurrent requests are pipelined (as many again are opened for
                                          ///< low concurrency); 0: none, every command leases a pooled one
    std::size_t poolSize = 16;            ///< exclusive connections per node: ASK redirects, CLUSTER SLOTS, PING
                                          ///< and CONFIG GET; every command when pipelineConnections is 0
    Millis connectTimeout{500};
    Millis commandTimeout{1000};
    Millis poolWaitTimeout{1000};         ///< bound on waiting for a free connection (pooled) or to be sent
                                          ///< (pipelined)
    bool requireNoEviction = false;       ///< maxmemory-policy other than noeviction: fatal instead of a warning
    /// How begin reads a record that may be completed. Never: always the begin script. Always: a plain
    /// HMGET first, which answers a completed record (replay or mismatch) without Lua, then the script for
    /// anything else. Auto: HMGET first only while most recent begins found a completed record (a retry
    /// storm), so the common miss pays no extra round trip.
    enum class ReplayRead { Auto, Always, Never };
    ReplayRead replayRead = ReplayRead::Auto;
    int maxRedirects = 5;                 ///< MOVED/ASK/TRYAGAIN attempts under one deadline (cluster)
    Millis slotRefreshInterval{10000};    ///< periodic CLUSTER SLOTS refresh (cluster)
};

struct PostgresStoreConfig {
    std::string url;                      ///< libpq URI or key=value string, without the password
    std::string password;                 ///< resolved from password_env / password_file
    std::string table = "idempotency_record";
    std::size_t poolSize = 8;             ///< exclusive connections: the reaper, PING; every statement when
                                          ///< pipelineConnections is 0
    std::size_t pipelineConnections = 2;  ///< shared connections in pipeline mode on which the record statements
                                          ///< of concurrent requests are batched (as many again are opened for
                                          ///< low concurrency); 0: none, every statement leases a pooled one
    Millis connectTimeout{2000};
    Millis statementTimeout{2000};
    Millis poolWaitTimeout{1000};
    bool migrateOnStart = true;           ///< create/upgrade the schema at start (advisory-locked)
    Millis reapInterval{30000};           ///< expired-record cleanup period; 0 disables the reaper
    std::size_t reapBatch = 5000;
};

struct StoreConfig {
    enum class Type { Memory, Redis, RedisCluster, Postgres };
    Type type = Type::Memory;
    StoreLimits limits;
    MemoryStoreConfig memory;
    RedisStoreConfig redis;
    PostgresStoreConfig postgres;
};

}  // namespace idem::storage
