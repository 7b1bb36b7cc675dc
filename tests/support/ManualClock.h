#pragma once
// ManualClock: a core::Clock that moves only when a test calls advance(), so that leases and TTLs are
// exercised without sleeping (STYLE.md "No sleeps: advance ManualClock").
//
// Contract: now() starts at a fixed, arbitrary steady_clock time point and never goes backwards;
// advance(d) with d >= 0 moves it forward by exactly d. Negative steps are rejected (std::invalid_argument).
// Thread-safety: now() and advance() may be called concurrently from any threads (one atomic).

#include "gateway/core/Clock.h"

#include <atomic>
#include <chrono>
#include <stdexcept>

namespace idem::test {

class ManualClock final : public core::Clock {
public:
    using Millis = std::chrono::milliseconds;

    /// A fixed start far from the steady clock's epoch, so "now - lease" never underflows.
    static constexpr std::chrono::hours kStart{24 * 365};

    ManualClock() = default;

    time_point now() const override {
        return time_point(time_point::duration(ticks_.load(std::memory_order_acquire)));
    }

    void advance(Millis d) {
        if (d.count() < 0) throw std::invalid_argument("ManualClock::advance: negative step");
        ticks_.fetch_add(std::chrono::duration_cast<time_point::duration>(d).count(), std::memory_order_acq_rel);
    }

private:
    std::atomic<time_point::duration::rep> ticks_{std::chrono::duration_cast<time_point::duration>(kStart).count()};
};

}  // namespace idem::test
