#pragma once
// The Redis and Redis Cluster stores (STORE-DESIGN.md §1, §2 and the amendment), on hiredis 0.14.
//
// Layout: one hash per record at <keyPrefix>{<record id>} with fields st (P in flight / C completed), tok,
// fp, fence, lease (ms since the epoch by Redis TIME), code, hdr (RecordCodec blob), body, hasbody. Every
// operation is one Lua script sent as EVALSHA (SHA1 computed locally; EVAL on NOSCRIPT) in one round trip;
// each script checks before its first write, because scripts are not rolled back. The record's own PEXPIRE
// is the retention from begin, then the final TTL from complete; the lease is judged inside the script by
// Redis TIME. purgeExpired returns 0: Redis expires records natively.
//
// At construction the stores read `maxmemory-policy` (on every master for a cluster). Any policy but
// noeviction is logged to stderr as a warning (in-flight locks could be evicted silently, and a retry would
// then execute the request twice), or is fatal (std::runtime_error) with requireNoEviction, which also
// makes an unverifiable policy (unreachable store, CONFIG disabled) fatal. An unreachable store is not an
// error otherwise: connections are opened lazily and every call then fails with Unavailable until the store
// is back, and the store recovers by itself.
//
// Thread-safety: both stores are safe for concurrent use (per node, a few shared connections on which
// concurrent commands are pipelined, RedisMultiplexer.h, and a bounded pool of exclusive ones).

#include "storage/Store.h"
#include "storage/StoreConfig.h"

#include <memory>

namespace idem::storage {

/// A store on one Redis server at config.address ("redis").
std::unique_ptr<Store> makeRedisStore(const RedisStoreConfig& config, StoreLimits limits);

/// A store on a Redis Cluster reached through the seed nodes config.nodes ("redis-cluster").
std::unique_ptr<Store> makeRedisClusterStore(const RedisStoreConfig& config, StoreLimits limits);

}  // namespace idem::storage
