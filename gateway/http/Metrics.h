#pragma once
// Process-wide counters, exposed in the Prometheus text format at /__idemgate/metrics.
// Lock-free (relaxed atomics): counting never slows the request path.

#include <atomic>
#include <cstdint>
#include <string>

#include "storage/Store.h"

namespace idem::http {

struct Metrics {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> passThrough{0};
    std::atomic<std::uint64_t> forwarded{0};          ///< first requests forwarded under a record
    std::atomic<std::uint64_t> replayed{0};
    std::atomic<std::uint64_t> released{0};
    std::atomic<std::uint64_t> rejected{0};           ///< gateway's own answers (4xx/5xx problems)
    std::atomic<std::uint64_t> inFlightConflicts{0};  ///< 409
    std::atomic<std::uint64_t> mismatches{0};         ///< 422
    std::atomic<std::uint64_t> unprotected{0};        ///< forwarded without protection (store_failure: open)
    std::atomic<std::uint64_t> storeErrors{0};
    std::atomic<std::uint64_t> completeFailures{0};   ///< a response could not be recorded (fenced or store error)
    std::atomic<std::uint64_t> upstreamFailures{0};   ///< not sent, timed out or reset
    std::atomic<std::uint64_t> takeovers{0};
    std::atomic<std::uint64_t> abandonedSettled{0};

    static void inc(std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

    /// Prometheus text; `store` adds the store's background-work counters.
    std::string render(const storage::Store::Stats& store) const;
};

}  // namespace idem::http
