#include "gateway/core/Fingerprint.h"

#include "gateway/core/Json.h"
#include "gateway/core/Scope.h"

#include <algorithm>
#include <vector>

namespace idem::core {
namespace {

bool isHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

char upperAscii(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iendsWith(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string_view trimOws(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

}  // namespace

std::string normalizePath(std::string_view path) {
    std::string out(path);
    for (std::size_t i = 0; i + 2 < out.size(); ++i) {
        if (out[i] == '%' && isHexDigit(out[i + 1]) && isHexDigit(out[i + 2])) {
            out[i + 1] = upperAscii(out[i + 1]);
            out[i + 2] = upperAscii(out[i + 2]);
            i += 2;
        }
    }
    return out;
}

std::string sortedQuery(std::string_view query) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (start <= query.size()) {
        const std::size_t amp = std::min(query.find('&', start), query.size());
        if (amp > start) parts.push_back(query.substr(start, amp - start));
        start = amp + 1;
    }
    std::sort(parts.begin(), parts.end());
    std::string out;
    out.reserve(query.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) out.push_back('&');
        out += parts[i];
    }
    return out;
}

bool isJsonContentType(std::string_view contentType) {
    const std::string_view media = trimOws(contentType.substr(0, contentType.find(';')));
    const std::size_t slash = media.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == media.size()) return false;
    const std::string_view subtype = media.substr(slash + 1);
    if (iequals(media, "application/json")) return true;
    return subtype.size() > 5 && iendsWith(subtype, "+json");
}

std::expected<std::string, std::string> fingerprint(const HttpRequest& request, const RoutePolicy& policy,
                                                    std::string_view version) {
    std::string canonicalBody;
    bool useCanonical = false;
    if (policy.body == BodyMode::Json && !request.body.empty()) {
        const std::string* contentType = findHeader(request.headers, "Content-Type");
        if (contentType != nullptr && isJsonContentType(*contentType)) {
            auto canonical = canonicalizeJson(request.body);
            if (!canonical) return std::unexpected("the request body is declared as JSON but is not: " + canonical.error());
            canonicalBody = std::move(*canonical);
            useCanonical = true;
        }
    }

    FieldHasher h("fp1");
    h.add(request.method).add(version).add(normalizePath(request.path));
    h.add(policy.fingerprintQuery ? sortedQuery(request.query) : std::string());
    for (const auto& name : policy.fingerprintHeaders) {
        std::string lower(name);
        std::transform(lower.begin(), lower.end(), lower.begin(), lowerAscii);
        h.add(lower).add(std::to_string(countHeader(request.headers, name)));
        for (const auto& [n, v] : request.headers)
            if (iequals(n, name)) h.add(v);
    }
    h.add(useCanonical ? std::string_view(canonicalBody) : std::string_view(request.body));
    return h.hexDigest();
}

}  // namespace idem::core
