#pragma once
// RetryBudget: caps retries at a share of the requests over a sliding window (Finagle's and Envoy's retry
// budgets), so that a failing endpoint cannot make every request cost two: at most
//   max(minRetries, floor(ratio * requests in the window))
// retries are granted per window. minRetries keeps retries possible at low traffic, where 10% of a
// handful of requests would round down to none.
//
// Thread-safety: all members may be called concurrently. Two threads asking at the same moment may both
// be granted the last retry (the check and the count are separate atomics): the cap is exact to within
// the number of concurrent askers.

#include "gateway/core/SlidingWindow.h"

#include <cstdint>

namespace idem::core {

class RetryBudget {
public:
    /// `ratio` in [0, 1]; `window` > 0.
    RetryBudget(double ratio, std::chrono::milliseconds window, std::uint32_t minRetries);

    /// Counts one request (one forward, however many attempts it makes).
    void onRequest(Clock::time_point now) { window_.add(now, 1, 0); }

    /// Grants and counts one retry, or refuses when the budget is spent.
    bool tryRetry(Clock::time_point now);

    /// Retries still grantable now.
    std::uint64_t available(Clock::time_point now) const;

private:
    double ratio_;
    std::uint32_t minRetries_;
    SlidingWindow window_;  ///< a = requests, b = retries
};

}  // namespace idem::core
