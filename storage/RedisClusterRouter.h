#pragma once
// Internal to the Redis Cluster store: routes each command to the master serving its key's slot, because
// hiredis 0.14 has no cluster support (STORE-DESIGN.md §2).
//
// Contract:
//  - The slot map comes from CLUSTER SLOTS (masters only), read at construction from the seeds (a seed
//    that is down is skipped; if none answers, the map is read lazily on the first command), every
//    slotRefreshInterval by a background thread (0: no periodic refresh), and on demand (MOVED, lost
//    connections, unknown slot).
//  - Per node, a RedisMultiplexer (shared, pipelined connections; none when pipelineConnections is 0) for
//    ordinary commands, and one bounded RedisPool for ASKING + command, CLUSTER SLOTS and executeOnMasters.
//  - execute() makes at most maxRedirects attempts under one deadline (poolWaitTimeout + commandTimeout):
//    MOVED updates that slot, asks for a refresh and retries at the new node; ASK sends ASKING + the command
//    in one write to the target on a leased connection, without touching the map; TRYAGAIN / CLUSTERDOWN back
//    off briefly and retry; NOSCRIPT resends the fallback (EVAL); a lost connection (reset, closed, refused)
//    drops the connection, refreshes the map and retries: the slot may have failed over. Retrying after an
//    unknown outcome is safe only because every store script is idempotent per token. A command timeout is
//    returned at once (Timeout): the node is slow or paused, not gone.
//
// Thread-safety: safe for concurrent use. The destructor stops the refresh thread promptly (it waits at
// most for one in-flight refresh, itself bounded by the connect and command timeouts).

#include "storage/RedisDispatcher.h"
#include "storage/RedisSlots.h"

#include <array>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace idem::storage {

class RedisClusterRouter final : public RedisDispatcher {
public:
    using Clock = std::chrono::steady_clock;
    /// Rewrites the address of a node before connecting to it (identity by default). Lets a test put a
    /// fault proxy in front of a node whose real address CLUSTER SLOTS and MOVED keep announcing.
    using AddressMap = std::function<RedisEndpoint(const RedisEndpoint&)>;

    explicit RedisClusterRouter(const RedisStoreConfig& config, AddressMap addressMap = {});
    ~RedisClusterRouter() override;
    RedisClusterRouter(const RedisClusterRouter&) = delete;
    RedisClusterRouter& operator=(const RedisClusterRouter&) = delete;

    Result<RedisReply> execute(std::string_view key, const RedisCommand& command) override;
    Result<std::vector<RedisNodeReply>> executeOnMasters(const RedisArgv& argv) override;

    /// Reads CLUSTER SLOTS from the first known node or seed that answers before `deadline` and replaces the
    /// map. False if no node answered.
    bool refresh(Clock::time_point deadline);

    /// The master the map currently names for `slot` (as announced by the cluster), if any.
    std::optional<RedisEndpoint> masterOf(std::uint16_t slot) const;

private:
    /// A node as the cluster announces it, and the connections that reach it (through addressMap_).
    struct Node {
        RedisEndpoint announced;
        std::shared_ptr<RedisPool> pool;
        std::unique_ptr<RedisMultiplexer> mux;  ///< null: pipelining off
    };
    using SlotTable = std::array<std::shared_ptr<Node>, kRedisSlotCount>;

    std::shared_ptr<Node> nodeForLocked(const RedisEndpoint& announced);
    std::shared_ptr<Node> nodeFor(const RedisEndpoint& announced);
    std::shared_ptr<Node> nodeForSlot(std::uint16_t slot, Clock::time_point deadline);
    std::vector<std::shared_ptr<Node>> masters();
    void refreshAfterFailure(Clock::time_point deadline);
    void requestRefresh();
    void refreshLoop();
    /// One attempt on `node` (multiplexed, or leased for ASK or with pipelining off), within `deadline`.
    Result<RedisReply> tryOnce(Node& node, const RedisCommand& command, bool asking, Clock::time_point deadline);

    const RedisStoreConfig config_;
    const RedisConnectionOptions options_;
    const AddressMap addressMap_;
    std::vector<RedisEndpoint> seeds_;

    mutable std::mutex mutex_;  ///< guards nodes_, slots_, lastRefresh_, stop_, refreshWanted_
    std::map<std::string, std::shared_ptr<Node>> nodes_;  ///< by announced "host:port"
    std::unique_ptr<SlotTable> slots_;                         ///< null entry: slot not known
    Clock::time_point lastRefresh_{};

    std::mutex refreshMutex_;  ///< one refresh at a time
    std::condition_variable wake_;
    bool stop_ = false;
    bool refreshWanted_ = false;
    std::thread refresher_;
};

}  // namespace idem::storage
