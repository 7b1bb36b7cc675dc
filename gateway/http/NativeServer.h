#pragma once
// NativeServer: the lean HTTP/1.1 server edge (config `server.engine: native`, the default).
//
// Concurrency: `server.io_threads` event-loop threads (default: one per CPU of the process affinity
// mask; gateway/io/Fiber.h). Every connection is a fiber on one of them, written as blocking code: where
// it would wait (the client's next bytes, room to write, the upstream's answer, a Redis or PostgreSQL
// reply, a pool slot, a backoff) it parks and the loop serves the other connections. So a proxied request
// costs no kernel context switch, and thousands of idle keep-alive clients cost a fiber stack each
// (kStackSize, committed as touched), not a thread. One acceptor fiber hands each new connection to the
// loop with the fewest open connections, up to
// `server.max_connections`; beyond it a new connection gets a 503 `overloaded` problem (Retry-After: 1,
// Connection: close) and is closed: never queued.
//
// A connection fiber serves its connection with non-blocking POSIX sockets (TCP_NODELAY): receive
// buffer, response buffer, request and parser belong to the connection and are reused for each of its
// requests, so a request allocates only its HttpRequest strings. Requests are parsed by
// core::HttpRequestParser (pipelined requests are served in order from the buffer) and dispatched
// through the RequestDispatcher. Every answer the server makes itself is a problem+json:
//   400/501/505 request-invalid, 414/431 request-head-too-large, 413 body-too-large (the body is not
//   read: a Content-Length over the route's limit is refused from the head alone), 408 request-timeout
//   (a request started but not received within receive_timeout), 503 overloaded.
// After any of these, and after a 404/503 answered without reading a request body, the connection is
// closed (write side first, then unread input is drained briefly, so the answer is not lost to a reset).
//
// Responses: status line, headers and body in one sendmsg; Content-Length framing (none for 1xx, 204 and
// 304; a HEAD answer has no body); a Date cached per second; `Connection: close` when closing,
// `Connection: keep-alive` for an HTTP/1.0 client that asked for it. Expect: 100-continue is answered
// just before the body is read (not when the request is refused first).
//
// Timeouts: keep_alive_timeout for a connection waiting for a request's first byte; receive_timeout for
// the whole request once it has begun (slow senders get 408); send_timeout for each write;
// max_keep_alive_requests per connection.
//
// A client that disconnects does not cancel its request: the pipeline (upstream call, store write)
// runs to its end on the connection's fiber; only the write fails, quietly (access log note).
//
// stop(drain): stops accepting, closes idle keep-alive connections at once (a request whose bytes
// already arrived is still served, with Connection: close), lets requests in flight finish for up to
// `drain` (each answered with Connection: close), then shuts every connection down and waits for the
// connection fibers to end, then for the loop threads.

#include "gateway/config/Config.h"
#include "gateway/http/ServerEngine.h"
#include "gateway/io/Fiber.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace idem::http {

class RequestDispatcher;

class NativeServer final : public ServerEngine {
public:
    static constexpr std::size_t kStackSize = 256 * 1024;

    NativeServer(const config::ServerConfig& config, RequestDispatcher& dispatcher);
    ~NativeServer() override;
    NativeServer(const NativeServer&) = delete;
    NativeServer& operator=(const NativeServer&) = delete;

    void start() override;
    std::uint16_t port() const override { return port_; }
    void stop(std::chrono::milliseconds drain) override;

private:
    struct Worker;
    /// How serve() leaves a connection: closed at once, or after a half-close and a bounded drain of
    /// the client's unread input (so that the answer just written arrives).
    enum class Close { Now, Graceful };

    void acceptLoop();
    void reject(int fd);
    std::size_t leastLoaded() const;
    void connectionMain(int fd, std::size_t loop);
    /// A connection of loop `loop` is closed: its counts go down, stop() is told.
    void connectionEnded(std::size_t loop);
    Close serve(int fd, Worker& worker);

    config::ServerConfig config_;
    RequestDispatcher& dispatcher_;
    int listenFd_ = -1;
    std::uint16_t port_ = 0;
    std::vector<std::unique_ptr<io::Loop>> loops_;
    std::vector<std::thread> threads_;  ///< one per loop
    std::unique_ptr<std::atomic<int>[]> perLoop_;  ///< open connections on each loop
    std::atomic<bool> stopping_{false};
    std::atomic<int> connections_{0};   ///< open client connections
    std::atomic<int> lingering_{0};     ///< refused connections being drained before their close

    std::mutex mutex_;
    std::condition_variable changed_;       ///< stop() waits here for the acceptor and connections to end
    std::unordered_set<Worker*> workers_;   ///< every open connection
    bool acceptorRunning_ = false;
    std::chrono::steady_clock::time_point lastRefusalLog_{};  ///< acceptor only: refusals are logged once a second
};

}  // namespace idem::http
