#pragma once
// End-to-end test support: real processes (idemgate, idemgate-mock-upstream, redis-server...) on free
// loopback ports, stopped by PID, and a raw HTTP/1.1 client that shows the exact bytes on the wire
// (framing, repeated header lines) so tests can check what a real client would see.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace idem::test {

using Headers = std::vector<std::pair<std::string, std::string>>;
using Millis = std::chrono::milliseconds;

/// A free TCP port on 127.0.0.1 (bound once with port 0, then released).
std::uint16_t freePort();

/// Directory of the built executables (IDEM_BINARY_DIR, set by CTest).
std::string binaryDir();
/// Source root (IDEM_SOURCE_DIR, set by CTest).
std::string sourceDir();

/// A fresh temporary directory, removed with its contents when the object dies.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }
    void write(const std::string& name, const std::string& content) const;

private:
    std::string path_;
};

/// A child process; stdout and stderr go to `logPath`. Killed (TERM, then KILL) when destroyed.
class Process {
public:
    Process(std::vector<std::string> argv, std::string logPath);
    /// The same, with `extraEnv` ("NAME=VALUE" each) added to this process's environment; a name already
    /// set is replaced.
    Process(std::vector<std::string> argv, std::string logPath, const std::vector<std::string>& extraEnv);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const;
    /// Waits for the process to exit; returns its exit status (or 128+signal), nullopt on timeout.
    std::optional<int> wait(Millis timeout);
    bool running();
    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status.
    int stop(Millis grace = Millis(5000));
    std::string log() const;

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::string logPath_;
};

/// Waits until something accepts TCP connections on 127.0.0.1:port.
bool waitForPort(std::uint16_t port, Millis timeout);

struct Response {
    int status = 0;
    std::string reason;
    Headers headers;
    std::string body;
    bool chunked = false;        ///< the response used Transfer-Encoding: chunked
    bool closed = false;         ///< the server closed the connection after it
    std::string rawHead;         ///< status line and header block as received

    std::optional<std::string> header(const std::string& name) const;
    std::size_t count(const std::string& name) const;
};

struct Request {
    std::string method = "POST";
    std::string target = "/v1/payments";
    Headers headers;
    std::string body;
    bool contentLength = true;   ///< add Content-Length for the body
};

/// A client connection: several requests may go over it (keep-alive). Throws std::runtime_error when
/// the server closes or resets the connection before a complete response, or on timeout.
class Connection {
public:
    explicit Connection(std::uint16_t port, Millis timeout = Millis(10000));
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void sendRaw(const std::string& bytes);
    void send(const Request& request);
    Response receive();
    Response roundTrip(const Request& request) {
        send(request);
        return receive();
    }
    /// Close with FIN, or with RST (SO_LINGER 0).
    void close(bool reset = false);
    /// Half-close: FIN to the server, the read side stays open.
    void shutdownWrite();
    /// Bytes that arrive (or are already buffered) within `wait` after a complete response: a correctly
    /// framed response leaves none.
    std::string pending(Millis wait);

private:
    Response receiveOne();
    bool fill();
    int fd_ = -1;
    Millis timeout_;
    std::string buffer_;
};

/// One request on a fresh connection.
Response http(std::uint16_t port, const Request& request, Millis timeout = Millis(10000));

/// One request the mock received (GET /__requests).
struct UpstreamRequest {
    std::string method;
    std::string path;
    std::string query;
    std::string key;        ///< the Idempotency-Key it received ("" when none)
    bool hasKey = false;
    Headers headers;
    std::size_t bodyLength = 0;
    std::string body;       ///< its first 4 KiB
};

/// The mock upstream (loadtest/mock), started on a free port.
class MockUpstream {
public:
    explicit MockUpstream(const std::string& logDir);
    /// Started on this fixed port (for tests where the upstream comes up after the gateway).
    MockUpstream(const std::string& logDir, std::uint16_t port);
    std::uint16_t port() const { return port_; }
    /// Executions per received Idempotency-Key, from GET /__stats.
    std::map<std::string, int> executions();
    int executions(const std::string& key);
    int total();
    /// Recorded requests for a key, from GET /__requests?key=: each request's headers.
    std::vector<Headers> requestHeaders(const std::string& key);
    /// Every recorded request, oldest first.
    std::vector<UpstreamRequest> requests();
    /// POST /__script with this JSON body.
    void script(const std::string& json);
    void reset();
    Process& process() { return *process_; }

private:
    std::uint16_t port_ = 0;
    std::unique_ptr<Process> process_;
};

/// Further command line and environment for an idemgate process (config layering tests).
struct GatewayOptions {
    std::vector<std::string> args;  ///< appended after --config FILE, e.g. {"--set", "routes.payments.ttl=48h"}
    std::vector<std::string> env;   ///< "NAME=VALUE" each, added to the inherited environment
};

/// An idemgate process with the given YAML config (written to a file in `dir`).
class Gateway {
public:
    Gateway(const TempDir& dir, const std::string& name, const std::string& yaml, std::uint16_t port);
    Gateway(const TempDir& dir, const std::string& name, const std::string& yaml, std::uint16_t port,
            GatewayOptions options);
    std::uint16_t port() const { return port_; }
    Process& process() { return *process_; }
    std::string log() const { return process_->log(); }
    const std::string& configPath() const { return configPath_; }
    /// Replaces the config file's content (written aside, then renamed over it); the running process
    /// sees it on its next reload (SIGHUP) or restart.
    void rewriteConfig(const std::string& yaml) const;
    /// SIGTERM (waits for a clean exit), then starts the same config again on the same port.
    void restart();

private:
    void start();
    std::string configPath_;
    std::string logPath_;
    std::uint16_t port_;
    GatewayOptions options_;
    std::unique_ptr<Process> process_;
};

/// Runs a program to completion (bounded); returns its exit status and its stdout+stderr.
struct RunResult {
    int status = -1;
    std::string output;
};
RunResult run(std::vector<std::string> argv, const TempDir& dir, Millis timeout = Millis(20000));
/// The same, with `extraEnv` ("NAME=VALUE" each) added to the program's environment.
RunResult run(std::vector<std::string> argv, const TempDir& dir, const std::vector<std::string>& extraEnv,
              Millis timeout = Millis(20000));

/// The `type` member of a problem+json body ("" when the body is not a JSON object with one).
std::string problemType(const Response& response);
/// A string member of a JSON object body ("" when absent or not a string).
std::string jsonString(const std::string& body, const std::string& member);
/// The Retry-After header as whole seconds; -1 when missing or not a plain non-negative integer.
int retryAfter(const Response& response);

/// The demo-like config used by most e2e tests: one upstream on `upstreamPort`, the default route
/// table of ../shared/cases/CASES.md (payments, refunds, payment update/capture, v2 payments),
/// tenant from Authorization, memory store unless `storeYaml` is given, and `routeExtra` appended
/// to the payments route (indented YAML lines, e.g. "    on_unknown: release\n").
std::string caseConfig(std::uint16_t gatewayPort, std::uint16_t upstreamPort, const std::string& storeYaml = "",
                       const std::string& routeExtra = "", const std::string& upstreamExtra = "");

/// The same route table, with every knob the case tests turn. Empty strings leave a key out, so the
/// gateway's documented default applies.
struct CaseOptions {
    std::uint16_t gatewayPort = 0;
    std::uint16_t upstreamPort = 0;
    std::string storeYaml;                 ///< a whole `store:` section; "" = memory
    std::string upstreamTimeout = "10s";
    std::string upstreamExtra;             ///< indented lines appended to the upstream
    std::string lease = "15s";             ///< route_defaults.lease; "" = default (timeout + 5s)
    std::string forwardKey = "client";     ///< route_defaults.forward_key; "" = default (derived)
    std::string defaultsExtra;             ///< indented lines appended to route_defaults
    std::string paymentsExtra;             ///< indented lines appended to the payments route
    std::map<std::string, std::string> routeExtra;  ///< route id -> indented lines appended to it
    std::string extraRoutes;               ///< whole route entries appended after the table
};
std::string caseConfig(const CaseOptions& options);

/// A request to the case route table: tenant `Authorization: Bearer <tenant>` (none when empty),
/// `Content-Type: application/json`, and `Idempotency-Key: <key>` (none when empty), then `extra`.
Request caseRequest(const std::string& key, const std::string& body, Headers extra = {},
                    const std::string& target = "/v1/payments", const std::string& tenant = "tok-tenant-a",
                    const std::string& method = "POST");

/// One test's world: a TempDir, a mock upstream on a free port and one idemgate on another, configured
/// by caseConfig(options) (the ports in `options` are filled in).
struct CaseEnv {
    explicit CaseEnv(CaseOptions options = {});
    TempDir dir;
    MockUpstream up;
    std::uint16_t port;
    CaseOptions options;
    std::unique_ptr<Gateway> gw;

    Response send(const Request& request, Millis timeout = Millis(15000)) { return http(port, request, timeout); }
    Response post(const std::string& key, const std::string& body, Headers extra = {},
                  const std::string& target = "/v1/payments", const std::string& tenant = "tok-tenant-a") {
        return send(caseRequest(key, body, std::move(extra), target, tenant));
    }
};

/// Polls `done` every `step` until it returns true or `timeout` passes; returns its last value.
template <typename F>
bool waitUntil(F&& done, Millis timeout, Millis step = Millis(20)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(step);
    }
}

}  // namespace idem::test
