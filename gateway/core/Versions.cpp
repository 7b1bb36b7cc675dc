#include "gateway/core/Versions.h"

#include "gateway/core/Problem.h"

#include <array>
#include <chrono>
#include <cstdio>

namespace idem::core {
namespace {

constexpr std::array<std::string_view, 7> kDayNames{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonthNames{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = lowerAscii(c);
    return out;
}

std::string_view trimOws(std::string_view s) {
    const std::size_t b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    const std::size_t e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

/// Digits only, exactly `n` of them; the value, or -1.
int fixedNumber(std::string_view s, std::size_t n) {
    if (s.size() != n) return -1;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// %XX escapes decoded; a '%' without two hex digits is kept as is. '+' stays '+'.
std::string percentDecode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const int hi = hexValue(s[i + 1]);
            const int lo = hexValue(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

std::optional<std::int64_t> secondsOf(int year, int month, int day, int hour, int minute, int second) {
    using namespace std::chrono;
    const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                             std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok() || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
        return std::nullopt;
    const auto days = sys_days(ymd).time_since_epoch().count();
    return static_cast<std::int64_t>(days) * 86'400 + hour * 3'600 + minute * 60 + second;
}

std::string knownVersions(const VersionPolicy& policy) {
    std::string out;
    for (const auto& v : policy.versions) out += (out.empty() ? "" : ", ") + v.name;
    return out;
}

HttpResponse versionProblem(std::string detail, const VersionPolicy& policy) {
    ProblemExtras extras;
    extras.strings.emplace_back("known_versions", knownVersions(policy));
    return makeProblem(400, ProblemType::VersionInvalid, std::move(detail), extras);
}

HttpResponse unknownVersion(std::string_view name, std::string_view where, const VersionPolicy& policy) {
    return versionProblem("unknown API version \"" + std::string(name) + "\" in the " + std::string(where) +
                              "; known versions: " + knownVersions(policy),
                          policy);
}

/// One signal found in the request.
struct Signal {
    VersionSource source;
    const VersionSpec* spec;
};

/// The version names of the Accept media ranges application/vnd.<name>.v<V>+json, in order.
std::vector<std::string> acceptVersions(const Headers& headers, std::string_view mediaTypeName) {
    const std::string prefix = "application/vnd." + lowered(mediaTypeName) + ".v";
    constexpr std::string_view kSuffix = "+json";
    std::vector<std::string> out;
    for (const auto& [name, value] : headers) {
        if (!iequals(name, "Accept")) continue;
        std::size_t start = 0;
        bool quoted = false;
        for (std::size_t i = 0; i <= value.size(); ++i) {
            if (i < value.size()) {
                const char c = value[i];
                if (c == '"') quoted = !quoted;
                if (quoted && c == '\\') ++i;
                if (quoted || c != ',') continue;
            }
            std::string_view range = std::string_view(value).substr(start, i - start);
            range = trimOws(range.substr(0, range.find(';')));
            const std::string low = lowered(range);
            if (low.size() > prefix.size() + kSuffix.size() && low.starts_with(prefix) && low.ends_with(kSuffix))
                out.emplace_back(range.substr(prefix.size(), range.size() - prefix.size() - kSuffix.size()));
            start = i + 1;
        }
    }
    return out;
}

/// Index of the pattern segment holding {param} (0 = the first segment after the leading '/'), if any.
std::optional<std::size_t> paramSegment(std::string_view pattern, std::string_view param) {
    const std::string open = "{" + std::string(param) + "}";
    std::size_t index = 0;
    std::size_t start = 1;
    while (start <= pattern.size()) {
        const std::size_t slash = pattern.find('/', start);
        const std::string_view seg = pattern.substr(start, slash == std::string_view::npos ? pattern.npos : slash - start);
        if (seg.starts_with(open)) return index;
        if (slash == std::string_view::npos) break;
        start = slash + 1;
        ++index;
    }
    return std::nullopt;
}

/// `path` with the first `valueSize` bytes of segment `index` replaced by "{version}"; `path` as it is if
/// that segment does not start with `value`.
std::string withVersionPlaceholder(const std::string& path, std::size_t index, std::string_view value) {
    std::size_t start = 1;
    for (std::size_t i = 0; i < index; ++i) {
        const std::size_t slash = path.find('/', start);
        if (slash == std::string::npos) return path;
        start = slash + 1;
    }
    if (path.compare(start, value.size(), value) != 0) return path;
    return path.substr(0, start) + "{version}" + path.substr(start + value.size());
}

}  // namespace

std::string_view versionSourceName(VersionSource source) {
    switch (source) {
        case VersionSource::Path: return "path";
        case VersionSource::Header: return "header";
        case VersionSource::Accept: return "accept";
        case VersionSource::Query: return "query";
    }
    return "?";
}

std::expected<ResolvedVersion, HttpResponse> resolveVersion(const VersionPolicy& policy, const HttpRequest& request,
                                                            const RouteParams& routeParams) {
    if (policy.versions.empty()) return ResolvedVersion{nullptr, request.path};

    std::vector<Signal> signals;
    const std::string* pathValue = nullptr;
    for (const VersionSource source : policy.order) {
        switch (source) {
            case VersionSource::Path: {
                for (const auto& [name, value] : routeParams)
                    if (name == policy.pathParam) pathValue = &value;
                if (pathValue == nullptr) break;
                const VersionSpec* spec = policy.find(*pathValue);
                if (spec == nullptr && pathValue->starts_with('v')) spec = policy.find(pathValue->substr(1));
                if (spec == nullptr) return std::unexpected(unknownVersion(*pathValue, "path", policy));
                signals.push_back({source, spec});
                break;
            }
            case VersionSource::Header: {
                const std::size_t lines = countHeader(request.headers, policy.header);
                if (lines == 0) break;
                if (lines > 1)
                    return std::unexpected(versionProblem(
                        "the " + policy.header + " header must be sent once, got " + std::to_string(lines) + " lines",
                        policy));
                const std::string_view value = trimOws(*findHeader(request.headers, policy.header));
                if (value.empty())
                    return std::unexpected(versionProblem("the " + policy.header + " header is empty", policy));
                const VersionSpec* spec = policy.find(value);
                if (spec == nullptr)
                    return std::unexpected(unknownVersion(value, policy.header + " header", policy));
                signals.push_back({source, spec});
                break;
            }
            case VersionSource::Accept: {
                if (policy.mediaTypeName.empty()) break;
                const auto names = acceptVersions(request.headers, policy.mediaTypeName);
                if (names.empty()) break;
                for (const auto& n : names)
                    if (policy.find(n) == nullptr) return std::unexpected(unknownVersion(n, "Accept header", policy));
                for (const auto& n : names)
                    if (n != names.front())
                        return std::unexpected(versionProblem("the Accept header asks for versions " + names.front() +
                                                                  " and " + n + "; ask for one",
                                                              policy));
                signals.push_back({source, policy.find(names.front())});
                break;
            }
            case VersionSource::Query: {
                std::optional<std::string> found;
                std::string_view q = request.query;
                while (!q.empty()) {
                    const std::size_t amp = q.find('&');
                    const std::string_view part = q.substr(0, amp);
                    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
                    const std::size_t eq = part.find('=');
                    if (part.substr(0, eq) != policy.queryParam) continue;
                    if (found)
                        return std::unexpected(versionProblem(
                            "the query parameter " + policy.queryParam + " must be given once", policy));
                    found = percentDecode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
                }
                if (!found) break;
                if (found->empty())
                    return std::unexpected(
                        versionProblem("the query parameter " + policy.queryParam + " is empty", policy));
                const VersionSpec* spec = policy.find(*found);
                if (spec == nullptr)
                    return std::unexpected(unknownVersion(*found, "query parameter " + policy.queryParam, policy));
                signals.push_back({source, spec});
                break;
            }
        }
    }

    for (const Signal& s : signals) {
        if (s.spec == signals.front().spec) continue;
        return std::unexpected(versionProblem(
            "version signals disagree: " + std::string(versionSourceName(signals.front().source)) + " says " +
                signals.front().spec->name + ", " + std::string(versionSourceName(s.source)) + " says " + s.spec->name,
            policy));
    }

    ResolvedVersion out;
    out.scopePath = request.path;
    if (!signals.empty()) {
        out.spec = signals.front().spec;
    } else if (const VersionSpec* d = policy.find(policy.defaultVersion); d != nullptr) {
        out.spec = d;
    } else {
        std::string how;
        for (const VersionSource source : policy.order) {
            std::string way;
            switch (source) {
                case VersionSource::Path:
                    if (paramSegment(policy.routePattern, policy.pathParam)) way = "in the path (/v<N>/...)";
                    break;
                case VersionSource::Header: way = "in the " + policy.header + " header"; break;
                case VersionSource::Accept:
                    if (!policy.mediaTypeName.empty())
                        way = "as Accept: application/vnd." + policy.mediaTypeName + ".v<N>+json";
                    break;
                case VersionSource::Query: way = "as ?" + policy.queryParam + "=<N>"; break;
            }
            if (!way.empty()) how += (how.empty() ? "" : ", or ") + way;
        }
        return std::unexpected(versionProblem("this route needs an API version; send it " + how +
                                                  "; known versions: " + knownVersions(policy),
                                              policy));
    }

    if (policy.sharedScope && pathValue != nullptr) {
        if (const auto index = paramSegment(policy.routePattern, policy.pathParam))
            out.scopePath = withVersionPlaceholder(request.path, *index, *pathValue);
    }
    return out;
}

std::string rewritePath(std::string_view templ, const RouteParams& params) {
    std::string out;
    out.reserve(templ.size() + 32);
    std::size_t i = 0;
    while (i < templ.size()) {
        const std::size_t open = templ.find('{', i);
        const std::size_t close = open == std::string_view::npos ? open : templ.find('}', open);
        if (close == std::string_view::npos) {
            out.append(templ.substr(i));
            break;
        }
        out.append(templ.substr(i, open - i));
        std::string_view name = templ.substr(open + 1, close - open - 1);
        if (name.ends_with("...")) name.remove_suffix(3);
        const std::string* value = nullptr;
        for (const auto& [n, v] : params)
            if (n == name) value = &v;
        if (value != nullptr) out.append(*value);
        else out.append(templ.substr(open, close - open + 1));
        i = close + 1;
    }
    return out;
}

void addDeprecationHeaders(HttpResponse& response, const VersionSpec& version) {
    if (version.deprecated) {
        const auto since = parseHttpDate(version.deprecationDate);
        setHeader(response.headers, "Deprecation", since ? "@" + std::to_string(*since) : std::string("true"));
        if (!version.link.empty()) {
            const std::string link = "<" + version.link + ">; rel=\"deprecation\"";
            bool present = false;
            for (const auto& [name, value] : response.headers)
                if (iequals(name, "Link") && value == link) present = true;
            if (!present) response.headers.emplace_back("Link", link);
        }
    }
    if (!version.sunset.empty()) setHeader(response.headers, "Sunset", version.sunset);
}

std::optional<std::int64_t> parseHttpDate(std::string_view t) {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    //  0123456789012345678901234567 8
    if (t.size() != 29 || t.substr(3, 2) != ", " || t[7] != ' ' || t[11] != ' ' || t[16] != ' ' || t[19] != ':' ||
        t[22] != ':' || t.substr(25) != " GMT")
        return std::nullopt;
    int month = 0;
    for (std::size_t m = 0; m < kMonthNames.size(); ++m)
        if (t.substr(8, 3) == kMonthNames[m]) month = static_cast<int>(m) + 1;
    const int day = fixedNumber(t.substr(5, 2), 2);
    const int year = fixedNumber(t.substr(12, 4), 4);
    const int hour = fixedNumber(t.substr(17, 2), 2);
    const int minute = fixedNumber(t.substr(20, 2), 2);
    const int second = fixedNumber(t.substr(23, 2), 2);
    if (month == 0 || day < 0 || year < 0 || hour < 0 || minute < 0 || second < 0) return std::nullopt;
    const auto s = secondsOf(year, month, day, hour, minute, second);
    if (!s) return std::nullopt;
    const std::chrono::weekday wd{std::chrono::sys_days{std::chrono::days{*s / 86'400}}};
    if (t.substr(0, 3) != kDayNames[wd.c_encoding()]) return std::nullopt;
    return s;
}

std::string formatHttpDate(std::int64_t unixSeconds) {
    using namespace std::chrono;
    const sys_seconds tp{seconds{unixSeconds}};
    const sys_days day = floor<days>(tp);
    const year_month_day ymd{day};
    const weekday wd{day};
    const auto secs = (tp - day).count();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02lld:%02lld:%02lld GMT",
                  std::string(kDayNames[wd.c_encoding()]).c_str(), static_cast<unsigned>(ymd.day()),
                  std::string(kMonthNames[static_cast<unsigned>(ymd.month()) - 1]).c_str(), static_cast<int>(ymd.year()),
                  static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                  static_cast<long long>(secs % 60));
    return buf;
}

std::optional<std::int64_t> parseIsoDate(std::string_view t) {
    if (t.size() != 10 || t[4] != '-' || t[7] != '-') return std::nullopt;
    const int year = fixedNumber(t.substr(0, 4), 4);
    const int month = fixedNumber(t.substr(5, 2), 2);
    const int day = fixedNumber(t.substr(8, 2), 2);
    if (year < 0 || month < 1 || month > 12 || day < 1) return std::nullopt;
    return secondsOf(year, month, day, 0, 0, 0);
}

}  // namespace idem::core
