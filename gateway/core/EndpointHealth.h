#pragma once
// EndpointHealth: whether one upstream endpoint may get traffic, from two sources.
//
//  - Active checks (the upstream's health checker calls onCheck with each probe's verdict): an endpoint
//    starts healthy; unhealthyThreshold failed checks in a row make it unhealthy, healthyThreshold
//    passed checks in a row make it healthy again.
//  - Passive ejection (the request path calls onFailure / onSuccess): consecutiveFailures failures in a
//    row eject the endpoint for `ejection`; afterwards it gets traffic again (and a new run of failures
//    ejects it again). consecutiveFailures == 0 turns passive ejection off.
//
// available(now) = healthy and not ejected. Time comes in as an argument: tests move it by hand.
// Thread-safety: onCheck from one thread (the checker); everything else from any thread (atomics).

#include "gateway/core/Clock.h"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace idem::core {

class EndpointHealth {
public:
    struct Settings {
        std::uint32_t healthyThreshold = 2;     ///< >= 1
        std::uint32_t unhealthyThreshold = 3;   ///< >= 1
        std::uint32_t consecutiveFailures = 5;  ///< 0 = no passive ejection
        std::chrono::milliseconds ejection{30000};
    };

    enum class Change { None, BecameHealthy, BecameUnhealthy, Ejected };

    explicit EndpointHealth(Settings settings) : settings_(settings) {}

    bool healthy() const { return healthy_.load(std::memory_order_acquire); }
    bool ejected(Clock::time_point now) const {
        return now.time_since_epoch().count() < ejectedUntil_.load(std::memory_order_acquire);
    }
    bool available(Clock::time_point now) const { return healthy() && !ejected(now); }

    /// One active check's verdict.
    Change onCheck(bool passed);

    /// A request to this endpoint failed (could not connect, timed out, broke).
    Change onFailure(Clock::time_point now);
    /// A request to this endpoint succeeded: the run of failures ends.
    void onSuccess() {
        if (failures_.load(std::memory_order_relaxed) != 0) failures_.store(0, std::memory_order_relaxed);
    }

private:
    Settings settings_;
    std::atomic<bool> healthy_{true};
    std::uint32_t passedInRow_ = 0;  ///< checker thread only
    std::uint32_t failedInRow_ = 0;  ///< checker thread only
    std::atomic<std::uint32_t> failures_{0};
    std::atomic<std::int64_t> ejectedUntil_{0};  ///< steady-clock nanoseconds
};

}  // namespace idem::core
