#include "gateway/http/UpstreamPool.h"

#include <algorithm>
#include <iterator>

namespace idem::http {

UpstreamPool::UpstreamPool(std::size_t maxConnections, std::size_t maxIdle, std::chrono::milliseconds idleTimeout)
    : maxConnections_(std::max<std::size_t>(1, maxConnections)), maxIdle_(maxIdle), idleTimeout_(idleTimeout) {}

UpstreamPool::~UpstreamPool() = default;

void UpstreamPool::freeSlotLocked() {
    if (!waiters_.empty()) {
        Waiter* w = waiters_.front();
        waiters_.pop_front();
        w->served = true;  // the slot moves to the waiter: open_ stays
        w->wake.notify_one();
        return;
    }
    --open_;
}

UpstreamPool::Acquired UpstreamPool::acquire(Deadline deadline, std::uint64_t generation,
                                             std::unique_ptr<UpstreamSocket>& socket) {
    std::unique_lock lock(mutex_);
    if (waiters_.empty()) {
        const io::Loop* here = io::Loop::current();
        while (!idle_.empty()) {
            // The most recent of this loop's, else the most recent of all.
            auto pick = std::prev(idle_.end());
            for (auto it = idle_.rbegin(); it != idle_.rend(); ++it)
                if (it->loop == here) {
                    pick = std::prev(it.base());
                    break;
                }
            Idle entry = std::move(*pick);
            idle_.erase(pick);
            const auto now = std::chrono::steady_clock::now();
            const bool fresh = entry.generation == generation && now - entry.since <= idleTimeout_;
            lock.unlock();
            if (fresh && entry.socket->reusable()) {
                socket = std::move(entry.socket);
                return Acquired::Reused;
            }
            entry.socket.reset();  // stale, expired or of old addresses: closed outside the lock
            lock.lock();
            // Its slot is ours now, unless someone started waiting meanwhile: then they come first.
            if (waiters_.empty()) return Acquired::Connect;
            freeSlotLocked();
        }
        if (waiters_.empty() && open_ < maxConnections_) {
            ++open_;
            return Acquired::Connect;
        }
    }

    Waiter me;
    waiters_.push_back(&me);
    while (!me.served) {
        if (me.wake.wait_until(lock, deadline) == std::cv_status::timeout && !me.served) {
            waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &me));
            return Acquired::TimedOut;
        }
    }
    lock.unlock();
    if (!me.socket) return Acquired::Connect;  // a slot was handed over
    if (me.generation == generation && me.socket->reusable()) {
        socket = std::move(me.socket);
        return Acquired::Reused;
    }
    me.socket.reset();  // not usable: connect afresh in its slot
    return Acquired::Connect;
}

void UpstreamPool::release(std::unique_ptr<UpstreamSocket> socket, bool reusable, std::uint64_t generation) {
    std::unique_lock lock(mutex_);
    if (!waiters_.empty()) {
        Waiter* w = waiters_.front();
        waiters_.pop_front();
        if (reusable) {
            w->socket = std::move(socket);
            w->generation = generation;
        }
        w->served = true;
        w->wake.notify_one();
        lock.unlock();
        socket.reset();  // not reusable: closed, and the waiter got its slot
        return;
    }
    if (reusable && idle_.size() < maxIdle_) {
        idle_.push_back(Idle{std::move(socket), std::chrono::steady_clock::now(), generation, io::Loop::current()});
        return;
    }
    --open_;
    lock.unlock();
    socket.reset();
}

void UpstreamPool::cancel() {
    std::lock_guard lock(mutex_);
    freeSlotLocked();
}

void UpstreamPool::sweep() {
    std::vector<std::unique_ptr<UpstreamSocket>> closing;  // closed after the lock is released
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(idle_, [&](Idle& entry) {
        if (now - entry.since <= idleTimeout_) return false;
        closing.push_back(std::move(entry.socket));
        freeSlotLocked();
        return true;
    });
}

std::size_t UpstreamPool::open() const {
    std::lock_guard lock(mutex_);
    return open_;
}

std::size_t UpstreamPool::idle() const {
    std::lock_guard lock(mutex_);
    return idle_.size();
}

}  // namespace idem::http
