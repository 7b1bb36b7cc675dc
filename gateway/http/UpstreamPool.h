#pragma once
// UpstreamPool: the keep-alive connections of one upstream endpoint (Poco 1.11 has no client pool).
//
//  - Bounded: at most maxConnections open at once (busy + idle); at most maxIdle kept idle.
//  - Reused most-recently-used first, preferring one last used on the caller's event loop (a socket
//    stays registered in the epoll set of each loop that waited on it: keeping it on one loop spares
//    the others its wake-ups); an idle connection is checked before reuse
//    (UpstreamSocket::reusable: a peer that closed it makes it readable) and dropped if stale, never
//    written to. Connections idle for idleTimeout are closed by sweep() (and skipped by acquire()).
//  - A request never waits unboundedly: when maxConnections are busy, acquire() waits until its
//    deadline and then reports TimedOut. Waiters are served first come, first served: a returned
//    connection (or a freed slot) goes straight to the oldest waiter, so a thread that returns a
//    connection and asks again at once cannot starve the ones already waiting.
//  - Connections belong to an address generation: after a DNS change, connections to the old addresses
//    are not reused.
//
// Thread-safety: every member may be called concurrently; sockets are closed outside the lock.

#include "gateway/http/UpstreamSocket.h"

#include <chrono>
#include "gateway/io/Fiber.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace idem::http {

class UpstreamPool {
public:
    UpstreamPool(std::size_t maxConnections, std::size_t maxIdle, std::chrono::milliseconds idleTimeout);
    ~UpstreamPool();
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    enum class Acquired {
        Reused,    ///< `socket` holds a live idle connection
        Connect,   ///< a slot is reserved: connect, then release() the socket, or cancel() if that failed
        TimedOut,  ///< maxConnections were busy until the deadline
    };

    Acquired acquire(Deadline deadline, std::uint64_t generation, std::unique_ptr<UpstreamSocket>& socket);

    /// Returns a connection (its slot too). Kept idle when `reusable`, of the current `generation`, and
    /// fewer than maxIdle are idle; closed otherwise.
    void release(std::unique_ptr<UpstreamSocket> socket, bool reusable, std::uint64_t generation);

    /// Frees a slot reserved by acquire() whose connect failed.
    void cancel();

    /// Closes connections idle for longer than idleTimeout.
    void sweep();

    std::size_t open() const;
    std::size_t idle() const;

private:
    struct Idle {
        std::unique_ptr<UpstreamSocket> socket;
        std::chrono::steady_clock::time_point since;
        std::uint64_t generation = 0;
        const io::Loop* loop = nullptr;  ///< the event loop that returned it (nullptr: a plain thread)
    };

    /// One acquire() waiting in line (lives on the waiting thread's stack).
    struct Waiter {
        io::CondVar wake;  ///< parks a fiber, blocks a thread
        bool served = false;                     ///< handed a connection or a slot
        std::unique_ptr<UpstreamSocket> socket;  ///< the connection handed over (else: a slot)
        std::uint64_t generation = 0;
    };

    /// A slot became free: it goes to the oldest waiter, or back to the pool.
    void freeSlotLocked();

    const std::size_t maxConnections_;
    const std::size_t maxIdle_;
    const std::chrono::milliseconds idleTimeout_;
    mutable std::mutex mutex_;
    std::vector<Idle> idle_;         ///< most recently returned last; empty while anyone waits
    std::deque<Waiter*> waiters_;    ///< oldest first
    std::size_t open_ = 0;           ///< busy + idle + reserved slots (handed-over slots included)
};

}  // namespace idem::http
