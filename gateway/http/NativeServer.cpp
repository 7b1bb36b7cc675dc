#include "gateway/http/NativeServer.h"

#include "gateway/core/HttpRequestParser.h"
#include "gateway/core/Problem.h"
#include "gateway/http/Log.h"
#include "gateway/http/RequestDispatcher.h"
#include "gateway/io/Fiber.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <ctime>
#include <optional>
#include <stdexcept>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace idem::http {

using Clock = std::chrono::steady_clock;
using Parser = core::HttpRequestParser;

namespace {

constexpr std::size_t kInitialBuffer = 16 * 1024;
constexpr std::size_t kMaxBuffer = 128 * 1024;  ///< over the parser's head limits (8 KiB + 64 KiB)
constexpr auto kAcceptSlice = std::chrono::milliseconds(200);  ///< the acceptor looks at stopping_ this often
constexpr auto kLingerTime = std::chrono::milliseconds(2000);  ///< draining input before a close
constexpr std::size_t kLingerBytes = 256 * 1024;
constexpr int kMaxLingering = 1024;  ///< refused connections closed gracefully at once; beyond: closed now
constexpr auto kRefusedLinger = std::chrono::milliseconds(1000);

std::string_view reasonPhrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 103: return "Early Hints";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 203: return "Non-Authoritative Information";
        case 204: return "No Content";
        case 205: return "Reset Content";
        case 206: return "Partial Content";
        case 207: return "Multi-Status";
        case 300: return "Multiple Choices";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 303: return "See Other";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 402: return "Payment Required";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 407: return "Proxy Authentication Required";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 417: return "Expectation Failed";
        case 421: return "Misdirected Request";
        case 422: return "Unprocessable Content";
        case 423: return "Locked";
        case 424: return "Failed Dependency";
        case 425: return "Too Early";
        case 426: return "Upgrade Required";
        case 428: return "Precondition Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 451: return "Unavailable For Legal Reasons";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        case 507: return "Insufficient Storage";
        case 511: return "Network Authentication Required";
        default: return status < 200 ? "Informational" : status < 300 ? "Success" : status < 400 ? "Redirection"
                      : status < 500 ? "Client Error" : "Server Error";
    }
}

/// IMF-fixdate of the current second, formatted once per second per thread.
std::string_view httpDate() {
    thread_local std::time_t cachedSecond = -1;
    thread_local char text[32];
    const std::time_t now = std::time(nullptr);
    if (now != cachedSecond) {
        static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm tm{};
        gmtime_r(&now, &tm);
        std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                      kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cachedSecond = now;
    }
    return {text, 29};
}

/// Headers the server frames or dates itself; an upstream's or a record's are never passed on.
bool isFramingHeader(std::string_view name) {
    switch (name.size()) {
        case 4: return core::iequals(name, "Date");
        case 10: return core::iequals(name, "Connection") || core::iequals(name, "Keep-Alive");
        case 14: return core::iequals(name, "Content-Length");
        case 17: return core::iequals(name, "Transfer-Encoding");
        default: return false;
    }
}

bool hasLineBreak(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

void appendNumber(std::string& out, std::uint64_t n) {
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, r.ptr);
}

/// Writes every byte of the iovecs (non-blocking socket; each wait for room is bounded by `timeout`,
/// in io::waitFd). False on error or timeout.
bool sendAll(int fd, iovec* iov, int count, std::chrono::milliseconds timeout) {
    while (count > 0) {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(count);
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && io::waitFd(fd, POLLOUT, Clock::now() + timeout) > 0)
                continue;
            return false;
        }
        auto left = static_cast<std::size_t>(n);
        while (count > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            ++iov;
            --count;
        }
        if (count > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + left;
            iov->iov_len -= left;
        }
    }
    return true;
}

/// Renders the status line and headers of `response` into `out` (Content-Length framing, Date,
/// Connection). Returns whether the body follows.
bool renderHead(std::string& out, const core::HttpResponse& response, bool keepAlive, bool headRequest, int minorVersion) {
    const int status = response.status;
    out.clear();
    out += "HTTP/1.1 ";
    appendNumber(out, static_cast<std::uint64_t>(status < 100 || status > 999 ? 500 : status));
    out += ' ';
    if (!response.reason.empty() && !hasLineBreak(response.reason)) out += response.reason;
    else out += reasonPhrase(status);
    out += "\r\n";
    for (const auto& [name, value] : response.headers) {
        if (isFramingHeader(name) || hasLineBreak(name) || hasLineBreak(value)) continue;
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    out += "Date: ";
    out += httpDate();
    out += "\r\n";
    // RFC 9110 §8.6: no Content-Length in 1xx and 204; a 304's would describe another response. A HEAD
    // answer announces the length of the body it does not carry, when it knows it.
    const bool bodyless = status < 200 || status == 204 || status == 304;
    if (!bodyless && (!headRequest || response.body)) {
        out += "Content-Length: ";
        appendNumber(out, response.body ? response.body->size() : 0);
        out += "\r\n";
    }
    if (!keepAlive) out += "Connection: close\r\n";
    else if (minorVersion == 0) out += "Connection: keep-alive\r\n";
    out += "\r\n";
    return !bodyless && !headRequest && response.body && !response.body->empty();
}

core::HttpResponse parseProblem(const core::RequestParseError& error) {
    core::ProblemType type = core::ProblemType::RequestInvalid;
    if (error.status == 413) type = core::ProblemType::BodyTooLarge;
    else if (error.status == 414 || error.status == 431) type = core::ProblemType::RequestHeadTooLarge;
    return core::makeProblem(error.status, type, error.detail);
}

core::HttpResponse timeoutProblem() {
    return core::makeProblem(408, core::ProblemType::RequestTimeout, "the request was not received in time");
}

/// Half-closes, then reads and drops what the client still sends (bounded), so that the answer
/// already written is not destroyed by a reset when unread input meets close().
/// `stop`, when given and set, ends the drain early.
void drainBeforeClose(int fd, Clock::duration linger, const std::atomic<bool>* stop = nullptr) {
    ::shutdown(fd, SHUT_WR);
    const auto until = Clock::now() + linger;
    char sink[4096];
    std::size_t dropped = 0;
    while (dropped < kLingerBytes && Clock::now() < until && !(stop && stop->load())) {
        const int ready = io::waitFd(fd, POLLIN, until);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;
        const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        dropped += static_cast<std::size_t>(n);
    }
}

}  // namespace


/// A connection's state, on its fiber's stack; registered so that stop() can reach its descriptor.
struct NativeServer::Worker {
    std::atomic<int> fd{-1};        ///< the connection being served, -1 once it is closing
    std::atomic<bool> idle{false};  ///< waiting for the first byte of a request
    std::vector<char> in = std::vector<char>(kInitialBuffer);
    std::size_t begin = 0;  ///< unconsumed input: in[begin, end)
    std::size_t end = 0;
    std::string head;  ///< rendered response head
    core::HttpRequest request;
    Parser parser;
};

NativeServer::NativeServer(const config::ServerConfig& config, RequestDispatcher& dispatcher)
    : config_(config), dispatcher_(dispatcher) {}

NativeServer::~NativeServer() {
    if (!threads_.empty()) stop(std::chrono::milliseconds(0));
}

void NativeServer::start() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(config_.port);
    const std::string where = config_.host + ":" + service;
    if (const int rc = ::getaddrinfo(config_.host.c_str(), service.c_str(), &hints, &found); rc != 0)
        throw std::runtime_error("cannot resolve " + where + ": " + ::gai_strerror(rc));
    int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ::freeaddrinfo(found);
        throw std::runtime_error("cannot listen on " + where + ": " + std::strerror(errno));
    }
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, std::max(64, config_.maxQueued)) != 0) {
        const int e = errno;
        ::freeaddrinfo(found);
        ::close(fd);
        throw std::runtime_error("cannot listen on " + where + ": " + std::strerror(e));
    }
    ::freeaddrinfo(found);
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    listenFd_ = fd;

    int count = config_.ioThreads;
    if (count <= 0) {
        // One loop per CPU this process may run on (its affinity mask: taskset, a container's cpuset),
        // not per CPU of the machine.
        cpu_set_t allowed;
        CPU_ZERO(&allowed);
        count = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed)
                                                                       : static_cast<int>(std::thread::hardware_concurrency());
        count = std::max(1, count);
    }
    for (int i = 0; i < count; ++i) loops_.push_back(std::make_unique<io::Loop>(kStackSize));
    perLoop_ = std::make_unique<std::atomic<int>[]>(loops_.size());
    acceptorRunning_ = true;
    loops_[0]->spawn([this] { acceptLoop(); },
                     [this] {
                         logError("native server: cannot start the acceptor fiber: no connection is accepted");
                         std::lock_guard lock(mutex_);
                         acceptorRunning_ = false;
                         changed_.notify_all();
                     });
    for (auto& loop : loops_) {
        threads_.emplace_back([loop = loop.get()] {
            // Signals are for the application's own threads (SIGTERM, SIGHUP), never a loop thread.
            sigset_t all;
            sigfillset(&all);
            pthread_sigmask(SIG_BLOCK, &all, nullptr);
            loop->run();
        });
    }
}

std::size_t NativeServer::leastLoaded() const {
    std::size_t best = 0;
    for (std::size_t i = 1; i < loops_.size(); ++i)
        if (perLoop_[i].load() < perLoop_[best].load()) best = i;
    return best;
}

void NativeServer::acceptLoop() {
    // One acceptor fiber (on the first loop) spreads connections over the loops, each to the loop with
    // the fewest open connections: every loop thread serves a fair share of the clients.
    while (!stopping_.load()) {
        const int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            if (connections_.load() >= config_.maxConnections) {
                reject(fd);
                continue;
            }
            connections_.fetch_add(1);
            const std::size_t i = leastLoaded();
            perLoop_[i].fetch_add(1);
            loops_[i]->spawn([this, fd, i] { connectionMain(fd, i); },
                             [this, fd, i] {  // no fiber for it (out of memory or map count): closed at once
                                 ::close(fd);
                                 connectionEnded(i);
                             });
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            io::waitFd(listenFd_, POLLIN, Clock::now() + kAcceptSlice);
            continue;
        }
        if (stopping_.load()) break;
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of resources; let some connections end first.
        logWarning(std::string("native server: accept failed: ") + std::strerror(errno));
        io::sleepFor(std::chrono::milliseconds(50));
    }
    std::lock_guard lock(mutex_);
    acceptorRunning_ = false;
    changed_.notify_all();
}

void NativeServer::reject(int fd) {
    core::HttpResponse problem = core::makeProblem(
        503, core::ProblemType::Overloaded,
        "the gateway is serving its limit of " + std::to_string(config_.maxConnections) + " connections");
    problem.headers.emplace_back("Retry-After", "1");
    std::string head;
    renderHead(head, problem, false, false, 1);
    head += *problem.body;
    // Never waits on the client: whatever does not fit the socket buffer is dropped.
    [[maybe_unused]] const ssize_t n = ::send(fd, head.data(), head.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    const auto now = Clock::now();
    if (now - lastRefusalLog_ >= std::chrono::seconds(1)) {
        lastRefusalLog_ = now;
        logWarning("native server: refusing connections: " + std::to_string(config_.maxConnections) +
                   " open (server.max_connections)");
    }
    if (lingering_.load() >= kMaxLingering) {
        ::close(fd);
        return;
    }
    // Its input is drained for a moment before the close, so the 503 is not destroyed by a reset.
    lingering_.fetch_add(1);
    io::Loop::current()->spawn(
        [this, fd] {
            drainBeforeClose(fd, kRefusedLinger, &stopping_);
            ::close(fd);
            lingering_.fetch_sub(1);
        },
        [this, fd] {
            ::close(fd);
            lingering_.fetch_sub(1);
        });
}

void NativeServer::connectionEnded(std::size_t loop) {
    perLoop_[loop].fetch_sub(1);
    std::lock_guard lock(mutex_);
    connections_.fetch_sub(1);
    changed_.notify_all();
}

void NativeServer::connectionMain(int fd, std::size_t loop) {
    Worker worker;
    worker.fd.store(fd);
    {
        std::lock_guard lock(mutex_);
        workers_.insert(&worker);
    }
    {
        io::Watch watch(fd);  // in the loop's epoll set for the connection's life: no epoll_ctl per wait
        if (serve(fd, worker) == Close::Graceful) drainBeforeClose(fd, kLingerTime);
    }
    {
        // Unregistered before close(): stop() must never shut down a descriptor number reused since.
        std::lock_guard lock(mutex_);
        workers_.erase(&worker);
    }
    ::close(fd);
    connectionEnded(loop);
}

NativeServer::Close NativeServer::serve(int fd, Worker& w) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    w.begin = w.end = 0;
    Parser& parser = w.parser;
    core::HttpRequest& request = w.request;
    int served = 0;

    // Waits for more input (io::waitFd: the fiber parks, the loop serves others). `waitFirst`: nothing
    // is expected yet (between requests), so wait before the first recv instead of after a failed one.
    // 1: bytes arrived; 0: the peer closed; -1: timed out; -2: another error.
    const auto receive = [&](std::chrono::milliseconds timeout, bool waitFirst) -> int {
        if (w.begin == w.end) w.begin = w.end = 0;
        if (w.end == w.in.size()) {
            if (w.begin > 0) {
                std::memmove(w.in.data(), w.in.data() + w.begin, w.end - w.begin);
                w.end -= w.begin;
                w.begin = 0;
            } else if (w.in.size() < kMaxBuffer) {
                w.in.resize(std::min(w.in.size() * 2, kMaxBuffer));
            } else {
                return -2;  // unreachable: the parser's head limits fail a request first
            }
        }
        const auto deadline = Clock::now() + std::max(timeout, std::chrono::milliseconds(1));
        if (waitFirst) {
            const int ready = io::waitFd(fd, POLLIN, deadline);
            if (ready == 0) return -1;
            if (ready < 0) return -2;
        }
        for (;;) {
            const ssize_t n = ::recv(fd, w.in.data() + w.end, w.in.size() - w.end, MSG_DONTWAIT);
            if (n > 0) {
                w.end += static_cast<std::size_t>(n);
                return 1;
            }
            if (n == 0) return 0;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -2;
            const int ready = io::waitFd(fd, POLLIN, deadline);
            if (ready == 0) return -1;
            if (ready < 0) return -2;
        }
    };
    const auto remaining = [](Clock::time_point deadline) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    };
    // Answers a request the server refuses itself (no Exchange: nothing was dispatched); then closes.
    const auto refuse = [&](const core::HttpResponse& problem) {
        if (renderHead(w.head, problem, false, false, 1)) {
            iovec iov[2] = {{w.head.data(), w.head.size()},
                            {const_cast<char*>(problem.body->data()), problem.body->size()}};
            sendAll(fd, iov, 2, config_.sendTimeout);
        }
        if (logEnabled(LogLevel::Debug))
            logLine(LogLevel::Debug, "native server: refused a malformed request with " + std::to_string(problem.status));
        return Close::Graceful;
    };

    for (;;) {
        parser.reset();
        // ---- the head
        std::optional<Clock::time_point> deadline;  // set once the request has begun and must wait for more
        Parser::Step step{Parser::Status::NeedMore, 0};
        for (;;) {
            if (w.end > w.begin) {
                step = parser.parseHead({w.in.data() + w.begin, w.end - w.begin}, request);
                if (step.status != Parser::Status::NeedMore) break;
                if (!deadline) deadline = Clock::now() + config_.receiveTimeout;
                const int got = receive(std::max(remaining(*deadline), std::chrono::milliseconds(1)), false);
                if (got == 1) continue;
                return got == -1 ? refuse(timeoutProblem()) : Close::Now;
            }
            // Between requests: an idle keep-alive connection, closed at once when the server stops
            // (after one last look for a request that already arrived).
            w.begin = w.end = 0;
            w.idle.store(true);
            if (stopping_.load()) {
                const ssize_t n = ::recv(fd, w.in.data(), w.in.size(), MSG_DONTWAIT);
                w.idle.store(false);
                if (n <= 0) return Close::Now;
                w.end = static_cast<std::size_t>(n);
                continue;
            }
            const int got = receive(config_.keepAliveTimeout, served > 0);
            w.idle.store(false);
            if (got != 1) return Close::Now;  // closed by the client, idle too long, or shut down by stop()
        }
        if (step.status == Parser::Status::Error) return refuse(parseProblem(parser.error()));
        w.begin += step.consumed;
        const core::RequestHead& head = parser.head();
        const bool headRequest = request.method == "HEAD";

        // ---- admission, body, dispatch
        RequestDispatcher::Exchange exchange(dispatcher_);
        bool keepAlive = head.keepAlive;
        std::optional<PipelineResult> result = dispatcher_.admit(exchange, request);
        if (result) {
            if (head.framing != core::BodyFraming::None) keepAlive = false;  // the body is not read
        } else if (head.framing == core::BodyFraming::Length && head.contentLength > exchange.bodyLimit()) {
            result = dispatcher_.bodyTooLarge(exchange, request);
            keepAlive = false;
        } else if (head.framing != core::BodyFraming::None) {
            if (head.expectContinue && w.end == w.begin) {
                static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
                iovec iov{const_cast<char*>(kContinue), sizeof kContinue - 1};
                sendAll(fd, &iov, 1, config_.sendTimeout);
            }
            for (;;) {
                const auto body = parser.parseBody({w.in.data() + w.begin, w.end - w.begin}, request.body,
                                                   exchange.bodyLimit());
                w.begin += body.consumed;
                if (body.status == Parser::Status::Done) break;
                if (body.status == Parser::Status::Error) {
                    const auto& error = parser.error();
                    result = error.status == 413 ? dispatcher_.bodyTooLarge(exchange, request)
                                                 : PipelineResult{parseProblem(error), Outcome::Rejected, {}};
                    keepAlive = false;
                    break;
                }
                if (!deadline) deadline = Clock::now() + config_.receiveTimeout;
                const int got = receive(std::max(remaining(*deadline), std::chrono::milliseconds(1)), false);
                if (got == 1) continue;
                if (got == -1) {
                    result = PipelineResult{timeoutProblem(), Outcome::Rejected, {}};
                    keepAlive = false;
                    break;
                }
                // The client went away mid-body: nothing was begun, nothing to answer.
                dispatcher_.finish(exchange, request, 0, Outcome::Rejected, "", "client closed mid-body");
                return Close::Now;
            }
        }
        if (!result) result = dispatcher_.run(exchange, request);

        // ---- the answer
        ++served;
        if (stopping_.load() || (config_.maxKeepAliveRequests > 0 && served >= config_.maxKeepAliveRequests))
            keepAlive = false;
        const core::HttpResponse& response = result->response;
        iovec iov[2] = {{nullptr, 0}, {nullptr, 0}};
        const bool withBody = renderHead(w.head, response, keepAlive, headRequest, head.minorVersion);
        iov[0] = {w.head.data(), w.head.size()};
        if (withBody) iov[1] = {const_cast<char*>(response.body->data()), response.body->size()};
        const bool written = sendAll(fd, iov, withBody ? 2 : 1, config_.sendTimeout);
        dispatcher_.finish(exchange, request, response.status, result->outcome, result->keyForLog,
                           written ? "" : "client gone before the response was written");
        if (!written) return Close::Now;
        if (!keepAlive) return Close::Graceful;
        // A large head grew the buffer; give the memory back once it is consumed.
        if (w.in.size() > kInitialBuffer && w.begin == w.end) {
            w.in.resize(kInitialBuffer);
            w.in.shrink_to_fit();
            w.begin = w.end = 0;
        }
    }
}

void NativeServer::stop(std::chrono::milliseconds drain) {
    if (threads_.empty()) return;
    stopping_.store(true);
    // Wakes the acceptor at once (accept fails on a shut-down listening socket); it also looks every
    // kAcceptSlice.
    ::shutdown(listenFd_, SHUT_RD);
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !acceptorRunning_; });
    ::close(listenFd_);
    listenFd_ = -1;
    // Idle keep-alive connections: closed now. A fiber that turns idle after this sees stopping_.
    for (Worker* w : workers_)
        if (const int fd = w->fd.load(); fd >= 0 && w->idle.load()) ::shutdown(fd, SHUT_RD);
    // Requests in flight: up to `drain` to finish (each answers with Connection: close).
    changed_.wait_until(lock, Clock::now() + drain, [&] { return connections_.load() == 0; });
    // Then every connection is shut down: waits for the client end at once; a pipeline still running
    // finishes its upstream call and store write, then fails its write.
    for (Worker* w : workers_)
        if (const int fd = w->fd.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
    lock.unlock();
    for (auto& loop : loops_) loop->stop();  // each returns once its last fiber has ended
    for (auto& t : threads_) t.join();
    threads_.clear();
    loops_.clear();
}

}  // namespace idem::http
