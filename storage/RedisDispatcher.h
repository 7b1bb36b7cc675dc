#pragma once
// Internal to the Redis stores: where a command goes. RedisStore speaks only to this interface; the
// standalone implementation lives here, the cluster one in RedisClusterRouter.h.
//
// Each node is reached two ways: a RedisMultiplexer (shared connections on which concurrent commands are
// pipelined; config pipelineConnections) for execute(), and a RedisPool (poolSize exclusive connections) for
// what needs a connection of its own: ASKING + command, CLUSTER SLOTS, executeOnMasters. With
// pipelineConnections 0 there is no multiplexer and execute() leases from the pool as well.
//
// Contract of execute():
//  - The command runs once on the node serving `key`, under one deadline (wait for a connection + command
//    timeout).
//  - NOSCRIPT is answered by resending `onNoScript` (EVAL for EVALSHA) to the same node (on the same
//    connection when leased).
//  - The returned reply is never an error reply: server errors that remain after routing are mapped to
//    StoreError by mapErrorReply, transport failures by mapTransportError.
//
// Thread-safety: implementations are safe for concurrent use.

#include "storage/RedisConnection.h"
#include "storage/RedisMultiplexer.h"
#include "storage/RedisPool.h"
#include "storage/StoreConfig.h"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idem::storage {

struct RedisCommand {
    RedisArgv argv;
    RedisArgv onNoScript;  ///< sent instead when the node answers NOSCRIPT; empty: no fallback
};

/// One node's answer in executeOnMasters (error replies included, as values).
struct RedisNodeReply {
    RedisEndpoint node;
    Result<RedisReply> reply;
};

class RedisDispatcher {
public:
    virtual ~RedisDispatcher() = default;

    /// Runs `command` on the node serving `key`; see the contract above.
    virtual Result<RedisReply> execute(std::string_view key, const RedisCommand& command) = 0;

    /// Runs `argv` once on every master (the one server for standalone). Fails as a whole only when no
    /// master is known; per-node failures and error replies are in the results.
    virtual Result<std::vector<RedisNodeReply>> executeOnMasters(const RedisArgv& argv) = 0;
};

/// Connection options of every pool, from the store config.
RedisConnectionOptions connectionOptions(const RedisStoreConfig& config);

/// Sends `command` (preceded by ASKING in the same write when `asking`) and, on NOSCRIPT, its fallback the
/// same way. Returns the command's raw reply, routing errors included.
Result<RedisReply> runOnConnection(RedisConnection& conn, const RedisCommand& command, bool asking);

/// Sends `command` through `mux` (waiting at most `sendWait` to be sent, each socket operation bounded by
/// `timeout`) and, on NOSCRIPT, its fallback the same way. Returns the command's raw reply, routing errors
/// included.
Result<RedisReply> runOnMultiplexer(RedisMultiplexer& mux, const RedisCommand& command,
                                    std::chrono::milliseconds sendWait, std::chrono::milliseconds timeout);

/// The node's multiplexer for the store config, or null when pipelining is off (pipelineConnections 0).
std::unique_ptr<RedisMultiplexer> makeMultiplexer(const RedisEndpoint& endpoint, const RedisStoreConfig& config);

/// A single Redis server: its multiplexer (execute) and one bounded pool (executeOnMasters, and execute when
/// pipelining is off).
class RedisStandaloneDispatcher final : public RedisDispatcher {
public:
    explicit RedisStandaloneDispatcher(const RedisStoreConfig& config);

    Result<RedisReply> execute(std::string_view key, const RedisCommand& command) override;
    Result<std::vector<RedisNodeReply>> executeOnMasters(const RedisArgv& argv) override;

private:
    Result<RedisReply> runLeased(const RedisCommand& command);

    std::shared_ptr<RedisPool> pool_;
    std::unique_ptr<RedisMultiplexer> mux_;  ///< null: pipelining off
    std::chrono::milliseconds poolWait_;
};

/// The Redis store over any dispatcher, named `name` ("redis", "redis-cluster"). makeRedisStore and
/// makeRedisClusterStore (RedisStore.h) use it; tests use it to route a cluster through a fault proxy.
/// Checks maxmemory-policy as RedisStore.h describes (throws std::runtime_error when that is fatal).
std::unique_ptr<Store> makeRedisStoreWith(std::unique_ptr<RedisDispatcher> dispatcher,
                                          const RedisStoreConfig& config, StoreLimits limits, std::string name);

}  // namespace idem::storage
