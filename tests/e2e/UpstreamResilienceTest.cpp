// Upstream resilience end to end (issue 6): the real idemgate in front of real mock upstreams (and, for
// TLS, an in-process TLS server; for the fencing case, a private redis-server shared by two gateways).
// Every failure must end in the outcome SEMANTICS.md §5 promises:
//   refused            -> retried on another endpoint (201); alone: 502 upstream-unreachable, released
//   reset / hang       -> 502 / 504 outcome-unknown, not forwarded again (unless on_unknown: release)
//   late completion    -> fenced: the answer of a request that outlived its lease is not recorded (B04)
//   429 / 503          -> passed through, released; 500 -> recorded as unknown and replayed (B16)
//   client hangs up    -> the upstream call completes and is recorded (B06)
//   oversized answer   -> passed through in full, tombstone, never forwarded again (B20)
// plus load balancing, passive ejection, active health checks, the circuit breaker, the retry budget,
// TLS (verification, SNI, pooling) and exact framing (chunked, close-delimited, truncated).
// No latency is asserted: waits are bounded polls with generous margins.
#define BOOST_TEST_MODULE e2e upstream resilience
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

using namespace idem::test;

namespace {

const std::string kPayment = R"({"amount":1000,"currency":"usd"})";

// ------------------------------------------------------------------------------------ small helpers

/// A gateway config: one upstream `up` (its lines given, 4-space indented), the payments route
/// (/v1/payments) and a route that releases unknown outcomes (/v1/release), both on `up`, plus extras.
struct Cfg {
    std::uint16_t port = 0;
    std::string upstream;        ///< lines under "  up:"
    std::string payments;        ///< extra lines for the payments route
    std::string release;         ///< extra lines for the release route
    std::string extraUpstreams;  ///< whole upstream entries ("  name:\n    url: ...\n")
    std::string extraRoutes;     ///< whole route entries
    std::string store;           ///< a whole store section; "" = memory
};

std::string yaml(const Cfg& c) {
    std::string y = "server:\n  listen: 127.0.0.1:" + std::to_string(c.port) + "\n";
    y += "log:\n  level: warning\n";
    y += c.store.empty() ? "store:\n  type: memory\n" : c.store;
    y += "upstreams:\n  up:\n" + c.upstream + c.extraUpstreams;
    // The client's key is forwarded verbatim, so the mock counts executions by the client's key.
    y += "route_defaults:\n  forward_key: client\n";
    y += "routes:\n";
    y += "  payments:\n    methods: [POST]\n    path: /v1/payments\n    upstream: up\n" + c.payments;
    y += "  release:\n    methods: [POST]\n    path: /v1/release\n    upstream: up\n    on_unknown: release\n" + c.release;
    y += c.extraRoutes;
    return y;
}

std::string url(std::uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); }

Response post(std::uint16_t port, const std::string& key, Headers extra = {},
              const std::string& target = "/v1/payments", const std::string& body = kPayment) {
    Headers h{{"Content-Type", "application/json"}, {"Idempotency-Key", key}};
    for (auto& e : extra) h.push_back(std::move(e));
    return http(port, Request{"POST", target, h, body}, Millis(20000));
}

std::string header(const Headers& headers, const std::string& name) {
    for (const auto& [n, v] : headers)
        if (n.size() == name.size() &&
            std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
            return v;
    return "";
}

/// Calls `done` every 25 ms until it is true or `limit` passes.
bool eventually(const std::function<bool()>& done, Millis limit = Millis(8000)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (done()) return true;
        std::this_thread::sleep_for(Millis(25));
    }
    return done();
}

bool logHas(Gateway& gw, const std::string& text) { return gw.log().find(text) != std::string::npos; }

void setHealth(MockUpstream& up, int status) {
    const auto r = http(up.port(), Request{"POST", "/__health?status=" + std::to_string(status), {}, ""});
    BOOST_REQUIRE(r.status == 200);
}

/// The upstream answered with a gateway problem of this type ("" when it is not a problem).
bool isProblem(const Response& r, const std::string& slug) {
    return problemType(r) == "urn:idemgate:problem:" + slug;
}

std::string which(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    dirs += ":/usr/sbin:/usr/local/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        const std::size_t colon = dirs.find(':', start);
        const std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        const std::string candidate = dir + "/" + program;
        if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        if (colon == std::string::npos) break;
        start = colon + 1;
    }
    return "";
}

// ------------------------------------------------------------------------------- a TLS upstream

/// A self-signed certificate for "localhost" and 127.0.0.1, made in memory.
struct SelfSigned {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    std::string pem;

    SelfSigned() {
        key = EVP_EC_gen("P-256");
        BOOST_REQUIRE(key != nullptr);
        cert = X509_new();
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
        X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        BOOST_REQUIRE(san != nullptr);
        X509_add_ext(cert, san, -1);
        X509_EXTENSION_free(san);
        BOOST_REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(bio, cert);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        pem.assign(data, static_cast<std::size_t>(n));
        BIO_free(bio);
    }
    ~SelfSigned() {
        X509_free(cert);
        EVP_PKEY_free(key);
    }
};

/// An HTTPS upstream on 127.0.0.1 (thread per connection, keep-alive). It answers 201 with a JSON body
/// naming the connection and request; with `X-Test-Close: 1` a close-delimited 200; with
/// `X-Test-Truncate: 1` a Content-Length of 100 and only 10 bytes, then it closes. It counts TCP
/// connections, completed handshakes and requests, and remembers the SNI it saw.
class TlsUpstream {
public:
    explicit TlsUpstream(const SelfSigned& identity) {
        ctx_ = SSL_CTX_new(TLS_server_method());
        SSL_CTX_use_certificate(ctx_, identity.cert);
        SSL_CTX_use_PrivateKey(ctx_, identity.key);
        listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        BOOST_REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        BOOST_REQUIRE(::listen(listen_, 64) == 0);
        socklen_t len = sizeof addr;
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { acceptLoop(); });
    }

    ~TlsUpstream() {
        stop_ = true;
        acceptor_.join();
        {
            std::lock_guard lock(mutex_);
            for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
        }
        for (auto& t : workers_) t.join();
        for (int fd : fds_) ::close(fd);
        ::close(listen_);
        SSL_CTX_free(ctx_);
    }

    std::uint16_t port() const { return port_; }
    int connections() const { return connections_.load(); }
    int handshakes() const { return handshakes_.load(); }
    int requests() const { return requests_.load(); }
    std::string sni() const {
        std::lock_guard lock(mutex_);
        return sni_;
    }

private:
    void acceptLoop() {
        while (!stop_) {
            pollfd p{listen_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            timeval tv{10, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            ++connections_;
            std::lock_guard lock(mutex_);
            fds_.push_back(fd);
            workers_.emplace_back([this, fd] { serve(fd); });
        }
    }

    void serve(int fd) {
        SSL* ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            ++handshakes_;
            if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
                std::lock_guard lock(mutex_);
                sni_ = name;
            }
            std::string buffer;
            char chunk[4096];
            for (bool open = true; open && !stop_;) {
                std::size_t headEnd;
                while ((headEnd = buffer.find("\r\n\r\n")) == std::string::npos) {
                    const int n = SSL_read(ssl, chunk, sizeof chunk);
                    if (n <= 0) {
                        open = false;
                        break;
                    }
                    buffer.append(chunk, static_cast<std::size_t>(n));
                }
                if (!open) break;
                const std::string head = buffer.substr(0, headEnd);
                std::size_t length = 0;
                const auto cl = head.find("Content-Length: ");
                if (cl != std::string::npos) length = std::stoul(head.substr(cl + 16));
                while (buffer.size() < headEnd + 4 + length) {
                    const int n = SSL_read(ssl, chunk, sizeof chunk);
                    if (n <= 0) {
                        open = false;
                        break;
                    }
                    buffer.append(chunk, static_cast<std::size_t>(n));
                }
                if (!open) break;
                buffer.erase(0, headEnd + 4 + length);
                const int n = ++requests_;
                std::string out;
                if (head.find("X-Test-Close: 1") != std::string::npos) {
                    out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nclose-delimited body " +
                          std::to_string(n);
                    open = false;
                } else if (head.find("X-Test-Truncate: 1") != std::string::npos) {
                    out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789";
                    open = false;
                } else {
                    const std::string body = R"({"id":"tls_)" + std::to_string(n) + R"("})";
                    out = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
                }
                SSL_write(ssl, out.data(), static_cast<int>(out.size()));
            }
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        ::shutdown(fd, SHUT_RDWR);
    }

    SSL_CTX* ctx_ = nullptr;
    int listen_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0};
    std::atomic<int> handshakes_{0};
    std::atomic<int> requests_{0};
    mutable std::mutex mutex_;
    std::string sni_;
    std::vector<int> fds_;
    std::vector<std::thread> workers_;
    std::thread acceptor_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(UpstreamResilience)

// ------------------------------------------------------------------------------ refused (B03, B24)

// A refused endpoint is retried on the other one: every request gets 201, each forward carries the
// client's key. Alone, a refused upstream is 502 upstream-unreachable and the key is released.
BOOST_AUTO_TEST_CASE(refusedIsRetriedOnAnotherEndpointOrReleased) {
    TempDir dir;
    MockUpstream live(dir.path());
    const std::uint16_t dead = freePort();
    const std::uint16_t solo = freePort();
    Cfg c;
    c.port = freePort();
    c.upstream = "    endpoints: [" + url(dead) + ", " + url(live.port()) + "]\n";
    c.extraUpstreams = "  solo:\n    url: " + url(solo) + "\n";
    c.extraRoutes = "  solo:\n    methods: [POST]\n    path: /v1/solo\n    upstream: solo\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    for (int i = 0; i < 4; ++i) {
        const std::string key = "k-refused-" + std::to_string(i);
        const auto r = post(c.port, key);
        BOOST_TEST(r.status == 201, r.body);
        BOOST_TEST(live.executions(key) == 1);
        for (const auto& h : live.requestHeaders(key)) BOOST_TEST(header(h, "Idempotency-Key") == key);
    }
    BOOST_TEST(live.total() == 4);

    const auto refused = post(c.port, "k-solo-1", {}, "/v1/solo");
    BOOST_TEST(refused.status == 502);
    BOOST_TEST(isProblem(refused, "upstream-unreachable"), refused.body);
    BOOST_TEST(refused.body.find("\"retryable\":true") != std::string::npos);
    BOOST_TEST(refused.body.find("refused") != std::string::npos, refused.body);
    // Released: the retry is forwarded again (no 409, no replay), and succeeds once the upstream is up.
    BOOST_TEST(post(c.port, "k-solo-1", {}, "/v1/solo").status == 502);
    MockUpstream back(dir.path(), solo);
    const auto forwarded = post(c.port, "k-solo-1", {}, "/v1/solo");
    BOOST_TEST(forwarded.status == 201, forwarded.body);
    BOOST_TEST(forwarded.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(back.executions("k-solo-1") == 1);
}

// ------------------------------------------------------------------- sent, then no answer: unknown

// Reset in the middle of the body: 502 outcome-unknown, recorded; the retry gets the same and is not
// forwarded. With on_unknown: release the retry is forwarded.
BOOST_AUTO_TEST_CASE(resetMidResponseIsUnknown) {
    TempDir dir;
    MockUpstream up(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: " + url(up.port()) + "\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    const Headers fault{{"X-Mock-Fault", "reset-mid-body"}};
    const auto first = post(c.port, "k-reset-1", fault);
    BOOST_TEST(first.status == 502);
    BOOST_TEST(isProblem(first, "outcome-unknown"), first.body);
    BOOST_TEST(jsonString(first.body, "operation_state") == "unknown");
    const auto retry = post(c.port, "k-reset-1");
    BOOST_TEST(retry.status == 502);
    BOOST_TEST(isProblem(retry, "outcome-unknown"));
    BOOST_TEST(up.executions("k-reset-1") == 1);

    BOOST_TEST(post(c.port, "k-reset-2", fault, "/v1/release").status == 502);
    const auto again = post(c.port, "k-reset-2", {}, "/v1/release");
    BOOST_TEST(again.status == 201, again.body);
    BOOST_TEST(up.executions("k-reset-2") == 2);
}

// The upstream hangs past the route's deadline (upstream_timeouts.total: 1s): 504 outcome-unknown,
// not forwarded again; with on_unknown: release it is. A first-byte deadline works the same way.
BOOST_AUTO_TEST_CASE(hangPastTheDeadlineIsUnknown) {
    TempDir dir;
    MockUpstream up(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: " + url(up.port()) + "\n";
    c.payments = "    upstream_timeouts: {total: 1s}\n";
    c.release = "    upstream_timeouts: {total: 1s}\n";
    c.extraRoutes = "  first_byte:\n    methods: [POST]\n    path: /v1/first-byte\n    upstream: up\n"
                    "    upstream_timeouts: {first_byte: 300ms}\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    const Headers hang{{"X-Mock-Fault", "hang"}};
    const auto first = post(c.port, "k-hang-1", hang);
    BOOST_TEST(first.status == 504);
    BOOST_TEST(isProblem(first, "outcome-unknown"), first.body);
    const auto retry = post(c.port, "k-hang-1");
    BOOST_TEST(retry.status == 504);
    BOOST_TEST(up.executions("k-hang-1") == 1);

    BOOST_TEST(post(c.port, "k-hang-2", hang, "/v1/release").status == 504);
    const auto again = post(c.port, "k-hang-2", {}, "/v1/release");
    BOOST_TEST(again.status == 201, again.body);
    BOOST_TEST(up.executions("k-hang-2") == 2);

    const auto slow = post(c.port, "k-fb-1", {{"X-Mock-Delay-Ms", "4000"}}, "/v1/first-byte");
    BOOST_TEST(slow.status == 504);
    BOOST_TEST(slow.body.find("first_byte") != std::string::npos, slow.body);
    BOOST_TEST(up.executions("k-fb-1") == 1);
}

// ------------------------------------------------------------------------ answers: 429, 503, 500

// 429 and 503 are refusals: passed through, released, and the retry (same forwarded key) is forwarded.
// 500 may have charged: recorded as unknown and replayed; with on_unknown: release the retry is forwarded.
BOOST_AUTO_TEST_CASE(refusalsAreReleasedAnd500IsReplayed) {
    TempDir dir;
    MockUpstream up(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: " + url(up.port()) + "\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    const auto busy = post(c.port, "k-429", {{"X-Mock-Status", "429"}});
    BOOST_TEST(busy.status == 429);
    BOOST_TEST(busy.header("Idempotent-Replayed").value_or("") == "false");
    const auto after429 = post(c.port, "k-429");
    BOOST_TEST(after429.status == 201);
    BOOST_TEST(after429.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(up.executions("k-429") == 2);

    // B16: 503 with Retry-After, then 201, then the replay.
    const auto unavailable = post(c.port, "k-b16", {{"X-Mock-Status", "503"}, {"X-Mock-Header", "Retry-After: 1"},
                                                    {"X-Mock-Body", R"({"error":"busy"})"}});
    BOOST_TEST(unavailable.status == 503);
    BOOST_TEST(unavailable.header("Retry-After").value_or("") == "1");
    BOOST_TEST(unavailable.body == R"({"error":"busy"})");
    const auto created = post(c.port, "k-b16");
    BOOST_TEST(created.status == 201);
    const auto replayed = post(c.port, "k-b16");
    BOOST_TEST(replayed.status == 201);
    BOOST_TEST(replayed.body == created.body);
    BOOST_TEST(replayed.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(up.executions("k-b16") == 2);
    const auto forwards = up.requestHeaders("k-b16");
    BOOST_TEST(forwards.size() == 2u);
    for (const auto& h : forwards) BOOST_TEST(header(h, "Idempotency-Key") == "k-b16");  // B24

    const auto failed = post(c.port, "k-500", {{"X-Mock-Status", "500"}});
    BOOST_TEST(failed.status == 500);
    const auto failedAgain = post(c.port, "k-500");
    BOOST_TEST(failedAgain.status == 500);
    BOOST_TEST(failedAgain.body == failed.body);
    BOOST_TEST(failedAgain.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(up.executions("k-500") == 1);

    BOOST_TEST(post(c.port, "k-500r", {{"X-Mock-Status", "500"}}, "/v1/release").status == 500);
    BOOST_TEST(post(c.port, "k-500r", {}, "/v1/release").status == 201);
    BOOST_TEST(up.executions("k-500r") == 2);
}

// ------------------------------------------------------------------------ B06: the client hangs up

BOOST_AUTO_TEST_CASE(clientHangUpDoesNotCancelTheUpstreamCall) {
    TempDir dir;
    MockUpstream up(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: " + url(up.port()) + "\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    for (const bool rst : {false, true}) {
        const std::string key = rst ? "k-b06-rst" : "k-b06-fin";
        {
            Connection client(c.port);
            client.send(Request{"POST", "/v1/payments",
                                {{"Content-Type", "application/json"}, {"Idempotency-Key", key}, {"X-Mock-Delay-Ms", "1500"}},
                                kPayment});
            BOOST_REQUIRE(eventually([&] { return up.executions(key) == 1; }));
            client.close(rst);
        }
        Response retry;
        BOOST_TEST(eventually([&] {
            retry = post(c.port, key);
            return retry.status != 409;
        }));
        BOOST_TEST(retry.status == 201, retry.body);
        BOOST_TEST(retry.header("Idempotent-Replayed").value_or("") == "true");
        BOOST_TEST(up.executions(key) == 1);
    }
}

// ------------------------------------------------------------------------ B20: over the store limit

BOOST_AUTO_TEST_CASE(oversizedAnswerIsPassedThroughAndNeverForwardedAgain) {
    TempDir dir;
    MockUpstream up(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: " + url(up.port()) + "\n";
    c.payments = "    max_stored_response: 64KiB\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    constexpr std::size_t kSize = 200 * 1024;
    for (const char* chunks : {"0", "5"}) {
        const std::string key = std::string("k-b20-") + chunks;
        Headers h{{"X-Mock-Body-Size", std::to_string(kSize)}};
        if (std::string(chunks) != "0") h.emplace_back("X-Mock-Chunked", chunks);
        const auto first = post(c.port, key, h);
        BOOST_TEST(first.status == 201);
        BOOST_TEST(first.body.size() == kSize);  // in full, never truncated
        const auto retry = post(c.port, key);
        BOOST_TEST(retry.status == 410);
        BOOST_TEST(isProblem(retry, "response-not-replayable"), retry.body);
        BOOST_TEST(up.executions(key) == 1);
    }
}

// ------------------------------------------------------------------------------ load balancing

BOOST_AUTO_TEST_CASE(loadIsSpreadAsConfigured) {
    TempDir dir;
    MockUpstream m0(dir.path());
    MockUpstream m1(dir.path());
    MockUpstream m2(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    endpoints: [" + url(m0.port()) + ", " + url(m1.port()) + ", " + url(m2.port()) + "]\n";
    c.extraUpstreams = "  weighted:\n    balance: weighted\n    endpoints:\n"
                       "      - {url: " + url(m0.port()) + ", weight: 1}\n"
                       "      - {url: " + url(m1.port()) + ", weight: 2}\n"
                       "      - {url: " + url(m2.port()) + ", weight: 3}\n"
                       "  least:\n    balance: least_connections\n"
                       "    endpoints: [" + url(m0.port()) + ", " + url(m1.port()) + "]\n";
    c.extraRoutes = "  weighted:\n    methods: [POST]\n    path: /v1/weighted\n    upstream: weighted\n"
                    "  least:\n    methods: [POST]\n    path: /v1/least\n    upstream: least\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    int n = 0;
    for (int i = 0; i < 30; ++i) BOOST_TEST(post(c.port, "k-rr-" + std::to_string(n++)).status == 201);
    BOOST_TEST(m0.total() == 10);
    BOOST_TEST(m1.total() == 10);
    BOOST_TEST(m2.total() == 10);

    for (int i = 0; i < 60; ++i) BOOST_TEST(post(c.port, "k-w-" + std::to_string(n++), {}, "/v1/weighted").status == 201);
    BOOST_TEST(m0.total() == 10 + 10);
    BOOST_TEST(m1.total() == 10 + 20);
    BOOST_TEST(m2.total() == 10 + 30);

    // Least connections: while one endpoint holds a slow request, the quick ones go to the other.
    const int before0 = m0.total();
    const int before1 = m1.total();
    int slowStatus = 0;  // asserted on this thread: Boost.Test is not thread-safe
    std::thread slow([&] {
        try {
            slowStatus = post(c.port, "k-lc-slow", {{"X-Mock-Delay-Ms", "2500"}}, "/v1/least").status;
        } catch (const std::exception&) {
            slowStatus = -1;
        }
    });
    BOOST_REQUIRE(eventually([&] { return m0.total() + m1.total() == before0 + before1 + 1; }));
    const bool busyIs0 = m0.total() == before0 + 1;
    for (int i = 0; i < 6; ++i) BOOST_TEST(post(c.port, "k-lc-" + std::to_string(i), {}, "/v1/least").status == 201);
    slow.join();
    BOOST_TEST(slowStatus == 201);
    BOOST_TEST((busyIs0 ? m0.total() - before0 : m1.total() - before1) == 1);
    BOOST_TEST((busyIs0 ? m1.total() - before1 : m0.total() - before0) == 6);
}

// ----------------------------------------------------------------------------- health and ejection

// Passive: an endpoint that failed twice in a row is ejected; even once it is back up, it gets no
// traffic for the ejection time.
BOOST_AUTO_TEST_CASE(anEjectedEndpointGetsNoTraffic) {
    TempDir dir;
    MockUpstream live(dir.path());
    const std::uint16_t flaky = freePort();
    Cfg c;
    c.port = freePort();
    c.upstream = "    endpoints: [" + url(flaky) + ", " + url(live.port()) + "]\n"
                 "    passive: {consecutive_failures: 2, ejection: 1m}\n"
                 "    retry: {base_backoff: 1ms, max_backoff: 2ms}\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    for (int i = 0; i < 3; ++i) BOOST_TEST(post(c.port, "k-ej-" + std::to_string(i)).status == 201);
    BOOST_TEST(eventually([&] { return logHas(gw, "ejected for 1m after 2 consecutive failures"); }), gw.log());
    MockUpstream back(dir.path(), flaky);
    for (int i = 3; i < 13; ++i) BOOST_TEST(post(c.port, "k-ej-" + std::to_string(i)).status == 201);
    BOOST_TEST(back.total() == 0);
    BOOST_TEST(live.total() == 13);
}

// Active: an endpoint failing its health checks gets no traffic until it passes them again; with every
// endpoint down the answer is 502 upstream-unreachable and the key is released.
BOOST_AUTO_TEST_CASE(healthChecksTakeEndpointsOutAndBackIn) {
    TempDir dir;
    MockUpstream m0(dir.path());
    MockUpstream m1(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    endpoints: [" + url(m0.port()) + ", " + url(m1.port()) + "]\n"
                 "    health: {path: /__health, interval: 200ms, timeout: 150ms, healthy_threshold: 2, "
                 "unhealthy_threshold: 2}\n";
    Gateway gw(dir, "gw", yaml(c), c.port);
    const std::string down0 = "(" + url(m0.port()) + ") is unhealthy";
    const std::string down1 = "(" + url(m1.port()) + ") is unhealthy";
    const std::string up0 = "(" + url(m0.port()) + ") is healthy again";
    const std::string up1 = "(" + url(m1.port()) + ") is healthy again";

    setHealth(m0, 503);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return logHas(gw, down0); }), gw.log());
    for (int i = 0; i < 10; ++i) BOOST_TEST(post(c.port, "k-hc-" + std::to_string(i)).status == 201);
    BOOST_TEST(m0.total() == 0);
    BOOST_TEST(m1.total() == 10);

    setHealth(m0, 200);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return logHas(gw, up0); }), gw.log());
    for (int i = 10; i < 20; ++i) BOOST_TEST(post(c.port, "k-hc-" + std::to_string(i)).status == 201);
    BOOST_TEST(m0.total() == 5);
    BOOST_TEST(m1.total() == 15);

    setHealth(m0, 500);
    setHealth(m1, 503);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return gw.log().find(down0, gw.log().find(up0)) != std::string::npos && logHas(gw, down1); }),
                          gw.log());
    const auto none = post(c.port, "k-hc-all-down");
    BOOST_TEST(none.status == 502);
    BOOST_TEST(isProblem(none, "upstream-unreachable"), none.body);
    BOOST_TEST(none.body.find("failing health checks") != std::string::npos, none.body);
    BOOST_TEST(m0.total() + m1.total() == 20);

    setHealth(m0, 200);
    setHealth(m1, 200);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return logHas(gw, up1); }), gw.log());
    const auto released = post(c.port, "k-hc-all-down");
    BOOST_TEST(released.status == 201, released.body);
    BOOST_TEST(m0.executions("k-hc-all-down") + m1.executions("k-hc-all-down") == 1);
}

// ----------------------------------------------------------------------------- circuit breaker

BOOST_AUTO_TEST_CASE(theBreakerOpensAndCloses) {
    TempDir dir;
    MockUpstream up(dir.path());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: " + url(up.port()) + "\n"
                 "    passive: {consecutive_failures: 0}\n"
                 "    breaker: {failure_rate: 50%, window: 1m, min_requests: 4, open_for: 1s}\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    BOOST_TEST(post(c.port, "k-br-ok").status == 201);
    // Three broken exchanges: 3 of 4 results failed (75% >= 50%, 4 >= min_requests): open.
    for (int i = 0; i < 3; ++i) {
        const auto r = post(c.port, "k-br-fail-" + std::to_string(i), {{"X-Mock-Fault", "close"}});
        BOOST_TEST(r.status == 502);
        BOOST_TEST(isProblem(r, "outcome-unknown"), r.body);
    }
    BOOST_TEST(up.total() == 4);
    const auto open = post(c.port, "k-br-1");
    BOOST_TEST(open.status == 502);
    BOOST_TEST(isProblem(open, "upstream-unreachable"), open.body);
    BOOST_TEST(open.body.find("open circuit breaker") != std::string::npos, open.body);
    BOOST_TEST(up.total() == 4);  // not sent

    // After open_for, one probe goes through; it succeeds and the breaker closes.
    std::this_thread::sleep_for(Millis(2000));
    const auto probe = post(c.port, "k-br-1");  // the key was released: forwarded now
    BOOST_TEST(probe.status == 201, probe.body);
    BOOST_TEST(eventually([&] { return logHas(gw, "circuit breaker closed"); }), gw.log());
    BOOST_TEST(post(c.port, "k-br-2").status == 201);
    BOOST_TEST(up.total() == 6);
}

// ----------------------------------------------------------------------------- retry budget

// Every request meets the dead endpoint first (weights 1000:1). Retries are granted up to
// max(budget_min 2, 10% of requests): 2 at once, the 3rd at request 30, the 4th at request 40.
BOOST_AUTO_TEST_CASE(theRetryBudgetCapsRetries) {
    TempDir dir;
    MockUpstream live(dir.path());
    const std::uint16_t dead = freePort();
    Cfg c;
    c.port = freePort();
    c.upstream = "    balance: weighted\n"
                 "    endpoints:\n      - {url: " + url(dead) + ", weight: 1000}\n      - {url: " + url(live.port()) + ", weight: 1}\n"
                 "    passive: {consecutive_failures: 0}\n"
                 "    breaker: {enabled: false}\n"
                 "    retry: {attempts: 2, base_backoff: 1ms, max_backoff: 2ms, budget: 10%, budget_window: 1m, budget_min: 2}\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    int created = 0;
    int refused = 0;
    for (int i = 0; i < 40; ++i) {
        const auto r = post(c.port, "k-budget-" + std::to_string(i));
        if (r.status == 201) {
            ++created;
        } else {
            ++refused;
            BOOST_TEST(r.status == 502);
            BOOST_TEST(r.body.find("retry budget") != std::string::npos, r.body);
        }
    }
    BOOST_TEST(created == 4);
    BOOST_TEST(refused == 36);
    BOOST_TEST(live.total() == 4);
}

// ----------------------------------------------------------------------------- TLS and framing

BOOST_AUTO_TEST_CASE(tlsUpstreamsAreVerifiedAndPooled) {
    TempDir dir;
    SelfSigned identity;
    dir.write("ca.pem", identity.pem);
    TlsUpstream tls(identity);
    const std::string port = std::to_string(tls.port());
    Cfg c;
    c.port = freePort();
    c.upstream = "    url: https://localhost:" + port + "\n    tls: {ca_file: \"" + dir.file("ca.pem") + "\"}\n";
    c.extraUpstreams = "  system_cas:\n    url: https://localhost:" + port + "\n"
                       "  by_ip:\n    url: https://127.0.0.1:" + port + "\n    tls: {ca_file: \"" + dir.file("ca.pem") +
                       "\", server_name: localhost}\n"
                       "  unverified:\n    url: https://127.0.0.1:" + port + "\n    tls: {verify: false}\n";
    c.extraRoutes = "  system_cas:\n    methods: [POST]\n    path: /v1/system\n    upstream: system_cas\n"
                    "  by_ip:\n    methods: [POST]\n    path: /v1/by-ip\n    upstream: by_ip\n"
                    "  unverified:\n    methods: [POST]\n    path: /v1/unverified\n    upstream: unverified\n";
    Gateway gw(dir, "gw", yaml(c), c.port);

    // Verified against ca_file, SNI = the host name; two requests share one pooled TLS connection.
    const auto first = post(c.port, "k-tls-1");
    BOOST_TEST(first.status == 201, first.body);
    BOOST_TEST(jsonString(first.body, "id") == "tls_1");
    BOOST_TEST(post(c.port, "k-tls-2").status == 201);
    BOOST_TEST(tls.handshakes() == 1);
    BOOST_TEST(tls.requests() == 2);
    BOOST_TEST(tls.sni() == "localhost");

    // Not signed by a CA of the system store: the handshake fails, nothing is sent, the key is released.
    const int before = tls.requests();
    const auto untrusted = post(c.port, "k-tls-3", {}, "/v1/system");
    BOOST_TEST(untrusted.status == 502);
    BOOST_TEST(isProblem(untrusted, "upstream-unreachable"), untrusted.body);
    BOOST_TEST(untrusted.body.find("certificate verification failed") != std::string::npos, untrusted.body);
    BOOST_TEST(tls.requests() == before);

    // An IP literal URL verified by server_name; and verification switched off.
    BOOST_TEST(post(c.port, "k-tls-4", {}, "/v1/by-ip").status == 201);
    BOOST_TEST(post(c.port, "k-tls-5", {}, "/v1/unverified").status == 201);

    // A close-delimited body is complete at the close; a body cut short of its Content-Length is an
    // unknown outcome, never a short answer.
    const auto closed = post(c.port, "k-tls-6", {{"X-Test-Close", "1"}});
    BOOST_TEST(closed.status == 200);
    BOOST_TEST(closed.body.starts_with("close-delimited body"), closed.body);
    const auto cut = post(c.port, "k-tls-7", {{"X-Test-Truncate", "1"}});
    BOOST_TEST(cut.status == 502);
    BOOST_TEST(isProblem(cut, "outcome-unknown"), cut.body);
    BOOST_TEST(cut.body.find("10 of 100 body bytes") != std::string::npos, cut.body);
}

// ----------------------------------------------------------------------------- B04 shape: fencing

// Gateway A forwards, then stalls (SIGSTOP) past the lease. Gateway B, sharing the store, takes the key
// over (on_unknown: release), forwards with the same key and records the answer. A's late answer is
// fenced: not recorded; later retries replay B's.
BOOST_AUTO_TEST_CASE(aLateCompletionIsFenced) {
    const std::string redisServer = which("redis-server");
    BOOST_REQUIRE_MESSAGE(!redisServer.empty(), "redis-server is needed (bash tests/setup.sh --tests installs it)");
    TempDir dir;
    const std::uint16_t redisPort = freePort();
    Process redis({redisServer, "--bind", "127.0.0.1", "--port", std::to_string(redisPort), "--save", "",
                   "--appendonly", "no", "--dir", dir.path()},
                  dir.file("redis.log"));
    BOOST_REQUIRE(waitForPort(redisPort, Millis(10000)));
    MockUpstream up(dir.path());

    Cfg c;
    c.upstream = "    url: " + url(up.port()) + "\n    timeouts: {total: 3s}\n";
    c.release = "    lease: 3s\n";
    c.store = "store:\n  type: redis\n  redis:\n    address: 127.0.0.1:" + std::to_string(redisPort) + "\n";
    c.port = freePort();
    Gateway a(dir, "a", yaml(c), c.port);
    const std::uint16_t portA = c.port;
    c.port = freePort();
    Gateway b(dir, "b", yaml(c), c.port);
    const std::uint16_t portB = c.port;

    Response late;  // asserted on this thread: Boost.Test is not thread-safe
    std::thread first([&] {
        try {
            late = post(portA, "k-b04", {{"X-Mock-Delay-Ms", "1000"}}, "/v1/release");
        } catch (const std::exception&) {
            late.status = -1;
        }
    });
    BOOST_REQUIRE(eventually([&] { return up.executions("k-b04") == 1; }));
    a.process().signal(SIGSTOP);
    std::this_thread::sleep_for(Millis(4500));  // the 3s lease is over (with a wide margin)

    const auto takeover = post(portB, "k-b04", {}, "/v1/release");
    a.process().signal(SIGCONT);
    first.join();
    BOOST_TEST(takeover.status == 201, takeover.body);
    BOOST_TEST(takeover.header("Idempotent-Replayed").value_or("") == "false");
    BOOST_TEST(up.executions("k-b04") == 2);
    for (const auto& h : up.requestHeaders("k-b04")) BOOST_TEST(header(h, "Idempotency-Key") == "k-b04");
    BOOST_TEST((late.status == 201 || late.status == 504), late.status);
    BOOST_TEST(eventually([&] { return logHas(a, "fenced"); }), a.log());

    for (const std::uint16_t port : {portA, portB}) {
        const auto replay = post(port, "k-b04", {}, "/v1/release");
        BOOST_TEST(replay.status == 201);
        BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
        BOOST_TEST(replay.body == takeover.body);
    }
    BOOST_TEST(up.executions("k-b04") == 2);
}

BOOST_AUTO_TEST_SUITE_END()
