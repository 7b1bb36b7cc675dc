// idemgate-loadtest: load generator and at-most-once verifier for idemgate. See usageText() and
// loadtest/README.md.
#include "Options.h"
#include "Report.h"
#include "Verifier.h"
#include "Worker.h"
#include "Workload.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace idem::load {

namespace {

std::atomic<bool>* gInterrupted = nullptr;

// The first SIGINT/SIGTERM stops the run (answers in flight are awaited, the report is printed); a second
// one ends the process at once.
extern "C" void onSignal(int signal)
{
    if (gInterrupted == nullptr || gInterrupted->exchange(true)) {
        std::signal(signal, SIG_DFL);
        std::raise(signal);
    }
}

void installSignals(std::atomic<bool>& flag)
{
    gInterrupted = &flag;
    struct sigaction action{};
    action.sa_handler = onSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

void progressLine(double elapsed, const std::vector<std::unique_ptr<Worker>>& workers, std::uint64_t& lastAnswered,
                  double& lastElapsed, const Shared& shared, bool warm)
{
    if (warm) {
        std::fprintf(stderr, "[%6.1fs] warm-up: %llu of %llu keys sent once\n", elapsed,
                     static_cast<unsigned long long>(shared.warmAnswered.load()),
                     static_cast<unsigned long long>(shared.options.keys));
        return;
    }
    std::uint64_t answered = 0, failed = 0, non2xx = 0;
    Histogram merged;
    for (const auto& w : workers) {
        answered += w->answered.load(std::memory_order_relaxed);
        failed += w->failed.load(std::memory_order_relaxed);
        non2xx += w->non2xx.load(std::memory_order_relaxed);
        merged.add(w->histogram);
    }
    const double dt = elapsed - lastElapsed;
    const double rate = dt > 0 ? static_cast<double>(answered - lastAnswered) / dt : 0;
    std::fprintf(stderr, "[%6.1fs] %9.0f req/s  answered %llu  errors %llu  non-2xx %llu  p99 so far %.3f ms\n", elapsed,
                 rate, static_cast<unsigned long long>(answered), static_cast<unsigned long long>(failed),
                 static_cast<unsigned long long>(non2xx), static_cast<double>(merged.percentile(99)) / 1000.0);
    lastAnswered = answered;
    lastElapsed = elapsed;
}

int run(Options options)
{
    // Every thread needs at least one key of its own.
    if (options.keys > 0 && static_cast<std::uint64_t>(options.threads) > options.keys)
        options.threads = static_cast<int>(options.keys);
    const Workload workload(options);

    if (options.resetUpstream) {
        auto reset = simpleRequest(options.upstream, "POST", "/__reset", 10);
        if (!reset || reset->first != 200) {
            std::fprintf(stderr, "idemgate-loadtest: POST /__reset to %s failed: %s\n", options.upstream.text().c_str(),
                         reset ? ("status " + std::to_string(reset->first)).c_str() : reset.error().c_str());
            return 2;
        }
    }
    if (options.verify) {
        auto probe = simpleRequest(options.upstream, "GET", "/__stats?key=" + workload.prefix() + "-probe", 10);
        if (!probe || probe->first != 200) {
            std::fprintf(stderr, "idemgate-loadtest: --verify: cannot read GET /__stats from %s: %s\n",
                         options.upstream.text().c_str(),
                         probe ? ("status " + std::to_string(probe->first)).c_str() : probe.error().c_str());
            return 2;
        }
    }

    Shared shared(options, workload, options.threads);
    installSignals(shared.interrupted);
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < options.threads; ++t) {
        std::vector<int> slots;
        for (int s = t; s < options.connections; s += options.threads) slots.push_back(s);
        workers.push_back(std::make_unique<Worker>(shared, t, std::move(slots)));
    }

    const std::int64_t launched = monotonicNs();
    if (!options.replay) shared.startNs.store(launched);
    std::vector<std::string> failures(workers.size());
    std::atomic<int> running{static_cast<int>(workers.size())};
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < workers.size(); ++i) {
        threads.emplace_back([&, i] {
            try {
                workers[i]->run();
            } catch (const std::exception& e) {
                failures[i] = e.what();
                shared.interrupted.store(true);
            }
            running.fetch_sub(1);
        });
    }

    std::uint64_t lastAnswered = 0;
    double lastElapsed = 0;
    std::int64_t nextProgress = launched + 1'000'000'000;
    while (running.load() > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::int64_t now = monotonicNs();
        if (now < nextProgress) continue;
        nextProgress += 1'000'000'000;
        if (options.quiet) continue;
        const std::int64_t start = shared.startNs.load();
        const bool warm = start == 0;
        const double elapsed = static_cast<double>(now - (warm ? launched : start)) / 1e9;
        progressLine(elapsed, workers, lastAnswered, lastElapsed, shared, warm);
    }
    for (auto& t : threads) t.join();
    for (const auto& f : failures) {
        if (!f.empty()) {
            std::fprintf(stderr, "idemgate-loadtest: %s\n", f.c_str());
            return 2;
        }
    }

    RunResult result;
    result.options = &options;
    result.keyPrefix = workload.prefix();
    result.threads = options.threads;
    result.interrupted = shared.interrupted.load();
    const std::int64_t start = shared.startNs.load();
    std::int64_t lastAnswer = 0;
    std::vector<std::uint64_t> keysPerThread;
    result.perConnection.assign(static_cast<std::size_t>(options.connections), 0);
    for (const auto& w : workers) {
        result.answered += w->answered.load();
        result.histogram.add(w->histogram);
        for (int s = 0; s < 1000; ++s) {
            if (w->statuses[static_cast<std::size_t>(s)] != 0) result.statuses[s] += w->statuses[static_cast<std::size_t>(s)];
            if (w->warmStatuses[static_cast<std::size_t>(s)] != 0)
                result.warmStatuses[s] += w->warmStatuses[static_cast<std::size_t>(s)];
        }
        result.errors.add(w->errors);
        result.newKeys += w->newKeys;
        result.duplicates += w->duplicates;
        result.burstCopies += w->burstCopies;
        result.bursts += w->bursts;
        result.conflicts += w->conflicts;
        for (const auto& [slot, n] : w->perConnection) result.perConnection[static_cast<std::size_t>(slot)] = n;
        lastAnswer = std::max(lastAnswer, w->lastAnswerNs);
        keysPerThread.push_back(w->keysIssued());
        result.verify.violations.merge(w->violations);
    }
    if (options.replay) {
        for (const auto& [status, n] : result.warmStatuses) result.warmKeys += n;
    }
    if (start != 0) result.seconds = static_cast<double>(std::max(lastAnswer, start) - start) / 1e9;

    int exitCode = 0;
    if (options.verify) {
        auto& v = result.verify;
        v.ran = true;
        for (const auto n : keysPerThread) v.keysChecked += n;
        auto counts = readUpstreamCounts(options.upstream, workload, options.threads, keysPerThread);
        if (!counts) {
            v.violations.add(Violation::UpstreamStats, 0, counts.error());
        } else {
            v.executions = counts->ours;
            v.upstreamTotal = counts->total;
            v.untracked = counts->untracked;
            v.foreignKeys = counts->foreignKeys;
            if (counts->untracked > 0)
                v.violations.add(Violation::UpstreamStats, 0,
                                 "the upstream stopped counting keys one by one (" + std::to_string(counts->untracked) +
                                     " executions untracked: its --max-keys was reached); restart it or use --reset-upstream");
            for (std::size_t t = 0; t < workers.size(); ++t)
                workers[t]->keys().checkExecutions(counts->perThread[t], counts->untracked == 0, v.violations,
                                                   v.keysWithAnswer);
            if (counts->ours == 0 && v.keysWithAnswer > 0)
                v.hint = "the upstream saw none of this run's keys: the gateway route must forward the client's key "
                         "(forward_key: client), and --upstream must be the upstream the gateway forwards to";
        }
        v.ok = v.violations.total() == 0;
        if (!v.ok) exitCode = 1;
    }
    if (exitCode == 0 && result.answered == 0) exitCode = 3;

    std::fflush(stderr);
    printSummary(stdout, result);
    std::fflush(stdout);
    std::string error;
    if (!options.jsonPath.empty() && !writeJson(options.jsonPath, result, error)) {
        std::fprintf(stderr, "idemgate-loadtest: %s\n", error.c_str());
        if (exitCode == 0) exitCode = 2;
    }
    if (!options.plotPath.empty() && !writePlot(options.plotPath, result, error)) {
        std::fprintf(stderr, "idemgate-loadtest: %s\n", error.c_str());
        if (exitCode == 0) exitCode = 2;
    }
    return exitCode;
}

}  // namespace

}  // namespace idem::load

int main(int argc, char** argv)
{
    auto options = idem::load::parseOptions(argc, argv);
    if (!options) {
        std::fprintf(stderr, "idemgate-loadtest: %s\n\n%s", options.error().c_str(), idem::load::usageText());
        return 2;
    }
    if (options->help) {
        std::fputs(idem::load::usageText(), stdout);
        return 0;
    }
    try {
        return idem::load::run(std::move(*options));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idemgate-loadtest: %s\n", e.what());
        return 2;
    }
}
