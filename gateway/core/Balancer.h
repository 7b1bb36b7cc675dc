#pragma once
// Balancer: which endpoint of an upstream the next request goes to.
//
//  - RoundRobin: each available endpoint in turn (an unavailable one is skipped).
//  - Weighted: smooth weighted round robin (nginx's): over any run of sum(weights) picks each available
//    endpoint gets exactly its weight's share, interleaved (5,1,1 gives a a b a c a a, not a a a a a b c).
//  - LeastConnections: the available endpoint with the fewest requests in flight relative to its weight
//    (active / weight); ties rotate, so equally loaded endpoints share evenly.
//
// `avoid` marks endpoints (bit i = candidate i) a retry should not go back to: they are skipped when any
// other available endpoint exists, and used again only when none does. A pick with a non-empty `avoid`
// (a retry) does not advance the round-robin turn, so a dead endpoint costs a retry only on its own
// turns. At most kMaxEndpoints candidates.
//
// Thread-safety: pick() may be called concurrently (RoundRobin and LeastConnections are lock-free;
// Weighted takes a short mutex around its running weights).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

namespace idem::core {

enum class BalancePolicy { RoundRobin, Weighted, LeastConnections };

struct BalanceCandidate {
    bool available = true;     ///< healthy, not ejected, circuit breaker admits
    std::uint32_t weight = 1;  ///< >= 1
    std::uint32_t active = 0;  ///< requests in flight (LeastConnections)
};

class Balancer {
public:
    static constexpr std::size_t kMaxEndpoints = 64;

    Balancer(BalancePolicy policy, std::size_t endpoints);

    /// Index of the chosen candidate, or -1 when none is available.
    int pick(std::span<const BalanceCandidate> candidates, std::uint64_t avoid = 0);

    BalancePolicy policy() const { return policy_; }

private:
    BalancePolicy policy_;
    std::atomic<std::uint64_t> next_{0};
    std::mutex mutex_;
    std::vector<std::int64_t> current_;  ///< Weighted: running weights, under mutex_
};

}  // namespace idem::core
