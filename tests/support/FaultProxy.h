#pragma once
// FaultProxy: an in-process loopback TCP proxy that injects network faults between a store client and
// its server (STORE-DESIGN §5 "Partition through an in-process TCP fault proxy"; conformance case 20).
// Tests only: plain POSIX sockets and threads, no root, no netns.
//
// Contract:
//  - Listens on 127.0.0.1:port() (a free port chosen by the kernel) and, per accepted connection, opens
//    one connection to target (host, port). If that connect fails, the client connection is reset.
//  - The mode may be changed at any time and is applied to every byte that moves afterwards:
//      Pass        forward both ways.
//      Blackhole   accept and read requests, never forward them and never answer (a paused server).
//      DropReplies forward requests, drop everything coming back (the server acts, the client never hears).
//      Refuse      new connections are reset right after accept; existing ones are reset within one
//                  poll tick (kTick) (a server that went down).
//  - dropNextReplyAndReset(after): the next request bytes that arrive (on any connection) are forwarded;
//    the first reply bytes on that connection are swallowed, the mode becomes `after`, and then the client
//    connection is reset (RST) and the server connection closed: "committed but the ack was lost".
//    resets() counts how many times this fault fired, so a test can check it really happened.
//  - The destructor stops accepting, closes every connection and joins every thread.
// Thread-safety: all public members may be called from any thread.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace idem::test {

class FaultProxy {
public:
    enum class Mode { Pass, Blackhole, DropReplies, Refuse };

    /// How often idle connection threads look at the mode and the stop flag.
    static constexpr std::chrono::milliseconds kTick{20};

    FaultProxy(std::string targetHost, std::uint16_t targetPort)
        : targetHost_(std::move(targetHost)), targetPort_(targetPort) {
        listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listenFd_ < 0) throw std::runtime_error(errnoText("FaultProxy: socket"));
        int one = 1;
        ::setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listenFd_, 128) != 0 ||
            ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            const std::string err = errnoText("FaultProxy: bind/listen on 127.0.0.1");
            ::close(listenFd_);
            throw std::runtime_error(err);
        }
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { acceptLoop(); });
    }

    ~FaultProxy() {
        stopping_.store(true);
        if (acceptor_.joinable()) acceptor_.join();
        std::list<Connection> conns;
        {
            std::lock_guard lock(connMu_);
            conns.swap(conns_);
        }
        for (auto& c : conns)
            if (c.thread.joinable()) c.thread.join();
        ::close(listenFd_);
    }

    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    std::uint16_t port() const { return port_; }

    void setMode(Mode m) { mode_.store(m); }
    Mode mode() const { return mode_.load(); }

    /// Arms the one-shot "forward the request, swallow the reply, reset the client" fault (see above).
    void dropNextReplyAndReset(Mode after = Mode::Pass) {
        after_.store(after);
        dropArmed_.store(true);
    }

    /// How many times dropNextReplyAndReset fired.
    std::size_t resets() const { return resets_.load(); }
    /// How many client connections were accepted (refused ones included).
    std::size_t accepted() const { return accepted_.load(); }

private:
    struct Connection {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> finished = std::make_shared<std::atomic<bool>>(false);
    };

    /// Bytes buffered per direction before the proxy stops reading that side (backpressure).
    static constexpr std::size_t kMaxBuffered = 8u << 20;

    static std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

    static void resetAndClose(int fd) {
        if (fd < 0) return;
        linger lg{1, 0};  // close with RST, not FIN
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        ::close(fd);
    }

    static void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

    int connectTarget() const {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(targetHost_.c_str(), std::to_string(targetPort_).c_str(), &hints, &res) != 0) return -1;
        int fd = -1;
        for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) continue;
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                ::close(fd);
                fd = -1;
            }
        }
        ::freeaddrinfo(res);
        if (fd >= 0) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        return fd;
    }

    void acceptLoop() {
        while (!stopping_.load()) {
            pollfd p{listenFd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(kTick.count())) <= 0) continue;
            const int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            accepted_.fetch_add(1);
            if (mode_.load() == Mode::Refuse) {
                resetAndClose(fd);
                continue;
            }
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::lock_guard lock(connMu_);
            reapFinishedLocked();
            Connection& c = conns_.emplace_back();
            c.thread = std::thread([this, fd, done = c.finished] {
                pump(fd);
                done->store(true);
            });
        }
    }

    void reapFinishedLocked() {
        for (auto it = conns_.begin(); it != conns_.end();) {
            if (it->finished->load()) {
                it->thread.join();
                it = conns_.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// Moves buffered bytes to `fd`; false on a hard error.
    static bool flush(int fd, std::string& buf) {
        while (!buf.empty()) {
            const ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
            if (n > 0) {
                buf.erase(0, static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
            return false;
        }
        return true;
    }

    /// One client connection: a single poll loop moving bytes both ways through bounded buffers.
    void pump(int client) {
        const int upstream = connectTarget();
        if (upstream < 0) {
            resetAndClose(client);
            return;
        }
        setNonBlocking(client);
        setNonBlocking(upstream);
        std::string toUpstream, toClient;
        bool doomed = false;          // this connection carries the armed dropNextReplyAndReset request
        bool upstreamClosed = false;  // the server closed: deliver what is buffered, then close
        char chunk[64 * 1024];
        for (;;) {
            if (stopping_.load()) break;
            const Mode mode = mode_.load();
            if (mode == Mode::Refuse) {
                resetAndClose(client);
                ::close(upstream);
                return;
            }
            if (upstreamClosed && toClient.empty()) break;
            pollfd p[2] = {{client, 0, 0}, {upstream, 0, 0}};
            if (toUpstream.size() < kMaxBuffered) p[0].events |= POLLIN;
            if (!toClient.empty()) p[0].events |= POLLOUT;
            if (!upstreamClosed && toClient.size() < kMaxBuffered) p[1].events |= POLLIN;
            if (!toUpstream.empty() && !upstreamClosed) p[1].events |= POLLOUT;
            const int ready = ::poll(p, 2, static_cast<int>(kTick.count()));
            if (ready < 0 && errno != EINTR) break;
            if (ready <= 0) continue;

            if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                const ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;  // client gone
                if (n > 0) {
                    const Mode now = mode_.load();
                    if (now == Mode::Blackhole) {
                        // read and forget: never forwarded, never answered
                    } else {
                        if (!doomed && dropArmed_.exchange(false)) doomed = true;
                        toUpstream.append(chunk, static_cast<std::size_t>(n));
                    }
                }
            }
            if (!upstreamClosed && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                const ssize_t n = ::recv(upstream, chunk, sizeof chunk, 0);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    upstreamClosed = true;
                    toUpstream.clear();
                } else if (n > 0) {
                    if (doomed) {
                        // The server answered the armed request: swallow the answer, switch the mode
                        // before the client can retry, then reset the client connection.
                        mode_.store(after_.load());
                        resets_.fetch_add(1);
                        resetAndClose(client);
                        ::close(upstream);
                        return;
                    }
                    const Mode now = mode_.load();
                    if (now == Mode::Pass) toClient.append(chunk, static_cast<std::size_t>(n));
                }
            }
            if (!upstreamClosed && !toUpstream.empty() && !flush(upstream, toUpstream)) {
                upstreamClosed = true;
                toUpstream.clear();
            }
            if (!toClient.empty() && !flush(client, toClient)) break;
        }
        ::close(client);
        ::close(upstream);
    }

    const std::string targetHost_;
    const std::uint16_t targetPort_;
    int listenFd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<Mode> mode_{Mode::Pass};
    std::atomic<Mode> after_{Mode::Pass};
    std::atomic<bool> dropArmed_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> resets_{0};
    std::atomic<std::size_t> accepted_{0};
    std::mutex connMu_;
    std::list<Connection> conns_;
    std::thread acceptor_;  // last: started once everything above is ready
};

}  // namespace idem::test
