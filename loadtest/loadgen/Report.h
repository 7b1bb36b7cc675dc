// The outcome of a run, and its three renderings: a text summary, a JSON document and an SVG
// latency-percentile plot.
#pragma once

#include "Histogram.h"
#include "Options.h"
#include "Verifier.h"
#include "Worker.h"

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace idem::load {

struct RunResult {
    const Options* options = nullptr;
    std::string keyPrefix;
    int threads = 0;
    bool interrupted = false;
    double seconds = 0;                       ///< measured phase: start to last answer
    std::uint64_t answered = 0;
    Histogram histogram;
    std::map<int, std::uint64_t> statuses;
    std::map<int, std::uint64_t> warmStatuses;
    ErrorCounts errors;
    std::vector<std::uint64_t> perConnection;  ///< measured answers per connection slot
    std::uint64_t newKeys = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t burstCopies = 0;
    std::uint64_t bursts = 0;
    std::uint64_t conflicts = 0;
    std::uint64_t warmKeys = 0;

    struct Verification {
        bool ran = false;
        bool ok = false;
        ViolationLog violations;
        std::uint64_t keysChecked = 0;        ///< keys this run sent
        std::uint64_t keysWithAnswer = 0;     ///< keys with at least one 2xx
        std::uint64_t executions = 0;         ///< upstream executions of this run's keys
        std::uint64_t upstreamTotal = 0;
        std::uint64_t untracked = 0;
        std::uint64_t foreignKeys = 0;
        std::string hint;
    } verify;

    double throughput() const { return seconds > 0 ? static_cast<double>(answered) / seconds : 0; }
};

void printSummary(std::FILE* out, const RunResult& result);
bool writeJson(const std::string& path, const RunResult& result, std::string& error);
bool writePlot(const std::string& path, const RunResult& result, std::string& error);

}  // namespace idem::load
