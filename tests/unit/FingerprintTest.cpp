#include "gateway/core/Fingerprint.h"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace idem::core;

namespace {

HttpRequest request(std::string body = R"({"amount":1000,"currency":"usd"})", std::string query = "") {
    HttpRequest r;
    r.method = "POST";
    r.path = "/v1/payments";
    r.query = std::move(query);
    r.headers = {{"Content-Type", "application/json"}, {"Idempotency-Key", "k-1"}};
    r.body = std::move(body);
    return r;
}

std::string fp(const HttpRequest& r, const RoutePolicy& p = {}, std::string_view version = "") {
    auto result = fingerprint(r, p, version);
    BOOST_REQUIRE_MESSAGE(result.has_value(), "fingerprint failed: " << result.error());
    return *result;
}

RoutePolicy jsonPolicy() {
    RoutePolicy p;
    p.body = BodyMode::Json;
    return p;
}

bool isLowerHex64(const std::string& s) {
    if (s.size() != 64) return false;
    for (const char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(FingerprintTest)

BOOST_AUTO_TEST_CASE(isLowercaseHexSha256AndDeterministic) {
    const auto a = fp(request());
    BOOST_TEST(isLowerHex64(a));
    BOOST_TEST(fp(request()) == a);
}

BOOST_AUTO_TEST_CASE(queryOrderIsIrrelevantButValuesMatter) {
    BOOST_TEST(fp(request("{}", "a=1&b=2")) == fp(request("{}", "b=2&a=1")));
    BOOST_TEST(fp(request("{}", "a=1&b=2")) == fp(request("{}", "&b=2&&a=1&")));
    BOOST_TEST(fp(request("{}", "a=1&b=2")) != fp(request("{}", "a=1&b=3")));
    BOOST_TEST(fp(request("{}", "dry_run=true")) != fp(request("{}", "")));
    BOOST_TEST(fp(request("{}", "a=1")) != fp(request("{}", "a=1&a=1")));
}

BOOST_AUTO_TEST_CASE(queryCanBeLeftOut) {
    RoutePolicy p;
    p.fingerprintQuery = false;
    BOOST_TEST(fp(request("{}", "dry_run=true"), p) == fp(request("{}", ""), p));
    BOOST_TEST(fp(request("{}", "a=1"), p) == fp(request("{}", "a=2"), p));
}

BOOST_AUTO_TEST_CASE(sortedQueryForm) {
    BOOST_TEST(sortedQuery("b=2&a=1&&c") == "a=1&b=2&c");
    BOOST_TEST(sortedQuery("") == "");
    BOOST_TEST(sortedQuery("&&") == "");
}

BOOST_AUTO_TEST_CASE(rawBodyModeSeesEveryByte) {
    BOOST_TEST(fp(request(R"({"a":1,"b":2})")) != fp(request(R"({"b":2,"a":1})")));
    BOOST_TEST(fp(request(R"({"a":1})")) != fp(request(R"({"a": 1})")));
}

BOOST_AUTO_TEST_CASE(jsonBodyModeIgnoresOrderAndWhitespace) {
    const auto p = jsonPolicy();
    BOOST_TEST(fp(request(R"({"a":1,"b":[{"x":1,"y":2}]})"), p) ==
               fp(request("{ \"b\" : [ {\"y\":2, \"x\":1} ],\n\"a\":1 }"), p));
    BOOST_TEST(fp(request(R"({"a":1})"), p) != fp(request(R"({"a":2})"), p));
    BOOST_TEST(fp(request(R"([1,2])"), p) != fp(request(R"([2,1])"), p));
    BOOST_TEST(fp(request(R"({"amount":1000})"), p) != fp(request(R"({"amount":1000.0})"), p));
}

BOOST_AUTO_TEST_CASE(jsonContentTypeDetection) {
    BOOST_TEST(isJsonContentType("application/json"));
    BOOST_TEST(isJsonContentType("Application/JSON; charset=utf-8"));
    BOOST_TEST(isJsonContentType(" application/json ;charset=UTF-8"));
    BOOST_TEST(isJsonContentType("application/merge-patch+json"));
    BOOST_TEST(isJsonContentType("application/vnd.acme.v2+JSON"));
    BOOST_TEST(isJsonContentType("text/x+json"));
    BOOST_TEST(!isJsonContentType("text/plain"));
    BOOST_TEST(!isJsonContentType("application/jsonx"));
    BOOST_TEST(!isJsonContentType("application/x-www-form-urlencoded"));
    BOOST_TEST(!isJsonContentType("application/+json"));
    BOOST_TEST(!isJsonContentType("json"));
    BOOST_TEST(!isJsonContentType(""));
}

BOOST_AUTO_TEST_CASE(jsonModeHashesOtherContentTypesRaw) {
    const auto p = jsonPolicy();
    auto a = request(R"({"a":1,"b":2})");
    auto b = request(R"({"b":2,"a":1})");
    a.headers[0].second = b.headers[0].second = "text/plain";
    BOOST_TEST(fp(a, p) != fp(b, p));
    // Not JSON at all, and not declared JSON: hashed as bytes, no error.
    auto form = request("a=1&b=2");
    form.headers[0].second = "application/x-www-form-urlencoded";
    BOOST_TEST(fingerprint(form, p, "").has_value());
    // Without a Content-Type the body is raw too.
    auto bare = request("not json");
    bare.headers.erase(bare.headers.begin());
    BOOST_TEST(fingerprint(bare, p, "").has_value());
}

BOOST_AUTO_TEST_CASE(jsonModeDetectsPlusJsonAndParameters) {
    const auto p = jsonPolicy();
    auto a = request(R"({"a":1,"b":2})");
    auto b = request(R"({"b":2,"a":1})");
    a.headers[0].second = "application/merge-patch+json; charset=utf-8";
    b.headers[0].second = "APPLICATION/MERGE-PATCH+JSON";
    BOOST_TEST(fp(a, p) == fp(b, p));
}

BOOST_AUTO_TEST_CASE(invalidJsonBodyIsAnError) {
    const auto r = fingerprint(request(R"({"amount":1000,)"), jsonPolicy(), "");
    BOOST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error().find("declared as JSON") != std::string::npos);
    BOOST_TEST(r.error().find("JSON") != std::string::npos);
    BOOST_TEST(r.error().find("byte") != std::string::npos);
    BOOST_TEST(!fingerprint(request(R"({"a":1,"a":2})"), jsonPolicy(), "").has_value());
    // The same body in raw mode is just bytes.
    BOOST_TEST(fingerprint(request(R"({"amount":1000,)"), RoutePolicy{}, "").has_value());
}

BOOST_AUTO_TEST_CASE(emptyJsonBodyIsNotAnError) {
    const auto r = fingerprint(request(""), jsonPolicy(), "");
    BOOST_TEST(r.has_value());
}

BOOST_AUTO_TEST_CASE(listedHeadersJoinTheFingerprint) {
    RoutePolicy p;
    p.fingerprintHeaders = {"X-Account"};
    auto a = request();
    auto b = request();
    a.headers.emplace_back("X-Account", "acct_1");
    b.headers.emplace_back("x-account", "acct_2");
    BOOST_TEST(fp(a, p) != fp(b, p));
    b.headers.back().second = "acct_1";
    BOOST_TEST(fp(a, p) == fp(b, p));  // name case does not matter
    // Absent versus present.
    BOOST_TEST(fp(request(), p) != fp(a, p));
    // Unlisted headers do not matter.
    auto c = a;
    c.headers.emplace_back("User-Agent", "curl");
    BOOST_TEST(fp(a, p) == fp(c, p));
    // Without the listing, the header does not matter.
    BOOST_TEST(fp(a) == fp(b));
}

BOOST_AUTO_TEST_CASE(listedHeaderValuesKeepTheirLines) {
    RoutePolicy p;
    p.fingerprintHeaders = {"X-A", "X-B"};
    auto one = request();
    one.headers.emplace_back("X-A", "x-b");
    auto other = request();
    other.headers.emplace_back("X-B", "x-b");
    BOOST_TEST(fp(one, p) != fp(other, p));
    auto twoLines = request();
    twoLines.headers.emplace_back("X-A", "1");
    twoLines.headers.emplace_back("X-A", "2");
    auto swapped = request();
    swapped.headers.emplace_back("X-A", "2");
    swapped.headers.emplace_back("X-A", "1");
    BOOST_TEST(fp(twoLines, p) != fp(swapped, p));
}

BOOST_AUTO_TEST_CASE(versionChangesIt) {
    BOOST_TEST(fp(request(), {}, "1") != fp(request(), {}, "2"));
    BOOST_TEST(fp(request(), {}, "") != fp(request(), {}, "1"));
}

BOOST_AUTO_TEST_CASE(methodChangesIt) {
    auto patch = request();
    patch.method = "PATCH";
    BOOST_TEST(fp(request()) != fp(patch));
}

BOOST_AUTO_TEST_CASE(pathChangesItButEscapeCaseDoesNot) {
    auto a = request();
    auto b = request();
    a.path = "/v1/payments/pay%2fx";
    b.path = "/v1/payments/pay%2Fx";
    BOOST_TEST(fp(a) == fp(b));
    b.path = "/v1/payments/pay/x";
    BOOST_TEST(fp(a) != fp(b));
    b.path = "/v1/refunds";
    BOOST_TEST(fp(request()) != fp(b));
}

BOOST_AUTO_TEST_CASE(normalizePathUpperCasesOnlyEscapes) {
    BOOST_TEST(normalizePath("/a%2fb%c3%a9/Pay") == "/a%2Fb%C3%A9/Pay");
    BOOST_TEST(normalizePath("/100%") == "/100%");
    BOOST_TEST(normalizePath("/%zz%4") == "/%zz%4");
    BOOST_TEST(normalizePath("/%%41") == "/%%41");
}

BOOST_AUTO_TEST_CASE(fieldsCannotShiftAcrossBoundaries) {
    // The query ending in the body's bytes versus the body starting with them.
    BOOST_TEST(fp(request("b", "a")) != fp(request("ab", "")));
    auto r1 = request();
    r1.path = "/v1/payments";
    auto r2 = request();
    r2.path = "/v1/payment";
    r2.query = "s";
    BOOST_TEST(fp(r1) != fp(r2));
}

BOOST_AUTO_TEST_SUITE_END()
