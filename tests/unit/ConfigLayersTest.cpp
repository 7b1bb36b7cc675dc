// Configuration layers (issue 5): --set beats IDEMGATE_ environment variables beats the file beats the
// defaults; override values are YAML; every override problem names its source and key path.
#include "tests/unit/ConfigTestSupport.h"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace idem::config;
using namespace config_test;
namespace core = idem::core;

namespace {

/// One route `r` on /payments with its ttl and the server's max_threads optionally set in the file.
std::string layered(bool fileSetsValues) {
    std::string out = fileSetsValues ? "server: {max_threads: 100}\n" : "";
    out += "upstreams: {up: {url: http://127.0.0.1:9090}}\n"
           "routes:\n"
           "  r:\n"
           "    path: /payments\n"
           "    upstream: up\n";
    if (fileSetsValues) out += "    ttl: 12h\n";
    return out;
}

Config load(const std::string& yaml, ConfigOverrides o = {}) { return loadConfigString(yaml, "t.yaml", o); }

ConfigOverrides setOnly(std::vector<std::pair<std::string, std::string>> set) {
    return ConfigOverrides{.set = std::move(set), .environment = false};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ConfigLayersSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(setBeatsEnvironmentBeatsFileBeatsDefault) {
    using std::chrono::hours;
    // Defaults.
    BOOST_TEST(load(layered(false)).routes[0].policy.ttl.count() == hours(24) / std::chrono::milliseconds(1));
    BOOST_TEST(load(layered(false)).server.maxThreads == 256);
    // The file.
    BOOST_TEST(load(layered(true)).routes[0].policy.ttl.count() == hours(12) / std::chrono::milliseconds(1));
    BOOST_TEST(load(layered(true)).server.maxThreads == 100);
    // The environment over the file.
    const ScopedEnv ttl("IDEMGATE_ROUTES__R__TTL", "36h");
    const ScopedEnv threads("IDEMGATE_SERVER__MAX_THREADS", "200");
    BOOST_TEST(load(layered(true)).routes[0].policy.ttl.count() == hours(36) / std::chrono::milliseconds(1));
    BOOST_TEST(load(layered(true)).server.maxThreads == 200);
    BOOST_TEST(load(layered(false)).server.maxThreads == 200);
    // --set over the environment.
    const ConfigOverrides set{.set = {{"routes.r.ttl", "48h"}, {"server.max_threads", "300"}}, .environment = true};
    BOOST_TEST(load(layered(true), set).routes[0].policy.ttl.count() == hours(48) / std::chrono::milliseconds(1));
    BOOST_TEST(load(layered(true), set).server.maxThreads == 300);
    // The environment switched off: the file again.
    BOOST_TEST(load(layered(true), setOnly({})).routes[0].policy.ttl.count() == hours(12) / std::chrono::milliseconds(1));
    // A later --set of the same key wins.
    BOOST_TEST(load(layered(true), setOnly({{"server.max_threads", "7"}, {"server.max_threads", "8"}})).server.maxThreads ==
               8);
}

BOOST_AUTO_TEST_CASE(theFileLoaderAppliesTheLayersToo) {
    const ScratchDir dir;
    const std::string file = dir.write("idemgate.yaml", layered(true));
    const ScopedEnv listen("IDEMGATE_SERVER__LISTEN", "127.0.0.1:9000");
    const Config c = loadConfigFile(file);  // the one-argument call reads the environment
    BOOST_TEST(c.server.port == 9000);
    BOOST_TEST(c.sourceFile == file);
    const Config s = loadConfigFile(file, {.set = {{"server.listen", "127.0.0.1:9001"}}, .environment = true});
    BOOST_TEST(s.server.port == 9001);
    const Config off = loadConfigFile(file, {.set = {}, .environment = false});
    BOOST_TEST(off.server.port == 8080);
}

BOOST_AUTO_TEST_CASE(environmentNamesIgnoreCaseAndSpellDashesAsUnderscores) {
    const std::string yaml = "upstreams: {up: {url: http://127.0.0.1:9090}}\n"
                             "routes:\n"
                             "  pay-v2: {path: /v2/payments, upstream: up}\n"
                             "  Refunds: {path: /refunds, upstream: up}\n";
    const ScopedEnv a("IDEMGATE_ROUTES__PAY_V2__TTL", "2h");
    const ScopedEnv b("IDEMGATE_routes__refunds__Key_Header", "X-Key");
    const ScopedEnv c("IDEMGATE_Server__Listen", "127.0.0.1:9002");
    const Config cfg = load(yaml);
    BOOST_TEST(cfg.routes[0].policy.ttl.count() == 2 * 3'600'000);
    BOOST_TEST(cfg.routes[1].policy.keyHeader == "X-Key");
    BOOST_TEST(cfg.server.port == 9002);
    // --set names are exact.
    const ConfigError e = errorOf(yaml, setOnly({{"routes.refunds.ttl", "1h"}}));
    BOOST_TEST(e.file == "--set");
    BOOST_TEST(e.keyPath == "routes.refunds");
    BOOST_TEST(has(e.problem, "no route named \"refunds\" in the file (defined: pay-v2, Refunds)"));
}

BOOST_AUTO_TEST_CASE(variablesWithoutADoubleUnderscoreAreNotOverrides) {
    // Such as a password variable named by password_env.
    const ScopedEnv pw("IDEMGATE_TEST_LAYERS_PASSWORD", "s3cr3t");
    const ScopedEnv other("IDEMGATE_SERVER_LISTEN", "not an address");
    BOOST_CHECK_NO_THROW(load(layered(false)));
    const Config c = load("store: {type: redis, redis: {password_env: IDEMGATE_TEST_LAYERS_PASSWORD}}\n" +
                          layered(false));
    BOOST_TEST(c.store.redis.password == "s3cr3t");
    BOOST_TEST(c.server.port == 8080);
}

BOOST_AUTO_TEST_CASE(valuesAreYaml) {
    const std::string yaml = layered(true) + "    tenant_header: Authorization\n    fingerprint: {body: raw, headers: [X-A]}\n";
    const Config c = load(yaml, setOnly({
                                    {"routes.r.methods", "[POST, PATCH]"},
                                    {"routes.r.allow_set_cookie", "true"},
                                    {"routes.r.release_on", "[503]"},
                                    {"routes.r.fingerprint", "{body: json}"},  // replaces the whole section
                                    {"routes.r.tenant_header", ""},            // empty: none
                                    {"routes.r.path", "/v1/payments/{id}"},
                                    {"server.listen", "\"[::1]:9003\""},
                                    {"store.memory.shards", "8"},  // no store section in the file: made
                                }));
    const RouteConfig& r = c.routes[0];
    BOOST_TEST((r.matchMethods == std::vector<std::string>{"POST", "PATCH"}));
    BOOST_TEST(r.policy.allowSetCookie);
    BOOST_TEST((r.policy.releaseOn == std::vector<int>{503}));
    BOOST_TEST((r.policy.body == core::BodyMode::Json));
    BOOST_TEST(r.policy.fingerprintHeaders.empty());
    BOOST_TEST(r.policy.tenantHeader.empty());
    BOOST_TEST(r.path == "/v1/payments/{id}");
    BOOST_TEST(c.server.host == "::1");
    BOOST_TEST(c.server.port == 9003);
    BOOST_TEST(c.store.memory.shards == 8u);
}

BOOST_AUTO_TEST_CASE(overridesReachVersionsAndFlags) {
    const std::string yaml = configWith("versions:\n  list: {\"1\": {}, \"2\": {}}\n");
    const ScopedEnv flag("IDEMGATE_ROUTES__R__ENABLED", "false");
    const Config c = load(yaml, {.set = {{"routes.r.versions.list.1.deprecated", "true"},
                                         {"routes.r.versions.list.1.sunset", "2026-01-01"},
                                         {"routes.r.versions.scope", "separate"},
                                         {"routes.r.disabled", "pass_through"}},
                                 .environment = true});
    const RouteConfig& r = c.routes[0];
    BOOST_TEST(!r.enabled);
    BOOST_TEST((r.disabledAction == RouteConfig::DisabledAction::PassThrough));
    BOOST_TEST(!r.policy.versions.sharedScope);
    BOOST_TEST(r.policy.versions.versions[0].deprecated);
    BOOST_TEST(r.policy.versions.versions[0].sunset == "Thu, 01 Jan 2026 00:00:00 GMT");
    BOOST_TEST(!r.policy.versions.versions[1].deprecated);
    // A version not in the file is not added.
    const ConfigError e = errorOf(yaml, setOnly({{"routes.r.versions.list.3.deprecated", "true"}}));
    BOOST_TEST(e.keyPath == "routes.r.versions.list.3");
    BOOST_TEST(has(e.problem, "no version named \"3\" in the file (defined: 1, 2)"));
}

BOOST_AUTO_TEST_CASE(overrideErrorsNameTheirSource) {
    struct Case {
        std::string name;
        std::vector<std::pair<std::string, std::string>> set;
        std::string keyPath;
        std::string problem;
    };
    const std::string yaml = layered(true);
    const std::vector<Case> cases{
        {"unknown key", {{"routes.r.tll", "48h"}}, "routes.r.tll", "unknown key; allowed keys here: methods, path, upstream, idempotency"},
        {"unknown top key", {{"srever.listen", "x"}}, "srever", "unknown key; allowed keys here: server, log, store, upstreams, route_defaults, routes"},
        {"no such route", {{"routes.nope.ttl", "1h"}}, "routes.nope", "no route named \"nope\" in the file (defined: r); an override changes an entry, it does not add one"},
        {"no such upstream", {{"upstreams.other.url", "http://127.0.0.1:1"}}, "upstreams.other", "no upstream named \"other\" in the file (defined: up)"},
        {"password", {{"store.redis.password", "hunter2"}}, "store.redis.password", "a password does not belong in the config file: put the password in password_env or password_file"},
        {"route-only key in route_defaults", {{"route_defaults.path", "/x"}}, "route_defaults.path", "path belongs to each route, not to route_defaults"},
        {"below a value", {{"routes.r.ttl.hours", "1"}}, "routes.r.ttl.hours", "routes.r.ttl takes a value, not keys under it"},
        {"list item", {{"routes.r.release_on[0]", "503"}}, "routes.r.release_on[0]", "list items cannot be set one by one; set the whole list, like release_on=[429, 503]"},
        {"empty key", {{"routes..ttl", "1h"}}, "routes", "empty key in the key path; expected keys joined by \".\", like routes.payments.ttl"},
        {"invalid YAML", {{"routes.r.ttl", "a: b: c"}}, "routes.r.ttl", "the value \"a: b: c\" is not valid YAML"},
        {"value of the wrong form", {{"routes.r.ttl", "banana"}}, "routes.r.ttl", "\"banana\""},
        {"value of the wrong kind", {{"routes.r.ttl", "[1h]"}}, "routes.r.ttl", "expected a duration like 30s, got a list"},
        {"bad value inside a section", {{"routes.r.fingerprint", "{body: xml}"}}, "routes.r.fingerprint.body", "\"xml\" is not valid; expected one of: raw, json"},
        {"made section of the wrong store", {{"store.redis.address", "127.0.0.1:6379"}}, "store.redis", "this section is for store type redis, but store.type is memory"},
        {"relation broken by an override", {{"routes.r.ttl", "1s"}}, "routes.r.ttl", "ttl 1s is shorter than the lease 35s"},
    };
    std::vector<std::string> seen;
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT("case: " << c.name) {
            const ConfigError e = errorOf(yaml, setOnly(c.set));
            BOOST_TEST(e.file == "--set");
            BOOST_TEST(e.keyPath == c.keyPath);
            BOOST_TEST(has(e.problem, c.problem), "problem \"" << e.problem << "\" lacks \"" << c.problem << "\"");
            BOOST_TEST(e.line == 0);
            BOOST_TEST(std::string(e.what()) == "--set: " + c.keyPath + ": " + e.problem);
            seen.push_back(e.keyPath + ": " + e.problem);
        }
    }
    std::sort(seen.begin(), seen.end());
    BOOST_TEST((std::adjacent_find(seen.begin(), seen.end()) == seen.end()));

    // An error the override did not cause still names the file and its line.
    const ConfigError file = errorOf(layered(true) + "    lease: 0s\n", setOnly({{"routes.r.ttl", "48h"}}));
    BOOST_TEST(file.file == "test.yaml");
    BOOST_TEST(file.keyPath == "routes.r.lease");
    BOOST_TEST(file.line == 8);
}

BOOST_AUTO_TEST_CASE(environmentErrorsNameTheVariable) {
    const std::string yaml = layered(true);
    {
        const ScopedEnv v("IDEMGATE_ROUTES__R__TLL", "48h");
        const ConfigError e = errorOf(yaml);
        BOOST_TEST(e.file == "environment IDEMGATE_ROUTES__R__TLL");
        BOOST_TEST(e.keyPath == "routes.r.tll");
        BOOST_TEST(has(e.problem, "unknown key; allowed keys here: methods, path"));
        BOOST_TEST(std::string(e.what()) == "environment IDEMGATE_ROUTES__R__TLL: routes.r.tll: " + e.problem);
        // Not read when the environment layer is off.
        BOOST_CHECK_NO_THROW(load(yaml, setOnly({})));
    }
    {
        const ScopedEnv v("IDEMGATE_ROUTES__R__TTL", "soon");
        const ConfigError e = errorOf(yaml);
        BOOST_TEST(e.file == "environment IDEMGATE_ROUTES__R__TTL");
        BOOST_TEST(e.keyPath == "routes.r.ttl");
        // --set over a bad environment value: the --set value is the one used, and it is fine.
        BOOST_TEST(load(yaml, {.set = {{"routes.r.ttl", "2h"}}, .environment = true}).routes[0].policy.ttl.count() ==
                   7'200'000);
    }
    {
        const ScopedEnv v("IDEMGATE_STORE__REDIS__PASSWORD", "hunter2");
        const ConfigError e = errorOf(yaml);
        BOOST_TEST(e.keyPath == "store.redis.password");
        BOOST_TEST(has(e.problem, "put the password in password_env or password_file"));
    }
    {
        const ScopedEnv v("IDEMGATE_ROUTES____TTL", "1h");
        const ConfigError e = errorOf(yaml);
        BOOST_TEST(e.keyPath == "routes");
        BOOST_TEST(has(e.problem, "empty key in the key path; expected keys joined by \"__\", like routes__payments__ttl"));
    }
    {
        const ScopedEnv a("IDEMGATE_SERVER__LISTEN", "127.0.0.1:1");
        const ScopedEnv b("IDEMGATE_server__listen", "127.0.0.1:2");
        const ConfigError e = errorOf(yaml);
        BOOST_TEST(e.file == "environment IDEMGATE_server__listen");
        BOOST_TEST(e.keyPath == "server.listen");
        BOOST_TEST(has(e.problem, "also set by environment IDEMGATE_SERVER__LISTEN"));
    }
    {
        const std::string two = "upstreams: {up: {url: http://127.0.0.1:9090}}\n"
                                "routes: {a-b: {path: /a, upstream: up}, a_b: {path: /b, upstream: up}}\n";
        const ScopedEnv v("IDEMGATE_ROUTES__A_B__TTL", "1h");
        const ConfigError e = errorOf(two);
        BOOST_TEST(e.keyPath == "routes.a_b");
        BOOST_TEST(has(e.problem, "matches more than one route (a-b, a_b); use --set with the exact name"));
        // --set is exact, so it can tell them apart.
        BOOST_TEST(load(two, setOnly({{"routes.a_b.ttl", "2h"}})).routes[1].policy.ttl.count() == 7'200'000);
    }
    {
        const ScopedEnv v("IDEMGATE_SERVER__LISTEN__PORT", "1");
        const ConfigError e = errorOf(yaml);
        BOOST_TEST(e.keyPath == "server.listen.port");
        BOOST_TEST(has(e.problem, "server.listen takes a value, not keys under it"));
    }
}

BOOST_AUTO_TEST_CASE(overridesCannotReachIntoANonMapping) {
    const std::string yaml = "server: [1]\n" + layered(false);
    const ConfigError e = errorOf(yaml, setOnly({{"server.listen", "127.0.0.1:1"}}));
    BOOST_TEST(e.file == "--set");
    BOOST_TEST(e.keyPath == "server");
    BOOST_TEST(has(e.problem, "server is not a mapping in the file (it is a list), so no key under it can be set"));
}

BOOST_AUTO_TEST_CASE(setArgumentsSplitAtTheFirstEquals) {
    BOOST_TEST((parseSetArgument("routes.r.ttl=48h") == std::pair<std::string, std::string>{"routes.r.ttl", "48h"}));
    BOOST_TEST((parseSetArgument("a.b=c=d") == std::pair<std::string, std::string>{"a.b", "c=d"}));
    BOOST_TEST((parseSetArgument("a.b=") == std::pair<std::string, std::string>{"a.b", ""}));
    for (const char* bad : {"routes.r.ttl", "=48h", ""}) {
        try {
            parseSetArgument(bad);
            BOOST_ERROR("no ConfigError for " << bad);
        } catch (const ConfigError& e) {
            BOOST_TEST(e.file == "--set");
            BOOST_TEST(has(e.problem, "expected key.path=value, like routes.payments.ttl=48h; got \"" + std::string(bad) +
                                          "\""));
        }
    }
}

BOOST_AUTO_TEST_CASE(describeShowsTheEffectiveValuesWithSecretsMasked) {
    const ScopedEnv secret("IDEMGATE_TEST_LAYERS_PW", "s3cr3t-layers");
    const ScopedEnv pick("IDEMGATE_STORE__REDIS__PASSWORD_ENV", "IDEMGATE_TEST_LAYERS_PW");
    const Config c = load("store: {type: redis, redis: {address: \"127.0.0.1:6379\"}}\n" + layered(true),
                          {.set = {{"routes.r.ttl", "48h"}}, .environment = true});
    BOOST_TEST(c.store.redis.password == "s3cr3t-layers");
    const std::string d = describeConfig(c);
    BOOST_TEST(!has(d, "s3cr3t"));
    BOOST_TEST(has(d, "    password: \"********\""));
    BOOST_TEST(has(d, "    ttl: 48h\n"));
}

BOOST_AUTO_TEST_SUITE_END()
