// io::Loop, fibers and their waits (gateway/io/Fiber.h): socketpairs and timers only, no network.
#include "gateway/io/Fiber.h"

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace idem::io;
using namespace std::chrono_literals;

namespace {

struct Pair {
    int a = -1, b = -1;
    Pair() {
        int fds[2];
        BOOST_REQUIRE_EQUAL(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        a = fds[0];
        b = fds[1];
    }
    ~Pair() {
        if (a >= 0) ::close(a);
        if (b >= 0) ::close(b);
    }
};

/// Runs `loop` on its own thread until stop() and the last fiber's end.
struct Runner {
    Loop loop;
    std::thread thread{[this] { loop.run(); }};
    ~Runner() {
        loop.stop();
        thread.join();
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fibers)

BOOST_AUTO_TEST_CASE(fibers_interleave_on_one_thread_and_run_ends_when_all_end) {
    Loop loop;
    std::vector<int> order;
    std::vector<std::thread::id> threads;
    for (int i = 0; i < 3; ++i) {
        loop.spawn([&, i] {
            threads.push_back(std::this_thread::get_id());
            BOOST_CHECK(inFiber());
            order.push_back(i);
            sleepFor(std::chrono::milliseconds(30 - 10 * i));  // later fibers wake first
            order.push_back(10 + i);
        });
    }
    loop.stop();  // run() still waits for the three
    BOOST_CHECK(!inFiber());
    loop.run();
    BOOST_CHECK_EQUAL(loop.fibers(), 0u);
    const std::vector<int> expected{0, 1, 2, 12, 11, 10};
    BOOST_CHECK_EQUAL_COLLECTIONS(order.begin(), order.end(), expected.begin(), expected.end());
    for (const auto& id : threads) BOOST_CHECK(id == std::this_thread::get_id());
}

BOOST_AUTO_TEST_CASE(wait_fd_parks_until_readable_and_times_out_otherwise) {
    Pair p;
    Loop loop;
    int gotReady = -1, gotTimeout = -1;
    Clock::duration waited{};
    loop.spawn([&] {
        const auto start = Clock::now();
        gotTimeout = waitFd(p.a, POLLIN, Clock::now() + 40ms);
        waited = Clock::now() - start;
        gotReady = waitFd(p.a, POLLIN, Clock::now() + 5s);
        char c;
        BOOST_CHECK_EQUAL(::read(p.a, &c, 1), 1);
        BOOST_CHECK_EQUAL(c, 'x');
    });
    loop.spawn([&] {
        sleepFor(100ms);
        BOOST_CHECK_EQUAL(::write(p.b, "x", 1), 1);
    });
    loop.stop();
    loop.run();
    BOOST_CHECK_EQUAL(gotTimeout, 0);
    BOOST_CHECK(waited >= 40ms);
    BOOST_CHECK(gotReady & POLLIN);
}

BOOST_AUTO_TEST_CASE(data_already_there_is_reported_without_waiting_for_more) {
    Pair p;
    BOOST_REQUIRE_EQUAL(::write(p.b, "y", 1), 1);
    Loop loop;
    int got = -1;
    loop.spawn([&] { got = waitFd(p.a, POLLIN, Clock::now() + 5s); });
    loop.stop();
    const auto start = Clock::now();
    loop.run();
    BOOST_CHECK(got & POLLIN);
    BOOST_CHECK(Clock::now() - start < 2s);
}

BOOST_AUTO_TEST_CASE(a_closed_peer_wakes_the_reader) {
    Pair p;
    Loop loop;
    int got = -1;
    loop.spawn([&] { got = waitFd(p.a, POLLIN, Clock::now() + 5s); });
    loop.spawn([&] {
        sleepFor(20ms);
        ::close(p.b);
        p.b = -1;
    });
    loop.stop();
    loop.run();
    BOOST_CHECK(got > 0);
    char c;
    BOOST_CHECK_EQUAL(::read(p.a, &c, 1), 0);
}

BOOST_AUTO_TEST_CASE(a_descriptor_number_reused_after_close_is_waited_on_again) {
    Loop loop;
    int rounds = 0;
    loop.spawn([&] {
        for (int i = 0; i < 5; ++i) {
            Pair p;  // the same numbers come back each round: the epoll set must not keep the old ones
            std::thread writer([&] {
                std::this_thread::sleep_for(5ms);
                BOOST_CHECK_EQUAL(::write(p.b, "z", 1), 1);
            });
            const int got = waitFd(p.a, POLLIN, Clock::now() + 5s);
            writer.join();
            if (got & POLLIN) ++rounds;
        }
    });
    loop.stop();
    loop.run();
    BOOST_CHECK_EQUAL(rounds, 5);
}

BOOST_AUTO_TEST_CASE(many_fibers_ping_pong_without_blocking_each_other) {
    constexpr int kFibers = 200, kRounds = 20;
    std::vector<std::unique_ptr<Pair>> pairs;
    for (int i = 0; i < kFibers; ++i) pairs.push_back(std::make_unique<Pair>());
    Loop loop;
    std::atomic<int> finished{0};
    for (int i = 0; i < kFibers; ++i) {
        Pair& p = *pairs[i];
        loop.spawn([&p, &finished] {  // server side: echo
            char c;
            for (int r = 0; r < kRounds; ++r) {
                if (waitFd(p.b, POLLIN, Clock::now() + 10s) <= 0 || ::read(p.b, &c, 1) != 1) return;
                if (::write(p.b, &c, 1) != 1) return;
            }
            ++finished;
        });
        loop.spawn([&p, &finished] {  // client side
            char c = 'a';
            for (int r = 0; r < kRounds; ++r) {
                if (::write(p.a, &c, 1) != 1) return;
                if (waitFd(p.a, POLLIN, Clock::now() + 10s) <= 0 || ::read(p.a, &c, 1) != 1) return;
            }
            ++finished;
        });
    }
    loop.stop();
    loop.run();
    BOOST_CHECK_EQUAL(finished.load(), 2 * kFibers);
}

BOOST_AUTO_TEST_CASE(a_watched_descriptor_keeps_readiness_that_arrives_between_waits) {
    Pair p;
    Loop loop;
    int rounds = 0, timeout = -1, lateData = -1;
    loop.spawn([&] {
        Watch watch(p.a);
        char buf[8];
        for (int i = 0; i < 50; ++i) {
            // Sometimes the byte is already there when the wait starts (kept from the edge), sometimes not.
            if (i % 2 == 0) BOOST_REQUIRE_EQUAL(::write(p.b, "w", 1), 1);
            else sleepFor(std::chrono::microseconds(200));
            if (i % 2 == 1) BOOST_REQUIRE_EQUAL(::write(p.b, "w", 1), 1);
            if (!(waitFd(p.a, POLLIN, Clock::now() + 5s) & POLLIN)) break;
            if (::read(p.a, buf, sizeof buf) != 1) break;
            ++rounds;
        }
        timeout = waitFd(p.a, POLLIN, Clock::now() + 20ms);  // nothing pending, nothing arrives
        // Written while nobody waits, after a timed-out wait: the next wait sees it at once.
        BOOST_REQUIRE_EQUAL(::write(p.b, "l", 1), 1);
        sleepFor(5ms);
        lateData = waitFd(p.a, POLLIN, Clock::now() + 5s);
    });
    loop.stop();
    loop.run();
    BOOST_CHECK_EQUAL(rounds, 50);
    BOOST_CHECK_EQUAL(timeout, 0);
    BOOST_CHECK(lateData & POLLIN);
}

namespace {

/// Runs `fn` on a fiber of `r` and waits for it to end.
void onLoop(Runner& r, const std::function<void()>& fn) {
    std::promise<void> done;
    r.loop.spawn([&] {
        fn();
        done.set_value();
    });
    done.get_future().wait();
}

/// Waits for a byte written by another thread after `delay`, with owner tag `owner`; reads it.
/// An early wake (readiness kept from an earlier use) is retried, as the owner-tagged waits allow.
bool waitForByte(const Pair& p, std::uint64_t owner, std::chrono::milliseconds delay) {
    bool wrote = false;  // no Boost.Test checks off the test's thread: they are not thread-safe
    std::thread writer([&] {
        std::this_thread::sleep_for(delay);
        wrote = ::write(p.b, "o", 1) == 1;
    });
    char c;
    bool got = false;
    const auto deadline = Clock::now() + 10s;
    while (!got && Clock::now() < deadline) {
        if (!(waitFd(p.a, POLLIN, deadline, owner) & POLLIN)) break;
        got = ::read(p.a, &c, 1) == 1;
    }
    writer.join();
    return got && wrote;
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_owned_descriptor_stays_registered_across_loops_and_its_number_is_reusable) {
    Runner one, two;
    const std::uint64_t owner = newFdOwner();
    BOOST_CHECK_NE(owner, 0u);
    BOOST_CHECK_NE(newFdOwner(), owner);
    auto p = std::make_unique<Pair>();
    const int number = p->a;
    int rounds = 0;
    // Used on one loop, then on the other, then on the first again (a pooled connection does this).
    for (Runner* r : {&one, &two, &one})
        onLoop(*r, [&] {
            for (int i = 0; i < 10; ++i) rounds += waitForByte(*p, owner, i % 2 ? 2ms : 0ms) ? 1 : 0;
        });
    BOOST_CHECK_EQUAL(rounds, 30);

    // Nothing arrives: the wait ends by its deadline (after at most an early wake from kept readiness).
    int quiet = -1;
    onLoop(one, [&] {
        const auto deadline = Clock::now() + 30ms;
        char c;
        do quiet = waitFd(p->a, POLLIN, deadline, owner);
        while (quiet > 0 && ::read(p->a, &c, 1) < 0 && Clock::now() < deadline);
    });
    BOOST_CHECK_EQUAL(quiet, 0);

    // Closed and the number reused: a plain wait and another owner's wait on it both see new data,
    // although the loops still hold the old owner's registration for that number.
    p.reset();
    Pair q;
    BOOST_CHECK_EQUAL(q.a, number);  // the lowest free number comes back
    // Each must be woken by the byte, not found by the last look at its deadline (10 s away): a stale
    // registration would leave the new descriptor out of the epoll set.
    bool plain = false, other = false;
    const auto started = Clock::now();
    onLoop(one, [&] {
        bool wrote = false;
        std::thread writer([&] {
            std::this_thread::sleep_for(5ms);
            wrote = ::write(q.b, "p", 1) == 1;
        });
        plain = (waitFd(q.a, POLLIN, Clock::now() + 10s) & POLLIN) != 0;
        writer.join();
        char c;
        plain = plain && wrote && ::read(q.a, &c, 1) == 1;
    });
    onLoop(two, [&] { other = waitForByte(q, newFdOwner(), 5ms); });
    BOOST_CHECK(plain);
    BOOST_CHECK(other);
    BOOST_CHECK(Clock::now() - started < 5s);
}

BOOST_AUTO_TEST_CASE(condvar_between_fibers_and_threads_in_both_directions) {
    std::mutex m;
    CondVar cv;
    int stage = 0;
    Runner r;
    // A fiber waits for a thread.
    std::atomic<bool> fiberSaw{false};
    r.loop.spawn([&] {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return stage >= 1; });
        fiberSaw = true;
        stage = 2;
        cv.notify_all();
    });
    std::this_thread::sleep_for(20ms);
    {
        std::lock_guard lock(m);
        stage = 1;
    }
    cv.notify_all();
    // The thread waits for the fiber.
    std::unique_lock lock(m);
    BOOST_CHECK(cv.wait_until(lock, Clock::now() + 5s, [&] { return stage == 2; }));
    BOOST_CHECK(fiberSaw.load());
}

BOOST_AUTO_TEST_CASE(condvar_wait_times_out_on_a_fiber_and_a_late_notify_is_harmless) {
    std::mutex m;
    CondVar cv;
    Loop loop;
    std::cv_status first = std::cv_status::no_timeout;
    bool secondNotified = false;
    loop.spawn([&] {
        std::unique_lock lock(m);
        first = cv.wait_until(lock, Clock::now() + 30ms);
        lock.unlock();
        cv.notify_all();  // nobody waits: nothing happens
        lock.lock();
        secondNotified = cv.wait_until(lock, Clock::now() + 5s, [&] { return secondNotified; });
    });
    loop.spawn([&] {
        sleepFor(80ms);
        std::lock_guard lock(m);
        secondNotified = true;
        cv.notify_one();
    });
    loop.stop();
    loop.run();
    BOOST_CHECK(first == std::cv_status::timeout);
    BOOST_CHECK(secondNotified);
}

BOOST_AUTO_TEST_CASE(condvar_hands_one_slot_at_a_time_to_many_waiters) {
    // A pool of two slots shared by fibers on two loops and by plain threads: never more than two
    // holders at once, everyone served.
    std::mutex m;
    CondVar cv;
    int free = 2, holding = 0, maxHolding = 0, served = 0;
    auto use = [&] {
        {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return free > 0; });
            --free;
            maxHolding = std::max(maxHolding, ++holding);
        }
        sleepFor(1ms);
        {
            std::lock_guard lock(m);
            ++free;
            --holding;
            ++served;
        }
        cv.notify_one();
    };
    {
        Runner a, b;
        for (int i = 0; i < 30; ++i) {
            a.loop.spawn(use);
            b.loop.spawn(use);
        }
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) threads.emplace_back(use);
        for (auto& t : threads) t.join();
    }
    BOOST_CHECK_EQUAL(served, 64);
    BOOST_CHECK_LE(maxHolding, 2);
}

BOOST_AUTO_TEST_CASE(an_exception_ends_only_its_fiber) {
    Loop loop;
    bool other = false;
    loop.spawn([] { throw std::runtime_error("boom (expected by the test)"); });
    loop.spawn([&] {
        sleepFor(5ms);
        other = true;
    });
    loop.stop();
    loop.run();
    BOOST_CHECK(other);
    BOOST_CHECK_EQUAL(loop.fibers(), 0u);
}

BOOST_AUTO_TEST_CASE(a_fiber_that_cannot_be_made_runs_its_failure_handler_instead) {
    Loop loop(std::size_t{1} << 47);  // a 128 TiB stack: more than the whole user address space
    std::atomic<int> ran{0}, failed{0};
    loop.spawn([&] { ++ran; }, [&] { ++failed; });
    std::thread other([&] { loop.spawn([&] { ++ran; }, [&] { ++failed; }); });  // queued from another thread
    other.join();
    loop.stop();
    loop.run();  // returns: the failed spawns left no fiber behind
    BOOST_CHECK_EQUAL(ran.load(), 0);
    BOOST_CHECK_EQUAL(failed.load(), 2);
    BOOST_CHECK_EQUAL(loop.fibers(), 0u);
}

BOOST_AUTO_TEST_CASE(a_loop_destroyed_before_it_ran_releases_its_fibers) {
    auto held = std::make_shared<int>(7);
    {
        Loop loop;
        loop.spawn([held] { BOOST_FAIL("never runs"); });
        std::thread other([&] { loop.spawn([held] { BOOST_FAIL("never runs"); }); });
        other.join();
        BOOST_CHECK_EQUAL(held.use_count(), 3);
    }
    BOOST_CHECK_EQUAL(held.use_count(), 1);  // both queued closures went with the loop
}

BOOST_AUTO_TEST_CASE(waits_off_a_fiber_block_the_thread) {
    Pair p;
    BOOST_CHECK(!inFiber());
    BOOST_CHECK_EQUAL(waitFd(p.a, POLLIN, Clock::now() + 20ms), 0);
    BOOST_REQUIRE_EQUAL(::write(p.b, "q", 1), 1);
    BOOST_CHECK(waitFd(p.a, POLLIN, Clock::now() + 1s) & POLLIN);
    const auto start = Clock::now();
    sleepFor(15ms);
    BOOST_CHECK(Clock::now() - start >= 15ms);
}

BOOST_AUTO_TEST_SUITE_END()
