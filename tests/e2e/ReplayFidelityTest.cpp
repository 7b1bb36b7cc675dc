// A replay is the original answer, framed afresh and marked (CASES.md B17, B18, B19, B21): exact status,
// body bytes and end-to-end headers; no hop-by-hop or framing headers from the upstream; a keep-alive
// connection stays usable after it.
#define BOOST_TEST_MODULE e2e replay fidelity
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

using namespace idem::test;

namespace {

const std::string kPayment = R"({"amount":1000,"currency":"usd"})";

/// Every value of a header, in order.
std::vector<std::string> values(const Response& r, const std::string& name) {
    std::vector<std::string> out;
    for (const auto& [n, v] : r.headers) {
        if (n.size() != name.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < n.size() && same; ++i)
            same = std::tolower(static_cast<unsigned char>(n[i])) == std::tolower(static_cast<unsigned char>(name[i]));
        if (same) out.push_back(v);
    }
    return out;
}

/// HTTP/1.1 framing made by the gateway: exactly one of a correct Content-Length or chunked encoding.
void expectOwnFraming(const Response& r) {
    BOOST_TEST(r.count("Transfer-Encoding") <= 1u);
    if (r.chunked) {
        BOOST_TEST(r.count("Content-Length") == 0u, r.rawHead);
    } else {
        BOOST_TEST(r.count("Content-Length") == 1u, r.rawHead);
        BOOST_TEST(r.header("Content-Length").value_or("") == std::to_string(r.body.size()));
    }
}

/// Sends the same request twice and checks the second is a marked replay of the first, identical in
/// status, body and Content-Type. Returns {first, replay}.
std::pair<Response, Response> originalAndReplay(CaseEnv& env, const Request& request) {
    auto first = env.send(request);
    auto replay = env.send(request);
    BOOST_TEST(first.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(replay.status == first.status);
    BOOST_TEST(replay.body == first.body);
    BOOST_TEST(values(replay, "Content-Type") == values(first, "Content-Type"));
    return {first, replay};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ReplayFidelity)

// B17: 201, 202, 204, 402 and an opted-in 503 replay with their exact status, body bytes and
// Content-Type (charset included); the 204 replay has no body and no positive Content-Length.
BOOST_AUTO_TEST_CASE(b17_exactStatusBodyAndContentType) {
    CaseOptions o;
    o.routeExtra["payments_v2"] = "    release_on: [408, 425, 429]\n";  // 503 is kept, not released
    CaseEnv env(o);

    struct Step {
        std::string key, target, status, contentType, body;
    };
    const std::vector<Step> steps{
        {"k-b17-1", "/v1/payments", "201", "application/json; charset=utf-8", R"({"id":"pay_17"})"},
        {"k-b17-2", "/v1/payments/pay_17:capture", "202", "application/json", R"({"status":"pending"})"},
        {"k-b17-4", "/v1/payments", "402", "application/problem+json",
         R"({"type":"card_declined","title":"Your card was declined","status":402})"},
        {"k-b17-5", "/v2/payments", "503", "application/json", R"({"error":"kill switch"})"},
    };
    for (const auto& s : steps) {
        BOOST_TEST_CONTEXT(s.status << " " << s.target) {
            auto request = caseRequest(s.key, kPayment,
                                       {{"X-Mock-Status", s.status},
                                        {"X-Mock-Header", "Content-Type: " + s.contentType},
                                        {"X-Mock-Body", s.body}},
                                       s.target);
            auto [first, replay] = originalAndReplay(env, request);
            BOOST_TEST(std::to_string(first.status) == s.status);
            BOOST_TEST(std::to_string(replay.status) == s.status);
            BOOST_TEST(replay.body == s.body);
            BOOST_TEST(values(replay, "Content-Type") == std::vector<std::string>{s.contentType});
            expectOwnFraming(replay);
            BOOST_TEST(env.up.executions(s.key) == 1);
        }
    }

    // 204 on the update route, over one keep-alive connection: no body bytes follow either answer.
    Connection c(env.port);
    auto request = caseRequest("k-b17-3", R"({"metadata":{"order":"42"}})", {{"X-Mock-Status", "204"}},
                               "/v1/payments/pay_17");
    auto first = c.roundTrip(request);
    BOOST_TEST(first.status == 204);
    BOOST_TEST(c.pending(Millis(200)).empty());
    auto replay = c.roundTrip(request);
    BOOST_TEST(replay.status == 204);
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(replay.body.empty());
    BOOST_TEST(replay.header("Content-Length").value_or("0") == "0");
    BOOST_TEST(!replay.chunked);
    BOOST_TEST(c.pending(Millis(200)).empty());
    BOOST_TEST(env.up.executions("k-b17-3") == 1);
    BOOST_TEST(env.up.total() == 5);
}

// B18: Location, ETag, Link (both lines, in order) and Content-Type come back on the replay.
BOOST_AUTO_TEST_CASE(b18_resultHeadersAreReplayed) {
    CaseEnv env;
    const Headers upstream{{"Location", "/v1/payments/pay_18"},
                           {"ETag", "\"v1\""},
                           {"Link", "</v1/payments/pay_18/events>; rel=\"events\""},
                           {"Link", "</v1/payments/pay_18/refunds>; rel=\"refunds\""},
                           {"Content-Type", "application/json"}};
    Headers controls;
    for (const auto& [n, v] : upstream) controls.emplace_back("X-Mock-Header", n + ": " + v);
    controls.emplace_back("X-Mock-Body", R"({"id":"pay_18"})");

    auto [first, replay] = originalAndReplay(env, caseRequest("k-b18-1", kPayment, controls));
    BOOST_TEST(first.status == 201);
    for (const std::string name : {"Location", "ETag", "Link", "Content-Type"}) {
        BOOST_TEST_CONTEXT(name) {
            std::vector<std::string> expected;
            for (const auto& [n, v] : upstream)
                if (n == name) expected.push_back(v);
            BOOST_TEST(values(first, name) == expected);
            BOOST_TEST(values(replay, name) == expected);
        }
    }
    BOOST_TEST(replay.body == R"({"id":"pay_18"})");
    BOOST_TEST(env.up.executions("k-b18-1") == 1);
}

// B19 (1, 2): a chunked upstream answer (3 chunks, 150 bytes) with Connection/Keep-Alive headers is
// re-framed by the gateway, fresh and replayed, on one keep-alive connection that then serves a next
// request.
BOOST_AUTO_TEST_CASE(b19_chunkedAnswerIsReframed) {
    CaseEnv env;
    std::string body = R"({"id":"pay_19","note":")";
    body += std::string(150 - body.size() - 2, 'n');
    body += "\"}";
    BOOST_REQUIRE(body.size() == 150u);
    std::string escaped;
    for (char ch : body) {
        if (ch == '"') escaped += '\\';
        escaped += ch;
    }
    // X-Hop is named by Connection, so it is hop-by-hop as well.
    env.up.script(R"({"key":"k-b19-1","responses":[{"status":201,"chunks":3,"body":")" + escaped +
                  R"(","headers":[["Connection","keep-alive, X-Hop"],["Keep-Alive","timeout=5"],["X-Hop","1"],)"
                  R"(["X-Request-Cost","7"]]}]})");

    Connection c(env.port);
    const auto request = caseRequest("k-b19-1", kPayment);
    auto first = c.roundTrip(request);
    auto replay = c.roundTrip(request);
    for (const auto* r : {&first, &replay}) {
        BOOST_TEST_CONTEXT((r == &first ? "fresh" : "replay") << "\n" << r->rawHead) {
            BOOST_TEST(r->status == 201);
            BOOST_TEST(r->body == body);
            expectOwnFraming(*r);
            BOOST_TEST(r->count("Keep-Alive") == 0u);
            BOOST_TEST(r->count("X-Hop") == 0u);
            for (const auto& v : values(*r, "Connection")) BOOST_TEST(v.find("X-Hop") == std::string::npos);
            BOOST_TEST(r->header("X-Request-Cost").value_or("") == "7");  // end to end: kept
            BOOST_TEST(!r->closed);
        }
    }
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");

    auto next = c.roundTrip(caseRequest("k-b19-next", kPayment));
    BOOST_TEST(next.status == 201);
    BOOST_TEST(next.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(c.pending(Millis(200)).empty());
    BOOST_TEST(env.up.executions("k-b19-1") == 1);
    BOOST_TEST(env.up.total() == 2);
}

// B19 (4): a 402 with Content-Length 103 replays exactly 103 bytes, and the connection goes on.
BOOST_AUTO_TEST_CASE(b19_contentLengthMatchesTheReplayedBytes) {
    CaseEnv env;
    std::string body = R"({"type":"card_declined","detail":")";
    body += std::string(103 - body.size() - 2, 'd');
    body += "\"}";
    BOOST_REQUIRE(body.size() == 103u);

    Connection c(env.port);
    const auto request = caseRequest("k-b19-2", kPayment, {{"X-Mock-Status", "402"}, {"X-Mock-Body", body}});
    auto first = c.roundTrip(request);
    BOOST_TEST(first.status == 402);
    BOOST_TEST(first.header("Content-Length").value_or("") == "103");
    auto replay = c.roundTrip(request);
    BOOST_TEST(replay.status == 402);
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(replay.header("Content-Length").value_or("") == "103");
    BOOST_TEST(replay.count("Content-Length") == 1u);
    BOOST_TEST(!replay.chunked);
    BOOST_TEST(replay.body == body);
    BOOST_TEST(c.pending(Millis(200)).empty());  // not a byte more

    auto next = c.roundTrip(caseRequest("k-b19-3", kPayment));
    BOOST_TEST(next.status == 201);
    BOOST_TEST(env.up.executions("k-b19-2") == 1);
    BOOST_TEST(env.up.total() == 2);
}

// B21: fresh answers say Idempotent-Replayed: false; replays say true and carry Cache-Control: no-store,
// with status and body unchanged (a 201 and a cached 402).
BOOST_AUTO_TEST_CASE(b21_replaysAreMarked) {
    CaseEnv env;
    for (const std::string status : {"201", "402"}) {
        BOOST_TEST_CONTEXT(status) {
            const std::string key = "k-b21-" + status;
            auto [first, replay] = originalAndReplay(env, caseRequest(key, kPayment, {{"X-Mock-Status", status}}));
            BOOST_TEST(std::to_string(first.status) == status);
            BOOST_TEST(first.count("Idempotent-Replayed") == 1u);
            BOOST_TEST(replay.count("Idempotent-Replayed") == 1u);
            BOOST_TEST(values(replay, "Cache-Control") == std::vector<std::string>{"no-store"});
            BOOST_TEST(replay.header("Idempotency-Key").value_or("") == key);
            BOOST_TEST(first.header("Idempotency-Key").value_or("") == key);
            BOOST_TEST(env.up.executions(key) == 1);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
