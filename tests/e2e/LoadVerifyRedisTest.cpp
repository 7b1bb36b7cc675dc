// The load tool's verification against two idemgate instances sharing Redis: idemgate-loadtest spreads its
// connections over both gateways, in front of one real mock upstream, with concurrent-duplicate bursts,
// duplicates and conflicting payloads, and checks that every key executed at most once and every replay
// equals the first answer. Needs the `redis` CTest fixture. No latency is asserted.
#define BOOST_TEST_MODULE e2e load verification on Redis
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"
#include "tests/support/ServiceEnv.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace idem::test;

namespace {

/// One run of idemgate-loadtest (bounded; --quiet, JSON result read back).
struct LoadRun {
    int status = -1;
    std::string output;
    Poco::JSON::Object::Ptr json;
};

LoadRun runLoad(const TempDir& dir, const std::vector<std::string>& args) {
    static int counter = 0;
    const std::string jsonPath = dir.file("load-" + std::to_string(++counter) + ".json");
    std::vector<std::string> argv{binaryDir() + "/idemgate-loadtest"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--json", jsonPath, "--quiet", "--timeout", "10s"});
    const RunResult result = run(argv, dir, Millis(120000));
    LoadRun r;
    r.status = result.status;
    r.output = result.output;
    std::ifstream in(jsonPath);
    if (in) {
        std::stringstream text;
        text << in.rdbuf();
        try {
            Poco::JSON::Parser parser;
            r.json = parser.parse(text.str()).extract<Poco::JSON::Object::Ptr>();
        } catch (const std::exception&) {
            r.json = nullptr;
        }
    }
    return r;
}

/// A run that must have passed: at least `minAnswered` answers, every request sent was answered, no
/// violation, and the load did contain bursts and duplicates.
void checkPassingRun(const Poco::JSON::Object& json, std::uint64_t minAnswered) {
    BOOST_TEST(json.getValue<std::uint64_t>("answered") >= minAnswered);
    BOOST_TEST(json.getObject("errors")->getValue<std::uint64_t>("request_errors") == 0u);
    BOOST_TEST(json.getObject("errors")->getValue<std::uint64_t>("unsent") == 0u);
    const auto verify = json.getObject("verify");
    BOOST_REQUIRE(verify);
    BOOST_TEST(verify->getValue<bool>("ok"));
    BOOST_TEST(verify->getValue<std::uint64_t>("violations") == 0u);
    const auto keys = json.getObject("keys");
    BOOST_TEST(keys->getValue<std::uint64_t>("bursts") > 0u);
    BOOST_TEST(keys->getValue<std::uint64_t>("duplicate_requests") > 0u);
    const auto status = json.getObject("status");
    BOOST_TEST(status->has("201"));
}


std::string redisStoreYaml(const std::string& address, const std::string& prefix) {
    return "store:\n  type: redis\n  redis:\n"
           "    address: " + address + "\n"
           "    key_prefix: \"" + prefix + ":\"\n";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(LoadVerifyRedis)

// Two idemgate instances sharing one redis-server (the `redis` CTest fixture), connections spread over both:
// a burst's copies land on both instances, and the store alone keeps each key to one execution.
BOOST_AUTO_TEST_CASE(bounded_run_over_two_instances_sharing_redis_passes) {
    const std::string address = serviceEnv("redis", "IDEM_REDIS");
    const std::string prefix =
        "loadverify" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007);
    TempDir dir;
    MockUpstream up(dir.path());
    CaseOptions options;
    options.storeYaml = redisStoreYaml(address, prefix);
    options.upstreamPort = up.port();
    const std::uint16_t portA = freePort();
    options.gatewayPort = portA;
    Gateway a(dir, "gw-a", caseConfig(options), portA);
    const std::uint16_t portB = freePort();
    options.gatewayPort = portB;
    Gateway b(dir, "gw-b", caseConfig(options), portB);

    const LoadRun r = runLoad(dir, {"--target", "127.0.0.1:" + std::to_string(portA), "--target",
                                    "127.0.0.1:" + std::to_string(portB), "--upstream",
                                    "127.0.0.1:" + std::to_string(up.port()), "--verify", "-c", "16", "-n", "30000",
                                    "-d", "3", "--duplicate-ratio", "0.3", "--burst", "4", "--burst-ratio", "0.2",
                                    "--conflict-ratio", "0.05", "--tenants", "4"});
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.status == 0);
    BOOST_REQUIRE(r.json);
    checkPassingRun(*r.json, 1000);
    // Both instances served: connections alternate between the targets, and none went unanswered.
    BOOST_TEST(r.json->getArray("targets")->size() == 2u);
    BOOST_TEST(r.json->getObject("per_connection")->getValue<std::uint64_t>("never_answered") == 0u);
    const auto verify = r.json->getObject("verify");
    BOOST_TEST(verify->getValue<std::uint64_t>("executions") == static_cast<std::uint64_t>(up.total()));
    BOOST_TEST(verify->getValue<std::uint64_t>("executions") == verify->getValue<std::uint64_t>("keys_with_2xx"));
}

BOOST_AUTO_TEST_SUITE_END()
