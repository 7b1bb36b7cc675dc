// Process-wide stop flag that every sleeping or hanging handler can wait on, so a delayed or
// hung request never pins the process at exit. A pipe that becomes readable once and stays
// readable broadcasts the stop to any number of poll() waiters. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>

namespace idem::mock {

class StopSignal {
public:
    StopSignal();
    ~StopSignal();
    StopSignal(const StopSignal&) = delete;
    StopSignal& operator=(const StopSignal&) = delete;

    void requestStop();
    bool stopping() const { return stopping_.load(std::memory_order_acquire); }

    // Sleeps for d; returns true when woken early by a stop.
    bool waitFor(std::chrono::milliseconds d) const;

    // Blocks until the peer of socketFd closes or resets, or a stop is requested. Data the
    // peer sends meanwhile is read and dropped.
    void waitPeerGone(int socketFd) const;

private:
    int readFd_ = -1;
    int writeFd_ = -1;
    std::atomic<bool> stopping_{false};
};

}  // namespace idem::mock
