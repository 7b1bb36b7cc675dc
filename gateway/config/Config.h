#pragma once
// The whole gateway configuration as plain typed structs, parsed once and validated by ConfigLoader.
// Nothing reads configuration by string key after loading. Defaults are the ones the README lists.

#include "gateway/core/Balancer.h"
#include "gateway/core/Policy.h"
#include "storage/StoreConfig.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace idem::config {

using core::Millis;

struct ServerConfig {
    /// The HTTP server on the request path: `native` (gateway/http/NativeServer) or Poco's HTTPServer,
    /// kept as a fallback. Default: native
    enum class Engine { Native, Poco };
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    Engine engine = Engine::Native;
    int maxConnections = 4096;                ///< native: open client connections; beyond: 503 and close
    int ioThreads = 0;                        ///< native: event-loop threads; 0 = one per CPU of the affinity mask
    int maxThreads = 256;                     ///< poco: one per open keep-alive connection (Poco's model)
    int maxQueued = 1024;                     ///< poco: accepted connections waiting for a thread; native: listen backlog
    Millis keepAliveTimeout{15000};
    int maxKeepAliveRequests = 0;             ///< 0 = unlimited
    Millis receiveTimeout{30000};             ///< reading a client's request (headers and body)
    Millis sendTimeout{30000};
};

/// Deadlines of one upstream call. Per upstream, with these defaults; a route may override any of them
/// (RouteConfig::upstreamTimeouts). Every phase is also bounded by `total`.
struct UpstreamTimeouts {
    Millis connect{2000};             ///< one connection attempt: TCP connect + TLS handshake. Default: 2s
    std::optional<Millis> send;       ///< writing the request. Default: unset (bounded by total only)
    std::optional<Millis> firstByte;  ///< request written -> first response byte. Default: unset (total only)
    /// The whole call, start to end: waiting for a pooled connection, every connect attempt, retries and
    /// their backoff, sending, and the whole response. So it is the upstream deadline the lease must
    /// cover. Default: 30s
    Millis total{30000};
};

/// A route's `upstream_timeouts:`: each field that is set replaces the upstream's.
struct UpstreamTimeoutOverride {
    std::optional<Millis> connect;
    std::optional<Millis> send;
    std::optional<Millis> firstByte;
    std::optional<Millis> total;

    bool empty() const { return !connect && !send && !firstByte && !total; }
};

/// The upstream's timeouts with a route's override applied.
inline UpstreamTimeouts effectiveTimeouts(const UpstreamTimeouts& base, const UpstreamTimeoutOverride& route) {
    UpstreamTimeouts out = base;
    if (route.connect) out.connect = *route.connect;
    if (route.send) out.send = route.send;
    if (route.firstByte) out.firstByte = route.firstByte;
    if (route.total) out.total = *route.total;
    return out;
}

/// One address requests may go to (`url:`, or an entry of `endpoints:`).
struct UpstreamEndpoint {
    std::string scheme = "http";              ///< http | https
    std::string host;                         ///< IP literal (never resolved) or host name (re-resolved, dns_ttl)
    std::uint16_t port = 80;                  ///< Default: 80 for http, 443 for https
    std::string basePath;                     ///< prefix added before the request path ("" = none)
    std::uint32_t weight = 1;                 ///< share under balance: weighted / least_connections. Default: 1
};

struct UpstreamPoolConfig {
    std::size_t maxConnections = 1024;        ///< open connections per endpoint (busy + idle). Default: 1024
    std::size_t maxIdle = 64;                 ///< idle keep-alive connections kept per endpoint. Default: 64
    Millis idleTimeout{4000};                 ///< an idle connection is closed after this. Default: 4s
    Millis acquireTimeout{1000};              ///< wait for a connection when maxConnections are busy. Default: 1s
};

struct UpstreamHealthConfig {
    std::string path;                         ///< GET this on every endpoint; "" = no active checks (default)
    Millis interval{5000};                    ///< Default: 5s
    Millis timeout{1000};                     ///< one check, connect to last byte. Default: 1s
    std::uint32_t healthyThreshold = 2;       ///< passed checks in a row to become healthy. Default: 2
    std::uint32_t unhealthyThreshold = 3;     ///< failed checks in a row to become unhealthy. Default: 3
};

struct UpstreamPassiveConfig {
    std::uint32_t consecutiveFailures = 5;    ///< failures in a row that eject an endpoint; 0 = off. Default: 5
    Millis ejection{30000};                   ///< how long an ejected endpoint gets no traffic. Default: 30s
};

struct UpstreamBreakerConfig {
    bool enabled = true;                      ///< Default: on
    double failureRate = 0.5;                 ///< failures / results over the window that open it. Default: 50%
    Millis window{10000};                     ///< Default: 10s
    std::uint32_t minRequests = 20;           ///< results in the window before it may open. Default: 20
    Millis openFor{5000};                     ///< then one probe request decides. Default: 5s
};

struct UpstreamRetryConfig {
    std::uint32_t attempts = 2;               ///< attempts per request (1 = no retry); only when nothing was sent
    Millis baseBackoff{25};                   ///< full-jitter backoff: random in [0, min(max, base * 2^n)). Default: 25ms
    Millis maxBackoff{250};                   ///< Default: 250ms
    double budget = 0.1;                      ///< retries at most this share of requests in the window. Default: 10%
    Millis budgetWindow{10000};               ///< Default: 10s
    std::uint32_t budgetMin = 3;              ///< retries always allowed per window, for low traffic. Default: 3
};

struct UpstreamTlsConfig {
    bool verify = true;                       ///< verify the certificate chain and the name. Default: on
    std::string caFile;                       ///< PEM file of trusted CAs; "" = the system store (default)
    std::string serverName;                   ///< SNI and the name verified; "" = the endpoint's host (default)
};

struct UpstreamConfig {
    std::string name;
    std::vector<UpstreamEndpoint> endpoints;  ///< at least one (`url:` is the one-endpoint shorthand)
    core::BalancePolicy balance = core::BalancePolicy::RoundRobin;
    UpstreamTimeouts timeouts;
    UpstreamPoolConfig pool;
    UpstreamHealthConfig health;
    UpstreamPassiveConfig passive;
    UpstreamBreakerConfig breaker;
    UpstreamRetryConfig retry;
    Millis dnsTtl{60000};                     ///< host names are resolved again after this. Default: 60s
    UpstreamTlsConfig tls;                    ///< for https endpoints
};

struct RouteConfig {
    std::string id;                           ///< the key under `routes:`
    std::vector<std::string> matchMethods;    ///< methods this route matches; empty = any
    std::string path;                         ///< pattern: literal segments and {name} segments
    std::string upstream;                     ///< name in `upstreams` (versions may name others)
    UpstreamTimeoutOverride upstreamTimeouts;  ///< `upstream_timeouts:`, over every upstream the route uses
    /// Feature flag: a disabled route still matches (so no later route takes its requests) and then
    /// either forwards them without idempotency or answers 503 route-disabled. Default: enabled.
    bool enabled = true;
    enum class DisabledAction {
        PassThrough,  ///< forward as if `idempotency: off`
        Reject,       ///< 503 problem route-disabled (core::routeDisabledProblem). Default
    };
    DisabledAction disabledAction = DisabledAction::Reject;
    core::RoutePolicy policy;                 ///< includes the route's API versions (policy.versions)
};

struct LogConfig {
    enum class Level { Error, Warning, Information, Debug };
    Level level = Level::Information;
    bool accessLog = true;
};

struct Config {
    std::string sourceFile;                   ///< the file it was loaded from
    ServerConfig server;
    storage::StoreConfig store;
    std::vector<UpstreamConfig> upstreams;
    std::vector<RouteConfig> routes;          ///< in file order; first match wins
    LogConfig log;

    const UpstreamConfig* findUpstream(const std::string& name) const {
        for (const auto& u : upstreams)
            if (u.name == name) return &u;
        return nullptr;
    }
};

}  // namespace idem::config
