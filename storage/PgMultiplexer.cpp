#include "storage/PgMultiplexer.h"

#include "storage/Multiplexer.h"

#include <exception>

namespace idem::storage {

using Clock = PgMultiplexer::Clock;

/// One pipelined PostgreSQL connection (mux::Multiplexer's Session).
class PgMultiplexer::Session {
public:
    using Command = PgCall;
    using Reply = Result<PgResult>;
    struct Shared {
        PgConnectOptions options;
        std::vector<PgStatement> statements;
    };

    explicit Session(const Shared& shared) : shared_(shared) {}

    static Reply notSent(const Shared&) {
        return std::unexpected(StoreError{StoreError::Kind::Unavailable,
                                          "postgres: no pipelined connection free before the deadline: statement not sent"});
    }

    void run(mux::Call<Session>* batch, mux::Counters& counters) {
        const auto failAll = [batch](const StoreError& e) {
            for (auto* c = batch; c; c = c->next) c->result = std::unexpected(e);
        };
        try {
            const auto now = Clock::now();
            if (conn_ && (conn_->broken() || (now - lastUse_ >= kIdleCheckAfter && !conn_->checkIdle()))) conn_.reset();
            if (!conn_) {
                auto opened = PgConnection::connect(shared_.options, shared_.statements);
                if (!opened) return failAll(opened.error());  // nothing was sent
                if (auto piped = (*opened)->enterPipeline(); !piped) return failAll(piped.error());
                conn_ = std::move(*opened);
                counters.connects.fetch_add(1, std::memory_order_relaxed);
            }
            calls_.clear();
            for (auto* c = batch; c; c = c->next) calls_.push_back(*c->command);
            counters.commands.fetch_add(calls_.size(), std::memory_order_relaxed);
            counters.roundTrips.fetch_add(1, std::memory_order_relaxed);
            conn_->pipeline(calls_, results_);
            std::size_t i = 0;
            for (auto* c = batch; c; c = c->next) c->result = std::move(results_[i++]);
            results_.clear();
            if (conn_->broken()) conn_.reset();
            lastUse_ = Clock::now();
        } catch (const std::exception& e) {
            // Only an allocation can throw here; what the connection holds is unknown, so it goes.
            conn_.reset();
            results_.clear();
            failAll(StoreError{StoreError::Kind::Unavailable, std::string("postgres client error: ") + e.what()});
        }
    }

private:
    // As RedisMultiplexer: a connection unused for this long is checked (one non-blocking read) before use.
    static constexpr Clock::duration kIdleCheckAfter = std::chrono::milliseconds(1);

    const Shared& shared_;
    std::unique_ptr<PgConnection> conn_;
    Clock::time_point lastUse_{};
    std::vector<PgCall> calls_;                  // reused across batches
    std::vector<Result<PgResult>> results_;
};

PgMultiplexer::PgMultiplexer(PgConnectOptions options, std::vector<PgStatement> statements, std::size_t connections)
    : mux_(std::make_unique<mux::Multiplexer<Session>>(Session::Shared{std::move(options), std::move(statements)},
                                                       connections)) {}

PgMultiplexer::~PgMultiplexer() = default;

Result<PgResult> PgMultiplexer::execPrepared(const std::string& name, std::span<const PgParam> params,
                                             std::string_view lockKey, Clock::time_point sendDeadline) {
    const PgCall call{&name, params, lockKey};
    // The statement's own bound applies once sent (PgConnection::pipeline); the multiplexer's per-call
    // timeout is not used by this Session.
    return mux_->execute(call, sendDeadline, std::chrono::milliseconds(1));
}

PgMultiplexer::Stats PgMultiplexer::stats() const {
    const auto s = mux_->stats();
    return Stats{s.commands, s.roundTrips, s.connects};
}

std::size_t PgMultiplexer::connections() const { return mux_->connections(); }

}  // namespace idem::storage
