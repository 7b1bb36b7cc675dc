#include "storage/RedisPool.h"

#include <algorithm>

namespace idem::storage {

RedisPool::Lease& RedisPool::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        giveBack();
        pool_ = std::move(other.pool_);
        conn_ = std::move(other.conn_);
    }
    return *this;
}

RedisPool::Lease::~Lease() { giveBack(); }

void RedisPool::Lease::giveBack() {
    if (pool_ && conn_) pool_->giveBack(std::move(conn_));
    pool_.reset();
    conn_.reset();
}

std::shared_ptr<RedisPool> RedisPool::create(RedisEndpoint endpoint, RedisConnectionOptions options,
                                             std::size_t size) {
    return std::shared_ptr<RedisPool>(new RedisPool(std::move(endpoint), std::move(options), size));
}

RedisPool::RedisPool(RedisEndpoint endpoint, RedisConnectionOptions options, std::size_t size)
    : endpoint_(std::move(endpoint)), options_(std::move(options)), size_(std::max<std::size_t>(size, 1)) {}

Result<RedisPool::Lease> RedisPool::acquire(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    for (;;) {
        while (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            if (conn->peerClosed()) {  // closed while idle: drop it, its slot is free again
                --total_;
                continue;
            }
            return Lease(shared_from_this(), std::move(conn));
        }
        if (total_ < size_) break;
        if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() && total_ >= size_)
            return std::unexpected(StoreError{StoreError::Kind::Unavailable,
                                              "redis pool for " + endpoint_.str() + " exhausted: no free connection"});
    }
    ++total_;
    lock.unlock();

    auto options = options_;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    options.connectTimeout = std::clamp(left, std::chrono::milliseconds(1), options_.connectTimeout);
    auto conn = RedisConnection::open(endpoint_, options);
    if (!conn) {
        lock.lock();
        --total_;
        freed_.notify_one();
        return std::unexpected(conn.error());
    }
    return Lease(shared_from_this(), std::move(*conn));
}

void RedisPool::giveBack(std::unique_ptr<RedisConnection> conn) {
    std::lock_guard lock(mutex_);
    if (conn->broken()) {
        --total_;  // never reused: the next acquire opens a fresh one
    } else {
        idle_.push_back(std::move(conn));
    }
    freed_.notify_one();
}

}  // namespace idem::storage
