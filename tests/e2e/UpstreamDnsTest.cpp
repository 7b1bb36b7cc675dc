// Upstream DNS (issue 6): host names are re-resolved every dns_ttl, the last good answer is kept when
// resolution fails, IP literals are never resolved. An http::Upstream is built directly with an injected
// resolver whose answer the test controls ("payments.test", a name no real resolver knows), in front of
// two real mock upstreams on the same port: A on 127.0.0.1 and B on 127.0.0.2. Which one a request
// reached is read from each mock's GET /__stats total. Nothing touches /etc/hosts or the network.
// No latency is asserted: waits are bounded polls with generous margins.
#define BOOST_TEST_MODULE e2e upstream dns
#include <boost/test/unit_test.hpp>

#include "gateway/http/Log.h"
#include "gateway/http/Upstream.h"
#include "tests/support/E2E.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

using namespace idem::test;
using idem::http::Address;
using idem::http::Upstream;
using Kind = idem::core::UpstreamResult::Kind;

namespace {

const std::string kHost = "payments.test";
const std::string kIpA = "127.0.0.1";
const std::string kIpB = "127.0.0.2";

/// The answer the fake resolver gives, and every question it was asked. Shared with the resolver's
/// copies, which may run on helper threads that outlive the Upstream.
struct FakeDns {
    std::mutex mutex;
    std::optional<std::string> ip;  ///< the answer; none = the resolution fails with `error`
    std::string error = "SERVFAIL from the test resolver";
    int calls = 0;
    std::vector<std::string> hosts;  ///< every host asked, in order

    void answer(const std::string& address) {
        std::lock_guard lock(mutex);
        ip = address;
    }
    void fail() {
        std::lock_guard lock(mutex);
        ip.reset();
    }
    int callCount() {
        std::lock_guard lock(mutex);
        return calls;
    }
    std::vector<std::string> asked() {
        std::lock_guard lock(mutex);
        return hosts;
    }
};

Upstream::Resolver resolverFor(std::shared_ptr<FakeDns> dns) {
    return [dns](const std::string& host, std::uint16_t port) -> std::expected<std::vector<Address>, std::string> {
        std::lock_guard lock(dns->mutex);
        ++dns->calls;
        dns->hosts.push_back(host);
        if (!dns->ip) return std::unexpected(dns->error);
        Address a;
        auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        if (::inet_pton(AF_INET, dns->ip->c_str(), &v4->sin_addr) != 1) return std::unexpected("bad test address");
        a.length = sizeof(sockaddr_in);
        return std::vector<Address>{a};
    };
}

idem::config::UpstreamConfig upstreamConfig(const std::vector<std::string>& hosts, std::uint16_t port,
                                            Millis dnsTtl) {
    idem::config::UpstreamConfig c;
    c.name = "up";
    for (const auto& h : hosts) {
        idem::config::UpstreamEndpoint e;
        e.scheme = "http";
        e.host = h;
        e.port = port;
        c.endpoints.push_back(e);
    }
    c.dnsTtl = dnsTtl;
    c.timeouts.connect = Millis(2000);
    c.timeouts.total = Millis(10000);
    return c;
}

idem::core::HttpRequest payment(int n) {
    idem::core::HttpRequest r;
    r.method = "POST";
    r.path = "/v1/payments";
    r.headers = {{"Content-Type", "application/json"}, {"Idempotency-Key", "dns-" + std::to_string(n)}};
    r.body = R"({"amount":1000,"currency":"usd"})";
    return r;
}

int sequence = 0;

/// One request through the upstream; fails the test unless a 2xx answer came back.
void send(Upstream& upstream) {
    const auto r = upstream.forward(payment(++sequence));
    BOOST_TEST_REQUIRE((r.kind == Kind::Response), "not a response: " << r.detail);
    BOOST_TEST_REQUIRE((r.response.status >= 200 && r.response.status < 300),
                       "status " << r.response.status << ": " << r.detail);
}

/// A plain TCP connection to ip:port (nullopt when refused).
std::optional<int> connectTo(const std::string& ip, std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return std::nullopt;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    return fd;
}

/// The mock on ip:port: requests it executed (GET /__stats "total"), on a connection of its own.
int totalAt(const std::string& ip, std::uint16_t port) {
    const auto fd = connectTo(ip, port);
    if (!fd) throw std::runtime_error("cannot connect to the mock on " + ip);
    const std::string req = "GET /__stats HTTP/1.1\r\nHost: " + ip + "\r\nConnection: close\r\n\r\n";
    if (::send(*fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        ::close(*fd);
        throw std::runtime_error("cannot send to the mock on " + ip);
    }
    std::string in;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(*fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
    }
    ::close(*fd);
    const auto body = in.find("\r\n\r\n");
    if (in.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos)
        throw std::runtime_error("bad /__stats answer from " + ip + ": " + in);
    Poco::JSON::Parser parser;
    return parser.parse(in.substr(body + 4)).extract<Poco::JSON::Object::Ptr>()->getValue<int>("total");
}

/// Mock A (127.0.0.1, a free port) and mock B (127.0.0.2, the same port).
struct TwoMocks {
    TempDir dir;
    MockUpstream a{dir.path()};
    std::uint16_t port = a.port();
    Process b{{binaryDir() + "/idemgate-mock-upstream", "--host", kIpB, "--port", std::to_string(port), "--quiet"},
              dir.file("mock-b.log")};

    TwoMocks() {
        const bool up = waitUntil(
            [&] {
                const auto fd = connectTo(kIpB, port);
                if (fd) ::close(*fd);
                return fd.has_value();
            },
            Millis(10000));
        if (!up) throw std::runtime_error("mock B did not start on " + kIpB + ":" + std::to_string(port) + ": " + b.log());
    }
    int totalA() { return totalAt(kIpA, port); }
    int totalB() { return totalAt(kIpB, port); }
};

/// Standard error (where idem::http logs) goes to a file while this lives.
class CaptureStderr {
public:
    explicit CaptureStderr(std::string path) : path_(std::move(path)) {
        std::fflush(stderr);
        saved_ = ::dup(STDERR_FILENO);
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
        if (saved_ < 0 || fd < 0) throw std::runtime_error("cannot capture stderr");
        ::dup2(fd, STDERR_FILENO);
        ::close(fd);
    }
    ~CaptureStderr() {
        std::fflush(stderr);
        ::dup2(saved_, STDERR_FILENO);
        ::close(saved_);
    }
    CaptureStderr(const CaptureStderr&) = delete;
    CaptureStderr& operator=(const CaptureStderr&) = delete;

    std::string text() const {
        std::ifstream in(path_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    bool contains(const std::string& what) const { return text().find(what) != std::string::npos; }

private:
    std::string path_;
    int saved_ = -1;
};

}  // namespace

/// The name follows the resolver's answer every TTL, keeps the last good one when resolution fails, and
/// takes a good answer up again. `maxIdle` 0: no keep-alive, every request connects to the addresses
/// current then; otherwise pooled connections must not outlive a changed answer.
static void followsTheAnswer(std::size_t maxIdle) {
    TwoMocks mocks;
    idem::http::setLogLevel(idem::http::LogLevel::Information);
    CaptureStderr log(mocks.dir.file("stderr.log"));
    auto dns = std::make_shared<FakeDns>();
    dns->answer(kIpA);
    const Millis ttl(200);
    auto config = upstreamConfig({kHost}, mocks.port, ttl);
    config.pool.maxIdle = maxIdle;

    const auto start = std::chrono::steady_clock::now();
    Upstream upstream(config, resolverFor(dns));
    BOOST_TEST(dns->callCount() == 1);  // resolved once in the constructor, before any request

    // The first answer: everything goes to A.
    int a0 = mocks.totalA();
    int b0 = mocks.totalB();
    for (int i = 0; i < 5; ++i) send(upstream);
    BOOST_TEST(mocks.totalA() - a0 == 5);
    BOOST_TEST(mocks.totalB() - b0 == 0);

    // The answer changes to B: within a bounded wait requests go to B, and then only to B (pooled
    // connections to A are not reused).
    dns->answer(kIpB);
    b0 = mocks.totalB();
    BOOST_TEST_REQUIRE(waitUntil(
        [&] {
            send(upstream);
            return mocks.totalB() > b0;
        },
        Millis(10000), Millis(50)));
    a0 = mocks.totalA();
    b0 = mocks.totalB();
    for (int i = 0; i < 5; ++i) send(upstream);
    BOOST_TEST(mocks.totalA() - a0 == 0);
    BOOST_TEST(mocks.totalB() - b0 == 5);
    const std::string changed = "\"" + kHost + "\" now resolves to " + kIpB + ":" + std::to_string(mocks.port);
    BOOST_TEST(waitUntil([&] { return log.contains(changed); }, Millis(5000)), "log: " << log.text());

    // Resolution fails: it is retried, logged, and the last good answer (B) stays in use.
    dns->fail();
    const int callsAtFailure = dns->callCount();
    a0 = mocks.totalA();
    b0 = mocks.totalB();
    int sent = 0;
    const std::string failed = "resolving \"" + kHost + "\" failed (" + dns->error + "); keeping the last answer";
    BOOST_TEST_REQUIRE(waitUntil(
        [&] {
            send(upstream);
            ++sent;
            return dns->callCount() >= callsAtFailure + 2 && log.contains(failed);
        },
        Millis(10000), Millis(50)), "log: " << log.text());
    for (int i = 0; i < 5; ++i, ++sent) send(upstream);
    BOOST_TEST(mocks.totalA() - a0 == 0);
    BOOST_TEST(mocks.totalB() - b0 == sent);

    // A good answer again is taken up again.
    dns->answer(kIpA);
    a0 = mocks.totalA();
    BOOST_TEST(waitUntil(
        [&] {
            send(upstream);
            return mocks.totalA() > a0;
        },
        Millis(10000), Millis(50)));

    // Re-resolved on the TTL, not per request and never more often: the constructor's resolution, then
    // at most one per TTL since (each starts at least a TTL after the previous one ended).
    const int calls = dns->callCount();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    BOOST_TEST(calls >= 4);
    BOOST_TEST(calls <= 2 + static_cast<int>(elapsed / ttl), calls << " resolutions in " << (elapsed / Millis(1)) << " ms");
    for (const auto& host : dns->asked()) BOOST_TEST(host == kHost);
}

BOOST_AUTO_TEST_CASE(a_host_name_follows_the_answer_every_ttl_and_keeps_the_last_good_one) {
    followsTheAnswer(idem::config::UpstreamPoolConfig{}.maxIdle);
}

BOOST_AUTO_TEST_CASE(the_same_with_a_new_connection_per_request) { followsTheAnswer(0); }

BOOST_AUTO_TEST_CASE(requests_do_not_resolve_before_the_ttl_by_default) {
    TwoMocks mocks;
    auto dns = std::make_shared<FakeDns>();
    dns->answer(kIpA);
    idem::config::UpstreamConfig config = upstreamConfig({kHost}, mocks.port, Millis(0));
    config.dnsTtl = idem::config::UpstreamConfig{}.dnsTtl;
    BOOST_TEST(config.dnsTtl.count() == 60000);  // the documented default

    Upstream upstream(config, resolverFor(dns));
    const int a0 = mocks.totalA();
    for (int i = 0; i < 20; ++i) send(upstream);
    BOOST_TEST(mocks.totalA() - a0 == 20);
    BOOST_TEST(dns->callCount() == 1);  // only the constructor's: requests never resolve
}

BOOST_AUTO_TEST_CASE(a_name_unresolvable_at_start_is_retried_in_the_background) {
    TwoMocks mocks;
    idem::http::setLogLevel(idem::http::LogLevel::Information);
    CaptureStderr log(mocks.dir.file("stderr.log"));
    auto dns = std::make_shared<FakeDns>();  // no answer yet
    Upstream upstream(upstreamConfig({kHost}, mocks.port, Millis(200)), resolverFor(dns));
    BOOST_TEST(dns->callCount() == 1);
    BOOST_TEST(log.contains("cannot resolve host \"" + kHost + "\" (" + dns->error + ")"), "log: " << log.text());

    const auto r = upstream.forward(payment(++sequence));
    BOOST_TEST((r.kind == Kind::NotSent));
    BOOST_TEST(r.detail.find("not resolved") != std::string::npos, r.detail);

    dns->answer(kIpB);
    std::string last;
    BOOST_TEST_REQUIRE(waitUntil(
        [&] {
            const auto x = upstream.forward(payment(++sequence));
            last = x.detail;
            return x.kind == Kind::Response;
        },
        Millis(10000), Millis(50)), "last: " << last);
    BOOST_TEST(mocks.totalB() >= 1);
    BOOST_TEST(mocks.totalA() == 0);
}

BOOST_AUTO_TEST_CASE(ip_literals_never_call_the_resolver) {
    TwoMocks mocks;
    const Millis ttl(200);

    // Only literals: the resolver is never called, however many TTLs pass.
    auto none = std::make_shared<FakeDns>();
    {
        Upstream upstream(upstreamConfig({kIpA, kIpB}, mocks.port, ttl), resolverFor(none));
        const int a0 = mocks.totalA();
        const int b0 = mocks.totalB();
        for (int i = 0; i < 4; ++i) send(upstream);
        std::this_thread::sleep_for(4 * ttl);
        for (int i = 0; i < 4; ++i) send(upstream);
        BOOST_TEST(mocks.totalA() - a0 + mocks.totalB() - b0 == 8);
        BOOST_TEST(mocks.totalA() - a0 >= 1);  // round robin over both literals
        BOOST_TEST(mocks.totalB() - b0 >= 1);
    }
    BOOST_TEST(none->callCount() == 0);

    // A literal next to a name: only the name is ever asked for, again and again.
    auto dns = std::make_shared<FakeDns>();
    dns->answer(kIpA);
    Upstream mixed(upstreamConfig({kIpB, kHost}, mocks.port, ttl), resolverFor(dns));
    BOOST_TEST_REQUIRE(waitUntil(
        [&] {
            send(mixed);
            return dns->callCount() >= 3;
        },
        Millis(10000), Millis(50)));
    const auto asked = dns->asked();
    BOOST_TEST(!asked.empty());
    for (const auto& host : asked) BOOST_TEST(host == kHost);
}
