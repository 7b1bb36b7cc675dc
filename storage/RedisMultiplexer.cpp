#include "storage/RedisMultiplexer.h"

#include "storage/Multiplexer.h"

#include <algorithm>
#include <exception>

namespace idem::storage {

using std::chrono::milliseconds;
using Clock = RedisMultiplexer::Clock;

/// One pipelined Redis connection (mux::Multiplexer's Session): a batch is every command appended to the
/// connection's output buffer, written by the first read, and read back in order.
class RedisMultiplexer::Session {
public:
    using Command = RedisArgv;
    using Reply = Result<RedisReply>;
    struct Shared {
        RedisEndpoint endpoint;
        RedisConnectionOptions options;
    };

    explicit Session(const Shared& shared) : shared_(shared) {}

    static Reply notSent(const Shared& s) {
        return std::unexpected(StoreError{StoreError::Kind::Unavailable, "redis connection to " + s.endpoint.str() +
                                                                             " not free before the deadline: command not sent"});
    }

    void run(mux::Call<Session>* batch, mux::Counters& counters) {
        milliseconds timeout{1};
        Clock::time_point connectBy = batch->sendDeadline;
        std::uint64_t n = 0;
        for (auto* c = batch; c; c = c->next) {
            ++n;
            timeout = std::max(timeout, c->timeout);
            connectBy = std::max(connectBy, c->sendDeadline);
        }
        auto* unanswered = batch;
        const auto failRest = [&unanswered](const StoreError& error) {
            for (auto* c = unanswered; c; c = c->next) c->result = std::unexpected(error);
        };
        try {
            const auto now = Clock::now();
            if (conn_ && (conn_->broken() || (now - lastUse_ >= kIdleCheckAfter && conn_->peerClosed()))) conn_.reset();
            if (!conn_) {
                auto options = shared_.options;
                const auto left = std::chrono::duration_cast<milliseconds>(connectBy - now);
                options.connectTimeout = std::clamp(left, milliseconds(1), shared_.options.connectTimeout);
                auto opened = RedisConnection::open(shared_.endpoint, options);
                if (!opened) return failRest(opened.error());  // nothing was sent
                conn_ = std::move(*opened);
                counters.connects.fetch_add(1, std::memory_order_relaxed);
            }
            conn_->setCommandTimeout(timeout);
            for (auto* c = batch; c; c = c->next) {
                if (auto queued = conn_->append(*c->command); !queued) {
                    conn_.reset();
                    return failRest(queued.error());
                }
            }
            counters.commands.fetch_add(n, std::memory_order_relaxed);
            counters.roundTrips.fetch_add(1, std::memory_order_relaxed);
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

private:
    // A connection unused for this long is peeked at before its next batch (the peer may have closed it while
    // it sat idle: Redis restarted). Under load batches follow each other much closer than this, so the check
    // costs no system call there; a peer that closes a busy connection fails that batch, as it would any
    // in-flight call.
    static constexpr Clock::duration kIdleCheckAfter = milliseconds(1);

    const Shared& shared_;
    std::unique_ptr<RedisConnection> conn_;
    Clock::time_point lastUse_{};
};

RedisMultiplexer::RedisMultiplexer(RedisEndpoint endpoint, RedisConnectionOptions options, std::size_t connections)
    : mux_(std::make_unique<mux::Multiplexer<Session>>(Session::Shared{std::move(endpoint), std::move(options)},
                                                       connections)) {}

RedisMultiplexer::~RedisMultiplexer() = default;

Result<RedisReply> RedisMultiplexer::execute(const RedisArgv& argv, Clock::time_point sendDeadline,
                                             milliseconds timeout) {
    return mux_->execute(argv, sendDeadline, timeout);
}

RedisMultiplexer::Stats RedisMultiplexer::stats() const {
    const auto s = mux_->stats();
    return Stats{s.commands, s.roundTrips, s.connects};
}

const RedisEndpoint& RedisMultiplexer::endpoint() const { return mux_->shared().endpoint; }

std::size_t RedisMultiplexer::connections() const { return mux_->connections(); }

}  // namespace idem::storage
