#include "gateway/config/ConfigLoader.h"

#include "gateway/config/Units.h"

#include <arpa/inet.h>
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
constexpr std::array<Named<LogConfig::Level>, 4> kLogLevels{{
    {"error", LogConfig::Level::Error},
    {"warning", LogConfig::Level::Warning},
    {"info", LogConfig::Level::Information},
    {"debug", LogConfig::Level::Debug},
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
                                                "max_keep_alive_requests", "receive_timeout", "send_timeout"};
const std::vector<std::string_view> kLogKeys{"level", "access_log"};
const std::vector<std::string_view> kStoreKeys{"type", "max_response_size", "memory", "redis", "redis_cluster",
                                               "postgres"};
const std::vector<std::string_view> kMemoryKeys{"max_records", "shards", "sweep_interval"};
const std::vector<std::string_view> kRedisKeys{"address", "password_env", "password_file", "key_prefix", "pool_size",
                                               "connect_timeout", "command_timeout", "pool_wait_timeout",
                                               "require_noeviction"};
const std::vector<std::string_view> kRedisClusterKeys{"nodes", "password_env", "password_file", "key_prefix",
                                                      "pool_size", "connect_timeout", "command_timeout",
                                                      "pool_wait_timeout", "require_noeviction", "max_redirects",
                                                      "slot_refresh_interval"};
const std::vector<std::string_view> kPostgresKeys{"url", "password_env", "password_file", "table", "pool_size",
                                                  "connect_timeout", "statement_timeout", "pool_wait_timeout",
                                                  "migrate_on_start", "reap_interval", "reap_batch"};
const std::vector<std::string_view> kUpstreamKeys{"url", "connect_timeout", "timeout", "pool_size"};
const std::vector<std::string_view> kPolicyKeys{
    "idempotency", "idempotent_methods", "key_header", "key_format", "tenant_header", "fingerprint", "max_body",
    "max_stored_response", "ttl", "lease", "release_on", "on_unknown", "on_in_flight", "wait_max",
    "store_failure", "forward_key", "forward_key_header", "allow_set_cookie"};
const std::vector<std::string_view> kFingerprintKeys{"body", "query", "headers"};

std::vector<std::string_view> routeKeys() {
    std::vector<std::string_view> keys{"methods", "path", "upstream"};
    keys.insert(keys.end(), kPolicyKeys.begin(), kPolicyKeys.end());
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

/// A route's path pattern, following the grammar of core/Router.h: '/'-separated non-empty segments
/// (or "/" alone); a segment is a literal of 0x21-0x7E bytes without ?#{}, or "{name}" followed by an
/// optional literal suffix; the last segment may be "{name...}" (rest of the path, no suffix).
std::optional<std::string> pathPatternError(std::string_view pattern) {
    if (pattern.empty() || pattern.front() != '/') return "must start with '/', e.g. /v1/payments";
    if (pattern == "/") return std::nullopt;
    std::set<std::string, std::less<>> names;
    std::size_t start = 1;
    while (true) {
        const std::size_t slash = pattern.find('/', start);
        const bool last = slash == std::string_view::npos;
        const std::string_view seg = pattern.substr(start, last ? pattern.npos : slash - start);
        if (seg.empty()) return last ? "must not end with '/'" : "has an empty segment (\"//\")";
        std::string_view literal = seg;
        if (seg.front() == '{') {
            const std::size_t close = seg.find('}');
            if (close == std::string_view::npos) return "has an unclosed '{' in segment " + quote(seg);
            std::string_view name = seg.substr(1, close - 1);
            literal = seg.substr(close + 1);
            bool rest = false;
            if (name.size() > 3 && name.ends_with("...")) {
                rest = true;
                name.remove_suffix(3);
            }
            if (!isIdentifier(name))
                return "parameter " + quote(seg.substr(0, close + 1)) +
                       " needs a name of letters, digits and '_' (not starting with a digit)";
            if (!names.emplace(name).second) return "parameter {" + std::string(name) + "} appears twice";
            if (rest && !last) return "{" + std::string(name) + "...} must be the last segment";
            if (rest && !literal.empty()) return "{" + std::string(name) + "...} cannot have a suffix";
        }
        for (char c : literal) {
            const auto u = static_cast<unsigned char>(c);
            if (c == '{' || c == '}')
                return "segment " + quote(seg) + " has a stray '" + std::string(1, c) +
                       "' (a parameter is {name} at the start of a segment)";
            if (c == '?' || c == '#') return "must not contain a query or fragment ('?' or '#')";
            if (u < 0x21 || u > 0x7E) return "segment " + quote(seg) + " has a character outside printable ASCII";
        }
        if (last) return std::nullopt;
        start = slash + 1;
    }
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
    void readPolicy(const Section& s, core::RoutePolicy& p, PolicyOrigins& origins) const;
    std::vector<std::string> readMethods(const Entry& e, const std::string& path, bool allowEmpty) const;
    std::vector<RouteConfig> readRoutes(const Section& root, const Config& config) const;
    void checkRoute(const Section& r, const RouteConfig& route, const PolicyOrigins& origins,
                    const UpstreamConfig& upstream, const Config& config) const;

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
        const YAML::Node& k = it->first;
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
    if (const Entry* v = s.find("connect_timeout"))
        out.connectTimeout = duration(*v, s.pathOf("connect_timeout"), false);
    if (const Entry* v = s.find("command_timeout"))
        out.commandTimeout = duration(*v, s.pathOf("command_timeout"), false);
    if (const Entry* v = s.find("pool_wait_timeout"))
        out.poolWaitTimeout = duration(*v, s.pathOf("pool_wait_timeout"), false);
    if (const Entry* v = s.find("require_noeviction"))
        out.requireNoEviction = boolean(*v, s.pathOf("require_noeviction"));
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

UpstreamConfig Loader::readUpstream(const Entry& e, const std::string& path) const {
    if (!isName(e.key))
        fail(e.keyNode.Mark(), path, "upstream names may use letters, digits, '-' and '_' (at most 64 characters)");
    const Section s(*this, e.value, e.mark(), path, kUpstreamKeys);
    UpstreamConfig out;
    out.name = e.key;
    const Entry* url = s.find("url");
    const std::string urlPath = s.pathOf("url");
    if (!url) fail(s.mark(), urlPath, "missing: every upstream needs a url like http://127.0.0.1:9090");
    const std::string text = str(*url, urlPath);
    const std::string form = "expected a URL like http://127.0.0.1:9090 or http://host:port/base/path";
    const std::size_t sep = text.find("://");
    if (sep == std::string::npos) fail(url->mark(), urlPath, quote(text) + " is not a URL; " + form);
    const std::string scheme = lower(std::string_view(text).substr(0, sep));
    if (scheme == "https") fail(url->mark(), urlPath, "https upstreams are not supported yet; use http://");
    if (scheme != "http") fail(url->mark(), urlPath, "unsupported scheme " + quote(scheme) + "; " + form);
    const std::string_view rest = std::string_view(text).substr(sep + 3);
    if (rest.find_first_of("?#") != std::string_view::npos)
        fail(url->mark(), urlPath, "must not have a query or fragment; " + form);
    const std::size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (authority.find('@') != std::string_view::npos)
        fail(url->mark(), urlPath, "user info (user@host) is not supported in upstream URLs");
    const auto hp = parseHostPort(authority, true, 80, "127.0.0.1:9090");
    if (!hp) fail(url->mark(), urlPath, hp.error());
    out.host = hp->host;
    out.port = hp->port;
    if (slash != std::string_view::npos) {
        std::string base(rest.substr(slash));
        while (!base.empty() && base.back() == '/') base.pop_back();  // "/api/" and "/api" are the same prefix
        if (base.find("//") != std::string::npos)
            fail(url->mark(), urlPath, "the base path has an empty segment (\"//\")");
        for (char c : base) {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x21 || u > 0x7E)
                fail(url->mark(), urlPath, "the base path has a character outside printable ASCII");
        }
        out.basePath = base;
    }
    if (const Entry* v = s.find("connect_timeout"))
        out.connectTimeout = duration(*v, s.pathOf("connect_timeout"), false);
    if (const Entry* v = s.find("timeout")) out.timeout = duration(*v, s.pathOf("timeout"), false);
    if (const Entry* v = s.find("pool_size"))
        out.poolSize = static_cast<std::size_t>(integer(*v, s.pathOf("pool_size"), 1, 65535));
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
                        {{"path", "path" + hint}, {"upstream", "upstream" + hint}, {"methods", "methods" + hint}});
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
        if (const auto err = pathPatternError(route.path))
            fail(p->mark(), r.pathOf("path"), quote(route.path) + " " + *err);

        const Entry* u = r.find("upstream");
        if (!u) fail(r.mark(), r.pathOf("upstream"), "missing: every route needs an upstream");
        route.upstream = str(*u, r.pathOf("upstream"));
        const UpstreamConfig* upstream = config.findUpstream(route.upstream);
        if (!upstream) {
            std::string known;
            for (const auto& up : config.upstreams) known += (known.empty() ? "" : ", ") + up.name;
            fail(u->mark(), r.pathOf("upstream"), "no upstream named " + quote(route.upstream) + "; defined: " + known);
        }

        route.policy = defaults;
        PolicyOrigins origins = defaultOrigins;
        readPolicy(r, route.policy, origins);
        route.policy.routeId = route.id;
        if (!origins.lease.set) route.policy.lease = upstream->timeout + std::chrono::seconds(5);
        checkRoute(r, route, origins, *upstream, config);
        out.push_back(std::move(route));
    }
    return out;
}

void Loader::checkRoute(const Section& r, const RouteConfig& route, const PolicyOrigins& origins,
                        const UpstreamConfig& upstream, const Config& config) const {
    const core::RoutePolicy& p = route.policy;
    // A value inherited from route_defaults is reported there, naming the route it fails for.
    auto forRoute = [&](const Origin& o) {
        return o.path.starts_with(r.path() + ".") ? std::string() : " (for route " + quote(route.id) + ")";
    };
    if (p.lease < upstream.timeout) {
        fail(origins.lease.mark, origins.lease.path,
             "lease " + formatDuration(p.lease) + " is shorter than the timeout " + formatDuration(upstream.timeout) +
                 " of upstream " + quote(upstream.name) + forRoute(origins.lease) +
                 ": a retry could be forwarded while the first request still runs; make the lease at least the "
                 "upstream timeout, or leave it out for the default (timeout + 5s)");
    }
    if (p.ttl < p.lease) {
        const std::string what =
            "ttl " + formatDuration(p.ttl) + " is shorter than the lease " + formatDuration(p.lease);
        const std::string why = ": a record must outlive its lease, or an in-flight key could be taken again";
        if (origins.ttl.set) fail(origins.ttl.mark, origins.ttl.path, what + forRoute(origins.ttl) + why);
        if (origins.lease.set) fail(origins.lease.mark, origins.lease.path, what + forRoute(origins.lease) + why);
        fail(r.mark(), r.pathOf("ttl"),
             "the default " + what + " (upstream " + quote(upstream.name) + " timeout + 5s)" + why + "; set ttl");
    }
    if (p.maxStoredResponse > config.store.limits.maxResponseBytes) {
        fail(origins.maxStoredResponse.mark, origins.maxStoredResponse.path,
             formatSize(p.maxStoredResponse) + " is larger than store.max_response_size " +
                 formatSize(config.store.limits.maxResponseBytes) + forRoute(origins.maxStoredResponse) +
                 "; the store would refuse such responses");
    }
}

Config loadTree(std::string_view text, const std::string& sourceName, const std::filesystem::path& baseDir) {
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
    return loader.load(docs[0]);
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

void describePassword(std::ostringstream& o, const std::string& indent, const std::string& password) {
    if (password.empty()) o << indent << "# no password\n";
    else o << indent << "password: \"********\"  # from password_env or password_file\n";
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

Config loadConfigFile(const std::string& path) {
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
    return loadTree(text, path, std::filesystem::path(path).parent_path());
}

Config loadConfigString(std::string_view text, const std::string& sourceName) {
    return loadTree(text, sourceName, {});
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
        o << "    connect_timeout: " << formatDuration(r.connectTimeout) << "\n";
        o << "    command_timeout: " << formatDuration(r.commandTimeout) << "\n";
        o << "    pool_wait_timeout: " << formatDuration(r.poolWaitTimeout) << "\n";
        o << "    require_noeviction: " << (r.requireNoEviction ? "true" : "false") << "\n";
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
        o << "    url: " << yamlString(u.scheme + "://" + hostPort(u.host, u.port) + u.basePath) << "\n";
        o << "    connect_timeout: " << formatDuration(u.connectTimeout) << "\n";
        o << "    timeout: " << formatDuration(u.timeout) << "\n";
        o << "    pool_size: " << u.poolSize << "\n";
    }

    o << "routes:\n";
    for (const auto& r : c.routes) {
        const auto& p = r.policy;
        o << "  " << r.id << ":\n";
        if (r.matchMethods.empty()) o << "    # methods: any\n";
        else o << "    methods: " << flowList(r.matchMethods) << "\n";
        o << "    path: " << yamlString(r.path) << "\n";
        o << "    upstream: " << r.upstream << "\n";
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
    }
    return o.str();
}

}  // namespace idem::config
