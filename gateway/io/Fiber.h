#pragma once
// Fibers on event loops: the native server's concurrency model.
//
// A Loop is one thread running many fibers (Boost.Context stacks) over one epoll set. Code on a fiber is
// written as blocking code; where it would block it calls the waits below, which park the fiber and
// let the loop run others until the descriptor is ready, the deadline passes or the fiber is notified.
// A switch between fibers is a few dozen instructions, so a proxied request costs no kernel context
// switch: that is the point of this file (issue 7).
//
// Every wait also works off a fiber (a plain thread: tests, the Poco engine, background threads): it
// then blocks the thread (poll(2), std::condition_variable, sleep). So libraries below the server
// (upstream client, Redis and PostgreSQL connections, pools) call these and run on either.
//
// Rules for code on a fiber: never block the thread in anything but these waits (a blocking syscall,
// a std::condition_variable or a long-held mutex stalls every fiber of the loop); never hold a mutex
// across a wait (another fiber of the same thread would deadlock on it); a descriptor is waited on by
// one fiber at a time.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace idem::io {

using Clock = std::chrono::steady_clock;

class Loop;
struct Fiber;

/// True on a fiber of a Loop.
bool inFiber() noexcept;

/// Waits until `fd` is ready for `events` (POLLIN and/or POLLOUT) or `deadline` passes. Returns the
/// poll(2) revents (> 0; POLLERR/POLLHUP included: the next I/O call tells what happened), 0 when the
/// deadline passed, -1 on a poll error (errno set). Clock::time_point::max() waits without bound.
int waitFd(int fd, short events, Clock::time_point deadline);

/// waitFd for a descriptor that a long-lived object owns and that is waited on again and again, perhaps
/// from fibers of different loops (a pooled upstream connection): the first wait on a loop puts `fd` in
/// that loop's epoll set edge-triggered for good, tagged with `owner` (a number no other descriptor
/// owner uses: see newFdOwner()), so later waits there cost no epoll_ctl. A registration whose tag is not
/// the caller's is taken as stale (its descriptor was closed, the number reused) and replaced. Readiness
/// kept from an earlier use can wake a wait early: callers retry their I/O and wait again on EAGAIN.
int waitFd(int fd, short events, Clock::time_point deadline, std::uint64_t owner);

/// A fresh, process-unique, nonzero owner tag for waitFd.
std::uint64_t newFdOwner() noexcept;

void sleepUntil(Clock::time_point deadline);
inline void sleepFor(Clock::duration d) { sleepUntil(Clock::now() + d); }

/// Keeps `fd` in the current loop's epoll set, edge-triggered, while the Watch lives: waits on it then
/// cost no epoll_ctl (others re-arm a one-shot registration per wait). For a descriptor that lives and
/// dies on one fiber, like a client connection; destroy the Watch before closing the descriptor. Off a
/// fiber it does nothing.
class Watch {
public:
    explicit Watch(int fd);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

private:
    Loop* loop_ = nullptr;
    int fd_;
};

/// A condition variable for a std::mutex that parks fibers and blocks threads; waiters of both kinds
/// may wait on one CondVar and be notified from any thread. Same contract as std::condition_variable
/// (spurious wakeups allowed: wait in a loop on a predicate).
class CondVar {
public:
    CondVar() = default;
    CondVar(const CondVar&) = delete;
    CondVar& operator=(const CondVar&) = delete;

    std::cv_status wait_until(std::unique_lock<std::mutex>& lock, Clock::time_point deadline);
    void wait(std::unique_lock<std::mutex>& lock) { wait_until(lock, Clock::time_point::max()); }
    template <class Predicate>
    bool wait_until(std::unique_lock<std::mutex>& lock, Clock::time_point deadline, Predicate ready) {
        while (!ready())
            if (wait_until(lock, deadline) == std::cv_status::timeout) return ready();
        return true;
    }
    template <class Predicate>
    void wait(std::unique_lock<std::mutex>& lock, Predicate ready) {
        while (!ready()) wait(lock);
    }
    void notify_one();
    void notify_all();

    struct Waiter;

private:
    std::mutex mutex_;
    Waiter* head_ = nullptr;  ///< FIFO, intrusive (waiters live on their waiting stacks)
    Waiter* tail_ = nullptr;
};

/// One thread's event loop and its fibers.
class Loop {
public:
    static constexpr std::size_t kDefaultStack = 256 * 1024;

    explicit Loop(std::size_t stackSize = kDefaultStack);
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    /// Runs `fn` on a new fiber of this loop. Thread-safe. An exception escaping `fn` is logged and
    /// ends only that fiber. When no fiber can be made (no memory for a stack, the process's map count
    /// reached), `failed` runs instead, on the loop thread, so that the caller can release what `fn`
    /// would have owned.
    void spawn(std::function<void()> fn, std::function<void()> failed = {});
    /// Runs the loop on the calling thread until stop() has been called and every fiber has ended.
    void run();
    /// Thread-safe. Fibers are not interrupted: run() returns once they have all ended.
    void stop();
    /// The loop of the calling thread, nullptr off a loop thread.
    static Loop* current() noexcept;
    /// A number unique to this loop among the process's loops (0, 1, 2, ... in construction order).
    std::size_t index() const noexcept { return index_; }
    /// Fibers alive (started and not ended). Any thread; a snapshot.
    std::size_t fibers() const noexcept { return live_.load(std::memory_order_relaxed); }

private:
    friend int waitFd(int, short, Clock::time_point);
    friend int waitFd(int, short, Clock::time_point, std::uint64_t);
    friend bool inFiber() noexcept;
    friend void sleepUntil(Clock::time_point);
    friend class CondVar;
    friend class Watch;

    Fiber* newFiber(std::function<void()>&& fn);
    void start(std::function<void()>& fn, std::function<void()>& failed);
    void resume(Fiber* f);
    /// Parks the current fiber until woken (fd event, timer, notify). `deadline` max = no timer.
    void park(Fiber* f, Clock::time_point deadline);
    void makeReady(Fiber* f);
    /// Wakes `f` if it still waits in the wait numbered `seq`. Any thread.
    void wake(Fiber* f, std::uint64_t seq);
    bool armFd(int fd, short events);
    void drainRemote();
    void fireTimers(Clock::time_point now);
    int epollTimeout() const;
    // Timers: an intrusive min-heap of parked fibers by deadline.
    void heapPush(Fiber* f);
    void heapRemove(Fiber* f);
    void heapSwap(std::size_t a, std::size_t b);
    void siftUp(std::size_t i);
    void siftDown(std::size_t i);

    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::atomic<std::size_t> live_{0};
    std::size_t index_;
};

}  // namespace idem::io
