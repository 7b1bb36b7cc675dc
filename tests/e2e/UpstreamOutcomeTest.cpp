// What each upstream outcome does to the key, end to end (CASES.md B03, B16, B20, B24): requests that
// die before forwarding leave nothing behind, explicit refusals release the key, ambiguous 5xx are kept
// (or released when the route says so), oversized answers become tombstones, and the key the upstream
// receives is stable.
#define BOOST_TEST_MODULE e2e upstream outcomes
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <regex>

using namespace idem::test;

namespace {

const std::string kPayment = R"({"amount":1000,"currency":"usd"})";

/// The retry after a failed first attempt is forwarded (a fresh 201), and the retry after that replays it.
void expectForwardedThenReplayed(CaseEnv& env, const Request& retry) {
    auto forwarded = env.send(retry);
    BOOST_TEST(forwarded.status == 201, forwarded.body);
    BOOST_TEST(forwarded.header("Idempotent-Replayed").value_or("") == "false");
    auto replayed = env.send(retry);
    BOOST_TEST(replayed.status == 201);
    BOOST_TEST(replayed.body == forwarded.body);
    BOOST_TEST(replayed.header("Idempotent-Replayed").value_or("") == "true");
}

std::string header(const Headers& headers, const std::string& name) {
    for (const auto& [n, v] : headers) {
        if (n.size() != name.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < n.size() && same; ++i) same = std::tolower(static_cast<unsigned char>(n[i])) ==
                                                                   std::tolower(static_cast<unsigned char>(name[i]));
        if (same) return v;
    }
    return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(UpstreamOutcome)

// B03 (1): the upstream refuses the connection: 502 upstream-unreachable (retryable), nothing kept; once
// the upstream is back the retry is forwarded and gets 201.
BOOST_AUTO_TEST_CASE(b03_refusedUpstreamReleasesTheKey) {
    TempDir dir;
    CaseOptions o;
    o.gatewayPort = freePort();
    o.upstreamPort = freePort();  // nothing listens there yet
    Gateway gw(dir, "gw", caseConfig(o), o.gatewayPort);
    const auto request = caseRequest("k-b03-1", kPayment);

    auto refused = http(o.gatewayPort, request);
    BOOST_TEST(refused.status == 502);
    BOOST_TEST(problemType(refused) == "urn:idemgate:problem:upstream-unreachable");
    BOOST_TEST(refused.body.find("\"retryable\":true") != std::string::npos, refused.body);

    MockUpstream up(dir.path(), o.upstreamPort);
    auto forwarded = http(o.gatewayPort, request);
    BOOST_TEST(forwarded.status == 201, forwarded.body);
    BOOST_TEST(forwarded.header("Idempotent-Replayed").value_or("") == "false");
    auto replayed = http(o.gatewayPort, request);
    BOOST_TEST(replayed.status == 201);
    BOOST_TEST(replayed.body == forwarded.body);
    BOOST_TEST(replayed.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(up.executions("k-b03-1") == 1);
    BOOST_TEST(up.total() == 1);
}

// B03 (2): the client announces 5000 bytes, sends 100 and closes: nothing was begun (and nothing
// forwarded), so the full retry is forwarded. The refunds route fingerprints raw bytes, so a truncated
// body is not caught as invalid JSON first.
BOOST_AUTO_TEST_CASE(b03_clientGoneMidBodyLeavesNoClaim) {
    CaseEnv env;
    std::string body = R"({"payment":"pay_3","amount":500,"pad":")";
    body += std::string(5000 - body.size() - 2, 'x');
    body += "\"}";
    BOOST_REQUIRE(body.size() == 5000u);
    const auto request = caseRequest("k-b03-2", body, {}, "/v1/refunds");

    Connection c(env.port);
    std::string head = "POST /v1/refunds HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [n, v] : request.headers) head += n + ": " + v + "\r\n";
    head += "Content-Length: 5000\r\n\r\n";
    c.sendRaw(head + body.substr(0, 100));
    c.shutdownWrite();
    // The gateway closes its side once it has given up on the request: then it is done with it.
    c.pending(Millis(10000));

    expectForwardedThenReplayed(env, request);
    BOOST_TEST(env.up.executions("k-b03-2") == 1);
    const auto forwards = env.up.requests();
    BOOST_REQUIRE(forwards.size() == 1u);
    BOOST_TEST(forwards[0].bodyLength == 5000u);
}

// B03 (3): a body over the route's limit is 413 and pins nothing: a valid retry under the same key is
// forwarded, not answered 422.
BOOST_AUTO_TEST_CASE(b03_tooLargeBodyLeavesNoClaim) {
    CaseOptions o;
    o.paymentsExtra = "    max_body: 1KiB\n";
    CaseEnv env(o);

    const std::string big = R"({"amount":1000,"pad":")" + std::string(2000, 'x') + "\"}";
    auto tooLarge = env.send(caseRequest("k-b03-3", big));
    BOOST_TEST(tooLarge.status == 413);
    BOOST_TEST(problemType(tooLarge) == "urn:idemgate:problem:body-too-large");
    BOOST_TEST(env.up.total() == 0);

    expectForwardedThenReplayed(env, caseRequest("k-b03-3", kPayment));
    BOOST_TEST(env.up.executions("k-b03-3") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// B03 (4): invalid JSON on a json-fingerprint route is 400 and pins nothing.
BOOST_AUTO_TEST_CASE(b03_invalidJsonLeavesNoClaim) {
    CaseEnv env;
    auto invalid = env.post("k-b03-4", R"({"amount":1000,"currency":)");
    BOOST_TEST(invalid.status == 400);
    BOOST_TEST(problemType(invalid) == "urn:idemgate:problem:invalid-body");
    BOOST_TEST(env.up.total() == 0);

    expectForwardedThenReplayed(env, caseRequest("k-b03-4", kPayment));
    BOOST_TEST(env.up.executions("k-b03-4") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// B16 (503): an explicit refusal is passed through and releases the key; the retry is forwarded again
// under the same forwarded key (the default, derived one) and its 201 is then replayed.
BOOST_AUTO_TEST_CASE(b16_503ReleasesAndTheRetryKeepsTheForwardedKey) {
    CaseOptions o;
    o.forwardKey = "";  // the default: derived
    CaseEnv env(o);
    // Per received key: first 503, then 201. A retry under another forwarded key would get the 503 again.
    env.up.script(R"({"key":"*","responses":[)"
                  R"({"status":503,"headers":[["Retry-After","1"]],"body":"{\"error\":\"busy\"}"},)"
                  R"({"status":201,"body":"{\"id\":\"pay_16\"}"}]})");
    const auto request = caseRequest("k-b16-1", kPayment);

    auto busy = env.send(request);
    BOOST_TEST(busy.status == 503);
    BOOST_TEST(busy.body == R"({"error":"busy"})");
    BOOST_TEST(busy.header("Retry-After").value_or("") == "1");

    auto created = env.send(request);
    BOOST_TEST(created.status == 201);
    BOOST_TEST(created.body == R"({"id":"pay_16"})");
    BOOST_TEST(created.header("Idempotent-Replayed").value_or("") == "false");

    auto replayed = env.send(request);
    BOOST_TEST(replayed.status == 201);
    BOOST_TEST(replayed.body == R"({"id":"pay_16"})");
    BOOST_TEST(replayed.header("Idempotent-Replayed").value_or("") == "true");

    const auto counts = env.up.executions();
    BOOST_REQUIRE(counts.size() == 1u);  // one forwarded key for both executions
    BOOST_TEST(counts.begin()->first.starts_with("idg_"));
    BOOST_TEST(counts.begin()->second == 2);
    BOOST_TEST(env.up.total() == 2);
}

// B16 (500, 504): an ambiguous answer is kept as "unknown" and replayed as it was; nothing is forwarded
// again under the default on_unknown: hold.
BOOST_AUTO_TEST_CASE(b16_500And504AreKeptAndReplayed) {
    CaseEnv env;
    for (const int status : {500, 504}) {
        BOOST_TEST_CONTEXT("upstream " << status) {
            const std::string key = "k-b16-" + std::to_string(status);
            const std::string body = R"({"error":"boom )" + std::to_string(status) + R"("})";
            env.up.script(R"({"key":")" + key + R"(","responses":[{"status":)" + std::to_string(status) +
                          R"(,"body":")" + R"({\"error\":\"boom )" + std::to_string(status) + R"(\"}"},{"status":201}]})");
            const auto request = caseRequest(key, kPayment);
            auto first = env.send(request);
            BOOST_TEST(first.status == status);
            BOOST_TEST(first.body == body);
            BOOST_TEST(first.header("Idempotent-Replayed").value_or("") == "false");
            for (int retry = 0; retry < 2; ++retry) {
                auto again = env.send(request);
                BOOST_TEST(again.status == status);
                BOOST_TEST(again.body == body);
                BOOST_TEST(again.header("Idempotent-Replayed").value_or("") == "true");
            }
            BOOST_TEST(env.up.executions(key) == 1);
        }
    }
    BOOST_TEST(env.up.total() == 2);
}

// B16 (on_unknown: release): the route releases ambiguous answers, so the retry is forwarded again.
BOOST_AUTO_TEST_CASE(b16_onUnknownReleaseForwardsTheRetry) {
    CaseOptions o;
    o.paymentsExtra = "    on_unknown: release\n";
    CaseEnv env(o);
    for (const int status : {500, 504}) {
        BOOST_TEST_CONTEXT("upstream " << status) {
            const std::string key = "k-b16-release-" + std::to_string(status);
            env.up.script(R"({"key":")" + key + R"(","responses":[{"status":)" + std::to_string(status) +
                          R"(},{"status":201,"body":"{\"id\":\"pay_16\"}"}]})");
            const auto request = caseRequest(key, kPayment);
            BOOST_TEST(env.send(request).status == status);
            auto created = env.send(request);
            BOOST_TEST(created.status == 201);
            BOOST_TEST(created.body == R"({"id":"pay_16"})");
            BOOST_TEST(created.header("Idempotent-Replayed").value_or("") == "false");
            auto replayed = env.send(request);
            BOOST_TEST(replayed.status == 201);
            BOOST_TEST(replayed.header("Idempotent-Replayed").value_or("") == "true");
            BOOST_TEST(env.up.executions(key) == 2);
        }
    }
    BOOST_TEST(env.up.total() == 4);
}

// B20 (1): an answer over max_stored_response reaches the first caller whole; the record becomes a
// tombstone, so a retry gets 410 response-not-replayable and the payment is never forwarded again.
BOOST_AUTO_TEST_CASE(b20_oversizedAnswerBecomesATombstone) {
    CaseOptions o;
    o.paymentsExtra = "    max_stored_response: 64KiB\n";
    CaseEnv env(o);
    constexpr std::size_t kSize = 200 * 1024;
    const auto request = caseRequest("k-b20-1", kPayment, {{"X-Mock-Body-Size", std::to_string(kSize)}});

    auto first = env.send(request);
    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.body.size() == kSize);
    BOOST_TEST(first.body.starts_with(R"({"filler":")"));
    BOOST_TEST(first.body.ends_with("\"}"));

    for (int retry = 0; retry < 2; ++retry) {
        auto again = env.send(request);
        BOOST_TEST(again.status == 410);
        BOOST_TEST(problemType(again) == "urn:idemgate:problem:response-not-replayable");
        BOOST_TEST(again.header("Idempotent-Replayed").value_or("") == "true");
        BOOST_TEST(again.body.size() < 4096u);
    }
    BOOST_TEST(env.up.executions("k-b20-1") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// B24: with the default forward_key (derived) the upstream gets an Idempotency-Key on every forward,
// the same value on the first attempt, on the retry after a 503 and after a gateway restart; another
// tenant's same client key maps to another value; the client's key itself is not sent.
BOOST_AUTO_TEST_CASE(b24_forwardedKeyIsStable) {
    CaseOptions o;
    o.forwardKey = "";  // the default: derived
    CaseEnv env(o);

    auto refused = env.post("k-b24-1", kPayment, {{"X-Mock-Status", "503"}});
    BOOST_TEST(refused.status == 503);
    auto created = env.post("k-b24-1", kPayment);
    BOOST_TEST(created.status == 201);
    BOOST_TEST(created.header("Idempotent-Replayed").value_or("") == "false");

    // The memory store forgets its records on restart (README), so this retry is forwarded once more.
    env.gw->restart();
    auto afterRestart = env.post("k-b24-1", kPayment);
    BOOST_TEST(afterRestart.status == 201);

    auto otherTenant = env.post("k-b24-1", kPayment, {}, "/v1/payments", "tok-tenant-b");
    BOOST_TEST(otherTenant.status == 201);
    BOOST_TEST(otherTenant.header("Idempotent-Replayed").value_or("") == "false");

    const auto forwards = env.up.requests();
    BOOST_REQUIRE(forwards.size() == 4u);
    const std::regex derived("idg_[0-9a-f]{40}");
    for (const auto& f : forwards) {
        BOOST_TEST(f.hasKey);
        BOOST_TEST(std::regex_match(f.key, derived), f.key);
        BOOST_TEST(header(f.headers, "Idempotency-Key") == f.key);
        for (const auto& [n, v] : f.headers) BOOST_TEST(v.find("k-b24-1") == std::string::npos, n << ": " << v);
    }
    BOOST_TEST(forwards[1].key == forwards[0].key);
    BOOST_TEST(forwards[2].key == forwards[0].key);
    BOOST_TEST(forwards[3].key != forwards[0].key);
    // Tenant B's request arrives with its own credential; tenant A's three carry A's.
    BOOST_TEST(header(forwards[3].headers, "Authorization") == "Bearer tok-tenant-b");
    BOOST_TEST(header(forwards[2].headers, "Authorization") == "Bearer tok-tenant-a");
}

BOOST_AUTO_TEST_SUITE_END()
