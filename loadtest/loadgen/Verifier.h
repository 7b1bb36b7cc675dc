// At-most-once verification: what every answer must look like (checked as it arrives, per key, in 16 bytes
// of state), and what the upstream's execution counts must be (checked after the run).
#pragma once

#include "HttpResponse.h"
#include "Options.h"
#include "Workload.h"

#include <array>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace idem::load {

enum class Violation : int {
    DuplicateExecution,   ///< the upstream executed a key more than once
    ReplayBodyDiffers,    ///< a 2xx body differs from the first 2xx body for the key
    ReplayStatusDiffers,  ///< a 2xx status differs from the first 2xx status for the key
    BodyNamesOtherKey,    ///< a 2xx body carries another key's idempotency_key
    FreshTwice,           ///< two answers with Idempotent-Replayed: false for one key
    UnexpectedStatus,     ///< a status SEMANTICS does not allow for this load
    MissingRetryAfter,    ///< 409 without Retry-After
    Unexpected422,        ///< 422 for a key only ever sent with one payload
    TwoPayloadsAccepted,  ///< 2xx for both payloads of one key
    NoAnswer,             ///< the request got no response (reset, closed, timeout, protocol error)
    NotExecuted,          ///< a 2xx answer for a key the upstream never executed
    UpstreamStats,        ///< the upstream's counts cannot be read or are incomplete
    Count_
};

const char* violationName(Violation v);

/// Violations found by one thread: counts per kind and the first few descriptions of each kind.
class ViolationLog {
public:
    static constexpr std::size_t kKept = 20;

    void add(Violation kind, std::int64_t atNs, std::string text);
    void merge(const ViolationLog& other);
    std::uint64_t total() const;
    std::uint64_t count(Violation v) const { return counts_[static_cast<int>(v)]; }
    /// Up to `n` descriptions, taking the kinds in turn (each kind's oldest first), so that every kind found
    /// is shown.
    std::vector<std::string> listed(std::size_t n = kKept) const;

private:
    static constexpr std::size_t kKinds = static_cast<std::size_t>(Violation::Count_);
    std::array<std::uint64_t, kKinds> counts_{};
    std::array<std::vector<std::pair<std::int64_t, std::string>>, kKinds> examples_;
};

/// Per-key answer state for the keys one thread owns (key g belongs to thread g mod T, slot g div T).
class KeyBook {
public:
    KeyBook(const Options& options, const Workload& workload, int thread, int threads);

    /// A new key's slot; returns its local index.
    std::uint64_t addKey();
    std::uint64_t size() const { return states_.size(); }
    std::uint64_t globalKey(std::uint64_t local) const { return local * static_cast<std::uint64_t>(threads_) + thread_; }

    void onSend(std::uint64_t local, int variant);
    /// Checks one answer; violations go to `log`.
    void onAnswer(std::uint64_t local, int variant, const ResponseHead& head, std::string_view body, std::int64_t atNs,
                  ViolationLog& log);
    void onNoAnswer(std::uint64_t local, const std::string& why, std::int64_t atNs, ViolationLog& log);

    /// After the run: compares with the upstream's executions of these keys (`executions[local]`).
    void checkExecutions(const std::vector<std::uint32_t>& executions, bool countsComplete, ViolationLog& log,
                         std::uint64_t& keysWithAnswer) const;

private:
    struct State {
        std::uint64_t hash = 0;    ///< of the first 2xx body
        std::uint32_t length = 0;  ///< its length
        std::uint16_t status = 0;  ///< its status; 0: no 2xx yet
        std::uint8_t sent = 0;     ///< requests sent (saturates)
        std::uint8_t flags = 0;
    };
    static_assert(sizeof(State) == 16);
    static constexpr std::uint8_t kSent0 = 1, kSent1 = 2, kOkVariant1 = 4, kFresh = 8;

    const Options& options_;
    const Workload& workload_;
    int thread_;
    int threads_;
    std::vector<State> states_;
    std::string scratch_;
};

/// What GET /__stats on the mock upstream says about this run's keys.
struct UpstreamCounts {
    std::uint64_t total = 0;        ///< executions of every key (also other runs')
    std::uint64_t untracked = 0;    ///< executions the mock could not attribute (past its --max-keys)
    std::uint64_t ours = 0;         ///< executions of this run's keys
    std::uint64_t foreignKeys = 0;  ///< keys not from this run
    /// Per thread: executions per local key index.
    std::vector<std::vector<std::uint32_t>> perThread;
};

/// One HTTP exchange on a fresh blocking connection (Connection: close); returns status and body.
std::expected<std::pair<int, std::string>, std::string> simpleRequest(const Endpoint& endpoint,
                                                                     const std::string& method,
                                                                     const std::string& target, double timeoutSeconds);

/// Reads /__stats and sorts this run's keys into per-thread vectors of the given sizes.
std::expected<UpstreamCounts, std::string> readUpstreamCounts(const Endpoint& upstream, const Workload& workload,
                                                              int threads, const std::vector<std::uint64_t>& keysPerThread);

}  // namespace idem::load
