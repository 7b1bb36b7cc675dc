#include "gateway/config/ConfigLoader.h"

#include "gateway/config/Units.h"
#include "gateway/core/Router.h"
#include "gateway/core/Versions.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

namespace idem::config {
namespace {

using storage::HostPort;
using storage::StoreConfig;

// ---------------------------------------------------------------------------------------------------
// Names of enum values, used both to read and to describe.

template <class E>
struct Named {
    std::string_view name;
    E value;
};

constexpr std::array<Named<core::IdempotencyMode>, 3> kModes{{
    {"required", core::IdempotencyMode::Required},
    {"optional", core::IdempotencyMode::Optional},
    {"off", core::IdempotencyMode::Off},
}};
constexpr std::array<Named<core::KeyFormat>, 2> kKeyFormats{{
    {"default", core::KeyFormat::Default},
    {"uuid", core::KeyFormat::Uuid},
}};
constexpr std::array<Named<core::BodyMode>, 2> kBodyModes{{
    {"raw", core::BodyMode::Raw},
    {"json", core::BodyMode::Json},
}};
constexpr std::array<Named<core::OnUnknown>, 2> kOnUnknown{{
    {"hold", core::OnUnknown::Hold},
    {"release", core::OnUnknown::Release},
}};
constexpr std::array<Named<core::OnInFlight>, 2> kOnInFlight{{
    {"reject", core::OnInFlight::Reject},
    {"wait", core::OnInFlight::Wait},
}};
constexpr std::array<Named<core::StoreFailure>, 2> kStoreFailure{{
    {"closed", core::StoreFailure::Closed},
    {"open", core::StoreFailure::Open},
}};
constexpr std::array<Named<core::ForwardKey>, 3> kForwardKey{{
    {"derived", core::ForwardKey::Derived},
    {"client", core::ForwardKey::Client},
    {"none", core::ForwardKey::None},
}};
constexpr std::array<Named<core::VersionSource>, 4> kVersionSources{{
    {"path", core::VersionSource::Path},
    {"header", core::VersionSource::Header},
    {"accept", core::VersionSource::Accept},
    {"query", core::VersionSource::Query},
}};
constexpr std::array<Named<bool>, 2> kVersionScopes{{
    {"shared", true},
    {"separate", false},
}};
constexpr std::array<Named<RouteConfig::DisabledAction>, 2> kDisabledActions{{
    {"pass_through", RouteConfig::DisabledAction::PassThrough},
    {"reject", RouteConfig::DisabledAction::Reject},
}};
constexpr std::array<Named<LogConfig::Level>, 4> kLogLevels{{
    {"error", LogConfig::Level::Error},
    {"warning", LogConfig::Level::Warning},
    {"info", LogConfig::Level::Information},
    {"debug", LogConfig::Level::Debug},
}};
constexpr std::array<Named<ServerConfig::Engine>, 2> kEngines{{
    {"native", ServerConfig::Engine::Native},
    {"poco", ServerConfig::Engine::Poco},
}};
constexpr std::array<Named<core::BalancePolicy>, 3> kBalance{{
    {"round_robin", core::BalancePolicy::RoundRobin},
    {"weighted", core::BalancePolicy::Weighted},
    {"least_connections", core::BalancePolicy::LeastConnections},
}};
constexpr std::array<Named<storage::RedisStoreConfig::ReplayRead>, 3> kReplayRead{{
    {"auto", storage::RedisStoreConfig::ReplayRead::Auto},
    {"always", storage::RedisStoreConfig::ReplayRead::Always},
    {"never", storage::RedisStoreConfig::ReplayRead::Never},
}};

constexpr std::array<Named<StoreConfig::Type>, 4> kStoreTypes{{
    {"memory", StoreConfig::Type::Memory},
    {"redis", StoreConfig::Type::Redis},
    {"redis-cluster", StoreConfig::Type::RedisCluster},
    {"postgres", StoreConfig::Type::Postgres},
}};

template <class E, std::size_t N>
std::string_view nameOf(const std::array<Named<E>, N>& table, E value) {
    for (const auto& n : table)
        if (n.value == value) return n.name;
    return "?";
}

template <class E, std::size_t N>
std::string namesOf(const std::array<Named<E>, N>& table) {
    std::string out;
    for (const auto& n : table) {
        if (!out.empty()) out += ", ";
        out += n.name;
    }
    return out;
}

// Keys of each section, in the order describeConfig prints them.
const std::vector<std::string_view> kRootKeys{"server", "log", "store", "upstreams", "route_defaults", "routes"};
const std::vector<std::string_view> kServerKeys{"listen", "max_threads", "max_queued", "keep_alive_timeout",
                                                "max_keep_alive_requests", "receive_timeout", "send_timeout",
                                                "engine", "max_connections", "io_threads"};
const std::vector<std::string_view> kLogKeys{"level", "access_log"};
const std::vector<std::string_view> kStoreKeys{"type", "max_response_size", "memory", "redis", "redis_cluster",
                                               "postgres"};
const std::vector<std::string_view> kMemoryKeys{"max_records", "shards", "sweep_interval"};
const std::vector<std::string_view> kRedisKeys{"address", "password_env", "password_file", "key_prefix", "pool_size",
                                               "pipeline_connections", "connect_timeout", "command_timeout",
                                               "pool_wait_timeout", "require_noeviction", "replay_read"};
const std::vector<std::string_view> kRedisClusterKeys{"nodes", "password_env", "password_file", "key_prefix",
                                                      "pool_size", "pipeline_connections", "connect_timeout",
                                                      "command_timeout", "pool_wait_timeout", "require_noeviction",
                                                      "replay_read", "max_redirects", "slot_refresh_interval"};
const std::vector<std::string_view> kPostgresKeys{"url", "password_env", "password_file", "table", "pool_size",
                                                  "pipeline_connections",
                                                  "connect_timeout", "statement_timeout", "pool_wait_timeout",
                                                  "migrate_on_start", "reap_interval", "reap_batch"};
const std::vector<std::string_view> kUpstreamKeys{"url",    "endpoints", "balance", "timeouts", "connect_timeout",
                                                  "timeout", "pool",     "pool_size", "health", "passive",
                                                  "breaker", "retry",    "dns_ttl",  "tls"};
const std::vector<std::string_view> kEndpointKeys{"url", "weight"};
const std::vector<std::string_view> kTimeoutKeys{"connect", "send", "first_byte", "total"};
const std::vector<std::string_view> kPoolKeys{"max_connections", "max_idle", "idle_timeout", "acquire_timeout"};
const std::vector<std::string_view> kHealthKeys{"path", "interval", "timeout", "healthy_threshold",
                                                "unhealthy_threshold"};
const std::vector<std::string_view> kPassiveKeys{"consecutive_failures", "ejection"};
const std::vector<std::string_view> kBreakerKeys{"enabled", "failure_rate", "window", "min_requests", "open_for"};
const std::vector<std::string_view> kRetryKeys{"attempts",  "base_backoff",  "max_backoff",
                                               "budget",    "budget_window", "budget_min"};
const std::vector<std::string_view> kTlsKeys{"verify", "ca_file", "server_name"};
const std::vector<std::string_view> kPolicyKeys{
    "idempotency", "idempotent_methods", "key_header", "key_format", "tenant_header", "fingerprint", "max_body",
    "max_stored_response", "ttl", "lease", "release_on", "on_unknown", "on_in_flight", "wait_max",
    "store_failure", "forward_key", "forward_key_header", "allow_set_cookie"};
const std::vector<std::string_view> kFingerprintKeys{"body", "query", "headers"};
const std::vector<std::string_view> kVersionsKeys{"sources", "path_param", "header", "media_type",
                                                  "query_param", "default",  "scope",  "list"};
const std::vector<std::string_view> kVersionKeys{"upstream", "rewrite", "deprecated", "deprecation_date", "sunset",
                                                 "link"};
/// Keys of a route that route_defaults does not take.
const std::vector<std::string_view> kRouteOnlyKeys{"methods", "path",     "upstream",         "enabled",
                                                   "disabled", "versions", "upstream_timeouts"};

std::vector<std::string_view> routeKeys() {
    std::vector<std::string_view> keys{"methods", "path", "upstream"};
    keys.insert(keys.end(), kPolicyKeys.begin(), kPolicyKeys.end());
    keys.insert(keys.end(), {"enabled", "disabled", "versions", "upstream_timeouts"});
    return keys;
}

constexpr std::string_view kPasswordHint =
    "a password does not belong in the config file: put the password in password_env or password_file";

// ---------------------------------------------------------------------------------------------------
// Small syntax checks shared by several keys; each returns the problem, or nothing.

bool isTokenChar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), isTokenChar);
}

bool isName(std::string_view s) {  // route ids and upstream names: they appear in key paths and the scope
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

bool isIdentifier(std::string_view s) {
    if (s.empty() || s.size() > 63) return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool isIPv4(const std::string& s) {
    in_addr a{};
    return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool isIPv6(const std::string& s) {
    in6_addr a{};
    return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

bool isHostName(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = s.find('.', start);
        const std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (char c : label)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

std::optional<std::uint16_t> parsePort(std::string_view s) {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    int port = 0;
    std::from_chars(s.data(), s.data() + s.size(), port);
    if (port < 1 || port > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(port);
}

/// "host:port" with host an IPv4 address, a bracketed IPv6 address, or (if allowed) a host name.
/// The port is required unless `defaultPort` is non-zero.
std::expected<HostPort, std::string> parseHostPort(std::string_view text, bool allowHostName,
                                                   std::uint16_t defaultPort, std::string_view example) {
    const std::string form = "expected host:port like " + std::string(example);
    HostPort out;
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) return std::unexpected("missing ']' after the IPv6 address; " + form);
        out.host = std::string(text.substr(1, close - 1));
        if (!isIPv6(out.host)) return std::unexpected(quote(out.host) + " is not an IPv6 address; " + form);
        rest = text.substr(close + 1);
    } else {
        const std::size_t colon = text.find(':');
        out.host = std::string(text.substr(0, colon));
        rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
        if (rest.find(':', 1) != std::string_view::npos)
            return std::unexpected("put an IPv6 address in brackets, e.g. [::1]:8080; " + form);
        if (out.host.empty()) return std::unexpected("missing the host; " + form);
        const bool numeric = std::all_of(out.host.begin(), out.host.end(),
                                         [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
        if (numeric || !allowHostName) {
            if (!isIPv4(out.host)) {
                if (!allowHostName && !numeric)
                    return std::unexpected(quote(out.host) + " is not an IP address (IPv4, or IPv6 in brackets); " +
                                           form);
                return std::unexpected(quote(out.host) + " is not an IPv4 address; " + form);
            }
        } else if (!isHostName(out.host)) {
            return std::unexpected(quote(out.host) + " is not a valid host name; " + form);
        }
    }
    if (rest.empty()) {
        if (defaultPort == 0) return std::unexpected("missing the port; " + form);
        out.port = defaultPort;
        return out;
    }
    if (rest.front() != ':') return std::unexpected("unexpected " + quote(rest) + "; " + form);
    const auto port = parsePort(rest.substr(1));
    if (!port) return std::unexpected("port " + quote(rest.substr(1)) + " is not a number from 1 to 65535");
    out.port = *port;
    return out;
}

/// The parameters of a valid path pattern (core::Router grammar), in order: (name, is a {name...} rest).
std::vector<std::pair<std::string, bool>> patternParams(std::string_view pattern) {
    std::vector<std::pair<std::string, bool>> out;
    std::size_t start = 1;
    while (start < pattern.size()) {
        const std::size_t slash = pattern.find('/', start);
        const std::string_view seg = pattern.substr(start, slash == std::string_view::npos ? pattern.npos : slash - start);
        if (seg.starts_with('{')) {
            std::string_view name = seg.substr(1, seg.find('}') - 1);
            const bool rest = name.ends_with("...");
            if (rest) name.remove_suffix(3);
            out.emplace_back(std::string(name), rest);
        }
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return out;
}

/// Method names are case-sensitive tokens; configs write them upper-case.
std::optional<std::string> methodError(std::string_view m) {
    if (!isToken(m)) return quote(m) + " is not a valid method name";
    if (std::any_of(m.begin(), m.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
        std::string upper(m);
        for (char& c : upper)
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        return "methods are case-sensitive and written in upper case: use " + upper + " instead of " + std::string(m);
    }
    return std::nullopt;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// ---------------------------------------------------------------------------------------------------
// The tree walker.

/// One key of a mapping with its value; marks are kept for error positions.
struct Entry {
    std::string key;
    YAML::Node keyNode;
    YAML::Node value;

    /// Where to point for a problem with the value: the key for an empty value (yaml-cpp marks an
    /// empty value at the start of the next line).
    YAML::Mark mark() const { return value.IsNull() ? keyNode.Mark() : value.Mark(); }
};

/// Where a policy value came from (route_defaults or the route), for cross-key error messages.
struct Origin {
    bool set = false;
    std::string path;
    YAML::Mark mark;
};

struct PolicyOrigins {
    Origin lease;
    Origin ttl;
    Origin maxStoredResponse;
};

class Loader;

/// A mapping whose keys have been checked: no duplicates, nothing outside `allowed` (unless `anyKey`).
class Section {
public:
    Section(const Loader& loader, const YAML::Node& node, const YAML::Mark& mark, std::string path,
            const std::vector<std::string_view>& allowed,
            const std::vector<std::pair<std::string_view, std::string>>& hints = {}, bool anyKey = false);

    const Entry* find(std::string_view key) const {
        for (const auto& e : entries_)
            if (e.key == key) return &e;
        return nullptr;
    }
    const std::vector<Entry>& entries() const { return entries_; }
    std::string pathOf(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }
    const std::string& path() const { return path_; }
    const YAML::Mark& mark() const { return mark_; }

private:
    std::vector<Entry> entries_;
    std::string path_;
    YAML::Mark mark_;
};

class Loader {
public:
    Loader(std::string source, std::filesystem::path baseDir)
        : source_(std::move(source)), baseDir_(std::move(baseDir)) {}

    Config load(const YAML::Node& root) const;

    [[noreturn]] void fail(const YAML::Mark& mark, std::string keyPath, std::string problem) const {
        int line = 0;
        int column = 0;
        if (!mark.is_null() && mark.line >= 0) {
            line = mark.line + 1;
            column = mark.column + 1;
        }
        throw ConfigError(source_, std::move(keyPath), std::move(problem), line, column);
    }

    // Typed readers: each names the expected form when the value does not fit.
    std::string scalar(const Entry& e, const std::string& path, std::string_view form) const;
    std::string str(const Entry& e, const std::string& path) const { return scalar(e, path, "expected a string"); }
    bool boolean(const Entry& e, const std::string& path) const;
    std::int64_t integer(const Entry& e, const std::string& path, std::int64_t min, std::int64_t max) const;
    Millis duration(const Entry& e, const std::string& path, bool allowZero, std::string_view whyNotZero = {}) const;
    std::size_t size(const Entry& e, const std::string& path, bool allowZero) const;
    std::string header(const Entry& e, const std::string& path) const;
    std::vector<Entry> list(const Entry& e, const std::string& path, std::string_view form) const;

    template <class E, std::size_t N>
    E choice(const Entry& e, const std::string& path, const std::array<Named<E>, N>& table) const {
        const std::string form = "expected one of: " + namesOf(table);
        const std::string text = scalar(e, path, form);
        for (const auto& n : table)
            if (n.name == text) return n.value;
        fail(e.mark(), path, quote(text) + " is not valid; " + form);
    }

private:
    ServerConfig readServer(const Section& root) const;
    LogConfig readLog(const Section& root) const;
    StoreConfig readStore(const Section& root) const;
    void readRedis(const Section& s, storage::RedisStoreConfig& out, bool cluster) const;
    void readPostgres(const Section& s, storage::PostgresStoreConfig& out) const;
    std::string readPassword(const Section& s) const;
    std::vector<UpstreamConfig> readUpstreams(const Section& root) const;
    UpstreamConfig readUpstream(const Entry& e, const std::string& path) const;
    UpstreamEndpoint endpointUrl(const Entry& url, const std::string& urlPath) const;
    double ratio(const Entry& e, const std::string& path, bool allowZero) const;
    void readTimeouts(const Section& s, UpstreamTimeoutOverride& out) const;
    void readPolicy(const Section& s, core::RoutePolicy& p, PolicyOrigins& origins) const;
    std::vector<std::string> readMethods(const Entry& e, const std::string& path, bool allowEmpty) const;
    std::vector<RouteConfig> readRoutes(const Section& root, const Config& config) const;
    const UpstreamConfig* findUpstream(const Entry& e, const std::string& path, const std::string& name,
                                       const Config& config) const;
    void readVersions(const Entry& e, const std::string& path, RouteConfig& route, const Config& config) const;
    core::VersionSpec readVersion(const Entry& e, const std::string& path, const RouteConfig& route,
                                  const Config& config) const;
    std::string date(const Entry& e, const std::string& path) const;
    void checkRoute(const Section& r, const RouteConfig& route, const PolicyOrigins& origins,
                    const UpstreamConfig& upstream, Millis deadline, const Config& config) const;

    std::string source_;
    std::filesystem::path baseDir_;
};

std::string describeNodeKind(const YAML::Node& n) {
    if (n.IsNull()) return "nothing";
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a mapping";
    return quote(n.Scalar());
}

std::string joined(const std::vector<std::string_view>& keys) {
    std::string out;
    for (auto k : keys) {
        if (!out.empty()) out += ", ";
        out += k;
    }
    return out;
}

Section::Section(const Loader& loader, const YAML::Node& node, const YAML::Mark& mark, std::string path,
                 const std::vector<std::string_view>& allowed,
                 const std::vector<std::pair<std::string_view, std::string>>& hints, bool anyKey)
    : path_(std::move(path)), mark_(node.IsDefined() && !node.IsNull() ? node.Mark() : mark) {
    if (!node.IsDefined() || node.IsNull()) return;  // "server:" with nothing under it: all defaults
    if (!node.IsMap()) {
        loader.fail(mark_, path_,
                    anyKey ? "expected a mapping of names to entries, got " + describeNodeKind(node)
                           : "expected a mapping with keys: " + joined(allowed) + "; got " + describeNodeKind(node));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node k = it->first;  // a copy: `it->` yields a temporary proxy
        if (!k.IsScalar()) loader.fail(k.Mark(), path_, "keys must be plain names, got " + describeNodeKind(k));
        Entry e{k.Scalar(), k, it->second};
        const std::string keyPath = pathOf(e.key);
        for (const auto& prior : entries_) {
            if (prior.key == e.key) {
                loader.fail(k.Mark(), keyPath,
                            "duplicate key (first given at line " + std::to_string(prior.keyNode.Mark().line + 1) +
                                "); each key may appear once");
            }
        }
        if (!anyKey && std::find(allowed.begin(), allowed.end(), e.key) == allowed.end()) {
            for (const auto& [hintKey, hint] : hints)
                if (hintKey == e.key) loader.fail(k.Mark(), keyPath, hint);
            if (e.key == "<<")
                loader.fail(k.Mark(), keyPath, "YAML merge keys (<<) are not supported; use route_defaults");
            loader.fail(k.Mark(), keyPath, "unknown key; allowed keys here: " + joined(allowed));
        }
        entries_.push_back(std::move(e));
    }
}

std::string Loader::scalar(const Entry& e, const std::string& path, std::string_view form) const {
    if (!e.value.IsScalar()) fail(e.mark(), path, std::string(form) + ", got " + describeNodeKind(e.value));
    return e.value.Scalar();
}

bool Loader::boolean(const Entry& e, const std::string& path) const {
    const std::string text = scalar(e, path, "expected true or false");
    const std::string l = lower(text);
    if (l == "true") return true;
    if (l == "false") return false;
    fail(e.mark(), path, quote(text) + " is not valid; expected true or false");
}

std::int64_t Loader::integer(const Entry& e, const std::string& path, std::int64_t min, std::int64_t max) const {
    const std::string form = "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    const std::string text = scalar(e, path, form);
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
        fail(e.mark(), path, quote(text) + " is not a whole number; " + form);
    if (ec == std::errc::result_out_of_range || value < min || value > max)
        fail(e.mark(), path, quote(text) + " is out of range; " + form);
    return value;
}

Millis Loader::duration(const Entry& e, const std::string& path, bool allowZero, std::string_view whyNotZero) const {
    const std::string text = scalar(e, path, "expected a duration like 30s");
    const auto d = parseDuration(text);
    if (!d) fail(e.mark(), path, d.error());
    if (!allowZero && d->count() == 0) {
        std::string problem = "must be greater than 0";
        if (!whyNotZero.empty()) problem += ": " + std::string(whyNotZero);
        fail(e.mark(), path, problem);
    }
    return *d;
}

std::size_t Loader::size(const Entry& e, const std::string& path, bool allowZero) const {
    const std::string text = scalar(e, path, "expected a size like 1MiB");
    const auto s = parseSize(text);
    if (!s) fail(e.mark(), path, s.error());
    if (!allowZero && *s == 0) fail(e.mark(), path, "must be greater than 0");
    return *s;
}

std::string Loader::header(const Entry& e, const std::string& path) const {
    const std::string text = scalar(e, path, "expected a header name like Idempotency-Key");
    if (!isToken(text))
        fail(e.mark(), path,
             quote(text) + " is not a valid header name (letters, digits and !#$%&'*+-.^_`|~, no spaces or colons)");
    return text;
}

std::vector<Entry> Loader::list(const Entry& e, const std::string& path, std::string_view form) const {
    if (!e.value.IsSequence()) fail(e.mark(), path, std::string(form) + ", got " + describeNodeKind(e.value));
    std::vector<Entry> items;
    for (std::size_t i = 0; i < e.value.size(); ++i) items.push_back(Entry{e.key, e.keyNode, e.value[i]});
    return items;
}

std::string indexPath(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

// ---------------------------------------------------------------------------------------------------

Config Loader::load(const YAML::Node& root) const {
    if (!root.IsMap())
        fail(root.Mark(), "", "expected a mapping with keys " + joined(kRootKeys) + " at the top level, got " +
                                  describeNodeKind(root));
    const Section top(*this, root, root.Mark(), "", kRootKeys);
    Config config;
    config.sourceFile = source_;
    config.server = readServer(top);
    config.log = readLog(top);
    config.store = readStore(top);
    config.upstreams = readUpstreams(top);
    config.routes = readRoutes(top, config);
    return config;
}

ServerConfig Loader::readServer(const Section& top) const {
    ServerConfig out;
    const Entry* e = top.find("server");
    if (!e) return out;
    const Section s(*this, e->value, e->mark(), "server", kServerKeys);
    if (const Entry* v = s.find("listen")) {
        const std::string path = s.pathOf("listen");
        const auto hp = parseHostPort(str(*v, path), false, 0, "127.0.0.1:8080 or [::1]:8080");
        if (!hp) fail(v->mark(), path, hp.error());
        out.host = hp->host;
        out.port = hp->port;
    }
    if (const Entry* v = s.find("max_threads"))
        out.maxThreads = static_cast<int>(integer(*v, s.pathOf("max_threads"), 1, 65535));
    if (const Entry* v = s.find("max_queued"))
        out.maxQueued = static_cast<int>(integer(*v, s.pathOf("max_queued"), 1, std::numeric_limits<int>::max()));
    if (const Entry* v = s.find("keep_alive_timeout"))
        out.keepAliveTimeout = duration(*v, s.pathOf("keep_alive_timeout"), false);
    if (const Entry* v = s.find("max_keep_alive_requests"))
        out.maxKeepAliveRequests =
            static_cast<int>(integer(*v, s.pathOf("max_keep_alive_requests"), 0, std::numeric_limits<int>::max()));
    if (const Entry* v = s.find("receive_timeout"))
        out.receiveTimeout = duration(*v, s.pathOf("receive_timeout"), false);
    if (const Entry* v = s.find("send_timeout")) out.sendTimeout = duration(*v, s.pathOf("send_timeout"), false);
    if (const Entry* v = s.find("engine")) out.engine = choice(*v, s.pathOf("engine"), kEngines);
    if (const Entry* v = s.find("max_connections"))
        out.maxConnections = static_cast<int>(integer(*v, s.pathOf("max_connections"), 1, 1000000));
    if (const Entry* v = s.find("io_threads"))
        out.ioThreads = static_cast<int>(integer(*v, s.pathOf("io_threads"), 0, 256));
    return out;
}

LogConfig Loader::readLog(const Section& top) const {
    LogConfig out;
    const Entry* e = top.find("log");
    if (!e) return out;
    const Section s(*this, e->value, e->mark(), "log", kLogKeys);
    if (const Entry* v = s.find("level")) out.level = choice(*v, s.pathOf("level"), kLogLevels);
    if (const Entry* v = s.find("access_log")) out.accessLog = boolean(*v, s.pathOf("access_log"));
    return out;
}

StoreConfig Loader::readStore(const Section& top) const {
    StoreConfig out;
    const Entry* e = top.find("store");
    if (!e) return out;
    const Section s(*this, e->value, e->mark(), "store", kStoreKeys);
    if (const Entry* v = s.find("type")) out.type = choice(*v, s.pathOf("type"), kStoreTypes);
    if (const Entry* v = s.find("max_response_size"))
        out.limits.maxResponseBytes = size(*v, s.pathOf("max_response_size"), false);

    // Only the section of the chosen type may appear: settings for another store would silently do nothing.
    const std::array<std::pair<std::string_view, StoreConfig::Type>, 4> sections{{
        {"memory", StoreConfig::Type::Memory},
        {"redis", StoreConfig::Type::Redis},
        {"redis_cluster", StoreConfig::Type::RedisCluster},
        {"postgres", StoreConfig::Type::Postgres},
    }};
    for (const auto& [key, type] : sections) {
        const Entry* sec = s.find(key);
        if (sec && type != out.type)
            fail(sec->keyNode.Mark(), s.pathOf(key),
                 "this section is for store type " + std::string(nameOf(kStoreTypes, type)) + ", but store.type is " +
                     std::string(nameOf(kStoreTypes, out.type)) + "; remove the section or change the type");
    }

    switch (out.type) {
    case StoreConfig::Type::Memory: {
        const Entry* sec = s.find("memory");
        if (!sec) break;
        const Section m(*this, sec->value, sec->mark(), s.pathOf("memory"), kMemoryKeys);
        if (const Entry* v = m.find("max_records"))
            out.memory.maxRecords = static_cast<std::size_t>(
                integer(*v, m.pathOf("max_records"), 1, std::numeric_limits<std::int64_t>::max()));
        if (const Entry* v = m.find("shards"))
            out.memory.shards = static_cast<std::size_t>(integer(*v, m.pathOf("shards"), 1, 65536));
        if (const Entry* v = m.find("sweep_interval"))
            out.memory.sweepInterval = duration(*v, m.pathOf("sweep_interval"), false);
        break;
    }
    case StoreConfig::Type::Redis:
    case StoreConfig::Type::RedisCluster: {
        const bool cluster = out.type == StoreConfig::Type::RedisCluster;
        const std::string_view key = cluster ? "redis_cluster" : "redis";
        const Entry* sec = s.find(key);
        const std::vector<std::pair<std::string_view, std::string>> hints{
            {"password", std::string(kPasswordHint)},
            {"address", "a cluster takes nodes: [host:port, ...], not address"},
            {"nodes", "nodes is for store type redis-cluster; a single Redis takes address: host:port"},
            {"max_redirects", "max_redirects is only for store type redis-cluster"},
            {"slot_refresh_interval", "slot_refresh_interval is only for store type redis-cluster"},
        };
        const Section r(*this, sec ? sec->value : YAML::Node(), sec ? sec->mark() : s.mark(), s.pathOf(key),
                        cluster ? kRedisClusterKeys : kRedisKeys, hints);
        readRedis(r, out.redis, cluster);
        break;
    }
    case StoreConfig::Type::Postgres: {
        const Entry* sec = s.find("postgres");
        const Section p(*this, sec ? sec->value : YAML::Node(), sec ? sec->mark() : s.mark(), s.pathOf("postgres"),
                        kPostgresKeys, {{"password", std::string(kPasswordHint)}});
        readPostgres(p, out.postgres);
        break;
    }
    }
    return out;
}

std::string Loader::readPassword(const Section& s) const {
    const Entry* env = s.find("password_env");
    const Entry* file = s.find("password_file");
    if (env && file)
        fail(file->keyNode.Mark(), s.pathOf("password_file"), "set password_env or password_file, not both");
    if (env) {
        const std::string path = s.pathOf("password_env");
        const std::string name = scalar(*env, path, "expected the name of an environment variable");
        const bool validName =
            !name.empty() && !(name[0] >= '0' && name[0] <= '9') && std::all_of(name.begin(), name.end(), [](char c) {
                return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
            });
        if (!validName)
            fail(env->mark(), path,
                 quote(name) + " is not a valid environment variable name (letters, digits and '_')");
        const char* value = std::getenv(name.c_str());
        if (!value) fail(env->mark(), path, "environment variable " + name + " is not set");
        if (*value == '\0') fail(env->mark(), path, "environment variable " + name + " is empty");
        return value;
    }
    if (file) {
        const std::string path = s.pathOf("password_file");
        const std::string name = scalar(*file, path, "expected a file path");
        if (name.empty()) fail(file->mark(), path, "expected a file path, got an empty string");
        std::filesystem::path p(name);
        if (p.is_relative() && !baseDir_.empty()) p = baseDir_ / p;
        std::FILE* f = std::fopen(p.c_str(), "rb");
        if (!f) fail(file->mark(), path, "cannot read " + p.string() + ": " + std::strerror(errno));
        std::string secret;
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) secret.append(buf, n);
        const bool bad = std::ferror(f) != 0;
        const int err = errno;
        std::fclose(f);
        if (bad) fail(file->mark(), path, "cannot read " + p.string() + ": " + std::strerror(err));
        while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
        if (secret.empty()) fail(file->mark(), path, p.string() + " is empty");
        return secret;
    }
    return {};
}

void Loader::readRedis(const Section& s, storage::RedisStoreConfig& out, bool cluster) const {
    if (cluster) {
        const Entry* nodes = s.find("nodes");
        if (!nodes)
            fail(s.mark(), s.pathOf("nodes"),
                 "a redis-cluster store needs at least one node (nodes: [host:port, ...])");
        const std::string path = s.pathOf("nodes");
        const auto items = list(*nodes, path, "expected a list of host:port");
        if (items.empty()) fail(nodes->mark(), path, "a redis-cluster store needs at least one node");
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string ip = indexPath(path, i);
            const auto hp = parseHostPort(scalar(items[i], ip, "expected host:port"), true, 0, "127.0.0.1:7000");
            if (!hp) fail(items[i].mark(), ip, hp.error());
            out.nodes.push_back(*hp);
        }
        if (const Entry* v = s.find("max_redirects"))
            out.maxRedirects = static_cast<int>(integer(*v, s.pathOf("max_redirects"), 1, 100));
        if (const Entry* v = s.find("slot_refresh_interval"))
            out.slotRefreshInterval = duration(*v, s.pathOf("slot_refresh_interval"), false);
    } else if (const Entry* v = s.find("address")) {
        const std::string path = s.pathOf("address");
        const auto hp = parseHostPort(str(*v, path), true, 0, "127.0.0.1:6379");
        if (!hp) fail(v->mark(), path, hp.error());
        out.address = *hp;
    }
    out.password = readPassword(s);
    if (const Entry* v = s.find("key_prefix")) {
        const std::string path = s.pathOf("key_prefix");
        out.keyPrefix = str(*v, path);
        if (out.keyPrefix.find_first_of("{}") != std::string::npos)
            fail(v->mark(), path,
                 "must not contain '{' or '}': records live at <prefix>{<id>} and the braces pick the cluster slot");
    }
    if (const Entry* v = s.find("pool_size"))
        out.poolSize = static_cast<std::size_t>(integer(*v, s.pathOf("pool_size"), 1, 65535));
    if (const Entry* v = s.find("pipeline_connections"))
        out.pipelineConnections = static_cast<std::size_t>(integer(*v, s.pathOf("pipeline_connections"), 0, 64));
    if (const Entry* v = s.find("connect_timeout"))
        out.connectTimeout = duration(*v, s.pathOf("connect_timeout"), false);
    if (const Entry* v = s.find("command_timeout"))
        out.commandTimeout = duration(*v, s.pathOf("command_timeout"), false);
    if (const Entry* v = s.find("pool_wait_timeout"))
        out.poolWaitTimeout = duration(*v, s.pathOf("pool_wait_timeout"), false);
    if (const Entry* v = s.find("require_noeviction"))
        out.requireNoEviction = boolean(*v, s.pathOf("require_noeviction"));
    if (const Entry* v = s.find("replay_read")) out.replayRead = choice(*v, s.pathOf("replay_read"), kReplayRead);
}

void Loader::readPostgres(const Section& s, storage::PostgresStoreConfig& out) const {
    const Entry* url = s.find("url");
    const std::string urlPath = s.pathOf("url");
    if (!url) fail(s.mark(), urlPath, "a postgres store needs url, e.g. postgresql://idem@127.0.0.1:5432/idem");
    out.url = str(*url, urlPath);
    if (out.url.empty()) fail(url->mark(), urlPath, "must not be empty, e.g. postgresql://idem@127.0.0.1:5432/idem");
    // A password inside the URL (user:secret@ or password=secret) would be printed and committed with the file.
    const std::string l = lower(out.url);
    for (std::size_t at = l.find("password"); at != std::string::npos; at = l.find("password", at + 1)) {
        // "password=..." as a key=value pair or a URI query parameter
        const bool keyStart = at == 0 || std::string_view(" \t?&").find(l[at - 1]) != std::string_view::npos;
        std::size_t next = at + 8;
        while (next < l.size() && (l[next] == ' ' || l[next] == '\t')) ++next;
        if (keyStart && next < l.size() && l[next] == '=')
            fail(url->mark(), urlPath, std::string(kPasswordHint) + ", not in the url (password=...)");
    }
    for (std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (!l.starts_with(scheme)) continue;
        const std::string_view rest = std::string_view(out.url).substr(scheme.size());
        const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
        const std::size_t at = authority.rfind('@');
        if (at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos)
            fail(url->mark(), urlPath, std::string(kPasswordHint) + ", not in the url (user:password@host)");
    }
    out.password = readPassword(s);
    if (const Entry* v = s.find("table")) {
        const std::string path = s.pathOf("table");
        out.table = str(*v, path);
        const std::size_t dot = out.table.find('.');
        const bool ok = dot == std::string::npos
                            ? isIdentifier(out.table)
                            : isIdentifier(std::string_view(out.table).substr(0, dot)) &&
                                  isIdentifier(std::string_view(out.table).substr(dot + 1));
        if (!ok)
            fail(v->mark(), path,
                 quote(out.table) +
                     " is not a valid table name; expected letters, digits and '_' (optionally schema.table)");
    }
    if (const Entry* v = s.find("pool_size"))
        out.poolSize = static_cast<std::size_t>(integer(*v, s.pathOf("pool_size"), 1, 65535));
    if (const Entry* v = s.find("pipeline_connections"))
        out.pipelineConnections = static_cast<std::size_t>(integer(*v, s.pathOf("pipeline_connections"), 0, 64));
    if (const Entry* v = s.find("connect_timeout"))
        out.connectTimeout = duration(*v, s.pathOf("connect_timeout"), false);
    if (const Entry* v = s.find("statement_timeout"))
        out.statementTimeout = duration(*v, s.pathOf("statement_timeout"), false);
    if (const Entry* v = s.find("pool_wait_timeout"))
        out.poolWaitTimeout = duration(*v, s.pathOf("pool_wait_timeout"), false);
    if (const Entry* v = s.find("migrate_on_start")) out.migrateOnStart = boolean(*v, s.pathOf("migrate_on_start"));
    if (const Entry* v = s.find("reap_interval")) out.reapInterval = duration(*v, s.pathOf("reap_interval"), true);
    if (const Entry* v = s.find("reap_batch"))
        out.reapBatch = static_cast<std::size_t>(integer(*v, s.pathOf("reap_batch"), 1, 1'000'000));
}

std::vector<UpstreamConfig> Loader::readUpstreams(const Section& top) const {
    const Entry* e = top.find("upstreams");
    if (!e)
        fail(top.mark(), "upstreams",
             "missing: at least one upstream is needed, e.g. upstreams: {payments: {url: http://127.0.0.1:9090}}");
    const Section s(*this, e->value, e->mark(), "upstreams", {}, {}, true);
    if (s.entries().empty()) fail(e->mark(), "upstreams", "at least one upstream is needed");
    std::vector<UpstreamConfig> out;
    for (const auto& u : s.entries()) out.push_back(readUpstream(u, s.pathOf(u.key)));
    return out;
}

UpstreamEndpoint Loader::endpointUrl(const Entry& url, const std::string& urlPath) const {
    UpstreamEndpoint out;
    const std::string text = str(url, urlPath);
    const std::string form =
        "expected a URL like http://127.0.0.1:9090, https://pay.example.com or http://host:port/base/path";
    const std::size_t sep = text.find("://");
    if (sep == std::string::npos) fail(url.mark(), urlPath, quote(text) + " is not a URL; " + form);
    const std::string scheme = lower(std::string_view(text).substr(0, sep));
    if (scheme != "http" && scheme != "https") fail(url.mark(), urlPath, "unsupported scheme " + quote(scheme) + "; " + form);
    out.scheme = scheme;
    const std::string_view rest = std::string_view(text).substr(sep + 3);
    if (rest.find_first_of("?#") != std::string_view::npos)
        fail(url.mark(), urlPath, "must not have a query or fragment; " + form);
    const std::size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (authority.find('@') != std::string_view::npos)
        fail(url.mark(), urlPath, "user info (user@host) is not supported in upstream URLs");
    const auto hp = parseHostPort(authority, true, scheme == "https" ? 443 : 80, "127.0.0.1:9090");
    if (!hp) fail(url.mark(), urlPath, hp.error());
    out.host = hp->host;
    out.port = hp->port;
    if (slash != std::string_view::npos) {
        std::string base(rest.substr(slash));
        while (!base.empty() && base.back() == '/') base.pop_back();  // "/api/" and "/api" are the same prefix
        if (base.find("//") != std::string::npos)
            fail(url.mark(), urlPath, "the base path has an empty segment (\"//\")");
        for (char c : base) {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x21 || u > 0x7E)
                fail(url.mark(), urlPath, "the base path has a character outside printable ASCII");
        }
        out.basePath = base;
    }
    return out;
}

double Loader::ratio(const Entry& e, const std::string& path, bool allowZero) const {
    const std::string form = std::string("expected a share like 10% or 0.1, ") + (allowZero ? "from 0%" : "above 0%") +
                             " to 100%";
    const std::string text = scalar(e, path, form);
    const bool percent = !text.empty() && text.back() == '%';
    const std::string_view number = std::string_view(text).substr(0, text.size() - (percent ? 1 : 0));
    double value = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (number.empty() || ec != std::errc() || end != number.data() + number.size() || !(value >= 0))
        fail(e.mark(), path, quote(text) + " is not valid; " + form);
    if (percent) value /= 100.0;
    if (value > 1.0 + 1e-12 || (!allowZero && value <= 0)) fail(e.mark(), path, quote(text) + " is out of range; " + form);
    return std::min(value, 1.0);
}

void Loader::readTimeouts(const Section& s, UpstreamTimeoutOverride& out) const {
    if (const Entry* v = s.find("connect")) out.connect = duration(*v, s.pathOf("connect"), false);
    if (const Entry* v = s.find("send")) out.send = duration(*v, s.pathOf("send"), false);
    if (const Entry* v = s.find("first_byte")) out.firstByte = duration(*v, s.pathOf("first_byte"), false);
    if (const Entry* v = s.find("total"))
        out.total = duration(*v, s.pathOf("total"), false);
}

UpstreamConfig Loader::readUpstream(const Entry& e, const std::string& path) const {
    if (!isName(e.key))
        fail(e.keyNode.Mark(), path, "upstream names may use letters, digits, '-' and '_' (at most 64 characters)");
    const Section s(*this, e.value, e.mark(), path, kUpstreamKeys);
    UpstreamConfig out;
    out.name = e.key;

    // Endpoints: `url:` (one) or `endpoints:` (a list of URLs or {url, weight}).
    const Entry* url = s.find("url");
    const Entry* endpoints = s.find("endpoints");
    if (url && endpoints)
        fail(endpoints->keyNode.Mark(), s.pathOf("endpoints"), "give url (one endpoint) or endpoints, not both");
    if (!url && !endpoints)
        fail(s.mark(), s.pathOf("url"),
             "missing: every upstream needs a url like http://127.0.0.1:9090, or endpoints: "
             "[{url: http://10.0.0.1:9090, weight: 2}, http://10.0.0.2:9090]");
    Origin firstWeight;  // where a weight was first given, for the error below
    if (url) out.endpoints.push_back(endpointUrl(*url, s.pathOf("url")));
    if (endpoints) {
        const std::string listPath = s.pathOf("endpoints");
        const auto items =
            list(*endpoints, listPath,
                 "expected a list of endpoints like [{url: http://10.0.0.1:9090, weight: 2}, http://10.0.0.2:9090]");
        if (items.empty()) fail(endpoints->mark(), listPath, "list at least one endpoint");
        if (items.size() > core::Balancer::kMaxEndpoints)
            fail(endpoints->mark(), listPath,
                 "at most " + std::to_string(core::Balancer::kMaxEndpoints) + " endpoints per upstream");
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string ip = indexPath(listPath, i);
            UpstreamEndpoint ep;
            if (items[i].value.IsScalar()) {
                ep = endpointUrl(items[i], ip);
            } else {
                const Section es(*this, items[i].value, items[i].mark(), ip, kEndpointKeys);
                const Entry* u = es.find("url");
                if (!u) fail(es.mark(), es.pathOf("url"), "missing: every endpoint needs a url like http://10.0.0.1:9090");
                ep = endpointUrl(*u, es.pathOf("url"));
                if (const Entry* w = es.find("weight")) {
                    ep.weight = static_cast<std::uint32_t>(integer(*w, es.pathOf("weight"), 1, 10000));
                    if (!firstWeight.set) firstWeight = Origin{true, es.pathOf("weight"), w->mark()};
                }
            }
            for (const auto& prior : out.endpoints)
                if (prior.scheme == ep.scheme && prior.host == ep.host && prior.port == ep.port &&
                    prior.basePath == ep.basePath)
                    fail(items[i].mark(), ip, "this endpoint is listed twice");
            out.endpoints.push_back(std::move(ep));
        }
    }
    if (const Entry* v = s.find("balance")) out.balance = choice(*v, s.pathOf("balance"), kBalance);
    if (firstWeight.set && out.balance == core::BalancePolicy::RoundRobin)
        fail(firstWeight.mark, firstWeight.path,
             "weights apply to balance: weighted or least_connections; set balance, or leave the weight out");

    // Timeouts, with the single-key spellings of the first release as aliases.
    UpstreamTimeoutOverride t;
    if (const Entry* v = s.find("timeouts")) {
        const Section ts(*this, v->value, v->mark(), s.pathOf("timeouts"), kTimeoutKeys);
        readTimeouts(ts, t);
    }
    if (const Entry* v = s.find("connect_timeout")) {
        if (t.connect)
            fail(v->keyNode.Mark(), s.pathOf("connect_timeout"),
                 "connect_timeout is another spelling of timeouts.connect; give only one");
        t.connect = duration(*v, s.pathOf("connect_timeout"), false);
    }
    if (const Entry* v = s.find("timeout")) {
        if (t.total)
            fail(v->keyNode.Mark(), s.pathOf("timeout"), "timeout is another spelling of timeouts.total; give only one");
        t.total = duration(*v, s.pathOf("timeout"), false);
    }
    out.timeouts = effectiveTimeouts(out.timeouts, t);

    Origin idleOrigin;
    Origin maxConnectionsOrigin;
    if (const Entry* v = s.find("pool")) {
        const Section ps(*this, v->value, v->mark(), s.pathOf("pool"), kPoolKeys);
        if (const Entry* x = ps.find("max_connections")) {
            out.pool.maxConnections = static_cast<std::size_t>(integer(*x, ps.pathOf("max_connections"), 1, 65535));
            maxConnectionsOrigin = Origin{true, ps.pathOf("max_connections"), x->mark()};
        }
        if (const Entry* x = ps.find("max_idle")) {
            out.pool.maxIdle = static_cast<std::size_t>(integer(*x, ps.pathOf("max_idle"), 0, 65535));
            idleOrigin = Origin{true, ps.pathOf("max_idle"), x->mark()};
        }
        if (const Entry* x = ps.find("idle_timeout")) out.pool.idleTimeout = duration(*x, ps.pathOf("idle_timeout"), false);
        if (const Entry* x = ps.find("acquire_timeout"))
            out.pool.acquireTimeout = duration(*x, ps.pathOf("acquire_timeout"), true);
    }
    if (const Entry* v = s.find("pool_size")) {
        if (idleOrigin.set)
            fail(v->keyNode.Mark(), s.pathOf("pool_size"), "pool_size is another spelling of pool.max_idle; give only one");
        out.pool.maxIdle = static_cast<std::size_t>(integer(*v, s.pathOf("pool_size"), 1, 65535));
        idleOrigin = Origin{true, s.pathOf("pool_size"), v->mark()};
    }
    if (out.pool.maxIdle > out.pool.maxConnections) {
        const Origin& at = idleOrigin.set ? idleOrigin : maxConnectionsOrigin;  // the defaults agree: one is set
        fail(at.mark, at.path,
             "max_idle " + std::to_string(out.pool.maxIdle) + " is larger than max_connections " +
                 std::to_string(out.pool.maxConnections) + "; idle connections count against max_connections");
    }

    if (const Entry* v = s.find("health")) {
        const Section hs(*this, v->value, v->mark(), s.pathOf("health"), kHealthKeys);
        if (const Entry* x = hs.find("path")) {
            out.health.path = scalar(*x, hs.pathOf("path"), "expected a request path like /healthz, or \"\" for no checks");
            if (!out.health.path.empty()) {
                if (out.health.path.front() != '/')
                    fail(x->mark(), hs.pathOf("path"), "must start with '/', e.g. /healthz (or be \"\": no checks)");
                for (char c : out.health.path) {
                    const auto u = static_cast<unsigned char>(c);
                    if (u < 0x21 || u > 0x7E || c == '#')
                        fail(x->mark(), hs.pathOf("path"), "must be printable ASCII without spaces or '#'");
                }
            }
        }
        if (const Entry* x = hs.find("interval")) out.health.interval = duration(*x, hs.pathOf("interval"), false);
        if (const Entry* x = hs.find("timeout")) out.health.timeout = duration(*x, hs.pathOf("timeout"), false);
        if (const Entry* x = hs.find("healthy_threshold"))
            out.health.healthyThreshold = static_cast<std::uint32_t>(integer(*x, hs.pathOf("healthy_threshold"), 1, 100));
        if (const Entry* x = hs.find("unhealthy_threshold"))
            out.health.unhealthyThreshold =
                static_cast<std::uint32_t>(integer(*x, hs.pathOf("unhealthy_threshold"), 1, 100));
        if (out.health.timeout > out.health.interval) {
            const Entry* x = hs.find("timeout") ? hs.find("timeout") : hs.find("interval");
            fail(x->mark(), hs.pathOf(hs.find("timeout") ? "timeout" : "interval"),
                 "the check timeout " + formatDuration(out.health.timeout) + " is longer than the interval " +
                     formatDuration(out.health.interval) + "; a check must end before the next one is due");
        }
    }
    if (const Entry* v = s.find("passive")) {
        const Section ps(*this, v->value, v->mark(), s.pathOf("passive"), kPassiveKeys);
        if (const Entry* x = ps.find("consecutive_failures"))
            out.passive.consecutiveFailures =
                static_cast<std::uint32_t>(integer(*x, ps.pathOf("consecutive_failures"), 0, 1000));
        if (const Entry* x = ps.find("ejection")) out.passive.ejection = duration(*x, ps.pathOf("ejection"), false);
    }
    if (const Entry* v = s.find("breaker")) {
        const Section bs(*this, v->value, v->mark(), s.pathOf("breaker"), kBreakerKeys);
        if (const Entry* x = bs.find("enabled")) out.breaker.enabled = boolean(*x, bs.pathOf("enabled"));
        if (const Entry* x = bs.find("failure_rate")) out.breaker.failureRate = ratio(*x, bs.pathOf("failure_rate"), false);
        if (const Entry* x = bs.find("window")) out.breaker.window = duration(*x, bs.pathOf("window"), false);
        if (const Entry* x = bs.find("min_requests"))
            out.breaker.minRequests = static_cast<std::uint32_t>(integer(*x, bs.pathOf("min_requests"), 1, 1'000'000));
        if (const Entry* x = bs.find("open_for")) out.breaker.openFor = duration(*x, bs.pathOf("open_for"), false);
    }
    if (const Entry* v = s.find("retry")) {
        const Section rs(*this, v->value, v->mark(), s.pathOf("retry"), kRetryKeys);
        if (const Entry* x = rs.find("attempts"))
            out.retry.attempts = static_cast<std::uint32_t>(integer(*x, rs.pathOf("attempts"), 1, 10));
        if (const Entry* x = rs.find("base_backoff")) out.retry.baseBackoff = duration(*x, rs.pathOf("base_backoff"), true);
        if (const Entry* x = rs.find("max_backoff")) out.retry.maxBackoff = duration(*x, rs.pathOf("max_backoff"), true);
        if (const Entry* x = rs.find("budget")) out.retry.budget = ratio(*x, rs.pathOf("budget"), true);
        if (const Entry* x = rs.find("budget_window"))
            out.retry.budgetWindow = duration(*x, rs.pathOf("budget_window"), false);
        if (const Entry* x = rs.find("budget_min"))
            out.retry.budgetMin = static_cast<std::uint32_t>(integer(*x, rs.pathOf("budget_min"), 0, 1'000'000));
        if (out.retry.maxBackoff < out.retry.baseBackoff) {
            const bool maxSet = rs.find("max_backoff") != nullptr;
            const Entry* x = maxSet ? rs.find("max_backoff") : rs.find("base_backoff");
            fail(x->mark(), rs.pathOf(maxSet ? "max_backoff" : "base_backoff"),
                 "max_backoff " + formatDuration(out.retry.maxBackoff) + " is shorter than base_backoff " +
                     formatDuration(out.retry.baseBackoff));
        }
    }
    if (const Entry* v = s.find("dns_ttl")) out.dnsTtl = duration(*v, s.pathOf("dns_ttl"), false);
    if (const Entry* v = s.find("tls")) {
        const bool anyHttps = std::any_of(out.endpoints.begin(), out.endpoints.end(),
                                          [](const UpstreamEndpoint& ep) { return ep.scheme == "https"; });
        if (!anyHttps)
            fail(v->keyNode.Mark(), s.pathOf("tls"), "tls settings apply to https endpoints; this upstream has none");
        const Section ts(*this, v->value, v->mark(), s.pathOf("tls"), kTlsKeys);
        if (const Entry* x = ts.find("verify")) out.tls.verify = boolean(*x, ts.pathOf("verify"));
        if (const Entry* x = ts.find("ca_file")) {
            const std::string p = ts.pathOf("ca_file");
            const std::string name = scalar(*x, p, "expected the path of a PEM file of CA certificates");
            if (name.empty()) fail(x->mark(), p, "expected a file path, got an empty string (leave ca_file out for the system CAs)");
            std::filesystem::path file(name);
            if (file.is_relative() && !baseDir_.empty()) file = baseDir_ / file;
            std::FILE* f = std::fopen(file.c_str(), "rb");
            if (!f) fail(x->mark(), p, "cannot read " + file.string() + ": " + std::strerror(errno));
            std::string head(4096, '\0');
            head.resize(std::fread(head.data(), 1, head.size(), f));
            std::fclose(f);
            if (head.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
                fail(x->mark(), p, file.string() + " does not look like a PEM certificate file (no BEGIN CERTIFICATE line)");
            out.tls.caFile = file.string();
        }
        if (const Entry* x = ts.find("server_name")) {
            out.tls.serverName = scalar(*x, ts.pathOf("server_name"), "expected a host name like pay.example.com");
            if (!isHostName(out.tls.serverName))
                fail(x->mark(), ts.pathOf("server_name"), quote(out.tls.serverName) + " is not a valid host name");
        }
    }
    return out;
}

std::vector<std::string> Loader::readMethods(const Entry& e, const std::string& path, bool allowEmpty) const {
    const auto items = list(e, path, "expected a list of methods like [POST, PATCH]");
    if (items.empty() && !allowEmpty)
        fail(e.mark(), path, "list at least one method, or leave the key out to match any method");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const std::string ip = indexPath(path, i);
        const std::string m = scalar(items[i], ip, "expected a method name like POST");
        if (const auto err = methodError(m)) fail(items[i].mark(), ip, *err);
        if (std::find(out.begin(), out.end(), m) != out.end()) fail(items[i].mark(), ip, m + " is listed twice");
        out.push_back(m);
    }
    return out;
}

void Loader::readPolicy(const Section& s, core::RoutePolicy& p, PolicyOrigins& origins) const {
    auto origin = [&](Origin& o, const Entry& v, const std::string& path) { o = Origin{true, path, v.mark()}; };
    if (const Entry* v = s.find("idempotency")) p.mode = choice(*v, s.pathOf("idempotency"), kModes);
    if (const Entry* v = s.find("idempotent_methods"))
        p.methods = readMethods(*v, s.pathOf("idempotent_methods"), true);
    if (const Entry* v = s.find("key_header")) p.keyHeader = header(*v, s.pathOf("key_header"));
    if (const Entry* v = s.find("key_format")) p.keyFormat = choice(*v, s.pathOf("key_format"), kKeyFormats);
    if (const Entry* v = s.find("tenant_header")) {
        // Empty or null means "no tenant", so a route can switch off a tenant_header set in route_defaults.
        if (v->value.IsNull() || (v->value.IsScalar() && v->value.Scalar().empty())) p.tenantHeader.clear();
        else p.tenantHeader = header(*v, s.pathOf("tenant_header"));
    }
    if (const Entry* fpEntry = s.find("fingerprint")) {
        // Merged key by key: a route may change fingerprint.body and keep route_defaults' headers.
        const Section fp(*this, fpEntry->value, fpEntry->mark(), s.pathOf("fingerprint"), kFingerprintKeys);
        if (const Entry* v = fp.find("body")) p.body = choice(*v, fp.pathOf("body"), kBodyModes);
        if (const Entry* v = fp.find("query")) p.fingerprintQuery = boolean(*v, fp.pathOf("query"));
        if (const Entry* v = fp.find("headers")) {
            const std::string path = fp.pathOf("headers");
            const auto items = list(*v, path, "expected a list of header names");
            p.fingerprintHeaders.clear();
            for (std::size_t i = 0; i < items.size(); ++i) {
                const std::string ip = indexPath(path, i);
                const std::string h = header(items[i], ip);
                for (const auto& prior : p.fingerprintHeaders)
                    if (lower(prior) == lower(h))
                        fail(items[i].mark(), ip, h + " is listed twice (header names ignore case)");
                p.fingerprintHeaders.push_back(h);
            }
        }
    }
    if (const Entry* v = s.find("max_body")) p.maxBody = size(*v, s.pathOf("max_body"), true);
    if (const Entry* v = s.find("max_stored_response")) {
        p.maxStoredResponse = size(*v, s.pathOf("max_stored_response"), false);
        origin(origins.maxStoredResponse, *v, s.pathOf("max_stored_response"));
    }
    if (const Entry* v = s.find("ttl")) {
        p.ttl = duration(*v, s.pathOf("ttl"), false, "records would expire as soon as they are written");
        origin(origins.ttl, *v, s.pathOf("ttl"));
    }
    if (const Entry* v = s.find("lease")) {
        p.lease = duration(*v, s.pathOf("lease"), false,
                           "a zero lease makes every request in flight look abandoned at once, so a retry would "
                           "run the operation again (B05); leave lease out for the default (upstream timeout + 5s)");
        origin(origins.lease, *v, s.pathOf("lease"));
    }
    if (const Entry* v = s.find("release_on")) {
        const std::string path = s.pathOf("release_on");
        const auto items = list(*v, path, "expected a list of HTTP statuses like [408, 425, 429, 503]");
        p.releaseOn.clear();
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string ip = indexPath(path, i);
            const std::string text = scalar(items[i], ip, "expected an HTTP status from 400 to 599");
            int status = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), status);
            if (text.empty() || ec != std::errc() || end != text.data() + text.size() || status < 400 || status > 599)
                fail(items[i].mark(), ip,
                     quote(text) + " is not allowed; release_on takes error statuses from 400 to 599 (a 2xx or 3xx "
                                   "answer is definite and is always recorded)");
            if (std::find(p.releaseOn.begin(), p.releaseOn.end(), status) != p.releaseOn.end())
                fail(items[i].mark(), ip, text + " is listed twice");
            p.releaseOn.push_back(status);
        }
    }
    if (const Entry* v = s.find("on_unknown")) p.onUnknown = choice(*v, s.pathOf("on_unknown"), kOnUnknown);
    if (const Entry* v = s.find("on_in_flight")) p.onInFlight = choice(*v, s.pathOf("on_in_flight"), kOnInFlight);
    if (const Entry* v = s.find("wait_max")) p.waitMax = duration(*v, s.pathOf("wait_max"), false);
    if (const Entry* v = s.find("store_failure")) p.storeFailure = choice(*v, s.pathOf("store_failure"), kStoreFailure);
    if (const Entry* v = s.find("forward_key")) p.forwardKey = choice(*v, s.pathOf("forward_key"), kForwardKey);
    if (const Entry* v = s.find("forward_key_header")) p.forwardKeyHeader = header(*v, s.pathOf("forward_key_header"));
    if (const Entry* v = s.find("allow_set_cookie")) p.allowSetCookie = boolean(*v, s.pathOf("allow_set_cookie"));
}

std::vector<RouteConfig> Loader::readRoutes(const Section& top, const Config& config) const {
    core::RoutePolicy defaults;
    PolicyOrigins defaultOrigins;
    if (const Entry* d = top.find("route_defaults")) {
        const std::string hint = " belongs to each route, not to route_defaults";
        const Section s(*this, d->value, d->mark(), "route_defaults", kPolicyKeys,
                        {{"path", "path" + hint},
                         {"upstream", "upstream" + hint},
                         {"methods", "methods" + hint},
                         {"enabled", "enabled" + hint},
                         {"disabled", "disabled" + hint},
                         {"versions", "versions" + hint},
                         {"upstream_timeouts", "upstream_timeouts" + hint}});
        readPolicy(s, defaults, defaultOrigins);
    }
    // Unless set, a route stores at most what the store accepts.
    if (!defaultOrigins.maxStoredResponse.set)
        defaults.maxStoredResponse = std::min(defaults.maxStoredResponse, config.store.limits.maxResponseBytes);

    const Entry* e = top.find("routes");
    if (!e)
        fail(
            top.mark(), "routes",
            "missing: at least one route is needed, e.g. routes: {payments: {path: /v1/payments, upstream: payments}}");
    const Section routes(*this, e->value, e->mark(), "routes", {}, {}, true);
    if (routes.entries().empty()) fail(e->mark(), "routes", "at least one route is needed");

    const auto keys = routeKeys();
    std::vector<RouteConfig> out;
    for (const auto& entry : routes.entries()) {
        const std::string path = routes.pathOf(entry.key);
        if (!isName(entry.key))
            fail(entry.keyNode.Mark(), path,
                 "route ids may use letters, digits, '-' and '_' (at most 64 characters); the id is part of every "
                 "record's scope");
        const Section r(*this, entry.value, entry.mark(), path, keys);
        RouteConfig route;
        route.id = entry.key;
        if (const Entry* v = r.find("methods")) route.matchMethods = readMethods(*v, r.pathOf("methods"), false);

        const Entry* p = r.find("path");
        if (!p) fail(r.mark(), r.pathOf("path"), "missing: every route needs a path like /v1/payments");
        route.path = str(*p, r.pathOf("path"));
        if (const auto err = core::Router::patternError(route.path))
            fail(p->mark(), r.pathOf("path"),
                 "invalid path pattern " + quote(route.path) + ": " + *err +
                     "; expected literal segments and {name} segments, e.g. /v1/payments/{id}:capture");

        const Entry* u = r.find("upstream");
        if (!u) fail(r.mark(), r.pathOf("upstream"), "missing: every route needs an upstream");
        route.upstream = str(*u, r.pathOf("upstream"));
        const UpstreamConfig* upstream = findUpstream(*u, r.pathOf("upstream"), route.upstream, config);
        if (const Entry* v = r.find("enabled")) route.enabled = boolean(*v, r.pathOf("enabled"));
        if (const Entry* v = r.find("disabled")) route.disabledAction = choice(*v, r.pathOf("disabled"), kDisabledActions);

        route.policy = defaults;
        PolicyOrigins origins = defaultOrigins;
        readPolicy(r, route.policy, origins);
        route.policy.routeId = route.id;
        if (const Entry* v = r.find("versions")) readVersions(*v, r.pathOf("versions"), route, config);
        if (const Entry* v = r.find("upstream_timeouts")) {
            const Section ts(*this, v->value, v->mark(), r.pathOf("upstream_timeouts"), kTimeoutKeys);
            readTimeouts(ts, route.upstreamTimeouts);
        }
        // The lease covers the slowest upstream the route may forward to (its own or a version's): the
        // upstream deadline (timeouts.total, or the route's upstream_timeouts.total) bounds the whole
        // call, connect attempts and retries included.
        Millis deadline = effectiveTimeouts(upstream->timeouts, route.upstreamTimeouts).total;
        for (const auto& version : route.policy.versions.versions) {
            const UpstreamConfig* vu = config.findUpstream(version.upstream);
            const Millis d = effectiveTimeouts(vu->timeouts, route.upstreamTimeouts).total;
            if (d > deadline) {
                deadline = d;
                upstream = vu;
            }
        }
        if (!origins.lease.set) route.policy.lease = deadline + std::chrono::seconds(5);
        checkRoute(r, route, origins, *upstream, deadline, config);
        out.push_back(std::move(route));
    }
    return out;
}

const UpstreamConfig* Loader::findUpstream(const Entry& e, const std::string& path, const std::string& name,
                                           const Config& config) const {
    if (const UpstreamConfig* u = config.findUpstream(name)) return u;
    std::string known;
    for (const auto& up : config.upstreams) known += (known.empty() ? "" : ", ") + up.name;
    fail(e.mark(), path, "no upstream named " + quote(name) + "; defined: " + known);
}

std::string Loader::date(const Entry& e, const std::string& path) const {
    constexpr std::string_view kForm =
        "expected an HTTP-date like \"Wed, 01 Jan 2025 00:00:00 GMT\" (its day name matching the date) or a date "
        "like 2025-01-01, or \"\" for none";
    const std::string text = scalar(e, path, kForm);
    if (text.empty() || core::parseHttpDate(text)) return text;
    if (const auto day = core::parseIsoDate(text)) return core::formatHttpDate(*day);
    fail(e.mark(), path, quote(text) + " is not a date; " + std::string(kForm));
}

void Loader::readVersions(const Entry& e, const std::string& path, RouteConfig& route, const Config& config) const {
    const Section s(*this, e.value, e.mark(), path, kVersionsKeys);
    core::VersionPolicy& vp = route.policy.versions;
    vp.routePattern = route.path;
    const auto params = patternParams(route.path);

    if (const Entry* v = s.find("path_param")) {
        const std::string p = s.pathOf("path_param");
        vp.pathParam = scalar(*v, p, "expected a parameter name of the route's path, like version");
        if (!isIdentifier(vp.pathParam))
            fail(v->mark(), p,
                 quote(vp.pathParam) + " is not a parameter name; expected letters, digits and '_' (not starting "
                                       "with a digit), like version");
    }
    if (const Entry* v = s.find("header")) vp.header = header(*v, s.pathOf("header"));
    if (const Entry* v = s.find("media_type")) {
        const std::string p = s.pathOf("media_type");
        vp.mediaTypeName = scalar(*v, p, "expected the NAME of application/vnd.NAME.v2+json, like payments");
        const bool ok = std::all_of(vp.mediaTypeName.begin(), vp.mediaTypeName.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                   c == '-' || c == '_';
        });
        if (!ok)
            fail(v->mark(), p,
                 quote(vp.mediaTypeName) +
                     " is not valid; expected the NAME of application/vnd.NAME.v2+json (letters, digits, '.', '-', "
                     "'_'), like payments, or \"\" to turn the Accept source off");
    }
    if (const Entry* v = s.find("query_param")) {
        const std::string p = s.pathOf("query_param");
        vp.queryParam = scalar(*v, p, "expected a query parameter name like version");
        const bool ok = !vp.queryParam.empty() && std::all_of(vp.queryParam.begin(), vp.queryParam.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                   c == '-' || c == '_' || c == '~';
        });
        if (!ok)
            fail(v->mark(), p,
                 quote(vp.queryParam) + " is not a valid query parameter name; expected letters, digits, '.', '-', "
                                        "'_' or '~', like version");
    }
    if (const Entry* v = s.find("scope")) vp.sharedScope = choice(*v, s.pathOf("scope"), kVersionScopes);

    const Entry* listEntry = s.find("list");
    const std::string listPath = s.pathOf("list");
    if (!listEntry)
        fail(s.mark(), listPath, "missing: a versioned route lists its versions, e.g. list: {\"1\": {}, \"2\": {}}");
    const Section versions(*this, listEntry->value, listEntry->mark(), listPath, {}, {}, true);
    if (versions.entries().empty())
        fail(listEntry->mark(), listPath, "list at least one version, e.g. list: {\"1\": {}, \"2\": {}}");
    for (const auto& v : versions.entries()) vp.versions.push_back(readVersion(v, versions.pathOf(v.key), route, config));

    if (const Entry* v = s.find("default")) {
        const std::string p = s.pathOf("default");
        vp.defaultVersion = scalar(*v, p, "expected a version listed under list, or \"\" to require one");
        if (!vp.defaultVersion.empty() && vp.find(vp.defaultVersion) == nullptr) {
            std::string known;
            for (const auto& version : vp.versions) known += (known.empty() ? "" : ", ") + version.name;
            fail(v->mark(), p,
                 quote(vp.defaultVersion) + " is not a listed version; expected one of: " + known +
                     ", or \"\" to require one");
        }
    }

    // Where the path version comes from: a {path_param} segment of the route's own pattern.
    const auto param = std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == vp.pathParam; });
    const bool pathUsable = param != params.end() && !param->second;
    const std::string pathProblem =
        param == params.end()
            ? "the path source needs {" + vp.pathParam + "} in the route's path (e.g. /{" + vp.pathParam +
                  "}/payments), but the path is " + route.path
            : "the path source needs {" + vp.pathParam + "} to be one segment, not {" + vp.pathParam + "...}";
    if (const Entry* v = s.find("sources")) {
        const std::string p = s.pathOf("sources");
        const auto items = list(*v, p, "expected a list of sources from: path, header, accept, query");
        if (items.empty())
            fail(v->mark(), p, "list at least one source (path, header, accept, query), or leave sources out for all");
        vp.order.clear();
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string ip = indexPath(p, i);
            const core::VersionSource source = choice(items[i], ip, kVersionSources);
            if (std::find(vp.order.begin(), vp.order.end(), source) != vp.order.end())
                fail(items[i].mark(), ip, std::string(core::versionSourceName(source)) + " is listed twice");
            if (source == core::VersionSource::Path && !pathUsable) fail(items[i].mark(), ip, pathProblem);
            if (source == core::VersionSource::Accept && vp.mediaTypeName.empty())
                fail(items[i].mark(), ip,
                     "the accept source needs media_type (the NAME of application/vnd.NAME.v2+json)");
            vp.order.push_back(source);
        }
    } else {
        // The default sources, less those this route cannot use.
        if (const Entry* v = s.find("path_param"); v != nullptr && !pathUsable)
            fail(v->mark(), s.pathOf("path_param"), pathProblem);
        std::erase_if(vp.order, [&](core::VersionSource source) {
            return (source == core::VersionSource::Path && !pathUsable) ||
                   (source == core::VersionSource::Accept && vp.mediaTypeName.empty());
        });
    }
}

core::VersionSpec Loader::readVersion(const Entry& e, const std::string& path, const RouteConfig& route,
                                      const Config& config) const {
    if (!isName(e.key))
        fail(e.keyNode.Mark(), path,
             "version names may use letters, digits, '-' and '_' (at most 64 characters), like 2 or 2024-06-01");
    const Section s(*this, e.value, e.mark(), path, kVersionKeys);
    core::VersionSpec out;
    out.name = e.key;
    out.upstream = route.upstream;
    if (const Entry* v = s.find("upstream")) {
        out.upstream = str(*v, s.pathOf("upstream"));
        findUpstream(*v, s.pathOf("upstream"), out.upstream, config);
    }
    if (const Entry* v = s.find("rewrite")) {
        const std::string p = s.pathOf("rewrite");
        out.rewrite = scalar(*v, p, "expected a path template like /legacy/payments/{id}, or \"\" for none");
        if (!out.rewrite.empty()) {
            const auto params = patternParams(route.path);
            const std::string form = "expected a path template like /legacy/payments/{id}";
            if (out.rewrite.front() != '/') fail(v->mark(), p, quote(out.rewrite) + " must start with '/'; " + form);
            std::size_t i = 0;
            while (i < out.rewrite.size()) {
                const char c = out.rewrite[i];
                const auto u = static_cast<unsigned char>(c);
                if (c == '?' || c == '#')
                    fail(v->mark(), p, "must not contain a query or fragment ('?' or '#'); the request's query is kept");
                if (u < 0x21 || u > 0x7E) fail(v->mark(), p, "has a character outside printable ASCII");
                if (c == '}') fail(v->mark(), p, "has a stray '}'; " + form);
                if (c != '{') {
                    ++i;
                    continue;
                }
                const std::size_t close = out.rewrite.find('}', i);
                if (close == std::string::npos) fail(v->mark(), p, "has an unclosed '{'; " + form);
                std::string name = out.rewrite.substr(i + 1, close - i - 1);
                if (name.ends_with("...")) name.resize(name.size() - 3);
                if (std::none_of(params.begin(), params.end(), [&](const auto& q) { return q.first == name; })) {
                    std::string known;
                    for (const auto& q : params) known += (known.empty() ? "" : ", ") + ("{" + q.first + "}");
                    fail(v->mark(), p,
                         "{" + name + "} is not a parameter of the route's path " + route.path +
                             (known.empty() ? " (it has none)" : "; its parameters: " + known));
                }
                i = close + 1;
            }
        }
    }
    if (const Entry* v = s.find("deprecated")) out.deprecated = boolean(*v, s.pathOf("deprecated"));
    if (const Entry* v = s.find("deprecation_date")) {
        out.deprecationDate = date(*v, s.pathOf("deprecation_date"));
        if (!out.deprecationDate.empty() && !out.deprecated)
            fail(v->mark(), s.pathOf("deprecation_date"), "a deprecation date needs deprecated: true");
    }
    if (const Entry* v = s.find("sunset")) {
        out.sunset = date(*v, s.pathOf("sunset"));
        const auto since = core::parseHttpDate(out.deprecationDate);
        const auto end = core::parseHttpDate(out.sunset);
        if (since && end && *end < *since)
            fail(v->mark(), s.pathOf("sunset"),
                 "the sunset " + out.sunset + " is before the deprecation date " + out.deprecationDate +
                     " (RFC 9745 §3: a resource is deprecated before it goes away)");
    }
    if (const Entry* v = s.find("link")) {
        const std::string p = s.pathOf("link");
        out.link = scalar(*v, p, "expected the URL of the deprecation docs, like https://docs.example.com/v1");
        if (!out.link.empty()) {
            const std::string l = lower(out.link);
            const std::size_t scheme = l.starts_with("https://") ? 8 : l.starts_with("http://") ? 7 : 0;
            const bool printable = std::all_of(out.link.begin(), out.link.end(), [](char c) {
                const auto u = static_cast<unsigned char>(c);
                return u >= 0x21 && u <= 0x7E && c != '<' && c != '>' && c != '"';
            });
            if (scheme == 0 || out.link.size() == scheme || !printable)
                fail(v->mark(), p,
                     quote(out.link) + " is not a usable URL; expected an http:// or https:// URL without spaces, "
                                       "'<', '>' or '\"', like https://docs.example.com/v1");
            if (!out.deprecated) fail(v->mark(), p, "a deprecation link needs deprecated: true");
        }
    }
    return out;
}

void Loader::checkRoute(const Section& r, const RouteConfig& route, const PolicyOrigins& origins,
                        const UpstreamConfig& upstream, Millis deadline, const Config& config) const {
    const core::RoutePolicy& p = route.policy;
    // A value inherited from route_defaults is reported there, naming the route it fails for.
    auto forRoute = [&](const Origin& o) {
        return o.path.starts_with(r.path() + ".") ? std::string() : " (for route " + quote(route.id) + ")";
    };
    if (p.lease < deadline) {
        const std::string source = route.upstreamTimeouts.total
                                       ? "upstream_timeouts.total of route " + quote(route.id)
                                       : "timeouts.total of upstream " + quote(upstream.name);
        fail(origins.lease.mark, origins.lease.path,
             "lease " + formatDuration(p.lease) + " is shorter than the upstream deadline " + formatDuration(deadline) +
                 " (" + source + ", which bounds the whole call: pool wait, connect attempts, retries with backoff "
                 "and the response)" + forRoute(origins.lease) +
                 ": a retry could be forwarded while the first request still runs; make the lease at least the "
                 "upstream deadline, or leave it out for the default (deadline + 5s)");
    }
    if (p.ttl < p.lease) {
        const std::string what =
            "ttl " + formatDuration(p.ttl) + " is shorter than the lease " + formatDuration(p.lease);
        const std::string why = ": a record must outlive its lease, or an in-flight key could be taken again";
        if (origins.ttl.set) fail(origins.ttl.mark, origins.ttl.path, what + forRoute(origins.ttl) + why);
        if (origins.lease.set) fail(origins.lease.mark, origins.lease.path, what + forRoute(origins.lease) + why);
        fail(r.mark(), r.pathOf("ttl"),
             "the default " + what + " (the upstream deadline of " + quote(upstream.name) + " + 5s)" + why +
                 "; set ttl");
    }
    if (p.maxStoredResponse > config.store.limits.maxResponseBytes) {
        fail(origins.maxStoredResponse.mark, origins.maxStoredResponse.path,
             formatSize(p.maxStoredResponse) + " is larger than store.max_response_size " +
                 formatSize(config.store.limits.maxResponseBytes) + forRoute(origins.maxStoredResponse) +
                 "; the store would refuse such responses");
    }
}

// ---------------------------------------------------------------------------------------------------
// Overrides: --set and IDEMGATE_ environment variables, applied to the tree before the mapping.

/// The shape of the config tree: which keys exist where. Override paths are checked against it, so a
/// misspelt key fails at once, naming the override, instead of being added and reported later.
struct KeySchema {
    enum class Kind {
        Section,  ///< fixed keys (server, a route, ...)
        Named,    ///< names chosen in the file (routes, upstreams, versions.list), each an `entry`
    };
    Kind kind = Kind::Section;
    std::vector<std::pair<std::string_view, const KeySchema*>> keys;  ///< Section: every key (null: a value)
    const KeySchema* entry = nullptr;                                 ///< Named: the schema of each entry
    std::string_view what;                                            ///< Named: "route", "upstream", ...
    bool routeDefaults = false;                                       ///< route_defaults: hint route-only keys
};

KeySchema sectionSchema(const std::vector<std::string_view>& keys,
                        const std::vector<std::pair<std::string_view, const KeySchema*>>& sub = {}) {
    KeySchema out;
    out.kind = KeySchema::Kind::Section;
    for (const auto k : keys) {
        const KeySchema* child = nullptr;
        for (const auto& [name, schema] : sub)
            if (name == k) child = schema;
        out.keys.emplace_back(k, child);
    }
    return out;
}

KeySchema namedSchema(std::string_view what, const KeySchema* entry) {
    KeySchema out;
    out.kind = KeySchema::Kind::Named;
    out.entry = entry;
    out.what = what;
    return out;
}

const KeySchema& rootSchema() {
    static const KeySchema fingerprint = sectionSchema(kFingerprintKeys);
    static const KeySchema version = sectionSchema(kVersionKeys);
    static const KeySchema versionList = namedSchema("version", &version);
    static const KeySchema versions = sectionSchema(kVersionsKeys, {{"list", &versionList}});
    static const KeySchema routeTimeouts = sectionSchema(kTimeoutKeys);
    static const KeySchema route = sectionSchema(
        routeKeys(), {{"fingerprint", &fingerprint}, {"versions", &versions}, {"upstream_timeouts", &routeTimeouts}});
    static const KeySchema routes = namedSchema("route", &route);
    static const KeySchema defaults = [] {
        KeySchema d = sectionSchema(kPolicyKeys, {{"fingerprint", &fingerprint}});
        d.routeDefaults = true;
        return d;
    }();
    static const KeySchema timeouts = sectionSchema(kTimeoutKeys);
    static const KeySchema pool = sectionSchema(kPoolKeys);
    static const KeySchema health = sectionSchema(kHealthKeys);
    static const KeySchema passive = sectionSchema(kPassiveKeys);
    static const KeySchema breaker = sectionSchema(kBreakerKeys);
    static const KeySchema retry = sectionSchema(kRetryKeys);
    static const KeySchema tls = sectionSchema(kTlsKeys);
    static const KeySchema upstream = sectionSchema(kUpstreamKeys, {{"timeouts", &timeouts},
                                                                    {"pool", &pool},
                                                                    {"health", &health},
                                                                    {"passive", &passive},
                                                                    {"breaker", &breaker},
                                                                    {"retry", &retry},
                                                                    {"tls", &tls}});
    static const KeySchema upstreams = namedSchema("upstream", &upstream);
    static const KeySchema memory = sectionSchema(kMemoryKeys);
    static const KeySchema redis = sectionSchema(kRedisKeys);
    static const KeySchema cluster = sectionSchema(kRedisClusterKeys);
    static const KeySchema postgres = sectionSchema(kPostgresKeys);
    static const KeySchema store = sectionSchema(
        kStoreKeys, {{"memory", &memory}, {"redis", &redis}, {"redis_cluster", &cluster}, {"postgres", &postgres}});
    static const KeySchema server = sectionSchema(kServerKeys);
    static const KeySchema log = sectionSchema(kLogKeys);
    static const KeySchema root = sectionSchema(kRootKeys, {{"server", &server},
                                                            {"log", &log},
                                                            {"store", &store},
                                                            {"upstreams", &upstreams},
                                                            {"route_defaults", &defaults},
                                                            {"routes", &routes}});
    return root;
}

/// One override: where it comes from, the key path split into keys, and the value text.
struct Override {
    std::string source;  ///< "--set" or "environment IDEMGATE_..."; becomes ConfigError::file
    std::vector<std::string> keys;
    bool environment = false;  ///< keys matched case-insensitively, '_' also matching '-' in names
    std::string value;
};

/// A path an applied override answers for in later errors: its own, and each mapping it created.
struct Owned {
    std::string source;
    std::string path;
};

constexpr std::string_view kEnvPrefix = "IDEMGATE_";
constexpr std::string_view kEnvSeparator = "__";

[[noreturn]] void overrideFail(const Override& o, std::string keyPath, std::string problem) {
    throw ConfigError(o.source, std::move(keyPath), std::move(problem));
}

/// An environment spelling of a route, upstream or version name: ASCII case-insensitive, and '_' for '-'
/// (environment variable names cannot hold '-').
bool environmentNameMatches(std::string_view given, std::string_view name) {
    if (given.size() != name.size()) return false;
    auto lowerChar = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    for (std::size_t i = 0; i < given.size(); ++i) {
        const char g = lowerChar(given[i]);
        const char n = lowerChar(name[i]);
        if (g != n && !(g == '_' && n == '-')) return false;
    }
    return true;
}

/// Applies `o` to `root` (a mapping) and returns the resolved key path. Throws ConfigError naming the
/// override when its path does not fit the schema or the file, or its value is not YAML.
std::string applyOverride(const YAML::Node& root, const Override& o, std::vector<Owned>& owned) {
    const KeySchema* schema = &rootSchema();
    YAML::Node cur;
    cur.reset(root);
    std::string path;
    const std::string_view separator = o.environment ? kEnvSeparator : ".";
    auto join = [&](std::string_view key) { return path.empty() ? std::string(key) : path + "." + std::string(key); };
    for (std::size_t i = 0; i < o.keys.size(); ++i) {
        const std::string& given = o.keys[i];
        const std::string shown = o.environment ? lower(given) : given;
        if (given.empty())
            overrideFail(o, path,
                         "empty key in the key path; expected keys joined by \"" + std::string(separator) +
                             "\", like routes" + std::string(separator) + "payments" + std::string(separator) + "ttl");
        if (given.find('[') != std::string::npos)
            overrideFail(o, join(shown),
                         "list items cannot be set one by one; set the whole list, like release_on=[429, 503]");

        std::string key;
        const KeySchema* next = nullptr;
        if (schema->kind == KeySchema::Kind::Section) {
            bool found = false;
            for (const auto& [name, child] : schema->keys) {
                if (name == given || (o.environment && name == shown)) {
                    key = name;
                    next = child;
                    found = true;
                }
            }
            if (!found) {
                if (shown == "password") overrideFail(o, join(shown), std::string(kPasswordHint));
                if (schema->routeDefaults &&
                    std::find(kRouteOnlyKeys.begin(), kRouteOnlyKeys.end(), shown) != kRouteOnlyKeys.end())
                    overrideFail(o, join(shown), shown + " belongs to each route, not to route_defaults");
                std::vector<std::string_view> allowed;
                for (const auto& k : schema->keys) allowed.push_back(k.first);
                overrideFail(o, join(shown), "unknown key; allowed keys here: " + joined(allowed));
            }
        } else {
            std::vector<std::string> matches;
            std::string defined;
            if (cur.IsMap()) {
                for (auto it = cur.begin(); it != cur.end(); ++it) {
                    if (!it->first.IsScalar()) continue;
                    const std::string name = it->first.Scalar();
                    defined += (defined.empty() ? "" : ", ") + name;
                    if (name == given || (o.environment && environmentNameMatches(given, name))) matches.push_back(name);
                }
            }
            const std::string what(schema->what);
            if (matches.empty())
                overrideFail(o, join(shown),
                             "no " + what + " named " + quote(shown) + " in the file (" +
                                 (defined.empty() ? "none defined" : "defined: " + defined) +
                                 "); an override changes an entry, it does not add one");
            if (matches.size() > 1)
                overrideFail(o, join(shown),
                             "matches more than one " + what + " (" + matches[0] + ", " + matches[1] +
                                 "); use --set with the exact name");
            key = matches.front();
            next = schema->entry;
        }

        const std::string childPath = join(key);
        if (i + 1 == o.keys.size()) {
            YAML::Node value;
            try {
                value = YAML::Load(o.value);
            } catch (const YAML::Exception& ex) {
                overrideFail(o, childPath,
                             "the value " + quote(o.value) + " is not valid YAML (" + ex.msg +
                                 "); values are read as YAML, so quote text that YAML would read otherwise");
            }
            cur[key] = value;
            owned.push_back({o.source, childPath});
            return childPath;
        }
        if (next == nullptr) {
            const std::string below = o.environment ? lower(o.keys[i + 1]) : o.keys[i + 1];
            overrideFail(o, childPath + "." + below, childPath + " takes a value, not keys under it");
        }
        YAML::Node child = cur[key];
        if (!child.IsDefined() || child.IsNull()) {
            cur[key] = YAML::Node(YAML::NodeType::Map);
            child.reset(cur[key]);
            owned.push_back({o.source, childPath});
        } else if (!child.IsMap()) {
            overrideFail(o, childPath,
                         childPath + " is not a mapping in the file (it is " + describeNodeKind(child) +
                             "), so no key under it can be set");
        }
        cur.reset(child);
        path = childPath;
        schema = next;
    }
    overrideFail(o, "", "empty key path; expected keys joined by \"" + std::string(separator) + "\"");
}

std::vector<std::string> splitKeys(std::string_view path, std::string_view separator) {
    std::vector<std::string> keys;
    std::size_t start = 0;
    while (true) {
        const std::size_t at = path.find(separator, start);
        keys.emplace_back(path.substr(start, at == std::string_view::npos ? path.npos : at - start));
        if (at == std::string_view::npos) return keys;
        start = at + separator.size();
    }
}

/// IDEMGATE_<A>__<B>... variables of the process, parents before children (fewer keys first), then by name,
/// so the result does not depend on the order of the environment.
std::vector<Override> environmentOverrides() {
    std::vector<Override> out;
    for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const std::size_t eq = entry.find('=');
        if (eq == std::string_view::npos || !entry.starts_with(kEnvPrefix)) continue;
        const std::string_view name = entry.substr(0, eq);
        const std::string_view path = name.substr(kEnvPrefix.size());
        if (path.find(kEnvSeparator) == std::string_view::npos) continue;
        Override o;
        o.source = "environment " + std::string(name);
        o.keys = splitKeys(path, kEnvSeparator);
        o.environment = true;
        o.value = std::string(entry.substr(eq + 1));
        out.push_back(std::move(o));
    }
    std::sort(out.begin(), out.end(), [](const Override& a, const Override& b) {
        return a.keys.size() != b.keys.size() ? a.keys.size() < b.keys.size() : a.source < b.source;
    });
    return out;
}

/// Applies the environment, then --set (highest) to `root`; returns what each override answers for.
std::vector<Owned> applyOverrides(const YAML::Node& root, const ConfigOverrides& overrides) {
    std::vector<Owned> owned;
    if (overrides.environment) {
        std::vector<std::pair<std::string, std::string>> resolved;  // (path, source)
        for (const Override& o : environmentOverrides()) {
            const std::string path = applyOverride(root, o, owned);
            for (const auto& [prior, source] : resolved)
                if (prior == path)
                    overrideFail(o, path, "also set by " + source + "; set each key once in the environment");
            resolved.emplace_back(path, o.source);
        }
    }
    for (const auto& [path, value] : overrides.set) {
        Override o;
        o.source = "--set";
        o.keys = splitKeys(path, ".");
        o.value = value;
        applyOverride(root, o, owned);
    }
    return owned;
}

Config loadTree(std::string_view text, const std::string& sourceName, const std::filesystem::path& baseDir,
                const ConfigOverrides& overrides) {
    std::vector<YAML::Node> docs;
    try {
        docs = YAML::LoadAll(std::string(text));
    } catch (const YAML::Exception& ex) {
        int line = 0;
        int column = 0;
        if (!ex.mark.is_null() && ex.mark.line >= 0) {
            line = ex.mark.line + 1;
            column = ex.mark.column + 1;
        }
        throw ConfigError(sourceName, "", "invalid YAML: " + ex.msg, line, column);
    }
    if (docs.empty()) throw ConfigError(sourceName, "", "the file is empty; it needs at least upstreams and routes");
    const Loader loader(sourceName, baseDir);
    if (docs.size() > 1) loader.fail(docs[1].Mark(), "", "only one YAML document is allowed per file");
    // A file whose top level is not a mapping fails in the mapping, naming the file; overrides need one.
    const std::vector<Owned> owned = docs[0].IsMap() ? applyOverrides(docs[0], overrides) : std::vector<Owned>{};
    try {
        return loader.load(docs[0]);
    } catch (const ConfigError& e) {
        // A problem at or under a path an override set is that override's: name it, not a file position.
        for (auto it = owned.rbegin(); it != owned.rend(); ++it) {
            const std::string& p = it->path;
            if (e.keyPath == p || e.keyPath.starts_with(p + ".") || e.keyPath.starts_with(p + "["))
                throw ConfigError(it->source, e.keyPath, e.problem);
        }
        throw;
    }
}

// ---------------------------------------------------------------------------------------------------
// describeConfig

/// Plain YAML scalars where safe, double-quoted JSON-style strings otherwise.
std::string yamlString(std::string_view s, bool flow = false) {
    static const std::set<std::string, std::less<>> kReserved{"true", "false", "null", "yes", "no",
                                                              "on",   "off",   "y",    "n",   "~"};
    bool plain = !s.empty() && !kReserved.contains(lower(s)) &&
                 ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9') ||
                  s[0] == '/');
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '_' || c == '.' || c == '/' || (c == ':' && !flow);
        if (!ok) plain = false;
    }
    if (plain) return std::string(s);
    std::string out = "\"";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string hostPort(const std::string& host, std::uint16_t port) {
    const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return h + ":" + std::to_string(port);
}

std::string flowList(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + yamlString(items[i], true);
    return out + "]";
}

std::string formatRatio(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", r * 100.0);
    std::string out(buf);
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
    return out + "%";
}

std::string endpointText(const UpstreamEndpoint& ep) {
    return ep.scheme + "://" + hostPort(ep.host, ep.port) + ep.basePath;
}

void describeUpstream(std::ostringstream& o, const UpstreamConfig& u) {
    const bool weighted = u.balance != core::BalancePolicy::RoundRobin;
    if (u.endpoints.size() == 1 && u.endpoints[0].weight == 1) {
        o << "    url: " << yamlString(endpointText(u.endpoints[0])) << "\n";
    } else {
        o << "    endpoints:\n";
        for (const auto& ep : u.endpoints) {
            if (weighted) o << "      - {url: " << yamlString(endpointText(ep), true) << ", weight: " << ep.weight << "}\n";
            else o << "      - " << yamlString(endpointText(ep)) << "\n";
        }
    }
    o << "    balance: " << nameOf(kBalance, u.balance) << "\n";
    o << "    timeouts:\n";
    o << "      connect: " << formatDuration(u.timeouts.connect) << "\n";
    if (u.timeouts.send) o << "      send: " << formatDuration(*u.timeouts.send) << "\n";
    else o << "      # send: bounded by total\n";
    if (u.timeouts.firstByte) o << "      first_byte: " << formatDuration(*u.timeouts.firstByte) << "\n";
    else o << "      # first_byte: bounded by total\n";
    o << "      total: " << formatDuration(u.timeouts.total) << "\n";
    o << "    pool:\n";
    o << "      max_connections: " << u.pool.maxConnections << "\n";
    o << "      max_idle: " << u.pool.maxIdle << "\n";
    o << "      idle_timeout: " << formatDuration(u.pool.idleTimeout) << "\n";
    o << "      acquire_timeout: " << formatDuration(u.pool.acquireTimeout) << "\n";
    o << "    health:\n";
    o << "      path: " << yamlString(u.health.path) << (u.health.path.empty() ? "  # no active checks" : "") << "\n";
    o << "      interval: " << formatDuration(u.health.interval) << "\n";
    o << "      timeout: " << formatDuration(u.health.timeout) << "\n";
    o << "      healthy_threshold: " << u.health.healthyThreshold << "\n";
    o << "      unhealthy_threshold: " << u.health.unhealthyThreshold << "\n";
    o << "    passive:\n";
    o << "      consecutive_failures: " << u.passive.consecutiveFailures << "\n";
    o << "      ejection: " << formatDuration(u.passive.ejection) << "\n";
    o << "    breaker:\n";
    o << "      enabled: " << (u.breaker.enabled ? "true" : "false") << "\n";
    o << "      failure_rate: " << formatRatio(u.breaker.failureRate) << "\n";
    o << "      window: " << formatDuration(u.breaker.window) << "\n";
    o << "      min_requests: " << u.breaker.minRequests << "\n";
    o << "      open_for: " << formatDuration(u.breaker.openFor) << "\n";
    o << "    retry:\n";
    o << "      attempts: " << u.retry.attempts << "\n";
    o << "      base_backoff: " << formatDuration(u.retry.baseBackoff) << "\n";
    o << "      max_backoff: " << formatDuration(u.retry.maxBackoff) << "\n";
    o << "      budget: " << formatRatio(u.retry.budget) << "\n";
    o << "      budget_window: " << formatDuration(u.retry.budgetWindow) << "\n";
    o << "      budget_min: " << u.retry.budgetMin << "\n";
    o << "    dns_ttl: " << formatDuration(u.dnsTtl) << "\n";
    const bool anyHttps = std::any_of(u.endpoints.begin(), u.endpoints.end(),
                                      [](const UpstreamEndpoint& ep) { return ep.scheme == "https"; });
    if (anyHttps) {
        o << "    tls:\n";
        o << "      verify: " << (u.tls.verify ? "true" : "false") << "\n";
        if (u.tls.caFile.empty()) o << "      # ca_file: none, the system CA store\n";
        else o << "      ca_file: " << yamlString(u.tls.caFile) << "\n";
        if (u.tls.serverName.empty()) o << "      # server_name: each endpoint's host\n";
        else o << "      server_name: " << yamlString(u.tls.serverName) << "\n";
    }
}

void describePassword(std::ostringstream& o, const std::string& indent, const std::string& password) {
    if (password.empty()) o << indent << "# no password\n";
    else o << indent << "password: \"********\"  # from password_env or password_file\n";
}

void describeVersions(std::ostringstream& o, const core::VersionPolicy& v) {
    if (v.versions.empty()) {
        o << "    # versions: none (unversioned)\n";
        return;
    }
    std::vector<std::string> sources;
    for (const auto s : v.order) sources.emplace_back(core::versionSourceName(s));
    o << "    versions:\n";
    o << "      sources: " << flowList(sources) << "\n";
    o << "      path_param: " << yamlString(v.pathParam) << "\n";
    o << "      header: " << yamlString(v.header) << "\n";
    o << "      media_type: " << yamlString(v.mediaTypeName) << "\n";
    o << "      query_param: " << yamlString(v.queryParam) << "\n";
    o << "      default: " << yamlString(v.defaultVersion) << "\n";
    o << "      scope: " << nameOf(kVersionScopes, v.sharedScope) << "\n";
    o << "      list:\n";
    for (const auto& spec : v.versions) {
        o << "        " << yamlString(spec.name) << ":\n";
        o << "          upstream: " << spec.upstream << "\n";
        o << "          rewrite: " << yamlString(spec.rewrite) << "\n";
        o << "          deprecated: " << (spec.deprecated ? "true" : "false") << "\n";
        o << "          deprecation_date: " << yamlString(spec.deprecationDate) << "\n";
        o << "          sunset: " << yamlString(spec.sunset) << "\n";
        o << "          link: " << yamlString(spec.link) << "\n";
    }
}

}  // namespace

ConfigError::ConfigError(std::string inFile, std::string atPath, std::string what, int atLine, int atColumn)
    : std::runtime_error([&] {
          std::string out = inFile;
          if (atLine > 0) {
              out += ":" + std::to_string(atLine);
              if (atColumn > 0) out += ":" + std::to_string(atColumn);
          }
          out += ": ";
          if (!atPath.empty()) out += atPath + ": ";
          return out + what;
      }()),
      file(std::move(inFile)),
      keyPath(std::move(atPath)),
      problem(std::move(what)),
      line(atLine),
      column(atColumn) {}

std::pair<std::string, std::string> parseSetArgument(std::string_view argument) {
    const std::size_t eq = argument.find('=');
    if (eq == std::string_view::npos || eq == 0)
        throw ConfigError("--set", "",
                          "expected key.path=value, like routes.payments.ttl=48h; got " + quote(argument));
    return {std::string(argument.substr(0, eq)), std::string(argument.substr(eq + 1))};
}

Config loadConfigFile(const std::string& path, const ConfigOverrides& overrides) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw ConfigError(path, "", std::string("cannot read the config file: ") + std::strerror(errno));
    std::string text;
    char buf[65536];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool bad = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (bad) throw ConfigError(path, "", std::string("cannot read the config file: ") + std::strerror(err));
    return loadTree(text, path, std::filesystem::path(path).parent_path(), overrides);
}

Config loadConfigString(std::string_view text, const std::string& sourceName, const ConfigOverrides& overrides) {
    return loadTree(text, sourceName, {}, overrides);
}

std::string describeConfig(const Config& c) {
    std::ostringstream o;
    o << "# effective configuration of " << c.sourceFile << "\n";
    o << "server:\n";
    o << "  listen: " << yamlString(hostPort(c.server.host, c.server.port)) << "\n";
    o << "  max_threads: " << c.server.maxThreads << "\n";
    o << "  max_queued: " << c.server.maxQueued << "\n";
    o << "  keep_alive_timeout: " << formatDuration(c.server.keepAliveTimeout) << "\n";
    o << "  max_keep_alive_requests: " << c.server.maxKeepAliveRequests << "\n";
    o << "  receive_timeout: " << formatDuration(c.server.receiveTimeout) << "\n";
    o << "  send_timeout: " << formatDuration(c.server.sendTimeout) << "\n";
    o << "  engine: " << nameOf(kEngines, c.server.engine) << "\n";
    o << "  max_connections: " << c.server.maxConnections << "\n";
    o << "  io_threads: " << c.server.ioThreads << "\n";
    o << "log:\n";
    o << "  level: " << nameOf(kLogLevels, c.log.level) << "\n";
    o << "  access_log: " << (c.log.accessLog ? "true" : "false") << "\n";

    const auto& st = c.store;
    o << "store:\n";
    o << "  type: " << nameOf(kStoreTypes, st.type) << "\n";
    o << "  max_response_size: " << formatSize(st.limits.maxResponseBytes) << "\n";
    switch (st.type) {
    case StoreConfig::Type::Memory:
        o << "  memory:\n";
        o << "    max_records: " << st.memory.maxRecords << "\n";
        o << "    shards: " << st.memory.shards << "\n";
        o << "    sweep_interval: " << formatDuration(st.memory.sweepInterval) << "\n";
        break;
    case StoreConfig::Type::Redis:
    case StoreConfig::Type::RedisCluster: {
        const auto& r = st.redis;
        if (st.type == StoreConfig::Type::Redis) {
            o << "  redis:\n";
            o << "    address: " << yamlString(hostPort(r.address.host, r.address.port)) << "\n";
        } else {
            o << "  redis_cluster:\n";
            std::vector<std::string> nodes;
            for (const auto& n : r.nodes) nodes.push_back(hostPort(n.host, n.port));
            o << "    nodes: " << flowList(nodes) << "\n";
        }
        describePassword(o, "    ", r.password);
        o << "    key_prefix: " << yamlString(r.keyPrefix) << "\n";
        o << "    pool_size: " << r.poolSize << "\n";
        o << "    pipeline_connections: " << r.pipelineConnections << "\n";
        o << "    connect_timeout: " << formatDuration(r.connectTimeout) << "\n";
        o << "    command_timeout: " << formatDuration(r.commandTimeout) << "\n";
        o << "    pool_wait_timeout: " << formatDuration(r.poolWaitTimeout) << "\n";
        o << "    require_noeviction: " << (r.requireNoEviction ? "true" : "false") << "\n";
        o << "    replay_read: " << nameOf(kReplayRead, r.replayRead) << "\n";
        if (st.type == StoreConfig::Type::RedisCluster) {
            o << "    max_redirects: " << r.maxRedirects << "\n";
            o << "    slot_refresh_interval: " << formatDuration(r.slotRefreshInterval) << "\n";
        }
        break;
    }
    case StoreConfig::Type::Postgres: {
        const auto& p = st.postgres;
        o << "  postgres:\n";
        o << "    url: " << yamlString(p.url) << "\n";
        describePassword(o, "    ", p.password);
        o << "    table: " << yamlString(p.table) << "\n";
        o << "    pool_size: " << p.poolSize << "\n";
        o << "    pipeline_connections: " << p.pipelineConnections << "\n";
        o << "    connect_timeout: " << formatDuration(p.connectTimeout) << "\n";
        o << "    statement_timeout: " << formatDuration(p.statementTimeout) << "\n";
        o << "    pool_wait_timeout: " << formatDuration(p.poolWaitTimeout) << "\n";
        o << "    migrate_on_start: " << (p.migrateOnStart ? "true" : "false") << "\n";
        o << "    reap_interval: " << formatDuration(p.reapInterval) << "\n";
        o << "    reap_batch: " << p.reapBatch << "\n";
        break;
    }
    }

    o << "upstreams:\n";
    for (const auto& u : c.upstreams) {
        o << "  " << u.name << ":\n";
        describeUpstream(o, u);
    }

    o << "routes:\n";
    for (const auto& r : c.routes) {
        const auto& p = r.policy;
        o << "  " << r.id << ":\n";
        if (r.matchMethods.empty()) o << "    # methods: any\n";
        else o << "    methods: " << flowList(r.matchMethods) << "\n";
        o << "    path: " << yamlString(r.path) << "\n";
        o << "    upstream: " << r.upstream << "\n";
        if (!r.upstreamTimeouts.empty()) {
            o << "    upstream_timeouts:\n";
            const auto& t = r.upstreamTimeouts;
            if (t.connect) o << "      connect: " << formatDuration(*t.connect) << "\n";
            if (t.send) o << "      send: " << formatDuration(*t.send) << "\n";
            if (t.firstByte) o << "      first_byte: " << formatDuration(*t.firstByte) << "\n";
            if (t.total) o << "      total: " << formatDuration(*t.total) << "\n";
        }
        o << "    enabled: " << (r.enabled ? "true" : "false") << "\n";
        o << "    disabled: " << nameOf(kDisabledActions, r.disabledAction) << "\n";
        o << "    idempotency: " << nameOf(kModes, p.mode) << "\n";
        o << "    idempotent_methods: " << flowList(p.methods) << "\n";
        o << "    key_header: " << yamlString(p.keyHeader) << "\n";
        o << "    key_format: " << nameOf(kKeyFormats, p.keyFormat) << "\n";
        o << "    tenant_header: " << (p.tenantHeader.empty() ? "\"\"  # none" : yamlString(p.tenantHeader)) << "\n";
        o << "    fingerprint:\n";
        o << "      body: " << nameOf(kBodyModes, p.body) << "\n";
        o << "      query: " << (p.fingerprintQuery ? "true" : "false") << "\n";
        o << "      headers: " << flowList(p.fingerprintHeaders) << "\n";
        o << "    max_body: " << formatSize(p.maxBody) << "\n";
        o << "    max_stored_response: " << formatSize(p.maxStoredResponse) << "\n";
        o << "    ttl: " << formatDuration(p.ttl) << "\n";
        o << "    lease: " << formatDuration(p.lease) << "\n";
        std::vector<std::string> statuses;
        for (int s : p.releaseOn) statuses.push_back(std::to_string(s));
        o << "    release_on: [";
        for (std::size_t i = 0; i < statuses.size(); ++i) o << (i ? ", " : "") << statuses[i];
        o << "]\n";
        o << "    on_unknown: " << nameOf(kOnUnknown, p.onUnknown) << "\n";
        o << "    on_in_flight: " << nameOf(kOnInFlight, p.onInFlight) << "\n";
        o << "    wait_max: " << formatDuration(p.waitMax) << "\n";
        o << "    store_failure: " << nameOf(kStoreFailure, p.storeFailure) << "\n";
        o << "    forward_key: " << nameOf(kForwardKey, p.forwardKey) << "\n";
        o << "    forward_key_header: " << yamlString(p.forwardKeyHeader) << "\n";
        o << "    allow_set_cookie: " << (p.allowSetCookie ? "true" : "false") << "\n";
        describeVersions(o, p.versions);
    }
    return o.str();
}

}  // namespace idem::config
