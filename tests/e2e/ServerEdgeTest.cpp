// The native HTTP/1.1 server edge (server.engine: native, the default) over raw sockets: the answers it
// makes itself (problem+json), framing (chunked bodies, 100-continue, pipelining, HTTP/1.0, HEAD), its
// limits and timeouts (max_connections, max_keep_alive_requests, receive and keep-alive timeouts), a
// client that leaves mid-request (B06), graceful stop, one event loop serving others while requests
// wait upstream, and that `engine: poco` still serves.
#define BOOST_TEST_MODULE e2e server edge
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <tuple>
#include <vector>
#include <stdexcept>

using namespace idem::test;

namespace {

const std::string kPayment = R"({"amount":1000,"currency":"usd"})";
constexpr const char* kProblemPrefix = "urn:idemgate:problem:";

/// The case route table plus a pass-through route for any method, with `serverLines` (indented YAML)
/// added under `server:`.
struct Env {
    TempDir dir;
    MockUpstream up{dir.path()};
    std::uint16_t port = freePort();
    std::unique_ptr<Gateway> gw;

    explicit Env(const std::string& serverLines = "", const std::string& paymentsExtra = "") {
        CaseOptions o;
        o.gatewayPort = port;
        o.upstreamPort = up.port();
        o.paymentsExtra = paymentsExtra;
        o.extraRoutes = "  files:\n    path: /files/{path...}\n    upstream: up\n    idempotency: off\n";
        std::string yaml = caseConfig(o);
        const auto listen = yaml.find('\n', yaml.find("  listen:")) + 1;
        yaml.insert(listen, serverLines);
        gw = std::make_unique<Gateway>(dir, "gw", yaml, port);
    }

    Response post(const std::string& key, const std::string& body, Headers extra = {},
                  const std::string& target = "/v1/payments") {
        return http(port, caseRequest(key, body, std::move(extra), target));
    }
};

std::string head(const std::string& requestLine, const Headers& headers) {
    std::string out = requestLine + "\r\n";
    for (const auto& [n, v] : headers) out += n + ": " + v + "\r\n";
    return out + "\r\n";
}

Headers paymentHeaders(const std::string& key, std::size_t contentLength) {
    return {{"Host", "gw"},
            {"Authorization", "Bearer tok-tenant-a"},
            {"Content-Type", "application/json"},
            {"Idempotency-Key", key},
            {"Content-Length", std::to_string(contentLength)}};
}

void expectProblem(const Response& r, int status, const std::string& slug) {
    BOOST_TEST(r.status == status, r.rawHead << r.body);
    BOOST_TEST(r.header("Content-Type").value_or("") == "application/problem+json");
    BOOST_TEST(problemType(r) == kProblemPrefix + slug, r.body);
    BOOST_TEST(r.body.find("\"status\":" + std::to_string(status)) != std::string::npos, r.body);
}

/// True when the server closed the connection (before any further answer).
bool closedByServer(Connection& c) {
    try {
        c.receive();
        return false;
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        return what.find("closed") != std::string::npos || what.find("reset") != std::string::npos;
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ServerEdge)

BOOST_AUTO_TEST_CASE(oversizedHeadsAreProblems) {
    Env env;
    {  // header fields over 64 KiB (Poco answered this with a bare 400)
        Connection c(env.port);
        auto h = paymentHeaders("k-edge-big", kPayment.size());
        h.emplace_back("X-Big", std::string(70 * 1024, 'b'));
        c.sendRaw(head("POST /v1/payments HTTP/1.1", h) + kPayment);
        const auto r = c.receive();
        expectProblem(r, 431, "request-head-too-large");
        BOOST_TEST(r.closed);
    }
    {  // 101 header fields
        Connection c(env.port);
        auto h = paymentHeaders("k-edge-many", 0);
        for (int i = 0; i < 100; ++i) h.emplace_back("X-F" + std::to_string(i), "v");
        c.sendRaw(head("POST /v1/payments HTTP/1.1", h));
        expectProblem(c.receive(), 431, "request-head-too-large");
    }
    {  // a request line over 8 KiB
        Connection c(env.port);
        c.sendRaw(head("GET /files/" + std::string(9000, 'a') + " HTTP/1.1", {{"Host", "gw"}}));
        expectProblem(c.receive(), 414, "request-head-too-large");
    }
    // A 10 KB key is under the limits: it reaches the key rules (400 key-invalid), nothing forwarded.
    expectProblem(http(env.port, caseRequest(std::string(10 * 1024, 'k'), kPayment)), 400, "key-invalid");
    BOOST_TEST(env.up.total() == 0);
}

BOOST_AUTO_TEST_CASE(malformedRequestsAreProblemsAndForwardNothing) {
    Env env;
    const std::vector<std::pair<std::string, int>> cases = {
        {"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
        {"POST /v1/payments HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400},  // no Host
        {"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nX-Bad : 1\r\nContent-Length: 2\r\n\r\n{}", 400},
        {"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
        {"POST /v1/payments HTTP/3.0\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}", 505},
        {"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    };
    for (const auto& [wire, status] : cases) {
        BOOST_TEST_CONTEXT(wire) {
            Connection c(env.port);
            c.sendRaw(wire);
            const auto r = c.receive();
            expectProblem(r, status, "request-invalid");
            BOOST_TEST(r.closed);
        }
    }
    BOOST_TEST(env.up.total() == 0);
}

BOOST_AUTO_TEST_CASE(bodyOverTheLimitIs413BeforeTheBodyIsSent) {
    Env env("", "    max_body: 1KiB\n");
    Connection c(env.port);
    auto h = paymentHeaders("k-edge-413", 5000);
    h.emplace_back("Expect", "100-continue");
    c.sendRaw(head("POST /v1/payments HTTP/1.1", h));  // the body is never sent
    const auto raw = c.pending(Millis(3000));
    BOOST_TEST(raw.starts_with("HTTP/1.1 413 "), raw);  // no 100 Continue first
    const auto r = c.receive();
    expectProblem(r, 413, "body-too-large");
    BOOST_TEST(r.closed);

    // A chunked body over the limit: 413 once the chunks pass it.
    Connection d(env.port);
    auto ch = paymentHeaders("k-edge-413c", 0);
    ch.back() = {"Transfer-Encoding", "chunked"};
    d.sendRaw(head("POST /v1/payments HTTP/1.1", ch) + "400\r\n" + std::string(1024, ' ') + "\r\n1\r\n \r\n0\r\n\r\n");
    expectProblem(d.receive(), 413, "body-too-large");
    BOOST_TEST(env.up.total() == 0);
}

BOOST_AUTO_TEST_CASE(expectContinueIsAnsweredBeforeTheBody) {
    Env env;
    Connection c(env.port);
    auto h = paymentHeaders("k-edge-100", kPayment.size());
    h.emplace_back("Expect", "100-continue");
    c.sendRaw(head("POST /v1/payments HTTP/1.1", h));
    const auto interim = c.pending(Millis(1000));
    BOOST_TEST(interim == "HTTP/1.1 100 Continue\r\n\r\n");
    c.sendRaw(kPayment);
    const auto r = c.receive();
    BOOST_TEST(r.status == 201);
    BOOST_TEST(!r.closed);
    BOOST_TEST(env.up.executions("k-edge-100") == 1);
}

BOOST_AUTO_TEST_CASE(chunkedAndLargeBodiesAreForwardedWhole) {
    Env env;
    Connection c(env.port);
    auto h = paymentHeaders("k-edge-chunked", 0);
    h.back() = {"Transfer-Encoding", "chunked"};
    const std::string body = R"({"amount":7,"currency":"eur"})";
    std::string chunked;
    for (const auto& [from, size, ext] : {std::tuple{0, 5, ";x=y"}, std::tuple{5, 17, ""}, std::tuple{22, 7, " ; a"}}) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%X", size);
        chunked += hex + std::string(ext) + "\r\n" + body.substr(from, size) + "\r\n";
    }
    BOOST_REQUIRE(body.size() == 29u);
    c.sendRaw(head("POST /v1/payments HTTP/1.1", h) + chunked + "0\r\nX-Trailer: 1\r\n\r\n");
    const auto r = c.receive();
    BOOST_TEST(r.status == 201, r.body);
    BOOST_TEST(r.body.find("\"amount\":7") != std::string::npos, r.body);

    // 300 KB with Content-Length, sent in pieces on the same connection.
    const std::string big = R"({"amount":8,"pad":")" + std::string(300 * 1000, 'p') + "\"}";
    const std::string wire = head("POST /v1/payments HTTP/1.1", paymentHeaders("k-edge-large", big.size())) + big;
    for (std::size_t off = 0; off < wire.size(); off += 70000) c.sendRaw(wire.substr(off, 70000));
    BOOST_TEST(c.receive().status == 201);

    const auto forwarded = env.up.requests();
    BOOST_REQUIRE(forwarded.size() == 2u);
    BOOST_TEST(forwarded[0].bodyLength == body.size());
    BOOST_TEST(forwarded[0].body == body);
    BOOST_TEST(forwarded[1].bodyLength == big.size());
}

BOOST_AUTO_TEST_CASE(pipelinedRequestsAreAnsweredInOrder) {
    Env env;
    Connection c(env.port);
    std::string wire;
    for (const char* key : {"k-pipe-1", "k-pipe-2", "k-pipe-1", "k-pipe-3"})
        wire += head("POST /v1/payments HTTP/1.1", paymentHeaders(key, kPayment.size())) + kPayment;
    c.sendRaw(wire);
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"k-pipe-1", "false"}, {"k-pipe-2", "false"}, {"k-pipe-1", "true"}, {"k-pipe-3", "false"}};
    for (const auto& [key, replayed] : expected) {
        const auto r = c.receive();
        BOOST_TEST(r.status == 201);
        BOOST_TEST(r.header("Idempotency-Key").value_or("") == key);
        BOOST_TEST(r.header("Idempotent-Replayed").value_or("") == replayed);
    }
    BOOST_TEST(c.pending(Millis(200)).empty());
    BOOST_TEST(env.up.total() == 3);
}

BOOST_AUTO_TEST_CASE(http10AndHeadFraming) {
    Env env;
    {  // HTTP/1.0 without keep-alive: answered, then closed
        Connection c(env.port);
        c.sendRaw("GET /files/a HTTP/1.0\r\n\r\n");
        const auto r = c.receive();
        BOOST_TEST(r.status == 200);
        BOOST_TEST(r.closed);
    }
    {  // HTTP/1.0 keep-alive: the connection stays open, and says so
        Connection c(env.port);
        c.sendRaw("GET /files/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        auto r = c.receive();
        BOOST_TEST(r.status == 200);
        BOOST_TEST(r.header("Connection").value_or("") == "keep-alive");
        c.sendRaw("GET /files/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        r = c.receive();
        BOOST_TEST(r.status == 200);
        BOOST_TEST(r.body.find("/files/b") != std::string::npos, r.body);
    }
    {  // HEAD: a head and no body, and the next request on the connection is read correctly
        Connection c(env.port);
        c.sendRaw("HEAD /files/a HTTP/1.1\r\nHost: gw\r\n\r\n");
        const auto raw = c.pending(Millis(1000));
        BOOST_TEST(raw.starts_with("HTTP/1.1 200 "), raw);
        BOOST_TEST(raw.ends_with("\r\n\r\n"), raw);
        BOOST_TEST(raw.find("Date: ") != std::string::npos, raw);
        c.sendRaw("GET /files/b HTTP/1.1\r\nHost: gw\r\n\r\n");
        const auto both = c.pending(Millis(1000));
        BOOST_TEST(both.substr(raw.size()).starts_with("HTTP/1.1 200 "), both);
        BOOST_TEST(both.find("\"path\":\"/files/b\"") != std::string::npos, both);
    }
}

BOOST_AUTO_TEST_CASE(maxKeepAliveRequestsClosesAfterTheLast) {
    Env env("  max_keep_alive_requests: 2\n");
    Connection c(env.port);
    auto first = c.roundTrip(caseRequest("k-ka-1", kPayment));
    BOOST_TEST(first.status == 201);
    BOOST_TEST(!first.closed);
    auto second = c.roundTrip(caseRequest("k-ka-2", kPayment));
    BOOST_TEST(second.status == 201);
    BOOST_TEST(second.header("Connection").value_or("") == "close");
    BOOST_TEST(closedByServer(c));
}

BOOST_AUTO_TEST_CASE(connectionsOverTheLimitGet503AndClose) {
    Env env("  max_connections: 3\n");
    std::vector<std::unique_ptr<Connection>> open;
    for (int i = 0; i < 3; ++i) {
        open.push_back(std::make_unique<Connection>(env.port));
        BOOST_TEST(open.back()->roundTrip(caseRequest("k-max-" + std::to_string(i), kPayment)).status == 201);
    }
    Connection extra(env.port);
    extra.send(caseRequest("k-max-x", kPayment));
    const auto refused = extra.receive();
    expectProblem(refused, 503, "overloaded");
    BOOST_TEST(retryAfter(refused) == 1);
    BOOST_TEST(refused.closed);

    // The open connections keep working; once one closes, a new connection is served again.
    BOOST_TEST(open[0]->roundTrip(caseRequest("k-max-0", kPayment)).status == 201);
    open[2]->close();
    BOOST_TEST(waitUntil(
        [&] {
            try {
                return http(env.port, caseRequest("k-max-y", kPayment)).status == 201;
            } catch (const std::exception&) {
                return false;
            }
        },
        Millis(5000), Millis(50)));
    BOOST_TEST(env.up.executions("k-max-x") == 0);
}

BOOST_AUTO_TEST_CASE(slowRequestsGet408AndIdleConnectionsClose) {
    Env env("  receive_timeout: 300ms\n  keep_alive_timeout: 300ms\n");
    {
        Connection c(env.port);
        c.sendRaw("POST /v1/payments HTTP/1.1\r\nHost: gw\r\nContent-Le");  // and nothing more
        const auto r = c.receive();
        expectProblem(r, 408, "request-timeout");
        BOOST_TEST(r.closed);
    }
    {
        Connection c(env.port);
        c.sendRaw(head("POST /v1/payments HTTP/1.1", paymentHeaders("k-slow-body", kPayment.size())) + "{\"am");
        expectProblem(c.receive(), 408, "request-timeout");
    }
    {
        Connection c(env.port);
        BOOST_TEST(c.roundTrip(caseRequest("k-idle", kPayment)).status == 201);
        BOOST_TEST(closedByServer(c));  // idle past keep_alive_timeout
    }
    BOOST_TEST(env.up.executions("k-slow-body") == 0);
}

// B06: the client leaves while its request is upstream. The gateway finishes the upstream call and
// records the answer; the retry is a replay, and the upstream executed once.
BOOST_AUTO_TEST_CASE(clientLeavingDoesNotCancelTheRequest) {
    Env env;
    for (const bool reset : {false, true}) {
        const std::string key = reset ? "k-b06-rst" : "k-b06-fin";
        {
            Connection c(env.port);
            c.send(caseRequest(key, kPayment, {{"X-Mock-Delay-Ms", "500"}}));
            BOOST_TEST(waitUntil([&] { return env.up.executions(key) == 1; }, Millis(5000)));
            c.close(reset);
        }
        Response retry;
        BOOST_TEST(waitUntil(
            [&] {
                retry = env.post(key, kPayment);
                return retry.status == 201;
            },
            Millis(5000), Millis(100)));
        BOOST_TEST(retry.header("Idempotent-Replayed").value_or("") == "true");
        BOOST_TEST(env.up.executions(key) == 1);
    }
}

BOOST_AUTO_TEST_CASE(stopClosesIdleConnectionsAndFinishesRequestsInFlight) {
    Env env;
    Connection idle(env.port);
    BOOST_TEST(idle.roundTrip(caseRequest("k-stop-idle", kPayment)).status == 201);
    Connection busy(env.port);
    busy.send(caseRequest("k-stop-busy", kPayment, {{"X-Mock-Delay-Ms", "1000"}}));
    BOOST_TEST(waitUntil([&] { return env.up.executions("k-stop-busy") == 1; }, Millis(5000)));

    env.gw->process().signal(SIGTERM);
    BOOST_TEST(closedByServer(idle));  // at once, while the other request is still upstream
    const auto r = busy.receive();
    BOOST_TEST(r.status == 201);
    BOOST_TEST(r.header("Connection").value_or("") == "close");
    const auto status = env.gw->process().wait(Millis(10000));
    BOOST_TEST(status.has_value());
    BOOST_TEST(status.value_or(-1) == 0);
}

// One event loop (io_threads: 1) serves every connection: requests waiting on a slow upstream park
// their fibers, and the loop answers the others meanwhile (a blocking wait would hold them all).
BOOST_AUTO_TEST_CASE(oneLoopServesOthersWhileRequestsWaitUpstream) {
    Env env("  io_threads: 1\n");
    constexpr int kSlow = 3;
    std::vector<std::unique_ptr<Connection>> slow;
    for (int i = 0; i < kSlow; ++i) {
        slow.push_back(std::make_unique<Connection>(env.port));
        slow.back()->send(caseRequest("k-loop-slow-" + std::to_string(i), kPayment, {{"X-Mock-Delay-Ms", "2000"}}));
    }
    BOOST_TEST(waitUntil(
        [&] {
            for (int i = 0; i < kSlow; ++i)
                if (env.up.executions("k-loop-slow-" + std::to_string(i)) != 1) return false;
            return true;
        },
        Millis(5000)));
    // All three are upstream now, for about two seconds: fast requests still get through, at once.
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) BOOST_TEST(env.post("k-loop-fast-" + std::to_string(i), kPayment).status == 201);
    BOOST_TEST(env.post("k-loop-fast-0", kPayment).header("Idempotent-Replayed").value_or("") == "true");
    const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
    BOOST_TEST(took.count() < 1500, "six requests took " << took.count() << " ms behind three slow ones");
    for (auto& c : slow) BOOST_TEST(c->receive().status == 201);
}

BOOST_AUTO_TEST_CASE(pocoEngineStillServes) {
    Env env("  engine: poco\n");
    const auto first = env.post("k-poco-1", kPayment);
    BOOST_TEST(first.status == 201);
    BOOST_TEST(first.header("Idempotent-Replayed").value_or("") == "false");
    const auto replay = env.post("k-poco-1", kPayment);
    BOOST_TEST(replay.status == 201);
    BOOST_TEST(replay.body == first.body);
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    expectProblem(env.post("k-poco-2", kPayment, {}, "/v1/nothing"), 404, "route-not-found");
    BOOST_TEST(env.up.total() == 1);
}

BOOST_AUTO_TEST_SUITE_END()
