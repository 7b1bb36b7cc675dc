#pragma once
// Internal to the Redis stores: a bounded pool of connections to one Redis node.
//
// Contract:
//  - At most `size` connections exist at once (idle + lent out). acquire() reuses an idle connection, opens
//    a new one when under the bound (lazily: nothing is opened before the first acquire), or waits for a
//    return at most until the given deadline, then fails with Unavailable.
//  - A connection whose peer closed it while idle (Redis restarted) is discarded on acquire, and a
//    connection that saw any transport failure is discarded on return: neither is ever reused. Because
//    connects are lazy, the pool recovers by itself when the node comes back.
//  - A failed connect is Unavailable; it frees its slot at once.
//
// Thread-safety: all members are safe to call from many threads. A Lease is owned by one thread.

#include "storage/RedisConnection.h"

#include <chrono>
#include "gateway/io/Fiber.h"

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace idem::storage {

class RedisPool : public std::enable_shared_from_this<RedisPool> {
public:
    using Clock = std::chrono::steady_clock;

    /// Exclusive use of one pooled connection; returns it to the pool (or drops it if broken) on destruction.
    class Lease {
    public:
        Lease() = default;
        Lease(Lease&&) noexcept = default;
        Lease& operator=(Lease&& other) noexcept;
        ~Lease();
        RedisConnection& operator*() const { return *conn_; }
        RedisConnection* operator->() const { return conn_.get(); }

    private:
        friend class RedisPool;
        Lease(std::shared_ptr<RedisPool> pool, std::unique_ptr<RedisConnection> conn)
            : pool_(std::move(pool)), conn_(std::move(conn)) {}
        void giveBack();
        std::shared_ptr<RedisPool> pool_;
        std::unique_ptr<RedisConnection> conn_;
    };

    static std::shared_ptr<RedisPool> create(RedisEndpoint endpoint, RedisConnectionOptions options, std::size_t size);

    /// A connection, waiting for a free one at most until `deadline`. The connect itself is bounded by
    /// min(connectTimeout, time left).
    Result<Lease> acquire(Clock::time_point deadline);

    const RedisEndpoint& endpoint() const { return endpoint_; }
    const RedisConnectionOptions& options() const { return options_; }

private:
    RedisPool(RedisEndpoint endpoint, RedisConnectionOptions options, std::size_t size);
    void giveBack(std::unique_ptr<RedisConnection> conn);

    const RedisEndpoint endpoint_;
    const RedisConnectionOptions options_;
    const std::size_t size_;
    std::mutex mutex_;
    io::CondVar freed_;  ///< fibers and threads wait here for a connection
    std::vector<std::unique_ptr<RedisConnection>> idle_;
    std::size_t total_ = 0;  ///< idle + lent out + being opened
};

}  // namespace idem::storage
