#pragma once
// Route table: (method, path) -> the first configured route that matches (SEMANTICS.md §1, issue 5).
//
// Patterns:
//  - start with '/'; "/" alone matches only "/". Segments are separated by '/', and none may be empty
//    (no "//", no trailing '/'); '?', '#', '{' and '}' outside a parameter, and bytes outside 0x21-0x7E are
//    errors.
//  - a segment is a literal ("payments", matched byte for byte, case-sensitive), or a parameter
//    `{name}` optionally followed by a literal suffix (`{id}:capture`): the parameter takes the whole
//    segment minus the suffix and must be non-empty. Names are [A-Za-z_][A-Za-z0-9_]* and unique.
//  - the last segment may be `{name...}`: it matches the rest of the path (one or more characters,
//    slashes included). It takes no suffix.
//  - parameter values are the raw (still percent-encoded) bytes of the path.
// Matching: routes are tried in order; a route whose method list (empty = any method; exact,
// case-sensitive comparison) lacks the method is skipped, so a later route may take the request. The
// first route whose pattern matches wins. Matching walks the path once per candidate with no allocation;
// only the winning route's parameters are copied out.
//
// Thread-safety: immutable after construction; match() is safe from any thread.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idem::core {

struct RouteSpec {
    std::vector<std::string> methods;  ///< empty = any method
    std::string pattern;
};

struct RouteMatch {
    std::size_t index;  ///< position of the route in the table given to the constructor
    std::vector<std::pair<std::string, std::string>> params;  ///< (name, raw value) in pattern order
};

class Router {
public:
    /// Builds the table. Throws std::invalid_argument naming the route index and the problem if a pattern
    /// is invalid (startup and reload only; validate first with patternError for a friendly message).
    explicit Router(std::vector<RouteSpec> routes);

    std::optional<RouteMatch> match(std::string_view method, std::string_view path) const;

    /// nullopt if `pattern` is valid, else a sentence saying what is wrong with it.
    static std::optional<std::string> patternError(std::string_view pattern);

    std::size_t size() const { return routes_.size(); }

private:
    struct Segment {
        enum class Kind { Literal, Param, Rest } kind = Kind::Literal;
        std::string text;  ///< the literal, or the parameter's name
        std::string suffix;  ///< Param only: literal after '}'
    };
    struct Route {
        std::vector<std::string> methods;
        std::vector<Segment> segments;  ///< empty for the pattern "/"
        std::size_t paramCount = 0;
    };

    static std::optional<std::string> parse(std::string_view pattern, std::vector<Segment>* out);
    static bool matches(const Route& route, std::string_view path, RouteMatch* capture);

    std::vector<Route> routes_;
};

}  // namespace idem::core
