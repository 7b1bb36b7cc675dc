#include "storage/RedisClusterRouter.h"

#include "gateway/io/Fiber.h"

#include <algorithm>
#include <set>

namespace idem::storage {
namespace {

using std::chrono::milliseconds;

// Refreshes triggered by failures closer together than this reuse the last map: a burst of failing calls
// must not turn into a burst of CLUSTER SLOTS.
constexpr milliseconds kMinRefreshGap{100};
// TRYAGAIN / CLUSTERDOWN backoff: doubles from the first step up to the cap, always within the deadline.
constexpr milliseconds kFirstBackoff{5};
constexpr milliseconds kMaxBackoff{100};

milliseconds left(RedisClusterRouter::Clock::time_point deadline) {
    return std::chrono::duration_cast<milliseconds>(deadline - RedisClusterRouter::Clock::now());
}

}  // namespace

RedisClusterRouter::RedisClusterRouter(const RedisStoreConfig& config, AddressMap addressMap)
    : config_(config),
      options_(connectionOptions(config)),
      addressMap_(addressMap ? std::move(addressMap) : AddressMap([](const RedisEndpoint& e) { return e; })),
      slots_(std::make_unique<SlotTable>()) {
    for (const auto& n : config.nodes) seeds_.push_back(RedisEndpoint{n.host, n.port});
    refresh(Clock::now() + config_.connectTimeout + config_.commandTimeout);
    refresher_ = std::thread([this] { refreshLoop(); });
}

RedisClusterRouter::~RedisClusterRouter() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    refresher_.join();
}

std::shared_ptr<RedisClusterRouter::Node> RedisClusterRouter::nodeForLocked(const RedisEndpoint& announced) {
    auto& node = nodes_[announced.str()];
    if (!node) {
        const auto address = addressMap_(announced);
        node = std::make_shared<Node>(
            Node{announced, RedisPool::create(address, options_, config_.poolSize), makeMultiplexer(address, config_)});
    }
    return node;
}

std::shared_ptr<RedisClusterRouter::Node> RedisClusterRouter::nodeFor(const RedisEndpoint& announced) {
    std::lock_guard lock(mutex_);
    return nodeForLocked(announced);
}

std::shared_ptr<RedisClusterRouter::Node> RedisClusterRouter::nodeForSlot(std::uint16_t slot,
                                                                          Clock::time_point deadline) {
    {
        std::lock_guard lock(mutex_);
        if (auto node = (*slots_)[slot]) return node;
    }
    refresh(deadline);
    std::lock_guard lock(mutex_);
    return (*slots_)[slot];
}

std::vector<std::shared_ptr<RedisClusterRouter::Node>> RedisClusterRouter::masters() {
    std::vector<std::shared_ptr<Node>> out;
    std::lock_guard lock(mutex_);
    for (const auto& node : *slots_)
        if (node && std::find(out.begin(), out.end(), node) == out.end()) out.push_back(node);
    return out;
}

std::optional<RedisEndpoint> RedisClusterRouter::masterOf(std::uint16_t slot) const {
    std::lock_guard lock(mutex_);
    if (const auto& node = (*slots_)[slot % kRedisSlotCount]) return node->announced;
    return std::nullopt;
}

bool RedisClusterRouter::refresh(Clock::time_point deadline) {
    std::lock_guard serial(refreshMutex_);
    // Known masters first (they know the newest map), then the seeds.
    std::vector<RedisEndpoint> candidates;
    for (const auto& node : masters()) candidates.push_back(node->announced);
    for (const auto& seed : seeds_)
        if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) candidates.push_back(seed);

    for (const auto& candidate : candidates) {
        const auto remaining = left(deadline);
        if (remaining <= milliseconds(0)) break;
        auto node = nodeFor(candidate);
        auto lease = node->pool->acquire(Clock::now() + std::min(remaining, config_.poolWaitTimeout));
        if (!lease) continue;  // that node is down: try the next one
        (*lease)->setCommandTimeout(std::clamp(left(deadline), milliseconds(1), config_.commandTimeout));
        auto reply = (*lease)->command({"CLUSTER", "SLOTS"});
        if (!reply) continue;
        auto ranges = parseClusterSlots(*reply, candidate.host);
        if (!ranges || ranges->empty()) continue;

        auto table = std::make_unique<SlotTable>();
        std::lock_guard lock(mutex_);
        for (const auto& range : *ranges) {
            auto owner = nodeForLocked(range.master);
            for (unsigned s = range.first; s <= range.last; ++s) (*table)[s] = owner;
        }
        slots_.swap(table);
        lastRefresh_ = Clock::now();
        return true;
    }
    return false;
}

void RedisClusterRouter::refreshAfterFailure(Clock::time_point deadline) {
    {
        std::lock_guard lock(mutex_);
        if (Clock::now() - lastRefresh_ < kMinRefreshGap) return;
    }
    refresh(deadline);
}

void RedisClusterRouter::requestRefresh() {
    {
        std::lock_guard lock(mutex_);
        refreshWanted_ = true;
    }
    wake_.notify_all();
}

void RedisClusterRouter::refreshLoop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        const auto woken = [this] { return stop_ || refreshWanted_; };
        if (config_.slotRefreshInterval > milliseconds(0))
            wake_.wait_for(lock, config_.slotRefreshInterval, woken);
        else
            wake_.wait(lock, woken);  // periodic refresh off: on demand only
        if (stop_) return;
        refreshWanted_ = false;
        lock.unlock();
        refresh(Clock::now() + config_.connectTimeout + config_.commandTimeout);
        lock.lock();
    }
}

Result<RedisReply> RedisClusterRouter::execute(std::string_view key, const RedisCommand& command) {
    const auto deadline = Clock::now() + config_.poolWaitTimeout + config_.commandTimeout;
    const auto slot = keySlot(key);
    const int attempts = std::max(1, config_.maxRedirects);
    std::shared_ptr<Node> askNode;
    milliseconds backoff = kFirstBackoff;
    StoreError last{StoreError::Kind::Unavailable, "redis cluster: no attempt was made before the deadline"};

    for (int attempt = 0; attempt < attempts && left(deadline) > milliseconds(0); ++attempt) {
        const bool asking = askNode != nullptr;
        auto node = asking ? std::exchange(askNode, nullptr) : nodeForSlot(slot, deadline);
        if (!node) {
            last = StoreError{StoreError::Kind::Unavailable,
                              "redis cluster: no reachable node serves slot " + std::to_string(slot)};
            break;  // nodeForSlot already tried every known node and seed
        }
        auto reply = tryOnce(*node, command, asking, deadline);
        if (!reply) {
            // No connection (Unavailable, nothing sent) or a lost one (dropped, never reused). A node that does
            // not answer in time is slow or paused, not gone: resending would only pile work on it and stretch
            // the caller's wait, so the unknown outcome goes back to the caller at once.
            if (reply.error().kind == StoreError::Kind::Timeout) return std::unexpected(reply.error());
            last = reply.error();
            refreshAfterFailure(deadline);
            continue;
        }
        if (!reply->isError()) return reply;

        auto cls = classifyErrorReply(reply->errorText());
        if (cls.target.host.empty()) cls.target.host = node->announced.host;
        switch (cls.kind) {
        case RedisErrorClass::Kind::Moved: {
            auto target = nodeFor(cls.target);
            {
                std::lock_guard lock(mutex_);
                (*slots_)[cls.slot] = target;
            }
            requestRefresh();  // other slots probably moved too
            last = mapErrorReply(reply->errorText());
            continue;
        }
        case RedisErrorClass::Kind::Ask:
            askNode = nodeFor(cls.target);
            last = mapErrorReply(reply->errorText());
            continue;
        case RedisErrorClass::Kind::TryAgain:
        case RedisErrorClass::Kind::ClusterDown:
            last = mapErrorReply(reply->errorText());
            io::sleepFor(std::clamp(left(deadline), milliseconds(0), backoff));
            backoff = std::min(backoff * 2, kMaxBackoff);
            continue;
        case RedisErrorClass::Kind::NoScript:
        case RedisErrorClass::Kind::Other:
            return std::unexpected(mapErrorReply(reply->errorText()));
        }
    }
    return std::unexpected(last);
}

Result<RedisReply> RedisClusterRouter::tryOnce(Node& node, const RedisCommand& command, bool asking,
                                               Clock::time_point deadline) {
    const auto sendWait = std::min(left(deadline), config_.poolWaitTimeout);
    const auto timeout = std::clamp(left(deadline), milliseconds(1), config_.commandTimeout);
    // ASKING must immediately precede its command on the same connection: a leased one (ASK is rare).
    if (node.mux && !asking) return runOnMultiplexer(*node.mux, command, sendWait, timeout);
    auto lease = node.pool->acquire(Clock::now() + sendWait);
    if (!lease) return std::unexpected(lease.error());
    (*lease)->setCommandTimeout(timeout);
    return runOnConnection(**lease, command, asking);  // a broken connection is dropped with the lease
}

Result<std::vector<RedisNodeReply>> RedisClusterRouter::executeOnMasters(const RedisArgv& argv) {
    const auto deadline = Clock::now() + config_.poolWaitTimeout + config_.commandTimeout;
    auto nodes = masters();
    if (nodes.empty() && refresh(deadline)) nodes = masters();
    if (nodes.empty())
        return std::unexpected(
            StoreError{StoreError::Kind::Unavailable, "redis cluster: no seed node answered CLUSTER SLOTS"});
    std::vector<RedisNodeReply> out;
    for (const auto& node : nodes) {
        // Each node gets its own full budget: one slow master must not starve the others' answers.
        auto lease = node->pool->acquire(Clock::now() + config_.poolWaitTimeout);
        if (!lease) {
            out.push_back(RedisNodeReply{node->announced, std::unexpected(lease.error())});
            continue;
        }
        (*lease)->setCommandTimeout(config_.commandTimeout);
        out.push_back(RedisNodeReply{node->announced, (*lease)->command(argv)});
    }
    return out;
}

}  // namespace idem::storage
