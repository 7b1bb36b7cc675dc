#pragma once
// Internal to the PostgreSQL store: a few connections to the database, in libpq pipeline mode, that every
// thread and fiber shares for the record statements (each one statement in its own implicit transaction,
// no session state), with the statements that meet on a connection sent in one write and answered in one
// read (storage/Multiplexer.h: leader/follower, no thread of its own, a lone caller waits for nothing).
// It replaces the exclusive PgPool lease on the hot path: fewer connections and server processes, and
// a few system calls per batch instead of per statement on both sides.
//
// Contract:
//  - execPrepared() runs one statement prepared at connect time and returns its result, or its error as
//    PgConnection::execPrepared would (SQLSTATEs classified in one place, PgConnection.cpp).
//  - A batch runs as one transaction (one commit), its statements in row order so that batches never
//    deadlock; if one fails, it alone reports the error and the others run again each in a transaction of
//    its own (PgConnection::pipeline). Statements of one batch see the same now(): the batch's start.
//  - A statement that waited for its connection past `sendDeadline` fails with Unavailable and was never
//    sent. Once sent, each statement's wait is bounded by the statement timeout plus a margin.
//  - A connection-level failure (lost, timed out, out of step) fails every statement of the batch that
//    had no result yet with that error; the connection is dropped and a fresh one (connect, SET
//    statement_timeout, prepare, pipeline mode) is opened by the next batch. A connection that sat idle
//    for a while is checked before use (the server may have closed it).
//
// Thread-safety: execPrepared() and stats() are safe from many threads; the destructor must not run while a
// call is in flight.

#include "storage/PgConnection.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace idem::storage {

namespace mux {
template <class Session>
class Multiplexer;
}

class PgMultiplexer {
public:
    using Clock = std::chrono::steady_clock;

    struct Stats {
        std::uint64_t statements = 0;  ///< statements written
        std::uint64_t roundTrips = 0;  ///< batches written (one write each)
        std::uint64_t connects = 0;    ///< connections opened successfully
    };

    PgMultiplexer(PgConnectOptions options, std::vector<PgStatement> statements, std::size_t connections);
    ~PgMultiplexer();
    PgMultiplexer(const PgMultiplexer&) = delete;
    PgMultiplexer& operator=(const PgMultiplexer&) = delete;

    /// Runs statement `name`, which touches at most the row `lockKey` names (PgConnection::pipeline).
    /// `name`, `params` and `lockKey` must stay valid until the call returns.
    Result<PgResult> execPrepared(const std::string& name, std::span<const PgParam> params, std::string_view lockKey,
                                  Clock::time_point sendDeadline);

    Stats stats() const;
    /// How many connections it may open.
    std::size_t connections() const;

private:
    class Session;
    std::unique_ptr<mux::Multiplexer<Session>> mux_;
};

}  // namespace idem::storage
