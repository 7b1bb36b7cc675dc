// One event-loop thread of the load generator: its share of the connections (non-blocking sockets,
// epoll, keep-alive, one request in flight per connection), its share of the key space, its histogram.
#pragma once

#include "Histogram.h"
#include "HttpResponse.h"
#include "Options.h"
#include "Verifier.h"
#include "Workload.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace idem::load {

std::int64_t monotonicNs();

/// State shared by all workers.
struct Shared {
    Shared(const Options& o, const Workload& w, int threadCount) : options(o), workload(w), threads(threadCount) {}
    const Options& options;
    const Workload& workload;
    int threads;
    std::atomic<std::uint64_t> reserved{0};        ///< measured requests handed out (for --requests)
    std::atomic<bool> interrupted{false};          ///< SIGINT/SIGTERM: stop issuing, drain, report
    std::atomic<int> warmedUp{0};                  ///< workers done with the --replay warm-up
    std::atomic<std::int64_t> startNs{0};          ///< start of the measured phase (0: not yet)
    std::atomic<std::uint64_t> warmAnswered{0};    ///< warm-up answers, for the progress line

    /// Reserves up to `want` measured requests; returns how many may be sent.
    std::uint64_t reserve(std::uint64_t want);
};

/// Request errors (each is one request that got no usable answer), plus connection-level counts.
struct ErrorCounts {
    std::uint64_t connect = 0;     ///< failed connection attempts (not requests)
    std::uint64_t closed = 0;      ///< the server closed or reset the connection before the answer
    std::uint64_t timeout = 0;     ///< no answer within --timeout
    std::uint64_t protocol = 0;    ///< a malformed response
    std::uint64_t unanswered = 0;  ///< still in flight when the run's drain time ran out
    std::uint64_t unsent = 0;      ///< open loop: scheduled but never sent before the end
    std::uint64_t reconnects = 0;  ///< keep-alive connections the server closed (not errors)
    std::uint64_t requestErrors() const { return closed + timeout + protocol + unanswered; }
    void add(const ErrorCounts& o);
};

class Worker {
public:
    Worker(Shared& shared, int index, std::vector<int> slots);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void run();

    // Live figures (read by the progress line while the worker runs).
    std::atomic<std::uint64_t> answered{0};        ///< measured answers
    std::atomic<std::uint64_t> failed{0};          ///< measured request errors
    std::atomic<std::uint64_t> non2xx{0};
    Histogram histogram;

    // Final figures (read after the thread has joined).
    std::array<std::uint64_t, 1000> statuses{};    ///< measured answers per status
    std::array<std::uint64_t, 1000> warmStatuses{};
    ErrorCounts errors;
    // What was sent in the measured phase.
    std::uint64_t newKeys = 0;                     ///< first requests for a new key
    std::uint64_t duplicates = 0;                  ///< requests reusing a key (burst copies excluded)
    std::uint64_t burstCopies = 0;                 ///< extra copies sent in bursts
    std::uint64_t bursts = 0;
    std::uint64_t conflicts = 0;                   ///< duplicates sent with the other payload
    std::int64_t lastAnswerNs = 0;
    std::vector<std::pair<int, std::uint64_t>> perConnection;  ///< slot -> measured answers
    ViolationLog violations;
    KeyBook& keys() { return book_; }
    std::uint64_t keysIssued() const { return book_.size(); }

private:
    struct Item {
        std::uint64_t local = 0;     ///< key index within this worker
        std::int64_t intended = 0;   ///< open loop: scheduled send time
        std::uint32_t group = 1;     ///< items that must leave together (a burst's first item: its size)
        std::uint8_t variant = 0;
        bool warm = false;
        enum class Kind : std::uint8_t { New, BurstFirst, BurstCopy, Duplicate } kind = Kind::New;
    };
    enum class ConnState { Closed, Connecting, Idle, Busy };
    struct Conn {
        int fd = -1;
        int slot = 0;
        std::size_t index = 0;     ///< in conns_ (the epoll tag)
        std::size_t target = 0;
        ConnState state = ConnState::Closed;
        std::int64_t retryAt = 0;
        bool inIdleList = false;
        bool wantWrite = false;
        std::string out;
        std::size_t outOffset = 0;
        std::string in;
        ResponseParser parser;
        Item item;
        std::int64_t sentNs = 0;
        std::uint64_t answered = 0;
    };
    enum class Phase { Warm, Measure };

    void setState(Conn& c, ConnState s);
    void connect(Conn& c, std::int64_t now);
    void reconnect(std::int64_t now);
    void finishConnect(Conn& c, std::int64_t now);
    void closeConn(Conn& c, std::int64_t retryAt);
    void makeIdle(Conn& c);
    Conn* popIdle();
    void dispatch(std::int64_t now);
    bool generate(std::int64_t intended, std::uint64_t& produced);
    void send(Conn& c, const Item& item, std::int64_t now);
    void flush(Conn& c, std::int64_t now);
    void onReadable(Conn& c, std::int64_t now);
    void complete(Conn& c, std::int64_t now);
    void fail(Conn& c, std::int64_t now, const std::string& why, std::uint64_t ErrorCounts::*counter);
    void schedule(std::int64_t now);
    void armTimer(std::int64_t at);
    void checkTimeouts(std::int64_t now);
    void setEvents(Conn& c, bool write);
    bool waitForWarmUp();
    void startMeasuring(std::int64_t start);

    Shared& shared_;
    const Options& options_;
    int index_;
    int epoll_ = -1;
    int timer_ = -1;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::deque<Conn*> idle_;       ///< FIFO, so that an open loop spreads requests over every connection
    std::size_t idleCount_ = 0;
    std::size_t busy_ = 0;
    std::size_t closed_ = 0;
    std::int64_t nextRetry_ = 0;   ///< earliest reconnect time of a closed connection
    std::unique_ptr<char[]> readBuffer_;
    std::deque<Item> pending_;
    std::vector<Item> batch_;
    KeyBook book_;
    std::uint64_t keyLimit_ = 0;   ///< keys this worker may create; UINT64_MAX when unbounded
    Random random_;
    Phase phase_ = Phase::Measure;
    bool stopIssuing_ = false;
    std::int64_t endNs_ = 0;       ///< end of the measured phase (0: no time bound)
    std::int64_t timeoutNs_ = 0;
    // Open loop.
    double intervalNs_ = 0;
    std::int64_t scheduleStart_ = 0;
    std::uint64_t slot_ = 0;
    std::int64_t nextIntended_ = 0;
    std::int64_t timerArmedFor_ = -1;
};

}  // namespace idem::load
