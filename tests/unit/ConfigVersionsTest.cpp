// The config loader's issue-5 route keys: `versions:` (every key, its defaults, every error) and the
// feature flag `enabled` / `disabled`; describeConfig prints them and reads back the same.
#include "tests/unit/ConfigTestSupport.h"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace idem::config;
using namespace config_test;
namespace core = idem::core;

namespace {

struct BadVersionCase {
    std::string name;
    std::string yaml;
    std::string keyPath;
    std::string problem;  ///< a substring of ConfigError::problem
};

std::string versions(std::string_view body, std::string_view path = "/{version}/payments/{id}") {
    return configWith("versions:\n" + indented(body, "  "), path);
}

std::vector<BadVersionCase> badVersionCases() {
    const std::string list = "list: {\"1\": {}, \"2\": {}}";
    const std::string v = "routes.r.versions";
    return {
        {"versions not a mapping", configWith("versions: [1, 2]"), v, "expected a mapping with keys: sources, path_param, header, media_type, query_param, default, scope, list; got a list"},
        {"unknown versions key", versions(list + "\nsource: [path]"), v + ".source", "unknown key; allowed keys here: sources, path_param"},
        {"list missing", versions("default: \"1\""), v + ".list", "missing: a versioned route lists its versions"},
        {"list empty", versions("list: {}"), v + ".list", "list at least one version"},
        {"list not a mapping", versions("list: [1, 2]"), v + ".list", "expected a mapping of names to entries, got a list"},
        {"bad version name", versions("list: {\"v 1\": {}}"), v + ".list.v 1", "version names may use letters, digits, '-' and '_'"},
        {"duplicate version", versions("list:\n  \"1\": {}\n  \"1\": {}"), v + ".list.1", "duplicate key"},
        {"unknown version key", versions("list: {\"1\": {upstreams: up}}"), v + ".list.1.upstreams", "unknown key; allowed keys here: upstream, rewrite, deprecated, deprecation_date, sunset, link"},
        {"version upstream unknown", versions("list: {\"1\": {upstream: nope}}"), v + ".list.1.upstream", "no upstream named \"nope\"; defined: up, legacy"},
        {"rewrite relative", versions("list: {\"1\": {rewrite: \"legacy/{id}\"}}"), v + ".list.1.rewrite", "\"legacy/{id}\" must start with '/'; expected a path template like /legacy/payments/{id}"},
        {"rewrite unknown parameter", versions("list: {\"1\": {rewrite: \"/legacy/{pid}\"}}"), v + ".list.1.rewrite", "{pid} is not a parameter of the route's path /{version}/payments/{id}; its parameters: {version}, {id}"},
        {"rewrite without parameters", versions("list: {\"1\": {rewrite: \"/x/{id}\"}}\nsources: [header]", "/payments"), v + ".list.1.rewrite", "{id} is not a parameter of the route's path /payments (it has none)"},
        {"rewrite unclosed brace", versions("list: {\"1\": {rewrite: \"/legacy/{id\"}}"), v + ".list.1.rewrite", "has an unclosed '{'"},
        {"rewrite stray brace", versions("list: {\"1\": {rewrite: \"/legacy/id}\"}}"), v + ".list.1.rewrite", "has a stray '}'"},
        {"rewrite query", versions("list: {\"1\": {rewrite: \"/legacy?x=1\"}}"), v + ".list.1.rewrite", "must not contain a query or fragment"},
        {"rewrite space", versions("list: {\"1\": {rewrite: \"/leg acy\"}}"), v + ".list.1.rewrite", "has a character outside printable ASCII"},
        {"rewrite as list", versions("list: {\"1\": {rewrite: [a]}}"), v + ".list.1.rewrite", "expected a path template like /legacy/payments/{id}, or \"\" for none, got a list"},
        {"deprecated not a bool", versions("list: {\"1\": {deprecated: soon}}"), v + ".list.1.deprecated", "\"soon\" is not valid; expected true or false"},
        {"deprecation date garbage", versions("list: {\"1\": {deprecated: true, deprecation_date: next year}}"), v + ".list.1.deprecation_date", "\"next year\" is not a date; expected an HTTP-date like \"Wed, 01 Jan 2025 00:00:00 GMT\" (its day name matching the date) or a date like 2025-01-01"},
        {"deprecation date wrong day", versions("list: {\"1\": {deprecated: true, deprecation_date: \"Tue, 01 Jan 2025 00:00:00 GMT\"}}"), v + ".list.1.deprecation_date", "\"Tue, 01 Jan 2025 00:00:00 GMT\" is not a date"},
        {"deprecation date impossible", versions("list: {\"1\": {deprecated: true, deprecation_date: 2025-02-30}}"), v + ".list.1.deprecation_date", "\"2025-02-30\" is not a date"},
        {"deprecation date without deprecated", versions("list: {\"1\": {deprecation_date: 2025-01-01}}"), v + ".list.1.deprecation_date", "a deprecation date needs deprecated: true"},
        {"sunset garbage", versions("list: {\"1\": {sunset: 2026}}"), v + ".list.1.sunset", "\"2026\" is not a date"},
        {"sunset before deprecation", versions("list: {\"1\": {deprecated: true, deprecation_date: 2025-06-01, sunset: 2025-01-01}}"), v + ".list.1.sunset", "the sunset Wed, 01 Jan 2025 00:00:00 GMT is before the deprecation date Sun, 01 Jun 2025 00:00:00 GMT"},
        {"link not a URL", versions("list: {\"1\": {deprecated: true, link: docs.example.com}}"), v + ".list.1.link", "\"docs.example.com\" is not a usable URL; expected an http:// or https:// URL"},
        {"link with space", versions("list: {\"1\": {deprecated: true, link: \"https://x.com/a b\"}}"), v + ".list.1.link", "\"https://x.com/a b\" is not a usable URL"},
        {"link scheme only", versions("list: {\"1\": {deprecated: true, link: \"https://\"}}"), v + ".list.1.link", "\"https://\" is not a usable URL"},
        {"link without deprecated", versions("list: {\"1\": {link: \"https://docs.example.com/v1\"}}"), v + ".list.1.link", "a deprecation link needs deprecated: true"},
        {"sources empty", versions(list + "\nsources: []"), v + ".sources", "list at least one source (path, header, accept, query)"},
        {"sources scalar", versions(list + "\nsources: path"), v + ".sources", "expected a list of sources from: path, header, accept, query, got \"path\""},
        {"sources unknown", versions(list + "\nsources: [header, cookie]"), v + ".sources[1]", "\"cookie\" is not valid; expected one of: path, header, accept, query"},
        {"sources repeated", versions(list + "\nsources: [header, query, header]"), v + ".sources[2]", "header is listed twice"},
        {"path source without parameter", versions(list + "\nsources: [path]", "/payments"), v + ".sources[0]", "the path source needs {version} in the route's path (e.g. /{version}/payments), but the path is /payments"},
        {"path source with rest parameter", versions(list + "\nsources: [header, path]", "/api/{version...}"), v + ".sources[1]", "the path source needs {version} to be one segment, not {version...}"},
        {"path_param not in the path", versions(list + "\npath_param: ver"), v + ".path_param", "the path source needs {ver} in the route's path (e.g. /{ver}/payments), but the path is /{version}/payments/{id}"},
        {"path_param not a name", versions(list + "\npath_param: \"1v\""), v + ".path_param", "\"1v\" is not a parameter name"},
        {"accept without media_type", versions(list + "\nsources: [accept]"), v + ".sources[0]", "the accept source needs media_type"},
        {"media_type with slash", versions(list + "\nmedia_type: \"vnd.pay/v1\""), v + ".media_type", "\"vnd.pay/v1\" is not valid; expected the NAME of application/vnd.NAME.v2+json"},
        {"query_param empty", versions(list + "\nquery_param: \"\""), v + ".query_param", "\"\" is not a valid query parameter name"},
        {"query_param with ampersand", versions(list + "\nquery_param: \"a&b\""), v + ".query_param", "\"a&b\" is not a valid query parameter name"},
        {"header not a header name", versions(list + "\nheader: \"API Version\""), v + ".header", "\"API Version\" is not a valid header name"},
        {"default not listed", versions(list + "\ndefault: \"3\""), v + ".default", "\"3\" is not a listed version; expected one of: 1, 2, or \"\" to require one"},
        {"default a list", versions(list + "\ndefault: [1]"), v + ".default", "expected a version listed under list, or \"\" to require one, got a list"},
        {"scope unknown", versions(list + "\nscope: global"), v + ".scope", "\"global\" is not valid; expected one of: shared, separate"},
        {"enabled not a bool", configWith("enabled: off"), "routes.r.enabled", "\"off\" is not valid; expected true or false"},
        {"disabled unknown", configWith("disabled: drop"), "routes.r.disabled", "\"drop\" is not valid; expected one of: pass_through, reject"},
        {"versions in route_defaults", configWith("", "/p", "route_defaults: {versions: {list: {\"1\": {}}}}"), "route_defaults.versions", "versions belongs to each route, not to route_defaults"},
        {"enabled in route_defaults", configWith("", "/p", "route_defaults: {enabled: false}"), "route_defaults.enabled", "enabled belongs to each route, not to route_defaults"},
        {"lease below a version's upstream", versions("list: {\"1\": {}, \"2\": {upstream: legacy}}") + "    lease: 40s\n", "routes.r.lease", "lease 40s is shorter than the upstream deadline 1m (timeouts.total of upstream \"legacy\""},
    };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ConfigVersionsSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(everyVersionKeyMapsToItsField) {
    const std::string yaml = configWith(R"(enabled: false
disabled: pass_through
versions:
  sources: [query, accept, header, path]
  path_param: version
  header: X-Api-Version
  media_type: pay.example
  query_param: api_version
  default: "2"
  scope: separate
  list:
    "1":
      upstream: legacy
      rewrite: "/legacy/payments/{id}"
      deprecated: true
      deprecation_date: 2025-01-01
      sunset: "Tue, 30 Jun 2026 23:59:59 GMT"
      link: https://docs.example.com/v1
    "2": {}
    2024-06-01:
)");
    const Config c = loadConfigString(yaml, "t.yaml", {.set = {}, .environment = false});
    const RouteConfig& r = c.routes.at(0);
    BOOST_TEST(!r.enabled);
    BOOST_TEST((r.disabledAction == RouteConfig::DisabledAction::PassThrough));
    const core::VersionPolicy& v = r.policy.versions;
    BOOST_TEST((v.order == std::vector<core::VersionSource>{core::VersionSource::Query, core::VersionSource::Accept,
                                                            core::VersionSource::Header, core::VersionSource::Path}));
    BOOST_TEST(v.pathParam == "version");
    BOOST_TEST(v.header == "X-Api-Version");
    BOOST_TEST(v.mediaTypeName == "pay.example");
    BOOST_TEST(v.queryParam == "api_version");
    BOOST_TEST(v.defaultVersion == "2");
    BOOST_TEST(!v.sharedScope);
    BOOST_TEST(v.routePattern == "/{version}/payments/{id}");
    BOOST_REQUIRE_EQUAL(v.versions.size(), 3u);
    const core::VersionSpec& one = v.versions[0];
    BOOST_TEST(one.name == "1");
    BOOST_TEST(one.upstream == "legacy");
    BOOST_TEST(one.rewrite == "/legacy/payments/{id}");
    BOOST_TEST(one.deprecated);
    BOOST_TEST(one.deprecationDate == "Wed, 01 Jan 2025 00:00:00 GMT");  // an ISO date becomes an HTTP-date
    BOOST_TEST(one.sunset == "Tue, 30 Jun 2026 23:59:59 GMT");
    BOOST_TEST(one.link == "https://docs.example.com/v1");
    for (const auto& other : {v.versions[1], v.versions[2]}) {  // defaults of a version
        BOOST_TEST(other.upstream == "up");
        BOOST_TEST(other.rewrite.empty());
        BOOST_TEST(!other.deprecated);
        BOOST_TEST(other.deprecationDate.empty());
        BOOST_TEST(other.sunset.empty());
        BOOST_TEST(other.link.empty());
    }
    BOOST_TEST(v.versions[2].name == "2024-06-01");
    // The default lease covers the slowest upstream the route may use: legacy's 60s + 5s.
    BOOST_TEST(r.policy.lease.count() == 65'000);
}

BOOST_AUTO_TEST_CASE(defaultsOfAVersionsSection) {
    const ConfigOverrides none{.set = {}, .environment = false};
    // A route with no versions section is unversioned and enabled.
    const Config plain = loadConfigString(configWith("", "/payments"), "t.yaml", none);
    const RouteConfig& p = plain.routes.at(0);
    BOOST_TEST(p.enabled);
    BOOST_TEST((p.disabledAction == RouteConfig::DisabledAction::Reject));
    BOOST_TEST(p.policy.versions.versions.empty());

    // Only a list: the defaults, less the sources this route cannot use.
    const Config c = loadConfigString(versions("list: {\"1\": {}, \"2\": {}}"), "t.yaml", none);
    const core::VersionPolicy& v = c.routes.at(0).policy.versions;
    BOOST_TEST((v.order == std::vector<core::VersionSource>{core::VersionSource::Path, core::VersionSource::Header,
                                                            core::VersionSource::Query}));  // no media_type: no accept
    BOOST_TEST(v.pathParam == "version");
    BOOST_TEST(v.header == "API-Version");
    BOOST_TEST(v.mediaTypeName.empty());
    BOOST_TEST(v.queryParam == "version");
    BOOST_TEST(v.defaultVersion.empty());
    BOOST_TEST(v.sharedScope);
    BOOST_TEST(c.routes.at(0).policy.lease.count() == 35'000);  // both versions on `up`

    const Config noPath = loadConfigString(versions("media_type: pay\nlist: {\"1\": {}}", "/payments"), "t.yaml", none);
    BOOST_TEST((noPath.routes.at(0).policy.versions.order ==
                std::vector<core::VersionSource>{core::VersionSource::Header, core::VersionSource::Accept,
                                                 core::VersionSource::Query}));  // no {version}: no path
    // Empty strings mean "none" for rewrite, dates and link, and "required" for default.
    const Config empty = loadConfigString(
        versions("default: \"\"\nlist: {\"1\": {rewrite: \"\", deprecation_date: \"\", sunset: \"\", link: \"\"}}"),
        "t.yaml", none);
    BOOST_TEST(empty.routes.at(0).policy.versions.defaultVersion.empty());
    BOOST_TEST(empty.routes.at(0).policy.versions.versions.at(0).rewrite.empty());
}

BOOST_AUTO_TEST_CASE(invalidVersionSettingsNameKeyPathAndForm) {
    std::vector<std::string> seen;
    for (const auto& c : badVersionCases()) {
        BOOST_TEST_CONTEXT("case: " << c.name << "\n" << c.yaml) {
            const ConfigError e = errorOf(c.yaml, {.set = {}, .environment = false});
            BOOST_TEST(e.file == "test.yaml");
            BOOST_TEST(e.keyPath == c.keyPath);
            BOOST_TEST(has(e.problem, c.problem), "problem \"" << e.problem << "\" lacks \"" << c.problem << "\"");
            BOOST_TEST(e.line > 0);
            BOOST_TEST(e.column > 0);
            BOOST_TEST(std::string(e.what()) == "test.yaml:" + std::to_string(e.line) + ":" + std::to_string(e.column) +
                                                    ": " + c.keyPath + ": " + e.problem);
            seen.push_back(e.keyPath + ": " + e.problem);
        }
    }
    std::sort(seen.begin(), seen.end());
    const auto dup = std::adjacent_find(seen.begin(), seen.end());
    BOOST_TEST((dup == seen.end()), "two cases share the message: " << (dup == seen.end() ? "" : *dup));
}

BOOST_AUTO_TEST_CASE(errorsPointAtTheOffendingLine) {
    const std::string yaml = configWith(
        "versions:\n"
        "  list:\n"
        "    \"1\":\n"
        "      sunset: someday\n");
    const ConfigError e = errorOf(yaml, {.set = {}, .environment = false});
    BOOST_TEST(e.keyPath == "routes.r.versions.list.1.sunset");
    BOOST_TEST(e.line == 14);
    BOOST_TEST(e.column == 19);
}

BOOST_AUTO_TEST_CASE(describeShowsVersionsAndFlagsAndReadsBack) {
    const ConfigOverrides none{.set = {}, .environment = false};
    const std::string yaml = configWith(R"(enabled: false
disabled: pass_through
versions:
  media_type: pay
  default: "1"
  scope: separate
  list:
    "1": {upstream: legacy, rewrite: "/legacy/{id}", deprecated: true, deprecation_date: 2025-01-01, sunset: 2026-01-01, link: "https://docs.example.com/v1?lang=en"}
    "2": {}
)");
    const Config first = loadConfigString(yaml, "a.yaml", none);
    const std::string d = describeConfig(first);
    for (const char* line : {"    enabled: false\n", "    disabled: pass_through\n", "    versions:\n",
                             "      sources: [path, header, accept, query]\n", "      path_param: version\n",
                             "      header: API-Version\n", "      media_type: pay\n", "      query_param: version\n",
                             "      default: 1\n", "      scope: separate\n", "      list:\n", "        1:\n",
                             "          upstream: legacy\n", "          rewrite: \"/legacy/{id}\"\n",
                             "          deprecated: true\n",
                             "          deprecation_date: \"Wed, 01 Jan 2025 00:00:00 GMT\"\n",
                             "          sunset: \"Thu, 01 Jan 2026 00:00:00 GMT\"\n",
                             "          link: \"https://docs.example.com/v1?lang=en\"\n", "        2:\n",
                             "          upstream: up\n", "          rewrite: \"\"\n"}) {
        BOOST_TEST(has(d, line), "missing: " << line);
    }
    const Config second = loadConfigString(d, "b.yaml", none);
    BOOST_TEST(describedBody(second) == describedBody(first));
    BOOST_TEST(second.routes.at(0).policy.versions.versions.at(0).sunset == "Thu, 01 Jan 2026 00:00:00 GMT");

    // Unversioned, enabled routes say so.
    const std::string plain = describeConfig(loadConfigString(configWith("", "/p"), "p.yaml", none));
    BOOST_TEST(has(plain, "    enabled: true\n    disabled: reject\n"));
    BOOST_TEST(has(plain, "    # versions: none (unversioned)\n"));
}

BOOST_AUTO_TEST_SUITE_END()
