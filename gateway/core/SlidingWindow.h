#pragma once
// SlidingWindow: two event counts (a, b) over the last `window` of time, kept in kBuckets time buckets so
// that old events fall out as time moves on. Used by the retry budget (requests, retries) and the circuit
// breaker (requests, failures). Time comes in as an argument: no clock reads, so tests move it by hand.
//
// The window covers the current bucket and the kBuckets-1 before it, so an event counts for between
// (kBuckets-1)/kBuckets of the window and the whole window. Each bucket is one 64-bit atomic (a 16-bit
// bucket tag and two 24-bit counts, saturating at 16,777,215 per bucket): adding is a CAS on one word, no
// lock on the request path, and never loses a count.
//
// Thread-safety: every member may be called concurrently.

#include "gateway/core/Clock.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace idem::core {

class SlidingWindow {
public:
    static constexpr std::size_t kBuckets = 10;

    struct Totals {
        std::uint64_t a = 0;
        std::uint64_t b = 0;
    };

    /// `window` > 0.
    explicit SlidingWindow(std::chrono::nanoseconds window);

    void add(Clock::time_point now, std::uint32_t a, std::uint32_t b);
    Totals totals(Clock::time_point now) const;
    /// Forgets every event.
    void clear();

private:
    std::int64_t sequence(Clock::time_point now) const;

    std::int64_t bucketNanos_;
    std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
};

}  // namespace idem::core
