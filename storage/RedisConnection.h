#pragma once
// Internal to the Redis stores: one blocking connection to one Redis node on hiredis 0.14, and the reply
// type our code sees instead of hiredis's redisReply.
//
// Contract:
//  - Commands are sent as argv with explicit lengths only (binary-safe, no format strings).
//  - Transport failures come back as StoreError, mapped in one place (mapTransportError): a command
//    timeout (EAGAIN) or an I/O error mid-command is Timeout (the outcome is unknown); refused, reset or
//    closed connections and failed connects are Unavailable. Any transport failure marks the connection
//    broken: hiredis contexts are dead after an error, so a broken connection is dropped, never reused.
//  - Error replies from the server are returned as RedisReply values (kind Error); classifyErrorReply and
//    mapErrorReply turn them into routing decisions (MOVED, ASK, TRYAGAIN, NOSCRIPT, CLUSTERDOWN) or into a
//    StoreError (OOM, READONLY, LOADING, MASTERDOWN, CLUSTERDOWN -> Unavailable; WRONGTYPE -> Corrupt).
//  - Never sends HELLO 3: hiredis 0.14 cannot parse RESP3.
//
// Thread-safety: a RedisConnection is used by one thread at a time (RedisPool hands it out exclusively;
// RedisMultiplexer lets only its current leader touch it). The free functions are pure.

#include "storage/Store.h"

#include "gateway/io/Fiber.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

struct redisContext;

namespace idem::storage {

/// One reply, converted from hiredis's redisReply (RESP2 only).
struct RedisReply {
    struct Nil {};
    struct Status {
        std::string text;
    };
    struct Error {
        std::string text;
    };
    using Array = std::vector<RedisReply>;
    std::variant<Nil, std::string, std::int64_t, Status, Error, Array> value;

    bool isNil() const { return std::holds_alternative<Nil>(value); }
    bool isString() const { return std::holds_alternative<std::string>(value); }
    bool isInteger() const { return std::holds_alternative<std::int64_t>(value); }
    bool isStatus() const { return std::holds_alternative<Status>(value); }
    bool isError() const { return std::holds_alternative<Error>(value); }
    bool isArray() const { return std::holds_alternative<Array>(value); }
    /// Precondition: the matching is*() is true.
    const std::string& str() const { return std::get<std::string>(value); }
    std::int64_t integer() const { return std::get<std::int64_t>(value); }
    const std::string& statusText() const { return std::get<Status>(value).text; }
    const std::string& errorText() const { return std::get<Error>(value).text; }
    const Array& array() const { return std::get<Array>(value); }
    /// String or status text; empty for anything else. For diagnostics and simple checks.
    std::string text() const;
};

/// A command as argv; every element is sent with its length.
using RedisArgv = std::vector<std::string_view>;

struct RedisEndpoint {
    std::string host;
    std::uint16_t port = 0;

    std::string str() const { return host + ":" + std::to_string(port); }
    bool operator==(const RedisEndpoint&) const = default;
};

/// "host:port" -> endpoint; nullopt-like error (Unavailable) when it does not parse.
Result<RedisEndpoint> parseEndpoint(std::string_view hostPort);

struct RedisConnectionOptions {
    std::chrono::milliseconds connectTimeout{500};
    std::chrono::milliseconds commandTimeout{1000};
    std::string password;  ///< empty: no AUTH
};

/// What an error reply asks the caller to do.
struct RedisErrorClass {
    enum class Kind {
        Moved,        ///< "MOVED <slot> <host:port>": the slot lives elsewhere; update the map, retry there
        Ask,          ///< "ASK <slot> <host:port>": retry once at the target after ASKING; no map update
        TryAgain,     ///< "TRYAGAIN": multi-key operation during resharding; back off and retry
        ClusterDown,  ///< "CLUSTERDOWN": back off and retry; Unavailable when attempts run out
        NoScript,     ///< "NOSCRIPT": the script cache lacks the SHA; resend as EVAL
        Other,        ///< anything else: mapErrorReply
    };
    Kind kind = Kind::Other;
    std::uint16_t slot = 0;
    RedisEndpoint target;  ///< MOVED / ASK only
};

/// Classifies a server error reply (the text without the leading '-').
RedisErrorClass classifyErrorReply(std::string_view text);

/// The one mapping of server error replies to StoreError.
StoreError mapErrorReply(std::string_view text);

/// The one mapping of hiredis transport failures (context err, its errstr, errno right after the call) to
/// StoreError. `connecting` is true while the connection is being set up: nothing was sent then.
StoreError mapTransportError(int hiredisErr, std::string_view errstr, int savedErrno, bool connecting);

class RedisConnection {
public:
    /// Connects (bounded by connectTimeout), sets the command timeout and TCP keepalive, and sends AUTH if a
    /// password is set. Any failure is Unavailable.
    static Result<std::unique_ptr<RedisConnection>> open(const RedisEndpoint& endpoint,
                                                         const RedisConnectionOptions& options);
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    /// One command, one reply. A transport failure returns the mapped StoreError and marks the connection
    /// broken. Error replies are values (reply.isError()), and do not break the connection.
    Result<RedisReply> command(const RedisArgv& argv);

    /// Sends all commands in one write and reads one reply per command (e.g. ASKING + EVALSHA).
    Result<std::vector<RedisReply>> pipeline(std::span<const RedisArgv> commands);

    /// The two halves of a pipeline, for callers that need each reply as it is read (RedisMultiplexer).
    /// append() only queues the command in the connection's output buffer: nothing is sent yet. It fails
    /// (Unavailable, connection broken) only if the buffer cannot grow, or if the connection is broken.
    Result<void> append(const RedisArgv& argv);
    /// Sends everything append() queued (on the first call after it: one write, repeated only for what the
    /// socket did not take) and returns the next reply, in order. A transport failure is mapped as in
    /// command() and breaks the connection: the replies not read yet are lost.
    Result<RedisReply> readReply();

    /// Bounds the next commands' socket reads and writes (at least 1 ms). Cheap when unchanged.
    void setCommandTimeout(std::chrono::milliseconds timeout);

    /// True once a transport failure was seen: the caller must drop this connection.
    bool broken() const { return broken_; }

    /// True if the peer has closed the socket (or it failed) while the connection sat idle: a non-blocking
    /// peek, used by the pool before reusing a connection (for example after a Redis restart).
    bool peerClosed() const;

    const RedisEndpoint& endpoint() const { return endpoint_; }

private:
    struct ContextDeleter {
        void operator()(redisContext* c) const;
    };
    RedisConnection(RedisEndpoint endpoint, std::unique_ptr<redisContext, ContextDeleter> ctx,
                    std::chrono::milliseconds timeout);
    StoreError fail(int savedErrno);
    /// readReply on a fiber: waits in io::waitFd, never in the kernel. An error, or nullopt with *raw set.
    std::optional<StoreError> readOnFiber(void** raw);

    RedisEndpoint endpoint_;
    std::unique_ptr<redisContext, ContextDeleter> ctx_;
    std::chrono::milliseconds timeout_;
    bool broken_ = false;
    /// Tags the socket's registrations in the loops' epoll sets (io::waitFd with an owner): the socket
    /// stays registered between round trips, which then cost no epoll_ctl.
    std::uint64_t owner_ = io::newFdOwner();
};

}  // namespace idem::storage
