#include "gateway/core/SlidingWindow.h"

#include <algorithm>

namespace idem::core {
namespace {

constexpr std::uint64_t kCountMask = (std::uint64_t{1} << 24) - 1;

constexpr std::uint64_t tagOf(std::int64_t sequence) { return static_cast<std::uint64_t>(sequence) & 0xFFFF; }
constexpr std::uint64_t pack(std::uint64_t tag, std::uint64_t a, std::uint64_t b) { return (tag << 48) | (a << 24) | b; }

}  // namespace

SlidingWindow::SlidingWindow(std::chrono::nanoseconds window)
    : bucketNanos_(std::max<std::int64_t>(1, window.count() / static_cast<std::int64_t>(kBuckets))) {}

std::int64_t SlidingWindow::sequence(Clock::time_point now) const {
    return std::max<std::int64_t>(0, now.time_since_epoch().count() / bucketNanos_);
}

void SlidingWindow::add(Clock::time_point now, std::uint32_t a, std::uint32_t b) {
    const std::int64_t seq = sequence(now);
    auto& bucket = buckets_[static_cast<std::size_t>(seq % static_cast<std::int64_t>(kBuckets))];
    const std::uint64_t tag = tagOf(seq);
    std::uint64_t old = bucket.load(std::memory_order_relaxed);
    for (;;) {
        std::uint64_t oa = 0;
        std::uint64_t ob = 0;
        if ((old >> 48) == tag) {  // same bucket period: add; an older period is overwritten
            oa = (old >> 24) & kCountMask;
            ob = old & kCountMask;
        }
        const std::uint64_t na = std::min<std::uint64_t>(kCountMask, oa + a);
        const std::uint64_t nb = std::min<std::uint64_t>(kCountMask, ob + b);
        if (bucket.compare_exchange_weak(old, pack(tag, na, nb), std::memory_order_relaxed)) return;
    }
}

SlidingWindow::Totals SlidingWindow::totals(Clock::time_point now) const {
    const std::int64_t seq = sequence(now);
    Totals t;
    for (std::int64_t k = 0; k < static_cast<std::int64_t>(kBuckets) && k <= seq; ++k) {
        const std::int64_t s = seq - k;
        const std::uint64_t v = buckets_[static_cast<std::size_t>(s % static_cast<std::int64_t>(kBuckets))].load(
            std::memory_order_relaxed);
        if ((v >> 48) != tagOf(s)) continue;
        t.a += (v >> 24) & kCountMask;
        t.b += v & kCountMask;
    }
    return t;
}

void SlidingWindow::clear() {
    for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
}

}  // namespace idem::core
