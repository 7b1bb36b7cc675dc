#include "storage/RedisConnection.h"

#include "gateway/io/Fiber.h"

extern "C" {  // hiredis 0.14 includes sds.h (sdsrange) outside its own extern "C"
#include <hiredis/hiredis.h>
}

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace idem::storage {
namespace {

struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

RedisReply convert(const redisReply& r) {
    switch (r.type) {
    case REDIS_REPLY_STRING:
        return RedisReply{std::string(r.str, r.len)};
    case REDIS_REPLY_INTEGER:
        return RedisReply{static_cast<std::int64_t>(r.integer)};
    case REDIS_REPLY_STATUS:
        return RedisReply{RedisReply::Status{std::string(r.str, r.len)}};
    case REDIS_REPLY_ERROR:
        return RedisReply{RedisReply::Error{std::string(r.str, r.len)}};
    case REDIS_REPLY_ARRAY: {
        RedisReply::Array items;
        items.reserve(r.elements);
        for (std::size_t i = 0; i < r.elements; ++i) items.push_back(convert(*r.element[i]));
        return RedisReply{std::move(items)};
    }
    default:
        return RedisReply{RedisReply::Nil{}};
    }
}

timeval toTimeval(std::chrono::milliseconds ms) {
    if (ms < std::chrono::milliseconds(1)) ms = std::chrono::milliseconds(1);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

bool startsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": slot and target. The host may be empty in Redis 7
// ("MOVED 3999 :6381": same host as the node that answered); the caller fills it in.
bool parseRedirect(std::string_view rest, RedisErrorClass& out) {
    const auto sp = rest.find(' ');
    if (sp == std::string_view::npos) return false;
    unsigned slot = 0;
    const auto slotText = rest.substr(0, sp);
    if (std::from_chars(slotText.data(), slotText.data() + slotText.size(), slot).ec != std::errc{} || slot > 16383)
        return false;
    const auto addr = rest.substr(sp + 1);
    const auto colon = addr.rfind(':');
    if (colon == std::string_view::npos) return false;
    unsigned port = 0;
    const auto portText = addr.substr(colon + 1);
    if (std::from_chars(portText.data(), portText.data() + portText.size(), port).ec != std::errc{} || port == 0 ||
        port > 65535)
        return false;
    out.slot = static_cast<std::uint16_t>(slot);
    out.target = RedisEndpoint{std::string(addr.substr(0, colon)), static_cast<std::uint16_t>(port)};
    return true;
}

}  // namespace

std::string RedisReply::text() const {
    if (isString()) return str();
    if (isStatus()) return statusText();
    if (isError()) return errorText();
    return {};
}

Result<RedisEndpoint> parseEndpoint(std::string_view hostPort) {
    const auto colon = hostPort.rfind(':');
    unsigned port = 0;
    if (colon != std::string_view::npos && colon > 0) {
        const auto p = hostPort.substr(colon + 1);
        if (std::from_chars(p.data(), p.data() + p.size(), port).ec == std::errc{} && port > 0 && port <= 65535)
            return RedisEndpoint{std::string(hostPort.substr(0, colon)), static_cast<std::uint16_t>(port)};
    }
    return std::unexpected(StoreError{StoreError::Kind::Unavailable,
                                      "redis address '" + std::string(hostPort) + "' is not host:port"});
}

RedisErrorClass classifyErrorReply(std::string_view text) {
    RedisErrorClass c;
    if (startsWith(text, "MOVED ")) {
        if (parseRedirect(text.substr(6), c)) c.kind = RedisErrorClass::Kind::Moved;
    } else if (startsWith(text, "ASK ")) {
        if (parseRedirect(text.substr(4), c)) c.kind = RedisErrorClass::Kind::Ask;
    } else if (startsWith(text, "TRYAGAIN")) {
        c.kind = RedisErrorClass::Kind::TryAgain;
    } else if (startsWith(text, "CLUSTERDOWN")) {
        c.kind = RedisErrorClass::Kind::ClusterDown;
    } else if (startsWith(text, "NOSCRIPT")) {
        c.kind = RedisErrorClass::Kind::NoScript;
    }
    return c;
}

StoreError mapErrorReply(std::string_view text) {
    // A key of another type at a record's address is a record we cannot read: never a miss.
    if (startsWith(text, "WRONGTYPE"))
        return StoreError{StoreError::Kind::Corrupt, "redis: record key holds another type: " + std::string(text)};
    // OOM (maxmemory under noeviction), READONLY (a replica after failover), LOADING (restarting),
    // MASTERDOWN, CLUSTERDOWN, BUSY (a runaway script), MISCONF (persistence failing), auth errors and anything
    // unexpected: the store refused the call and nothing was written (scripts check before their first write).
    return StoreError{StoreError::Kind::Unavailable, "redis refused the call: " + std::string(text)};
}

StoreError mapTransportError(int hiredisErr, std::string_view errstr, int savedErrno, bool connecting) {
    const std::string detail(errstr.empty() ? std::string_view("unknown error") : errstr);
    if (connecting) return StoreError{StoreError::Kind::Unavailable, "cannot connect to redis: " + detail};
    if (hiredisErr == REDIS_ERR_EOF)
        return StoreError{StoreError::Kind::Unavailable, "redis closed the connection: " + detail};
    if (hiredisErr == REDIS_ERR_IO) {
        switch (savedErrno) {
        case ECONNREFUSED:
        case ECONNRESET:
        case ECONNABORTED:
        case EPIPE:
        case ENOTCONN:
        case ENETUNREACH:
        case EHOSTUNREACH:
            return StoreError{StoreError::Kind::Unavailable, "redis connection lost: " + detail};
        default:
            // EAGAIN is hiredis 0.14's command timeout; any other read/write failure mid-command leaves the
            // outcome just as unknown.
            return StoreError{StoreError::Kind::Timeout, "redis command timed out or failed mid-call: " + detail};
        }
    }
    return StoreError{StoreError::Kind::Unavailable, "redis protocol or client error: " + detail};
}

void RedisConnection::ContextDeleter::operator()(redisContext* c) const {
    if (c) redisFree(c);
}

RedisConnection::RedisConnection(RedisEndpoint endpoint, std::unique_ptr<redisContext, ContextDeleter> ctx,
                                 std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), ctx_(std::move(ctx)), timeout_(timeout) {}

RedisConnection::~RedisConnection() = default;

Result<std::unique_ptr<RedisConnection>> RedisConnection::open(const RedisEndpoint& endpoint,
                                                               const RedisConnectionOptions& options) {
    const bool onFiber = io::inFiber();
    // On a fiber the connect must not block the loop: started non-blocking, awaited with io::waitFd, and
    // then the context is turned into the blocking kind the rest of this class (and hiredis) expects.
    std::unique_ptr<redisContext, ContextDeleter> ctx(
        onFiber ? redisConnectNonBlock(endpoint.host.c_str(), endpoint.port)
                : redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, toTimeval(options.connectTimeout)));
    if (!ctx) return std::unexpected(StoreError{StoreError::Kind::Unavailable, "redis: cannot allocate a context"});
    if (ctx->err) {
        auto e = mapTransportError(ctx->err, ctx->errstr, errno, true);
        e.message += " (" + endpoint.str() + ")";
        return std::unexpected(std::move(e));
    }
    if (onFiber) {
        const auto deadline = std::chrono::steady_clock::now() + std::max(options.connectTimeout, std::chrono::milliseconds(1));
        const int ready = io::waitFd(ctx->fd, POLLOUT, deadline);
        int err = 0;
        socklen_t len = sizeof err;
        if (ready == 0) err = ETIMEDOUT;
        else if (ready < 0 || ::getsockopt(ctx->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        const int flags = err == 0 ? ::fcntl(ctx->fd, F_GETFL) : -1;
        if (err == 0 && (flags < 0 || ::fcntl(ctx->fd, F_SETFL, flags & ~O_NONBLOCK) != 0)) err = errno;
        if (err != 0)
            return std::unexpected(StoreError{StoreError::Kind::Unavailable, "cannot connect to redis: " +
                                                                                 std::string(std::strerror(err)) +
                                                                                 " (" + endpoint.str() + ")"});
        ctx->flags |= REDIS_BLOCK;
    }
    if (redisSetTimeout(ctx.get(), toTimeval(options.commandTimeout)) != REDIS_OK ||
        redisEnableKeepAlive(ctx.get()) != REDIS_OK) {
        auto e = mapTransportError(ctx->err, ctx->errstr, errno, true);
        e.message += " (" + endpoint.str() + ")";
        return std::unexpected(std::move(e));
    }
    std::unique_ptr<RedisConnection> conn(new RedisConnection(endpoint, std::move(ctx), options.commandTimeout));
    if (!options.password.empty()) {
        auto r = conn->command({"AUTH", options.password});
        if (!r) {
            r.error().kind = StoreError::Kind::Unavailable;  // nothing of ours was sent yet
            return std::unexpected(r.error());
        }
        if (r->isError())
            return std::unexpected(StoreError{StoreError::Kind::Unavailable,
                                              "redis AUTH failed at " + endpoint.str() + ": " + r->errorText()});
    }
    return conn;
}

StoreError RedisConnection::fail(int savedErrno) {
    broken_ = true;
    auto e = mapTransportError(ctx_->err, ctx_->errstr, savedErrno, false);
    e.message += " (" + endpoint_.str() + ")";
    return e;
}

Result<RedisReply> RedisConnection::command(const RedisArgv& argv) {
    if (auto queued = append(argv); !queued) return std::unexpected(queued.error());
    return readReply();
}

Result<std::vector<RedisReply>> RedisConnection::pipeline(std::span<const RedisArgv> commands) {
    for (const auto& argv : commands)
        if (auto queued = append(argv); !queued) return std::unexpected(queued.error());
    std::vector<RedisReply> out;
    out.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
        auto reply = readReply();
        if (!reply) return std::unexpected(reply.error());
        out.push_back(std::move(*reply));
    }
    return out;
}

Result<void> RedisConnection::append(const RedisArgv& argv) {
    if (broken_) return std::unexpected(StoreError{StoreError::Kind::Unavailable, "redis connection is broken"});
    // Our commands have a handful of arguments: no allocation for the pointer and length arrays.
    constexpr std::size_t kInline = 16;
    std::array<const char*, kInline> ptrsInline;
    std::array<std::size_t, kInline> lensInline;
    std::vector<const char*> ptrsHeap;
    std::vector<std::size_t> lensHeap;
    const char** ptrs = ptrsInline.data();
    std::size_t* lens = lensInline.data();
    if (argv.size() > kInline) {
        ptrsHeap.resize(argv.size());
        lensHeap.resize(argv.size());
        ptrs = ptrsHeap.data();
        lens = lensHeap.data();
    }
    for (std::size_t i = 0; i < argv.size(); ++i) {
        ptrs[i] = argv[i].data();
        lens[i] = argv[i].size();
    }
    errno = 0;
    if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(argv.size()), ptrs, lens) != REDIS_OK)
        return std::unexpected(fail(errno));
    return {};
}

Result<RedisReply> RedisConnection::readReply() {
    if (broken_) return std::unexpected(StoreError{StoreError::Kind::Unavailable, "redis connection is broken"});
    void* raw = nullptr;
    if (io::inFiber()) {
        if (auto error = readOnFiber(&raw)) return std::unexpected(std::move(*error));
        ReplyPtr reply(static_cast<redisReply*>(raw));
        return convert(*reply);
    }
    errno = 0;
    const int rc = redisGetReply(ctx_.get(), &raw);
    const int savedErrno = errno;
    ReplyPtr reply(static_cast<redisReply*>(raw));
    if (rc != REDIS_OK || !reply) return std::unexpected(fail(savedErrno));
    return convert(*reply);
}

std::optional<StoreError> RedisConnection::readOnFiber(void** raw) {
    // What redisGetReply does on a blocking socket, with the waits in io::waitFd instead of in the kernel:
    // flush the commands appended, then read until the reader holds a whole reply. Every call that touches
    // the socket passes MSG_DONTWAIT (the socket itself is blocking, for use off a fiber).
    redisContext* c = ctx_.get();
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    const auto ioFailure = [&](int hiredisErr, const char* text, int savedErrno) {
        broken_ = true;
        auto e = mapTransportError(hiredisErr, text, savedErrno, false);
        e.message += " (" + endpoint_.str() + ")";
        return e;
    };
    const auto timedOut = [&] { return ioFailure(REDIS_ERR_IO, "Resource temporarily unavailable", EAGAIN); };
    if (redisGetReplyFromReader(c, raw) != REDIS_OK) return fail(errno);
    if (*raw) return std::nullopt;  // parsed with an earlier read
    while (sdslen(c->obuf) > 0) {
        const ssize_t n = ::send(c->fd, c->obuf, sdslen(c->obuf), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sdsrange(c->obuf, static_cast<int>(n), -1);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            const int ready = io::waitFd(c->fd, POLLOUT, deadline, owner_);
            if (ready == 0) return timedOut();
            if (ready > 0) continue;
        }
        const int e = errno;
        return ioFailure(REDIS_ERR_IO, std::strerror(e), e);
    }
    char buffer[16 * 1024];
    for (;;) {
        const int ready = io::waitFd(c->fd, POLLIN, deadline, owner_);  // a reply needs a round trip: wait first
        if (ready == 0) return timedOut();
        if (ready < 0) {
            const int e = errno;
            return ioFailure(REDIS_ERR_IO, std::strerror(e), e);
        }
        const ssize_t n = ::recv(c->fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0) return ioFailure(REDIS_ERR_EOF, "Server closed the connection", 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            const int e = errno;
            return ioFailure(REDIS_ERR_IO, std::strerror(e), e);
        }
        if (redisReaderFeed(c->reader, buffer, static_cast<std::size_t>(n)) != REDIS_OK ||
            redisGetReplyFromReader(c, raw) != REDIS_OK) {
            broken_ = true;
            return StoreError{StoreError::Kind::Unavailable,
                              "redis protocol error: " + std::string(c->reader->errstr) + " (" + endpoint_.str() + ")"};
        }
        if (*raw) return std::nullopt;
    }
}

void RedisConnection::setCommandTimeout(std::chrono::milliseconds timeout) {
    if (timeout < std::chrono::milliseconds(1)) timeout = std::chrono::milliseconds(1);
    if (timeout == timeout_ || broken_) return;
    if (redisSetTimeout(ctx_.get(), toTimeval(timeout)) != REDIS_OK) {
        broken_ = true;
        return;
    }
    timeout_ = timeout;
}

bool RedisConnection::peerClosed() const {
    if (broken_ || ctx_->err) return true;
    char byte = 0;
    const auto n = ::recv(ctx_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;                                            // orderly close (Redis restarted)
    if (n > 0) return true;                                             // unsolicited bytes: out of sync
    return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);  // reset or other failure
}

}  // namespace idem::storage
