// The pure pieces of the upstream client (issue 6), without sockets and without sleeping: time is a
// value the tests move by hand.
//   HttpResponseParser  framing, 1xx, bodyless responses, truncation, limits, any byte split
//   Balancer            round robin, smooth weighted round robin, least connections, retry avoidance
//   CircuitBreaker      closed -> open -> half-open probe -> closed / open again
//   RetryBudget         ratio, floor for low traffic, sliding window
//   Backoff             exponential ceiling, cap, full-jitter bounds
//   EndpointHealth      active thresholds, passive ejection
//   SlidingWindow       counts fall out of the window
#include "gateway/core/Backoff.h"
#include "gateway/core/Balancer.h"
#include "gateway/core/CircuitBreaker.h"
#include "gateway/core/EndpointHealth.h"
#include "gateway/core/HttpResponseParser.h"
#include "gateway/core/RetryBudget.h"
#include "gateway/core/SlidingWindow.h"

#include <boost/test/unit_test.hpp>

#include <array>
#include <map>
#include <string>
#include <vector>

using namespace idem::core;
using namespace std::chrono_literals;
using Parser = HttpResponseParser;
using TimePoint = Clock::time_point;

namespace {

// An arbitrary fixed start, far from the clock's epoch.
const TimePoint kT0 = TimePoint(std::chrono::hours(24 * 365));

/// Feeds `bytes` in pieces of `step` bytes (0: all at once), then finish() when `eof`. Returns the
/// number of bytes the parser took.
std::size_t feedAll(Parser& p, std::string_view bytes, std::size_t step = 0, bool eof = false) {
    std::size_t used = 0;
    if (step == 0) step = bytes.size() ? bytes.size() : 1;
    while (used < bytes.size() && !p.done() && !p.failed()) {
        const std::size_t n = p.feed(bytes.substr(used, std::min(step, bytes.size() - used)));
        used += n;
        if (n == 0) break;
    }
    if (eof) p.finish();
    return used;
}

std::vector<std::string> headerNames(const HttpResponse& r) {
    std::vector<std::string> out;
    for (const auto& h : r.headers) out.push_back(h.first);
    return out;
}

}  // namespace

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(ResponseParser, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(contentLengthResponseKeepsHeadersInOrderWithRepeats) {
    const std::string wire =
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nX-Trace:  t1 \r\n"
        "Set-Cookie: b=2\r\nContent-Length: 12\r\n\r\n{\"id\":\"p1\"}\n";
    for (std::size_t step : {0, 1, 2, 7}) {
        BOOST_TEST_CONTEXT("split every " << step << " bytes") {
            Parser p;
            BOOST_TEST(feedAll(p, wire, step) == wire.size());
            BOOST_TEST_REQUIRE(p.done());
            const auto& r = p.response();
            BOOST_TEST(r.status == 201);
            BOOST_TEST(r.reason == "Created");
            BOOST_TEST((headerNames(r) ==
                        std::vector<std::string>{"Content-Type", "Set-Cookie", "X-Trace", "Set-Cookie", "Content-Length"}));
            BOOST_TEST(r.headers[1].second == "a=1");
            BOOST_TEST(r.headers[2].second == "t1");  // surrounding white space is not part of the value
            BOOST_TEST(r.headers[3].second == "b=2");
            BOOST_TEST(r.body.value_or("<none>") == "{\"id\":\"p1\"}\n");
            BOOST_TEST(p.keepAlive());
        }
    }
}

BOOST_AUTO_TEST_CASE(chunkedBodyWithExtensionsAndTrailers) {
    const std::string wire =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Checksum: 1\r\n\r\n";
    for (std::size_t step : {0, 1, 3}) {
        Parser p;
        BOOST_TEST(feedAll(p, wire, step) == wire.size());
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(p.response().body.value_or("") == "helloabcdefghijklmnopqrstuvwxyz");
        BOOST_TEST(p.keepAlive());
        BOOST_TEST(countHeader(p.response().headers, "X-Checksum") == 0u);  // trailers are dropped
    }
}

BOOST_AUTO_TEST_CASE(closeDelimitedBodyEndsAtEof) {
    Parser p;
    feedAll(p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ");
    BOOST_TEST(!p.done());
    feedAll(p, "part two", 0, true);
    BOOST_TEST_REQUIRE(p.done());
    BOOST_TEST(p.response().body.value_or("") == "part one, part two");
    BOOST_TEST(!p.keepAlive());
}

BOOST_AUTO_TEST_CASE(bodylessResponses) {
    {
        Parser p(/*headRequest=*/true);
        const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        BOOST_TEST(feedAll(p, wire) == wire.size());
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(!p.response().body.has_value());
        BOOST_TEST(p.keepAlive());
    }
    for (const char* status : {"204 No Content", "304 Not Modified"}) {
        Parser p;
        feedAll(p, std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 3\r\n\r\n");
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(!p.response().body.has_value());
    }
    Parser empty;
    feedAll(empty, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    BOOST_TEST_REQUIRE(empty.done());
    BOOST_TEST(empty.response().body.has_value());  // an empty body is a body
    BOOST_TEST(empty.response().body->empty());
}

BOOST_AUTO_TEST_CASE(interimResponsesAreSkipped) {
    const std::string wire =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    for (std::size_t step : {0, 1}) {
        Parser p;
        BOOST_TEST(feedAll(p, wire, step) == wire.size());
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(p.response().status == 201);
        BOOST_TEST(countHeader(p.response().headers, "Link") == 0u);
        BOOST_TEST(p.response().body.value_or("") == "ok");
    }
    Parser upgrade;
    feedAll(upgrade, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    BOOST_TEST(upgrade.failed());
}

BOOST_AUTO_TEST_CASE(truncatedResponsesAreErrorsNeverShortBodies) {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"", "before a response"},
        {"HTTP/1.1 200 OK\r\nContent-Le", "inside the response head"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", "after 5 of 10 body bytes"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "inside the chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "inside the chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "inside the chunked body"},
    };
    for (const auto& [wire, problem] : cases) {
        BOOST_TEST_CONTEXT(wire) {
            Parser p;
            feedAll(p, wire, 0, true);
            BOOST_TEST(p.failed());
            BOOST_TEST(!p.done());
            BOOST_TEST(p.error().find(problem) != std::string::npos, p.error());
        }
    }
}

BOOST_AUTO_TEST_CASE(malformedResponsesAreErrors) {
    const std::vector<std::string> cases{
        "HTTP/2 200 OK\r\n\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 600 Odd\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n",
        "HTTP/1.1 200 OK\r\nX-Ctl: a\x01" "b\r\n\r\n",
    };
    for (const auto& wire : cases) {
        BOOST_TEST_CONTEXT(wire) {
            Parser p;
            feedAll(p, wire);
            BOOST_TEST(p.failed());
            BOOST_TEST(!p.error().empty());
            BOOST_TEST(!p.keepAlive());
        }
    }
}

BOOST_AUTO_TEST_CASE(framingRules) {
    {  // equal repeated Content-Length values are one length
        Parser p;
        feedAll(p, "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc");
        BOOST_TEST(p.done());
    }
    {  // Transfer-Encoding wins over Content-Length, and the connection is not reused
        Parser p;
        feedAll(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(p.response().body.value_or("") == "abc");
        BOOST_TEST(!p.keepAlive());
    }
    {  // a transfer coding other than chunked: read until the connection closes
        Parser p;
        feedAll(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", 0, true);
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(p.response().body.value_or("") == "xyz");
        BOOST_TEST(!p.keepAlive());
    }
    {  // Connection: close, HTTP/1.0 with and without keep-alive
        Parser close;
        feedAll(close, "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n");
        BOOST_TEST(close.done());
        BOOST_TEST(!close.keepAlive());
        Parser old;
        feedAll(old, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        BOOST_TEST(old.done());
        BOOST_TEST(!old.keepAlive());
        Parser oldKeep;
        feedAll(oldKeep, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        BOOST_TEST(oldKeep.done());
        BOOST_TEST(oldKeep.keepAlive());
    }
    {  // bytes after the end of the response are not taken
        Parser p;
        const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
        BOOST_TEST(p.feed(wire) == wire.size() - 17);
        BOOST_TEST(p.done());
    }
    {  // obs-fold becomes a space; bare LF line ends and leading empty lines are tolerated
        Parser p;
        feedAll(p, "\r\n\nHTTP/1.1 200 OK\nX-Long: first\n\t second\nContent-Length: 1\n\nz");
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(*findHeader(p.response().headers, "X-Long") == "first second");
        BOOST_TEST(p.response().body.value_or("") == "z");
    }
    {  // no reason phrase
        Parser p;
        feedAll(p, "HTTP/1.1 204\r\n\r\n");
        BOOST_TEST_REQUIRE(p.done());
        BOOST_TEST(p.response().status == 204);
        BOOST_TEST(p.response().reason.empty());
    }
}

BOOST_AUTO_TEST_CASE(limits) {
    Parser::Limits limits;
    limits.maxHead = 64;
    limits.maxFields = 2;
    limits.maxBody = 8;
    Parser bigHead(false, limits);
    feedAll(bigHead, "HTTP/1.1 200 OK\r\nX-A: " + std::string(100, 'a') + "\r\n\r\n", 5);
    BOOST_TEST(bigHead.failed());
    Parser fields(false, limits);
    feedAll(fields, "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    BOOST_TEST(fields.failed());
    Parser length(false, limits);
    feedAll(length, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    BOOST_TEST(length.failed());
    Parser chunked(false, limits);
    feedAll(chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n");
    BOOST_TEST(chunked.failed());
    Parser untilClose(false, limits);
    feedAll(untilClose, "HTTP/1.1 200 OK\r\n\r\n123456789");
    BOOST_TEST(untilClose.failed());
    Parser fits(false, limits);
    feedAll(fits, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n12345678");
    BOOST_TEST(fits.done());
}

BOOST_AUTO_TEST_CASE(resetStartsOver) {
    Parser p;
    feedAll(p, "HTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\nx");
    BOOST_TEST(p.done());
    p.reset(false);
    BOOST_TEST(!p.started());
    feedAll(p, "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nhi");
    BOOST_TEST_REQUIRE(p.done());
    BOOST_TEST(p.response().status == 202);
    BOOST_TEST(p.response().headers.size() == 1u);
    BOOST_TEST(p.response().body.value_or("") == "hi");
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(BalancerSuite, *boost::unit_test::label("unit"))

namespace {
std::vector<BalanceCandidate> candidates(std::initializer_list<std::uint32_t> weights) {
    std::vector<BalanceCandidate> out;
    for (auto w : weights) out.push_back(BalanceCandidate{true, w, 0});
    return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(roundRobinTakesTurnsAndSkipsUnavailable) {
    Balancer b(BalancePolicy::RoundRobin, 3);
    auto c = candidates({1, 1, 1});
    std::map<int, int> count;
    for (int i = 0; i < 30; ++i) ++count[b.pick(c)];
    BOOST_TEST(count[0] == 10);
    BOOST_TEST(count[1] == 10);
    BOOST_TEST(count[2] == 10);
    c[1].available = false;
    count.clear();
    for (int i = 0; i < 30; ++i) ++count[b.pick(c)];
    BOOST_TEST(count[1] == 0);
    BOOST_TEST(count[0] + count[2] == 30);
    for (auto& x : c) x.available = false;
    BOOST_TEST(b.pick(c) == -1);
    BOOST_TEST(b.pick(std::span<const BalanceCandidate>()) == -1);
}

BOOST_AUTO_TEST_CASE(retriesAvoidTriedEndpointsWhileOthersExist) {
    for (auto policy : {BalancePolicy::RoundRobin, BalancePolicy::Weighted, BalancePolicy::LeastConnections}) {
        Balancer b(policy, 3);
        auto c = candidates({1, 1, 1});
        for (int i = 0; i < 12; ++i) {
            const int p = b.pick(c, 0b011);
            BOOST_TEST(p == 2);
        }
        c[2].available = false;  // only tried ones are left: use them again
        const int again = b.pick(c, 0b011);
        BOOST_TEST((again == 0 || again == 1));
    }
}

BOOST_AUTO_TEST_CASE(aRetryDoesNotTakeATurn) {
    // Endpoint 0 is dead: its request retries on 1, and the next request still gets its turn on 1.
    Balancer b(BalancePolicy::RoundRobin, 2);
    const auto c = candidates({1, 1});
    std::string seq;
    for (int i = 0; i < 4; ++i) {
        const int first = b.pick(c);
        seq += static_cast<char>('0' + first);
        if (first == 0) seq += static_cast<char>('0' + b.pick(c, 0b01));
        seq += ' ';
    }
    BOOST_TEST(seq == "01 1 01 1 ");
}

BOOST_AUTO_TEST_CASE(smoothWeightedRoundRobinInterleaves) {
    Balancer b(BalancePolicy::Weighted, 3);
    const auto c = candidates({5, 1, 1});
    std::string seq;
    for (int i = 0; i < 14; ++i) seq += static_cast<char>('a' + b.pick(c));
    BOOST_TEST(seq == "aabacaaaabacaa");  // nginx's smooth sequence, twice

    Balancer b2(BalancePolicy::Weighted, 3);
    auto c2 = candidates({1, 2, 3});
    std::map<int, int> count;
    for (int i = 0; i < 60; ++i) ++count[b2.pick(c2)];
    BOOST_TEST(count[0] == 10);
    BOOST_TEST(count[1] == 20);
    BOOST_TEST(count[2] == 30);
    c2[2].available = false;
    count.clear();
    for (int i = 0; i < 30; ++i) ++count[b2.pick(c2)];
    BOOST_TEST(count[2] == 0);
    BOOST_TEST(count[0] == 10);
    BOOST_TEST(count[1] == 20);
}

BOOST_AUTO_TEST_CASE(leastConnectionsPicksTheLeastLoadedPerWeight) {
    Balancer b(BalancePolicy::LeastConnections, 3);
    auto c = candidates({1, 1, 1});
    c[0].active = 3;
    c[1].active = 1;
    c[2].active = 2;
    for (int i = 0; i < 5; ++i) BOOST_TEST(b.pick(c) == 1);
    c[1].available = false;
    BOOST_TEST(b.pick(c) == 2);
    // Weighted: 4 in flight on weight 4 is lighter than 2 on weight 1.
    auto w = candidates({4, 1});
    w[0].active = 4;
    w[1].active = 2;
    BOOST_TEST(b.pick(w) == 0);
    // Ties rotate.
    auto tie = candidates({1, 1, 1});
    std::map<int, int> count;
    for (int i = 0; i < 30; ++i) ++count[b.pick(tie)];
    BOOST_TEST(count[0] == 10);
    BOOST_TEST(count[1] == 10);
    BOOST_TEST(count[2] == 10);
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(CircuitBreakerSuite, *boost::unit_test::label("unit"))

namespace {
using Admission = CircuitBreaker::Admission;
using Result = CircuitBreaker::Result;
using State = CircuitBreaker::State;

CircuitBreaker::Settings settings() {
    CircuitBreaker::Settings s;
    s.failureRate = 0.5;
    s.window = 10s;
    s.minRequests = 4;
    s.openFor = 5s;
    return s;
}

void feed(CircuitBreaker& b, TimePoint t, int successes, int failures) {
    for (int i = 0; i < successes; ++i) b.onResult(b.admit(t), Result::Success, t);
    for (int i = 0; i < failures; ++i) b.onResult(b.admit(t), Result::Failure, t);
}
}  // namespace

BOOST_AUTO_TEST_CASE(staysClosedBelowMinRequestsAndBelowTheRate) {
    CircuitBreaker b(settings());
    feed(b, kT0, 0, 3);  // 100% failures, but only 3 results
    BOOST_TEST((b.state(kT0) == State::Closed));
    CircuitBreaker c(settings());
    feed(c, kT0, 7, 3);  // 30% < 50%
    BOOST_TEST((c.state(kT0) == State::Closed));
    BOOST_TEST((c.admit(kT0) == Admission::Normal));
}

BOOST_AUTO_TEST_CASE(opensAtTheRateThenProbesThenCloses) {
    CircuitBreaker b(settings());
    feed(b, kT0, 2, 1);
    BOOST_TEST((b.state(kT0) == State::Closed));
    const auto opened = b.onResult(b.admit(kT0), Result::Failure, kT0);  // 2 of 4 = 50%
    BOOST_TEST((opened == State::Open));
    BOOST_TEST((b.state(kT0) == State::Open));
    BOOST_TEST(!b.admissible(kT0 + 4999ms));
    BOOST_TEST((b.admit(kT0 + 4999ms) == Admission::Rejected));

    const TimePoint later = kT0 + 5s;
    BOOST_TEST((b.state(later) == State::HalfOpen));
    BOOST_TEST(b.admissible(later));
    BOOST_TEST((b.admit(later) == Admission::Probe));
    BOOST_TEST(!b.admissible(later));
    BOOST_TEST((b.admit(later) == Admission::Rejected));  // one probe at a time
    BOOST_TEST((b.onResult(Admission::Probe, Result::Success, later) == State::Closed));
    BOOST_TEST((b.state(later) == State::Closed));
    // The window was cleared: one failure after closing does not reopen it.
    BOOST_TEST(!b.onResult(b.admit(later), Result::Failure, later).has_value());
    BOOST_TEST((b.state(later) == State::Closed));
}

BOOST_AUTO_TEST_CASE(aFailedProbeOpensAgainAndANeutralOneFreesTheSlot) {
    CircuitBreaker b(settings());
    feed(b, kT0, 0, 4);
    BOOST_TEST((b.state(kT0) == State::Open));
    TimePoint t = kT0 + 5s;
    BOOST_TEST((b.admit(t) == Admission::Probe));
    BOOST_TEST((b.onResult(Admission::Probe, Result::Failure, t) == State::Open));
    BOOST_TEST((b.admit(t + 4s) == Admission::Rejected));  // open for another openFor from the probe
    t += 5s;
    BOOST_TEST((b.admit(t) == Admission::Probe));
    BOOST_TEST(!b.onResult(Admission::Probe, Result::Neutral, t).has_value());  // no verdict (e.g. pool full)
    BOOST_TEST((b.state(t) == State::HalfOpen));
    BOOST_TEST((b.admit(t) == Admission::Probe));
}

BOOST_AUTO_TEST_CASE(lateResultsAndOldFailuresDoNotCount) {
    CircuitBreaker b(settings());
    const Admission early = b.admit(kT0);
    feed(b, kT0, 0, 4);
    BOOST_TEST((b.state(kT0) == State::Open));
    // A request admitted before the breaker opened reports while it is open: ignored.
    BOOST_TEST(!b.onResult(early, Result::Success, kT0 + 1s).has_value());
    BOOST_TEST((b.state(kT0 + 1s) == State::Open));

    CircuitBreaker c(settings());
    feed(c, kT0, 0, 3);
    // 3 failures, then the window (10s) moves past them: 1 success + 1 failure = 50% of only 2.
    const TimePoint later = kT0 + 11s;
    feed(c, later, 1, 1);
    BOOST_TEST((c.state(later) == State::Closed));
}

BOOST_AUTO_TEST_CASE(disabledBreakerAdmitsEverything) {
    auto s = settings();
    s.enabled = false;
    CircuitBreaker b(s);
    feed(b, kT0, 0, 100);
    BOOST_TEST((b.state(kT0) == State::Closed));
    BOOST_TEST((b.admit(kT0) == Admission::Normal));
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(RetryBudgetSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(minimumRetriesAtLowTraffic) {
    RetryBudget b(0.1, 10s, 3);
    b.onRequest(kT0);
    BOOST_TEST(b.tryRetry(kT0));
    BOOST_TEST(b.tryRetry(kT0));
    BOOST_TEST(b.tryRetry(kT0));
    BOOST_TEST(!b.tryRetry(kT0));
    BOOST_TEST(b.available(kT0) == 0u);
}

BOOST_AUTO_TEST_CASE(aShareOfTheRequests) {
    RetryBudget b(0.1, 10s, 3);
    for (int i = 0; i < 100; ++i) b.onRequest(kT0 + std::chrono::milliseconds(i));
    int granted = 0;
    while (b.tryRetry(kT0 + 100ms) && granted < 1000) ++granted;
    BOOST_TEST(granted == 10);
    RetryBudget none(0.0, 10s, 0);
    none.onRequest(kT0);
    BOOST_TEST(!none.tryRetry(kT0));
}

BOOST_AUTO_TEST_CASE(theWindowSlides) {
    RetryBudget b(0.1, 10s, 1);
    for (int i = 0; i < 50; ++i) b.onRequest(kT0);
    int granted = 0;
    while (b.tryRetry(kT0)) ++granted;
    BOOST_TEST(granted == 5);
    // Ten seconds on, the old requests and retries are out of the window: only the floor is left.
    const TimePoint later = kT0 + 11s;
    BOOST_TEST(b.available(later) == 1u);
    BOOST_TEST(b.tryRetry(later));
    BOOST_TEST(!b.tryRetry(later));
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(BackoffSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(exponentialCeilingWithCap) {
    BOOST_TEST(backoffCeiling(0, 25ms, 250ms).count() == 25);
    BOOST_TEST(backoffCeiling(1, 25ms, 250ms).count() == 25);
    BOOST_TEST(backoffCeiling(2, 25ms, 250ms).count() == 50);
    BOOST_TEST(backoffCeiling(3, 25ms, 250ms).count() == 100);
    BOOST_TEST(backoffCeiling(4, 25ms, 250ms).count() == 200);
    BOOST_TEST(backoffCeiling(5, 25ms, 250ms).count() == 250);
    BOOST_TEST(backoffCeiling(4000000000U, 25ms, 250ms).count() == 250);  // no overflow
    BOOST_TEST(backoffCeiling(3, 0ms, 250ms).count() == 0);
}

BOOST_AUTO_TEST_CASE(fullJitterStaysWithinTheCeiling) {
    for (unsigned retry = 1; retry <= 8; ++retry) {
        const auto ceiling = backoffCeiling(retry, 25ms, 250ms);
        BOOST_TEST(fullJitterBackoff(retry, 25ms, 250ms, 0.0).count() == 0);
        BOOST_TEST(fullJitterBackoff(retry, 25ms, 250ms, 0.5).count() == ceiling.count() / 2);
        const auto top = fullJitterBackoff(retry, 25ms, 250ms, 0.9999999);
        BOOST_TEST(top.count() < ceiling.count());
        BOOST_TEST(top.count() >= ceiling.count() - 1);
        BOOST_TEST(fullJitterBackoff(retry, 25ms, 250ms, 7.0).count() < ceiling.count());  // clamped
        BOOST_TEST(fullJitterBackoff(retry, 25ms, 250ms, -1.0).count() == 0);
    }
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(EndpointHealthSuite, *boost::unit_test::label("unit"))

using Change = EndpointHealth::Change;

BOOST_AUTO_TEST_CASE(activeChecksWithThresholds) {
    EndpointHealth h(EndpointHealth::Settings{2, 3, 0, 30s});
    BOOST_TEST(h.available(kT0));  // healthy until checks say otherwise
    BOOST_TEST((h.onCheck(false) == Change::None));
    BOOST_TEST((h.onCheck(false) == Change::None));
    BOOST_TEST((h.onCheck(true) == Change::None));  // the run of failures is broken
    BOOST_TEST((h.onCheck(false) == Change::None));
    BOOST_TEST((h.onCheck(false) == Change::None));
    BOOST_TEST((h.onCheck(false) == Change::BecameUnhealthy));
    BOOST_TEST(!h.available(kT0));
    BOOST_TEST((h.onCheck(false) == Change::None));
    BOOST_TEST((h.onCheck(true) == Change::None));
    BOOST_TEST(!h.available(kT0));
    BOOST_TEST((h.onCheck(true) == Change::BecameHealthy));
    BOOST_TEST(h.available(kT0));
}

BOOST_AUTO_TEST_CASE(passiveEjectionAfterConsecutiveFailures) {
    EndpointHealth h(EndpointHealth::Settings{1, 1, 3, 30s});
    BOOST_TEST((h.onFailure(kT0) == Change::None));
    BOOST_TEST((h.onFailure(kT0) == Change::None));
    h.onSuccess();  // the run ends
    BOOST_TEST((h.onFailure(kT0) == Change::None));
    BOOST_TEST((h.onFailure(kT0) == Change::None));
    BOOST_TEST((h.onFailure(kT0) == Change::Ejected));
    BOOST_TEST(h.ejected(kT0 + 29s));
    BOOST_TEST(!h.available(kT0 + 29s));
    BOOST_TEST(h.available(kT0 + 30s));  // the ejection ends by itself
    BOOST_TEST((h.onFailure(kT0 + 30s) == Change::None));  // a new run starts from zero

    EndpointHealth off(EndpointHealth::Settings{1, 1, 0, 30s});
    for (int i = 0; i < 100; ++i) BOOST_TEST((off.onFailure(kT0) == Change::None));
    BOOST_TEST(off.available(kT0));
}

BOOST_AUTO_TEST_CASE(passingActiveChecksEndAnEjection) {
    EndpointHealth h(EndpointHealth::Settings{1, 1, 1, 30s});
    BOOST_TEST((h.onCheck(false) == Change::BecameUnhealthy));
    BOOST_TEST((h.onFailure(kT0) == Change::Ejected));
    BOOST_TEST((h.onCheck(true) == Change::BecameHealthy));
    BOOST_TEST(h.available(kT0 + 1s));
}

BOOST_AUTO_TEST_SUITE_END()

// -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(SlidingWindowSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(countsFallOutOfTheWindow) {
    SlidingWindow w(10s);  // ten buckets of one second
    w.add(kT0, 5, 1);
    w.add(kT0 + 3s, 2, 2);
    auto t = w.totals(kT0 + 3s);
    BOOST_TEST(t.a == 7u);
    BOOST_TEST(t.b == 3u);
    t = w.totals(kT0 + 10s);  // the first bucket has left the window
    BOOST_TEST(t.a == 2u);
    BOOST_TEST(t.b == 2u);
    t = w.totals(kT0 + 20s);
    BOOST_TEST(t.a == 0u);
    // A bucket slot reused after a full turn starts from zero.
    w.add(kT0 + 20s, 1, 0);
    BOOST_TEST(w.totals(kT0 + 20s).a == 1u);
    w.clear();
    BOOST_TEST(w.totals(kT0 + 20s).a == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
