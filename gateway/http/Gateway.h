#pragma once
// Gateway: the HTTP edge. Owns the server engine, the store, the upstream clients and the router built
// from one Config. The engine (config `server.engine`) is NativeServer (default) or Poco's HTTPServer (the
// fallback); both are thin adapters around one RequestDispatcher, which routes each request (a
// core::HttpRequest) through the Pipeline.
//
// Endpoints besides the configured routes (never matched by a route):
//   GET /__idemgate/health   200 {"status":"ok"} or 503 when the store does not answer
//   GET /__idemgate/metrics  Prometheus text counters
//
// Lifecycle: construct, start(), later stop(); stop() stops accepting, closes idle connections, lets
// requests in flight finish (their upstream calls and store writes complete) for up to `drain`, then
// closes. reload() swaps in a new configuration atomically: each request runs to its end under the
// configuration it started with; connections are not dropped. The listen address, the server's engine,
// connection, thread and timeout settings and the store cannot change without a restart: reload() keeps
// the running ones and says so in its result.
// Thread-safety: start/stop/reload from one control thread; requests are served on the engine's threads.

#include "gateway/config/Config.h"
#include "gateway/http/Metrics.h"
#include "storage/Store.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace idem::http {

struct Runtime;
class RuntimeSlot;
class RequestDispatcher;
class ServerEngine;
enum class LogLevel;

LogLevel toLogLevel(config::LogConfig::Level level);

class Gateway {
public:
    Gateway(config::Config config, std::unique_ptr<storage::Store> store);
    ~Gateway();

    void start();
    void stop(std::chrono::milliseconds drain);

    /// Applies a new, already validated configuration. Returns the settings that were NOT applied
    /// because they need a restart (empty when everything applied). Throws (and changes nothing)
    /// when the new configuration cannot be wired (for example an upstream address that does not
    /// resolve).
    std::vector<std::string> reload(config::Config config);

    std::uint16_t port() const;
    Metrics& metrics() { return *metrics_; }

private:
    std::unique_ptr<storage::Store> store_;
    std::unique_ptr<Metrics> metrics_;
    std::shared_ptr<RuntimeSlot> runtime_;
    std::unique_ptr<RequestDispatcher> dispatcher_;
    std::unique_ptr<ServerEngine> engine_;  ///< after dispatcher_: destroyed first
};

}  // namespace idem::http
