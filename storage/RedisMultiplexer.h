#pragma once
// Internal to the Redis stores: a few connections to one Redis node that every thread shares for ordinary
// commands (one command, one reply, no connection state such as ASKING), with the commands that meet on a
// connection pipelined into one write. It replaces the exclusive RedisPool lease on the hot path: no lease,
// no pool-wide lock, one write and (usually) one read per batch instead of per command.
//
// Contract:
//  - execute() runs one command and returns its reply, error replies included as values (as
//    RedisConnection::command).
//  - Leader/follower, no thread of its own. A caller that finds its connection idle becomes its leader and
//    sends its own command at once: a lone caller waits for nothing. Callers that arrive while a round trip
//    is in flight queue up. When the leader has read its batch's replies, it hands the connection to the
//    oldest queued caller (which becomes the next leader, takes every command queued by then, sends them in
//    ONE write and reads their replies in order), then wakes each caller of its own batch individually with
//    its reply, and returns its own. A leader never serves a batch it did not take.
//  - Deadlines: a command waits in the queue at most until its `sendDeadline`; past it, it fails with
//    Unavailable and is never sent (the pool's "no free connection"). Once sent, its wait is bounded by the
//    round trip: every socket read and write is bounded by the longest `timeout` of the batch (each caller
//    passes at most the command timeout, so no caller cuts its batch short with a small remaining budget).
//  - Failures: a reply read in full is delivered even if a later one fails. A transport failure gives every
//    command of the batch whose reply was not read the same StoreError (mapTransportError, as
//    RedisConnection: Timeout for a command timeout or an I/O error mid-call, Unavailable for a reset, closed
//    or refused connection); the connection is then discarded and reopened lazily by the next leader.
//    Commands still queued at that moment were never sent: they go out on the fresh connection. A failed
//    connect fails the batch with Unavailable (nothing was sent). A connection that sat idle for a while is
//    peeked at before use (RedisConnection::peerClosed: Redis restarted) and reopened if the peer closed it.
//  - Connections, opened lazily: `connections` (at least 1) batching ones, and as many again for low
//    concurrency. While fewer calls are pending (queued or in flight) than there are connections, one of them
//    is idle and a call takes the first idle one: at low concurrency no command waits for another's round
//    trip. Otherwise a call joins the batching connection with the fewest pending calls, so that under load
//    the commands meet on a few connections and go out in deep batches. A caller on a fiber (io::Loop) uses
//    only its loop's batching connection and that one's idle twin: its batch then holds fibers of one loop.
//
// Thread-safety: execute() and stats() are safe to call from many threads. The destructor must not run while
// a call is in flight.

#include "storage/RedisConnection.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace idem::storage {

namespace mux {
template <class Session>
class Multiplexer;
}

class RedisMultiplexer {
public:
    using Clock = std::chrono::steady_clock;

    /// Counters since construction, for tests and diagnostics.
    struct Stats {
        std::uint64_t commands = 0;    ///< commands written
        std::uint64_t roundTrips = 0;  ///< batches written (one write each)
        std::uint64_t connects = 0;    ///< connections opened successfully
    };

    RedisMultiplexer(RedisEndpoint endpoint, RedisConnectionOptions options, std::size_t connections);
    ~RedisMultiplexer();
    RedisMultiplexer(const RedisMultiplexer&) = delete;
    RedisMultiplexer& operator=(const RedisMultiplexer&) = delete;

    /// Runs `argv` on one of the node's connections; see the contract above. `argv` must stay valid until
    /// the call returns (it is written by whichever thread leads the batch).
    Result<RedisReply> execute(const RedisArgv& argv, Clock::time_point sendDeadline,
                               std::chrono::milliseconds timeout);

    Stats stats() const;
    const RedisEndpoint& endpoint() const;
    /// How many connections it may open: twice the batching connections.
    std::size_t connections() const;

private:
    class Session;
    std::unique_ptr<mux::Multiplexer<Session>> mux_;
};

}  // namespace idem::storage
