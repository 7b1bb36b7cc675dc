// Claims, leases and in-flight duplicates, end to end (CASES.md B01, B05, B06, B08): the real idemgate
// on the memory store in front of the real mock upstream, whose /__stats counts the executions.
#define BOOST_TEST_MODULE e2e concurrency
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <cmath>
#include <csignal>
#include <latch>
#include <thread>

using namespace idem::test;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kInFlightType = "urn:idemgate:problem:in-flight";

struct Outcome {
    Response response;
    std::string error;  ///< non-empty when the exchange failed at the transport level
};

/// Sends `copies` identical requests at once: every connection is opened first, then all requests are
/// written together, so they overlap on the gateway.
std::vector<Outcome> burst(std::uint16_t port, const Request& request, int copies) {
    std::vector<std::unique_ptr<Connection>> connections;
    for (int i = 0; i < copies; ++i) connections.push_back(std::make_unique<Connection>(port, Millis(20000)));
    std::vector<Outcome> out(static_cast<std::size_t>(copies));
    std::latch go(copies + 1);
    std::vector<std::thread> threads;
    for (int i = 0; i < copies; ++i) {
        threads.emplace_back([&, i] {
            auto& slot = out[static_cast<std::size_t>(i)];
            go.arrive_and_wait();
            try {
                slot.response = connections[static_cast<std::size_t>(i)]->roundTrip(request);
            } catch (const std::exception& e) {
                slot.error = e.what();
            }
        });
    }
    go.arrive_and_wait();
    for (auto& t : threads) t.join();
    return out;
}

/// Checks a burst: exactly one fresh `firstStatus`, every other copy a 409 in-flight problem whose
/// Retry-After is an integer in [minRetry, maxRetry], and no 5xx. Returns the winner's response.
Response checkBurst(const std::vector<Outcome>& results, int firstStatus, int minRetry, int maxRetry) {
    Response winner;
    int winners = 0, conflicts = 0;
    for (const auto& r : results) {
        BOOST_TEST_CONTEXT("status " << r.response.status << " error '" << r.error << "' body " << r.response.body) {
            BOOST_TEST(r.error.empty());
            BOOST_TEST(r.response.status < 500);
            if (r.response.status == firstStatus) {
                ++winners;
                winner = r.response;
                BOOST_TEST(r.response.header("Idempotent-Replayed").value_or("") == "false");
            } else {
                BOOST_TEST(r.response.status == 409);
                ++conflicts;
                BOOST_TEST(r.response.header("Content-Type").value_or("") == "application/problem+json");
                BOOST_TEST(problemType(r.response) == kInFlightType);
                const int after = retryAfter(r.response);
                BOOST_TEST(after >= minRetry);
                BOOST_TEST(after <= maxRetry);
            }
        }
    }
    BOOST_TEST(winners == 1);
    BOOST_TEST(conflicts == static_cast<int>(results.size()) - 1);
    return winner;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(Concurrency)

// B01: ten identical requests at once while the upstream takes 2 s: one execution, one 201, nine 409
// with Retry-After; a later copy replays the 201.
BOOST_AUTO_TEST_CASE(b01_concurrentCopiesExecuteOnce) {
    CaseEnv env;
    env.up.script(R"({"key":"k-b01-1","responses":[{"delay_ms":2000,"status":201,"body":"{\"id\":\"pay_1\"}"}]})");
    const auto request = caseRequest("k-b01-1", R"({"amount":1000,"currency":"usd"})");

    auto results = burst(env.port, request, 10);
    auto winner = checkBurst(results, 201, 1, 15);
    BOOST_TEST(winner.body == R"({"id":"pay_1"})");

    auto later = env.send(request);
    BOOST_TEST(later.status == 201);
    BOOST_TEST(later.body == R"({"id":"pay_1"})");
    BOOST_TEST(later.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(env.up.executions("k-b01-1") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// B05 (1): a zero lease is refused at config load, naming the file and the key path, by --check-config
// and by --config alike.
BOOST_AUTO_TEST_CASE(b05_zeroLeaseIsRejectedAtLoad) {
    TempDir dir;
    for (const std::string zero : {"0", "0s"}) {
        BOOST_TEST_CONTEXT("lease: " << zero) {
            CaseOptions o;
            o.gatewayPort = freePort();
            o.upstreamPort = freePort();
            o.paymentsExtra = "    lease: " + zero + "\n";
            dir.write("zero.yaml", caseConfig(o));
            auto check = run({binaryDir() + "/idemgate", "--check-config", dir.file("zero.yaml")}, dir);
            BOOST_TEST(check.status != 0);
            BOOST_TEST(check.output.find("zero.yaml") != std::string::npos, check.output);
            BOOST_TEST(check.output.find("routes.payments.lease") != std::string::npos, check.output);

            auto serve = run({binaryDir() + "/idemgate", "--config", dir.file("zero.yaml")}, dir, Millis(10000));
            BOOST_TEST(serve.status != 0);
            BOOST_TEST(serve.status != 128 + SIGTERM);  // it exited by itself, it was not stopped
            BOOST_TEST(serve.output.find("routes.payments.lease") != std::string::npos, serve.output);
        }
    }
}

// B05 (2): with the lease left out the documented default (upstream timeout + 5 s = 25 s here) applies:
// the burst executes once and the 409s count down from 25 s, neither "expired" nor "forever".
BOOST_AUTO_TEST_CASE(b05_omittedLeaseUsesTheDefault) {
    CaseOptions o;
    o.lease = "";
    o.upstreamTimeout = "20s";
    CaseEnv env(o);

    auto check = run({binaryDir() + "/idemgate", "--check-config", env.dir.file("gw.yaml")}, env.dir);
    BOOST_TEST(check.status == 0, check.output);
    BOOST_TEST(check.output.find("lease: 25s") != std::string::npos, check.output);

    env.up.script(R"({"key":"k-b05-1","responses":[{"delay_ms":2000}]})");
    auto results = burst(env.port, caseRequest("k-b05-1", R"({"amount":1000})"), 10);
    // The 409s all come while the upstream sleeps (2 s), so at least 23 s of the 25 s lease are left.
    checkBurst(results, 201, 21, 25);
    BOOST_TEST(env.up.executions("k-b05-1") == 1);
    BOOST_TEST(env.up.total() == 1);
}

// B06: the client leaves (FIN, and RST) while the upstream works; the gateway still records the answer,
// and the retry replays it instead of running the payment again.
BOOST_AUTO_TEST_CASE(b06_clientDisconnectStillRecordsTheAnswer) {
    CaseEnv env;
    for (const std::string key : {"k-b06-fin", "k-b06-rst"})
        env.up.script(R"({"key":")" + key + R"(","responses":[{"delay_ms":3000,"status":201,"body":"{\"id\":\"pay_6\"}"}]})");
    const std::string body = R"({"amount":1000,"currency":"usd"})";

    Connection fin(env.port), rst(env.port);
    fin.send(caseRequest("k-b06-fin", body));
    rst.send(caseRequest("k-b06-rst", body));
    // Leave once the upstream is working on both (the case leaves at t = 1 s of the upstream's 3 s).
    BOOST_REQUIRE(waitUntil([&] { return env.up.total() == 2; }, Millis(10000)));
    fin.close(false);
    rst.close(true);
    // Both clients left while the exchange was in flight: the record is still claimed.
    for (const std::string key : {"k-b06-fin", "k-b06-rst"}) {
        auto probe = env.post(key, body);
        BOOST_TEST(probe.status == 409, key << ": " << probe.body);
    }

    for (const std::string key : {"k-b06-fin", "k-b06-rst"}) {
        BOOST_TEST_CONTEXT(key) {
            // Retry until the record settles: 409 while the upstream still works, then the replay.
            Response last;
            const bool settled = waitUntil(
                [&] {
                    last = env.post(key, body);
                    return last.status != 409;
                },
                Millis(15000), Millis(250));
            BOOST_TEST(settled);
            BOOST_TEST(last.status == 201);
            BOOST_TEST(last.body == R"({"id":"pay_6"})");
            BOOST_TEST(last.header("Idempotent-Replayed").value_or("") == "true");
            BOOST_TEST(env.up.executions(key) == 1);
        }
    }
    BOOST_TEST(env.up.total() == 2);
}

// B08: duplicates of a slow request get 409 problems (a type of their own, not the 422 one) whose
// Retry-After is an integer in [1, lease left] that shrinks as the claim ages; the first retry after
// the upstream answered replays.
BOOST_AUTO_TEST_CASE(b08_retryAfterCountsDownTheLease) {
    CaseEnv env;  // lease 15 s
    env.up.script(R"({"key":"k-b08-1","responses":[{"delay_ms":6000,"status":201,"body":"{\"id\":\"pay_8\"}"}]})");
    const std::string body = R"({"amount":1000,"currency":"usd"})";

    Response first;
    std::thread client1([&] { first = env.post("k-b08-1", body); });
    BOOST_REQUIRE(waitUntil([&] { return env.up.total() == 1; }, Millis(10000), Millis(10)));
    // The claim began before the upstream saw the request, so at any later moment the lease left is at
    // most 15 s minus the time since `seen`.
    const auto seen = Clock::now();

    struct Conflict {
        double sinceSeen;  ///< seconds from `seen` to when the duplicate was sent
        int retryAfter;
    };
    std::vector<Conflict> conflicts;
    Response final;
    auto backoff = Millis(100);
    const auto giveUp = Clock::now() + Millis(30000);
    while (Clock::now() < giveUp) {
        const auto sent = Clock::now();
        auto r = env.post("k-b08-1", body);
        if (r.status != 409) {
            final = r;
            break;
        }
        BOOST_TEST(r.header("Content-Type").value_or("") == "application/problem+json");
        BOOST_TEST(problemType(r) == kInFlightType);
        conflicts.push_back({std::chrono::duration<double>(sent - seen).count(), retryAfter(r)});
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, Millis(2000));
    }
    client1.join();

    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.body == R"({"id":"pay_8"})");
    BOOST_REQUIRE(conflicts.size() >= 2u);
    for (const auto& c : conflicts) {
        BOOST_TEST_CONTEXT("duplicate sent " << c.sinceSeen << " s after the upstream got the first") {
            BOOST_TEST(c.retryAfter >= 1);
            BOOST_TEST(c.retryAfter <= 15);
            BOOST_TEST(c.retryAfter <= static_cast<int>(std::ceil(15.0 - c.sinceSeen)));
        }
    }
    // The first duplicate came right away, the last one seconds later: the hint went down.
    BOOST_TEST(conflicts.back().sinceSeen - conflicts.front().sinceSeen >= 2.0);
    BOOST_TEST(conflicts.back().retryAfter < conflicts.front().retryAfter);

    // Client 2's first answer after the 409s is the replay.
    BOOST_TEST(final.status == 201);
    BOOST_TEST(final.body == R"({"id":"pay_8"})");
    BOOST_TEST(final.header("Idempotent-Replayed").value_or("") == "true");

    // Reusing the key for another request is a different problem type.
    auto mismatch = env.post("k-b08-1", R"({"amount":9999,"currency":"usd"})");
    BOOST_TEST(mismatch.status == 422);
    BOOST_TEST(problemType(mismatch) == "urn:idemgate:problem:fingerprint-mismatch");
    BOOST_TEST(problemType(mismatch) != kInFlightType);
    BOOST_TEST(env.up.executions("k-b08-1") == 1);
    BOOST_TEST(env.up.total() == 1);
}

BOOST_AUTO_TEST_SUITE_END()
