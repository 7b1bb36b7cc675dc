#pragma once
// Cases of ../shared/cases/CASES.md run with TWO idemgate processes sharing one store, over HTTP, in front
// of the real mock upstream (loadtest/mock). Shared by PostgresTwoInstancesTest, RedisTwoInstancesTest and
// ClusterTwoInstancesTest: each supplies a StoreKit (how to configure, inspect, damage, and privately run
// its store) and calls the scenarios below from its test cases.
//
// Timing: the tests wait by bounded polling, never by a fixed sleep where an event can be observed; where
// timing is inherent (a lease running out), the bounds have a 2x margin and nothing asserts a latency.

#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"
#include "tests/support/StoreServers.h"

#include <chrono>
#include <exception>
#include <iostream>
#include <latch>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace idem::test::two {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- what a store supplies

/// A store server of the test's own, which the test stops and starts again (same port, same data).
class PrivateStore {
public:
    virtual ~PrivateStore() = default;
    /// The store: section pointing at this server, records under namespace `ns`.
    virtual std::string storeYaml(const std::string& ns) const = 0;
    virtual void stop() = 0;
    virtual void start() = 0;
};

class StoreKit {
public:
    virtual ~StoreKit() = default;
    /// The store: section for the shared (CTest fixture) server, records under namespace `ns` (a table
    /// name or key prefix of their own, so that test cases and other suites never see each other's records).
    virtual std::string storeYaml(const std::string& ns) const = 0;
    /// Records under `ns`.
    virtual int recordCount(const std::string& ns) const = 0;
    /// Records under `ns` that would never expire (PostgreSQL: expires_at NULL; Redis: TTL -1).
    virtual int recordsWithoutExpiry(const std::string& ns) const = 0;
    /// Overwrites the stored response metadata of every completed record under `ns` with bytes that do not
    /// decode; returns how many records it damaged.
    virtual int corruptCompleted(const std::string& ns) const = 0;
    virtual std::unique_ptr<PrivateStore> startPrivate(const TempDir& dir) const = 0;
    /// Removes what the test left under `ns` (best effort).
    virtual void cleanup(const std::string& ns) const = 0;
};

// ---------------------------------------------------------------- helpers

inline std::string tail(const std::string& s, std::size_t n = 12000) {
    return s.size() <= n ? s : "...\n" + s.substr(s.size() - n);
}

inline bool currentTestFailed() {
    namespace ut = boost::unit_test;
    return !ut::results_collector.results(ut::framework::current_test_case().p_id).passed();
}

/// One test's world: temp dir, mock upstream, optionally a private store, and the two gateways.
struct Env {
    const StoreKit& kit;
    TempDir dir;
    std::string ns = uniqueName("e2e2i_");
    MockUpstream up{dir.path()};
    std::unique_ptr<PrivateStore> priv;
    std::unique_ptr<GatewayPair> gws;

    explicit Env(const StoreKit& k, bool privateStore = false) : kit(k) {
        if (privateStore) priv = kit.startPrivate(dir);
        gws = std::make_unique<GatewayPair>(dir, up.port(), priv ? priv->storeYaml(ns) : kit.storeYaml(ns));
    }
    ~Env() {
        if (std::uncaught_exceptions() > 0 || currentTestFailed()) {
            std::cerr << "==== logs of the failed test (namespace " << ns << ")\n"
                      << tail(gws ? gws->logs() : std::string()) << "\n---- mock upstream\n"
                      << tail(up.process().log(), 4000) << "\n";
        }
        gws.reset();
        try {
            if (!priv) kit.cleanup(ns);
        } catch (const std::exception& e) {
            std::cerr << "cleanup of " << ns << " failed: " << e.what() << "\n";
        }
    }
    std::uint16_t port(int i) const { return gws->port(i); }
    std::uint16_t a() const { return gws->port(0); }
    std::uint16_t b() const { return gws->port(1); }
};

inline Request post(const std::string& path, const std::string& key, const std::string& body, Headers extra = {},
                    const std::string& tenant = "tok-tenant-a") {
    Headers h{{"Authorization", "Bearer " + tenant}, {"Content-Type", "application/json"}, {"Idempotency-Key", key}};
    for (auto& e : extra) h.push_back(std::move(e));
    return Request{"POST", path, std::move(h), body};
}

inline Response send(std::uint16_t port, const Request& r, Millis timeout = Millis(20000)) {
    return http(port, r, timeout);
}

inline std::string hdr(const Response& r, const std::string& name) { return r.header(name).value_or(""); }

inline bool isProblem(const Response& r, const std::string& slug) {
    return hdr(r, "Content-Type") == "application/problem+json" &&
           r.body.find("\"urn:idemgate:problem:" + slug + "\"") != std::string::npos;
}

inline bool fresh201(const Response& r) { return r.status == 201 && hdr(r, "Idempotent-Replayed") == "false"; }

inline bool replayOf(const Response& r, const Response& original) {
    return r.status == original.status && hdr(r, "Idempotent-Replayed") == "true" && r.body == original.body;
}

inline std::string describe(const Response& r) {
    return std::to_string(r.status) + " " + r.rawHead + "\n" + r.body.substr(0, 600);
}

/// A counter from GET /__idemgate/metrics ("name value" line); -1 when absent.
inline long long metric(std::uint16_t port, const std::string& name) {
    const auto r = http(port, Request{"GET", "/__idemgate/metrics", {}, "", false});
    std::istringstream in(r.body);
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with(name + " ")) return std::stoll(line.substr(name.size() + 1));
    return -1;
}

struct Shot {
    std::uint16_t port;
    Request request;
};
struct Hit {
    std::optional<Response> response;
    std::string error;
};

/// Sends every shot on its own connection at the same instant (connections opened first, then released by
/// one latch), and collects the answers in order.
inline std::vector<Hit> fireTogether(const std::vector<Shot>& shots, Millis timeout = Millis(30000)) {
    std::vector<std::unique_ptr<Connection>> conns;
    for (const auto& s : shots) conns.push_back(std::make_unique<Connection>(s.port, timeout));
    std::vector<Hit> hits(shots.size());
    std::latch go(static_cast<std::ptrdiff_t>(shots.size()) + 1);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < shots.size(); ++i)
        threads.emplace_back([&, i] {
            go.arrive_and_wait();
            try {
                hits[i].response = conns[i]->roundTrip(shots[i].request);
            } catch (const std::exception& e) {
                hits[i].error = e.what();
            }
        });
    go.arrive_and_wait();
    for (auto& t : threads) t.join();
    return hits;
}

/// Requests the mock received on `path`, oldest first.
inline std::vector<UpstreamRequest> mockRequestsOn(MockUpstream& up, const std::string& path) {
    std::vector<UpstreamRequest> out;
    for (auto& m : up.requests())
        if (m.path == path) out.push_back(std::move(m));
    return out;
}

/// Waits (bounded) until the mock has received `n` requests on `path`.
inline bool waitForMock(MockUpstream& up, const std::string& path, std::size_t n, Millis timeout = Millis(15000)) {
    return waitUntil([&] { return mockRequestsOn(up, path).size() >= n; }, timeout, Millis(10));
}

/// The number N of the mock's payment id pay_<8 hex>_N in a response body, -1 if none.
inline long paymentNumber(const std::string& body) {
    static const std::regex re("\"id\":\"pay_[0-9a-f]{8}_([0-9]+)\"");
    std::smatch m;
    if (!std::regex_search(body, m, re)) return -1;
    return std::stol(m[1].str());
}

inline long long msSince(Clock::time_point t) {
    return std::chrono::duration_cast<Millis>(Clock::now() - t).count();
}

/// A request sent from a background thread whose answer may never come (its gateway gets killed).
class Background {
public:
    Background(std::uint16_t port, Request r) {
        thread_ = std::thread([this, port, r = std::move(r)] {
            try {
                response_ = http(port, r, Millis(30000));
            } catch (const std::exception& e) {
                error_ = e.what();
            }
        });
    }
    ~Background() {
        if (thread_.joinable()) thread_.join();
    }
    const std::optional<Response>& join() {
        if (thread_.joinable()) thread_.join();
        return response_;
    }

private:
    std::optional<Response> response_;
    std::string error_;
    std::thread thread_;
};

// ---------------------------------------------------------------- B01

/// B01 split across both instances: ten copies within 50 ms while the upstream takes 2 s: one execution,
/// no 5xx, the others 409 (or the replay), and a later copy replays on either instance.
inline void b01ConcurrentCopiesAcrossInstances(const StoreKit& kit) {
    Env env(kit);
    const std::string key = "k-b01-1";
    const std::string body = R"({"amount":1000,"currency":"usd"})";
    std::vector<Shot> shots;
    for (int i = 0; i < 10; ++i) shots.push_back({env.port(i % 2), post("/v1/payments", key, body, {{"X-Mock-Delay-Ms", "2000"}})});
    const auto hits = fireTogether(shots);

    std::optional<Response> winner;
    int conflicts = 0, replays = 0;
    for (const auto& h : hits) {
        BOOST_TEST_REQUIRE(h.response.has_value(), "a copy got no answer: " << h.error);
        const Response& r = *h.response;
        BOOST_TEST(r.status < 500, "5xx for a concurrent copy: " << describe(r));
        if (fresh201(r)) {
            BOOST_TEST(!winner.has_value(), "two copies were answered as first requests");
            winner = r;
        } else if (r.status == 409) {
            ++conflicts;
            BOOST_TEST(isProblem(r, "in-flight"), describe(r));
            const int ra = retryAfter(r);
            BOOST_TEST(ra >= 1);
            BOOST_TEST(ra <= TwoInstanceRoutes::kPaymentsLeaseMs / 1000);
        }
    }
    BOOST_TEST_REQUIRE(winner.has_value(), "no copy was forwarded");
    BOOST_TEST(paymentNumber(winner->body) == 1);
    for (const auto& h : hits)
        if (h.response->status == 201 && hdr(*h.response, "Idempotent-Replayed") == "true") {
            ++replays;
            BOOST_TEST(h.response->body == winner->body);
        }
    BOOST_TEST(conflicts + replays == 9);
    BOOST_TEST(env.up.executions(key) == 1);

    // The later copy (t >= 2 s, after the first completed) replays on both instances.
    for (int i = 0; i < 2; ++i) {
        const auto later = send(env.port(i), post("/v1/payments", key, body));
        BOOST_TEST(replayOf(later, *winner), "instance " << i << ": " << describe(later));
    }
    BOOST_TEST(env.up.executions(key) == 1);
    BOOST_TEST(env.up.total() == 1);
    BOOST_TEST(kit.recordCount(env.ns) == 1);
}

// ---------------------------------------------------------------- B02

/// B02 through the gateways: pairs of identical requests fired at the same instant, one to each instance,
/// each pair with its own key: one execution per pair, never a 5xx, the loser 409 or the replay.
inline void b02PairsAcrossInstances(const StoreKit& kit, int pairs = 50, int pairsPerWave = 10) {
    Env env(kit);
    int fiveHundreds = 0;
    for (int wave = 0; wave * pairsPerWave < pairs; ++wave) {
        std::vector<Shot> shots;
        for (int p = wave * pairsPerWave; p < std::min(pairs, (wave + 1) * pairsPerWave); ++p) {
            const auto req = post("/v1/payments", "k-b02-" + std::to_string(p), R"({"amount":)" + std::to_string(p) + "}",
                                  {{"X-Mock-Delay-Ms", "300"}});
            // Alternate which instance is first in the list; the latch releases them together anyway.
            shots.push_back({env.port(p % 2), req});
            shots.push_back({env.port(1 - p % 2), req});
        }
        const auto hits = fireTogether(shots);
        for (std::size_t i = 0; i + 1 < hits.size(); i += 2) {
            const std::string key = "k-b02-" + std::to_string(wave * pairsPerWave + static_cast<int>(i / 2));
            BOOST_TEST_REQUIRE(hits[i].response.has_value(), key << ": " << hits[i].error);
            BOOST_TEST_REQUIRE(hits[i + 1].response.has_value(), key << ": " << hits[i + 1].error);
            const Response& x = *hits[i].response;
            const Response& y = *hits[i + 1].response;
            for (const Response* r : {&x, &y})
                if (r->status >= 500) {
                    ++fiveHundreds;
                    BOOST_TEST_MESSAGE(key << ": 5xx " << describe(*r));
                }
            const bool xWon = fresh201(x), yWon = fresh201(y);
            BOOST_TEST((xWon != yWon), key << ": exactly one fresh 201 expected: " << x.status << "/" << y.status);
            if (xWon != yWon) {
                const Response& won = xWon ? x : y;
                const Response& lost = xWon ? y : x;
                const bool ok409 = lost.status == 409 && isProblem(lost, "in-flight") && retryAfter(lost) >= 1;
                BOOST_TEST((ok409 || replayOf(lost, won)), key << ": loser " << describe(lost));
            }
            BOOST_TEST(env.up.executions(key) == 1, key);
        }
    }
    BOOST_TEST(fiveHundreds == 0);
    BOOST_TEST(env.up.total() == pairs);
    // Losing the race is not a store error on either instance.
    BOOST_TEST(metric(env.a(), "idemgate_store_errors_total") == 0);
    BOOST_TEST(metric(env.b(), "idemgate_store_errors_total") == 0);
    BOOST_TEST(metric(env.a(), "idemgate_forwarded_total") + metric(env.b(), "idemgate_forwarded_total") == pairs);
}

// ---------------------------------------------------------------- B04

/// B04: SIGKILL instance A once the upstream has its request; B answers 409 within the lease (Retry-After no
/// longer than the lease left), then follows on_unknown: hold -> 504 outcome-unknown, nothing forwarded;
/// release -> B takes over and forwards with the SAME forwarded key, and the de-duplicating upstream
/// returns the original payment. No record is ever without an expiry.
inline void b04KilledInstance(const StoreKit& kit) {
    Env env(kit);
    const int leaseMs = TwoInstanceRoutes::kShortLeaseMs;
    const std::string body = R"({"amount":400,"currency":"usd"})";
    // The upstream de-duplicates by the forwarded key (as a payment API would) and takes longer than it
    // takes us to see both requests arrive and kill A, but ends within the lease (2.5 s of 4 s), so it has
    // remembered A's payment by the time B takes over. (Were B's forward to arrive earlier, the mock would
    // still hand it A's payment once A's execution ends: the dedupe keeps the first answer.)
    const Headers slow{{"X-Mock-Delay-Ms", "2500"}, {"X-Mock-Dedupe", "1"}};
    const auto release = post("/v1/b04/release", "k-b04-release", body, slow);
    const auto hold = post("/v1/b04/hold", "k-b04-hold", body, slow);

    // release first, so its payment is the mock's first (pay_..._1).
    const auto sentRelease = Clock::now();
    Background toA1(env.a(), release);
    BOOST_TEST_REQUIRE(waitForMock(env.up, "/v1/b04/release", 1));
    const auto sentHold = Clock::now();
    Background toA2(env.a(), hold);
    BOOST_TEST_REQUIRE(waitForMock(env.up, "/v1/b04/hold", 1));
    const auto seen = Clock::now();  // both leases began before this moment
    env.gws->kill(0);
    BOOST_TEST(!toA1.join().has_value(), "the killed instance answered");
    BOOST_TEST(!toA2.join().has_value(), "the killed instance answered");

    const std::string releaseKey = mockRequestsOn(env.up, "/v1/b04/release").at(0).key;
    const std::string holdKey = mockRequestsOn(env.up, "/v1/b04/hold").at(0).key;
    BOOST_TEST(releaseKey.starts_with("idg_"));
    BOOST_TEST(holdKey.starts_with("idg_"));
    BOOST_TEST(releaseKey != holdKey);

    // At once via B: 409 in flight, Retry-After within the lease left.
    for (const auto* req : {&release, &hold}) {
        const auto t = Clock::now();
        const auto r = send(env.b(), *req);
        BOOST_TEST(r.status == 409, describe(r));
        BOOST_TEST(isProblem(r, "in-flight"), describe(r));
        const long long leftMs = leaseMs - std::chrono::duration_cast<Millis>(t - seen).count();
        const int ra = retryAfter(r);
        BOOST_TEST(ra >= 1);
        BOOST_TEST(ra <= std::max<long long>(1, (leftMs + 999) / 1000), "Retry-After " << ra << " > lease left " << leftMs << " ms");
    }
    BOOST_TEST(kit.recordCount(env.ns) == 2);
    BOOST_TEST(kit.recordsWithoutExpiry(env.ns) == 0);

    // Retry via B every 250 ms until each key stops answering 409; once it has, it never answers 409 again.
    std::optional<Response> releaseAnswer, holdAnswer;
    Clock::time_point releaseAt{}, holdAt{};
    const auto deadline = seen + Millis(2 * leaseMs + 5000);
    while ((!releaseAnswer || !holdAnswer) && Clock::now() < deadline) {
        for (auto [req, answer, at] : {std::tuple{&release, &releaseAnswer, &releaseAt}, std::tuple{&hold, &holdAnswer, &holdAt}}) {
            const auto t = Clock::now();
            auto r = send(env.b(), *req);
            if (answer->has_value()) {
                BOOST_TEST(r.status != 409, "409 again after the key had settled: " << describe(r));
            } else if (r.status != 409) {
                *answer = r;
                *at = t;
            } else {
                BOOST_TEST(isProblem(r, "in-flight"), describe(r));
            }
        }
        BOOST_TEST(kit.recordsWithoutExpiry(env.ns) == 0);
        std::this_thread::sleep_for(Millis(250));
    }
    BOOST_TEST_REQUIRE(releaseAnswer.has_value(), "release route still 409 long after the lease");
    BOOST_TEST_REQUIRE(holdAnswer.has_value(), "hold route still 409 long after the lease");
    // Not before the lease ran out (each lease began after its request was sent; 100 ms for clock steps).
    BOOST_TEST(std::chrono::duration_cast<Millis>(releaseAt - sentRelease).count() >= leaseMs - 100);
    BOOST_TEST(std::chrono::duration_cast<Millis>(holdAt - sentHold).count() >= leaseMs - 100);

    // on_unknown: hold -> the documented outcome-unknown problem, nothing forwarded.
    BOOST_TEST(holdAnswer->status == 504, describe(*holdAnswer));
    BOOST_TEST(isProblem(*holdAnswer, "outcome-unknown"), describe(*holdAnswer));
    BOOST_TEST(holdAnswer->body.find("\"operation_state\":\"unknown\"") != std::string::npos, holdAnswer->body);
    BOOST_TEST(env.up.executions(holdKey) == 1);

    // on_unknown: release -> B forwarded again with the same key and got the original payment back.
    BOOST_TEST(releaseAnswer->status == 201, describe(*releaseAnswer));
    BOOST_TEST(paymentNumber(releaseAnswer->body) == 1, releaseAnswer->body);
    BOOST_TEST(releaseAnswer->body.find("\"idempotency_key\":\"" + releaseKey + "\"") != std::string::npos);
    const auto forwards = mockRequestsOn(env.up, "/v1/b04/release");
    BOOST_TEST(forwards.size() == 2u);
    for (const auto& f : forwards) BOOST_TEST(f.key == releaseKey);

    BOOST_TEST(metric(env.b(), "idemgate_takeovers_total") == 1);
    BOOST_TEST(metric(env.b(), "idemgate_abandoned_settled_total") == 1);

    // Later retries, on B and on A started again: the same answers, nothing more forwarded.
    env.gws->start(0);
    for (int i = 0; i < 2; ++i) {
        const auto h = send(env.port(i), hold);
        BOOST_TEST(h.status == 504, describe(h));
        BOOST_TEST(isProblem(h, "outcome-unknown"));
        BOOST_TEST(h.body == holdAnswer->body);
        const auto r = send(env.port(i), release);
        BOOST_TEST(replayOf(r, *releaseAnswer), describe(r));
    }
    BOOST_TEST(env.up.executions(holdKey) == 1);
    BOOST_TEST(env.up.executions(releaseKey) == 2);
    BOOST_TEST(kit.recordCount(env.ns) == 2);
    BOOST_TEST(kit.recordsWithoutExpiry(env.ns) == 0);
}

// ---------------------------------------------------------------- B09

/// B09 with a private store server: stopped -> both instances answer 503 store-unavailable with
/// Retry-After and forward nothing, while a store_failure: open route forwards marked
/// Idempotency-Enforced: false; started again on the same port -> both instances recover by themselves:
/// the first request is forwarded once and the retry replays.
inline void b09StoreOutage(const StoreKit& kit) {
    Env env(kit, /*privateStore=*/true);
    const std::string body = R"({"amount":900,"currency":"usd"})";
    const pid_t pidA = env.gws->gateway(0).process().pid();
    const pid_t pidB = env.gws->gateway(1).process().pid();

    const auto warm = send(env.a(), post("/v1/payments", "k-b09-0", body));
    BOOST_TEST_REQUIRE(fresh201(warm), describe(warm));
    BOOST_TEST(replayOf(send(env.b(), post("/v1/payments", "k-b09-0", body)), warm));

    env.priv->stop();
    for (int i = 0; i < 2; ++i) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            const auto r = send(env.port(i), post("/v1/payments", "k-b09-1", body));
            BOOST_TEST(r.status == 503, "instance " << i << ": " << describe(r));
            BOOST_TEST(isProblem(r, "store-unavailable"), describe(r));
            BOOST_TEST(retryAfter(r) >= 1, describe(r));
            BOOST_TEST(hdr(r, "Idempotent-Replayed") != "true");
        }
        const auto health = http(env.port(i), Request{"GET", "/__idemgate/health", {}, "", false});
        BOOST_TEST(health.status == 503, describe(health));
        // store_failure: open -> forwarded without protection, and says so.
        const std::string openKey = "k-b09-open-" + std::to_string(i);
        const auto open = send(env.port(i), post("/v1/open", openKey, body));
        BOOST_TEST(open.status == 201, describe(open));
        BOOST_TEST(hdr(open, "Idempotency-Enforced") == "false", describe(open));
        BOOST_TEST(env.up.executions(openKey) == 1);
        BOOST_TEST(metric(env.port(i), "idemgate_unprotected_forwards_total") == 1);
    }
    BOOST_TEST(env.up.executions("k-b09-1") == 0);

    env.priv->start();
    // Recovery without restarting the gateways: retry (bounded) until the store answers again. Every
    // attempt before that is a 503 that forwarded nothing.
    std::optional<Response> first;
    const bool recovered = waitUntil(
        [&] {
            auto r = send(env.a(), post("/v1/payments", "k-b09-1", body));
            if (r.status == 503) {
                BOOST_TEST(isProblem(r, "store-unavailable"));
                return false;
            }
            first = r;
            return true;
        },
        Millis(30000), Millis(200));
    BOOST_TEST_REQUIRE(recovered, "instance a did not recover after the store came back");
    BOOST_TEST(fresh201(*first), describe(*first));
    std::optional<Response> retry;
    BOOST_TEST_REQUIRE(waitUntil(
        [&] {
            auto r = send(env.b(), post("/v1/payments", "k-b09-1", body));
            if (r.status == 503) return false;
            retry = r;
            return true;
        },
        Millis(30000), Millis(200)), "instance b did not recover after the store came back");
    BOOST_TEST(replayOf(*retry, *first), describe(*retry));
    BOOST_TEST(replayOf(send(env.a(), post("/v1/payments", "k-b09-1", body)), *first));
    BOOST_TEST(env.up.executions("k-b09-1") == 1);
    for (int i = 0; i < 2; ++i) {
        const auto health = http(env.port(i), Request{"GET", "/__idemgate/health", {}, "", false});
        BOOST_TEST(health.status == 200, describe(health));
    }
    // The same processes throughout.
    BOOST_TEST(env.gws->gateway(0).process().pid() == pidA);
    BOOST_TEST(env.gws->gateway(1).process().pid() == pidB);
    BOOST_TEST(env.gws->gateway(0).process().running());
    BOOST_TEST(env.gws->gateway(1).process().running());
}

// ---------------------------------------------------------------- B10

/// B10: completed via A, replayed via B; both instances restarted gracefully, replayed again; the stored
/// record's metadata damaged in the store -> 500 record-unreadable on both, never forwarded.
inline void b10ReplayAcrossInstancesAndRestarts(const StoreKit& kit) {
    Env env(kit);
    const std::string body = R"({"amount":1010,"currency":"usd"})";
    const auto req = post("/v1/payments", "k-b10-1", body, {{"X-Mock-Header", "Location: /v1/payments/pay_10"}});
    const auto first = send(env.a(), req);
    BOOST_TEST_REQUIRE(fresh201(first), describe(first));
    const auto viaB = send(env.b(), req);
    BOOST_TEST(replayOf(viaB, first), describe(viaB));
    BOOST_TEST(hdr(viaB, "Location") == "/v1/payments/pay_10");
    BOOST_TEST(hdr(viaB, "Content-Type") == hdr(first, "Content-Type"));

    BOOST_TEST(env.gws->restart(0) == 0, "graceful stop of a");
    BOOST_TEST(env.gws->restart(1) == 0, "graceful stop of b");
    for (int i = 0; i < 2; ++i) {
        const auto r = send(env.port(i), req);
        BOOST_TEST(replayOf(r, first), "after restart, instance " << i << ": " << describe(r));
        BOOST_TEST(hdr(r, "Location") == "/v1/payments/pay_10");
    }
    BOOST_TEST(env.up.executions("k-b10-1") == 1);

    BOOST_TEST_REQUIRE(kit.corruptCompleted(env.ns) == 1);
    for (int i = 0; i < 2; ++i) {
        const auto r = send(env.port(i), req);
        BOOST_TEST(r.status == 500, "instance " << i << ": " << describe(r));
        BOOST_TEST(isProblem(r, "record-unreadable"), describe(r));
    }
    BOOST_TEST(env.up.executions("k-b10-1") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// ---------------------------------------------------------------- B12

/// B12: a different body under the key while the first is in flight on the other instance is 422, not 409;
/// after completion still 422 on both (warm or not); the original request replays.
inline void b12MismatchWhileInFlight(const StoreKit& kit) {
    Env env(kit);
    const std::string key = "k-b12-1";
    const std::string original = R"({"amount":1000})";
    const std::string other = R"({"amount":9999})";
    Background first(env.a(), post("/v1/payments", key, original, {{"X-Mock-Delay-Ms", "2000"}}));
    BOOST_TEST_REQUIRE(waitForMock(env.up, "/v1/payments", 1));

    for (int i : {1, 0}) {
        const auto r = send(env.port(i), post("/v1/payments", key, other));
        BOOST_TEST(r.status == 422, "in flight, instance " << i << ": " << describe(r));
        BOOST_TEST(isProblem(r, "fingerprint-mismatch"));
    }
    const auto same = send(env.b(), post("/v1/payments", key, original));
    BOOST_TEST(same.status == 409, describe(same));

    const auto& done = first.join();
    BOOST_TEST_REQUIRE(done.has_value());
    BOOST_TEST_REQUIRE(fresh201(*done), describe(*done));
    for (int i : {1, 0, 1}) {
        const auto r = send(env.port(i), post("/v1/payments", key, other));
        BOOST_TEST(r.status == 422, "completed, instance " << i << ": " << describe(r));
        BOOST_TEST(isProblem(r, "fingerprint-mismatch"));
    }
    for (int i : {1, 0}) {
        const auto r = send(env.port(i), post("/v1/payments", key, original));
        BOOST_TEST(replayOf(r, *done), "instance " << i << ": " << describe(r));
    }
    BOOST_TEST(env.up.executions(key) == 1);
    BOOST_TEST(env.up.total() == 1);
}

// ---------------------------------------------------------------- B24

/// B24: the key forwarded upstream is the same on every forward of one client key: the first attempt
/// (answered 503, so released), a retry after a graceful restart, and a takeover by the other instance
/// after a SIGKILL; it is not the client's key, and another tenant's same client key maps elsewhere.
inline void b24ForwardedKeyStable(const StoreKit& kit) {
    Env env(kit);
    const int leaseMs = TwoInstanceRoutes::kShortLeaseMs;
    const std::string path = "/v1/b04/release";
    const std::string key = "k-b24-1";
    const std::string body = R"({"amount":2424})";

    const auto refused = send(env.a(), post(path, key, body, {{"X-Mock-Status", "503"}}));
    BOOST_TEST_REQUIRE(refused.status == 503, describe(refused));
    BOOST_TEST(!isProblem(refused, "store-unavailable"));

    BOOST_TEST(env.gws->restart(0) == 0);
    const Headers slow{{"X-Mock-Delay-Ms", "2500"}, {"X-Mock-Dedupe", "1"}};
    const auto sent = Clock::now();
    {
        Background toA(env.a(), post(path, key, body, slow));
        BOOST_TEST_REQUIRE(waitForMock(env.up, path, 2));
        env.gws->kill(0);
    }
    std::optional<Response> taken;
    const bool settled = waitUntil(
        [&] {
            auto r = send(env.b(), post(path, key, body, slow));
            if (r.status == 409) return false;
            taken = r;
            return true;
        },
        Millis(2 * leaseMs + 5000), Millis(250));
    BOOST_TEST_REQUIRE(settled, "still 409 long after the lease");
    BOOST_TEST(msSince(sent) >= leaseMs - 100);
    BOOST_TEST(taken->status == 201, describe(*taken));
    BOOST_TEST(paymentNumber(taken->body) == 1, "the upstream's original payment: " << taken->body);

    const auto otherTenant = send(env.b(), post(path, key, body, {}, "tok-tenant-b"));
    BOOST_TEST(fresh201(otherTenant), describe(otherTenant));

    const auto forwards = mockRequestsOn(env.up, path);
    BOOST_TEST_REQUIRE(forwards.size() == 4u);
    for (const auto& f : forwards) BOOST_TEST(f.hasKey);
    const std::string k = forwards[0].key;
    BOOST_TEST(k.starts_with("idg_"));
    BOOST_TEST(k != key);
    BOOST_TEST(forwards[1].key == k, "after a restart");
    BOOST_TEST(forwards[2].key == k, "after a takeover by the other instance");
    BOOST_TEST(forwards[3].key != k, "another tenant's same client key");
    BOOST_TEST(forwards[3].key.starts_with("idg_"));
    BOOST_TEST(taken->body.find("\"idempotency_key\":\"" + k + "\"") != std::string::npos);
}

}  // namespace idem::test::two
