#pragma once
// Backoff between retries: exponential with "full jitter" (AWS Architecture Blog, "Exponential Backoff
// And Jitter"): the n-th retry waits a uniformly random time in [0, min(cap, base * 2^(n-1))), which
// spreads retries of many clients instead of synchronising them. Pure: the caller supplies the random
// number, so the bounds are testable without randomness.

#include <chrono>

namespace idem::core {

/// min(cap, base * 2^(retry-1)) for retry >= 1 (retry 0 is treated as 1); never overflows.
std::chrono::milliseconds backoffCeiling(unsigned retry, std::chrono::milliseconds base, std::chrono::milliseconds cap);

/// floor(unit * backoffCeiling(retry, base, cap)), `unit` in [0, 1) (clamped).
std::chrono::milliseconds fullJitterBackoff(unsigned retry, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                            double unit);

}  // namespace idem::core
