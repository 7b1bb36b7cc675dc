#include "gateway/io/Fiber.h"

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define IDEM_ASAN_FIBERS 1
#endif
#if defined(__SANITIZE_THREAD__)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
}
#define IDEM_TSAN_FIBERS 1
#endif

namespace idem::io {

namespace ctx = boost::context;

struct Fiber {
    Loop* loop = nullptr;
    ctx::fiber context;
    std::function<void()> fn;
    /// Nonzero while parked: the number of the current wait. Wakes carry the number they were meant
    /// for, so a late wake (timer and event at once, a notify after a timeout) is ignored.
    std::atomic<std::uint64_t> waitSeq{0};
    int revents = 0;          ///< result of the last fd wait (0: timed out or woken otherwise)
    Clock::time_point deadline;
    std::ptrdiff_t heapIndex = -1;  ///< position in the timer heap, -1 when not in it
    bool done = false;
    const void* stackBottom = nullptr;  ///< for the sanitizers' stack-switch annotations
    std::size_t stackSize = 0;
    void* asanFake = nullptr;
    void* tsanFiber = nullptr;
};

struct Loop::Impl {
    std::size_t stackSize;
    int epollFd = -1;
    int wakeFd = -1;  ///< eventfd: remote spawns and wakes are queued
    std::deque<Fiber*> ready;
    std::vector<Fiber*> timers;  ///< min-heap by deadline
    struct FdWait {
        Fiber* fiber = nullptr;
        std::uint64_t seq = 0;
        bool registered = false;  ///< in the epoll set (perhaps disarmed: EPOLLONESHOT)
        bool persistent = false;  ///< a Watch: edge-triggered, armed for good
        short events = 0;         ///< what the waiting fiber waits for (persistent only)
        int pending = 0;          ///< persistent: readiness seen with no fiber waiting for it (poll bits)
        std::uint64_t owner = 0;  ///< persistent by waitFd(..., owner): the owner's tag; 0 for a Watch
    };
    std::vector<FdWait> fds;  ///< indexed by descriptor
    std::uint64_t nextSeq = 0;
    std::vector<Fiber*> freeFibers;  ///< ended fibers, reused: late wakes may still point at them
    std::vector<std::unique_ptr<Fiber>> allFibers;
    ctx::fiber scheduler;  ///< inside a fiber: the way back to run()
    Fiber* current = nullptr;
    const void* threadStackBottom = nullptr;
    std::size_t threadStackSize = 0;
    void* tsanScheduler = nullptr;

    std::mutex remoteMutex;
    std::vector<std::pair<std::function<void()>, std::function<void()>>> remoteSpawns;  ///< fn, failed
    std::vector<std::pair<Fiber*, std::uint64_t>> remoteWakes;
    std::atomic<bool> stopRequested{false};

    /// Wakes the loop's epoll_wait (the eventfd). Any thread.
    void poke() {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(wakeFd, &one, sizeof one);
    }
    /// Queues work for the loop thread: `add` runs under remoteMutex; the loop is woken when the queues
    /// were empty (otherwise a wake-up is already on its way).
    template <class Add>
    void queueRemote(Add&& add) {
        bool first;
        {
            std::lock_guard lock(remoteMutex);
            first = remoteSpawns.empty() && remoteWakes.empty();
            add();
        }
        if (first) poke();
    }
    /// The table entry of `fd`, the table grown to hold it.
    FdWait& entry(int fd) {
        if (static_cast<std::size_t>(fd) >= fds.size()) fds.resize(std::max<std::size_t>(fd + 1, fds.size() * 2));
        return fds[static_cast<std::size_t>(fd)];
    }
    /// Puts `fd` in the epoll set with `ev`, or changes its registration if it is there already.
    bool addOrModify(int fd, epoll_event& ev) {
        return ::epoll_ctl(epollFd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
               (errno == EEXIST && ::epoll_ctl(epollFd, EPOLL_CTL_MOD, fd, &ev) == 0);
    }
};

namespace {

thread_local Loop* tCurrentLoop = nullptr;

/// protected_fixedsize_stack (mmap, guard page), remembering where the stack is for the sanitizers.
struct StackAllocator {
    ctx::protected_fixedsize_stack inner;
    Fiber* fiber;
    ctx::stack_context allocate() {
        ctx::stack_context s = inner.allocate();
        fiber->stackBottom = static_cast<char*>(s.sp) - s.size;
        fiber->stackSize = s.size;
        return s;
    }
    void deallocate(ctx::stack_context& s) noexcept { inner.deallocate(s); }
};

int pollWait(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        int timeout = -1;
        if (deadline != Clock::time_point::max()) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
            timeout = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 3'600'000));
        }
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, timeout);
        if (rc > 0) return p.revents;
        if (rc < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (deadline == Clock::time_point::max() || Clock::now() >= deadline) return 0;
    }
}

std::uint32_t toEpoll(short events) {
    std::uint32_t e = EPOLLONESHOT | EPOLLRDHUP;
    if (events & POLLIN) e |= EPOLLIN;
    if (events & POLLOUT) e |= EPOLLOUT;
    return e;
}

int toPoll(std::uint32_t e) {
    int r = 0;
    if (e & EPOLLIN) r |= POLLIN;
    if (e & EPOLLOUT) r |= POLLOUT;
    if (e & EPOLLERR) r |= POLLERR;
    if (e & EPOLLHUP) r |= POLLHUP;
    if (e & EPOLLRDHUP) r |= POLLIN;  // the read side ended: a read returns 0
    return r == 0 ? POLLIN : r;
}

}  // namespace

bool inFiber() noexcept { return tCurrentLoop && tCurrentLoop->impl_->current; }

Loop* Loop::current() noexcept { return tCurrentLoop; }

Loop::Loop(std::size_t stackSize) : impl_(std::make_unique<Impl>()) {
    static std::atomic<std::size_t> created{0};
    index_ = created.fetch_add(1, std::memory_order_relaxed);
    impl_->stackSize = stackSize;
    impl_->epollFd = ::epoll_create1(EPOLL_CLOEXEC);
    if (impl_->epollFd < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    impl_->wakeFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (impl_->wakeFd < 0) {
        ::close(impl_->epollFd);
        throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ~std::uint64_t{0};
    ::epoll_ctl(impl_->epollFd, EPOLL_CTL_ADD, impl_->wakeFd, &ev);
}

Loop::~Loop() {
    ::close(impl_->wakeFd);
    ::close(impl_->epollFd);
}

void Loop::spawn(std::function<void()> fn, std::function<void()> failed) {
    if (tCurrentLoop == this) {
        start(fn, failed);
        return;
    }
    impl_->queueRemote([&] { impl_->remoteSpawns.emplace_back(std::move(fn), std::move(failed)); });
}

void Loop::stop() {
    impl_->stopRequested.store(true);
    impl_->poke();
}

void Loop::start(std::function<void()>& fn, std::function<void()>& failed) {
    Fiber* f = nullptr;
    try {
        f = newFiber(std::move(fn));  // leaves `fn` alone when it throws
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idemgate: cannot start a fiber: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "idemgate: cannot start a fiber\n");
    }
    if (f) {
        makeReady(f);
        return;
    }
    if (failed) failed();
}

Fiber* Loop::newFiber(std::function<void()>&& fn) {
    Fiber* f;
    if (!impl_->freeFibers.empty()) {
        f = impl_->freeFibers.back();
        impl_->freeFibers.pop_back();
    } else {
        impl_->allFibers.push_back(std::make_unique<Fiber>());
        f = impl_->allFibers.back().get();
    }
    f->loop = this;
    f->done = false;
    f->revents = 0;
    f->heapIndex = -1;
    f->waitSeq.store(0, std::memory_order_relaxed);
    Impl* impl = impl_.get();
    try {
        f->context = ctx::fiber(std::allocator_arg, StackAllocator{ctx::protected_fixedsize_stack(impl->stackSize), f},
                            [f, impl](ctx::fiber&& back) -> ctx::fiber {
#if IDEM_ASAN_FIBERS
                                __sanitizer_finish_switch_fiber(nullptr, &impl->threadStackBottom,
                                                                &impl->threadStackSize);
#endif
                                impl->scheduler = std::move(back);
                                try {
                                    f->fn();
                                } catch (const ctx::detail::forced_unwind&) {
                                    throw;  // a suspended fiber being destroyed: Boost unwinds its stack
                                } catch (const std::exception& e) {
                                    std::fprintf(stderr, "idemgate: a fiber ended with an exception: %s\n", e.what());
                                } catch (...) {
                                    std::fprintf(stderr, "idemgate: a fiber ended with an unknown exception\n");
                                }
                                f->fn = nullptr;
                                f->done = true;
#if IDEM_ASAN_FIBERS
                                __sanitizer_start_switch_fiber(nullptr, impl->threadStackBottom, impl->threadStackSize);
#endif
#if IDEM_TSAN_FIBERS
                                __tsan_switch_to_fiber(impl->tsanScheduler, 0);
#endif
                                return std::move(impl->scheduler);
                            });
    } catch (...) {
        impl_->freeFibers.push_back(f);  // `fn` stays with the caller
        throw;
    }
    f->fn = std::move(fn);
    live_.fetch_add(1, std::memory_order_relaxed);
#if IDEM_TSAN_FIBERS
    f->tsanFiber = __tsan_create_fiber(0);
#endif
    return f;
}

void Loop::resume(Fiber* f) {
    impl_->current = f;
#if IDEM_ASAN_FIBERS
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stackBottom, f->stackSize);
#endif
#if IDEM_TSAN_FIBERS
    __tsan_switch_to_fiber(f->tsanFiber, 0);
#endif
    f->context = std::move(f->context).resume();
#if IDEM_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    impl_->current = nullptr;
    if (f->done) {
#if IDEM_TSAN_FIBERS
        __tsan_destroy_fiber(f->tsanFiber);
        f->tsanFiber = nullptr;
#endif
        f->context = ctx::fiber();  // frees the stack
        impl_->freeFibers.push_back(f);
        live_.fetch_sub(1, std::memory_order_relaxed);
    }
}

void Loop::park(Fiber* f, Clock::time_point deadline) {
    if (deadline != Clock::time_point::max()) {
        f->deadline = deadline;
        heapPush(f);
    }
#if IDEM_ASAN_FIBERS
    __sanitizer_start_switch_fiber(&f->asanFake, impl_->threadStackBottom, impl_->threadStackSize);
#endif
#if IDEM_TSAN_FIBERS
    __tsan_switch_to_fiber(impl_->tsanScheduler, 0);
#endif
    impl_->scheduler = std::move(impl_->scheduler).resume();
#if IDEM_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(f->asanFake, &impl_->threadStackBottom, &impl_->threadStackSize);
#endif
}

void Loop::makeReady(Fiber* f) {
    f->waitSeq.store(0, std::memory_order_relaxed);
    if (f->heapIndex >= 0) heapRemove(f);
    impl_->ready.push_back(f);
}

void Loop::wake(Fiber* f, std::uint64_t seq) {
    if (tCurrentLoop == this) {
        if (f->waitSeq.load(std::memory_order_relaxed) == seq) {
            f->revents = 0;
            makeReady(f);
        }
        return;
    }
    impl_->queueRemote([&] { impl_->remoteWakes.emplace_back(f, seq); });
}

bool Loop::armFd(int fd, short events) {
    auto& entry = impl_->entry(fd);
    epoll_event ev{};
    ev.events = toEpoll(events);
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    // EPOLLONESHOT: one event per wait, then the descriptor is disarmed (not removed): the next wait
    // re-arms it with one epoll_ctl. A descriptor closed and reopened under the same number has left
    // the set with its close: MOD fails with ENOENT and it is added again.
    if (entry.registered) {
        if (::epoll_ctl(impl_->epollFd, EPOLL_CTL_MOD, fd, &ev) == 0) return true;
        if (errno != ENOENT) return false;
    }
    if (!impl_->addOrModify(fd, ev)) return false;
    entry.registered = true;
    return true;
}

void Loop::drainRemote() {
    std::vector<std::pair<std::function<void()>, std::function<void()>>> spawns;
    std::vector<std::pair<Fiber*, std::uint64_t>> wakes;
    {
        std::lock_guard lock(impl_->remoteMutex);
        spawns.swap(impl_->remoteSpawns);
        wakes.swap(impl_->remoteWakes);
    }
    for (auto& [fn, failed] : spawns) start(fn, failed);
    for (auto [f, seq] : wakes) {
        if (f->waitSeq.load(std::memory_order_relaxed) == seq) {
            f->revents = 0;
            makeReady(f);
        }
    }
}

void Loop::fireTimers(Clock::time_point now) {
    auto& heap = impl_->timers;
    while (!heap.empty() && heap.front()->deadline <= now) {
        Fiber* f = heap.front();
        f->revents = 0;
        makeReady(f);  // removes it from the heap
    }
}

int Loop::epollTimeout() const {
    if (!impl_->ready.empty()) return 0;
    if (impl_->timers.empty()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(impl_->timers.front()->deadline - Clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 3'600'000));
}

void Loop::run() {
    if (tCurrentLoop) throw std::logic_error("io::Loop::run on a thread that already runs a loop");
    tCurrentLoop = this;
#if IDEM_TSAN_FIBERS
    impl_->tsanScheduler = __tsan_get_current_fiber();
#endif
    epoll_event events[256];
    for (;;) {
        drainRemote();
        // Fibers made ready while this batch runs wait for the next round, after the events.
        for (std::size_t n = impl_->ready.size(); n > 0 && !impl_->ready.empty(); --n) {
            Fiber* f = impl_->ready.front();
            impl_->ready.pop_front();
            resume(f);
        }
        if (impl_->stopRequested.load() && live_.load(std::memory_order_relaxed) == 0) {
            std::lock_guard lock(impl_->remoteMutex);
            if (impl_->remoteSpawns.empty()) break;
            continue;
        }
        const int n = ::epoll_wait(impl_->epollFd, events, 256, epollTimeout());
        if (n < 0 && errno != EINTR) {
            std::fprintf(stderr, "idemgate: epoll_wait failed: %s\n", std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        for (int i = 0; i < n; ++i) {
            const std::uint64_t key = events[i].data.u64;
            if (key == ~std::uint64_t{0}) {
                std::uint64_t count;
                [[maybe_unused]] const ssize_t r = ::read(impl_->wakeFd, &count, sizeof count);
                continue;
            }
            auto& w = impl_->fds[key];
            Fiber* f = w.fiber;
            const bool waiting = f && f->waitSeq.load(std::memory_order_relaxed) == w.seq;
            if (w.persistent) {
                const int ready = toPoll(events[i].events);
                if (waiting && (ready & w.events)) {
                    makeReady(f);
                    f->revents = ready & w.events;
                    w.pending = ready & ~w.events;
                    w.fiber = nullptr;
                } else {
                    w.pending |= ready;
                }
                continue;
            }
            if (waiting) {
                makeReady(f);
                f->revents = toPoll(events[i].events);
            }
            w.fiber = nullptr;
        }
        if (!impl_->timers.empty()) fireTimers(Clock::now());
    }
    tCurrentLoop = nullptr;
}

// ---- timer heap

void Loop::heapSwap(std::size_t a, std::size_t b) {
    auto& h = impl_->timers;
    std::swap(h[a], h[b]);
    h[a]->heapIndex = static_cast<std::ptrdiff_t>(a);
    h[b]->heapIndex = static_cast<std::ptrdiff_t>(b);
}

void Loop::siftUp(std::size_t i) {
    auto& h = impl_->timers;
    while (i > 0) {
        const std::size_t parent = (i - 1) / 2;
        if (h[parent]->deadline <= h[i]->deadline) break;
        heapSwap(i, parent);
        i = parent;
    }
}

void Loop::siftDown(std::size_t i) {
    auto& h = impl_->timers;
    for (;;) {
        std::size_t smallest = i;
        const std::size_t l = 2 * i + 1, r = 2 * i + 2;
        if (l < h.size() && h[l]->deadline < h[smallest]->deadline) smallest = l;
        if (r < h.size() && h[r]->deadline < h[smallest]->deadline) smallest = r;
        if (smallest == i) return;
        heapSwap(i, smallest);
        i = smallest;
    }
}

void Loop::heapPush(Fiber* f) {
    auto& h = impl_->timers;
    f->heapIndex = static_cast<std::ptrdiff_t>(h.size());
    h.push_back(f);
    siftUp(h.size() - 1);
}

void Loop::heapRemove(Fiber* f) {
    auto& h = impl_->timers;
    const auto i = static_cast<std::size_t>(f->heapIndex);
    const std::size_t last = h.size() - 1;
    if (i != last) heapSwap(i, last);
    h.pop_back();
    f->heapIndex = -1;
    if (i < h.size()) {
        siftDown(i);
        siftUp(i);
    }
}

// ---- waits

int waitFd(int fd, short events, Clock::time_point deadline) { return waitFd(fd, events, deadline, 0); }

std::uint64_t newFdOwner() noexcept {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
}

int waitFd(int fd, short events, Clock::time_point deadline, std::uint64_t owner) {
    Loop* loop = tCurrentLoop;
    if (!loop || !loop->impl_->current) return pollWait(fd, events, deadline);
    if (fd < 0 || deadline <= Clock::now()) return pollWait(fd, events, Clock::time_point{});  // look once
    auto& impl = *loop->impl_;
    Fiber* f = impl.current;
    const short wanted = static_cast<short>(events | POLLERR | POLLHUP);
    if (static_cast<std::size_t>(fd) < impl.fds.size() && impl.fds[fd].persistent && impl.fds[fd].owner != owner &&
        (owner != 0 || impl.fds[fd].owner != 0)) {
        // Another owner's registration: its descriptor was closed (which took it out of the epoll set) and
        // the number reused. Forgotten here; registered afresh below.
        impl.fds[fd] = {};
    }
    if (owner != 0 && !impl.entry(fd).persistent) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = static_cast<std::uint64_t>(fd);
        if (impl.addOrModify(fd, ev)) {
            auto& entry = impl.fds[fd];
            entry = {};
            entry.registered = true;
            entry.persistent = true;
            entry.owner = owner;
        }
        // else: not pollable by epoll; the one-shot path below falls back to poll(2)
    }
    if (static_cast<std::size_t>(fd) < impl.fds.size() && impl.fds[fd].persistent) {
        // Edge-triggered: readiness that arrived before this wait was kept in `pending`.
        auto& entry = impl.fds[fd];
        if (const int ready = entry.pending & wanted) {
            entry.pending &= ~ready;
            return ready;
        }
        entry.events = wanted;
    } else if (!loop->armFd(fd, events)) {
        return pollWait(fd, events, Clock::time_point{});  // not pollable by epoll
    }
    const std::uint64_t seq = ++impl.nextSeq;
    f->waitSeq.store(seq, std::memory_order_relaxed);
    f->revents = 0;
    impl.fds[fd].fiber = f;
    impl.fds[fd].seq = seq;
    loop->park(f, deadline);
    if (f->revents != 0) return f->revents;
    // Timed out: no event will claim this wait. The timer may have fired before the event was seen (the
    // process was stopped, or the loop was busy past the deadline): look once more, so that data that
    // is there is never reported as a timeout.
    if (impl.fds[fd].seq == seq) impl.fds[fd].fiber = nullptr;
    return pollWait(fd, events, Clock::time_point{});
}

void sleepUntil(Clock::time_point deadline) {
    Loop* loop = tCurrentLoop;
    if (!loop || !loop->impl_->current) {
        std::this_thread::sleep_until(deadline);
        return;
    }
    if (deadline <= Clock::now()) return;
    Fiber* f = loop->impl_->current;
    f->waitSeq.store(++loop->impl_->nextSeq, std::memory_order_relaxed);
    loop->park(f, deadline);
}

// ---- Watch

Watch::Watch(int fd) : fd_(fd) {
    Loop* loop = tCurrentLoop;
    if (!loop || !loop->impl_->current || fd < 0) return;
    auto& impl = *loop->impl_;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    if (!impl.addOrModify(fd, ev)) return;  // waits fall back to one-shot registrations
    auto& entry = impl.entry(fd);
    entry = {};
    entry.registered = true;
    entry.persistent = true;
    loop_ = loop;
}

Watch::~Watch() {
    if (!loop_) return;
    auto& impl = *loop_->impl_;
    ::epoll_ctl(impl.epollFd, EPOLL_CTL_DEL, fd_, nullptr);
    impl.fds[fd_] = {};
}

// ---- CondVar

struct CondVar::Waiter {
    Waiter* next = nullptr;
    Waiter* prev = nullptr;
    bool notified = false;
    Fiber* fiber = nullptr;  ///< a parked fiber, or nullptr: a thread waiting on `cv`
    std::uint64_t seq = 0;
    std::condition_variable cv;
};

std::cv_status CondVar::wait_until(std::unique_lock<std::mutex>& lock, Clock::time_point deadline) {
    Waiter w;
    Loop* loop = tCurrentLoop;
    const bool onFiber = loop && loop->impl_->current;
    std::unique_lock mine(mutex_);
    if (onFiber) {
        w.fiber = loop->impl_->current;
        w.seq = ++loop->impl_->nextSeq;
        w.fiber->waitSeq.store(w.seq, std::memory_order_relaxed);
    }
    w.prev = tail_;
    (tail_ ? tail_->next : head_) = &w;
    tail_ = &w;
    lock.unlock();
    if (onFiber) {
        mine.unlock();
        loop->park(w.fiber, deadline);
        mine.lock();
    } else if (deadline == Clock::time_point::max()) {
        w.cv.wait(mine, [&] { return w.notified; });
    } else {
        w.cv.wait_until(mine, deadline, [&] { return w.notified; });
    }
    const bool notified = w.notified;
    if (!notified) {  // timed out: still listed
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
    }
    mine.unlock();
    lock.lock();
    return notified ? std::cv_status::no_timeout : std::cv_status::timeout;
}

void CondVar::notify_one() {
    std::lock_guard mine(mutex_);
    Waiter* w = head_;
    if (!w) return;
    head_ = w->next;
    (head_ ? head_->prev : tail_) = nullptr;
    w->notified = true;
    // Under mutex_: the waiter cannot return (and its Waiter cannot go away) before this is done.
    if (w->fiber) w->fiber->loop->wake(w->fiber, w->seq);
    else w->cv.notify_one();
}

void CondVar::notify_all() {
    std::lock_guard mine(mutex_);
    while (Waiter* w = head_) {
        head_ = w->next;
        w->notified = true;
        if (w->fiber) w->fiber->loop->wake(w->fiber, w->seq);
        else w->cv.notify_one();
    }
    tail_ = nullptr;
}

}  // namespace idem::io
