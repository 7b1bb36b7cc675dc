#pragma once
// UpstreamSocket: one client connection to an upstream endpoint, plain TCP or TLS (OpenSSL), with a
// deadline on every operation. The fd is non-blocking and every wait is a poll(2) bounded by the
// operation's deadline, so nothing here can block past it (Poco's thread-per-connection server calls
// this from the request's own thread). SIGPIPE never fires: plain writes use MSG_NOSIGNAL, and TLS
// contexts make the process ignore SIGPIPE once (OpenSSL writes with write(2)).
//
// TlsContext: an OpenSSL client context per upstream: TLS 1.2 or newer; with verification (the
// default) the chain must lead to a trusted CA (ca_file, else the system store) and the certificate must
// name the server (host name, or IP address for an IP literal). SNI carries the host name (never an IP).
//
// An optional `abort` flag makes waits return Aborted soon after it is set (waits are sliced to 50 ms):
// the health checker uses it to stop promptly. The request path passes none: a client hanging up does
// not cancel its upstream call (B06).
//
// Thread-safety: one thread uses a socket at a time (the pool hands it over). TlsContext is shared.

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;

namespace idem::http {

using Deadline = std::chrono::steady_clock::time_point;

/// A resolved socket address.
struct Address {
    sockaddr_storage storage{};
    socklen_t length = 0;

    std::string text() const;  ///< "10.0.0.1:9090", "[::1]:9090"
};

class TlsContext {
public:
    /// Throws std::runtime_error naming the problem when `caFile` cannot be loaded.
    TlsContext(bool verify, const std::string& caFile);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    ssl_ctx_st* get() const { return ctx_; }
    bool verify() const { return verify_; }

private:
    ssl_ctx_st* ctx_ = nullptr;
    bool verify_ = true;
};

enum class IoResult {
    Ok,
    Timeout,  ///< the deadline passed
    Closed,   ///< orderly end of stream (FIN, TLS close_notify)
    Failed,   ///< reset or another error (UpstreamSocket::error() says which)
    Aborted,  ///< the abort flag was set
};

class UpstreamSocket {
public:
    enum class ConnectError { None, Refused, TimedOut, Unreachable, Tls, Aborted };

    struct ConnectResult {
        std::unique_ptr<UpstreamSocket> socket;  ///< set when error == None
        ConnectError error = ConnectError::None;
        std::string detail;
    };

    /// TCP connect to `address`, then (with `tls`) the TLS handshake, all before `deadline`.
    /// `serverName` is the SNI and verified name; `serverNameIsIp` when it is an IP literal.
    static ConnectResult connect(const Address& address, Deadline deadline, const TlsContext* tls,
                                 const std::string& serverName, bool serverNameIsIp,
                                 const std::atomic<bool>* abort = nullptr);

    ~UpstreamSocket();
    UpstreamSocket(const UpstreamSocket&) = delete;
    UpstreamSocket& operator=(const UpstreamSocket&) = delete;

    /// Writes every byte of `parts` in order. `written` counts the bytes the kernel (or, with TLS, the
    /// TLS layer) accepted, also when the result is not Ok.
    IoResult writeAll(std::span<const std::string_view> parts, Deadline deadline, std::size_t& written,
                      const std::atomic<bool>* abort = nullptr);

    /// Reads at least one byte (up to `capacity`) unless the deadline passes or the stream ends.
    /// `pollFirst`: wait for readability before trying (saves a syscall when data is surely not there yet).
    IoResult readSome(char* buffer, std::size_t capacity, std::size_t& got, Deadline deadline, bool pollFirst,
                      const std::atomic<bool>* abort = nullptr);

    /// For an idle pooled connection: true when it can carry a new request (no unread bytes, no EOF, no
    /// error). A peer that closed its side makes the socket readable, so a stale connection is detected
    /// here instead of by losing a request on it.
    bool reusable();

    bool tls() const { return ssl_ != nullptr; }
    /// What the last failed operation reported ("connection reset by peer", TLS error text).
    const std::string& error() const { return error_; }

private:
    UpstreamSocket(int fd, ssl_st* ssl);

    IoResult writePlain(std::span<const std::string_view> parts, Deadline deadline, std::size_t& written,
                        const std::atomic<bool>* abort);
    IoResult writeTls(std::string_view data, Deadline deadline, std::size_t& written, const std::atomic<bool>* abort);

    int fd_ = -1;
    ssl_st* ssl_ = nullptr;
    /// Tags this socket's epoll registrations (io::waitFd with an owner): a pooled connection moves
    /// between requests and loops, and stays registered in each loop that waited on it.
    std::uint64_t owner_;
    std::int64_t receiveTimeoutMs_ = -1;  ///< SO_RCVTIMEO as last set (plain sockets); -1: never set
    std::string error_;
};

}  // namespace idem::http
