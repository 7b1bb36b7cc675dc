#pragma once
// Upstream: forwards requests to one configured upstream (config::UpstreamConfig) and classifies every
// outcome exactly as SEMANTICS.md §5 needs it (core::UpstreamResult):
//   NotSent  nothing was written: connect refused / timed out, DNS without an answer, TLS handshake or
//            certificate failure, no free pooled connection within pool.acquire_timeout, no endpoint
//            available (all unhealthy, ejected or with an open circuit breaker), retries exhausted;
//   TimedOut / Reset  a request byte went out and no complete response came back (a deadline passed /
//            the connection ended, broke, or carried something that is not a valid, complete response).
//
// Per endpoint: a bounded keep-alive pool (UpstreamPool), health (core::EndpointHealth: active checks
// and passive ejection), a circuit breaker (core::CircuitBreaker). Per upstream: the balancer
// (core::Balancer) and the retry budget (core::RetryBudget).
//
// Retries happen only when nothing was sent (connect refused / timed out, TLS failure, DNS without an
// answer, a pooled connection found closed on the first write): to another endpoint when one is
// available, after a full-jitter backoff, at most retry.attempts in all, each granted by the budget, all
// within the call's deadline. Once a byte was sent, never: the outcome is unknown. The request object is
// the same on every attempt, so the forwarded key header never changes.
//
// What counts against an endpoint (passive ejection, circuit breaker): could not connect (refused,
// timed out, TLS, no address), the exchange timed out, the connection broke or carried an invalid
// response. Any HTTP answer, 5xx included, counts as a success: the endpoint is reachable, and what a
// 5xx means for the key is the idempotency rules' business (release_on, unknown); ejecting an endpoint
// for its 503s would turn an overload into an outage. Waiting for a pooled connection counts neither way.
//
// Timeouts (config::UpstreamTimeouts): `total` bounds the whole call from start to end (pool wait,
// connect attempts, backoff, sending, the whole response), so the route's lease only has to cover it;
// `connect` bounds each connect attempt (TCP + TLS), `send` the writing, `first_byte` the wait after it.
//
// A background thread per upstream closes idle connections, re-resolves host names every dns_ttl
// (keeping the last good answer when resolution fails; IP literals are never resolved), and runs the
// active health checks (GET health.path, sent as is, on a fresh connection, 2xx = passed). It stops
// within ~50 ms when the Upstream is destroyed (a configuration reload builds new ones).
//
// Client disconnects do not cancel anything here: the caller's thread runs the call to its end (B06).
//
// TLS: OpenSSL directly (UpstreamSocket): verification on by default against the system CA store or
// tls.ca_file, SNI = the host name (or tls.server_name).
//
// Thread-safety: forward() may be called from many threads at once.

#include "gateway/config/Config.h"
#include "gateway/core/Balancer.h"
#include "gateway/core/CircuitBreaker.h"
#include "gateway/core/RetryBudget.h"
#include "gateway/http/Pipeline.h"
#include "gateway/http/UpstreamSocket.h"

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace idem::http {

class TlsContext;

class Upstream final : public Forwarder {
public:
    /// Resolves a host name to the addresses to try, in order (never empty on success), or says why not.
    /// Called for every resolution (the first in the constructor, later ones on helper threads that may
    /// outlive the Upstream, so it must own what it uses); never for IP literals.
    using Resolver =
        std::function<std::expected<std::vector<Address>, std::string>(const std::string& host, std::uint16_t port)>;

    /// Resolves host names once (a failure is logged and retried in the background), loads the TLS
    /// context for https endpoints (throws std::runtime_error when tls.ca_file cannot be loaded), and
    /// starts the background thread. `resolver`: empty = the system's (getaddrinfo); tests inject theirs.
    explicit Upstream(const config::UpstreamConfig& config, Resolver resolver = {});
    ~Upstream() override;
    Upstream(const Upstream&) = delete;
    Upstream& operator=(const Upstream&) = delete;

    /// With the upstream's own timeouts.
    core::UpstreamResult forward(const core::HttpRequest& request) override;
    /// With a route's effective timeouts (config::effectiveTimeouts).
    core::UpstreamResult forward(const core::HttpRequest& request, const config::UpstreamTimeouts& timeouts);

    const config::UpstreamConfig& config() const { return config_; }

private:
    struct Endpoint;
    struct Background;
    struct Choice {
        int index = -1;
        core::CircuitBreaker::Admission admission = core::CircuitBreaker::Admission::Rejected;
    };
    struct Attempt;

    Choice choose(std::chrono::steady_clock::time_point now, std::uint64_t avoid);
    Attempt attempt(Endpoint& endpoint, const core::HttpRequest& request, const config::UpstreamTimeouts& timeouts,
                    std::chrono::steady_clock::time_point deadline);
    void report(Endpoint& endpoint, core::CircuitBreaker::Admission admission, const Attempt& attempt);
    std::string noEndpointDetail(std::chrono::steady_clock::time_point now) const;

    void run();
    std::chrono::steady_clock::time_point maintain();
    void resolveInBackground(Endpoint& endpoint);
    void applyResolution(Endpoint& endpoint);
    bool check(Endpoint& endpoint);

    config::UpstreamConfig config_;
    Resolver resolver_;
    std::unique_ptr<TlsContext> tls_;
    std::vector<std::unique_ptr<Endpoint>> endpoints_;
    core::Balancer balancer_;
    core::RetryBudget budget_;
    std::shared_ptr<Background> background_;
    std::chrono::steady_clock::time_point nextSweep_{};
    std::thread worker_;
};

/// The Forwarder a route uses: its upstream with the route's effective timeouts.
class RouteForwarder final : public Forwarder {
public:
    RouteForwarder(std::shared_ptr<Upstream> upstream, config::UpstreamTimeouts timeouts)
        : upstream_(std::move(upstream)), timeouts_(timeouts) {}

    core::UpstreamResult forward(const core::HttpRequest& request) override {
        return upstream_->forward(request, timeouts_);
    }

    const std::shared_ptr<Upstream>& upstream() const { return upstream_; }

private:
    std::shared_ptr<Upstream> upstream_;
    config::UpstreamTimeouts timeouts_;
};

}  // namespace idem::http
