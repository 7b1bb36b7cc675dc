#include "gateway/http/UpstreamPool.h"

namespace idem::http {

UpstreamPool::UpstreamPool(std::size_t maxConnections, std::size_t maxIdle, std::chrono::milliseconds idleTimeout)
    : maxConnections_(std::max<std::size_t>(1, maxConnections)), maxIdle_(maxIdle), idleTimeout_(idleTimeout) {}

UpstreamPool::~UpstreamPool() = default;

void UpstreamPool::freeSlotLocked() {
    --open_;
    if (waiting_ > 0) slotFreed_.notify_one();
}

UpstreamPool::Acquired UpstreamPool::acquire(Deadline deadline, std::uint64_t generation,
                                             std::unique_ptr<UpstreamSocket>& socket) {
    std::unique_lock lock(mutex_);
    for (;;) {
        while (!idle_.empty()) {
            Idle entry = std::move(idle_.back());
            idle_.pop_back();
            const auto now = std::chrono::steady_clock::now();
            if (entry.generation != generation || now - entry.since > idleTimeout_) {
                freeSlotLocked();
                lock.unlock();
                entry.socket.reset();  // closed outside the lock
                lock.lock();
                continue;
            }
            lock.unlock();
            if (entry.socket->reusable()) {
                socket = std::move(entry.socket);
                return Acquired::Reused;
            }
            entry.socket.reset();
            lock.lock();
            freeSlotLocked();
        }
        if (open_ < maxConnections_) {
            ++open_;
            return Acquired::Connect;
        }
        ++waiting_;
        const bool signalled = slotFreed_.wait_until(lock, deadline, [&] { return open_ < maxConnections_ || !idle_.empty(); });
        --waiting_;
        if (!signalled) return Acquired::TimedOut;
    }
}

void UpstreamPool::release(std::unique_ptr<UpstreamSocket> socket, bool reusable, std::uint64_t generation) {
    std::unique_lock lock(mutex_);
    if (reusable && idle_.size() < maxIdle_) {
        idle_.push_back(Idle{std::move(socket), std::chrono::steady_clock::now(), generation});
        if (waiting_ > 0) slotFreed_.notify_one();
        return;
    }
    freeSlotLocked();
    lock.unlock();
    socket.reset();
}

void UpstreamPool::cancel() {
    std::lock_guard lock(mutex_);
    freeSlotLocked();
}

void UpstreamPool::sweep() {
    std::vector<std::unique_ptr<UpstreamSocket>> closing;
    {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        std::erase_if(idle_, [&](Idle& entry) {
            if (now - entry.since <= idleTimeout_) return false;
            closing.push_back(std::move(entry.socket));
            freeSlotLocked();
            return true;
        });
    }
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
