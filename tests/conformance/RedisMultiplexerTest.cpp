// The Redis multiplexer (storage/RedisMultiplexer.h) against redis-servers of its own (RedisProcess; no CTest
// fixture needed): a lone caller goes straight out; many threads on a few pipelined connections each get
// their own reply, with batches really formed; a command that cannot be sent before its deadline fails
// unsent; a server killed (SIGKILL), paused (SIGSTOP) or reset under load gives every in-flight caller an
// error (never a wrong reply, never a hang), and the same multiplexer recovers when the server is back.
//
// Replies are checked exactly: ECHO of a value unique to the thread and call, INCR of a key per thread.
// Worker threads never call Boost.Test (not thread-safe): they count, and the main thread checks.

#define BOOST_TEST_MODULE redis_multiplexer
#include "tests/conformance/StoreConformanceSupport.h"

#include "storage/RedisConnection.h"
#include "storage/RedisMultiplexer.h"
#include "tests/conformance/RedisTestSupport.h"
#include "tests/support/FaultProxy.h"

#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace idem::test {
namespace {

using storage::RedisMultiplexer;
using Clock = RedisMultiplexer::Clock;
using Kind = StoreError::Kind;

constexpr Millis kConnect{300};
constexpr Millis kCommand{300};
constexpr Millis kSendWait{300};
// The longest a call may take when the server misbehaves: queue wait, a reconnect and one round trip, with
// room for a slow (sanitizer) build. A call that takes longer counts as a hang.
constexpr Millis kCallBound{4000};

std::unique_ptr<RedisMultiplexer> makeMux(std::uint16_t port, std::size_t connections) {
    storage::RedisConnectionOptions o;
    o.connectTimeout = kConnect;
    o.commandTimeout = kCommand;
    return std::make_unique<RedisMultiplexer>(storage::RedisEndpoint{"127.0.0.1", port}, o, connections);
}

storage::Result<storage::RedisReply> run(RedisMultiplexer& mux, const storage::RedisArgv& argv) {
    return mux.execute(argv, Clock::now() + kSendWait, kCommand);
}

/// A value unique to (thread, call), sometimes large enough to span several socket reads.
std::string uniqueValue(int thread, int call) {
    std::string v = "t" + std::to_string(thread) + ":c" + std::to_string(call) + ":";
    if (call % 17 == 0) v.append(std::size_t(20000 + 1000 * (thread % 7)), static_cast<char>('a' + thread % 26));
    return v;
}

/// The pid of the server behind `port` (INFO server), for signals the RedisProcess helper does not send.
pid_t serverPid(std::uint16_t port) {
    redistest::Admin admin(storage::RedisEndpoint{"127.0.0.1", port});
    const auto pid = admin.infoCounter("server", "process_id", "");
    if (pid <= 0) throw std::runtime_error("INFO server has no process_id");
    return static_cast<pid_t>(pid);
}

/// Counts of a load phase, filled by the worker threads.
struct Tally {
    std::atomic<long> ok{0}, wrong{0}, unavailable{0}, timeout{0}, otherError{0};
    std::atomic<long> slowestMs{0};

    void record(const storage::Result<storage::RedisReply>& r, const std::string& expected, Millis took) {
        long ms = took.count(), seen = slowestMs.load();
        while (ms > seen && !slowestMs.compare_exchange_weak(seen, ms)) {
        }
        if (r) {
            (r->isString() && r->str() == expected ? ok : wrong).fetch_add(1);
        } else if (r.error().kind == Kind::Unavailable) {
            unavailable.fetch_add(1);
        } else if (r.error().kind == Kind::Timeout) {
            timeout.fetch_add(1);
        } else {
            otherError.fetch_add(1);
        }
    }
    long errors() const { return unavailable.load() + timeout.load() + otherError.load(); }
};

/// `threads` threads ECHOing unique values through `mux` until `stop`; every reply goes to `*tally`
/// (switchable while they run, to separate the phases of a fault).
class Load {
public:
    Load(RedisMultiplexer& mux, int threads, std::atomic<Tally*>& tally) {
        for (int t = 0; t < threads; ++t) {
            workers_.emplace_back([this, &mux, &tally, t] {
                for (int call = 0; !stop_.load(); ++call) {
                    const auto value = uniqueValue(t, call);
                    const auto start = Clock::now();
                    auto r = run(mux, {"ECHO", value});
                    tally.load()->record(r, value, std::chrono::duration_cast<Millis>(Clock::now() - start));
                    if (!r) std::this_thread::sleep_for(Millis{2});  // do not spin on a dead server
                }
            });
        }
    }
    ~Load() { stop(); }
    void stop() {
        stop_.store(true);
        for (auto& w : workers_)
            if (w.joinable()) w.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::vector<std::thread> workers_;
};

/// Waits until `tally` has at least `n` good replies (or the bound passes).
bool waitForOk(const Tally& tally, long n, Millis bound = Millis{15000}) {
    const auto until = Clock::now() + bound;
    while (tally.ok.load() < n && Clock::now() < until) std::this_thread::sleep_for(Millis{10});
    return tally.ok.load() >= n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_multiplexer)

// Calls one at a time: each is its own round trip (nothing waits to be batched), all on the first connection.
BOOST_AUTO_TEST_CASE(lone_caller_goes_straight_out) {
    redistest::RedisProcess server;
    auto mux = makeMux(server.port(), 2);
    for (int i = 0; i < 50; ++i) {
        const auto value = uniqueValue(0, i);
        auto r = run(*mux, {"ECHO", value});
        BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
        BOOST_TEST((r->isString() && r->str() == value));
    }
    const auto s = mux->stats();
    BOOST_TEST(s.commands == 50u);
    BOOST_TEST(s.roundTrips == 50u);
    BOOST_TEST(s.connects == 1u);
    // Error replies are values, and leave the connection usable.
    auto err = run(*mux, {"NOSUCHCOMMAND", "x"});
    BOOST_REQUIRE(err.has_value());
    BOOST_TEST(err->isError());
    auto pong = run(*mux, {"PING"});
    BOOST_TEST((pong && pong->text() == "PONG"));
    BOOST_TEST(mux->stats().connects == 1u);
}

// 64 threads on 2 batching connections: every caller gets its own reply (ECHO of a unique value, INCR of its
// own key counting up from 1), commands really are batched (far fewer round trips than commands), and the
// server never sees more than the 2 + 2 connections.
BOOST_AUTO_TEST_CASE(concurrent_callers_each_get_their_own_reply) {
    redistest::RedisProcess server;
    auto mux = makeMux(server.port(), 2);
    constexpr int kThreads = 64, kCalls = 300;
    const std::string prefix = redistest::uniquePrefix();
    std::atomic<long> wrong{0}, failed{0}, ok{0};
    std::atomic<bool> go{false};
    std::string firstProblem;
    std::mutex problemMutex;
    const auto problem = [&](const std::string& what) {
        std::lock_guard lock(problemMutex);
        if (firstProblem.empty()) firstProblem = what;
    };
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                while (!go.load()) std::this_thread::yield();
                const std::string key = prefix + "counter:" + std::to_string(t);
                std::int64_t expected = 0;
                for (int call = 0; call < kCalls; ++call) {
                    if (call % 2 == 0) {
                        auto r = run(*mux, {"INCR", key});
                        if (!r) {
                            failed.fetch_add(1);
                            problem("INCR failed: " + r.error().message);
                        } else if (!r->isInteger() || r->integer() != ++expected) {
                            wrong.fetch_add(1);
                            problem("thread " + std::to_string(t) + " INCR answered " +
                                    (r->isInteger() ? std::to_string(r->integer()) : r->text()) + ", expected " +
                                    std::to_string(expected));
                        } else {
                            ok.fetch_add(1);
                        }
                    } else {
                        const auto value = uniqueValue(t, call);
                        auto r = run(*mux, {"ECHO", value});
                        if (!r) {
                            failed.fetch_add(1);
                            problem("ECHO failed: " + r.error().message);
                        } else if (!r->isString() || r->str() != value) {
                            wrong.fetch_add(1);
                            problem("thread " + std::to_string(t) + " got someone else's ECHO: " +
                                    r->text().substr(0, 40));
                        } else {
                            ok.fetch_add(1);
                        }
                    }
                }
            });
        }
        go.store(true);
    }
    BOOST_TEST(wrong.load() == 0, firstProblem);
    BOOST_TEST(failed.load() == 0, firstProblem);
    BOOST_TEST(ok.load() == long(kThreads) * kCalls);

    const auto s = mux->stats();
    BOOST_TEST_MESSAGE("commands " << s.commands << ", round trips " << s.roundTrips << ", connects "
                                   << s.connects);
    BOOST_TEST(s.commands == std::uint64_t(kThreads) * kCalls);
    BOOST_TEST(s.roundTrips * 2 < s.commands);  // commands met on a connection and went out together
    BOOST_TEST(s.connects >= 2u);
    BOOST_TEST(s.connects <= 4u);
    redistest::Admin admin(server.address());
    for (int t = 0; t < kThreads; ++t)
        BOOST_TEST(admin.text({"GET", prefix + "counter:" + std::to_string(t)}) == std::to_string(kCalls / 2));
    BOOST_TEST(admin.infoCounter("stats", "total_connections_received", "") <= 4 + 2);  // + PING at start, admin
}

// At low concurrency a call never waits: with one call in flight on a paused server, a second one goes out
// at once on the other connection. Once every connection is busy, a call queues, and if it cannot be sent
// before its deadline it fails with Unavailable at that deadline, unsent, while the calls in flight time out
// (Timeout); the next call reconnects.
BOOST_AUTO_TEST_CASE(command_not_sent_before_its_deadline_fails_unsent) {
    redistest::RedisProcess server;
    FaultProxy proxy("127.0.0.1", server.port());
    storage::RedisConnectionOptions o;
    o.connectTimeout = kConnect;
    o.commandTimeout = Millis{1500};
    RedisMultiplexer mux({"127.0.0.1", proxy.port()}, o, 1);  // 1 batching connection + 1 for low concurrency
    BOOST_REQUIRE_EQUAL(mux.connections(), 2u);
    const std::string key = redistest::uniquePrefix() + "unsent";
    BOOST_REQUIRE(run(mux, {"PING"}).has_value());

    proxy.setMode(FaultProxy::Mode::Blackhole);
    struct InFlight {
        storage::Result<storage::RedisReply> reply = std::unexpected(StoreError{Kind::Corrupt, "not run"});
        Millis took{0};
    };
    std::array<InFlight, 2> inFlight;
    std::vector<std::jthread> leaders;
    for (auto& f : inFlight) {
        leaders.emplace_back([&mux, &key, &f] {
            const auto start = Clock::now();
            f.reply = mux.execute({"INCR", key}, Clock::now() + Millis{5000}, Millis{1500});
            f.took = std::chrono::duration_cast<Millis>(Clock::now() - start);
        });
        std::this_thread::sleep_for(Millis{150});  // in flight by now
    }
    const auto start = Clock::now();
    auto queued = mux.execute({"INCR", key}, Clock::now() + Millis{200}, Millis{1500});
    const auto queuedTook = std::chrono::duration_cast<Millis>(Clock::now() - start);
    BOOST_TEST(!queued.has_value());
    BOOST_TEST((!queued && queued.error().kind == Kind::Unavailable));
    BOOST_TEST((!queued && queued.error().message.find("not sent") != std::string::npos),
               (queued ? "" : queued.error().message));
    BOOST_TEST(queuedTook.count() >= 190);
    BOOST_TEST(queuedTook.count() < 1000);  // its own deadline, not the round trip ahead of it
    leaders.clear();
    for (const auto& f : inFlight) {
        BOOST_TEST((!f.reply && f.reply.error().kind == Kind::Timeout),
                   (f.reply ? "answered" : f.reply.error().message));
        BOOST_TEST(f.took.count() >= 1400);
        BOOST_TEST(f.took.count() < 2500);  // the second did not wait for the first
    }

    proxy.setMode(FaultProxy::Mode::Pass);
    auto r = run(mux, {"INCR", key});
    BOOST_TEST((r && r->isInteger() && r->integer() == 1), (r ? r->text() : r.error().message));  // none arrived
    BOOST_TEST(mux.stats().connects == 3u);  // both timed-out connections were dropped
}

// Under load from 64 threads: the server is killed (SIGKILL), restarted, paused (SIGSTOP), resumed, and its
// connections are reset by a proxy. Every call returns within a bound, with its own reply or an error
// (never someone else's reply); errors do happen during each fault, and the same multiplexer serves every
// thread again afterwards.
BOOST_AUTO_TEST_CASE(faults_under_load_fail_in_flight_callers_and_recover) {
    redistest::RedisProcess server;
    FaultProxy proxy("127.0.0.1", server.port());
    auto mux = makeMux(proxy.port(), 2);
    Tally warm, killed, restarted, paused, resumed, reset, recovered;
    std::atomic<Tally*> tally{&warm};
    Load load(*mux, 64, tally);

    BOOST_REQUIRE(waitForOk(warm, 2000));

    // Killed.
    tally.store(&killed);
    ::kill(serverPid(server.port()), SIGKILL);
    std::this_thread::sleep_for(Millis{500});
    tally.store(&restarted);
    server.restart();
    BOOST_TEST(waitForOk(restarted, 2000));

    // Paused: in-flight callers time out, queued ones give up at their deadline.
    const pid_t pid = serverPid(server.port());
    tally.store(&paused);
    ::kill(pid, SIGSTOP);
    std::this_thread::sleep_for(Millis{1200});
    tally.store(&resumed);
    ::kill(pid, SIGCONT);
    BOOST_TEST(waitForOk(resumed, 2000));

    // Connections reset (a proxy in Refuse mode resets existing connections and refuses new ones).
    tally.store(&reset);
    proxy.setMode(FaultProxy::Mode::Refuse);
    std::this_thread::sleep_for(Millis{300});
    tally.store(&recovered);
    proxy.setMode(FaultProxy::Mode::Pass);
    BOOST_TEST(waitForOk(recovered, 2000));
    load.stop();

    struct Phase {
        const char* name;
        const Tally& t;
    };
    for (const Phase& p : {Phase{"warm", warm}, Phase{"killed", killed}, Phase{"restarted", restarted},
                           Phase{"paused", paused}, Phase{"resumed", resumed}, Phase{"reset", reset},
                           Phase{"recovered", recovered}}) {
        BOOST_TEST_MESSAGE(p.name << ": ok " << p.t.ok << ", unavailable " << p.t.unavailable << ", timeout "
                                  << p.t.timeout << ", other " << p.t.otherError << ", wrong " << p.t.wrong
                                  << ", slowest " << p.t.slowestMs << " ms");
        BOOST_TEST(p.t.wrong.load() == 0, p.name);
        BOOST_TEST(p.t.otherError.load() == 0, p.name);
        BOOST_TEST(p.t.slowestMs.load() < kCallBound.count(), p.name);
    }
    BOOST_TEST(killed.errors() > 0);
    BOOST_TEST(killed.unavailable.load() > 0);  // reset, closed or refused: Unavailable
    BOOST_TEST(paused.timeout.load() > 0);      // in flight on a paused server: Timeout
    BOOST_TEST(reset.unavailable.load() > 0);
    BOOST_TEST(recovered.ok.load() >= 2000);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace idem::test
