// Everything the mock remembers between requests, shared by all handler threads. Each part
// guards itself; reset() clears all of it (the payment-id counter keeps counting).
#pragma once

#include "Answer.h"
#include "DedupeMemory.h"
#include "ExecutionCounter.h"
#include "Options.h"
#include "RequestLog.h"
#include "ScriptBook.h"
#include "StopSignal.h"

#include <atomic>

namespace idem::mock {

struct MockState {
    static constexpr std::size_t kLogCapacity = 10'000;

    MockState(const Options& opts, StopSignal& stopSignal)
        : options(opts), stop(stopSignal), counter(opts.maxKeys), log(kLogCapacity)
    {
    }

    void reset()
    {
        counter.clear();
        log.clear();
        dedupe.clear();
        scripts.clear();
        healthStatus.store(200, std::memory_order_relaxed);
    }

    const Options& options;
    StopSignal& stop;
    ExecutionCounter counter;
    RequestLog log;
    ScriptBook scripts;
    DedupeMemory dedupe;
    AnswerBuilder answers;
    std::atomic<int> healthStatus{200};  // what GET /__health answers; set by POST /__health?status=N
};

}  // namespace idem::mock
