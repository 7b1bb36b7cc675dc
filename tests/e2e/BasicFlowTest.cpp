// The first-request / replay / conflict flow end to end: the real idemgate binary in front of the
// real mock upstream, on the embedded memory store.
#define BOOST_TEST_MODULE e2e basic flow
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <thread>

using namespace idem::test;

namespace {

struct Env {
    TempDir dir;
    MockUpstream up{dir.path()};
    std::uint16_t port = freePort();
    Gateway gw{dir, "gw", caseConfig(port, up.port()), port};

    Response post(const std::string& key, const std::string& body, Headers extra = {},
                  const std::string& target = "/v1/payments") {
        Headers h{{"Authorization", "Bearer tok-tenant-a"}, {"Content-Type", "application/json"}};
        if (!key.empty()) h.emplace_back("Idempotency-Key", key);
        for (auto& e : extra) h.push_back(e);
        return http(port, Request{"POST", target, h, body});
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(BasicFlow)

BOOST_AUTO_TEST_CASE(firstRequestIsForwardedAndTheRetryReplayed) {
    Env env;
    auto first = env.post("k-basic-1", R"({"amount":1000,"currency":"usd"})");
    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(first.header("Idempotency-Key").value_or("") == "k-basic-1");

    auto second = env.post("k-basic-1", R"({"amount":1000,"currency":"usd"})");
    BOOST_TEST(second.status == 201);
    BOOST_TEST(second.body == first.body);
    BOOST_TEST(second.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(second.header("Content-Type").value_or("") == first.header("Content-Type").value_or("x"));
    BOOST_TEST(env.up.executions().size() == 1u);
    BOOST_TEST(env.up.total() == 1);
}

BOOST_AUTO_TEST_CASE(missingKeyIs400AndDifferentBodyIs422) {
    Env env;
    auto missing = env.post("", R"({"amount":1})");
    BOOST_TEST(missing.status == 400);
    BOOST_TEST(missing.header("Content-Type").value_or("") == "application/problem+json");
    BOOST_TEST(missing.body.find("key-missing") != std::string::npos);

    BOOST_TEST(env.post("k-basic-2", R"({"amount":1})").status == 201);
    auto other = env.post("k-basic-2", R"({"amount":2})");
    BOOST_TEST(other.status == 422);
    BOOST_TEST(other.body.find("fingerprint-mismatch") != std::string::npos);
    BOOST_TEST(env.up.total() == 1);
}

BOOST_AUTO_TEST_CASE(concurrentDuplicatesGet409WithRetryAfter) {
    Env env;
    std::thread first([&] {
        auto r = env.post("k-basic-3", R"({"amount":5})", {{"X-Mock-Delay-Ms", "1500"}});
        BOOST_TEST(r.status == 201);
    });
    // Wait until the upstream has the first request, then send the duplicate.
    for (int i = 0; i < 200 && env.up.total() == 0; ++i) std::this_thread::sleep_for(Millis(10));
    auto dup = env.post("k-basic-3", R"({"amount":5})", {{"X-Mock-Delay-Ms", "1500"}});
    first.join();
    BOOST_TEST(dup.status == 409);
    const int retryAfter = std::stoi(dup.header("Retry-After").value_or("0"));
    BOOST_TEST(retryAfter >= 1);
    BOOST_TEST(retryAfter <= 15);
    BOOST_TEST(env.up.total() == 1);
}

BOOST_AUTO_TEST_CASE(unknownRouteIs404AndHealthAnswers) {
    Env env;
    auto r = http(env.port, Request{"GET", "/__idemgate/health", {}, "", false});
    BOOST_TEST(r.status == 200);
    auto nf = http(env.port, Request{"POST", "/v1/nothing-here", {{"Idempotency-Key", "k"}}, "{}"});
    BOOST_TEST(nf.status == 404);
    BOOST_TEST(nf.header("Content-Type").value_or("") == "application/problem+json");
    BOOST_TEST(env.up.total() == 0);
}

BOOST_AUTO_TEST_CASE(metricsCountRequestsAndStoredRecords) {
    Env env;
    auto metrics = [&] { return http(env.port, Request{"GET", "/__idemgate/metrics", {}, "", false}).body; };
    BOOST_TEST(metrics().find("\nidemgate_store_records 0\n") != std::string::npos, metrics());
    BOOST_TEST(env.post("k-metrics-1", R"({"amount":1})").status == 201);
    BOOST_TEST(env.post("k-metrics-2", R"({"amount":2})").status == 201);
    BOOST_TEST(env.post("k-metrics-2", R"({"amount":2})").status == 201);  // a replay stores nothing
    const std::string m = metrics();
    BOOST_TEST(m.find("# TYPE idemgate_store_records gauge\nidemgate_store_records 2\n") != std::string::npos, m);
    BOOST_TEST(m.find("\nidemgate_forwarded_total 2\n") != std::string::npos, m);
    BOOST_TEST(m.find("\nidemgate_replayed_total 1\n") != std::string::npos, m);
}

BOOST_AUTO_TEST_CASE(sigtermExitsCleanly) {
    Env env;
    BOOST_TEST(env.post("k-basic-4", "{}").status == 201);
    BOOST_TEST(env.gw.process().stop(Millis(10000)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
