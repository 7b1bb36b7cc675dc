#include "gateway/core/Router.h"

#include <stdexcept>

namespace idem::core {
namespace {

bool isNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isNameChar(char c) { return isNameStart(c) || (c >= '0' && c <= '9'); }

/// Bytes a literal part of a pattern may hold.
bool isLiteralChar(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x21 && u <= 0x7E && c != '/' && c != '?' && c != '#' && c != '{' && c != '}';
}

}  // namespace

std::optional<std::string> Router::parse(std::string_view pattern, std::vector<Segment>* out) {
    if (pattern.empty() || pattern.front() != '/') return "a pattern must start with '/'";
    if (pattern == "/") return std::nullopt;
    std::vector<std::string_view> seenNames;
    std::string_view rest = pattern.substr(1);
    while (true) {
        const std::size_t slash = rest.find('/');
        const std::string_view seg = rest.substr(0, slash);
        const bool last = slash == std::string_view::npos;
        if (seg.empty()) return std::string("empty segment in '") + std::string(pattern) + "' (no '//' and no trailing '/')";

        Segment s;
        if (seg.front() == '{') {
            const std::size_t close = seg.find('}');
            if (close == std::string_view::npos) return "unclosed '{' in segment '" + std::string(seg) + "'";
            std::string_view name = seg.substr(1, close - 1);
            const std::string_view suffix = seg.substr(close + 1);
            s.kind = Segment::Kind::Param;
            if (name.size() > 3 && name.substr(name.size() - 3) == "...") {
                name.remove_suffix(3);
                s.kind = Segment::Kind::Rest;
                if (!last) return "'{" + std::string(name) + "...}' must be the last segment";
                if (!suffix.empty()) return "'{" + std::string(name) + "...}' cannot have a suffix";
            }
            if (name.empty() || !isNameStart(name.front()))
                return "parameter name in '" + std::string(seg) + "' must start with a letter or '_'";
            for (const char c : name)
                if (!isNameChar(c))
                    return "parameter name in '" + std::string(seg) + "' may hold only letters, digits and '_'";
            for (const auto n : seenNames)
                if (n == name) return "parameter '" + std::string(name) + "' appears twice";
            seenNames.push_back(name);
            for (const char c : suffix)
                if (!isLiteralChar(c))
                    return "invalid character in the suffix of segment '" + std::string(seg) + "'";
            s.text.assign(name);
            s.suffix.assign(suffix);
        } else {
            for (const char c : seg)
                if (!isLiteralChar(c))
                    return "invalid character in segment '" + std::string(seg) +
                           "' (a parameter is '{name}' at the start of a segment)";
            s.text.assign(seg);
        }
        if (out != nullptr) out->push_back(std::move(s));
        if (last) break;
        rest.remove_prefix(slash + 1);
    }
    return std::nullopt;
}

std::optional<std::string> Router::patternError(std::string_view pattern) { return parse(pattern, nullptr); }

Router::Router(std::vector<RouteSpec> routes) {
    routes_.reserve(routes.size());
    for (std::size_t i = 0; i < routes.size(); ++i) {
        Route r;
        if (auto err = parse(routes[i].pattern, &r.segments))
            throw std::invalid_argument("route " + std::to_string(i) + " pattern '" + routes[i].pattern + "': " + *err);
        for (const auto& s : r.segments)
            if (s.kind != Segment::Kind::Literal) ++r.paramCount;
        r.methods = std::move(routes[i].methods);
        routes_.push_back(std::move(r));
    }
}

bool Router::matches(const Route& route, std::string_view path, RouteMatch* capture) {
    if (path.empty() || path.front() != '/') return false;
    if (route.segments.empty()) return path == "/";
    std::string_view rest = path.substr(1);
    for (std::size_t i = 0; i < route.segments.size(); ++i) {
        const Segment& s = route.segments[i];
        if (s.kind == Segment::Kind::Rest) {
            if (rest.empty()) return false;
            if (capture != nullptr) capture->params.emplace_back(s.text, std::string(rest));
            return true;
        }
        const std::size_t slash = rest.find('/');
        const std::string_view seg = rest.substr(0, slash);
        const bool lastPathSegment = slash == std::string_view::npos;
        if (s.kind == Segment::Kind::Literal) {
            if (seg != s.text) return false;
        } else {
            if (seg.size() <= s.suffix.size() || !seg.ends_with(s.suffix)) return false;
            if (capture != nullptr)
                capture->params.emplace_back(s.text, std::string(seg.substr(0, seg.size() - s.suffix.size())));
        }
        const bool lastPatternSegment = i + 1 == route.segments.size();
        if (lastPatternSegment || lastPathSegment) return lastPatternSegment && lastPathSegment;
        rest.remove_prefix(slash + 1);
    }
    return false;
}

std::optional<RouteMatch> Router::match(std::string_view method, std::string_view path) const {
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        const Route& r = routes_[i];
        if (!r.methods.empty()) {
            bool listed = false;
            for (const auto& m : r.methods)
                if (m == method) {
                    listed = true;
                    break;
                }
            if (!listed) continue;
        }
        if (!matches(r, path, nullptr)) continue;
        RouteMatch m{i, {}};
        m.params.reserve(r.paramCount);
        matches(r, path, &m);
        return m;
    }
    return std::nullopt;
}

}  // namespace idem::core
