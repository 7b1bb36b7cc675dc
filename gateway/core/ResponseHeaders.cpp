#include "gateway/core/ResponseHeaders.h"

#include <vector>

namespace idem::core {
namespace {

std::string_view trimOws(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

/// Every token of every Connection field line ("close", "X-Foo", ...), trimmed, empty ones dropped.
std::vector<std::string_view> connectionOptions(const Headers& headers) {
    std::vector<std::string_view> out;
    for (const auto& [name, value] : headers) {
        if (!iequals(name, "Connection")) continue;
        std::string_view rest = value;
        while (true) {
            const std::size_t comma = rest.find(',');
            const std::string_view token = trimOws(rest.substr(0, comma));
            if (!token.empty()) out.push_back(token);
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    return out;
}

bool namedIn(std::string_view name, const std::vector<std::string_view>& names) {
    for (const auto n : names)
        if (iequals(n, name)) return true;
    return false;
}

Headers filtered(const Headers& upstream, bool dropStoreOnly, bool allowSetCookie) {
    const auto options = connectionOptions(upstream);
    Headers out;
    out.reserve(upstream.size() + 3);
    for (const auto& h : upstream) {
        const std::string_view name = h.first;
        if (isHopByHop(name) || namedIn(name, options) || iequals(name, "Content-Length")) continue;
        if (dropStoreOnly && (iequals(name, "Date") || (!allowSetCookie && iequals(name, "Set-Cookie")))) continue;
        out.push_back(h);
    }
    return out;
}

}  // namespace

bool isHopByHop(std::string_view name) {
    static constexpr std::string_view kHopByHop[] = {"Connection", "Keep-Alive", "Transfer-Encoding",
                                                     "TE",         "Trailer",    "Upgrade"};
    for (const auto h : kHopByHop)
        if (iequals(name, h)) return true;
    constexpr std::string_view kProxyPrefix = "Proxy-";
    return name.size() > kProxyPrefix.size() && iequals(name.substr(0, kProxyPrefix.size()), kProxyPrefix);
}

Headers storableHeaders(const Headers& upstream, bool allowSetCookie) {
    return filtered(upstream, true, allowSetCookie);
}

Headers forwardableHeaders(const Headers& upstream) { return filtered(upstream, false, true); }

StoredResponse toStoredResponse(const HttpResponse& upstream, bool allowSetCookie, Settlement settlement) {
    StoredResponse r;
    r.status = upstream.status;
    r.headers = storableHeaders(upstream.headers, allowSetCookie);
    r.body = upstream.body;
    r.settlement = settlement;
    return r;
}

std::size_t storedResponseSize(const StoredResponse& response) {
    std::size_t n = response.body ? response.body->size() : 0;
    for (const auto& [name, value] : response.headers) n += name.size() + value.size() + 8;
    return n;
}

HttpResponse freshResponse(const HttpResponse& upstream, bool allowSetCookie, std::string_view clientKey,
                           std::string_view keyHeaderName) {
    HttpResponse r;
    r.status = upstream.status;
    r.headers = storableHeaders(upstream.headers, allowSetCookie);
    r.body = upstream.body;
    return withFreshHeaders(std::move(r), clientKey, keyHeaderName);
}

HttpResponse withFreshHeaders(HttpResponse response, std::string_view clientKey, std::string_view keyHeaderName) {
    setHeader(response.headers, "Idempotent-Replayed", "false");
    setHeader(response.headers, keyHeaderName, std::string(clientKey));
    return response;
}

HttpResponse replayResponse(const StoredResponse& stored, std::string_view clientKey, std::string_view keyHeaderName) {
    HttpResponse r;
    r.status = stored.status;
    r.headers = stored.headers;
    r.body = stored.body;
    setHeader(r.headers, "Idempotent-Replayed", "true");
    setHeader(r.headers, "Cache-Control", "no-store");
    setHeader(r.headers, keyHeaderName, std::string(clientKey));
    return r;
}

}  // namespace idem::core
