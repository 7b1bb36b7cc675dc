// The config loader: every invalid input gives its own message naming the key path; valid input maps to
// the right struct values and defaults; the shipped demo and reference configs load.

#include "gateway/config/ConfigLoader.h"

#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace idem::config;
namespace core = idem::core;
using StoreType = idem::storage::StoreConfig::Type;

namespace {

constexpr const char* kUnsetVar = "IDEMGATE_TEST_SURELY_UNSET_VARIABLE";

/// A minimal valid config with extra lines added inside the route, inside the upstream, or at the top.
std::string indent(std::string_view lines, std::string_view by) {
    std::string out;
    std::size_t start = 0;
    while (start < lines.size()) {
        const std::size_t nl = lines.find('\n', start);
        const std::string_view line = lines.substr(start, nl == std::string_view::npos ? lines.npos : nl - start);
        out += std::string(by) + std::string(line) + "\n";
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    return out;
}

std::string config(std::string_view routeExtra = "", std::string_view top = "", std::string_view upstreamExtra = "") {
    std::string out(top);
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += "upstreams:\n  up:\n    url: http://127.0.0.1:9090\n" + indent(upstreamExtra, "    ");
    out += "routes:\n  r:\n    path: /v1/p\n    upstream: up\n" + indent(routeExtra, "    ");
    return out;
}
std::string route(std::string_view extra) { return config(extra); }
std::string top(std::string_view extra) { return config("", extra); }
std::string upstream(std::string_view extra) { return config("", "", extra); }
std::string withUrl(std::string_view url) {
    return "upstreams: {up: {url: \"" + std::string(url) + "\"}}\nroutes: {r: {path: /v1/p, upstream: up}}\n";
}
std::string withPath(std::string_view path) {
    return "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes: {r: {path: \"" + std::string(path) +
           "\", upstream: up}}\n";
}

struct BadCase {
    std::string name;
    std::string yaml;
    std::string keyPath;
    std::string problem;  ///< a substring of ConfigError::problem
};

std::vector<BadCase> badCases() {
    return {
        // Unknown keys at each level, with the allowed keys listed.
        {"unknown top key", top("serverr: {}"), "serverr", "unknown key; allowed keys here: server, log, store, upstreams, route_defaults, routes"},
        {"unknown server key", top("server: {listn: 127.0.0.1:80}"), "server.listn", "allowed keys here: listen, max_threads"},
        {"unknown log key", top("log: {lvl: info}"), "log.lvl", "allowed keys here: level, access_log"},
        {"unknown store key", top("store: {kind: memory}"), "store.kind", "allowed keys here: type, max_response_size"},
        {"unknown memory key", top("store: {memory: {max: 1}}"), "store.memory.max", "allowed keys here: max_records, shards, sweep_interval"},
        {"unknown redis key", top("store: {type: redis, redis: {adress: x}}"), "store.redis.adress", "allowed keys here: address, password_env"},
        {"cluster key in redis", top("store: {type: redis, redis: {nodes: [a:1]}}"), "store.redis.nodes", "nodes is for store type redis-cluster"},
        {"unknown postgres key", top("store: {type: postgres, postgres: {url: x, host: y}}"), "store.postgres.host", "allowed keys here: url,"},
        {"unknown upstream key", upstream("retries: 3"), "upstreams.up.retries", "allowed keys here: url, endpoints, balance, timeouts, connect_timeout, timeout, pool, pool_size, health, passive, breaker, retry, dns_ttl, tls"},
        {"unknown route key", route("tll: 1h"), "routes.r.tll", "allowed keys here: methods, path, upstream, idempotency"},
        {"unknown fingerprint key", route("fingerprint: {bdy: json}"), "routes.r.fingerprint.bdy", "allowed keys here: body, query, headers"},
        {"unknown route_defaults key", top("route_defaults: {ttl: 48h, colour: red}"), "route_defaults.colour", "allowed keys here: idempotency,"},
        {"path in route_defaults", top("route_defaults: {path: /x}"), "route_defaults.path", "belongs to each route"},
        {"merge key", route("<<: {ttl: 1h}"), "routes.r.<<", "merge keys"},
        // Wrong types name the expected form.
        {"section not a map", top("server: [1, 2]"), "server", "expected a mapping with keys: listen,"},
        {"upstreams not a map", "upstreams: [a]\nroutes: {r: {path: /p, upstream: a}}\n", "upstreams", "expected a mapping of names"},
        {"int not a number", top("server: {max_threads: lots}"), "server.max_threads", "\"lots\" is not a whole number; expected a whole number from 1 to 65535"},
        {"int out of range", top("server: {max_threads: 0}"), "server.max_threads", "out of range; expected a whole number from 1 to 65535"},
        {"int fraction", top("server: {max_queued: 1.5}"), "server.max_queued", "not a whole number"},
        {"negative keep-alive", top("server: {max_keep_alive_requests: -1}"), "server.max_keep_alive_requests", "from 0 to"},
        {"bare number duration", route("ttl: 30"), "routes.r.ttl", "needs a unit"},
        {"duration as list", route("ttl: [1h]"), "routes.r.ttl", "expected a duration like 30s, got a list"},
        {"empty duration", route("ttl:"), "routes.r.ttl", "expected a duration like 30s, got nothing"},
        {"size garbage", route("max_body: lots"), "routes.r.max_body", "expected a size like"},
        {"bool yes", top("log: {access_log: yes}"), "log.access_log", "expected true or false"},
        {"string as map", route("key_header: {a: b}"), "routes.r.key_header", "expected a header name like Idempotency-Key, got a mapping"},
        // Enums.
        {"bad idempotency", route("idempotency: maybe"), "routes.r.idempotency", "\"maybe\" is not valid; expected one of: required, optional, off"},
        {"bad log level", top("log: {level: verbose}"), "log.level", "expected one of: error, warning, info, debug"},
        {"bad store type", top("store: {type: mongo}"), "store.type", "expected one of: memory, redis, redis-cluster, postgres"},
        {"bad body mode", route("fingerprint: {body: xml}"), "routes.r.fingerprint.body", "expected one of: raw, json"},
        {"bad on_in_flight", route("on_in_flight: queue"), "routes.r.on_in_flight", "expected one of: reject, wait"},
        {"bad forward_key", route("forward_key: yes"), "routes.r.forward_key", "expected one of: derived, client, none"},
        // Lease, ttl and their relations.
        {"lease zero (B05)", route("lease: 0s"), "routes.r.lease", "must be greater than 0"},
        {"lease below upstream timeout", route("lease: 10s"), "routes.r.lease", "lease 10s is shorter than the upstream deadline 30s (timeouts.total of upstream \"up\""},
        {"default lease below timeout", top("route_defaults: {lease: 20s}"), "route_defaults.lease", "shorter than the upstream deadline 30s (timeouts.total of upstream \"up\", which bounds the whole call: pool wait, connect attempts, retries with backoff and the response) (for route \"r\")"},
        {"ttl below lease", route("ttl: 20s\nlease: 40s"), "routes.r.ttl", "ttl 20s is shorter than the lease 40s"},
        {"ttl below default lease", route("ttl: 30s"), "routes.r.ttl", "ttl 30s is shorter than the lease 35s"},
        {"default ttl below default lease", upstream("timeout: 30h"), "routes.r.ttl", "the default ttl 24h is shorter than the lease 30h5s"},
        {"ttl zero", route("ttl: 0ms"), "routes.r.ttl", "must be greater than 0"},
        {"wait_max zero", route("wait_max: 0s"), "routes.r.wait_max", "must be greater than 0"},
        {"stored response above store limit", config("max_stored_response: 2MiB", "store: {max_response_size: 1MiB}"), "routes.r.max_stored_response", "2MiB is larger than store.max_response_size 1MiB"},
        // Upstreams and their URLs.
        {"missing upstream", "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes: {r: {path: /p, upstream: nope}}\n", "routes.r.upstream", "no upstream named \"nope\"; defined: up"},
        {"no upstreams", "routes: {r: {path: /p, upstream: up}}\n", "upstreams", "at least one upstream"},
        {"empty upstreams", "upstreams: {}\nroutes: {r: {path: /p, upstream: up}}\n", "upstreams", "at least one upstream"},
        {"upstream without url", "upstreams: {up: {timeout: 5s}}\nroutes: {r: {path: /p, upstream: up}}\n", "upstreams.up.url", "every upstream needs a url"},
        {"other scheme", withUrl("ftp://127.0.0.1"), "upstreams.up.url", "unsupported scheme \"ftp\""},
        {"url without scheme", withUrl("127.0.0.1:9090"), "upstreams.up.url", "is not a URL"},
        {"url port zero", withUrl("http://127.0.0.1:0"), "upstreams.up.url", "port \"0\" is not a number from 1 to 65535"},
        {"url port too big", withUrl("http://127.0.0.1:65536"), "upstreams.up.url", "from 1 to 65535"},
        {"url bad host", withUrl("http://pay_ments:80"), "upstreams.up.url", "not a valid host name"},
        {"url bad ipv4", withUrl("http://300.1.1.1:80"), "upstreams.up.url", "not an IPv4 address"},
        {"url query", withUrl("http://127.0.0.1:9090/a?b=c"), "upstreams.up.url", "query or fragment"},
        {"url user info", withUrl("http://u:p@127.0.0.1:9090"), "upstreams.up.url", "user info"},
        {"upstream pool zero", upstream("pool_size: 0"), "upstreams.up.pool_size", "from 1 to 65535"},
        {"redis pipeline too many", top("store: {type: redis, redis: {pipeline_connections: 65}}"), "store.redis.pipeline_connections", "from 0 to 64"},
        {"postgres pipeline too many", top("store: {type: postgres, postgres: {url: \"postgresql://h/d\", pipeline_connections: 65}}"), "store.postgres.pipeline_connections", "from 0 to 64"},
        {"redis replay read", top("store: {type: redis, redis: {replay_read: sometimes}}"), "store.redis.replay_read", "expected one of: auto, always, never"},
        {"upstream timeout zero", upstream("timeout: 0s"), "upstreams.up.timeout", "must be greater than 0"},
        {"bad upstream name", "upstreams: {\"up stream\": {url: http://127.0.0.1:1}}\nroutes: {r: {path: /p, upstream: up}}\n", "upstreams.up stream", "upstream names may use"},
        // Listen addresses.
        {"listen without port", top("server: {listen: 127.0.0.1}"), "server.listen", "missing the port"},
        {"listen host name", top("server: {listen: \"localhost:8080\"}"), "server.listen", "not an IP address"},
        {"listen port range", top("server: {listen: \"127.0.0.1:70000\"}"), "server.listen", "from 1 to 65535"},
        {"listen bare ipv6", top("server: {listen: \"::1:8080\"}"), "server.listen", "brackets"},
        {"listen open bracket", top("server: {listen: \"[::1:8080\"}"), "server.listen", "missing ']'"},
        {"listen bad ipv6", top("server: {listen: \"[::g]:8080\"}"), "server.listen", "not an IPv6 address"},
        // Routes.
        {"no routes", "upstreams: {up: {url: http://127.0.0.1:9090}}\n", "routes", "at least one route"},
        {"empty routes", "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes: {}\n", "routes", "at least one route"},
        {"route without path", "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes: {r: {upstream: up}}\n", "routes.r.path", "every route needs a path"},
        {"route without upstream", "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes: {r: {path: /p}}\n", "routes.r.upstream", "every route needs an upstream"},
        {"bad route id", "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes: {\"a.b\": {path: /p, upstream: up}}\n", "routes.a.b", "route ids may use"},
        {"path relative", withPath("v1/p"), "routes.r.path", "invalid path pattern \"v1/p\": a pattern must start with '/'; expected literal segments and {name} segments"},
        {"path unclosed brace", withPath("/v1/{id"), "routes.r.path", "unclosed '{'"},
        {"path empty segment", withPath("/v1//p"), "routes.r.path", "empty segment"},
        {"path trailing slash", withPath("/v1/p/"), "routes.r.path", "empty segment in '/v1/p/' (no '//' and no trailing '/')"},
        {"path empty name", withPath("/v1/{}"), "routes.r.path", "parameter name in '{}' must start with a letter or '_'"},
        {"path bad name", withPath("/v1/{1d}"), "routes.r.path", "parameter name in '{1d}' must start with a letter"},
        {"path repeated name", withPath("/a/{id}/{id}"), "routes.r.path", "parameter 'id' appears twice"},
        {"path brace mid-segment", withPath("/a/x{id}"), "routes.r.path", "invalid character in segment 'x{id}' (a parameter is '{name}' at the start of a segment)"},
        {"path stray close", withPath("/a/x}"), "routes.r.path", "invalid character in segment 'x}'"},
        {"path rest not last", withPath("/{rest...}/x"), "routes.r.path", "must be the last segment"},
        {"path query", withPath("/a?b"), "routes.r.path", "invalid character in segment 'a?b'"},
        {"path space", withPath("/a b"), "routes.r.path", "invalid character in segment 'a b'"},
        {"methods lower case", route("methods: [post]"), "routes.r.methods[0]", "use POST instead of post"},
        {"methods empty", route("methods: []"), "routes.r.methods", "list at least one method"},
        {"methods repeated", route("methods: [POST, PUT, POST]"), "routes.r.methods[2]", "POST is listed twice"},
        {"idempotent method bad", route("idempotent_methods: [POST, \"PO ST\"]"), "routes.r.idempotent_methods[1]", "not a valid method name"},
        {"bad key header", route("key_header: \"Idem Key\""), "routes.r.key_header", "not a valid header name"},
        {"bad tenant header", route("tenant_header: \"Authorization:\""), "routes.r.tenant_header", "not a valid header name"},
        {"bad fingerprint header", route("fingerprint: {headers: [X-A, \"x y\"]}"), "routes.r.fingerprint.headers[1]", "not a valid header name"},
        {"repeated fingerprint header", route("fingerprint: {headers: [X-A, x-a]}"), "routes.r.fingerprint.headers[1]", "listed twice"},
        {"release_on 2xx", route("release_on: [408, 200]"), "routes.r.release_on[1]", "\"200\" is not allowed; release_on takes error statuses from 400 to 599"},
        {"release_on 600", route("release_on: [600]"), "routes.r.release_on[0]", "from 400 to 599"},
        {"release_on text", route("release_on: [busy]"), "routes.r.release_on[0]", "from 400 to 599"},
        {"release_on repeated", route("release_on: [503, 503]"), "routes.r.release_on[1]", "503 is listed twice"},
        {"release_on scalar", route("release_on: 503"), "routes.r.release_on", "expected a list of HTTP statuses"},
        // Store sections and secrets.
        {"other-store section", top("store: {type: memory, redis: {address: 127.0.0.1:6379}}"), "store.redis", "this section is for store type redis, but store.type is memory"},
        {"other-store section by default", top("store: {postgres: {url: x}}"), "store.postgres", "but store.type is memory"},
        {"redis section for cluster", top("store: {type: redis-cluster, redis: {address: 127.0.0.1:6379}}"), "store.redis", "store.type is redis-cluster"},
        {"plain redis password", top("store: {type: redis, redis: {password: hunter2}}"), "store.redis.password", "put the password in password_env or password_file"},
        {"plain postgres password", top("store: {type: postgres, postgres: {url: x, password: hunter2}}"), "store.postgres.password", "put the password in password_env or password_file"},
        {"password in postgres uri", top("store: {type: postgres, postgres: {url: \"postgresql://idem:hunter2@db/idem\"}}"), "store.postgres.url", "put the password in password_env or password_file"},
        {"password in postgres keywords", top("store: {type: postgres, postgres: {url: \"host=db password=hunter2\"}}"), "store.postgres.url", "not in the url"},
        {"missing env var", top(std::string("store: {type: redis, redis: {password_env: ") + kUnsetVar + "}}"), "store.redis.password_env", std::string("environment variable ") + kUnsetVar + " is not set"},
        {"bad env var name", top("store: {type: redis, redis: {password_env: \"A-B\"}}"), "store.redis.password_env", "not a valid environment variable name"},
        {"unreadable password file", top("store: {type: postgres, postgres: {url: x, password_file: /nonexistent/idemgate/pw}}"), "store.postgres.password_file", "cannot read /nonexistent/idemgate/pw"},
        {"env and file", top("store: {type: redis, redis: {password_env: A, password_file: /x}}"), "store.redis.password_file", "not both"},
        {"cluster without nodes", top("store: {type: redis-cluster}"), "store.redis_cluster.nodes", "needs at least one node"},
        {"cluster empty nodes", top("store: {type: redis-cluster, redis_cluster: {nodes: []}}"), "store.redis_cluster.nodes", "needs at least one node"},
        {"cluster bad node", top("store: {type: redis-cluster, redis_cluster: {nodes: [\"127.0.0.1:7000\", \"127.0.0.1\"]}}"), "store.redis_cluster.nodes[1]", "missing the port"},
        {"postgres without url", top("store: {type: postgres}"), "store.postgres.url", "a postgres store needs url"},
        {"postgres bad table", top("store: {type: postgres, postgres: {url: x, table: \"drop table;\"}}"), "store.postgres.table", "not a valid table name"},
        {"redis prefix braces", top("store: {type: redis, redis: {key_prefix: \"a{b}\"}}"), "store.redis.key_prefix", "must not contain '{' or '}'"},
        {"redis address", top("store: {type: redis, redis: {address: \"127.0.0.1:0\"}}"), "store.redis.address", "from 1 to 65535"},
        {"memory shards zero", top("store: {memory: {shards: 0}}"), "store.memory.shards", "from 1 to 65536"},
        {"store response size zero", top("store: {max_response_size: 0}"), "store.max_response_size", "must be greater than 0"},
        // Duplicates and document structure.
        {"duplicate key", route("ttl: 1h\nttl: 2h"), "routes.r.ttl", "duplicate key (first given at line 8)"},
        {"duplicate route id", "upstreams: {up: {url: http://127.0.0.1:9090}}\nroutes:\n  r: {path: /a, upstream: up}\n  r: {path: /b, upstream: up}\n", "routes.r", "duplicate key (first given at line 3)"},
        {"duplicate top key in JSON", "{\"routes\": {}, \"routes\": {}}", "routes", "duplicate key"},
        {"top level list", "- a\n- b\n", "", "expected a mapping with keys server, log"},
        {"invalid YAML", "upstreams: [1, 2\n", "", "invalid YAML"},
        {"two documents", config() + "---\nserver: {}\n", "", "only one YAML document"},
    };
}

struct Caught {
    bool thrown = false;
    ConfigError error{"", "", ""};
};

Caught loadBad(const std::string& yaml) {
    Caught c;
    try {
        loadConfigString(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        c.thrown = true;
        c.error = e;
    }
    return c;
}

ConfigError expectError(const std::string& yaml) {
    const Caught c = loadBad(yaml);
    BOOST_TEST_INFO("yaml:\n" << yaml);
    BOOST_REQUIRE(c.thrown);
    return c.error;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

std::string sourceDir() {
    const char* dir = std::getenv("IDEM_SOURCE_DIR");
    BOOST_TEST_REQUIRE(dir != nullptr, "IDEM_SOURCE_DIR is not set: run through ctest, or set it to the source root");
    return dir;
}

/// A scratch directory removed at the end of the test.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               ("idemgate-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& content) const {
        std::ofstream(path / name, std::ios::binary) << content;
        return (path / name).string();
    }
};

/// Sets an environment variable for the life of the object.
struct EnvVar {
    std::string name;
    EnvVar(std::string n, const std::string& value) : name(std::move(n)) { ::setenv(name.c_str(), value.c_str(), 1); }
    ~EnvVar() { ::unsetenv(name.c_str()); }
};

/// describeConfig without its first line (which names the source file).
std::string describeBody(const Config& c) {
    const std::string d = describeConfig(c);
    return d.substr(d.find('\n') + 1);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ConfigLoaderSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(minimalConfigBaseIsValid) {
    // Every bad case is a small change to this config, so it must load as it is.
    BOOST_CHECK_NO_THROW(loadConfigString(config(), "test.yaml"));
}

BOOST_AUTO_TEST_CASE(invalidInputsNameKeyPathAndProblem) {
    ::unsetenv(kUnsetVar);
    for (const auto& c : badCases()) {
        BOOST_TEST_CONTEXT("case: " << c.name << "\n" << c.yaml) {
            const Caught got = loadBad(c.yaml);
            BOOST_TEST(got.thrown);
            if (!got.thrown) continue;
            const ConfigError& e = got.error;
            BOOST_TEST(e.file == "test.yaml");
            BOOST_TEST(e.keyPath == c.keyPath);
            BOOST_TEST(contains(e.problem, c.problem), "problem \"" << e.problem << "\" lacks \"" << c.problem << "\"");
            BOOST_TEST(e.line > 0);
            BOOST_TEST(e.column > 0);
            const std::string prefix = "test.yaml:" + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " +
                                       (c.keyPath.empty() ? "" : c.keyPath + ": ");
            BOOST_TEST(std::string(e.what()) == prefix + e.problem);
        }
    }
}

BOOST_AUTO_TEST_CASE(everyBadCaseHasItsOwnMessage) {
    ::unsetenv(kUnsetVar);
    std::vector<std::string> seen;
    for (const auto& c : badCases()) {
        const Caught got = loadBad(c.yaml);
        BOOST_TEST_REQUIRE(got.thrown, c.name);
        seen.push_back(got.error.keyPath + ": " + got.error.problem);
    }
    std::sort(seen.begin(), seen.end());
    const auto dup = std::adjacent_find(seen.begin(), seen.end());
    BOOST_TEST((dup == seen.end()), "two cases share the message: " << (dup == seen.end() ? "" : *dup));
}

BOOST_AUTO_TEST_CASE(postgresUrlPasswordForms) {
    // Also a URI query parameter; a user or database merely named like "password" is fine.
    const ConfigError e = expectError(
        top("store: {type: postgres, postgres: {url: \"postgresql://db/idem?sslmode=disable&password=x\"}}"));
    BOOST_TEST(e.keyPath == "store.postgres.url");
    BOOST_TEST(contains(e.problem, "not in the url (password=...)"));
    const Config c = loadConfigString(
        top("store: {type: postgres, postgres: {url: \"postgresql://password@db/password?x=1\"}}"), "t.yaml");
    BOOST_TEST(c.store.postgres.url == "postgresql://password@db/password?x=1");
}

BOOST_AUTO_TEST_CASE(whatCarriesLineAndColumn) {
    const std::string yaml =
        "upstreams:\n"
        "  up:\n"
        "    url: http://127.0.0.1:9090\n"
        "routes:\n"
        "  r:\n"
        "    path: /v1/p\n"
        "    upstream: up\n"
        "    ttl: 5\n";
    const ConfigError e = expectError(yaml);
    BOOST_TEST(e.line == 8);
    BOOST_TEST(e.column == 10);
    BOOST_TEST(std::string(e.what()).starts_with("test.yaml:8:10: routes.r.ttl: \"5\": needs a unit"));

    // Unknown keys point at the key itself.
    const ConfigError u = expectError(route("ttl: 1h\ncolour: red"));
    BOOST_TEST(u.keyPath == "routes.r.colour");
    BOOST_TEST(u.line == 9);
    BOOST_TEST(u.column == 5);
}

BOOST_AUTO_TEST_CASE(emptyAndUnreadableSources) {
    const ConfigError empty = expectError("# nothing but a comment\n");
    BOOST_TEST(contains(empty.problem, "empty"));
    BOOST_TEST(empty.line == 0);
    BOOST_TEST(std::string(empty.what()) == "test.yaml: " + empty.problem);

    try {
        loadConfigFile("/nonexistent/idemgate.yaml");
        BOOST_FAIL("no ConfigError for a missing file");
    } catch (const ConfigError& e) {
        BOOST_TEST(e.file == "/nonexistent/idemgate.yaml");
        BOOST_TEST(e.keyPath.empty());
        BOOST_TEST(contains(e.what(), "/nonexistent/idemgate.yaml: cannot read the config file: No such file"));
    }
    const TempDir dir;
    try {
        loadConfigFile(dir.path.string());
        BOOST_FAIL("no ConfigError for a directory");
    } catch (const ConfigError& e) {
        BOOST_TEST(contains(e.problem, "cannot read the config file"));
    }
}

BOOST_AUTO_TEST_CASE(defaultsOfAMinimalConfig) {
    const Config c = loadConfigString(config(), "min.yaml");
    BOOST_TEST(c.sourceFile == "min.yaml");
    BOOST_TEST(c.server.host == "127.0.0.1");
    BOOST_TEST(c.server.port == 8080);
    BOOST_TEST(c.server.maxThreads == 256);
    BOOST_TEST(c.server.maxQueued == 1024);
    BOOST_TEST(c.server.keepAliveTimeout.count() == 15'000);
    BOOST_TEST(c.server.maxKeepAliveRequests == 0);
    BOOST_TEST(c.server.receiveTimeout.count() == 30'000);
    BOOST_TEST(c.server.sendTimeout.count() == 30'000);
    BOOST_TEST((c.log.level == LogConfig::Level::Information));
    BOOST_TEST(c.log.accessLog);
    BOOST_TEST((c.store.type == StoreType::Memory));
    BOOST_TEST(c.store.limits.maxResponseBytes == 1u << 20);
    BOOST_TEST(c.store.memory.maxRecords == 1'000'000u);
    BOOST_TEST(c.store.memory.shards == 64u);
    BOOST_TEST(c.store.memory.sweepInterval.count() == 1'000);

    BOOST_REQUIRE_EQUAL(c.upstreams.size(), 1u);
    const UpstreamConfig& u = c.upstreams[0];
    BOOST_TEST(u.name == "up");
    BOOST_REQUIRE_EQUAL(u.endpoints.size(), 1u);
    BOOST_TEST(u.endpoints[0].scheme == "http");
    BOOST_TEST(u.endpoints[0].host == "127.0.0.1");
    BOOST_TEST(u.endpoints[0].port == 9090);
    BOOST_TEST(u.endpoints[0].basePath == "");
    BOOST_TEST(u.endpoints[0].weight == 1u);
    BOOST_TEST(u.timeouts.connect.count() == 2'000);
    BOOST_TEST(u.timeouts.total.count() == 30'000);
    BOOST_TEST(!u.timeouts.send.has_value());
    BOOST_TEST(!u.timeouts.firstByte.has_value());
    BOOST_TEST(u.pool.maxIdle == 64u);

    BOOST_REQUIRE_EQUAL(c.routes.size(), 1u);
    const RouteConfig& r = c.routes[0];
    BOOST_TEST(r.id == "r");
    BOOST_TEST(r.matchMethods.empty());
    BOOST_TEST(r.path == "/v1/p");
    BOOST_TEST(r.upstream == "up");
    const core::RoutePolicy& p = r.policy;
    BOOST_TEST(p.routeId == "r");
    BOOST_TEST((p.mode == core::IdempotencyMode::Required));
    BOOST_TEST((p.methods == std::vector<std::string>{"POST", "PATCH"}));
    BOOST_TEST(p.keyHeader == "Idempotency-Key");
    BOOST_TEST((p.keyFormat == core::KeyFormat::Default));
    BOOST_TEST(p.tenantHeader.empty());
    BOOST_TEST((p.body == core::BodyMode::Raw));
    BOOST_TEST(p.fingerprintQuery);
    BOOST_TEST(p.fingerprintHeaders.empty());
    BOOST_TEST(p.maxBody == 1u << 20);
    BOOST_TEST(p.maxStoredResponse == 1u << 20);
    BOOST_TEST(p.ttl.count() == 86'400'000);
    BOOST_TEST(p.lease.count() == 35'000);  // upstream timeout 30s + 5s
    BOOST_TEST((p.releaseOn == std::vector<int>{408, 425, 429, 503}));
    BOOST_TEST((p.onUnknown == core::OnUnknown::Hold));
    BOOST_TEST((p.onInFlight == core::OnInFlight::Reject));
    BOOST_TEST(p.waitMax.count() == 10'000);
    BOOST_TEST((p.storeFailure == core::StoreFailure::Closed));
    BOOST_TEST((p.forwardKey == core::ForwardKey::Derived));
    BOOST_TEST(p.forwardKeyHeader == "Idempotency-Key");
    BOOST_TEST(!p.allowSetCookie);
}

BOOST_AUTO_TEST_CASE(defaultLeaseFollowsEachRoutesUpstream) {
    const std::string yaml =
        "upstreams:\n"
        "  fast: {url: http://127.0.0.1:1, timeout: 2s}\n"
        "  slow: {url: http://127.0.0.1:2, timeout: 1m30s}\n"
        "routes:\n"
        "  a: {path: /a, upstream: fast}\n"
        "  b: {path: /b, upstream: slow}\n"
        "  c: {path: /c, upstream: slow, lease: 2m}\n";
    const Config c = loadConfigString(yaml, "t.yaml");
    BOOST_REQUIRE_EQUAL(c.routes.size(), 3u);
    BOOST_TEST(c.routes[0].policy.lease.count() == 7'000);
    BOOST_TEST(c.routes[1].policy.lease.count() == 95'000);
    BOOST_TEST(c.routes[2].policy.lease.count() == 120'000);
    // A lease equal to the upstream timeout is allowed (the bound is inclusive).
    BOOST_CHECK_NO_THROW(loadConfigString(route("lease: 30s"), "t.yaml"));
}

BOOST_AUTO_TEST_CASE(everyKeyMapsToItsField) {
    const std::string yaml = R"(
server:
  listen: "[::1]:9000"
  max_threads: 16
  max_queued: 32
  keep_alive_timeout: 5s
  max_keep_alive_requests: 100
  receive_timeout: 10s
  send_timeout: 12s
log:
  level: debug
  access_log: false
store:
  type: memory
  max_response_size: 2MiB
  memory: {max_records: 500, shards: 8, sweep_interval: 250ms}
upstreams:
  pay:
    url: http://pay.internal:8081/api/
    connect_timeout: 1s
    timeout: 1m
    pool_size: 4
routes:
  capture:
    methods: [POST, PUT]
    path: /v1/payments/{id}:capture
    upstream: pay
    idempotency: optional
    idempotent_methods: [POST, PUT, DELETE]
    key_header: X-Idem-Key
    key_format: uuid
    tenant_header: X-Api-Key
    fingerprint: {body: json, query: false, headers: [X-Account, Content-Type]}
    max_body: 64KiB
    max_stored_response: 2MiB
    ttl: 7d
    lease: 1h30m
    release_on: [429, 503]
    on_unknown: release
    on_in_flight: wait
    wait_max: 3s
    store_failure: open
    forward_key: client
    forward_key_header: X-Upstream-Key
    allow_set_cookie: true
)";
    const Config c = loadConfigString(yaml, "full.yaml");
    BOOST_TEST(c.server.host == "::1");
    BOOST_TEST(c.server.port == 9000);
    BOOST_TEST(c.server.maxThreads == 16);
    BOOST_TEST(c.server.maxQueued == 32);
    BOOST_TEST(c.server.keepAliveTimeout.count() == 5'000);
    BOOST_TEST(c.server.maxKeepAliveRequests == 100);
    BOOST_TEST(c.server.receiveTimeout.count() == 10'000);
    BOOST_TEST(c.server.sendTimeout.count() == 12'000);
    BOOST_TEST((c.log.level == LogConfig::Level::Debug));
    BOOST_TEST(!c.log.accessLog);
    BOOST_TEST(c.store.limits.maxResponseBytes == 2u << 20);
    BOOST_TEST(c.store.memory.maxRecords == 500u);
    BOOST_TEST(c.store.memory.shards == 8u);
    BOOST_TEST(c.store.memory.sweepInterval.count() == 250);

    const UpstreamConfig* u = c.findUpstream("pay");
    BOOST_REQUIRE(u != nullptr);
    BOOST_TEST(u->endpoints.at(0).host == "pay.internal");
    BOOST_TEST(u->endpoints.at(0).port == 8081);
    BOOST_TEST(u->endpoints.at(0).basePath == "/api");
    BOOST_TEST(u->timeouts.connect.count() == 1'000);  // connect_timeout: the older spelling
    BOOST_TEST(u->timeouts.total.count() == 60'000);   // timeout: the older spelling
    BOOST_TEST(u->pool.maxIdle == 4u);                 // pool_size: the older spelling

    const RouteConfig& r = c.routes.at(0);
    BOOST_TEST(r.id == "capture");
    BOOST_TEST((r.matchMethods == std::vector<std::string>{"POST", "PUT"}));
    BOOST_TEST(r.path == "/v1/payments/{id}:capture");
    BOOST_TEST(r.upstream == "pay");
    const core::RoutePolicy& p = r.policy;
    BOOST_TEST(p.routeId == "capture");
    BOOST_TEST((p.mode == core::IdempotencyMode::Optional));
    BOOST_TEST((p.methods == std::vector<std::string>{"POST", "PUT", "DELETE"}));
    BOOST_TEST(p.keyHeader == "X-Idem-Key");
    BOOST_TEST((p.keyFormat == core::KeyFormat::Uuid));
    BOOST_TEST(p.tenantHeader == "X-Api-Key");
    BOOST_TEST((p.body == core::BodyMode::Json));
    BOOST_TEST(!p.fingerprintQuery);
    BOOST_TEST((p.fingerprintHeaders == std::vector<std::string>{"X-Account", "Content-Type"}));
    BOOST_TEST(p.maxBody == 64u * 1024);
    BOOST_TEST(p.maxStoredResponse == 2u << 20);
    BOOST_TEST(p.ttl.count() == 7 * 86'400'000LL);
    BOOST_TEST(p.lease.count() == 5'400'000);
    BOOST_TEST((p.releaseOn == std::vector<int>{429, 503}));
    BOOST_TEST((p.onUnknown == core::OnUnknown::Release));
    BOOST_TEST((p.onInFlight == core::OnInFlight::Wait));
    BOOST_TEST(p.waitMax.count() == 3'000);
    BOOST_TEST((p.storeFailure == core::StoreFailure::Open));
    BOOST_TEST((p.forwardKey == core::ForwardKey::Client));
    BOOST_TEST(p.forwardKeyHeader == "X-Upstream-Key");
    BOOST_TEST(p.allowSetCookie);
}

BOOST_AUTO_TEST_CASE(routeDefaultsApplyAndRoutesOverride) {
    const std::string yaml = R"(
upstreams:
  up: {url: http://127.0.0.1:9090, timeout: 10s}
route_defaults:
  ttl: 48h
  lease: 20s
  on_in_flight: wait
  tenant_header: Authorization
  fingerprint: {body: json, headers: [X-A]}
  release_on: [503]
routes:
  zeta:
    path: /z
    upstream: up
  alpha:
    path: /a
    upstream: up
    ttl: 1h
    lease: 15s
    tenant_header: ""
    fingerprint: {query: false}
    release_on: []
  mid:
    path: /m
    upstream: up
    on_in_flight: reject
    fingerprint: {headers: []}
)";
    const Config c = loadConfigString(yaml, "t.yaml");
    BOOST_REQUIRE_EQUAL(c.routes.size(), 3u);
    // File order is kept: first match wins.
    BOOST_TEST(c.routes[0].id == "zeta");
    BOOST_TEST(c.routes[1].id == "alpha");
    BOOST_TEST(c.routes[2].id == "mid");

    const core::RoutePolicy& z = c.routes[0].policy;  // everything from route_defaults
    BOOST_TEST(z.routeId == "zeta");
    BOOST_TEST(z.ttl.count() == 48 * 3'600'000LL);
    BOOST_TEST(z.lease.count() == 20'000);  // route_defaults' lease, not timeout + 5s
    BOOST_TEST((z.onInFlight == core::OnInFlight::Wait));
    BOOST_TEST(z.tenantHeader == "Authorization");
    BOOST_TEST((z.body == core::BodyMode::Json));
    BOOST_TEST(z.fingerprintQuery);
    BOOST_TEST((z.fingerprintHeaders == std::vector<std::string>{"X-A"}));
    BOOST_TEST((z.releaseOn == std::vector<int>{503}));

    const core::RoutePolicy& a = c.routes[1].policy;  // route values win; fingerprint merges key by key
    BOOST_TEST(a.routeId == "alpha");
    BOOST_TEST(a.ttl.count() == 3'600'000);
    BOOST_TEST(a.lease.count() == 15'000);
    BOOST_TEST(a.tenantHeader.empty());
    BOOST_TEST((a.body == core::BodyMode::Json));
    BOOST_TEST(!a.fingerprintQuery);
    BOOST_TEST((a.fingerprintHeaders == std::vector<std::string>{"X-A"}));
    BOOST_TEST(a.releaseOn.empty());
    BOOST_TEST((a.onInFlight == core::OnInFlight::Wait));

    const core::RoutePolicy& m = c.routes[2].policy;
    BOOST_TEST((m.onInFlight == core::OnInFlight::Reject));
    BOOST_TEST(m.fingerprintHeaders.empty());
    BOOST_TEST((m.body == core::BodyMode::Json));
}

BOOST_AUTO_TEST_CASE(defaultStoredResponseFollowsASmallerStoreLimit) {
    const Config c = loadConfigString(config("", "store: {max_response_size: 64KiB}"), "t.yaml");
    BOOST_TEST(c.routes[0].policy.maxStoredResponse == 64u * 1024);
}

BOOST_AUTO_TEST_CASE(nullSectionsMeanDefaults) {
    const Config c = loadConfigString(config("fingerprint:", "server:\nlog:\nstore:\nroute_defaults:"), "t.yaml");
    BOOST_TEST(c.server.port == 8080);
    BOOST_TEST((c.routes[0].policy.body == core::BodyMode::Raw));
}

BOOST_AUTO_TEST_CASE(jsonInputIsAccepted) {
    const std::string json = R"({
  "server": {"listen": "0.0.0.0:8081", "max_threads": 8},
  "upstreams": {"up": {"url": "http://10.0.0.5:80", "timeout": "5s"}},
  "routes": {
    "pay": {"methods": ["POST"], "path": "/v1/pay", "upstream": "up",
            "fingerprint": {"body": "json", "query": false}, "release_on": [503], "allow_set_cookie": true}
  }
})";
    const Config c = loadConfigString(json, "t.json");
    BOOST_TEST(c.server.host == "0.0.0.0");
    BOOST_TEST(c.server.port == 8081);
    BOOST_TEST(c.server.maxThreads == 8);
    BOOST_TEST(c.upstreams.at(0).endpoints.at(0).host == "10.0.0.5");
    BOOST_TEST(c.routes.at(0).policy.lease.count() == 10'000);
    BOOST_TEST((c.routes.at(0).policy.body == core::BodyMode::Json));
    BOOST_TEST(!c.routes.at(0).policy.fingerprintQuery);
    BOOST_TEST((c.routes.at(0).policy.releaseOn == std::vector<int>{503}));
    BOOST_TEST(c.routes.at(0).policy.allowSetCookie);

    // Errors in JSON carry positions too.
    const ConfigError e = expectError(R"({"upstreams": {"up": {"url": "http://h:1"}},
 "routes": {"r": {"path": "/p", "upstream": "up", "lease": 0}}})");
    BOOST_TEST(e.keyPath == "routes.r.lease");
    BOOST_TEST(e.line == 2);
    BOOST_TEST(e.column == 60);
}

BOOST_AUTO_TEST_CASE(storeBackendsAndSecrets) {
    const EnvVar redisPw("IDEMGATE_TEST_REDIS_PW", "s3cr3t-redis");
    const Config r = loadConfigString(
        top("store:\n  type: redis\n  redis: {address: \"redis.local:6380\", password_env: IDEMGATE_TEST_REDIS_PW, "
            "key_prefix: \"t:\", pool_size: 2, pipeline_connections: 0, connect_timeout: 100ms, "
            "command_timeout: 200ms, pool_wait_timeout: 300ms, require_noeviction: true, replay_read: always}"),
        "t.yaml");
    BOOST_TEST((r.store.type == StoreType::Redis));
    BOOST_TEST(r.store.redis.address.host == "redis.local");
    BOOST_TEST(r.store.redis.address.port == 6380);
    BOOST_TEST(r.store.redis.password == "s3cr3t-redis");
    BOOST_TEST(r.store.redis.keyPrefix == "t:");
    BOOST_TEST(r.store.redis.poolSize == 2u);
    BOOST_TEST(r.store.redis.pipelineConnections == 0u);  // pipelining off
    BOOST_TEST(r.store.redis.connectTimeout.count() == 100);
    BOOST_TEST(r.store.redis.commandTimeout.count() == 200);
    BOOST_TEST(r.store.redis.poolWaitTimeout.count() == 300);
    BOOST_TEST(r.store.redis.requireNoEviction);
    BOOST_TEST((r.store.redis.replayRead == idem::storage::RedisStoreConfig::ReplayRead::Always));

    const Config rc = loadConfigString(
        top("store:\n  type: redis-cluster\n  redis_cluster: {nodes: [\"127.0.0.1:7000\", \"[::1]:7001\"], "
            "max_redirects: 3, slot_refresh_interval: 2s, pipeline_connections: 4}"),
        "t.yaml");
    BOOST_TEST((rc.store.type == StoreType::RedisCluster));
    BOOST_REQUIRE_EQUAL(rc.store.redis.nodes.size(), 2u);
    BOOST_TEST(rc.store.redis.nodes[1].host == "::1");
    BOOST_TEST(rc.store.redis.nodes[1].port == 7001);
    BOOST_TEST(rc.store.redis.maxRedirects == 3);
    BOOST_TEST(rc.store.redis.pipelineConnections == 4u);
    BOOST_TEST(rc.store.redis.poolSize == 16u);  // defaults
    BOOST_TEST((rc.store.redis.replayRead == idem::storage::RedisStoreConfig::ReplayRead::Auto));
    BOOST_TEST(idem::storage::RedisStoreConfig{}.pipelineConnections == 2u);
    BOOST_TEST(rc.store.redis.slotRefreshInterval.count() == 2'000);
    BOOST_TEST(rc.store.redis.password.empty());

    // A relative password_file is found next to the config file; the trailing newline is not part of it.
    const TempDir dir;
    dir.write("pg-password", "pg-s3cr3t\r\n");
    const std::string file = dir.write(
        "idemgate.yaml",
        top("store:\n  type: postgres\n  postgres: {url: \"postgresql://idem@db:5432/idem?sslmode=disable\", "
            "password_file: pg-password, table: idem.records, pool_size: 3, pipeline_connections: 0, reap_interval: 0s, reap_batch: 10, "
            "migrate_on_start: false}"));
    const Config pg = loadConfigFile(file);
    BOOST_TEST(pg.sourceFile == file);
    BOOST_TEST((pg.store.type == StoreType::Postgres));
    BOOST_TEST(pg.store.postgres.url == "postgresql://idem@db:5432/idem?sslmode=disable");
    BOOST_TEST(pg.store.postgres.password == "pg-s3cr3t");
    BOOST_TEST(pg.store.postgres.table == "idem.records");
    BOOST_TEST(pg.store.postgres.poolSize == 3u);
    BOOST_TEST(pg.store.postgres.pipelineConnections == 0u);  // pipelining off
    BOOST_TEST(idem::storage::PostgresStoreConfig{}.pipelineConnections == 2u);
    BOOST_TEST(pg.store.postgres.reapInterval.count() == 0);
    BOOST_TEST(pg.store.postgres.reapBatch == 10u);
    BOOST_TEST(!pg.store.postgres.migrateOnStart);

    // An empty variable or file is refused rather than silently meaning "no password".
    const EnvVar empty("IDEMGATE_TEST_EMPTY_PW", "");
    BOOST_TEST(contains(expectError(top("store: {type: redis, redis: {password_env: IDEMGATE_TEST_EMPTY_PW}}")).problem,
                        "environment variable IDEMGATE_TEST_EMPTY_PW is empty"));
    const std::string emptyFile = dir.write("empty", "\n");
    BOOST_TEST(contains(expectError(top("store: {type: redis, redis: {password_file: \"" + emptyFile + "\"}}")).problem,
                        "is empty"));
}

BOOST_AUTO_TEST_CASE(describeConfigMasksSecrets) {
    const EnvVar pw("IDEMGATE_TEST_REDIS_PW", "s3cr3t-redis");
    const Config c = loadConfigString(top("store: {type: redis-cluster, redis_cluster: {nodes: [\"127.0.0.1:7000\"], "
                                          "password_env: IDEMGATE_TEST_REDIS_PW}}"),
                                      "t.yaml");
    const std::string d = describeConfig(c);
    BOOST_TEST(!contains(d, "s3cr3t"));
    BOOST_TEST(contains(d, "    password: \"********\""));
    BOOST_TEST(contains(d, "  redis_cluster:\n    nodes: [\"127.0.0.1:7000\"]\n"));

    const TempDir dir;
    const std::string pwFile = dir.write("pw", "pg-s3cr3t\n");
    const Config pg = loadConfigString(
        top("store: {type: postgres, postgres: {url: \"postgresql://idem@db/idem\", password_file: \"" + pwFile +
            "\"}}"),
        "t.yaml");
    const std::string dp = describeConfig(pg);
    BOOST_TEST(!contains(dp, "pg-s3cr3t"));
    BOOST_TEST(contains(dp, "    password: \"********\""));
    BOOST_TEST(contains(dp, "    url: \"postgresql://idem@db/idem\"\n"));
}

BOOST_AUTO_TEST_CASE(describeConfigPrintsEveryEffectiveValue) {
    const std::string d = describeConfig(loadConfigString(config(), "min.yaml"));
    BOOST_TEST(d.starts_with("# effective configuration of min.yaml\n"));
    for (const char* line : {"  listen: 127.0.0.1:8080\n", "  max_threads: 256\n", "  keep_alive_timeout: 15s\n",
                             "  level: info\n", "  type: memory\n", "  max_response_size: 1MiB\n",
                             "    max_records: 1000000\n", "    sweep_interval: 1s\n",
                             "    url: http://127.0.0.1:9090\n", "      total: 30s\n", "    # methods: any\n",
                             "    path: /v1/p\n", "    idempotency: required\n",
                             "    idempotent_methods: [POST, PATCH]\n", "    key_header: Idempotency-Key\n",
                             "    tenant_header: \"\"", "      body: raw\n", "      headers: []\n",
                             "    max_body: 1MiB\n", "    ttl: 24h\n", "    lease: 35s\n",
                             "    release_on: [408, 425, 429, 503]\n", "    on_unknown: hold\n",
                             "    wait_max: 10s\n", "    store_failure: closed\n", "    forward_key: derived\n",
                             "    allow_set_cookie: false\n"}) {
        BOOST_TEST(contains(d, line), "missing: " << line);
    }
    BOOST_TEST(
        !contains(d, "password"));  // no password configured: nothing to mask, and no key that would fail a reload
}

BOOST_AUTO_TEST_CASE(describeConfigLoadsBackToTheSameConfig) {
    const std::string yaml = R"(
server: {listen: "[::1]:9000", max_threads: 4}
store: {type: redis, redis: {address: "[::1]:6379", key_prefix: "x: #y\"z"}}
upstreams:
  pay: {url: http://pay.internal:8081/api, timeout: 1m}
  other: {url: "http://[::1]:81"}
route_defaults: {tenant_header: X-Api-Key, ttl: 7d}
routes:
  capture:
    methods: [POST]
    path: "/v1/payments/{id}:capture"
    upstream: pay
    fingerprint: {body: json, headers: [X-A, "X-#"]}
  rest: {path: "/files/{path...}", upstream: other, idempotency: off, key_header: "X-!Key", release_on: []}
)";
    const Config first = loadConfigString(yaml, "a.yaml");
    const std::string described = describeConfig(first);
    const Config second = loadConfigString(described, "b.yaml");
    BOOST_TEST(describeBody(second) == describeBody(first));
    BOOST_TEST(second.store.redis.keyPrefix == "x: #y\"z");
    BOOST_TEST(second.upstreams.at(1).endpoints.at(0).host == "::1");
    BOOST_TEST(second.routes.at(0).policy.lease.count() == 65'000);
    BOOST_TEST((second.routes.at(0).policy.fingerprintHeaders == std::vector<std::string>{"X-A", "X-#"}));
    BOOST_TEST(second.routes.at(1).policy.keyHeader == "X-!Key");
    BOOST_TEST(second.routes.at(1).policy.ttl.count() == 7 * 86'400'000LL);
}

BOOST_AUTO_TEST_CASE(demoConfigLoads) {
    const Config c = loadConfigFile(sourceDir() + "/config/idemgate.yaml");
    BOOST_TEST(c.server.host == "127.0.0.1");
    BOOST_TEST(c.server.port == 8080);
    BOOST_TEST((c.store.type == StoreType::Memory));
    const UpstreamConfig* u = c.findUpstream("payments");
    BOOST_REQUIRE(u != nullptr);
    BOOST_TEST(u->endpoints.at(0).host == "127.0.0.1");
    BOOST_TEST(u->endpoints.at(0).port == 9090);
    BOOST_TEST(u->timeouts.total.count() == 30'000);
    BOOST_REQUIRE_EQUAL(c.routes.size(), 1u);
    const RouteConfig& r = c.routes[0];
    BOOST_TEST(r.id == "payments");
    BOOST_TEST((r.matchMethods == std::vector<std::string>{"POST"}));
    BOOST_TEST(r.path == "/v1/payments");
    BOOST_TEST(r.upstream == "payments");
    BOOST_TEST((r.policy.mode == core::IdempotencyMode::Required));
    BOOST_TEST((r.policy.body == core::BodyMode::Json));
    BOOST_TEST(r.policy.tenantHeader.empty());  // a plain curl without credentials works
    BOOST_TEST(r.policy.lease.count() == 35'000);
}

BOOST_AUTO_TEST_CASE(referenceConfigLoadsAndShowsTheDefaults) {
    const Config ref = loadConfigFile(sourceDir() + "/config/idemgate.reference.yaml");
    // The reference writes every key at its default, so it must equal the same upstream and route with
    // nothing else set.
    const Config minimal = loadConfigString(
        "upstreams: {payments: {url: http://127.0.0.1:9090}}\n"
        "routes: {payments: {methods: [POST], path: /v1/payments, upstream: payments}}\n",
        "minimal.yaml");
    BOOST_TEST(describeBody(ref) == describeBody(minimal));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------------
// Upstreams (issue 6): endpoints, balance, timeouts, pool, health, passive ejection, breaker, retries,
// DNS, TLS, and the route's upstream_timeouts with the lease check against the effective deadline.

namespace {

std::vector<BadCase> upstreamBadCases(const std::string& notPem) {
    const std::string two = "endpoints: [http://127.0.0.1:1, http://127.0.0.1:2]\n";
    auto withEndpoints = [](const std::string& extra) {
        return "upstreams:\n  up:\n" + indent(extra, "    ") + "routes:\n  r:\n    path: /v1/p\n    upstream: up\n";
    };
    return {
        {"url and endpoints", upstream("endpoints: [http://127.0.0.1:1]"), "upstreams.up.endpoints", "give url (one endpoint) or endpoints, not both"},
        {"endpoints empty", withEndpoints("endpoints: []"), "upstreams.up.endpoints", "list at least one endpoint"},
        {"endpoints not a list", withEndpoints("endpoints: http://127.0.0.1:1"), "upstreams.up.endpoints", "expected a list of endpoints like"},
        {"endpoint without url", withEndpoints("endpoints: [{weight: 2}]"), "upstreams.up.endpoints[0].url", "every endpoint needs a url"},
        {"endpoint unknown key", withEndpoints("endpoints: [{url: http://127.0.0.1:1, wieght: 2}]"), "upstreams.up.endpoints[0].wieght", "allowed keys here: url, weight"},
        {"endpoint bad url", withEndpoints("endpoints: [http://127.0.0.1:1, \"ftp://x\"]"), "upstreams.up.endpoints[1]", "unsupported scheme \"ftp\""},
        {"endpoint weight zero", withEndpoints("balance: weighted\nendpoints: [{url: http://127.0.0.1:1, weight: 0}]"), "upstreams.up.endpoints[0].weight", "from 1 to 10000"},
        {"weight under round robin", withEndpoints("endpoints: [{url: http://127.0.0.1:1, weight: 2}]"), "upstreams.up.endpoints[0].weight", "weights apply to balance: weighted or least_connections"},
        {"endpoint twice", withEndpoints("endpoints: [http://127.0.0.1:1, \"http://127.0.0.1:1/\"]"), "upstreams.up.endpoints[1]", "this endpoint is listed twice"},
        {"bad balance", upstream("balance: random"), "upstreams.up.balance", "expected one of: round_robin, weighted, least_connections"},
        {"unknown timeouts key", upstream("timeouts: {totl: 5s}"), "upstreams.up.timeouts.totl", "allowed keys here: connect, send, first_byte, total"},
        {"total zero", upstream("timeouts: {total: 0s}"), "upstreams.up.timeouts.total", "must be greater than 0"},
        {"first_byte bare number", upstream("timeouts: {first_byte: 5}"), "upstreams.up.timeouts.first_byte", "needs a unit"},
        {"timeout and total", upstream("timeouts: {total: 5s}\ntimeout: 5s"), "upstreams.up.timeout", "timeout is another spelling of timeouts.total"},
        {"connect_timeout and connect", upstream("timeouts: {connect: 1s}\nconnect_timeout: 1s"), "upstreams.up.connect_timeout", "connect_timeout is another spelling of timeouts.connect"},
        {"unknown pool key", upstream("pool: {size: 4}"), "upstreams.up.pool.size", "allowed keys here: max_connections, max_idle, idle_timeout, acquire_timeout"},
        {"max_connections zero", upstream("pool: {max_connections: 0}"), "upstreams.up.pool.max_connections", "from 1 to 65535"},
        {"max_idle above max_connections", upstream("pool: {max_connections: 8, max_idle: 9}"), "upstreams.up.pool.max_idle", "max_idle 9 is larger than max_connections 8"},
        {"max_connections below default idle", upstream("pool: {max_connections: 8}"), "upstreams.up.pool.max_connections", "max_idle 64 is larger than max_connections 8"},
        {"pool_size and max_idle", upstream("pool: {max_idle: 4}\npool_size: 4"), "upstreams.up.pool_size", "pool_size is another spelling of pool.max_idle"},
        {"idle_timeout zero", upstream("pool: {idle_timeout: 0s}"), "upstreams.up.pool.idle_timeout", "must be greater than 0"},
        {"health path relative", upstream("health: {path: healthz}"), "upstreams.up.health.path", "must start with '/'"},
        {"health path space", upstream("health: {path: \"/health z\"}"), "upstreams.up.health.path", "printable ASCII without spaces"},
        {"health timeout above interval", upstream("health: {path: /h, interval: 1s, timeout: 2s}"), "upstreams.up.health.timeout", "the check timeout 2s is longer than the interval 1s"},
        {"health threshold zero", upstream("health: {path: /h, healthy_threshold: 0}"), "upstreams.up.health.healthy_threshold", "from 1 to 100"},
        {"unknown health key", upstream("health: {url: /h}"), "upstreams.up.health.url", "allowed keys here: path, interval, timeout, healthy_threshold, unhealthy_threshold"},
        {"passive negative", upstream("passive: {consecutive_failures: -1}"), "upstreams.up.passive.consecutive_failures", "from 0 to 1000"},
        {"passive ejection zero", upstream("passive: {ejection: 0s}"), "upstreams.up.passive.ejection", "must be greater than 0"},
        {"failure_rate zero", upstream("breaker: {failure_rate: 0%}"), "upstreams.up.breaker.failure_rate", "\"0%\" is out of range; expected a share like 10% or 0.1, above 0% to 100%"},
        {"failure_rate above 100", upstream("breaker: {failure_rate: 150%}"), "upstreams.up.breaker.failure_rate", "\"150%\" is out of range"},
        {"failure_rate fraction above 1", upstream("breaker: {failure_rate: 1.5}"), "upstreams.up.breaker.failure_rate", "\"1.5\" is out of range"},
        {"failure_rate garbage", upstream("breaker: {failure_rate: half}"), "upstreams.up.breaker.failure_rate", "\"half\" is not valid; expected a share"},
        {"breaker min_requests zero", upstream("breaker: {min_requests: 0}"), "upstreams.up.breaker.min_requests", "from 1 to 1000000"},
        {"breaker enabled yes", upstream("breaker: {enabled: yes}"), "upstreams.up.breaker.enabled", "expected true or false"},
        {"retry attempts zero", upstream("retry: {attempts: 0}"), "upstreams.up.retry.attempts", "from 1 to 10"},
        {"retry attempts eleven", upstream("retry: {attempts: 11}"), "upstreams.up.retry.attempts", "\"11\" is out of range; expected a whole number from 1 to 10"},
        {"max_backoff below base", upstream("retry: {base_backoff: 100ms, max_backoff: 50ms}"), "upstreams.up.retry.max_backoff", "max_backoff 50ms is shorter than base_backoff 100ms"},
        {"base above default max", upstream("retry: {base_backoff: 1s}"), "upstreams.up.retry.base_backoff", "max_backoff 250ms is shorter than base_backoff 1s"},
        {"budget above 100", upstream("retry: {budget: 120%}"), "upstreams.up.retry.budget", "\"120%\" is out of range; expected a share like 10% or 0.1, from 0% to 100%"},
        {"budget window zero", upstream("retry: {budget_window: 0s}"), "upstreams.up.retry.budget_window", "must be greater than 0"},
        {"unknown retry key", upstream("retry: {retries: 2}"), "upstreams.up.retry.retries", "allowed keys here: attempts, base_backoff"},
        {"dns_ttl zero", upstream("dns_ttl: 0s"), "upstreams.up.dns_ttl", "must be greater than 0"},
        {"tls on http", upstream("tls: {verify: false}"), "upstreams.up.tls", "tls settings apply to https endpoints; this upstream has none"},
        {"tls unknown key", withUrl("https://pay.example.com") .replace(withUrl("https://pay.example.com").find("}}"), 2, ", tls: {ca: x}}}"), "upstreams.up.tls.ca", "allowed keys here: verify, ca_file, server_name"},
        {"ca_file missing", withEndpoints("url: https://pay.example.com\ntls: {ca_file: /nonexistent/ca.pem}"), "upstreams.up.tls.ca_file", "cannot read /nonexistent/ca.pem"},
        {"ca_file not pem", withEndpoints("url: https://pay.example.com\ntls: {ca_file: \"" + notPem + "\"}"), "upstreams.up.tls.ca_file", "does not look like a PEM certificate file"},
        {"server_name bad", withEndpoints("url: https://pay.example.com\ntls: {server_name: \"pay example\"}"), "upstreams.up.tls.server_name", "\"pay example\" is not a valid host name"},
        {"route timeouts unknown key", route("upstream_timeouts: {totl: 1s}"), "routes.r.upstream_timeouts.totl", "allowed keys here: connect, send, first_byte, total"},
        {"route timeouts zero", route("upstream_timeouts: {connect: 0s}"), "routes.r.upstream_timeouts.connect", "must be greater than 0"},
        {"route timeouts in defaults", top("route_defaults: {upstream_timeouts: {total: 1s}}"), "route_defaults.upstream_timeouts", "upstream_timeouts belongs to each route"},
        {"lease below route deadline", route("upstream_timeouts: {total: 1m}\nlease: 40s"), "routes.r.lease", "lease 40s is shorter than the upstream deadline 1m (upstream_timeouts.total of route \"r\""},
        {"lease below two-endpoint deadline", withEndpoints(two + "timeouts: {total: 20s}") .replace(withEndpoints(two + "timeouts: {total: 20s}").find("    upstream: up\n"), 17, "    upstream: up\n    lease: 19s\n"), "routes.r.lease", "lease 19s is shorter than the upstream deadline 20s (timeouts.total of upstream \"up\""},
    };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(UpstreamConfigSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(upstreamErrorsNameKeyPathAndProblem) {
    const TempDir dir;
    const std::string notPem = dir.write("not.pem", "just some text\n");
    std::vector<std::string> seen;
    for (const auto& c : upstreamBadCases(notPem)) {
        BOOST_TEST_CONTEXT("case: " << c.name << "\n" << c.yaml) {
            const Caught got = loadBad(c.yaml);
            BOOST_TEST(got.thrown);
            if (!got.thrown) continue;
            const ConfigError& e = got.error;
            BOOST_TEST(e.file == "test.yaml");
            BOOST_TEST(e.keyPath == c.keyPath);
            BOOST_TEST(contains(e.problem, c.problem), "problem \"" << e.problem << "\" lacks \"" << c.problem << "\"");
            BOOST_TEST(e.line > 0);
            seen.push_back(e.keyPath + ": " + e.problem);
        }
    }
    std::sort(seen.begin(), seen.end());
    BOOST_TEST((std::adjacent_find(seen.begin(), seen.end()) == seen.end()), "two upstream cases share a message");
}

BOOST_AUTO_TEST_CASE(everyUpstreamKeyMapsToItsField) {
    const TempDir dir;
    const std::string ca = dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    const std::string yaml = R"(
upstreams:
  pay:
    endpoints:
      - {url: "https://pay-a.internal/api/", weight: 3}
      - https://10.0.0.2:8443
      - {url: "https://[::1]:9443"}
    balance: weighted
    timeouts: {connect: 500ms, send: 2s, first_byte: 5s, total: 20s}
    pool: {max_connections: 100, max_idle: 10, idle_timeout: 2s, acquire_timeout: 0s}
    health: {path: "/healthz?full=1", interval: 2s, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 4}
    passive: {consecutive_failures: 0, ejection: 1m}
    breaker: {enabled: false, failure_rate: 0.25, window: 30s, min_requests: 5, open_for: 10s}
    retry: {attempts: 3, base_backoff: 10ms, max_backoff: 1s, budget: 12.5%, budget_window: 1m, budget_min: 0}
    dns_ttl: 5m
    tls: {verify: false, ca_file: ")" + ca + R"(", server_name: pay.internal}
routes:
  r:
    path: /v1/p
    upstream: pay
    upstream_timeouts: {first_byte: 1s, total: 25s}
)";
    const Config c = loadConfigString(yaml, "t.yaml");
    const UpstreamConfig& u = c.upstreams.at(0);
    BOOST_REQUIRE_EQUAL(u.endpoints.size(), 3u);
    BOOST_TEST(u.endpoints[0].scheme == "https");
    BOOST_TEST(u.endpoints[0].host == "pay-a.internal");
    BOOST_TEST(u.endpoints[0].port == 443);  // the https default
    BOOST_TEST(u.endpoints[0].basePath == "/api");
    BOOST_TEST(u.endpoints[0].weight == 3u);
    BOOST_TEST(u.endpoints[1].host == "10.0.0.2");
    BOOST_TEST(u.endpoints[1].port == 8443);
    BOOST_TEST(u.endpoints[1].weight == 1u);
    BOOST_TEST(u.endpoints[2].host == "::1");
    BOOST_TEST((u.balance == core::BalancePolicy::Weighted));
    BOOST_TEST(u.timeouts.connect.count() == 500);
    BOOST_TEST(u.timeouts.send.value_or(0ms).count() == 2'000);
    BOOST_TEST(u.timeouts.firstByte.value_or(0ms).count() == 5'000);
    BOOST_TEST(u.timeouts.total.count() == 20'000);
    BOOST_TEST(u.pool.maxConnections == 100u);
    BOOST_TEST(u.pool.maxIdle == 10u);
    BOOST_TEST(u.pool.idleTimeout.count() == 2'000);
    BOOST_TEST(u.pool.acquireTimeout.count() == 0);
    BOOST_TEST(u.health.path == "/healthz?full=1");
    BOOST_TEST(u.health.interval.count() == 2'000);
    BOOST_TEST(u.health.timeout.count() == 500);
    BOOST_TEST(u.health.healthyThreshold == 1u);
    BOOST_TEST(u.health.unhealthyThreshold == 4u);
    BOOST_TEST(u.passive.consecutiveFailures == 0u);
    BOOST_TEST(u.passive.ejection.count() == 60'000);
    BOOST_TEST(!u.breaker.enabled);
    BOOST_TEST(u.breaker.failureRate == 0.25);
    BOOST_TEST(u.breaker.window.count() == 30'000);
    BOOST_TEST(u.breaker.minRequests == 5u);
    BOOST_TEST(u.breaker.openFor.count() == 10'000);
    BOOST_TEST(u.retry.attempts == 3u);
    BOOST_TEST(u.retry.baseBackoff.count() == 10);
    BOOST_TEST(u.retry.maxBackoff.count() == 1'000);
    BOOST_TEST(u.retry.budget == 0.125);
    BOOST_TEST(u.retry.budgetWindow.count() == 60'000);
    BOOST_TEST(u.retry.budgetMin == 0u);
    BOOST_TEST(u.dnsTtl.count() == 300'000);
    BOOST_TEST(!u.tls.verify);
    BOOST_TEST(u.tls.caFile == ca);
    BOOST_TEST(u.tls.serverName == "pay.internal");

    const RouteConfig& r = c.routes.at(0);
    BOOST_TEST(!r.upstreamTimeouts.connect.has_value());
    BOOST_TEST(r.upstreamTimeouts.firstByte.value_or(0ms).count() == 1'000);
    BOOST_TEST(r.upstreamTimeouts.total.value_or(0ms).count() == 25'000);
    const UpstreamTimeouts eff = effectiveTimeouts(u.timeouts, r.upstreamTimeouts);
    BOOST_TEST(eff.connect.count() == 500);
    BOOST_TEST(eff.send.value_or(0ms).count() == 2'000);
    BOOST_TEST(eff.firstByte.value_or(0ms).count() == 1'000);
    BOOST_TEST(eff.total.count() == 25'000);
    BOOST_TEST(r.policy.lease.count() == 30'000);  // the route's deadline 25s + 5s

    // Described, it loads back to the same configuration.
    const Config again = loadConfigString(describeConfig(c), "again.yaml");
    BOOST_TEST(describeBody(again) == describeBody(c));
}

BOOST_AUTO_TEST_CASE(upstreamDefaults) {
    const Config c = loadConfigString(config(), "t.yaml");
    const UpstreamConfig& u = c.upstreams.at(0);
    BOOST_TEST((u.balance == core::BalancePolicy::RoundRobin));
    BOOST_TEST(u.pool.maxConnections == 1024u);
    BOOST_TEST(u.pool.maxIdle == 64u);
    BOOST_TEST(u.pool.idleTimeout.count() == 4'000);
    BOOST_TEST(u.pool.acquireTimeout.count() == 1'000);
    BOOST_TEST(u.health.path.empty());
    BOOST_TEST(u.health.interval.count() == 5'000);
    BOOST_TEST(u.health.timeout.count() == 1'000);
    BOOST_TEST(u.health.healthyThreshold == 2u);
    BOOST_TEST(u.health.unhealthyThreshold == 3u);
    BOOST_TEST(u.passive.consecutiveFailures == 5u);
    BOOST_TEST(u.passive.ejection.count() == 30'000);
    BOOST_TEST(u.breaker.enabled);
    BOOST_TEST(u.breaker.failureRate == 0.5);
    BOOST_TEST(u.breaker.window.count() == 10'000);
    BOOST_TEST(u.breaker.minRequests == 20u);
    BOOST_TEST(u.breaker.openFor.count() == 5'000);
    BOOST_TEST(u.retry.attempts == 2u);
    BOOST_TEST(u.retry.baseBackoff.count() == 25);
    BOOST_TEST(u.retry.maxBackoff.count() == 250);
    BOOST_TEST(u.retry.budget == 0.1);
    BOOST_TEST(u.retry.budgetWindow.count() == 10'000);
    BOOST_TEST(u.retry.budgetMin == 3u);
    BOOST_TEST(u.dnsTtl.count() == 60'000);
    BOOST_TEST(u.tls.verify);
    BOOST_TEST(u.tls.caFile.empty());
    BOOST_TEST(u.tls.serverName.empty());
    BOOST_TEST(c.routes.at(0).upstreamTimeouts.empty());
    const std::string d = describeConfig(c);
    for (const char* line : {"    balance: round_robin\n", "      connect: 2s\n", "      total: 30s\n",
                             "      max_connections: 1024\n", "      idle_timeout: 4s\n", "      path: \"\"",
                             "      consecutive_failures: 5\n", "      failure_rate: 50%\n", "      attempts: 2\n",
                             "      budget: 10%\n", "    dns_ttl: 1m\n"})
        BOOST_TEST(contains(d, line), "missing: " << line);
    BOOST_TEST(!contains(d, "tls:"));  // only for https endpoints
}

BOOST_AUTO_TEST_CASE(leaseFollowsTheEffectiveDeadline) {
    // The route's own deadline decides: shorter than the upstream's lets a shorter lease pass, and the
    // default lease follows it.
    const Config shorter = loadConfigString(route("upstream_timeouts: {total: 8s}\nlease: 8s"), "t.yaml");
    BOOST_TEST(shorter.routes.at(0).policy.lease.count() == 8'000);
    const Config byDefault = loadConfigString(route("upstream_timeouts: {total: 8s}"), "t.yaml");
    BOOST_TEST(byDefault.routes.at(0).policy.lease.count() == 13'000);
    const Config longer = loadConfigString(route("upstream_timeouts: {total: 2m}"), "t.yaml");
    BOOST_TEST(longer.routes.at(0).policy.lease.count() == 125'000);
    // Connect, send and first byte are inside total: they do not lengthen the deadline.
    const Config phases = loadConfigString(
        config("lease: 30s", "", "timeouts: {connect: 10s, send: 30s, first_byte: 30s, total: 30s}\nretry: {attempts: 5}"),
        "t.yaml");
    BOOST_TEST(phases.routes.at(0).policy.lease.count() == 30'000);
    // The older spellings still work, as aliases.
    const Config aliases = loadConfigString(upstream("connect_timeout: 1s\ntimeout: 12s\npool_size: 7"), "t.yaml");
    BOOST_TEST(aliases.upstreams.at(0).timeouts.connect.count() == 1'000);
    BOOST_TEST(aliases.upstreams.at(0).timeouts.total.count() == 12'000);
    BOOST_TEST(aliases.upstreams.at(0).pool.maxIdle == 7u);
    BOOST_TEST(aliases.routes.at(0).policy.lease.count() == 17'000);
}

BOOST_AUTO_TEST_SUITE_END()
