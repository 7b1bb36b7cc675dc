// Latency histogram in the manner of HdrHistogram: microsecond values, exact below 2048 us, then
// log-linear buckets with 1024 sub-buckets per power of two (0.1% relative precision), up to about
// 19 hours. One writer per histogram; other threads may read it while it is written (relaxed atomics)
// for the progress line.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace idem::load {

class Histogram {
public:
    static constexpr int kSubBits = 10;                                  // 1024 sub-buckets per octave
    static constexpr std::uint64_t kLinear = std::uint64_t{2} << kSubBits;  // exact below 2048
    static constexpr int kMaxMsb = 35;                                   // values up to 2^36 - 1 us
    static constexpr std::size_t kBuckets =
        kLinear + static_cast<std::size_t>(kMaxMsb - kSubBits) * (std::size_t{1} << kSubBits);
    static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << (kMaxMsb + 1)) - 1;

    Histogram();

    /// Records one value (microseconds); larger values are clamped to kMaxValue.
    void record(std::uint64_t micros);
    /// Adds every count of `other` to this one.
    void add(const Histogram& other);
    void clear();

    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }
    std::uint64_t min() const;
    double mean() const;
    /// The value at percentile p (0..100): the highest value of the bucket holding the ceil(p% * count)-th
    /// smallest value, clamped to the observed maximum; 0 when empty.
    std::uint64_t percentile(double p) const;
    /// Several percentiles (ascending) in one pass.
    std::vector<std::uint64_t> percentiles(const std::vector<double>& ascending) const;

    static std::size_t indexOf(std::uint64_t micros);
    static std::uint64_t highestEquivalent(std::size_t index);

private:
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_{0};
    std::atomic<std::uint64_t> max_{0};
};

}  // namespace idem::load
