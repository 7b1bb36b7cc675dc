#include "ExecutionCounter.h"

#include "Json.h"

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

namespace idem::mock {

ExecutionCounter::Shard& ExecutionCounter::shardFor(const std::string& key) const
{
    return shards_[std::hash<std::string>{}(key) % kShards];
}

void ExecutionCounter::count(const std::string& key)
{
    total_.fetch_add(1, std::memory_order_relaxed);
    Shard& shard = shardFor(key);
    std::lock_guard lock(shard.mutex);
    if (const auto it = shard.counts.find(key); it != shard.counts.end()) {
        ++it->second;
        return;
    }
    if (trackedKeys_.fetch_add(1, std::memory_order_relaxed) >= maxKeys_) {
        trackedKeys_.fetch_sub(1, std::memory_order_relaxed);
        untracked_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    shard.counts.emplace(key, 1);
}

std::uint64_t ExecutionCounter::countOf(const std::string& key) const
{
    Shard& shard = shardFor(key);
    std::lock_guard lock(shard.mutex);
    const auto it = shard.counts.find(key);
    return it == shard.counts.end() ? 0 : it->second;
}

void ExecutionCounter::clear()
{
    for (Shard& shard : shards_) {
        std::lock_guard lock(shard.mutex);
        shard.counts.clear();
    }
    trackedKeys_.store(0, std::memory_order_relaxed);
    untracked_.store(0, std::memory_order_relaxed);
    total_.store(0, std::memory_order_relaxed);
}

std::string ExecutionCounter::toJson() const
{
    std::vector<std::pair<std::string, std::uint64_t>> all;
    for (const Shard& shard : shards_) {
        std::lock_guard lock(shard.mutex);
        all.insert(all.end(), shard.counts.begin(), shard.counts.end());
    }
    std::sort(all.begin(), all.end());
    std::string out = "{\"total\":" + std::to_string(total()) +
                      ",\"untracked\":" + std::to_string(untracked_.load(std::memory_order_relaxed)) +
                      ",\"keys\":{";
    bool first = true;
    for (const auto& [key, n] : all) {
        if (!first) out += ',';
        first = false;
        appendJsonString(out, key);
        out += ':';
        out += std::to_string(n);
    }
    out += "}}";
    return out;
}

}  // namespace idem::mock
