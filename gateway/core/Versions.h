#pragma once
// API versions of a route (SEMANTICS.md §8, issue 5, B14): which version a request asks for, where it
// goes, and what a deprecated version announces.
//
// Resolution (resolveVersion). The signals are read in VersionPolicy::order; a source absent from the
// order is never read:
//  - Path:   the route parameter named pathParam (a pattern like /{version}/payments). Its value is the
//            version name, or "v" + the name ("v2" and "2" both name version "2"; an exact name wins).
//  - Header: the header named `header` (case-insensitive name); exactly one field line; the value with
//            surrounding white space removed is the version name.
//  - Accept: every media range application/vnd.<mediaTypeName>.v<V>+json of every Accept line (type,
//            subtype and name compared ASCII case-insensitively, parameters such as q ignored) names
//            version V. Off when mediaTypeName is empty.
//  - Query:  the query parameter named queryParam (exact name), percent-decoded; at most once.
// Every present signal must name a listed version (else 400 listing the known ones), and all of them the
// same one (else 400 "version signals disagree: path says 2, header says 1"). No signal at all: the
// default version, or 400 when the route has none. Errors are RFC 9457 problems of type version-invalid.
//
// Scope (B14). With sharedScope (the default) all versions of a route share one scope: the version is
// left out of the record id, and the path-version segment is replaced by "{version}" in the scope path,
// so the same key on /v1/payments and then /v2/payments finds one record, whose fingerprint (which
// always covers the version and the real path) differs: 422. With sharedScope off ("scope: separate")
// the version joins the record id and the path is kept, so each version has its own records.
//
// Deprecation (addDeprecationHeaders): a deprecated version answers with
//  - `Deprecation: @<unix seconds>` (RFC 9745, an sf-date) when it has a deprecation date, else
//    `Deprecation: true` (the form of the drafts before RFC 9745, which deployed clients still read; RFC
//    9745 parsers ignore it, which is harmless);
//  - `Sunset: <HTTP-date>` (RFC 8594) when a sunset date is set (also for a version not yet deprecated);
//  - `Link: <url>; rel="deprecation"` (RFC 9745 §3) when the deprecated version has a link.
//
// Thread-safety: pure functions over immutable values.

#include "gateway/core/Http.h"

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idem::core {

enum class VersionSource { Path, Header, Accept, Query };

/// One version of a route.
struct VersionSpec {
    std::string name;             ///< "1", "2", "2024-06-01": letters, digits, '-', '_'
    std::string upstream;         ///< upstream name (the config loader fills in the route's by default)
    std::string rewrite;          ///< "" = path unchanged; else a template with {param}s of the route match,
                                  ///< e.g. /legacy/payments/{id}
    bool deprecated = false;
    std::string deprecationDate;  ///< IMF-fixdate ("Wed, 01 Jan 2025 00:00:00 GMT") or ""
    std::string sunset;           ///< IMF-fixdate or ""
    std::string link;             ///< URL of the deprecation docs, or ""
};

struct VersionPolicy {
    /// Sources read, in this order (also the order of the signals in error messages).
    std::vector<VersionSource> order{VersionSource::Path, VersionSource::Header, VersionSource::Accept,
                                     VersionSource::Query};
    std::string pathParam = "version";  ///< route parameter holding the path version. Default: version
    std::string header = "API-Version";  ///< Default: API-Version
    std::string mediaTypeName;           ///< application/vnd.<name>.v<V>+json; "" (default) disables Accept
    std::string queryParam = "version";  ///< Default: version
    std::string defaultVersion;          ///< used when no signal is present; "" = a signal is required
    std::vector<VersionSpec> versions;   ///< empty = the route is unversioned (the default)
    bool sharedScope = true;             ///< all versions share one scope (see above). Default: shared
    std::string routePattern;            ///< the route's path pattern; locates the path-version segment for
                                         ///< the shared scope (set by the config loader)

    const VersionSpec* find(std::string_view name) const {
        for (const auto& v : versions)
            if (v.name == name) return &v;
        return nullptr;
    }
};

struct ResolvedVersion {
    const VersionSpec* spec = nullptr;  ///< points into the policy; null for an unversioned route
    /// The path that enters the record scope and the derived forward key: the request path with the
    /// path-version part replaced by "{version}" when the scope is shared and the version came in the
    /// path, else the request path as it is.
    std::string scopePath;
};

using RouteParams = std::vector<std::pair<std::string, std::string>>;

/// The version `request` asks for (rules above). `routeParams` are the route match's parameters.
/// The error is the 400 problem (ProblemType::VersionInvalid) to send.
std::expected<ResolvedVersion, HttpResponse> resolveVersion(const VersionPolicy& policy, const HttpRequest& request,
                                                            const RouteParams& routeParams);

/// `templ` with every "{name}" (or "{name...}") replaced by the value of the parameter `name` (raw, as
/// matched). A placeholder naming no parameter is kept as written (the config loader refuses such
/// templates); anything else is copied byte for byte.
std::string rewritePath(std::string_view templ, const RouteParams& params);

/// Sets Deprecation, Sunset and Link as described above; Deprecation and Sunset replace earlier lines of
/// the same name, the Link line is added (once). Does nothing for a version that is neither deprecated
/// nor has a sunset.
void addDeprecationHeaders(HttpResponse& response, const VersionSpec& version);

/// Seconds since the Unix epoch of an IMF-fixdate (RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT"),
/// with the day name checked against the date. nullopt if it is not one.
std::optional<std::int64_t> parseHttpDate(std::string_view text);

/// The IMF-fixdate of `unixSeconds` (years 1970-9999).
std::string formatHttpDate(std::int64_t unixSeconds);

/// Seconds since the epoch of midnight UTC of an ISO date "YYYY-MM-DD"; nullopt if it is not a valid date.
std::optional<std::int64_t> parseIsoDate(std::string_view text);

/// The config/log name of a source: "path", "header", "accept", "query".
std::string_view versionSourceName(VersionSource source);

}  // namespace idem::core
