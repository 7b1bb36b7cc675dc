#pragma once
// CircuitBreaker: one per upstream endpoint. Stops sending to an endpoint that fails too often, and lets
// a single probe find out when it has recovered.
//
//   Closed    every request passes; results are counted over a sliding window. When, after a failure,
//             the window holds at least minRequests results and failures / results >= failureRate:
//             -> Open.
//   Open      nothing passes until openFor has elapsed; then the next admit() -> HalfOpen.
//   HalfOpen  exactly one request (the probe) passes at a time. Probe succeeds -> Closed (window
//             cleared); probe fails -> Open again for openFor; probe without a verdict (e.g. no pooled
//             connection was free) -> the next request may probe.
//
// What is a failure is the caller's call (the upstream client: could not connect, timed out, connection
// broken or invalid response; any HTTP answer is a success). Results of requests admitted before the breaker opened are ignored while it is
// not Closed. Time comes in as an argument (no clock reads): tests move it by hand.
//
// Thread-safety: all members may be called concurrently; the Closed path is lock-free.

#include "gateway/core/SlidingWindow.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace idem::core {

class CircuitBreaker {
public:
    struct Settings {
        bool enabled = true;
        double failureRate = 0.5;                   ///< in (0, 1]
        std::chrono::milliseconds window{10000};
        std::uint32_t minRequests = 20;             ///< >= 1
        std::chrono::milliseconds openFor{5000};
    };

    enum class State { Closed, Open, HalfOpen };
    enum class Admission { Rejected, Normal, Probe };
    enum class Result { Success, Failure, Neutral };

    explicit CircuitBreaker(Settings settings);

    /// Whether admit() would let a request through now (no side effect).
    bool admissible(Clock::time_point now) const;

    /// Lets a request through (Normal or, half-open, the single Probe) or not.
    Admission admit(Clock::time_point now);

    /// The outcome of a request that admit() let through as `admission`. Returns the new state when this
    /// result changed it (for logs).
    std::optional<State> onResult(Admission admission, Result result, Clock::time_point now);

    /// The state as admit() would see it now (Open turns HalfOpen once openFor has elapsed).
    State state(Clock::time_point now) const;

private:
    Settings settings_;
    SlidingWindow window_;  ///< a = results, b = failures (while Closed)
    std::atomic<int> state_{static_cast<int>(State::Closed)};
    std::atomic<std::int64_t> openUntil_{0};  ///< steady-clock nanoseconds
    std::atomic<bool> probing_{false};
};

}  // namespace idem::core
