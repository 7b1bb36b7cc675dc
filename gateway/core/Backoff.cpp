#include "gateway/core/Backoff.h"

#include <algorithm>

namespace idem::core {

std::chrono::milliseconds backoffCeiling(unsigned retry, std::chrono::milliseconds base, std::chrono::milliseconds cap) {
    if (base.count() <= 0 || cap.count() <= 0) return std::chrono::milliseconds(0);
    const unsigned doublings = retry <= 1 ? 0 : retry - 1;
    auto value = base;
    for (unsigned i = 0; i < doublings && value < cap; ++i) value *= 2;  // stops at the cap: no overflow
    return std::min(value, cap);
}

std::chrono::milliseconds fullJitterBackoff(unsigned retry, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                            double unit) {
    const auto ceiling = backoffCeiling(retry, base, cap);
    const double u = std::clamp(unit, 0.0, 0.999999999);
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(u * static_cast<double>(ceiling.count())));
}

}  // namespace idem::core
