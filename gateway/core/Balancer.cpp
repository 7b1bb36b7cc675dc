#include "gateway/core/Balancer.h"

#include <algorithm>

namespace idem::core {

Balancer::Balancer(BalancePolicy policy, std::size_t endpoints)
    : policy_(policy), current_(std::min(endpoints, kMaxEndpoints), 0) {}

int Balancer::pick(std::span<const BalanceCandidate> candidates, std::uint64_t avoid) {
    const std::size_t n = std::min(candidates.size(), kMaxEndpoints);
    if (n == 0) return -1;
    std::uint64_t available = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (candidates[i].available) available |= std::uint64_t{1} << i;
    if (available == 0) return -1;
    const std::uint64_t preferred = available & ~avoid;
    const std::uint64_t mask = preferred != 0 ? preferred : available;
    auto in = [mask](std::size_t i) { return (mask >> i) & 1U; };
    // A retry (avoid != 0) does not take a turn: otherwise the next request would land on the endpoint
    // that just failed, and every request through a dead endpoint would need a retry.
    auto turn = [&] {
        return (avoid != 0 ? next_.load(std::memory_order_relaxed) : next_.fetch_add(1, std::memory_order_relaxed)) % n;
    };

    switch (policy_) {
        case BalancePolicy::RoundRobin: {
            const std::size_t start = turn();
            for (std::size_t k = 0; k < n; ++k) {
                const std::size_t i = (start + k) % n;
                if (in(i)) return static_cast<int>(i);
            }
            return -1;
        }
        case BalancePolicy::Weighted: {
            std::lock_guard lock(mutex_);
            if (current_.size() < n) current_.resize(n, 0);
            std::int64_t total = 0;
            int best = -1;
            for (std::size_t i = 0; i < n; ++i) {
                if (!in(i)) continue;
                const auto w = static_cast<std::int64_t>(std::max<std::uint32_t>(1, candidates[i].weight));
                current_[i] += w;
                total += w;
                if (best < 0 || current_[i] > current_[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
            }
            current_[static_cast<std::size_t>(best)] -= total;
            return best;
        }
        case BalancePolicy::LeastConnections: {
            const std::size_t start = turn();
            int best = -1;
            for (std::size_t k = 0; k < n; ++k) {
                const std::size_t i = (start + k) % n;
                if (!in(i)) continue;
                if (best < 0) {
                    best = static_cast<int>(i);
                    continue;
                }
                const auto& b = candidates[static_cast<std::size_t>(best)];
                const auto& c = candidates[i];
                // c.active / c.weight < b.active / b.weight, without division.
                if (std::uint64_t{c.active} * std::max<std::uint32_t>(1, b.weight) <
                    std::uint64_t{b.active} * std::max<std::uint32_t>(1, c.weight))
                    best = static_cast<int>(i);
            }
            return best;
        }
    }
    return -1;
}

}  // namespace idem::core
