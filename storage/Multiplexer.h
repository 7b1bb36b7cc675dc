#pragma once
// Internal to the stores: the leader/follower machinery that lets every thread and fiber share a few
// connections to one server, with the commands that meet on a connection pipelined into one write.
// The protocol side is a Session (one per connection slot); this file knows nothing of Redis or
// PostgreSQL. Used by RedisMultiplexer (Redis commands) and PgMultiplexer (prepared statements).
//
// Contract (each store's multiplexer header repeats what its callers rely on):
//  - execute() runs one command and returns the Session's reply for it.
//  - Leader/follower, no thread of its own. A caller that finds its channel idle becomes its leader and
//    sends its own command at once: a lone caller waits for nothing. Callers that arrive while a round trip
//    is in flight queue up. When the leader has its batch's replies, it hands the channel to the oldest
//    queued caller (which becomes the next leader and takes every command queued by then into ONE round
//    trip), then wakes each caller of its own batch with its reply, and returns its own. A leader never
//    serves a batch it did not take.
//  - Deadlines: a command waits in the queue at most until its `sendDeadline`; past it, it fails with
//    Session::notSent() and is never sent. Once sent, its wait is bounded by the Session's round trip, which
//    gets the longest `timeout` of the batch.
//  - Channels: `connections` (at least 1) batching ones, and as many again for low concurrency. While fewer
//    calls are pending than there are channels, a call takes the first idle one: at low concurrency no
//    command waits for another's round trip. Otherwise a call joins the batching channel with the fewest
//    pending calls. A caller on a fiber (io::Loop) uses only its loop's batching channel and that one's idle
//    twin, so that a batch holds fibers of one loop and its wake-ups cost no system call.
//
// Session requirements:
//    using Command; using Reply; struct Shared (options every session of the multiplexer reads);
//    explicit Session(const Shared&);
//    void run(Call<Session>* batch, Counters&): one round trip for the linked batch (Call::next), setting
//        every call's `result`; counts what it writes and opens; must not throw.
//    static Reply notSent(const Shared&): the reply of a command that waited past its sendDeadline.
//
// Thread-safety: execute() and stats() are safe to call from many threads. The destructor must not run while
// a call is in flight.

#include "gateway/io/Fiber.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace idem::storage::mux {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Counters {
    std::atomic<std::uint64_t> commands{0};    ///< commands written
    std::atomic<std::uint64_t> roundTrips{0};  ///< batches written
    std::atomic<std::uint64_t> connects{0};    ///< connections opened successfully
};

/// One call: queued, leading or in a batch. Lives on its caller's stack until execute() returns.
template <class Session>
struct Call {
    enum class Wake { None, Lead, Done };

    Call(const typename Session::Command& c, Clock::time_point deadline, milliseconds t)
        : command(&c), sendDeadline(deadline), timeout(t) {}

    const typename Session::Command* command;
    const Clock::time_point sendDeadline;
    const milliseconds timeout;
    // Written by the leader of the call's batch; read by the caller after Wake::Done (ordered by `m`).
    std::optional<typename Session::Reply> result;
    // Queue link and flag: guarded by the channel's mutex while queued; once a leader took the call into its
    // batch, `next` is read by that leader only.
    Call* next = nullptr;
    bool queued = false;
    // The caller's own wake-up: guarded by m. Set (and notified) with m held, so that the caller, which may
    // return and destroy this Call as soon as it sees the flag, never races the notification.
    std::mutex m;
    io::CondVar cv;  ///< parks a fiber, blocks a thread
    Wake wake = Wake::None;
};

template <class Session>
class Multiplexer {
public:
    using Command = typename Session::Command;
    using Reply = typename Session::Reply;
    using Shared = typename Session::Shared;

    struct Stats {
        std::uint64_t commands = 0;
        std::uint64_t roundTrips = 0;
        std::uint64_t connects = 0;
    };

    Multiplexer(Shared shared, std::size_t connections)
        : shared_(std::move(shared)), batching_(std::max<std::size_t>(connections, 1)) {
        channels_.reserve(2 * batching_);
        for (std::size_t i = 0; i < 2 * batching_; ++i) channels_.push_back(std::make_unique<Channel>(shared_));
    }
    Multiplexer(const Multiplexer&) = delete;
    Multiplexer& operator=(const Multiplexer&) = delete;

    Reply execute(const Command& command, Clock::time_point sendDeadline, milliseconds timeout) {
        Channel& channel = pick();
        struct Pending {
            std::atomic<std::size_t>& count;
            explicit Pending(std::atomic<std::size_t>& c) : count(c) { count.fetch_add(1, std::memory_order_relaxed); }
            ~Pending() { count.fetch_sub(1, std::memory_order_relaxed); }
        } pending(channel.pending);
        return channel.execute(command, sendDeadline, std::max(timeout, milliseconds(1)));
    }

    Stats stats() const {
        Stats s;
        for (const auto& c : channels_) {
            s.commands += c->counters.commands.load(std::memory_order_relaxed);
            s.roundTrips += c->counters.roundTrips.load(std::memory_order_relaxed);
            s.connects += c->counters.connects.load(std::memory_order_relaxed);
        }
        return s;
    }
    const Shared& shared() const { return shared_; }
    /// How many connections it may open: twice the batching ones.
    std::size_t connections() const { return channels_.size(); }

private:
    using CallT = Call<Session>;

    static void wake(CallT& call, typename CallT::Wake how) {
        std::lock_guard lock(call.m);
        call.wake = how;
        call.cv.notify_one();
    }

    /// One connection slot (its Session) and its queue.
    class alignas(64) Channel {
    public:
        explicit Channel(const Shared& shared) : shared_(shared), session_(shared) {}

        Reply execute(const Command& command, Clock::time_point sendDeadline, milliseconds timeout) {
            CallT call(command, sendDeadline, timeout);
            {
                std::unique_lock lock(mutex_);
                if (!busy_) {  // idle: this caller leads, and its command goes out now
                    busy_ = true;
                    lock.unlock();
                    return lead(call);
                }
                call.queued = true;
                (tail_ ? tail_->next : head_) = &call;
                tail_ = &call;
            }
            const auto woken = [&call] { return call.wake != CallT::Wake::None; };
            typename CallT::Wake how;
            {
                std::unique_lock lk(call.m);
                if (!call.cv.wait_until(lk, sendDeadline, woken)) {
                    lk.unlock();
                    {
                        std::lock_guard lock(mutex_);
                        if (call.queued) {  // nobody took it: it was never sent
                            unlinkLocked(call);
                            return Session::notSent(shared_);
                        }
                    }
                    // A leader took it (into its batch, or to lead): the wake-up is on its way, bounded by the
                    // round trip.
                    lk.lock();
                    call.cv.wait(lk, woken);
                }
                how = call.wake;
            }
            if (how == CallT::Wake::Lead) return lead(call);
            return std::move(*call.result);
        }

        std::atomic<std::size_t> pending{0};  ///< callers in execute() on this channel
        Counters counters;

    private:
        Reply lead(CallT& self) {
            {  // the batch: this call, then everything queued by now, in arrival order
                std::lock_guard lock(mutex_);
                self.next = head_;
                for (CallT* c = head_; c; c = c->next) c->queued = false;
                head_ = tail_ = nullptr;
            }
            session_.run(&self, counters);

            CallT* successor = nullptr;
            {
                std::lock_guard lock(mutex_);
                successor = head_;
                if (successor) {
                    head_ = successor->next;
                    if (!head_) tail_ = nullptr;
                    successor->queued = false;
                    successor->next = nullptr;
                } else {
                    busy_ = false;
                }
            }
            // Hand the channel on first, so that the next round trip overlaps the wake-ups below.
            if (successor) wake(*successor, CallT::Wake::Lead);
            for (CallT* c = self.next; c;) {
                CallT* next = c->next;  // read before the wake-up: the caller may return and destroy its Call
                wake(*c, CallT::Wake::Done);
                c = next;
            }
            return std::move(*self.result);
        }

        void unlinkLocked(CallT& call) {
            CallT* prev = nullptr;
            for (CallT* c = head_; c; prev = c, c = c->next) {
                if (c != &call) continue;
                (prev ? prev->next : head_) = c->next;
                if (tail_ == c) tail_ = prev;
                break;
            }
            call.queued = false;
            call.next = nullptr;
        }

        const Shared& shared_;
        std::mutex mutex_;   ///< guards busy_, the queue (head_, tail_, Call::next and Call::queued of queued calls)
        bool busy_ = false;  ///< a leader owns the channel; invariant: queue non-empty => busy_
        CallT* head_ = nullptr;
        CallT* tail_ = nullptr;
        Session session_;  ///< touched by the current leader only (leadership passes under mutex_)
    };

    Channel& pick() {
        // On a fiber: the loop's own pair of channels (batching channel index % connections, and its idle
        // twin), so that a batch's callers are fibers of one loop and their wake-ups cost no system call.
        if (const io::Loop* loop = io::inFiber() ? io::Loop::current() : nullptr) {
            Channel& batching = *channels_[loop->index() % batching_];
            Channel& twin = *channels_[loop->index() % batching_ + batching_];
            if (batching.pending.load(std::memory_order_relaxed) == 0) return batching;
            if (twin.pending.load(std::memory_order_relaxed) == 0) return twin;
            return batching;
        }
        // Fewer callers than channels: one channel at least is idle, take the first (a warm, recently used
        // one). Otherwise: the least busy of the batching channels (lowest index on ties).
        std::size_t total = 0;
        for (const auto& c : channels_) total += c->pending.load(std::memory_order_relaxed);
        const std::size_t n = total < channels_.size() ? channels_.size() : batching_;
        std::size_t best = 0;
        std::size_t bestPending = channels_[0]->pending.load(std::memory_order_relaxed);
        for (std::size_t i = 1; i < n && bestPending > 0; ++i) {
            const std::size_t p = channels_[i]->pending.load(std::memory_order_relaxed);
            if (p < bestPending) {
                best = i;
                bestPending = p;
            }
        }
        return *channels_[best];
    }

    const Shared shared_;
    const std::size_t batching_;  ///< channels_[0, batching_) take the load once every channel is busy
    std::vector<std::unique_ptr<Channel>> channels_;  ///< 2 * batching_
};

}  // namespace idem::storage::mux
