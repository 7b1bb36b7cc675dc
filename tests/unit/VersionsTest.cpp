// API version resolution (SEMANTICS.md §8, issue 5): every signal, the order, conflicts, unknown versions,
// the default, the shared or separate scope path, path rewrites, deprecation headers and the dates behind
// them.
#include "gateway/core/Versions.h"

#include "gateway/core/Router.h"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace idem::core;

namespace {

VersionSpec spec(std::string name) {
    VersionSpec v;
    v.name = std::move(name);
    return v;
}

/// Versions 1 and 2 of /{version}/payments/{id}, every source on, Accept as application/vnd.pay.v<N>+json.
VersionPolicy policy() {
    VersionPolicy p;
    p.versions = {spec("1"), spec("2")};
    p.mediaTypeName = "pay";
    p.routePattern = "/{version}/payments/{id}";
    return p;
}

HttpRequest request(std::string path = "/payments/pay_1", Headers headers = {}, std::string query = "") {
    HttpRequest r;
    r.method = "POST";
    r.path = std::move(path);
    r.query = std::move(query);
    r.headers = std::move(headers);
    return r;
}

/// The resolved version name, or "error: <detail>" (checked to be a version-invalid 400 problem).
std::string resolve(const VersionPolicy& p, const HttpRequest& r, const RouteParams& params = {}) {
    const auto v = resolveVersion(p, r, params);
    if (v) return v->spec == nullptr ? "<unversioned>" : v->spec->name;
    const HttpResponse& e = v.error();
    BOOST_TEST(e.status == 400);
    BOOST_REQUIRE(e.body.has_value());
    BOOST_TEST(e.body->find("\"type\":\"urn:idemgate:problem:version-invalid\"") != std::string::npos);
    BOOST_TEST(e.body->find("\"known_versions\":") != std::string::npos);
    // The detail member as written in the JSON body (escapes kept): up to the first unescaped quote.
    std::size_t end = e.body->find("\"detail\":\"") + 10;
    const std::size_t at = end;
    while (end < e.body->size() && (*e.body)[end] != '"') end += (*e.body)[end] == '\\' ? 2 : 1;
    return "error: " + e.body->substr(at, end - at);
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

std::string only(const Headers& h, std::string_view name) {
    if (countHeader(h, name) != 1) return "<" + std::to_string(countHeader(h, name)) + " lines>";
    return *findHeader(h, name);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(VersionsTest, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(unversionedRouteResolvesToNothing) {
    const VersionPolicy p;  // no versions listed
    const auto v = resolveVersion(p, request("/v1/payments", {{"API-Version", "7"}}), {{"version", "v9"}});
    BOOST_REQUIRE(v.has_value());
    BOOST_TEST(v->spec == nullptr);
    BOOST_TEST(v->scopePath == "/v1/payments");
}

BOOST_AUTO_TEST_CASE(eachSignalAlone) {
    const VersionPolicy p = policy();
    // Path: "v2" and "2" both name version 2.
    BOOST_TEST(resolve(p, request("/v2/payments/pay_1"), {{"version", "v2"}, {"id", "pay_1"}}) == "2");
    BOOST_TEST(resolve(p, request("/2/payments/pay_1"), {{"version", "2"}, {"id", "pay_1"}}) == "2");
    // Header: the name is matched case-insensitively; surrounding white space is not part of the value.
    BOOST_TEST(resolve(p, request("/payments", {{"API-Version", "1"}})) == "1");
    BOOST_TEST(resolve(p, request("/payments", {{"api-version", " 2\t"}})) == "2");
    // Accept.
    BOOST_TEST(resolve(p, request("/payments", {{"Accept", "application/vnd.pay.v2+json"}})) == "2");
    // Query, percent-decoded.
    BOOST_TEST(resolve(p, request("/payments", {}, "version=1")) == "1");
    BOOST_TEST(resolve(p, request("/payments", {}, "a=b&version=%32&c")) == "2");
}

BOOST_AUTO_TEST_CASE(pathNameWinsOverTheVPrefix) {
    VersionPolicy p = policy();
    p.versions = {spec("2"), spec("v2")};
    BOOST_TEST(resolve(p, request("/v2/payments/x"), {{"version", "v2"}}) == "v2");
    BOOST_TEST(resolve(p, request("/2/payments/x"), {{"version", "2"}}) == "2");
    // Only the path takes the "v" prefix: a header says the name itself.
    BOOST_TEST(resolve(policy(), request("/payments", {{"API-Version", "v2"}})) ==
               "error: unknown API version \\\"v2\\\" in the API-Version header; known versions: 1, 2");
}

BOOST_AUTO_TEST_CASE(unknownVersionsListTheKnownOnes) {
    const VersionPolicy p = policy();
    BOOST_TEST(resolve(p, request("/v9/payments/x"), {{"version", "v9"}}) ==
               "error: unknown API version \\\"v9\\\" in the path; known versions: 1, 2");
    BOOST_TEST(resolve(p, request("/payments", {{"API-Version", "3"}})) ==
               "error: unknown API version \\\"3\\\" in the API-Version header; known versions: 1, 2");
    BOOST_TEST(resolve(p, request("/payments", {{"Accept", "application/vnd.pay.v3+json"}})) ==
               "error: unknown API version \\\"3\\\" in the Accept header; known versions: 1, 2");
    BOOST_TEST(resolve(p, request("/payments", {}, "version=0")) ==
               "error: unknown API version \\\"0\\\" in the query parameter version; known versions: 1, 2");
    // The problem carries the list as a member too.
    const auto v = resolveVersion(p, request("/payments", {{"API-Version", "3"}}), {});
    BOOST_REQUIRE(!v.has_value());
    BOOST_TEST(contains(*v.error().body, "\"known_versions\":\"1, 2\""));
    BOOST_TEST(only(v.error().headers, "Content-Type") == "application/problem+json");
}

BOOST_AUTO_TEST_CASE(malformedSignals) {
    const VersionPolicy p = policy();
    BOOST_TEST(resolve(p, request("/payments", {{"API-Version", "1"}, {"API-VERSION", "1"}})) ==
               "error: the API-Version header must be sent once, got 2 lines");
    BOOST_TEST(resolve(p, request("/payments", {{"API-Version", "  "}})) == "error: the API-Version header is empty");
    BOOST_TEST(resolve(p, request("/payments", {}, "version=1&version=1")) ==
               "error: the query parameter version must be given once");
    BOOST_TEST(resolve(p, request("/payments", {}, "version=")) == "error: the query parameter version is empty");
    BOOST_TEST(resolve(p, request("/payments", {}, "version")) == "error: the query parameter version is empty");
}

BOOST_AUTO_TEST_CASE(acceptWithSeveralRangesAndParameters) {
    const VersionPolicy p = policy();
    const auto accept = [&](std::vector<std::string> lines) {
        Headers h;
        for (auto& l : lines) h.emplace_back("Accept", std::move(l));
        return resolve(p, request("/payments", h));
    };
    BOOST_TEST(accept({"text/html, application/vnd.pay.v2+json;q=0.9, */*;q=0.1"}) == "2");
    BOOST_TEST(accept({"application/vnd.pay.v1+json ; charset=utf-8"}) == "1");
    BOOST_TEST(accept({"Application/VND.Pay.V2+JSON"}) == "2");  // media types ignore case
    // A comma inside a quoted parameter does not split the range.
    BOOST_TEST(accept({"application/vnd.pay.v1+json; note=\"a, application/vnd.pay.v2+json\""}) == "1");
    // Several lines that agree; ranges of other types or names are not signals.
    BOOST_TEST(accept({"application/vnd.pay.v2+json", "application/json, application/vnd.pay.v2+json"}) == "2");
    BOOST_TEST(accept({"application/vnd.other.v2+json, application/vnd.pay.v2+xml, application/json"}) ==
               "error: this route needs an API version; send it in the path (/v<N>/...), or in the API-Version "
               "header, or as Accept: application/vnd.pay.v<N>+json, or as ?version=<N>; known versions: 1, 2");
    // Ranges that ask for two versions.
    BOOST_TEST(accept({"application/vnd.pay.v1+json, application/vnd.pay.v2+json;q=0.5"}) ==
               "error: the Accept header asks for versions 1 and 2; ask for one");
    BOOST_TEST(accept({"application/vnd.pay.v1+json", "application/vnd.pay.v2+json"}) ==
               "error: the Accept header asks for versions 1 and 2; ask for one");

    // No media type name: Accept is not read at all.
    VersionPolicy off = policy();
    off.mediaTypeName.clear();
    off.defaultVersion = "1";
    BOOST_TEST(resolve(off, request("/payments", {{"Accept", "application/vnd.pay.v2+json"}})) == "1");
    BOOST_TEST(resolve(off, request("/payments", {{"Accept", "application/vnd..v2+json"}})) == "1");
}

BOOST_AUTO_TEST_CASE(signalsMustAgree) {
    const VersionPolicy p = policy();
    const RouteParams v2{{"version", "v2"}, {"id", "x"}};
    BOOST_TEST(resolve(p, request("/v2/payments/x", {{"API-Version", "1"}}), v2) ==
               "error: version signals disagree: path says 2, header says 1");
    BOOST_TEST(resolve(p, request("/v2/payments/x", {{"Accept", "application/vnd.pay.v2+json"}}, "version=1"), v2) ==
               "error: version signals disagree: path says 2, query says 1");
    // Agreeing signals are fine, whatever their spelling.
    BOOST_TEST(resolve(p, request("/v2/payments/x", {{"API-Version", "2"}, {"Accept", "application/vnd.pay.v2+json"}},
                                  "version=2"),
                       v2) == "2");
    // The message follows the configured order.
    VersionPolicy q = policy();
    q.order = {VersionSource::Query, VersionSource::Header, VersionSource::Path};
    BOOST_TEST(resolve(q, request("/v2/payments/x", {{"API-Version", "1"}}, "version=1"), v2) ==
               "error: version signals disagree: query says 1, path says 2");
}

BOOST_AUTO_TEST_CASE(onlyConfiguredSourcesAreRead) {
    VersionPolicy p = policy();
    p.order = {VersionSource::Header};
    // The path, Accept and query say other (even unknown) versions: not signals on this route.
    BOOST_TEST(resolve(p,
                       request("/v9/payments/x", {{"API-Version", "2"}, {"Accept", "application/vnd.pay.v1+json"}},
                               "version=7"),
                       {{"version", "v9"}}) == "2");
    BOOST_TEST(resolve(p, request("/v1/payments/x", {}, "version=1"), {{"version", "v1"}}) ==
               "error: this route needs an API version; send it in the API-Version header; known versions: 1, 2");
}

BOOST_AUTO_TEST_CASE(theDefaultAppliesOnlyWithoutSignals) {
    VersionPolicy p = policy();
    p.defaultVersion = "1";
    BOOST_TEST(resolve(p, request("/payments")) == "1");
    BOOST_TEST(resolve(p, request("/payments", {{"API-Version", "2"}})) == "2");
    BOOST_TEST(resolve(p, request("/payments", {{"API-Version", "5"}})) ==
               "error: unknown API version \\\"5\\\" in the API-Version header; known versions: 1, 2");
    p.defaultVersion.clear();
    BOOST_TEST(resolve(p, request("/payments")) ==
               "error: this route needs an API version; send it in the path (/v<N>/...), or in the API-Version "
               "header, or as Accept: application/vnd.pay.v<N>+json, or as ?version=<N>; known versions: 1, 2");
}

BOOST_AUTO_TEST_CASE(scopePathSharedOrSeparate) {
    VersionPolicy p = policy();
    const auto scopeOf = [&](const std::string& path, const RouteParams& params, Headers headers = {}) {
        const auto v = resolveVersion(p, request(path, std::move(headers)), params);
        BOOST_REQUIRE(v.has_value());
        return v->scopePath;
    };
    // Shared (the default): the path-version part becomes a placeholder, whatever its spelling.
    BOOST_TEST(scopeOf("/v1/payments/pay_1", {{"version", "v1"}, {"id", "pay_1"}}) == "/{version}/payments/pay_1");
    BOOST_TEST(scopeOf("/v2/payments/pay_1", {{"version", "v2"}, {"id", "pay_1"}}) == "/{version}/payments/pay_1");
    BOOST_TEST(scopeOf("/2/payments/pay_1", {{"version", "2"}, {"id", "pay_1"}}) == "/{version}/payments/pay_1");
    // Other parameters stay concrete (B14: two payments never share a record).
    BOOST_TEST(scopeOf("/v1/payments/pay_2", {{"version", "v1"}, {"id", "pay_2"}}) == "/{version}/payments/pay_2");
    // A version from a header leaves the path as it is.
    p.routePattern = "/payments/{id}";
    BOOST_TEST(scopeOf("/payments/pay_1", {{"id", "pay_1"}}, {{"API-Version", "2"}}) == "/payments/pay_1");
    // A version segment further in, with a suffix.
    p.routePattern = "/api/{version}:x/payments";
    BOOST_TEST(scopeOf("/api/v2:x/payments", {{"version", "v2"}}) == "/api/{version}:x/payments");
    // Separate: the path as it is (the version joins the record id instead).
    p.routePattern = "/{version}/payments/{id}";
    p.sharedScope = false;
    BOOST_TEST(scopeOf("/v1/payments/pay_1", {{"version", "v1"}, {"id", "pay_1"}}) == "/v1/payments/pay_1");
    // Shared, but the path is not a source: the segment is an ordinary parameter.
    p.sharedScope = true;
    p.order = {VersionSource::Header};
    BOOST_TEST(scopeOf("/v1/payments/pay_1", {{"version", "v1"}, {"id", "pay_1"}}, {{"API-Version", "1"}}) ==
               "/v1/payments/pay_1");
}

BOOST_AUTO_TEST_CASE(rewriteFillsTheRouteParameters) {
    const RouteParams params{{"version", "v1"}, {"id", "pay_1"}, {"rest", "a/b%2Fc"}};
    BOOST_TEST(rewritePath("/legacy/payments/{id}", params) == "/legacy/payments/pay_1");
    BOOST_TEST(rewritePath("/legacy/{id}/{id}:capture", params) == "/legacy/pay_1/pay_1:capture");
    BOOST_TEST(rewritePath("/files/{rest...}", params) == "/files/a/b%2Fc");
    BOOST_TEST(rewritePath("/files/{rest}", params) == "/files/a/b%2Fc");
    BOOST_TEST(rewritePath("/static/path", params) == "/static/path");
    BOOST_TEST(rewritePath("/x/{missing}/y", params) == "/x/{missing}/y");
    BOOST_TEST(rewritePath("/x/{id", params) == "/x/{id");
    BOOST_TEST(rewritePath("", params) == "");
}

BOOST_AUTO_TEST_CASE(routerMatchFeedsTheResolver) {
    // The parameters come straight from core::Router, as in the gateway.
    const Router router(std::vector<RouteSpec>{{{"POST"}, "/{version}/payments/{id}"}});
    VersionPolicy p = policy();
    p.versions[0].rewrite = "/legacy/payments/{id}";
    const auto m = router.match("POST", "/v1/payments/pay%2F9");
    BOOST_REQUIRE(m.has_value());
    const auto v = resolveVersion(p, request("/v1/payments/pay%2F9"), m->params);
    BOOST_REQUIRE(v.has_value());
    BOOST_TEST(v->spec == &p.versions[0]);
    BOOST_TEST(v->scopePath == "/{version}/payments/pay%2F9");
    BOOST_TEST(rewritePath(v->spec->rewrite, m->params) == "/legacy/payments/pay%2F9");
    const auto v2 = router.match("POST", "/v2/payments/pay_9");
    BOOST_REQUIRE(v2.has_value());
    BOOST_TEST(resolve(p, request("/v2/payments/pay_9"), v2->params) == "2");
}

BOOST_AUTO_TEST_CASE(deprecationHeaders) {
    VersionSpec v = spec("1");
    HttpResponse r;
    r.headers = {{"Content-Type", "application/json"}};
    addDeprecationHeaders(r, v);  // neither deprecated nor sunset: nothing changes
    BOOST_TEST(r.headers.size() == 1u);

    v.deprecated = true;
    addDeprecationHeaders(r, v);
    BOOST_TEST(only(r.headers, "Deprecation") == "true");  // no date: the pre-RFC 9745 form
    BOOST_TEST(countHeader(r.headers, "Sunset") == 0u);
    BOOST_TEST(countHeader(r.headers, "Link") == 0u);

    v.deprecationDate = "Wed, 01 Jan 2025 00:00:00 GMT";
    v.sunset = "Tue, 30 Jun 2026 23:59:59 GMT";
    v.link = "https://docs.example.com/v1";
    HttpResponse full;
    full.headers = {{"Deprecation", "@0"}, {"Link", "<https://up.example.com>; rel=\"next\""}};
    addDeprecationHeaders(full, v);
    addDeprecationHeaders(full, v);  // applying twice changes nothing
    BOOST_TEST(only(full.headers, "Deprecation") == "@1735689600");  // RFC 9745 sf-date, replaces the upstream's
    BOOST_TEST(only(full.headers, "Sunset") == "Tue, 30 Jun 2026 23:59:59 GMT");
    std::vector<std::string> links;  // the upstream's Link is kept, ours added once
    for (const auto& [name, value] : full.headers)
        if (name == "Link") links.push_back(value);
    BOOST_TEST((links == std::vector<std::string>{"<https://up.example.com>; rel=\"next\"",
                                                  "<https://docs.example.com/v1>; rel=\"deprecation\""}));

    // A sunset announced before deprecation: Sunset alone.
    VersionSpec later = spec("2");
    later.sunset = "Tue, 30 Jun 2026 23:59:59 GMT";
    later.link = "https://docs.example.com/v2";
    HttpResponse s;
    addDeprecationHeaders(s, later);
    BOOST_TEST(only(s.headers, "Sunset") == "Tue, 30 Jun 2026 23:59:59 GMT");
    BOOST_TEST(countHeader(s.headers, "Deprecation") == 0u);
    BOOST_TEST(countHeader(s.headers, "Link") == 0u);
}

BOOST_AUTO_TEST_CASE(httpDates) {
    BOOST_TEST(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT").value_or(-1) == 784'111'777);  // RFC 9110's example
    BOOST_TEST(formatHttpDate(784'111'777) == "Sun, 06 Nov 1994 08:49:37 GMT");
    BOOST_TEST(formatHttpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
    BOOST_TEST(parseHttpDate("Thu, 29 Feb 2024 23:59:59 GMT").value_or(-1) == 1'709'251'199);
    for (const std::int64_t t : {0LL, 951'782'400LL, 1'709'251'199LL, 4'102'444'800LL})
        BOOST_TEST(parseHttpDate(formatHttpDate(t)).value_or(-1) == t);
    for (const char* bad : {"Mon, 06 Nov 1994 08:49:37 GMT",  // 6 Nov 1994 was a Sunday
                            "Thu, 29 Feb 2023 00:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                            "Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT",
                            "Sun Nov  6 08:49:37 1994", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Now 1994 08:49:37 GMT",
                            "", "2025-01-01"}) {
        BOOST_TEST(!parseHttpDate(bad).has_value(), bad);
    }
    BOOST_TEST(parseIsoDate("2025-01-01").value_or(-1) == 1'735'689'600);
    BOOST_TEST(parseIsoDate("2024-02-29").value_or(-1) == 1'709'164'800);
    for (const char* bad : {"2023-02-29", "2025-13-01", "2025-00-10", "2025-01-32", "25-01-01", "2025/01/01",
                            "2025-1-01", ""}) {
        BOOST_TEST(!parseIsoDate(bad).has_value(), bad);
    }
}

BOOST_AUTO_TEST_CASE(sourceNames) {
    BOOST_TEST(versionSourceName(VersionSource::Path) == "path");
    BOOST_TEST(versionSourceName(VersionSource::Header) == "header");
    BOOST_TEST(versionSourceName(VersionSource::Accept) == "accept");
    BOOST_TEST(versionSourceName(VersionSource::Query) == "query");
}

BOOST_AUTO_TEST_SUITE_END()
