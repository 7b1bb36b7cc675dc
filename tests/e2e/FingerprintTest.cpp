// What counts as "the same request" under one key, end to end (CASES.md B11, B13): canonical JSON on a
// json route, array order and number spelling significant, the query string part of the request.
#define BOOST_TEST_MODULE e2e fingerprint
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

using namespace idem::test;

namespace {

const std::string kMismatch = "urn:idemgate:problem:fingerprint-mismatch";

void expectMismatch(const Response& r) {
    BOOST_TEST(r.status == 422, r.body);
    BOOST_TEST(problemType(r) == kMismatch);
    BOOST_TEST(r.header("Content-Type").value_or("") == "application/problem+json");
}

void expectReplayOf(const Response& r, const Response& original) {
    BOOST_TEST(r.status == original.status);
    BOOST_TEST(r.body == original.body);
    BOOST_TEST(r.header("Idempotent-Replayed").value_or("") == "true");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(Fingerprint)

// B11 (1, 2, 4): members reordered at every level plus white space replay; another amount is 422.
BOOST_AUTO_TEST_CASE(b11_reorderedJsonReplaysAndAnotherAmountIs422) {
    CaseEnv env;
    const std::string script = R"({"status":201,"body":"{\"id\":\"pay_11\"}"})";
    env.up.script(R"({"key":"k-b11-1","responses":[)" + script + "]}");

    auto first = env.post("k-b11-1", R"({"amount":1000,"currency":"usd","meta":{"a":1,"b":[{"x":1,"y":2}]}})");
    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.body == R"({"id":"pay_11"})");

    auto reordered = env.post("k-b11-1", "{ \"currency\" : \"usd\",\n \"meta\":{\"b\":[{\"y\":2,\"x\":1}],\"a\":1}, \"amount\":1000 }");
    expectReplayOf(reordered, first);

    expectMismatch(env.post("k-b11-1", R"({"amount":1001,"currency":"usd","meta":{"a":1,"b":[{"x":1,"y":2}]}})"));
    BOOST_TEST(env.up.executions("k-b11-1") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// B11 (3): array order is significant.
BOOST_AUTO_TEST_CASE(b11_arrayOrderIsSignificant) {
    CaseEnv env;
    auto first = env.post("k-b11-2", R"({"amount":1000,"items":[{"x":1},{"x":3}]})");
    BOOST_TEST(first.status == 201);
    expectMismatch(env.post("k-b11-2", R"({"amount":1000,"items":[{"x":3},{"x":1}]})"));
    expectReplayOf(env.post("k-b11-2", R"({"items":[{"x":1},{"x":3}],"amount":1000})"), first);
    BOOST_TEST(env.up.executions("k-b11-2") == 1);
}

// B11 (numbers): as the README documents, numbers compare by their exact text: 1000, 1000.0 and 1e3
// are different requests, never silently equated.
BOOST_AUTO_TEST_CASE(b11_numberSpellingsAreDifferentRequests) {
    CaseEnv env;
    auto first = env.post("k-b11-3", R"({"amount":1000,"currency":"usd"})");
    BOOST_TEST(first.status == 201);
    expectMismatch(env.post("k-b11-3", R"({"amount":1000.0,"currency":"usd"})"));
    expectMismatch(env.post("k-b11-3", R"({"amount":1e3,"currency":"usd"})"));
    expectReplayOf(env.post("k-b11-3", R"({"currency":"usd","amount":1000})"), first);
    BOOST_TEST(env.up.executions("k-b11-3") == 1);
}

// B11 (non-JSON): a body that is not declared JSON is fingerprinted as raw bytes, even on a json route.
BOOST_AUTO_TEST_CASE(b11_nonJsonContentTypeIsRaw) {
    CaseEnv env;
    const auto plain = [](const std::string& key, const std::string& body) {
        auto r = caseRequest(key, body);
        for (auto& [n, v] : r.headers)
            if (n == "Content-Type") v = "text/plain";
        return r;
    };
    auto first = env.send(plain("k-b11-4", R"({"a":1,"b":2})"));
    BOOST_TEST(first.status == 201);
    expectMismatch(env.send(plain("k-b11-4", R"({"b":2,"a":1})")));
    expectReplayOf(env.send(plain("k-b11-4", R"({"a":1,"b":2})")), first);
    BOOST_TEST(env.up.executions("k-b11-4") == 1);
}

// B13: the query string is part of the request: a dry run is not replayed to the real call, and
// permuted parameters are the same query.
BOOST_AUTO_TEST_CASE(b13_queryStringIsPartOfTheRequest) {
    CaseEnv env;
    const std::string refund = R"({"payment":"pay_1","amount":500})";

    auto dryRun = env.post("k-b13-1", refund, {{"X-Mock-Status", "200"}, {"X-Mock-Body", R"({"valid":true})"}},
                           "/v1/refunds?dry_run=true");
    BOOST_TEST(dryRun.status == 200);
    BOOST_TEST(dryRun.body == R"({"valid":true})");
    auto real = env.post("k-b13-1", refund, {}, "/v1/refunds");
    expectMismatch(real);
    BOOST_TEST(real.body.find("valid") == std::string::npos);
    BOOST_TEST(env.up.executions("k-b13-1") == 1);

    auto ab = env.post("k-b13-2", refund, {}, "/v1/refunds?a=1&b=2");
    BOOST_TEST(ab.status == 201);
    expectReplayOf(env.post("k-b13-2", refund, {}, "/v1/refunds?b=2&a=1"), ab);
    expectMismatch(env.post("k-b13-2", refund, {}, "/v1/refunds?a=1&b=3"));
    BOOST_TEST(env.up.executions("k-b13-2") == 1);

    const auto forwards = env.up.requests();
    BOOST_REQUIRE(forwards.size() == 2u);
    BOOST_TEST(forwards[0].query == "dry_run=true");
    BOOST_TEST(forwards[1].query == "a=1&b=2");
}

BOOST_AUTO_TEST_SUITE_END()
