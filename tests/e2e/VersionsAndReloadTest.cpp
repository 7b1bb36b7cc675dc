// API versions, per-route policy, config layering and hot reload, end to end (issue 5, SEMANTICS.md §3,
// §4, §8, CASES.md B14): the real idemgate in front of one or two real mock upstreams, whose /__stats
// counts the executions.
#define BOOST_TEST_MODULE e2e versions and reload
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <atomic>
#include <csignal>
#include <mutex>
#include <set>
#include <thread>

using namespace idem::test;

namespace {

const std::string kPayment = R"({"amount":1000,"currency":"usd"})";
const std::string kVersionInvalid = "urn:idemgate:problem:version-invalid";
const std::string kMismatch = "urn:idemgate:problem:fingerprint-mismatch";
const std::string kInFlight = "urn:idemgate:problem:in-flight";
const std::string kRouteDisabled = "urn:idemgate:problem:route-disabled";

// The deprecated v1 of the versioned payments route, as configured below.
const std::string kV1Deprecation = "@1717200000";  // deprecation_date: 2024-06-01 (midnight UTC)
const std::string kV1Sunset = "Thu, 31 Dec 2026 23:59:59 GMT";
const std::string kV1Link = R"(<https://docs.example.com/v1>; rel="deprecation")";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// Two upstreams (a, b) and these routes:
///  - payments:       /{version}/payments, versions 1 (a, deprecated with date, sunset and link), 2 (b),
///                    3 (b, rewritten to /legacy/{version}/charges); the Accept media type "acme"; no default;
///  - payments_plain: /payments, versions 1 (a, deprecated, sunset as a date) and 2 (b), default 1;
///  - refunds:        /{version}/refunds, versions 1 (a) and 2 (b), scope: separate;
///  - legacy:         /v1/legacy, enabled: false, disabled: pass_through;
///  - old_refunds:    /{version}/old-refunds, enabled: false, disabled: reject, version 1 deprecated;
///  - wait_long / wait_short: on_in_flight: wait with wait_max 5s / 1s.
std::string versionsConfig(std::uint16_t port, std::uint16_t a, std::uint16_t b) {
    std::string y;
    y += "server:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n";
    y += "log:\n  level: warning\n";
    y += "store:\n  type: memory\n";
    y += "upstreams:\n";
    y += "  a:\n    url: http://127.0.0.1:" + std::to_string(a) + "\n    timeout: 10s\n";
    y += "  b:\n    url: http://127.0.0.1:" + std::to_string(b) + "\n    timeout: 10s\n";
    y += "route_defaults:\n  tenant_header: Authorization\n  forward_key: client\n  lease: 15s\n"
         "  fingerprint: {body: json}\n";
    y += R"(routes:
  payments:
    methods: [POST]
    path: /{version}/payments
    upstream: a
    max_body: 4KiB
    versions:
      media_type: acme
      list:
        "1":
          upstream: a
          deprecated: true
          deprecation_date: "2024-06-01"
          sunset: "Thu, 31 Dec 2026 23:59:59 GMT"
          link: https://docs.example.com/v1
        "2":
          upstream: b
        "3":
          upstream: b
          rewrite: /legacy/{version}/charges
  payments_plain:
    methods: [POST]
    path: /payments
    upstream: a
    versions:
      media_type: acme
      default: "1"
      list:
        "1": {deprecated: true, sunset: "2026-12-31"}
        "2": {upstream: b}
  refunds:
    methods: [POST]
    path: /{version}/refunds
    upstream: a
    versions:
      scope: separate
      list:
        "1": {}
        "2": {upstream: b}
  legacy:
    methods: [POST]
    path: /v1/legacy
    upstream: a
    enabled: false
    disabled: pass_through
  old_refunds:
    methods: [POST]
    path: /{version}/old-refunds
    upstream: a
    enabled: false
    disabled: reject
    versions:
      list:
        "1": {deprecated: true, link: https://docs.example.com/old}
  wait_long:
    methods: [POST]
    path: /wait/long
    upstream: a
    on_in_flight: wait
    wait_max: 5s
  wait_short:
    methods: [POST]
    path: /wait/short
    upstream: a
    on_in_flight: wait
    wait_max: 1s
)";
    return y;
}

struct VersionsEnv {
    VersionsEnv() : a(dir.path()), b(dir.path()), port(freePort()) {
        gw = std::make_unique<Gateway>(dir, "gw", versionsConfig(port, a.port(), b.port()), port);
    }
    TempDir dir;
    MockUpstream a;
    MockUpstream b;
    std::uint16_t port;
    std::unique_ptr<Gateway> gw;

    Response post(const std::string& target, const std::string& key, const std::string& body = kPayment,
                  Headers extra = {}) {
        return http(port, caseRequest(key, body, std::move(extra), target), Millis(15000));
    }
};

/// The recorded upstream requests carrying `key`.
std::vector<UpstreamRequest> requestsWithKey(MockUpstream& up, const std::string& key) {
    std::vector<UpstreamRequest> out;
    for (auto& r : up.requests())
        if (r.hasKey && r.key == key) out.push_back(std::move(r));
    return out;
}

/// The end-to-end headers of a response that a replay must repeat: all but Date, the connection's own and
/// the two a replay sets (Idempotent-Replayed, and Cache-Control: no-store, README "Replay").
Headers replayedHeaders(const Response& r) {
    Headers out;
    for (const auto& [name, value] : r.headers) {
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower == "date" || lower == "idempotent-replayed" || lower == "cache-control" || lower == "connection" ||
            lower == "keep-alive")
            continue;
        out.emplace_back(name, value);
    }
    return out;
}

void expectDeprecatedV1(const Response& r) {
    BOOST_TEST(r.count("Deprecation") == 1u);
    BOOST_TEST(r.header("Deprecation").value_or("") == kV1Deprecation);
    BOOST_TEST(r.count("Sunset") == 1u);
    BOOST_TEST(r.header("Sunset").value_or("") == kV1Sunset);
    BOOST_TEST(r.count("Link") == 1u);
    BOOST_TEST(r.header("Link").value_or("") == kV1Link);
}

void expectNoDeprecation(const Response& r) {
    BOOST_TEST(r.count("Deprecation") == 0u);
    BOOST_TEST(r.count("Sunset") == 0u);
    BOOST_TEST(r.count("Link") == 0u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(Versions)

// Each version goes to its own upstream, whichever signal names it; disagreeing or unknown versions are
// refused before anything is forwarded; a rewritten version reaches the upstream under its new path.
BOOST_AUTO_TEST_CASE(versionsReachTheirOwnUpstreams) {
    VersionsEnv env;
    struct Routed {
        std::string what, target, key;
        Headers extra;
        MockUpstream* expected;
    };
    const std::vector<Routed> routed{
        {"path v1", "/v1/payments", "k-v-path-1", {}, &env.a},
        {"path v2", "/v2/payments", "k-v-path-2", {}, &env.b},
        {"path 2 (no v)", "/2/payments", "k-v-path-2b", {}, &env.b},
        {"header 2", "/payments", "k-v-header-2", {{"API-Version", "2"}}, &env.b},
        {"header 1", "/payments", "k-v-header-1", {{"API-Version", "1"}}, &env.a},
        {"accept v2", "/payments", "k-v-accept-2", {{"Accept", "application/vnd.acme.v2+json"}}, &env.b},
        {"query 2", "/payments?version=2", "k-v-query-2", {}, &env.b},
        {"no signal: default 1", "/payments", "k-v-default", {}, &env.a},
        {"all signals agree on 2", "/v2/payments?version=2", "k-v-agree-2",
         {{"API-Version", "2"}, {"Accept", "application/vnd.acme.v2+json"}}, &env.b},
    };
    for (const auto& r : routed) {
        BOOST_TEST_CONTEXT(r.what) {
            auto resp = env.post(r.target, r.key, kPayment, r.extra);
            BOOST_TEST(resp.status == 201, resp.body);
            BOOST_TEST(resp.header("Idempotent-Replayed").value_or("") == "false");
            MockUpstream* other = r.expected == &env.a ? &env.b : &env.a;
            BOOST_TEST(r.expected->executions(r.key) == 1);
            BOOST_TEST(other->executions(r.key) == 0);
        }
    }

    // The version is forwarded under the path the client used, unless the version rewrites it.
    auto v2 = requestsWithKey(env.b, "k-v-path-2");
    BOOST_REQUIRE(v2.size() == 1u);
    BOOST_TEST(v2[0].path == "/v2/payments");
    auto rewritten = env.post("/v3/payments?trace=1", "k-v-rewrite-3");
    BOOST_TEST(rewritten.status == 201, rewritten.body);
    auto v3 = requestsWithKey(env.b, "k-v-rewrite-3");
    BOOST_REQUIRE(v3.size() == 1u);
    BOOST_TEST(v3[0].path == "/legacy/v3/charges");
    BOOST_TEST(v3[0].query == "trace=1");
    BOOST_TEST(env.a.executions("k-v-rewrite-3") == 0);

    // Signals that disagree, and versions nobody configured: 400 version-invalid, nothing forwarded.
    struct Refused {
        std::string what, target, key;
        Headers extra;
        std::string detail;  ///< part of the problem detail
        std::string known;   ///< the known_versions member
    };
    const std::vector<Refused> refused{
        {"path 1, header 2", "/v1/payments", "k-v-bad-1", {{"API-Version", "2"}}, "disagree", "1, 2, 3"},
        {"path 2, accept 1", "/v2/payments", "k-v-bad-2", {{"Accept", "application/vnd.acme.v1+json"}}, "disagree",
         "1, 2, 3"},
        {"header 2, query 1", "/payments?version=1", "k-v-bad-3", {{"API-Version", "2"}}, "disagree", "1, 2"},
        {"unknown path version", "/v9/payments", "k-v-bad-4", {}, "known versions: 1, 2, 3", "1, 2, 3"},
        {"unknown header version", "/payments", "k-v-bad-5", {{"API-Version", "7"}}, "known versions: 1, 2", "1, 2"},
        {"unknown query version", "/payments?version=3", "k-v-bad-6", {}, "known versions: 1, 2", "1, 2"},
    };
    for (const auto& r : refused) {
        BOOST_TEST_CONTEXT(r.what) {
            auto resp = env.post(r.target, r.key, kPayment, r.extra);
            BOOST_TEST(resp.status == 400, resp.body);
            BOOST_TEST(resp.header("Content-Type").value_or("") == "application/problem+json");
            BOOST_TEST(problemType(resp) == kVersionInvalid);
            BOOST_TEST(contains(jsonString(resp.body, "detail"), r.detail), resp.body);
            BOOST_TEST(jsonString(resp.body, "known_versions") == r.known, resp.body);
            BOOST_TEST(env.a.executions(r.key) == 0);
            BOOST_TEST(env.b.executions(r.key) == 0);
        }
    }

    // Nothing else reached either upstream.
    BOOST_TEST(env.a.total() == 3);  // path v1, header 1, default
    BOOST_TEST(env.b.total() == 7);  // path v2, /2/, header 2, accept, query, all agree, v3
}

// A deprecated version's every answer (fresh, replay, and the gateway's own 422) carries Deprecation,
// Sunset and Link exactly as configured; another version's answers carry none of them.
BOOST_AUTO_TEST_CASE(deprecatedVersionAnnouncesItself) {
    VersionsEnv env;
    auto fresh = env.post("/v1/payments", "k-dep-1");
    BOOST_TEST(fresh.status == 201, fresh.body);
    BOOST_TEST_CONTEXT("fresh") { expectDeprecatedV1(fresh); }
    auto replay = env.post("/v1/payments", "k-dep-1");
    BOOST_TEST(replay.status == 201);
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(replay.body == fresh.body);
    BOOST_TEST_CONTEXT("replay") { expectDeprecatedV1(replay); }
    auto mismatch = env.post("/v1/payments", "k-dep-1", R"({"amount":2000,"currency":"usd"})");
    BOOST_TEST(mismatch.status == 422, mismatch.body);
    BOOST_TEST(problemType(mismatch) == kMismatch);
    BOOST_TEST_CONTEXT("422") { expectDeprecatedV1(mismatch); }
    BOOST_TEST(env.a.executions("k-dep-1") == 1);
    // Answers the gateway gives before the idempotency rules run announce it too: 413 (only the declared
    // length is sent, so nothing is left unread when the gateway closes) and 503 route-disabled.
    Request tooLarge = caseRequest("k-dep-big", "", {{"Content-Length", "5000"}}, "/v1/payments");
    tooLarge.contentLength = false;
    auto big = http(env.port, tooLarge);
    BOOST_TEST(big.status == 413, big.body);
    BOOST_TEST_CONTEXT("413") { expectDeprecatedV1(big); }
    auto off = env.post("/v1/old-refunds", "k-dep-off");
    BOOST_TEST(off.status == 503, off.body);
    BOOST_TEST(problemType(off) == kRouteDisabled);
    BOOST_TEST(off.header("Deprecation").value_or("") == "true");
    BOOST_TEST(off.header("Link").value_or("") == R"(<https://docs.example.com/old>; rel="deprecation")");
    BOOST_TEST(env.a.total() == 1);

    // The default version of the plain route: deprecated without a date or link, sunset given as a date.
    auto plain = env.post("/payments", "k-dep-plain");
    BOOST_TEST(plain.status == 201, plain.body);
    BOOST_TEST(plain.header("Deprecation").value_or("") == "true");
    BOOST_TEST(plain.header("Sunset").value_or("") == "Thu, 31 Dec 2026 00:00:00 GMT");
    BOOST_TEST(plain.count("Link") == 0u);
    BOOST_TEST(env.a.executions("k-dep-plain") == 1);

    // v2 is not deprecated: fresh, replay and 422 carry none of the three.
    auto fresh2 = env.post("/v2/payments", "k-dep-2");
    BOOST_TEST(fresh2.status == 201, fresh2.body);
    auto replay2 = env.post("/v2/payments", "k-dep-2");
    BOOST_TEST(replay2.header("Idempotent-Replayed").value_or("") == "true");
    auto mismatch2 = env.post("/v2/payments", "k-dep-2", R"({"amount":2000,"currency":"usd"})");
    BOOST_TEST(mismatch2.status == 422);
    Request tooLarge2 = caseRequest("k-dep-big2", "", {{"Content-Length", "5000"}}, "/v2/payments");
    tooLarge2.contentLength = false;
    auto big2 = http(env.port, tooLarge2);
    BOOST_TEST(big2.status == 413);
    for (const auto* r : {&fresh2, &replay2, &mismatch2, &big2}) {
        BOOST_TEST_CONTEXT("v2 status " << r->status) { expectNoDeprecation(*r); }
    }
    BOOST_TEST(env.b.executions("k-dep-2") == 1);
}

// B14 step 3: the versions of one route share the key's scope by default, so the same key on v1 then v2
// is a different request (422, nothing forwarded); with scope: separate each version has its own keys.
BOOST_AUTO_TEST_CASE(sharedAndSeparateVersionScopes) {
    VersionsEnv env;
    auto v1 = env.post("/v1/payments", "k-scope-1");
    BOOST_TEST(v1.status == 201, v1.body);
    auto v2 = env.post("/v2/payments", "k-scope-1");
    BOOST_TEST(v2.status == 422, v2.body);
    BOOST_TEST(problemType(v2) == kMismatch);
    // Named by the header instead of the path: the same record, the same answer.
    auto v2header = env.post("/payments", "k-scope-1", kPayment, {{"API-Version", "2"}});
    BOOST_TEST(v2header.status == 201);  // another route (payments_plain): its own scope, forwarded to b
    auto again = env.post("/v1/payments", "k-scope-1");
    BOOST_TEST(again.status == 201);
    BOOST_TEST(again.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(again.body == v1.body);
    BOOST_TEST(env.a.executions("k-scope-1") == 1);
    BOOST_TEST(env.b.executions("k-scope-1") == 1);  // only the payments_plain request
    BOOST_TEST(requestsWithKey(env.b, "k-scope-1").at(0).path == "/payments");

    // scope: separate: both versions forwarded, each replays its own answer.
    auto r1 = env.post("/v1/refunds", "k-scope-2");
    auto r2 = env.post("/v2/refunds", "k-scope-2");
    BOOST_TEST(r1.status == 201, r1.body);
    BOOST_TEST(r2.status == 201, r2.body);
    BOOST_TEST(r2.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(r1.body != r2.body);
    auto r1again = env.post("/v1/refunds", "k-scope-2");
    auto r2again = env.post("/v2/refunds", "k-scope-2");
    BOOST_TEST(r1again.body == r1.body);
    BOOST_TEST(r2again.body == r2.body);
    BOOST_TEST(r1again.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(r2again.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(env.a.executions("k-scope-2") == 1);
    BOOST_TEST(env.b.executions("k-scope-2") == 1);
}

// enabled: false with disabled: pass_through: the route forwards without idempotency.
BOOST_AUTO_TEST_CASE(disabledRoutePassesThrough) {
    VersionsEnv env;
    auto first = env.post("/v1/legacy", "k-pass-1");
    auto second = env.post("/v1/legacy", "k-pass-1");
    BOOST_TEST(first.status == 201, first.body);
    BOOST_TEST(second.status == 201, second.body);
    BOOST_TEST(second.header("Idempotent-Replayed").value_or("") != "true");
    BOOST_TEST(first.body != second.body);  // two payments, two ids
    BOOST_TEST(env.a.total() == 2);
    BOOST_TEST(env.a.executions("k-pass-1") == 2);
}

// A reload moves v2 to upstream a and deprecates it: a v2 request in flight during the reload finishes
// under the config it started with (upstream b), later ones go to a, and answers, replays of records
// made before the reload included, now carry the deprecation.
BOOST_AUTO_TEST_CASE(reloadMovesAVersionWhileARequestIsInFlight) {
    VersionsEnv env;
    env.b.script(R"({"key":"k-move-1","responses":[{"delay_ms":1500,"status":201,"body":"{\"id\":\"pay_b\"}"}]})");
    auto before = env.post("/v2/payments", "k-move-0");
    BOOST_TEST(before.status == 201);
    expectNoDeprecation(before);
    Response slow;
    std::thread client([&] { slow = env.post("/v2/payments", "k-move-1"); });
    BOOST_REQUIRE(waitUntil([&] { return env.b.executions("k-move-1") == 1; }, Millis(10000), Millis(10)));

    std::string moved = versionsConfig(env.port, env.a.port(), env.b.port());
    const std::string from = "        \"2\":\n          upstream: b\n";
    BOOST_REQUIRE(moved.find(from) != std::string::npos);
    moved.replace(moved.find(from), from.size(), "        \"2\":\n          upstream: a\n          deprecated: true\n");
    env.gw->rewriteConfig(moved);
    env.gw->process().signal(SIGHUP);
    int probes = 0;
    Response probe;
    BOOST_TEST(waitUntil(
        [&] {
            probe = env.post("/v2/payments", "k-move-probe-" + std::to_string(++probes));
            return env.a.executions("k-move-probe-" + std::to_string(probes)) == 1;
        },
        Millis(10000), Millis(50)));
    BOOST_TEST(probe.header("Deprecation").value_or("") == "true");
    client.join();

    BOOST_TEST(slow.status == 201, slow.body);
    BOOST_TEST(slow.body == R"({"id":"pay_b"})");
    BOOST_TEST(env.b.executions("k-move-1") == 1);
    BOOST_TEST(env.a.executions("k-move-1") == 0);
    auto replay = env.post("/v2/payments", "k-move-1");
    BOOST_TEST(replay.body == slow.body);
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(replay.header("Deprecation").value_or("") == "true");
    auto oldReplay = env.post("/v2/payments", "k-move-0");
    BOOST_TEST(oldReplay.body == before.body);
    BOOST_TEST(oldReplay.header("Deprecation").value_or("") == "true");
    BOOST_TEST(env.b.executions("k-move-0") == 1);
    BOOST_TEST(env.a.executions("k-move-0") == 0);
    BOOST_TEST(env.gw->process().running());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(InFlightWait)

// on_in_flight: wait: a duplicate that arrives while the first runs gets the first's answer, replayed.
BOOST_AUTO_TEST_CASE(duplicateWaitsAndGetsTheFirstAnswer) {
    VersionsEnv env;
    env.a.script(R"({"key":"k-wait-1","responses":[{"delay_ms":1500,"status":201,)"
                 R"("headers":[["Location","/v1/payments/pay_w"],["X-Request-Cost","7"]],"body":"{\"id\":\"pay_w\"}"}]})");
    Response first;
    std::string firstError;
    std::thread client([&] {
        try {
            first = env.post("/wait/long", "k-wait-1");
        } catch (const std::exception& e) {
            firstError = e.what();
        }
    });
    BOOST_REQUIRE(waitUntil([&] { return env.a.total() == 1; }, Millis(10000), Millis(10)));
    auto duplicate = env.post("/wait/long", "k-wait-1");
    client.join();

    BOOST_TEST(firstError.empty(), firstError);
    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(duplicate.status == 201, duplicate.body);
    BOOST_TEST(duplicate.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(duplicate.body == first.body);
    BOOST_TEST(duplicate.body == R"({"id":"pay_w"})");
    BOOST_TEST(replayedHeaders(duplicate) == replayedHeaders(first), "first:\n" << first.rawHead << "duplicate:\n" << duplicate.rawHead);
    BOOST_TEST(duplicate.header("Location").value_or("") == "/v1/payments/pay_w");
    BOOST_TEST(duplicate.header("Cache-Control").value_or("") == "no-store");
    BOOST_TEST(env.a.executions("k-wait-1") == 1);
    BOOST_TEST(env.a.total() == 1);
}

// With wait_max shorter than the upstream, the duplicate gives up after waiting: 409, while the first
// is still running.
BOOST_AUTO_TEST_CASE(waitIsBoundedByWaitMax) {
    VersionsEnv env;  // wait_short: wait_max 1s
    env.a.script(R"({"key":"k-wait-2","responses":[{"delay_ms":4000,"status":201,"body":"{\"id\":\"pay_w2\"}"}]})");
    Response first;
    std::atomic<bool> firstDone{false};
    std::thread client([&] {
        try {
            first = env.post("/wait/short", "k-wait-2");
        } catch (const std::exception&) {
        }
        firstDone.store(true);
    });
    BOOST_REQUIRE(waitUntil([&] { return env.a.total() == 1; }, Millis(10000), Millis(10)));
    auto duplicate = env.post("/wait/short", "k-wait-2");
    const bool beforeFirst = !firstDone.load();
    client.join();

    BOOST_TEST(duplicate.status == 409, duplicate.body);
    BOOST_TEST(problemType(duplicate) == kInFlight);
    BOOST_TEST(retryAfter(duplicate) >= 1);
    BOOST_TEST(beforeFirst);  // it gave up after wait_max, not when the first finished
    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.body == R"({"id":"pay_w2"})");
    auto later = env.post("/wait/short", "k-wait-2");
    BOOST_TEST(later.status == 201);
    BOOST_TEST(later.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(env.a.executions("k-wait-2") == 1);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// The config of the reload tests: one upstream; payments (the route under load), short (a short
/// upstream deadline so its TTL can be tiny) and optionally extra.
struct ReloadShape {
    std::string paymentsTtl = "24h";
    std::string paymentsIdempotency = "required";
    std::string paymentsEnabled = "true";
    std::string shortTtl = "24h";
    bool extraRoute = false;
    std::string broken;          ///< a line appended to the payments route, to make the file invalid
    std::uint16_t listen = 0;    ///< server.listen port; 0 = the gateway's port
};

std::string reloadConfig(std::uint16_t port, std::uint16_t up, const ReloadShape& s) {
    std::string y;
    y += "server:\n  listen: 127.0.0.1:" + std::to_string(s.listen ? s.listen : port) + "\n";
    // info: reloads are logged ("configuration reloaded"); no access log, so the log stays short.
    y += "log:\n  level: info\n  access_log: false\n";
    y += "store:\n  type: memory\n";
    y += "upstreams:\n  up:\n    url: http://127.0.0.1:" + std::to_string(up) + "\n    timeout: 10s\n";
    y += "route_defaults:\n  tenant_header: Authorization\n  forward_key: client\n  lease: 15s\n";
    y += "routes:\n";
    y += "  payments:\n    methods: [POST]\n    path: /v1/payments\n    upstream: up\n";
    y += "    ttl: " + s.paymentsTtl + "\n    idempotency: " + s.paymentsIdempotency + "\n";
    y += "    enabled: " + s.paymentsEnabled + "\n    disabled: reject\n";
    y += s.broken;
    y += "  short:\n    methods: [POST]\n    path: /v1/short\n    upstream: up\n";
    y += "    upstream_timeouts: {total: 1s}\n    lease: 2s\n    ttl: " + s.shortTtl + "\n";
    if (s.extraRoute) y += "  extra:\n    methods: [POST]\n    path: /v1/extra\n    upstream: up\n";
    return y;
}

std::size_t occurrences(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

/// Rewrites the config, sends SIGHUP and waits until the gateway logged that it handled it (`marker`:
/// "configuration reloaded" or "reload rejected"). Returns false if it did not within the bound.
bool reloadWith(Gateway& gw, std::uint16_t port, std::uint16_t up, const ReloadShape& shape,
                const std::string& marker = "configuration reloaded") {
    const std::size_t before = occurrences(gw.log(), marker);
    gw.rewriteConfig(reloadConfig(port, up, shape));
    gw.process().signal(SIGHUP);
    return waitUntil([&] { return occurrences(gw.log(), marker) > before; }, Millis(10000), Millis(25));
}

/// Client threads sending fresh and repeated keys over keep-alive connections until stopped; every
/// answer must be the expected one and no connection may fail.
class Load {
public:
    Load(std::uint16_t port, int threads) {
        for (int t = 0; t < threads; ++t) {
            done_.push_back(std::make_unique<std::atomic<int>>(0));
            threads_.emplace_back([this, port, t] { run(port, t); });
        }
    }
    ~Load() { stop(); }

    void stop() {
        stop_.store(true);
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    /// Waits until every thread finished `n` more operations than now.
    bool advance(int n) {
        std::vector<int> start;
        for (auto& d : done_) start.push_back(d->load());
        return waitUntil(
            [&] {
                for (std::size_t i = 0; i < done_.size(); ++i)
                    if (done_[i]->load() < start[i] + n && failures().empty()) return false;
                return true;
            },
            Millis(20000));
    }
    std::vector<std::string> failures() const {
        std::lock_guard lock(mutex_);
        return failures_;
    }
    std::vector<std::string> keys() const {
        std::lock_guard lock(mutex_);
        return keys_;
    }
    int requests() const {
        int n = 0;
        for (auto& d : done_) n += d->load() * 2;
        return n;
    }

private:
    void fail(const std::string& what) {
        std::lock_guard lock(mutex_);
        failures_.push_back(what);
    }

    void run(std::uint16_t port, int t) {
        try {
            Connection c(port, Millis(15000));
            for (int i = 0; !stop_.load(); ++i) {
                const std::string key = "k-load-" + std::to_string(t) + "-" + std::to_string(i);
                const std::string body = R"({"amount":)" + std::to_string(100 + i) + "}";
                {
                    std::lock_guard lock(mutex_);
                    keys_.push_back(key);
                }
                auto fresh = c.roundTrip(caseRequest(key, body));
                auto repeat = c.roundTrip(caseRequest(key, body));
                if (fresh.status != 201 || fresh.header("Idempotent-Replayed").value_or("") != "false" || fresh.closed)
                    return fail(key + " fresh: " + std::to_string(fresh.status) + " " + fresh.body);
                if (repeat.status != 201 || repeat.header("Idempotent-Replayed").value_or("") != "true" ||
                    repeat.body != fresh.body || repeat.closed)
                    return fail(key + " repeat: " + std::to_string(repeat.status) + " " + repeat.body);
                done_[static_cast<std::size_t>(t)]->fetch_add(1);
            }
        } catch (const std::exception& e) {
            fail("thread " + std::to_string(t) + ": " + e.what());
        }
    }

    std::atomic<bool> stop_{false};
    std::vector<std::unique_ptr<std::atomic<int>>> done_;
    std::vector<std::thread> threads_;
    mutable std::mutex mutex_;
    std::vector<std::string> failures_;
    std::vector<std::string> keys_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(HotReload)

// SIGHUP under load: TTL changes, required <-> optional, a route added; the keep-alive clients see no
// failed request and no dropped connection, every key runs once; the new config is then in force.
BOOST_AUTO_TEST_CASE(reloadUnderLoadDropsNothing) {
    TempDir dir;
    MockUpstream up(dir.path());
    const auto port = freePort();
    Gateway gw(dir, "gw", reloadConfig(port, up.port(), {}), port);

    auto missing = http(port, caseRequest("k-extra-0", kPayment, {}, "/v1/extra"));
    BOOST_TEST(missing.status == 404);

    std::vector<ReloadShape> shapes(5);
    shapes[0].paymentsTtl = "1h";
    shapes[0].shortTtl = "3s";
    shapes[1] = shapes[0];
    shapes[1].paymentsIdempotency = "optional";
    shapes[2] = shapes[1];
    shapes[2].extraRoute = true;
    shapes[3] = shapes[2];
    shapes[3].paymentsIdempotency = "required";
    shapes[3].paymentsTtl = "48h";
    shapes[4] = shapes[3];
    shapes[4].paymentsTtl = "12h";

    {
        Load load(port, 3);
        BOOST_REQUIRE(load.advance(5));
        for (const auto& shape : shapes) {
            BOOST_TEST(reloadWith(gw, port, up.port(), shape));
            BOOST_TEST(load.advance(3));  // traffic keeps flowing between the reloads
        }
        load.stop();
        const auto failures = load.failures();
        BOOST_TEST(failures.empty(), failures.size() << " failures, the first: " << (failures.empty() ? "" : failures[0]));
        // Every key a thread began was answered twice (the threads finish their pair before stopping).
        const auto keys = load.keys();
        BOOST_TEST(load.requests() == 2 * static_cast<int>(keys.size()));
        BOOST_TEST(keys.size() >= 3u * (5u + 3u * shapes.size()));
        auto executions = up.executions();
        int notOnce = 0;
        for (const auto& key : keys)
            if (!executions.contains(key) || executions[key] != 1) ++notOnce;
        BOOST_TEST(notOnce == 0);
        BOOST_TEST(up.total() == static_cast<int>(keys.size()));
    }
    BOOST_TEST(gw.process().running());

    // The added route answers now.
    auto extra = http(port, caseRequest("k-extra-1", kPayment, {}, "/v1/extra"));
    BOOST_TEST(extra.status == 201, extra.body);
    BOOST_TEST(up.executions("k-extra-1") == 1);

    // The short route's TTL is 3 s now: its record replays at once, then expires and the key is new.
    auto shortFirst = http(port, caseRequest("k-short-1", kPayment, {}, "/v1/short"));
    auto shortReplay = http(port, caseRequest("k-short-1", kPayment, {}, "/v1/short"));
    BOOST_TEST(shortFirst.status == 201, shortFirst.body);
    BOOST_TEST(shortReplay.header("Idempotent-Replayed").value_or("") == "true");
    Response shortLater;
    BOOST_TEST(waitUntil(
        [&] {
            shortLater = http(port, caseRequest("k-short-1", kPayment, {}, "/v1/short"));
            return shortLater.header("Idempotent-Replayed").value_or("") == "false";
        },
        Millis(12000), Millis(250)));
    BOOST_TEST(shortLater.status == 201);
    BOOST_TEST(shortLater.body != shortFirst.body);
    BOOST_TEST(up.executions("k-short-1") == 2);
}

// A route switched off by a reload answers 503 route-disabled (nothing forwarded), and on again after
// the next; an invalid file leaves the running config serving and the log names the problem.
BOOST_AUTO_TEST_CASE(disableReenableAndInvalidFile) {
    TempDir dir;
    MockUpstream up(dir.path());
    const auto port = freePort();
    ReloadShape shape;
    Gateway gw(dir, "gw", reloadConfig(port, up.port(), shape), port);

    BOOST_TEST(http(port, caseRequest("k-rl-1", kPayment)).status == 201);

    shape.paymentsEnabled = "false";
    BOOST_REQUIRE(reloadWith(gw, port, up.port(), shape));
    auto off = http(port, caseRequest("k-rl-2", kPayment));
    BOOST_TEST(off.status == 503, off.body);
    BOOST_TEST(problemType(off) == kRouteDisabled);
    BOOST_TEST(up.executions("k-rl-2") == 0);
    // The other routes still serve.
    BOOST_TEST(http(port, caseRequest("k-rl-3", kPayment, {}, "/v1/short")).status == 201);

    shape.paymentsEnabled = "true";
    BOOST_REQUIRE(reloadWith(gw, port, up.port(), shape));
    auto on = http(port, caseRequest("k-rl-2", kPayment));
    BOOST_TEST(on.status == 201, on.body);
    BOOST_TEST(on.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(up.executions("k-rl-2") == 1);
    // Records made before the switch are still there.
    auto old = http(port, caseRequest("k-rl-1", kPayment));
    BOOST_TEST(old.header("Idempotent-Replayed").value_or("") == "true");

    // An invalid file that would also switch the route off: rejected, the old config keeps serving.
    ReloadShape invalid = shape;
    invalid.paymentsEnabled = "false";
    invalid.broken = "    ttl_extra: 5m\n";
    {
        Connection keepAlive(port);
        BOOST_TEST(keepAlive.roundTrip(caseRequest("k-rl-4", kPayment)).status == 201);
        BOOST_REQUIRE(reloadWith(gw, port, up.port(), invalid, "reload rejected"));
        auto still = keepAlive.roundTrip(caseRequest("k-rl-5", kPayment));
        BOOST_TEST(still.status == 201, still.body);
        BOOST_TEST(http(port, caseRequest("k-rl-6", kPayment)).status == 201);
    }
    const auto log = gw.log();
    const auto line = log.substr(log.find("reload rejected"));
    const auto eol = line.find('\n');
    BOOST_TEST_CONTEXT(line.substr(0, eol)) {
        BOOST_TEST(contains(line.substr(0, eol), gw.configPath()));
        BOOST_TEST(contains(line.substr(0, eol), "routes.payments.ttl_extra"));
        BOOST_TEST(contains(line.substr(0, eol), "unknown"));
    }
    BOOST_TEST(gw.process().running());

    // Then a valid file applies.
    invalid.broken.clear();
    BOOST_REQUIRE(reloadWith(gw, port, up.port(), invalid));
    auto disabled = http(port, caseRequest("k-rl-7", kPayment));
    BOOST_TEST(disabled.status == 503, disabled.body);
    BOOST_TEST(problemType(disabled) == kRouteDisabled);
    BOOST_TEST(up.executions("k-rl-7") == 0);
    BOOST_TEST(up.executions("k-rl-5") == 1);
    BOOST_TEST(up.executions("k-rl-6") == 1);
}

// A reload re-applies the command line's --set over the new file; a changed listen address is not
// applied (the gateway keeps its socket) and the reload says so, while the rest of the file is.
BOOST_AUTO_TEST_CASE(reloadKeepsOverridesAndListenAddress) {
    TempDir dir;
    MockUpstream up(dir.path());
    const auto port = freePort();
    ReloadShape shape;  // payments: idempotency required in the file
    Gateway gw(dir, "gw", reloadConfig(port, up.port(), shape), port,
               GatewayOptions{{"--set", "routes.payments.idempotency=optional"}, {}});
    const Request noKey = caseRequest("", kPayment, {}, "/v1/payments");
    BOOST_TEST(http(port, noKey).status == 201);

    const auto otherPort = freePort();
    shape.extraRoute = true;
    shape.listen = otherPort;
    BOOST_REQUIRE(reloadWith(gw, port, up.port(), shape));
    const auto log = gw.log();
    const auto line = log.substr(log.rfind("configuration reloaded"));
    BOOST_TEST(contains(line.substr(0, line.find('\n')), "server.listen"), line);

    auto extra = http(port, caseRequest("k-over-1", kPayment, {}, "/v1/extra"));
    BOOST_TEST(extra.status == 201, extra.body);  // the new route is served on the old address
    auto stillOptional = http(port, noKey);
    BOOST_TEST(stillOptional.status == 201, stillOptional.body);  // --set still beats the file
    BOOST_TEST(up.executions("") == 2);
    BOOST_TEST(up.executions("k-over-1") == 1);
    BOOST_TEST(!waitForPort(otherPort, Millis(200)));
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// payments requires a key in the file; the layers above change it.
std::string layeringConfig(std::uint16_t port, std::uint16_t up) {
    std::string y;
    y += "server:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n";
    y += "log:\n  level: warning\n";
    y += "store:\n  type: memory\n";
    y += "upstreams:\n  up:\n    url: http://127.0.0.1:" + std::to_string(up) + "\n    timeout: 10s\n";
    y += "route_defaults:\n  forward_key: client\n  lease: 15s\n";
    y += "routes:\n  payments:\n    methods: [POST]\n    path: /v1/payments\n    upstream: up\n"
         "    idempotency: required\n    ttl: 24h\n";
    return y;
}

const std::string kEnvMode = "IDEMGATE_ROUTES__PAYMENTS__IDEMPOTENCY";

}  // namespace

BOOST_AUTO_TEST_SUITE(ConfigLayers)

// The command line beats the environment, which beats the file: observed through the payments route's
// idempotency mode (required: no key is 400; optional: no key is forwarded, a key is recorded; off: a key
// is forwarded every time).
BOOST_AUTO_TEST_CASE(commandLineBeatsEnvironmentBeatsFile) {
    TempDir dir;
    MockUpstream up(dir.path());
    const Request noKey = caseRequest("", kPayment, {}, "/v1/payments", "");

    {  // the file alone: required
        const auto port = freePort();
        Gateway gw(dir, "file", layeringConfig(port, up.port()), port);
        auto r = http(port, noKey);
        BOOST_TEST(r.status == 400, r.body);
        BOOST_TEST(problemType(r) == "urn:idemgate:problem:key-missing");
    }
    BOOST_TEST(up.total() == 0);
    {  // --set beats the file
        const auto port = freePort();
        Gateway gw(dir, "set", layeringConfig(port, up.port()), port,
                   GatewayOptions{{"--set", "routes.payments.idempotency=optional"}, {}});
        auto r = http(port, noKey);
        BOOST_TEST(r.status == 201, r.body);
        BOOST_TEST(up.executions("") == 1);
    }
    {  // the environment beats the file
        const auto port = freePort();
        Gateway gw(dir, "env", layeringConfig(port, up.port()), port, GatewayOptions{{}, {kEnvMode + "=optional"}});
        auto r = http(port, noKey);
        BOOST_TEST(r.status == 201, r.body);
        BOOST_TEST(up.executions("") == 2);
        auto k1 = http(port, caseRequest("k-layer-env", kPayment, {}, "/v1/payments", ""));
        auto k2 = http(port, caseRequest("k-layer-env", kPayment, {}, "/v1/payments", ""));
        BOOST_TEST(k2.header("Idempotent-Replayed").value_or("") == "true");  // optional records keys
        BOOST_TEST(up.executions("k-layer-env") == 1);
    }
    {  // --set beats the environment: off
        const auto port = freePort();
        Gateway gw(dir, "both", layeringConfig(port, up.port()), port,
                   GatewayOptions{{"--set", "routes.payments.idempotency=off"}, {kEnvMode + "=optional"}});
        auto k1 = http(port, caseRequest("k-layer-both", kPayment, {}, "/v1/payments", ""));
        auto k2 = http(port, caseRequest("k-layer-both", kPayment, {}, "/v1/payments", ""));
        BOOST_TEST(k1.status == 201);
        BOOST_TEST(k2.status == 201);
        BOOST_TEST(k2.header("Idempotent-Replayed").value_or("") != "true");
        BOOST_TEST(up.executions("k-layer-both") == 2);
        auto r = http(port, noKey);
        BOOST_TEST(r.status == 201, r.body);
        BOOST_TEST(up.executions("") == 3);
    }

    // --check-config shows the same effective value, layer by layer.
    dir.write("check.yaml", layeringConfig(freePort(), up.port()));
    const std::string idem = binaryDir() + "/idemgate";
    auto file = run({idem, "--check-config", dir.file("check.yaml")}, dir);
    auto env = run({idem, "--check-config", dir.file("check.yaml")}, dir, {kEnvMode + "=optional"});
    auto both = run({idem, "--check-config", dir.file("check.yaml"), "--set", "routes.payments.idempotency=off",
                     "--set", "routes.payments.ttl=48h"},
                    dir, {kEnvMode + "=optional", "IDEMGATE_ROUTES__PAYMENTS__TTL=2h"});
    BOOST_TEST(file.status == 0, file.output);
    BOOST_TEST(env.status == 0, env.output);
    BOOST_TEST(both.status == 0, both.output);
    BOOST_TEST(contains(file.output, "idempotency: required"), file.output);
    BOOST_TEST(contains(env.output, "idempotency: optional"), env.output);
    BOOST_TEST(contains(both.output, "idempotency: off"), both.output);
    BOOST_TEST(contains(both.output, "ttl: 48h"), both.output);
}

// --check-config prints the effective config with the store password masked (a redis store that is not
// running: checking needs no connection); it never prints the secret, from an env variable or a file.
BOOST_AUTO_TEST_CASE(checkConfigMasksSecrets) {
    TempDir dir;
    const std::string secret = "s3cr3t-VR-4f1e9c";
    dir.write("pw.txt", secret + "\n");
    const std::string base =
        "server:\n  listen: 127.0.0.1:18080\n"
        "upstreams:\n  up:\n    url: http://127.0.0.1:19090\n"
        "routes:\n  payments:\n    methods: [POST]\n    path: /v1/payments\n    upstream: up\n";
    dir.write("redis-env.yaml", base + "store:\n  type: redis\n  redis:\n    address: 127.0.0.1:1\n"
                                       "    password_env: VR_TEST_REDIS_PASSWORD\n");
    dir.write("redis-file.yaml", base + "store:\n  type: redis\n  redis:\n    address: 127.0.0.1:1\n"
                                        "    password_file: pw.txt\n");
    const std::string idem = binaryDir() + "/idemgate";

    auto env = run({idem, "--check-config", dir.file("redis-env.yaml")}, dir, {"VR_TEST_REDIS_PASSWORD=" + secret});
    auto file = run({idem, "--check-config", dir.file("redis-file.yaml")}, dir);
    for (const auto* r : {&env, &file}) {
        BOOST_TEST_CONTEXT(r->output) {
            BOOST_TEST(r->status == 0);
            BOOST_TEST(contains(r->output, "type: redis"));
            BOOST_TEST(contains(r->output, "********"));
            BOOST_TEST(!contains(r->output, secret));
            BOOST_TEST(!contains(r->output, "s3cr3t"));
        }
    }
    // Without the variable: an error naming the file, the key and the variable, not a crash or a connect.
    auto unset = run({idem, "--check-config", dir.file("redis-env.yaml")}, dir);
    BOOST_TEST(unset.status != 0);
    BOOST_TEST(contains(unset.output, "redis-env.yaml"), unset.output);
    BOOST_TEST(contains(unset.output, "store.redis.password_env"), unset.output);
    BOOST_TEST(contains(unset.output, "VR_TEST_REDIS_PASSWORD"), unset.output);

    // A password given as an override is refused, and not echoed.
    auto setPassword = run({idem, "--check-config", dir.file("redis-file.yaml"), "--set", "store.redis.password=" + secret}, dir);
    auto envPassword = run({idem, "--check-config", dir.file("redis-file.yaml")}, dir,
                           {"IDEMGATE_STORE__REDIS__PASSWORD=" + secret});
    for (const auto* r : {&setPassword, &envPassword}) {
        BOOST_TEST_CONTEXT(r->output) {
            BOOST_TEST(r->status != 0);
            BOOST_TEST(contains(r->output, "store.redis.password"));
            BOOST_TEST(!contains(r->output, secret));
        }
    }
}

// A bad file: non-zero exit naming the file, the key path and the problem; for an override, its source.
BOOST_AUTO_TEST_CASE(checkConfigNamesTheProblem) {
    TempDir dir;
    const std::string idem = binaryDir() + "/idemgate";
    std::string bad = layeringConfig(18081, 19091);
    bad.replace(bad.find("ttl: 24h"), 8, "ttl: banana");
    dir.write("bad-ttl.yaml", bad);
    auto ttl = run({idem, "--check-config", dir.file("bad-ttl.yaml")}, dir);
    BOOST_TEST(ttl.status != 0);
    BOOST_TEST(contains(ttl.output, "bad-ttl.yaml"), ttl.output);
    BOOST_TEST(contains(ttl.output, "routes.payments.ttl"), ttl.output);
    BOOST_TEST(contains(ttl.output, "banana"), ttl.output);
    BOOST_TEST(contains(ttl.output, "duration"), ttl.output);

    std::string badVersion = versionsConfig(18082, 19092, 19093);
    badVersion.replace(badVersion.find("default: \"1\""), 12, "default: \"9\"");
    dir.write("bad-version.yaml", badVersion);
    auto version = run({idem, "--check-config", dir.file("bad-version.yaml")}, dir);
    BOOST_TEST(version.status != 0);
    BOOST_TEST(contains(version.output, "bad-version.yaml"), version.output);
    BOOST_TEST(contains(version.output, "routes.payments_plain.versions.default"), version.output);
    BOOST_TEST(contains(version.output, "not a listed version"), version.output);

    // The same files pass when valid (so the checks above are about the change).
    dir.write("good-version.yaml", versionsConfig(18082, 19092, 19093));
    auto good = run({idem, "--check-config", dir.file("good-version.yaml")}, dir);
    BOOST_TEST(good.status == 0, good.output);
    BOOST_TEST(contains(good.output, "/legacy/{version}/charges"), good.output);

    dir.write("ok.yaml", layeringConfig(18081, 19091));
    auto setBad = run({idem, "--check-config", dir.file("ok.yaml"), "--set", "routes.payments.ttl=banana"}, dir);
    BOOST_TEST(setBad.status != 0);
    BOOST_TEST(contains(setBad.output, "--set"), setBad.output);
    BOOST_TEST(contains(setBad.output, "routes.payments.ttl"), setBad.output);
    auto envBad = run({idem, "--check-config", dir.file("ok.yaml")}, dir, {"IDEMGATE_ROUTES__PAYMENTS__TTL=banana"});
    BOOST_TEST(envBad.status != 0);
    BOOST_TEST(contains(envBad.output, "IDEMGATE_ROUTES__PAYMENTS__TTL"), envBad.output);
    BOOST_TEST(contains(envBad.output, "routes.payments.ttl"), envBad.output);
    // A --set naming a route the file does not define does not add it.
    auto setNew = run({idem, "--check-config", dir.file("ok.yaml"), "--set", "routes.nope.ttl=1h"}, dir);
    BOOST_TEST(setNew.status != 0);
    BOOST_TEST(contains(setNew.output, "routes.nope"), setNew.output);
}

BOOST_AUTO_TEST_SUITE_END()
