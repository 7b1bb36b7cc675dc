// The key itself and what it is scoped to, end to end (CASES.md B14, B15, B22, B23): endpoint, path,
// version and tenant separate records; long keys are hashed, never truncated, and over-long ones refused
// before the store; the header name is case-insensitive and a repeated or listed key is refused.
#define BOOST_TEST_MODULE e2e key and scope
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"

#include <random>

using namespace idem::test;

namespace {

const std::string kPayment = R"({"amount":1000,"currency":"usd"})";
const std::string kKeyInvalid = "urn:idemgate:problem:key-invalid";

void expectFresh(const Response& r, int status = 201) {
    BOOST_TEST(r.status == status, r.body);
    BOOST_TEST(r.header("Idempotent-Replayed").value_or("") == "false");
}

void expectReplayOf(const Response& r, const Response& original) {
    BOOST_TEST(r.status == original.status);
    BOOST_TEST(r.body == original.body);
    BOOST_TEST(r.header("Idempotent-Replayed").value_or("") == "true");
}

/// `n` printable ASCII characters (0x21-0x7E) from a fixed seed; no ',' (a list) and no leading '"'
/// (an sf-string), which the key syntax gives a meaning of their own.
std::string printableKey(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> pick(0x21, 0x7E);
    std::string k;
    while (k.size() < n) {
        const char c = static_cast<char>(pick(rng));
        if (c == ',' || (k.empty() && c == '"')) continue;
        k.push_back(c);
    }
    return k;
}

Request withKeyLines(const Headers& keyLines, const std::string& body = kPayment) {
    auto r = caseRequest("", body);
    for (const auto& h : keyLines) r.headers.push_back(h);
    return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(KeyAndScope)

// B14: one key on two endpoints, two resource paths, and v1 versus v2 gives separate records: every
// request is forwarded and each replays only its own answer.
BOOST_AUTO_TEST_CASE(b14_keyIsBoundToMethodPathAndVersion) {
    CaseEnv env;
    // (1) payments then refunds.
    auto payment = env.post("k-b14-1", kPayment, {{"X-Mock-Body", R"({"id":"pay_14"})"}});
    expectFresh(payment);
    auto refund = env.post("k-b14-1", R"({"payment":"pay_14"})", {{"X-Mock-Body", R"({"id":"re_14"})"}}, "/v1/refunds");
    expectFresh(refund);
    BOOST_TEST(refund.body == R"({"id":"re_14"})");
    expectReplayOf(env.post("k-b14-1", kPayment), payment);
    expectReplayOf(env.post("k-b14-1", R"({"payment":"pay_14"})", {}, "/v1/refunds"), refund);
    BOOST_TEST(env.up.executions("k-b14-1") == 2);

    // (2) the same PATCH on two payments.
    const auto patch = [&](const std::string& path) {
        return env.send(caseRequest("k-b14-2", R"({"note":"x"})", {}, path, "tok-tenant-a", "PATCH"));
    };
    auto one = patch("/v1/payments/pay_1");
    auto two = patch("/v1/payments/pay_2");
    expectFresh(one, 200);
    expectFresh(two, 200);
    BOOST_TEST(one.body.find("/v1/payments/pay_1") != std::string::npos, one.body);
    BOOST_TEST(two.body.find("/v1/payments/pay_2") != std::string::npos, two.body);
    expectReplayOf(patch("/v1/payments/pay_1"), one);
    expectReplayOf(patch("/v1/payments/pay_2"), two);
    BOOST_TEST(env.up.executions("k-b14-2") == 2);

    // (3) v1 then v2 with the same body.
    auto v1 = env.post("k-b14-3", kPayment);
    auto v2 = env.post("k-b14-3", kPayment, {}, "/v2/payments");
    expectFresh(v1);
    expectFresh(v2);
    BOOST_TEST(v1.body != v2.body);
    expectReplayOf(env.post("k-b14-3", kPayment, {}, "/v2/payments"), v2);
    BOOST_TEST(env.up.executions("k-b14-3") == 2);

    std::vector<std::string> paths;
    for (const auto& f : env.up.requests()) paths.push_back(f.method + " " + f.path);
    const std::vector<std::string> expected{"POST /v1/payments",        "POST /v1/refunds",
                                            "PATCH /v1/payments/pay_1", "PATCH /v1/payments/pay_2",
                                            "POST /v1/payments",        "POST /v2/payments"};
    BOOST_TEST(paths == expected, boost::test_tools::per_element());
}

// B15: two tenants using one key never share a record: neither sees the other's answer, and a tenant
// whose key is in flight elsewhere cannot block the other; no tenant is no request.
BOOST_AUTO_TEST_CASE(b15_keysAreScopedPerTenant) {
    CaseEnv env;
    const std::string body = R"({"amount":1000,"customer":"cus_a"})";
    // (1, 2) A then B.
    auto a = env.post("k-b15-1", body, {{"X-Mock-Body", R"({"id":"pay_a","customer":"cus_a"})"}}, "/v1/payments",
                      "tok-tenant-a");
    expectFresh(a);
    auto b = env.post("k-b15-1", body, {}, "/v1/payments", "tok-tenant-b");
    expectFresh(b);
    // Quoted: the mock's own ids are "pay_<hex>_<n>", which may begin with an "a".
    BOOST_TEST(b.body != a.body, b.body);
    BOOST_TEST(b.body.find("\"pay_a\"") == std::string::npos, b.body);
    BOOST_TEST(b.body.find("\"cus_a\"") == std::string::npos, b.body);
    expectReplayOf(env.post("k-b15-1", body, {}, "/v1/payments", "tok-tenant-a"), a);
    expectReplayOf(env.post("k-b15-1", body, {}, "/v1/payments", "tok-tenant-b"), b);
    BOOST_TEST(env.up.executions("k-b15-1") == 2);

    // (3) B squats k-b15-2 with a slow request of its own; A's request under that key is forwarded at once
    // (no 409 from B's flight, no 422 from B's body).
    Response squat;
    std::thread squatter([&] {
        squat = env.post("k-b15-2", R"({"amount":1})", {{"X-Mock-Delay-Ms", "2000"}}, "/v1/payments", "tok-tenant-b");
    });
    BOOST_REQUIRE(waitUntil([&] { return env.up.executions("k-b15-2") == 1; }, Millis(10000), Millis(10)));
    auto mine = env.post("k-b15-2", R"({"amount":2000})", {}, "/v1/payments", "tok-tenant-a");
    squatter.join();
    expectFresh(mine);
    expectFresh(squat);
    BOOST_TEST(mine.body.find("\"amount\":2000") != std::string::npos, mine.body);
    BOOST_TEST(env.up.executions("k-b15-2") == 2);

    // (4) without the tenant header there is no shared anonymous bucket: the request is refused.
    for (int i = 0; i < 2; ++i) {
        auto anonymous = env.post("k-b15-3", body, {}, "/v1/payments", "");
        BOOST_TEST(anonymous.status == 400);
        BOOST_TEST(problemType(anonymous) == "urn:idemgate:problem:tenant-missing");
    }
    auto blank = env.send(caseRequest("k-b15-3", body, {{"Authorization", ""}}, "/v1/payments", ""));
    BOOST_TEST(blank.status == 400);
    BOOST_TEST(problemType(blank) == "urn:idemgate:problem:tenant-missing");
    BOOST_TEST(env.up.executions("k-b15-3") == 0);
    BOOST_TEST(env.up.total() == 4);
}

// B22: a 255-character key under a 64-character tenant works in full (no truncation, no store error);
// keys differing only in the last character are two records; 256 characters is 400 key-invalid and
// a 10 KB key 400 or 431, never 5xx, with nothing forwarded.
BOOST_AUTO_TEST_CASE(b22_longKeys) {
    CaseEnv env;
    std::string tenant = "tok-";
    for (std::size_t i = 0; tenant.size() < 64; ++i) tenant.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7) % 36]);
    BOOST_REQUIRE(tenant.size() == 64u);

    // (1)
    const std::string key = printableKey(255, 1);
    auto first = env.post(key, kPayment, {}, "/v1/payments", tenant);
    expectFresh(first);
    BOOST_TEST(first.header("Idempotency-Key").value_or("") == key);
    expectReplayOf(env.post(key, kPayment, {}, "/v1/payments", tenant), first);
    BOOST_TEST(env.up.executions(key) == 1);  // the upstream got the key whole

    // (2)
    std::string keyA = printableKey(255, 2), keyB = keyA;
    keyA.back() = 'A';
    keyB.back() = 'B';
    auto a = env.post(keyA, kPayment, {}, "/v1/payments", tenant);
    auto b = env.post(keyB, kPayment, {}, "/v1/payments", tenant);
    expectFresh(a);
    expectFresh(b);
    BOOST_TEST(a.body != b.body);
    expectReplayOf(env.post(keyA, kPayment, {}, "/v1/payments", tenant), a);
    expectReplayOf(env.post(keyB, kPayment, {}, "/v1/payments", tenant), b);
    BOOST_TEST(env.up.executions(keyA) == 1);
    BOOST_TEST(env.up.executions(keyB) == 1);
    BOOST_TEST(env.up.total() == 3);

    // (3)
    const std::string tooLong = printableKey(256, 3);
    for (int i = 0; i < 2; ++i) {
        auto r = env.post(tooLong, kPayment, {}, "/v1/payments", tenant);
        BOOST_TEST(r.status == 400);
        BOOST_TEST(problemType(r) == kKeyInvalid);
    }
    // 255 characters of it are a different, valid key: it was not truncated into that one.
    auto prefix = env.post(tooLong.substr(0, 255), kPayment, {}, "/v1/payments", tenant);
    expectFresh(prefix);
    BOOST_TEST(env.up.total() == 4);

    // (4) A 10 KB key: the request may be refused while its header is read (the connection may then be
    // closed), but the answer, if one comes, is 400 or 431.
    const std::string huge = printableKey(10 * 1024, 4);
    Response r;
    try {
        r = env.post(huge, kPayment, {}, "/v1/payments", tenant);
    } catch (const std::exception& e) {
        BOOST_FAIL(std::string("no answer to a 10 KB key: ") + e.what());
    }
    BOOST_TEST((r.status == 400 || r.status == 431), r.status);
    BOOST_TEST(env.up.total() == 4);
    BOOST_TEST(env.gw->process().running());
}

// B23: the header name is matched case-insensitively (one record for three spellings); two field lines
// (same or different values) and a comma list are 400 with nothing forwarded; a route's alias header
// is case-insensitive too.
BOOST_AUTO_TEST_CASE(b23_headerNameCaseAndRepeatedFields) {
    CaseOptions o;
    o.extraRoutes = "  alias:\n    methods: [POST]\n    path: /v1/alias\n    upstream: up\n"
                    "    key_header: X-Idempotency-Key\n";
    CaseEnv env(o);

    // (1)
    auto lower = env.send(withKeyLines({{"idempotency-key", "k-b23-1"}}));
    expectFresh(lower);
    expectReplayOf(env.send(withKeyLines({{"IDEMPOTENCY-KEY", "k-b23-1"}})), lower);
    expectReplayOf(env.send(withKeyLines({{"Idempotency-Key", "k-b23-1"}})), lower);
    BOOST_TEST(env.up.executions("k-b23-1") == 1);
    BOOST_TEST(env.up.total() == 1);

    // (2-4)
    const std::vector<Headers> ambiguous{
        {{"Idempotency-Key", "k-b23-2"}, {"Idempotency-Key", "k-b23-2"}},
        {{"Idempotency-Key", "k-b23-3"}, {"idempotency-key", "k-b23-4"}},
        {{"Idempotency-Key", "k-b23-5, k-b23-6"}},
    };
    for (const auto& lines : ambiguous) {
        BOOST_TEST_CONTEXT(lines.front().second << " (" << lines.size() << " lines)") {
            auto r = env.send(withKeyLines(lines));
            BOOST_TEST(r.status == 400);
            BOOST_TEST(problemType(r) == kKeyInvalid);
        }
    }
    for (const std::string k : {"k-b23-2", "k-b23-3", "k-b23-4", "k-b23-5", "k-b23-6"})
        BOOST_TEST(env.up.executions(k) == 0);
    BOOST_TEST(env.up.total() == 1);

    // (5)
    auto alias = [&](const std::string& name) {
        auto r = caseRequest("", kPayment, {{name, "k-b23-7"}}, "/v1/alias");
        return env.send(r);
    };
    auto aliased = alias("x-IDEMPOTENCY-key");
    expectFresh(aliased);
    BOOST_TEST(aliased.header("X-Idempotency-Key").value_or("") == "k-b23-7");
    expectReplayOf(alias("X-Idempotency-Key"), aliased);
    BOOST_TEST(env.up.executions("k-b23-7") == 1);  // forwarded under Idempotency-Key (forward_key_header)
    auto wrongHeader = alias("Idempotency-Key");
    BOOST_TEST(wrongHeader.status == 400);
    BOOST_TEST(problemType(wrongHeader) == "urn:idemgate:problem:key-missing");
    BOOST_TEST(env.up.total() == 2);
}

BOOST_AUTO_TEST_SUITE_END()
