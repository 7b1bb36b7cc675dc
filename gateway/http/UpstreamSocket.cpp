#include "gateway/http/UpstreamSocket.h"

#include "gateway/io/Fiber.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace idem::http {
namespace {

// Waits are cut into slices this long when an abort flag is given, so a set flag is seen soon.
constexpr int kAbortSliceMs = 50;
// A plain socket waiting for a response blocks in recv(2) under SO_RCVTIMEO, rounded down to this step
// so that consecutive requests with the same timeout reuse the value set (no setsockopt per request).
constexpr std::int64_t kReceiveStepMs = 100;
// Up to this many bytes, a TLS request goes out as one write (one record) instead of head and body apart.
constexpr std::size_t kTlsCoalesce = 16 * 1024;

enum class Wait { Ready, Timeout, Aborted, Failed };

/// Waits for `events` on `fd` until `deadline` (io::waitFd: on a fiber the loop runs other requests
/// meanwhile; elsewhere poll(2)). A deadline already past still looks once without waiting, so data
/// that is there is never reported as a timeout.
Wait waitFor(int fd, short events, Deadline deadline, const std::atomic<bool>* abort, std::uint64_t owner = 0) {
    for (;;) {
        if (abort && abort->load(std::memory_order_relaxed)) return Wait::Aborted;
        const auto now = std::chrono::steady_clock::now();
        const Deadline until = abort ? std::min(deadline, now + std::chrono::milliseconds(kAbortSliceMs)) : deadline;
        const int rc = io::waitFd(fd, events, until, owner);
        if (rc > 0) return Wait::Ready;  // POLLERR / POLLHUP too: the next call reports what happened
        if (rc < 0) {
            if (errno == EINTR) continue;
            return Wait::Failed;
        }
        if (std::chrono::steady_clock::now() >= deadline) return Wait::Timeout;
    }
}

IoResult fromWait(Wait w) {
    switch (w) {
        case Wait::Ready: return IoResult::Ok;
        case Wait::Timeout: return IoResult::Timeout;
        case Wait::Aborted: return IoResult::Aborted;
        case Wait::Failed: return IoResult::Failed;
    }
    return IoResult::Failed;
}

/// The OpenSSL error queue as text (and emptied), or `fallback`.
std::string opensslError(std::string fallback) {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? fallback : out;
}

void ignoreSigpipeOnce() {
    static std::once_flag once;
    std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

std::string Address::text() const {
    char host[INET6_ADDRSTRLEN] = {};
    if (storage.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
        ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
    }
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
}

// ---------------------------------------------------------------------------------------------------

TlsContext::TlsContext(bool verify, const std::string& caFile) : verify_(verify) {
    ignoreSigpipeOnce();
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) throw std::runtime_error(opensslError("cannot create a TLS context"));
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    // A peer closing without close_notify ends a close-delimited body like a plain EOF; truncation of
    // framed bodies is caught by the response parser either way.
    SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx_, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    const int ok = caFile.empty() ? SSL_CTX_set_default_verify_paths(ctx_)
                                  : SSL_CTX_load_verify_locations(ctx_, caFile.c_str(), nullptr);
    if (ok != 1) {
        const std::string why = opensslError("unknown error");
        SSL_CTX_free(ctx_);
        throw std::runtime_error(caFile.empty() ? "cannot load the system CA store: " + why
                                                : "cannot load CA file " + caFile + ": " + why);
    }
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

// ---------------------------------------------------------------------------------------------------

UpstreamSocket::ConnectResult UpstreamSocket::connect(const Address& address, Deadline deadline, const TlsContext* tls,
                                                      const std::string& serverName, bool serverNameIsIp,
                                                      const std::atomic<bool>* abort) {
    ConnectResult out;
    const int fd = ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        out.error = ConnectError::Unreachable;
        out.detail = std::string("cannot create a socket: ") + std::strerror(errno);
        return out;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto failWith = [&](ConnectError e, std::string detail) {
        ::close(fd);
        out.error = e;
        out.detail = std::move(detail);
        return std::move(out);
    };
    auto connectErrno = [&](int err) {
        if (err == ECONNREFUSED) return failWith(ConnectError::Refused, "connection refused by " + address.text());
        if (err == ETIMEDOUT) return failWith(ConnectError::TimedOut, "connect to " + address.text() + " timed out");
        return failWith(ConnectError::Unreachable, "cannot connect to " + address.text() + ": " + std::strerror(err));
    };
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0) {
        if (errno != EINPROGRESS) return connectErrno(errno);
        switch (waitFor(fd, POLLOUT, deadline, abort)) {
            case Wait::Ready: break;
            case Wait::Timeout: return failWith(ConnectError::TimedOut, "connect to " + address.text() + " timed out");
            case Wait::Aborted: return failWith(ConnectError::Aborted, "aborted");
            case Wait::Failed: return connectErrno(errno);
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) return connectErrno(err);
    }
    if (!tls) {
        // Plain sockets turn blocking once connected: every call that must not block passes
        // MSG_DONTWAIT, and readSome can then wait for a response inside recv(2) under SO_RCVTIMEO
        // instead of in poll(2) first (one system call per wait instead of two).
        const int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
            return failWith(ConnectError::Unreachable, std::string("cannot configure the socket: ") + std::strerror(errno));
        out.socket.reset(new UpstreamSocket(fd, nullptr));
        return out;
    }

    ERR_clear_error();
    SSL* ssl = SSL_new(tls->get());
    if (!ssl) return failWith(ConnectError::Tls, opensslError("cannot create a TLS session"));
    auto failTls = [&](ConnectError e, std::string detail) {
        SSL_free(ssl);
        return failWith(e, std::move(detail));
    };
    SSL_set_fd(ssl, fd);
    if (!serverNameIsIp) SSL_set_tlsext_host_name(ssl, serverName.c_str());
    if (tls->verify()) {
        const int named = serverNameIsIp ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName.c_str())
                                         : SSL_set1_host(ssl, serverName.c_str());
        if (named != 1) return failTls(ConnectError::Tls, opensslError("cannot set the name to verify"));
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int rc = SSL_connect(ssl);
        if (rc == 1) break;
        const int sysErr = errno;
        const int e = SSL_get_error(ssl, rc);
        Wait w = Wait::Failed;
        if (e == SSL_ERROR_WANT_READ) w = waitFor(fd, POLLIN, deadline, abort);
        else if (e == SSL_ERROR_WANT_WRITE) w = waitFor(fd, POLLOUT, deadline, abort);
        if (w == Wait::Ready) continue;
        if (w == Wait::Timeout)
            return failTls(ConnectError::TimedOut, "TLS handshake with " + address.text() + " timed out");
        if (w == Wait::Aborted) return failTls(ConnectError::Aborted, "aborted");
        std::string why;
        const long verified = SSL_get_verify_result(ssl);
        if (verified != X509_V_OK) {
            why = std::string("certificate verification failed: ") + X509_verify_cert_error_string(verified);
            ERR_clear_error();
        } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            why = sysErr != 0 ? std::strerror(sysErr) : "the peer closed the connection";
        } else {
            why = opensslError("handshake failed");
        }
        return failTls(ConnectError::Tls, "TLS handshake with " + address.text() + " failed: " + why);
    }
    out.socket.reset(new UpstreamSocket(fd, ssl));
    return out;
}

UpstreamSocket::UpstreamSocket(int fd, ssl_st* ssl) : fd_(fd), ssl_(ssl), owner_(io::newFdOwner()) {}

UpstreamSocket::~UpstreamSocket() {
    if (ssl_) {
        // One non-blocking close_notify attempt; the peer does not have to answer it.
        ERR_clear_error();
        SSL_shutdown(ssl_);
        SSL_free(ssl_);
        ERR_clear_error();
    }
    if (fd_ >= 0) ::close(fd_);
}

IoResult UpstreamSocket::writeAll(std::span<const std::string_view> parts, Deadline deadline, std::size_t& written,
                                  const std::atomic<bool>* abort) {
    written = 0;
    if (!ssl_) return writePlain(parts, deadline, written, abort);
    std::size_t total = 0;
    for (auto p : parts) total += p.size();
    if (parts.size() > 1 && total <= kTlsCoalesce) {
        std::string joined;
        joined.reserve(total);
        for (auto p : parts) joined.append(p);
        return writeTls(joined, deadline, written, abort);
    }
    for (auto p : parts) {
        std::size_t n = 0;
        const IoResult r = writeTls(p, deadline, n, abort);
        written += n;
        if (r != IoResult::Ok) return r;
    }
    return IoResult::Ok;
}

IoResult UpstreamSocket::writePlain(std::span<const std::string_view> parts, Deadline deadline, std::size_t& written,
                                    const std::atomic<bool>* abort) {
    constexpr std::size_t kMaxParts = 8;
    iovec iov[kMaxParts];
    std::size_t count = 0;
    for (auto p : parts) {
        if (p.empty()) continue;
        if (count == kMaxParts) {
            error_ = "too many buffers";
            return IoResult::Failed;
        }
        iov[count++] = iovec{const_cast<char*>(p.data()), p.size()};
    }
    std::size_t first = 0;
    while (first < count) {
        msghdr msg{};
        msg.msg_iov = iov + first;
        msg.msg_iovlen = count - first;
        const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                const Wait w = waitFor(fd_, POLLOUT, deadline, abort, owner_);
                if (w == Wait::Ready) continue;
                if (w == Wait::Failed) error_ = std::strerror(errno);
                return fromWait(w);
            }
            error_ = std::strerror(errno);
            return IoResult::Failed;
        }
        written += static_cast<std::size_t>(n);
        auto left = static_cast<std::size_t>(n);
        while (first < count && left >= iov[first].iov_len) {
            left -= iov[first].iov_len;
            ++first;
        }
        if (first < count) {
            iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
            iov[first].iov_len -= left;
        }
    }
    return IoResult::Ok;
}

IoResult UpstreamSocket::writeTls(std::string_view data, Deadline deadline, std::size_t& written,
                                  const std::atomic<bool>* abort) {
    written = 0;
    if (data.empty()) return IoResult::Ok;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int rc = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (rc > 0) {
            written = static_cast<std::size_t>(rc);
            return IoResult::Ok;
        }
        const int e = SSL_get_error(ssl_, rc);
        Wait w = Wait::Failed;
        if (e == SSL_ERROR_WANT_WRITE) w = waitFor(fd_, POLLOUT, deadline, abort, owner_);
        else if (e == SSL_ERROR_WANT_READ) w = waitFor(fd_, POLLIN, deadline, abort, owner_);
        if (w == Wait::Ready) continue;
        if (w != Wait::Failed) return fromWait(w);
        error_ = e == SSL_ERROR_SYSCALL && errno != 0 ? std::string(std::strerror(errno)) : opensslError("TLS write failed");
        return IoResult::Failed;
    }
}

IoResult UpstreamSocket::readSome(char* buffer, std::size_t capacity, std::size_t& got, Deadline deadline,
                                  bool pollFirst, const std::atomic<bool>* abort) {
    got = 0;
    if (!ssl_) {
        if (pollFirst && !abort && !io::inFiber()) {
            // Wait inside recv(2): the socket is blocking, bounded by SO_RCVTIMEO (set only when the
            // bound changes, see kReceiveStep); the last step before the deadline goes through poll.
            for (;;) {
                const auto left = std::chrono::floor<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
                const std::int64_t step = std::min<std::int64_t>(left.count(), 3'600'000) / kReceiveStepMs * kReceiveStepMs;
                if (step <= 0) break;
                if (step != receiveTimeoutMs_) {
                    const timeval tv{static_cast<time_t>(step / 1000), static_cast<suseconds_t>(step % 1000 * 1000)};
                    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) break;
                    receiveTimeoutMs_ = step;
                }
                const ssize_t n = ::recv(fd_, buffer, capacity, 0);
                if (n > 0) {
                    got = static_cast<std::size_t>(n);
                    return IoResult::Ok;
                }
                if (n == 0) return IoResult::Closed;
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
                error_ = std::strerror(errno);
                return IoResult::Failed;
            }
            pollFirst = true;
        }
        if (pollFirst) {
            const Wait w = waitFor(fd_, POLLIN, deadline, abort, owner_);
            if (w != Wait::Ready) return fromWait(w);
        }
        for (;;) {
            const ssize_t n = ::recv(fd_, buffer, capacity, MSG_DONTWAIT);
            if (n > 0) {
                got = static_cast<std::size_t>(n);
                return IoResult::Ok;
            }
            if (n == 0) return IoResult::Closed;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                const Wait w = waitFor(fd_, POLLIN, deadline, abort, owner_);
                if (w == Wait::Ready) continue;
                return fromWait(w);
            }
            error_ = std::strerror(errno);
            return IoResult::Failed;
        }
    }
    if (pollFirst && SSL_pending(ssl_) == 0) {
        const Wait w = waitFor(fd_, POLLIN, deadline, abort, owner_);
        if (w != Wait::Ready) return fromWait(w);
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int rc = SSL_read(ssl_, buffer, static_cast<int>(std::min<std::size_t>(capacity, 1 << 30)));
        if (rc > 0) {
            got = static_cast<std::size_t>(rc);
            return IoResult::Ok;
        }
        const int e = SSL_get_error(ssl_, rc);
        if (e == SSL_ERROR_ZERO_RETURN) return IoResult::Closed;
        Wait w = Wait::Failed;
        if (e == SSL_ERROR_WANT_READ) w = waitFor(fd_, POLLIN, deadline, abort, owner_);
        else if (e == SSL_ERROR_WANT_WRITE) w = waitFor(fd_, POLLOUT, deadline, abort, owner_);
        if (w == Wait::Ready) continue;
        if (w != Wait::Failed) return fromWait(w);
        if (e == SSL_ERROR_SYSCALL && errno == 0) return IoResult::Closed;  // EOF without close_notify
        error_ = e == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno)) : opensslError("TLS read failed");
        return IoResult::Failed;
    }
}

bool UpstreamSocket::reusable() {
    if (ssl_ && SSL_pending(ssl_) > 0) return false;  // unsolicited data: the stream is out of step
    pollfd p{fd_, POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, 0);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) return true;  // nothing to read, no EOF: alive
    if (rc < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;
    if (!ssl_) return false;  // readable: EOF or bytes nobody asked for
    // TLS 1.3 servers send session tickets after the handshake: readable, yet no application data.
    char byte;
    ERR_clear_error();
    const int n = SSL_peek(ssl_, &byte, 1);
    if (n > 0) return false;
    const int e = SSL_get_error(ssl_, n);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ;
}

}  // namespace idem::http
