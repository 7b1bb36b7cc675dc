#include "gateway/core/Router.h"

#include <boost/test/unit_test.hpp>

#include <stdexcept>
#include <string>

using namespace idem::core;

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

/// The CASES.md default route table, in the order a config would list it (capture before {id}).
Router casesRouter() {
    return Router({
        {{"POST"}, "/v1/payments"},                  // 0
        {{"POST"}, "/v1/refunds"},                   // 1
        {{"POST"}, "/v1/payments/{id}:capture"},     // 2
        {{"PATCH"}, "/v1/payments/{id}"},            // 3
        {{"POST"}, "/v1/payments/{id}"},             // 4
        {{"POST"}, "/v2/payments"},                  // 5
        {{}, "/static/{path...}"},                   // 6
        {{"GET"}, "/"},                              // 7
    });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(RouterTest)

BOOST_AUTO_TEST_CASE(literalRoutes) {
    const auto r = casesRouter();
    const auto m = r.match("POST", "/v1/payments");
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->index == 0u);
    BOOST_TEST(m->params.empty());
    BOOST_TEST(r.match("POST", "/v1/refunds")->index == 1u);
    BOOST_TEST(r.match("POST", "/v2/payments")->index == 5u);
    BOOST_TEST(!r.match("POST", "/v1/payment").has_value());
    BOOST_TEST(!r.match("POST", "/v1/payments/").has_value());
    BOOST_TEST(!r.match("POST", "/V1/payments").has_value());  // case-sensitive
    BOOST_TEST(!r.match("POST", "v1/payments").has_value());
    BOOST_TEST(!r.match("POST", "").has_value());
    BOOST_TEST(!r.match("POST", "/v3/payments").has_value());
}

BOOST_AUTO_TEST_CASE(rootPattern) {
    const auto r = casesRouter();
    BOOST_TEST(r.match("GET", "/")->index == 7u);
    BOOST_TEST(!r.match("GET", "//").has_value());
}

BOOST_AUTO_TEST_CASE(paramSegments) {
    const auto r = casesRouter();
    const auto m = r.match("PATCH", "/v1/payments/pay_1");
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->index == 3u);
    BOOST_TEST((m->params == Params{{"id", "pay_1"}}));
    BOOST_TEST(!r.match("PATCH", "/v1/payments/pay_1/x").has_value());
    BOOST_TEST(!r.match("PATCH", "/v1/payments/").has_value());
    const auto encoded = r.match("PATCH", "/v1/payments/pay%2F1");
    BOOST_REQUIRE(encoded.has_value());
    BOOST_TEST((encoded->params == Params{{"id", "pay%2F1"}}));
}

BOOST_AUTO_TEST_CASE(suffixParams) {
    const auto r = casesRouter();
    const auto m = r.match("POST", "/v1/payments/pay_17:capture");
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->index == 2u);
    BOOST_TEST((m->params == Params{{"id", "pay_17"}}));
    // The suffix alone leaves an empty parameter: no match for the capture route.
    const auto bare = r.match("POST", "/v1/payments/:capture");
    BOOST_REQUIRE(bare.has_value());
    BOOST_TEST(bare->index == 4u);
    BOOST_TEST((bare->params == Params{{"id", ":capture"}}));
    // Without the suffix, the {id} route takes it.
    BOOST_TEST(r.match("POST", "/v1/payments/pay_17")->index == 4u);
    BOOST_TEST(r.match("POST", "/v1/payments/pay_17:refund")->index == 4u);
}

BOOST_AUTO_TEST_CASE(multipleParams) {
    const Router r(std::vector<RouteSpec>{{{"POST"}, "/v1/{account}/payments/{id}/events"}});
    const auto m = r.match("POST", "/v1/acct_1/payments/pay_2/events");
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST((m->params == Params{{"account", "acct_1"}, {"id", "pay_2"}}));
    BOOST_TEST(!r.match("POST", "/v1/acct_1/payments/pay_2").has_value());
    BOOST_TEST(!r.match("POST", "/v1/acct_1/payments/pay_2/events/x").has_value());
}

BOOST_AUTO_TEST_CASE(restParam) {
    const auto r = casesRouter();
    const auto m = r.match("GET", "/static/css/site.css");
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->index == 6u);
    BOOST_TEST((m->params == Params{{"path", "css/site.css"}}));
    BOOST_TEST(r.match("DELETE", "/static/a")->index == 6u);  // empty method list = any method
    BOOST_TEST(!r.match("GET", "/static").has_value());
    BOOST_TEST(!r.match("GET", "/static/").has_value());
}

BOOST_AUTO_TEST_CASE(firstMatchWins) {
    const Router r({
        {{"POST"}, "/v1/payments/{id}"},
        {{"POST"}, "/v1/payments/special"},
        {{"POST"}, "/v1/payments/{other}"},
    });
    const auto m = r.match("POST", "/v1/payments/special");
    BOOST_REQUIRE(m.has_value());
    BOOST_TEST(m->index == 0u);
    BOOST_TEST((m->params == Params{{"id", "special"}}));
}

BOOST_AUTO_TEST_CASE(methodFallsThroughToLaterRoutes) {
    const Router r({
        {{"POST", "PATCH"}, "/v1/payments/{id}"},
        {{"GET"}, "/v1/payments/{pid}"},
        {{}, "/v1/payments/{any}"},
    });
    BOOST_TEST(r.match("POST", "/v1/payments/p")->index == 0u);
    BOOST_TEST(r.match("PATCH", "/v1/payments/p")->index == 0u);
    const auto get = r.match("GET", "/v1/payments/p");
    BOOST_REQUIRE(get.has_value());
    BOOST_TEST(get->index == 1u);
    BOOST_TEST((get->params == Params{{"pid", "p"}}));
    BOOST_TEST(r.match("DELETE", "/v1/payments/p")->index == 2u);
    BOOST_TEST(!Router(std::vector<RouteSpec>{{{"POST"}, "/x"}}).match("post", "/x").has_value());  // methods compare exactly
    BOOST_TEST(!Router(std::vector<RouteSpec>{{{"POST"}, "/x"}}).match("GET", "/x").has_value());
}

BOOST_AUTO_TEST_CASE(validPatterns) {
    for (const char* p : {"/", "/v1/payments", "/v1/payments/{id}", "/v1/payments/{id}:capture", "/{a}/{b_2}/{_c}",
                          "/files/{rest...}", "/a-b.c~d/{id}.json"})
        BOOST_TEST(!Router::patternError(p).has_value(), p);
}

BOOST_AUTO_TEST_CASE(patternErrors) {
    for (const char* p : {"", "v1/payments", "//", "/v1//payments", "/v1/payments/", "/{", "/{id", "/{}", "/{1id}",
                          "/{i-d}", "/x{id}", "/{id}{x}", "/{id}/{id}", "/{rest...}/x", "/{rest...}.json", "/{...}",
                          "/a b", "/a?b", "/a#b", "/a}b", "/caf\xC3\xA9"}) {
        const auto err = Router::patternError(p);
        BOOST_TEST(err.has_value(), "pattern accepted: " << p);
        if (err) BOOST_TEST(!err->empty());
    }
    BOOST_TEST(Router::patternError("/{id}/{id}")->find("twice") != std::string::npos);
    BOOST_TEST(Router::patternError("v1")->find("start with '/'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(constructorRejectsInvalidPatterns) {
    BOOST_CHECK_THROW(Router(std::vector<RouteSpec>{{{"POST"}, "/ok"}, {{"POST"}, "/bad//x"}}), std::invalid_argument);
    BOOST_CHECK_NO_THROW(Router(std::vector<RouteSpec>{{{"POST"}, "/ok"}}));
}

BOOST_AUTO_TEST_CASE(emptyRouterMatchesNothing) {
    const Router r(std::vector<RouteSpec>{});
    BOOST_TEST(r.size() == 0u);
    BOOST_TEST(!r.match("GET", "/").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
