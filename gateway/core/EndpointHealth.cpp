#include "gateway/core/EndpointHealth.h"

namespace idem::core {

EndpointHealth::Change EndpointHealth::onCheck(bool passed) {
    if (passed) {
        failedInRow_ = 0;
        ++passedInRow_;
        if (!healthy() && passedInRow_ >= settings_.healthyThreshold) {
            healthy_.store(true, std::memory_order_release);
            failures_.store(0, std::memory_order_relaxed);
            ejectedUntil_.store(0, std::memory_order_release);  // proven healthy: any ejection ends too
            return Change::BecameHealthy;
        }
        return Change::None;
    }
    passedInRow_ = 0;
    ++failedInRow_;
    if (healthy() && failedInRow_ >= settings_.unhealthyThreshold) {
        healthy_.store(false, std::memory_order_release);
        return Change::BecameUnhealthy;
    }
    return Change::None;
}

EndpointHealth::Change EndpointHealth::onFailure(Clock::time_point now) {
    if (settings_.consecutiveFailures == 0) return Change::None;
    const std::uint32_t n = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    // Exactly one thread sees the count reach the threshold: it ejects, and the run starts over.
    if (n != settings_.consecutiveFailures) return Change::None;
    failures_.store(0, std::memory_order_relaxed);
    ejectedUntil_.store((now + settings_.ejection).time_since_epoch().count(), std::memory_order_release);
    return Change::Ejected;
}

}  // namespace idem::core
