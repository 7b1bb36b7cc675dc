// The load tool's verification, end to end: idemgate-loadtest against the real idemgate (memory store) in
// front of the real mock upstream, whose /__stats counts executions per key. First a deliberately broken
// setup (the payments route with idempotency off) must be caught; then a short bounded run with
// concurrent-duplicate bursts, duplicates and conflicting payloads must pass. No latency is asserted.
#define BOOST_TEST_MODULE e2e load verification
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

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

}  // namespace

BOOST_AUTO_TEST_SUITE(LoadVerify)

BOOST_AUTO_TEST_CASE(broken_setup_idempotency_off_is_reported) {
    CaseOptions options;
    options.paymentsExtra = "    idempotency: off\n";
    CaseEnv env(options);

    const LoadRun r = runLoad(env.dir, {"--target", "127.0.0.1:" + std::to_string(env.port), "--upstream",
                                        "127.0.0.1:" + std::to_string(env.up.port()), "--verify", "-c", "8", "-n",
                                        "600", "--duplicate-ratio", "0.4", "--burst", "4", "--burst-ratio", "0.3",
                                        "--tenants", "2"});
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.output.find("verify        FAILED") != std::string::npos);
    BOOST_TEST(r.output.find("duplicate_execution") != std::string::npos);
    BOOST_REQUIRE(r.json);
    auto verify = r.json->getObject("verify");
    BOOST_REQUIRE(verify);
    BOOST_TEST(!verify->getValue<bool>("ok"));
    auto kinds = verify->getObject("by_kind");
    // Every duplicate reached the upstream again, and its fresh answer differs from the first.
    BOOST_TEST(kinds->getValue<std::uint64_t>("duplicate_execution") > 0u);
    BOOST_TEST(kinds->getValue<std::uint64_t>("replay_body_differs") > 0u);
    BOOST_TEST(verify->getArray("first")->size() > 0u);
    // What the tool says matches what the upstream counted.
    BOOST_TEST(verify->getValue<std::uint64_t>("executions") == static_cast<std::uint64_t>(env.up.total()));
    BOOST_TEST(verify->getValue<std::uint64_t>("executions") == 600u);
}

BOOST_AUTO_TEST_CASE(bounded_run_with_bursts_and_duplicates_passes_on_memory_store) {
    CaseEnv env;  // memory store, forward_key: client
    const LoadRun r = runLoad(env.dir, {"--target", "127.0.0.1:" + std::to_string(env.port), "--upstream",
                                        "127.0.0.1:" + std::to_string(env.up.port()), "--verify", "-c", "16", "-n",
                                        "30000", "-d", "3", "--duplicate-ratio", "0.3", "--burst", "4",
                                        "--burst-ratio", "0.2", "--conflict-ratio", "0.05", "--tenants", "4",
                                        "--payload-bytes", "200"});
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.status == 0);
    BOOST_REQUIRE(r.json);
    checkPassingRun(*r.json, 1000);
    // Every key the upstream executed was executed once: the tool's count is the mock's.
    const auto verify = r.json->getObject("verify");
    const auto executions = verify->getValue<std::uint64_t>("executions");
    BOOST_TEST(executions == static_cast<std::uint64_t>(env.up.total()));
    BOOST_TEST(executions == verify->getValue<std::uint64_t>("keys_with_2xx"));
}

BOOST_AUTO_TEST_CASE(open_loop_run_with_bursts_passes_on_memory_store) {
    CaseEnv env;
    const LoadRun r = runLoad(env.dir, {"--target", "127.0.0.1:" + std::to_string(env.port), "--upstream",
                                        "127.0.0.1:" + std::to_string(env.up.port()), "--verify", "-c", "16",
                                        "--rate", "2000", "-d", "2", "--duplicate-ratio", "0.3", "--burst", "4",
                                        "--burst-ratio", "0.3", "--tenants", "3"});
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.status == 0);
    BOOST_REQUIRE(r.json);
    BOOST_TEST(r.json->getValue<std::string>("mode") == "open");
    checkPassingRun(*r.json, 500);
}

BOOST_AUTO_TEST_CASE(replay_path_passes_on_memory_store) {
    CaseEnv env;
    const LoadRun r = runLoad(env.dir, {"--target", "127.0.0.1:" + std::to_string(env.port), "--upstream",
                                        "127.0.0.1:" + std::to_string(env.up.port()), "--verify", "-c", "8",
                                        "--replay", "--keys", "500", "-n", "2000", "-d", "20"});
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.status == 0);
    BOOST_REQUIRE(r.json);
    BOOST_TEST(r.json->getValue<std::uint64_t>("answered") == 2000u);
    BOOST_TEST(r.json->getObject("verify")->getValue<bool>("ok"));
    // Replays only: the upstream executed each of the 500 keys once, during the warm-up.
    BOOST_TEST(env.up.total() == 500);
    BOOST_TEST(r.json->getObject("status")->getValue<std::uint64_t>("201") == 2000u);
}

BOOST_AUTO_TEST_SUITE_END()
