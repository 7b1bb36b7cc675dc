#include "gateway/http/NativeServer.h"

#include "gateway/core/HttpRequestParser.h"
#include "gateway/core/Problem.h"
#include "gateway/http/Log.h"
#include "gateway/http/RequestDispatcher.h"

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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace idem::http {

using Clock = std::chrono::steady_clock;
using Parser = core::HttpRequestParser;

namespace {

constexpr std::size_t kInitialBuffer = 16 * 1024;
constexpr std::size_t kMaxBuffer = 128 * 1024;  ///< over the parser's head limits (8 KiB + 64 KiB)
constexpr auto kThreadLinger = std::chrono::seconds(60);
constexpr auto kLingerTime = std::chrono::milliseconds(2000);  ///< draining input before a close
constexpr std::size_t kLingerBytes = 256 * 1024;
constexpr std::size_t kMaxLingering = 1024;  ///< refused connections the acceptor closes gracefully
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

/// Writes every byte of the iovecs (blocking socket, SO_SNDTIMEO bounds each call). False on error.
bool sendAll(int fd, iovec* iov, int count) {
    while (count > 0) {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(count);
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
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

void setTimeout(int fd, int option, std::chrono::milliseconds ms) {
    const auto count = std::max<std::int64_t>(ms.count(), 1);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(count / 1000);
    tv.tv_usec = static_cast<suseconds_t>((count % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

/// Half-closes, then reads and drops what the client still sends (bounded), so that the answer
/// already written is not destroyed by a reset when unread input meets close().
void drainBeforeClose(int fd) {
    ::shutdown(fd, SHUT_WR);
    const auto until = Clock::now() + kLingerTime;
    char sink[4096];
    std::size_t dropped = 0;
    while (dropped < kLingerBytes) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;
        const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        dropped += static_cast<std::size_t>(n);
    }
}

}  // namespace

/// A connection thread's own state, reused for every request and connection it serves.
struct NativeServer::Worker {
    std::atomic<int> fd{-1};        ///< the connection being served, -1 between connections
    std::atomic<bool> idle{false};  ///< waiting for the first byte of a request
    std::vector<char> in = std::vector<char>(kInitialBuffer);
    std::size_t begin = 0;  ///< unconsumed input: in[begin, end)
    std::size_t end = 0;
    std::string head;  ///< rendered response head
    core::HttpRequest request;
    Parser parser;
    std::int64_t receiveTimeoutMs = -1;  ///< the connection's current SO_RCVTIMEO
};

NativeServer::NativeServer(const config::ServerConfig& config, RequestDispatcher& dispatcher)
    : config_(config), dispatcher_(dispatcher) {}

NativeServer::~NativeServer() {
    if (acceptor_.joinable()) stop(std::chrono::milliseconds(0));
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
    wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakeFd_ < 0) {
        ::close(fd);
        throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    listenFd_ = fd;
    acceptor_ = std::thread([this] { acceptLoop(); });
}

void NativeServer::acceptLoop() {
    // Signals are for the application's own threads (SIGTERM, SIGHUP): this thread and the connection
    // threads it starts (they inherit the mask) never take one.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    for (;;) {
        // Refused connections: drop what they send, close on EOF or after kRefusedLinger.
        const auto now = Clock::now();
        std::erase_if(lingering_, [&](const Lingering& l) {
            char sink[1024];
            ssize_t n;
            while ((n = ::recv(l.fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
            }
            const bool done = n == 0 || (errno != EAGAIN && errno != EINTR) || now >= l.until;
            if (done) ::close(l.fd);
            return done;
        });

        pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
        const int ready = ::poll(fds, 2, lingering_.empty() ? -1 : 50);
        if (ready < 0 && errno != EINTR) {
            logError(std::string("native server: poll failed: ") + std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (fds[1].revents != 0 || stopping_.load()) break;
        if ((fds[0].revents & POLLIN) == 0) continue;
        for (;;) {
            const int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0) {
                handOff(fd);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of resources; let some connections end first.
            logWarning(std::string("native server: accept failed: ") + std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            break;
        }
    }
    for (const auto& l : lingering_) ::close(l.fd);
    lingering_.clear();
}

void NativeServer::handOff(int fd) {
    bool spawn = false;
    {
        std::lock_guard lock(mutex_);
        if (connections_ >= config_.maxConnections) {
            // fall through to reject() below, outside the lock
        } else {
            ++connections_;
            pending_.push_back(fd);
            if (static_cast<std::size_t>(idleThreads_) >= pending_.size()) work_.notify_one();
            else spawn = true;
            fd = -1;
        }
    }
    if (fd >= 0) {
        reject(fd);
        return;
    }
    if (spawn && !spawnWorker()) {
        // No thread for it: refuse the connection still waiting (this one or an earlier one).
        int refused = -1;
        {
            std::lock_guard lock(mutex_);
            if (!pending_.empty() && static_cast<std::size_t>(idleThreads_) < pending_.size()) {
                refused = pending_.back();
                pending_.pop_back();
                --connections_;
            }
        }
        if (refused >= 0) reject(refused);
    }
}

void NativeServer::reject(int fd) {
    core::HttpResponse problem = core::makeProblem(
        503, core::ProblemType::Overloaded,
        "the gateway is serving its limit of " + std::to_string(config_.maxConnections) + " connections");
    problem.headers.emplace_back("Retry-After", "1");
    std::string head;
    renderHead(head, problem, false, false, 1);
    head += *problem.body;
    // The acceptor never blocks on a client: whatever does not fit the socket buffer is dropped.
    [[maybe_unused]] const ssize_t n = ::send(fd, head.data(), head.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    if (lingering_.size() >= kMaxLingering) {
        ::close(lingering_.front().fd);
        lingering_.erase(lingering_.begin());
    }
    const auto now = Clock::now();
    lingering_.push_back({fd, now + kRefusedLinger});
    if (now - lastRefusalLog_ >= std::chrono::seconds(1)) {
        lastRefusalLog_ = now;
        logWarning("native server: refusing connections: " + std::to_string(config_.maxConnections) +
                   " open (server.max_connections)");
    }
}

bool NativeServer::spawnWorker() {
    {
        std::lock_guard lock(mutex_);
        ++threads_;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kStackSize);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    const int rc = pthread_create(&thread, &attr, &NativeServer::workerMain, this);
    pthread_attr_destroy(&attr);
    if (rc == 0) return true;
    logWarning(std::string("native server: cannot start a connection thread: ") + std::strerror(rc));
    std::lock_guard lock(mutex_);
    --threads_;
    changed_.notify_all();
    return false;
}

void* NativeServer::workerMain(void* self) {
    auto* server = static_cast<NativeServer*>(self);
    Worker worker;
    {
        std::lock_guard lock(server->mutex_);
        server->workers_.push_back(&worker);
    }
    server->workerLoop(worker);
    return nullptr;
}

void NativeServer::workerLoop(Worker& worker) {
    for (;;) {
        int fd = -1;
        {
            std::unique_lock lock(mutex_);
            ++idleThreads_;
            work_.wait_for(lock, kThreadLinger, [&] { return !pending_.empty() || stopping_.load(); });
            --idleThreads_;
            if (pending_.empty()) {
                // Idle for kThreadLinger, or stopping: this thread ends. The Worker lives on this
                // thread's stack: unregister it while the lock is held, and touch nothing after.
                std::erase(workers_, &worker);
                --threads_;
                changed_.notify_all();
                return;
            }
            fd = pending_.front();
            pending_.pop_front();
            worker.fd.store(fd);
        }
        if (serve(fd, worker) == Close::Graceful) drainBeforeClose(fd);
        {
            // Unregistered before close(): stop() must never shut down a descriptor number reused since.
            std::lock_guard lock(mutex_);
            worker.fd.store(-1);
            --connections_;
            changed_.notify_all();
        }
        ::close(fd);
        // A large head grew the buffer; give the memory back between connections.
        if (worker.in.size() > kInitialBuffer) {
            worker.in.resize(kInitialBuffer);
            worker.in.shrink_to_fit();
        }
    }
}

NativeServer::Close NativeServer::serve(int fd, Worker& w) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    setTimeout(fd, SO_SNDTIMEO, config_.sendTimeout);
    w.receiveTimeoutMs = -1;
    w.begin = w.end = 0;
    Parser& parser = w.parser;
    core::HttpRequest& request = w.request;
    int served = 0;

    // Waits for more input (blocking recv under SO_RCVTIMEO). 1: bytes arrived; 0: the peer closed;
    // -1: timed out; -2: another error.
    const auto receive = [&](std::chrono::milliseconds timeout) -> int {
        if (timeout.count() != w.receiveTimeoutMs) {
            setTimeout(fd, SO_RCVTIMEO, timeout);
            w.receiveTimeoutMs = timeout.count();
        }
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
        for (;;) {
            const ssize_t n = ::recv(fd, w.in.data() + w.end, w.in.size() - w.end, 0);
            if (n > 0) {
                w.end += static_cast<std::size_t>(n);
                return 1;
            }
            if (n == 0) return 0;
            if (errno == EINTR) continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
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
            sendAll(fd, iov, 2);
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
                const int got = receive(std::max(remaining(*deadline), std::chrono::milliseconds(1)));
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
            const int got = receive(config_.keepAliveTimeout);
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
                sendAll(fd, &iov, 1);
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
                const int got = receive(std::max(remaining(*deadline), std::chrono::milliseconds(1)));
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
        const bool written = sendAll(fd, iov, withBody ? 2 : 1);
        dispatcher_.finish(exchange, request, response.status, result->outcome, result->keyForLog,
                           written ? "" : "client gone before the response was written");
        if (!written) return Close::Now;
        if (!keepAlive) return Close::Graceful;
    }
}

void NativeServer::stop(std::chrono::milliseconds drain) {
    if (!acceptor_.joinable()) return;
    stopping_.store(true);
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wakeFd_, &one, sizeof one);
    acceptor_.join();
    ::close(listenFd_);
    listenFd_ = -1;

    std::unique_lock lock(mutex_);
    // Idle keep-alive connections: closed now. A thread that turns idle after this sees stopping_.
    for (Worker* w : workers_)
        if (const int fd = w->fd.load(); fd >= 0 && w->idle.load()) ::shutdown(fd, SHUT_RD);
    work_.notify_all();
    // Requests in flight: up to `drain` to finish (each answers with Connection: close).
    changed_.wait_until(lock, Clock::now() + drain, [&] { return connections_ == 0; });
    // Then every connection is shut down: blocked reads and writes fail at once; a pipeline still
    // running finishes its upstream call and store write, then fails its write.
    for (Worker* w : workers_)
        if (const int fd = w->fd.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
    changed_.wait(lock, [&] { return threads_ == 0; });
    for (const int fd : pending_) ::close(fd);
    pending_.clear();
    lock.unlock();
    ::close(wakeFd_);
    wakeFd_ = -1;
}

}  // namespace idem::http
