#include "Histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace idem::load {

namespace {

// Single writer: a plain load + store is enough and avoids a locked instruction per request.
inline void bump(std::atomic<std::uint64_t>& a, std::uint64_t by)
{
    a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace

Histogram::Histogram() : counts_(new std::atomic<std::uint64_t>[kBuckets])
{
    clear();
}

std::size_t Histogram::indexOf(std::uint64_t v)
{
    if (v < kLinear) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kSubBits;  // >= 1
    const std::uint64_t sub = v >> shift;  // in [1024, 2048)
    return static_cast<std::size_t>(kLinear + static_cast<std::uint64_t>(shift - 1) * (std::uint64_t{1} << kSubBits) +
                                    (sub - (std::uint64_t{1} << kSubBits)));
}

std::uint64_t Histogram::highestEquivalent(std::size_t index)
{
    if (index < kLinear) return index;
    const std::uint64_t rel = index - kLinear;
    const int shift = static_cast<int>(rel >> kSubBits) + 1;
    const std::uint64_t sub = (rel & ((std::uint64_t{1} << kSubBits) - 1)) + (std::uint64_t{1} << kSubBits);
    return ((sub + 1) << shift) - 1;
}

void Histogram::record(std::uint64_t micros)
{
    micros = std::min(micros, kMaxValue);
    bump(counts_[indexOf(micros)], 1);
    bump(count_, 1);
    bump(sum_, micros);
    if (micros > max_.load(std::memory_order_relaxed)) max_.store(micros, std::memory_order_relaxed);
}

void Histogram::add(const Histogram& other)
{
    for (std::size_t i = 0; i < kBuckets; ++i) {
        const std::uint64_t n = other.counts_[i].load(std::memory_order_relaxed);
        if (n != 0) bump(counts_[i], n);
    }
    bump(count_, other.count());
    bump(sum_, other.sum_.load(std::memory_order_relaxed));
    if (other.max() > max()) max_.store(other.max(), std::memory_order_relaxed);
}

void Histogram::clear()
{
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i].store(0, std::memory_order_relaxed);
    count_.store(0, std::memory_order_relaxed);
    sum_.store(0, std::memory_order_relaxed);
    max_.store(0, std::memory_order_relaxed);
}

std::uint64_t Histogram::min() const
{
    for (std::size_t i = 0; i < kBuckets; ++i)
        if (counts_[i].load(std::memory_order_relaxed) != 0) return i < kLinear ? i : highestEquivalent(i);
    return 0;
}

double Histogram::mean() const
{
    const std::uint64_t n = count();
    return n == 0 ? 0.0 : static_cast<double>(sum_.load(std::memory_order_relaxed)) / static_cast<double>(n);
}

std::uint64_t Histogram::percentile(double p) const
{
    return percentiles({p}).front();
}

std::vector<std::uint64_t> Histogram::percentiles(const std::vector<double>& ascending) const
{
    std::vector<std::uint64_t> out(ascending.size(), 0);
    // Counts may move while another thread writes; the total is taken from the buckets themselves.
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) total += counts_[i].load(std::memory_order_relaxed);
    if (total == 0) return out;
    const std::uint64_t observedMax = max();
    std::size_t next = 0;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets && next < ascending.size(); ++i) {
        seen += counts_[i].load(std::memory_order_relaxed);
        while (next < ascending.size()) {
            const double p = std::clamp(ascending[next], 0.0, 100.0);
            const auto rank = std::max<std::uint64_t>(
                1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total) - 1e-9)));
            if (seen < rank) break;
            const std::uint64_t high = highestEquivalent(i);
            out[next++] = observedMax != 0 && observedMax < high ? observedMax : high;
        }
    }
    for (; next < ascending.size(); ++next) out[next] = observedMax;
    return out;
}

}  // namespace idem::load
