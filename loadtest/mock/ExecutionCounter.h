// Executions per received Idempotency-Key value. Sharded so concurrent requests for different
// keys rarely share a lock. Past maxKeys distinct keys, new keys count only in the total
// ("untracked"), so a long load test cannot grow memory without bound. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace idem::mock {

class ExecutionCounter {
public:
    explicit ExecutionCounter(std::size_t maxKeys) : maxKeys_(maxKeys) {}

    void count(const std::string& key);
    std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }
    std::uint64_t countOf(const std::string& key) const;
    void clear();

    // {"total":N,"untracked":U,"keys":{"k":n,...}} with keys sorted.
    std::string toJson() const;

private:
    static constexpr std::size_t kShards = 16;
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, std::uint64_t> counts;
    };

    Shard& shardFor(const std::string& key) const;

    mutable std::array<Shard, kShards> shards_;
    std::atomic<std::uint64_t> total_{0};
    std::atomic<std::uint64_t> untracked_{0};
    std::atomic<std::size_t> trackedKeys_{0};
    std::size_t maxKeys_;
};

}  // namespace idem::mock
