// Fairness with many clients, end to end: idemgate-loadtest opens 512 keep-alive connections to the real
// idemgate (memory store) in front of the real mock upstream and keeps one request in flight on each for a
// short bounded time, with duplicates, concurrent-duplicate bursts and conflicting payloads, verified.
// A total rate can hide starved clients, so the run's per-connection report must show that every one of the
// 512 connections was answered, none was refused (connect failure, 503, reset) and nothing was wrong.
// No latency or rate is asserted (loadtest/scale.sh --only fairness measures them).
#define BOOST_TEST_MODULE e2e fairness
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace idem::test;

namespace {

constexpr std::uint64_t kConnections = 512;

Poco::JSON::Object::Ptr readJson(const std::string& path) {
    std::ifstream in(path);
    if (!in) return nullptr;
    std::stringstream text;
    text << in.rdbuf();
    try {
        Poco::JSON::Parser parser;
        return parser.parse(text.str()).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
        return nullptr;
    }
}

std::uint64_t member(const Poco::JSON::Object::Ptr& object, const std::string& name) {
    BOOST_REQUIRE_MESSAGE(object && object->has(name), "missing JSON member " << name);
    return object->getValue<std::uint64_t>(name);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(Fairness)

BOOST_AUTO_TEST_CASE(every_one_of_512_keep_alive_connections_is_answered_and_none_refused) {
    TempDir dir;
    // The mock with a thread per possible upstream connection: the test is about the gateway, so the
    // upstream must not be the one that queues connections (its default is 256).
    const std::uint16_t upstreamPort = freePort();
    Process mock({binaryDir() + "/idemgate-mock-upstream", "--port", std::to_string(upstreamPort), "--quiet",
                  "--threads", "1024"},
                 dir.file("mock-upstream.log"));
    BOOST_REQUIRE_MESSAGE(waitForPort(upstreamPort, Millis(10000)), "mock upstream did not start: " << mock.log());

    CaseOptions options;  // memory store, forward_key: client, the server's default limits
    options.gatewayPort = freePort();
    options.upstreamPort = upstreamPort;
    Gateway gw(dir, "gw", caseConfig(options), options.gatewayPort);

    const std::string jsonPath = dir.file("fairness.json");
    const RunResult r = run({binaryDir() + "/idemgate-loadtest", "--target", "127.0.0.1:" + std::to_string(gw.port()),
                             "--upstream", "127.0.0.1:" + std::to_string(upstreamPort), "--verify", "--reset-upstream",
                             "-c", std::to_string(kConnections), "-d", "3", "--duplicate-ratio", "0.3", "--burst", "4",
                             "--burst-ratio", "0.1", "--conflict-ratio", "0.05", "--tenants", "8", "--timeout", "10s",
                             "--quiet", "--json", jsonPath},
                            dir, Millis(120000));
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.status == 0);
    const auto json = readJson(jsonPath);
    BOOST_REQUIRE(json);

    // All 512 connections were opened (none refused) and kept (no reconnect after a close or reset).
    BOOST_TEST(member(json, "connections") == kConnections);
    const auto errors = json->getObject("errors");
    BOOST_TEST(member(errors, "connect_failures") == 0u);
    BOOST_TEST(member(errors, "reconnects") == 0u);
    BOOST_TEST(member(errors, "request_errors") == 0u);
    BOOST_TEST(member(errors, "closed") == 0u);
    BOOST_TEST(member(errors, "timeout") == 0u);
    BOOST_TEST(member(errors, "protocol") == 0u);
    BOOST_TEST(member(errors, "unanswered") == 0u);

    // Every connection was answered: none starved.
    const auto perConnection = json->getObject("per_connection");
    BOOST_TEST(member(perConnection, "connections") == kConnections);
    BOOST_TEST(member(perConnection, "never_answered") == 0u);
    BOOST_TEST(member(perConnection, "min") >= 1u);
    BOOST_TEST(member(json, "answered") >= kConnections);

    // Only the answers this load allows: 201, 409 (a duplicate in flight), 422 (the other payload). A
    // connection turned away at a limit (503) or any other error would show here and in the verification.
    const auto status = json->getObject("status");
    std::vector<std::string> names;
    status->getNames(names);
    for (const auto& name : names) {
        BOOST_TEST_INFO("status " << name);
        BOOST_TEST((name == "201" || name == "409" || name == "422"));
    }
    BOOST_TEST(status->has("201"));

    // At most one upstream execution per key, replays identical, every answer allowed.
    const auto verify = json->getObject("verify");
    BOOST_REQUIRE(verify);
    BOOST_TEST(verify->getValue<bool>("ok"));
    BOOST_TEST(member(verify, "violations") == 0u);
    BOOST_TEST(member(verify, "executions") == member(verify, "keys_with_2xx"));

    // The gateway is still serving.
    BOOST_TEST(gw.process().running());
    BOOST_TEST(http(gw.port(), caseRequest("fairness-after", R"({"amount":1,"currency":"usd"})")).status == 201);
}

BOOST_AUTO_TEST_SUITE_END()
