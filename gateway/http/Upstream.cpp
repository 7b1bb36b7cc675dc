#include "gateway/http/Upstream.h"

#include "gateway/io/Fiber.h"

#include "gateway/config/Units.h"
#include "gateway/core/Backoff.h"
#include "gateway/core/EndpointHealth.h"
#include "gateway/http/Log.h"
#include "gateway/http/UpstreamExchange.h"
#include "gateway/http/UpstreamPool.h"
#include "gateway/http/UpstreamSocket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <expected>
#include <mutex>
#include <random>

namespace idem::http {
namespace {

using Clock = std::chrono::steady_clock;
using Kind = core::UpstreamResult::Kind;
using Admission = core::CircuitBreaker::Admission;
using Verdict = core::CircuitBreaker::Result;
using Millis = std::chrono::milliseconds;

// How long to wait before resolving again after a failed resolution (never longer than dns_ttl).
constexpr Millis kDnsRetry{5000};
// Upper bound on the background thread's sleep: it also notices a stop request through its condition.
constexpr Millis kMaxIdleWake{1000};

std::optional<Address> ipLiteral(const std::string& host, std::uint16_t port) {
    Address a;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.length = sizeof(sockaddr_in);
        return a;
    }
    a = Address{};
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.length = sizeof(sockaddr_in6);
        return a;
    }
    return std::nullopt;
}

/// getaddrinfo, in the resolver's order of preference, without duplicates. No AI_ADDRCONFIG: it drops
/// every address on a host whose only interface is loopback, "localhost" included.
std::expected<std::vector<Address>, std::string> resolve(const std::string& host, std::uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
    if (rc != 0) return std::unexpected(std::string(::gai_strerror(rc)));
    std::vector<Address> out;
    for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        Address a;
        std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
        a.length = static_cast<socklen_t>(ai->ai_addrlen);
        if (std::none_of(out.begin(), out.end(), [&](const Address& b) { return b.text() == a.text(); }))
            out.push_back(a);
    }
    ::freeaddrinfo(list);
    if (out.empty()) return std::unexpected(std::string("no address"));
    return out;
}

std::string joinAddresses(const std::vector<Address>& list) {
    std::string out;
    for (const auto& a : list) out += (out.empty() ? "" : ", ") + a.text();
    return out;
}

/// The same set of addresses (a resolver may rotate or reorder its answer: that is no change).
bool sameAddresses(const std::vector<Address>& a, const std::vector<Address>& b) {
    auto texts = [](const std::vector<Address>& list) {
        std::vector<std::string> out;
        for (const auto& x : list) out.push_back(x.text());
        std::sort(out.begin(), out.end());
        return out;
    };
    return texts(a) == texts(b);
}

double unitRandom() {
    thread_local std::minstd_rand rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

core::UpstreamResult notSent(std::string detail) {
    core::UpstreamResult r;
    r.kind = Kind::NotSent;
    r.detail = std::move(detail);
    return r;
}

std::string hostForUrl(const std::string& host) { return host.find(':') != std::string::npos ? "[" + host + "]" : host; }

}  // namespace

/// A host-name resolution running on a helper thread of its own (getaddrinfo has no timeout, and a
/// slow resolver must neither hold up requests nor delay stopping the upstream). Owned jointly by that
/// thread and the endpoint; whoever ends last frees it.
struct DnsJob {
    std::atomic<bool> done{false};
    std::expected<std::vector<Address>, std::string> result{std::unexpected(std::string())};
};

struct Upstream::Background {
    std::mutex mutex;
    std::condition_variable wake;
    bool stop = false;
    bool dnsReady = false;
    std::atomic<bool> abort{false};
};

struct Upstream::Endpoint {
    Endpoint(const config::UpstreamEndpoint& c, const config::UpstreamConfig& u)
        : config(c),
          health(core::EndpointHealth::Settings{u.health.healthyThreshold, u.health.unhealthyThreshold,
                                                u.passive.consecutiveFailures, u.passive.ejection}),
          breaker(core::CircuitBreaker::Settings{u.breaker.enabled, u.breaker.failureRate, u.breaker.window,
                                                 u.breaker.minRequests, u.breaker.openFor}),
          pool(u.pool.maxConnections, u.pool.maxIdle, u.pool.idleTimeout) {
        tls = c.scheme == "https";
        const bool defaultPort = c.port == (tls ? 443 : 80);
        label = hostForUrl(c.host) + ":" + std::to_string(c.port);
        hostHeader = defaultPort ? hostForUrl(c.host) : label;
        who = "upstream \"" + u.name + "\" (" + c.scheme + "://" + label + ")";
        serverName = u.tls.serverName.empty() ? c.host : u.tls.serverName;
        serverNameIsIp = ipLiteral(serverName, 0).has_value();
        if (auto a = ipLiteral(c.host, c.port)) {
            literal = true;
            addresses = std::make_shared<const std::vector<Address>>(1, *a);
            resolved.store(true);
        }
    }

    std::shared_ptr<const std::vector<Address>> currentAddresses() const {
        std::lock_guard lock(addressMutex);
        return addresses;
    }

    config::UpstreamEndpoint config;
    std::string label;       ///< host:port
    std::string hostHeader;  ///< the Host header: host, plus :port unless it is the scheme's default
    std::string who;         ///< names the endpoint in details and logs
    std::string serverName;  ///< SNI and the verified name
    bool serverNameIsIp = false;
    bool tls = false;
    bool literal = false;    ///< an IP literal: never resolved
    core::EndpointHealth health;
    core::CircuitBreaker breaker;
    UpstreamPool pool;
    std::atomic<std::uint32_t> active{0};  ///< requests in flight (least_connections)

    mutable std::mutex addressMutex;
    std::shared_ptr<const std::vector<Address>> addresses;  ///< null until resolved once
    std::string dnsError;                                   ///< under addressMutex
    std::atomic<std::uint64_t> generation{1};               ///< bumped when the addresses change
    std::atomic<bool> resolved{false};                      ///< addresses is set (read without the lock)

    // Background thread only.
    Clock::time_point nextResolve{};
    Clock::time_point nextCheck{};
    std::shared_ptr<DnsJob> job;
};

struct Upstream::Attempt {
    core::UpstreamResult result;
    bool retryable = false;             ///< NotSent, and another attempt may succeed
    Verdict verdict = Verdict::Neutral;  ///< what it says about the endpoint
};

// ---------------------------------------------------------------------------------------------------

Upstream::Upstream(const config::UpstreamConfig& config, Resolver resolver)
    : config_(config),
      resolver_(resolver ? std::move(resolver) : Resolver(&resolve)),
      balancer_(config.balance, config.endpoints.size()),
      budget_(config.retry.budget, config.retry.budgetWindow, config.retry.budgetMin),
      background_(std::make_shared<Background>()) {
    const bool anyTls = std::any_of(config.endpoints.begin(), config.endpoints.end(),
                                    [](const config::UpstreamEndpoint& e) { return e.scheme == "https"; });
    if (anyTls) {
        try {
            tls_ = std::make_unique<TlsContext>(config.tls.verify, config.tls.caFile);
        } catch (const std::exception& e) {
            throw std::runtime_error("upstream \"" + config.name + "\": " + e.what());
        }
    }
    const auto now = Clock::now();
    for (const auto& c : config.endpoints) {
        auto ep = std::make_unique<Endpoint>(c, config);
        if (!ep->literal) {
            // Resolved once here, so requests right after a start or a reload find an answer; later
            // resolutions run in the background.
            auto r = resolver_(c.host, c.port);
            if (r) {
                ep->addresses = std::make_shared<const std::vector<Address>>(std::move(*r));
                ep->resolved.store(true);
                ep->nextResolve = now + config.dnsTtl;
            } else {
                ep->dnsError = r.error();
                ep->nextResolve = now + std::min<Millis>(kDnsRetry, config.dnsTtl);
                logWarning(ep->who + ": cannot resolve host \"" + c.host + "\" (" + r.error() +
                           "); requests to it fail (502) until it resolves; retrying in the background");
            }
        }
        ep->nextCheck = now;
        endpoints_.push_back(std::move(ep));
    }
    nextSweep_ = now;
    worker_ = std::thread([this] { run(); });
}

Upstream::~Upstream() {
    {
        std::lock_guard lock(background_->mutex);
        background_->stop = true;
        background_->abort.store(true);
    }
    background_->wake.notify_all();
    if (worker_.joinable()) worker_.join();
}

core::UpstreamResult Upstream::forward(const core::HttpRequest& request) { return forward(request, config_.timeouts); }

core::UpstreamResult Upstream::forward(const core::HttpRequest& request, const config::UpstreamTimeouts& timeouts) {
    const auto start = Clock::now();
    const auto deadline = start + timeouts.total;
    budget_.onRequest(start);
    std::uint64_t tried = 0;
    core::UpstreamResult last;
    for (std::uint32_t n = 1;; ++n) {
        const auto now = Clock::now();
        const Choice choice = choose(now, tried);
        if (choice.index < 0) {
            if (n == 1) return notSent(noEndpointDetail(now));
            last.detail += "; no endpoint left to retry on";
            return last;
        }
        Endpoint& ep = *endpoints_[static_cast<std::size_t>(choice.index)];
        const bool countActive = balancer_.policy() == core::BalancePolicy::LeastConnections;
        if (countActive) ep.active.fetch_add(1, std::memory_order_relaxed);
        Attempt a = attempt(ep, request, timeouts, deadline);
        if (countActive) ep.active.fetch_sub(1, std::memory_order_relaxed);
        report(ep, choice.admission, a);
        if (a.result.kind != Kind::NotSent || !a.retryable) return std::move(a.result);

        last = std::move(a.result);
        tried |= std::uint64_t{1} << static_cast<unsigned>(choice.index);
        if (n >= config_.retry.attempts) return last;
        const auto after = Clock::now();
        const auto backoff = core::fullJitterBackoff(n, config_.retry.baseBackoff, config_.retry.maxBackoff, unitRandom());
        if (after + backoff >= deadline) {
            last.detail += "; not retried: the upstream deadline is near";
            return last;
        }
        if (!budget_.tryRetry(after)) {
            last.detail += "; not retried: the retry budget is spent";
            return last;
        }
        if (backoff.count() > 0) io::sleepFor(backoff);
    }
}

Upstream::Choice Upstream::choose(Clock::time_point now, std::uint64_t avoid) {
    const std::size_t n = std::min(endpoints_.size(), core::Balancer::kMaxEndpoints);
    std::array<core::BalanceCandidate, core::Balancer::kMaxEndpoints> candidates;
    for (std::size_t i = 0; i < n; ++i) {
        const Endpoint& ep = *endpoints_[i];
        auto& c = candidates[i];
        c.available = ep.health.available(now) && ep.breaker.admissible(now) &&
                      ep.resolved.load(std::memory_order_acquire);
        c.weight = ep.config.weight;
        c.active = ep.active.load(std::memory_order_relaxed);
    }
    for (std::size_t round = 0; round < n; ++round) {
        const int i = balancer_.pick(std::span<const core::BalanceCandidate>(candidates.data(), n), avoid);
        if (i < 0) return {};
        const Admission admission = endpoints_[static_cast<std::size_t>(i)]->breaker.admit(now);
        if (admission != Admission::Rejected) return Choice{i, admission};
        candidates[static_cast<std::size_t>(i)].available = false;  // another request holds the half-open probe
    }
    return {};
}

std::string Upstream::noEndpointDetail(Clock::time_point now) const {
    std::size_t unhealthy = 0;
    std::size_t ejected = 0;
    std::size_t open = 0;
    std::size_t unresolved = 0;
    for (const auto& ep : endpoints_) {
        if (!ep->health.healthy()) ++unhealthy;
        else if (ep->health.ejected(now)) ++ejected;
        else if (!ep->breaker.admissible(now)) ++open;
        else if (!ep->resolved.load()) ++unresolved;
    }
    std::string d = "upstream \"" + config_.name + "\" has no available endpoint (" +
                    std::to_string(endpoints_.size()) + " configured:";
    if (unhealthy) d += " " + std::to_string(unhealthy) + " failing health checks,";
    if (ejected) d += " " + std::to_string(ejected) + " ejected after consecutive failures,";
    if (open) d += " " + std::to_string(open) + " with an open circuit breaker,";
    if (unresolved) d += " " + std::to_string(unresolved) + " not resolved,";
    d.back() = ')';
    return d;
}

Upstream::Attempt Upstream::attempt(Endpoint& ep, const core::HttpRequest& request,
                                    const config::UpstreamTimeouts& timeouts, Clock::time_point deadline) {
    Attempt out;
    const auto now = Clock::now();
    const std::uint64_t generation = ep.generation.load(std::memory_order_acquire);
    std::unique_ptr<UpstreamSocket> socket;
    const auto acquireDeadline = std::min(deadline, now + config_.pool.acquireTimeout);
    switch (ep.pool.acquire(acquireDeadline, generation, socket)) {
        case UpstreamPool::Acquired::Reused:
            break;
        case UpstreamPool::Acquired::TimedOut:
            out.result = notSent(ep.who + ": no free connection within pool.acquire_timeout " +
                                 config::formatDuration(config_.pool.acquireTimeout) + " (all " +
                                 std::to_string(config_.pool.maxConnections) + " in use)");
            return out;
        case UpstreamPool::Acquired::Connect: {
            const auto addresses = ep.currentAddresses();
            if (!addresses || addresses->empty()) {
                ep.pool.cancel();
                std::string why;
                {
                    std::lock_guard lock(ep.addressMutex);
                    why = ep.dnsError;
                }
                out.result = notSent(ep.who + ": host \"" + ep.config.host + "\" is not resolved (" + why + ")");
                out.retryable = true;
                out.verdict = Verdict::Failure;
                return out;
            }
            const auto connectDeadline = std::min(deadline, Clock::now() + timeouts.connect);
            UpstreamSocket::ConnectResult connected;
            for (const auto& address : *addresses) {
                connected = UpstreamSocket::connect(address, connectDeadline, ep.tls ? tls_.get() : nullptr,
                                                    ep.serverName, ep.serverNameIsIp);
                if (connected.socket || connected.error == UpstreamSocket::ConnectError::TimedOut) break;
            }
            if (!connected.socket) {
                ep.pool.cancel();
                std::string detail = connected.detail;
                if (connected.error == UpstreamSocket::ConnectError::TimedOut && connectDeadline < deadline)
                    detail += " (timeouts.connect " + config::formatDuration(timeouts.connect) + ")";
                out.result = notSent(ep.who + ": " + detail);
                out.retryable = true;
                out.verdict = Verdict::Failure;
                return out;
            }
            socket = std::move(connected.socket);
            break;
        }
    }

    const std::string head = requestHead(request, ep.config.basePath, ep.hostHeader);
    ExchangeResult x = exchange(*socket, head, request.body, request.method == "HEAD",
                                ExchangeDeadlines{deadline, timeouts.send, timeouts.firstByte}, ep.who);
    ep.pool.release(std::move(socket), x.reusable, generation);
    switch (x.result.kind) {
        case Kind::Response:
            // Any status is an answer: the endpoint is reachable (the idempotency rules judge 5xx).
            out.verdict = Verdict::Success;
            break;
        case Kind::NotSent:
            // A pooled connection the peer had closed, found on the first write: nothing left, try again.
            out.retryable = true;
            out.verdict = Verdict::Neutral;
            break;
        case Kind::TimedOut:
        case Kind::Reset:
            out.verdict = Verdict::Failure;
            break;
    }
    out.result = std::move(x.result);
    return out;
}

void Upstream::report(Endpoint& ep, Admission admission, const Attempt& a) {
    const auto now = Clock::now();
    if (a.verdict == Verdict::Success) ep.health.onSuccess();
    if (a.verdict == Verdict::Failure && ep.health.onFailure(now) == core::EndpointHealth::Change::Ejected)
        logWarning(ep.who + " ejected for " + config::formatDuration(config_.passive.ejection) + " after " +
                   std::to_string(config_.passive.consecutiveFailures) + " consecutive failures (last: " +
                   a.result.detail + ")");
    if (const auto change = ep.breaker.onResult(admission, a.verdict, now)) {
        if (*change == core::CircuitBreaker::State::Open)
            logWarning(ep.who + ": circuit breaker open for " + config::formatDuration(config_.breaker.openFor) +
                       (admission == Admission::Probe ? " again: the probe request failed"
                                                      : ": too many failures in the window") +
                       " (last: " + a.result.detail + ")");
        else if (*change == core::CircuitBreaker::State::Closed)
            logWarning(ep.who + ": circuit breaker closed: the probe request succeeded");
    }
}

// ---------------------------------------------------------------------------------------------------
// Background: idle connections, DNS, health checks.

void Upstream::run() {
    Background& bg = *background_;
    std::unique_lock lock(bg.mutex);
    while (!bg.stop) {
        lock.unlock();
        const auto next = maintain();
        lock.lock();
        if (bg.stop) break;
        bg.wake.wait_until(lock, next, [&] { return bg.stop || bg.dnsReady; });
        bg.dnsReady = false;
    }
}

Clock::time_point Upstream::maintain() {
    auto now = Clock::now();
    if (now >= nextSweep_) {
        for (auto& ep : endpoints_) ep->pool.sweep();
        const auto every = std::clamp<Millis>(config_.pool.idleTimeout / 4, Millis(100), kMaxIdleWake);
        nextSweep_ = now + every;
    }
    auto next = std::min(nextSweep_, now + kMaxIdleWake);
    for (auto& ep : endpoints_) {
        if (ep->literal) continue;
        if (ep->job && ep->job->done.load(std::memory_order_acquire)) applyResolution(*ep);
        if (!ep->job && now >= ep->nextResolve) resolveInBackground(*ep);
        if (!ep->job) next = std::min(next, ep->nextResolve);
    }
    if (!config_.health.path.empty()) {
        for (auto& ep : endpoints_) {
            if (background_->abort.load()) return now;
            now = Clock::now();
            if (now >= ep->nextCheck) {
                const bool passed = check(*ep);
                if (background_->abort.load()) return now;
                switch (ep->health.onCheck(passed)) {
                    case core::EndpointHealth::Change::BecameHealthy:
                        logWarning(ep->who + " is healthy again (" + std::to_string(config_.health.healthyThreshold) +
                                   " passed health checks of " + config_.health.path + ")");
                        break;
                    case core::EndpointHealth::Change::BecameUnhealthy:
                        logWarning(ep->who + " is unhealthy and gets no traffic (" +
                                   std::to_string(config_.health.unhealthyThreshold) + " failed health checks of " +
                                   config_.health.path + ")");
                        break;
                    default:
                        break;
                }
                ep->nextCheck += config_.health.interval;
                if (ep->nextCheck <= Clock::now()) ep->nextCheck = Clock::now() + config_.health.interval;
            }
            next = std::min(next, ep->nextCheck);
        }
    }
    return next;
}

void Upstream::resolveInBackground(Endpoint& ep) {
    auto job = std::make_shared<DnsJob>();
    ep.job = job;
    std::weak_ptr<Background> weak = background_;
    std::thread([job, weak, resolver = resolver_, host = ep.config.host, port = ep.config.port] {
        job->result = resolver(host, port);
        job->done.store(true, std::memory_order_release);
        if (auto bg = weak.lock()) {
            {
                std::lock_guard lock(bg->mutex);
                bg->dnsReady = true;
            }
            bg->wake.notify_all();
        }
    }).detach();
}

void Upstream::applyResolution(Endpoint& ep) {
    const auto job = std::move(ep.job);
    ep.job.reset();
    const auto now = Clock::now();
    if (!job->result) {
        // Keep the last good answer: a resolver hiccup must not take a working endpoint away.
        std::size_t kept = 0;
        {
            std::lock_guard lock(ep.addressMutex);
            ep.dnsError = job->result.error();
            if (ep.addresses) kept = ep.addresses->size();
        }
        ep.nextResolve = now + std::min<Millis>(kDnsRetry, config_.dnsTtl);
        logWarning(ep.who + ": resolving \"" + ep.config.host + "\" failed (" + job->result.error() + "); " +
                   (kept ? "keeping the last answer (" + std::to_string(kept) + " addresses)"
                         : std::string("no address known yet")));
        return;
    }
    ep.nextResolve = now + config_.dnsTtl;
    auto fresh = std::make_shared<const std::vector<Address>>(std::move(*job->result));
    bool changed = false;
    {
        std::lock_guard lock(ep.addressMutex);
        ep.dnsError.clear();
        changed = !ep.addresses || !sameAddresses(*ep.addresses, *fresh);
        if (changed) ep.addresses = fresh;
    }
    ep.resolved.store(true, std::memory_order_release);
    if (changed) {
        // Pooled connections to the old addresses are not reused.
        ep.generation.fetch_add(1, std::memory_order_acq_rel);
        logInfo(ep.who + ": \"" + ep.config.host + "\" now resolves to " + joinAddresses(*fresh));
    }
}

bool Upstream::check(Endpoint& ep) {
    const auto deadline = Clock::now() + config_.health.timeout;
    const auto addresses = ep.currentAddresses();
    if (!addresses || addresses->empty()) return false;
    UpstreamSocket::ConnectResult connected;
    for (const auto& address : *addresses) {
        connected = UpstreamSocket::connect(address, deadline, ep.tls ? tls_.get() : nullptr, ep.serverName,
                                            ep.serverNameIsIp, &background_->abort);
        if (connected.socket || connected.error == UpstreamSocket::ConnectError::TimedOut ||
            connected.error == UpstreamSocket::ConnectError::Aborted)
            break;
    }
    if (!connected.socket) return false;
    core::HttpRequest probe;
    probe.method = "GET";
    probe.path = config_.health.path;
    probe.headers = {{"User-Agent", "idemgate-health-check"}, {"Connection", "close"}};
    const std::string head = requestHead(probe, "", ep.hostHeader);
    const ExchangeResult x = exchange(*connected.socket, head, "", false, ExchangeDeadlines{deadline, {}, {}}, ep.who,
                                      &background_->abort);
    return x.result.kind == Kind::Response && x.result.response.status >= 200 && x.result.response.status < 300;
}

}  // namespace idem::http
