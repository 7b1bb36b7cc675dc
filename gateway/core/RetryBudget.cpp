#include "gateway/core/RetryBudget.h"

#include <algorithm>
#include <cmath>

namespace idem::core {

RetryBudget::RetryBudget(double ratio, std::chrono::milliseconds window, std::uint32_t minRetries)
    : ratio_(std::clamp(ratio, 0.0, 1.0)), minRetries_(minRetries), window_(window) {}

std::uint64_t RetryBudget::available(Clock::time_point now) const {
    const auto t = window_.totals(now);
    const auto byRatio = static_cast<std::uint64_t>(std::floor(ratio_ * static_cast<double>(t.a) + 1e-9));
    const std::uint64_t allowed = std::max<std::uint64_t>(minRetries_, byRatio);
    return allowed > t.b ? allowed - t.b : 0;
}

bool RetryBudget::tryRetry(Clock::time_point now) {
    if (available(now) == 0) return false;
    window_.add(now, 0, 1);
    return true;
}

}  // namespace idem::core
