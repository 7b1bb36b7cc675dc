#include "storage/RedisMultiplexer.h"

#include "gateway/io/Fiber.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>

namespace idem::storage {
namespace {

using std::chrono::milliseconds;
using Clock = RedisMultiplexer::Clock;

// A connection unused for this long is peeked at before its next batch (the peer may have closed it while it
// sat idle: Redis restarted). Under load batches follow each other much closer than this, so the check costs
// no system call there; a peer that closes a busy connection fails that batch, as it would any in-flight call.
constexpr Clock::duration kIdleCheckAfter = milliseconds(1);

/// One call: queued, leading or in a batch. Lives on its caller's stack until execute() returns.
struct Call {
    enum class Wake { None, Lead, Done };

    Call(const RedisArgv& a, Clock::time_point deadline, milliseconds t)
        : argv(&a), sendDeadline(deadline), timeout(t) {}

    const RedisArgv* argv;
    const Clock::time_point sendDeadline;
    const milliseconds timeout;
    // Written by the leader of the call's batch; read by the caller after Wake::Done (ordered by `m`).
    Result<RedisReply> result = std::unexpected(StoreError{StoreError::Kind::Unavailable, "redis: no reply"});
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

void wake(Call& call, Call::Wake how) {
    std::lock_guard lock(call.m);
    call.wake = how;
    call.cv.notify_one();
}

}  // namespace

/// One pipelined connection and its queue.
class alignas(64) RedisMultiplexer::Channel {
public:
    Channel(const RedisEndpoint& endpoint, const RedisConnectionOptions& options)
        : endpoint_(endpoint), options_(options) {}

    Result<RedisReply> execute(const RedisArgv& argv, Clock::time_point sendDeadline, milliseconds timeout);

    std::atomic<std::size_t> pending{0};  ///< callers in execute() on this channel (queued, leading or in a batch)
    std::atomic<std::uint64_t> commands{0}, roundTrips{0}, connects{0};

private:
    Result<RedisReply> lead(Call& self);
    void roundTrip(Call* batch);
    void unlinkLocked(Call& call);

    const RedisEndpoint& endpoint_;
    const RedisConnectionOptions& options_;

    std::mutex mutex_;  ///< guards busy_, the queue (head_, tail_, Call::next and Call::queued of queued calls)
    bool busy_ = false;  ///< a leader owns the connection; invariant: queue non-empty => busy_
    Call* head_ = nullptr;
    Call* tail_ = nullptr;

    // Touched by the current leader only (leadership passes under mutex_).
    std::unique_ptr<RedisConnection> conn_;
    Clock::time_point lastUse_{};
};

Result<RedisReply> RedisMultiplexer::Channel::execute(const RedisArgv& argv, Clock::time_point sendDeadline,
                                                      milliseconds timeout) {
    Call call(argv, sendDeadline, timeout);
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
    const auto woken = [&call] { return call.wake != Call::Wake::None; };
    Call::Wake how;
    {
        std::unique_lock lk(call.m);
        if (!call.cv.wait_until(lk, sendDeadline, woken)) {
            lk.unlock();
            {
                std::lock_guard lock(mutex_);
                if (call.queued) {  // nobody took it: it was never sent
                    unlinkLocked(call);
                    return std::unexpected(StoreError{
                        StoreError::Kind::Unavailable,
                        "redis connection to " + endpoint_.str() + " not free before the deadline: command not sent"});
                }
            }
            // A leader took it (into its batch, or to lead): the wake-up is on its way, bounded by the round trip.
            lk.lock();
            call.cv.wait(lk, woken);
        }
        how = call.wake;
    }
    if (how == Call::Wake::Lead) return lead(call);
    return std::move(call.result);
}

void RedisMultiplexer::Channel::unlinkLocked(Call& call) {
    Call* prev = nullptr;
    for (Call* c = head_; c; prev = c, c = c->next) {
        if (c != &call) continue;
        (prev ? prev->next : head_) = c->next;
        if (tail_ == c) tail_ = prev;
        break;
    }
    call.queued = false;
    call.next = nullptr;
}

Result<RedisReply> RedisMultiplexer::Channel::lead(Call& self) {
    {  // the batch: this call, then everything queued by now, in arrival order
        std::lock_guard lock(mutex_);
        self.next = head_;
        for (Call* c = head_; c; c = c->next) c->queued = false;
        head_ = tail_ = nullptr;
    }
    roundTrip(&self);

    Call* successor = nullptr;
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
    // Hand the connection on first, so that the next round trip overlaps the wake-ups below.
    if (successor) wake(*successor, Call::Wake::Lead);
    for (Call* c = self.next; c;) {
        Call* next = c->next;  // read before the wake-up: the caller may return and destroy its Call at once
        wake(*c, Call::Wake::Done);
        c = next;
    }
    return std::move(self.result);
}

void RedisMultiplexer::Channel::roundTrip(Call* batch) {
    milliseconds timeout{1};
    Clock::time_point connectBy = batch->sendDeadline;
    std::uint64_t n = 0;
    for (Call* c = batch; c; c = c->next) {
        ++n;
        timeout = std::max(timeout, c->timeout);
        connectBy = std::max(connectBy, c->sendDeadline);
    }
    Call* unanswered = batch;
    const auto failRest = [&unanswered](const StoreError& error) {
        for (Call* c = unanswered; c; c = c->next) c->result = std::unexpected(error);
    };
    try {
        const auto now = Clock::now();
        if (conn_ && (conn_->broken() || (now - lastUse_ >= kIdleCheckAfter && conn_->peerClosed()))) conn_.reset();
        if (!conn_) {
            auto options = options_;
            const auto left = std::chrono::duration_cast<milliseconds>(connectBy - now);
            options.connectTimeout = std::clamp(left, milliseconds(1), options_.connectTimeout);
            auto opened = RedisConnection::open(endpoint_, options);
            if (!opened) return failRest(opened.error());  // nothing was sent
            conn_ = std::move(*opened);
            connects.fetch_add(1, std::memory_order_relaxed);
        }
        conn_->setCommandTimeout(timeout);
        for (Call* c = batch; c; c = c->next) {
            if (auto queued = conn_->append(*c->argv); !queued) {
                conn_.reset();
                return failRest(queued.error());
            }
        }
        commands.fetch_add(n, std::memory_order_relaxed);
        roundTrips.fetch_add(1, std::memory_order_relaxed);
        for (; unanswered; unanswered = unanswered->next) {
            auto reply = conn_->readReply();  // the first one writes the whole batch
            if (!reply) {
                conn_.reset();  // broken: dropped, never reused
                return failRest(reply.error());
            }
            unanswered->result = std::move(reply);
        }
        lastUse_ = Clock::now();
    } catch (const std::exception& e) {
        // Only an allocation can throw here; what the connection holds is unknown, so it goes.
        conn_.reset();
        failRest(StoreError{StoreError::Kind::Unavailable, std::string("redis client error: ") + e.what()});
    }
}

RedisMultiplexer::RedisMultiplexer(RedisEndpoint endpoint, RedisConnectionOptions options, std::size_t connections)
    : endpoint_(std::move(endpoint)), options_(std::move(options)), batching_(std::max<std::size_t>(connections, 1)) {
    channels_.reserve(2 * batching_);
    for (std::size_t i = 0; i < 2 * batching_; ++i) channels_.push_back(std::make_unique<Channel>(endpoint_, options_));
}

RedisMultiplexer::~RedisMultiplexer() = default;

RedisMultiplexer::Channel& RedisMultiplexer::pick() {
    // On a fiber: the loop's own pair of channels (batching channel index % connections, and its idle
    // twin), so that a batch's callers are fibers of one loop and their wake-ups cost no system call.
    if (const io::Loop* loop = io::inFiber() ? io::Loop::current() : nullptr) {
        Channel& batching = *channels_[loop->index() % batching_];
        Channel& twin = *channels_[loop->index() % batching_ + batching_];
        if (batching.pending.load(std::memory_order_relaxed) == 0) return batching;
        if (twin.pending.load(std::memory_order_relaxed) == 0) return twin;
        return batching;
    }
    // Fewer callers than channels: one channel at least is idle, take the first (a warm, recently used one).
    // Otherwise: the least busy of the batching channels (lowest index on ties).
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

Result<RedisReply> RedisMultiplexer::execute(const RedisArgv& argv, Clock::time_point sendDeadline,
                                             milliseconds timeout) {
    Channel& channel = pick();
    struct Pending {
        std::atomic<std::size_t>& count;
        explicit Pending(std::atomic<std::size_t>& c) : count(c) { count.fetch_add(1, std::memory_order_relaxed); }
        ~Pending() { count.fetch_sub(1, std::memory_order_relaxed); }
    } pending(channel.pending);
    return channel.execute(argv, sendDeadline, std::max(timeout, milliseconds(1)));
}

RedisMultiplexer::Stats RedisMultiplexer::stats() const {
    Stats s;
    for (const auto& c : channels_) {
        s.commands += c->commands.load(std::memory_order_relaxed);
        s.roundTrips += c->roundTrips.load(std::memory_order_relaxed);
        s.connects += c->connects.load(std::memory_order_relaxed);
    }
    return s;
}

}  // namespace idem::storage
