#pragma once
// Strict JSON (RFC 8259) canonicalisation for the request fingerprint (body: json, B11), and JSON string
// escaping for the problem bodies the gateway writes itself.
//
// Canonical form, the rules in full:
//  - the input must be exactly one JSON value with optional white space around it; anything after it
//    (trailing garbage), an invalid escape, a lone surrogate (\uD800 without its pair, or a \uDC00 alone),
//    a number with a leading zero ("01", "-01"), nesting deeper than kMaxJsonDepth arrays/objects, two
//    members with the same (unescaped) name in one object, a raw control character (< 0x20) inside a
//    string, or invalid UTF-8 (overlong forms, encoded surrogates, > U+10FFFF, stray bytes) reject it;
//  - object members are sorted by the bytes of their unescaped UTF-8 names, at every level (objects inside
//    arrays included); array elements keep their order (order is significant);
//  - no insignificant white space is emitted;
//  - strings are re-escaped canonically: only `"` and `\` and the control characters < 0x20 are escaped,
//    as \b \f \n \r \t where they exist and as \u00xx (lower-case hex) otherwise; every \uXXXX of the
//    input is decoded (surrogate pairs joined) and all non-ASCII is emitted as raw UTF-8; "/" stays as is;
//  - numbers keep their exact lexical form after validation: 1000, 1000.0, 1e3 and 1E3 stay different, so
//    two requests whose amounts are written differently never count as the same request (a client that
//    re-serialises the same document produces the same digits);
//  - true, false and null are emitted as such.
//
// Thread-safety: pure functions.

#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace idem::core {

/// Deepest nesting of arrays and objects accepted (a top-level array is depth 1).
inline constexpr std::size_t kMaxJsonDepth = 128;

/// Canonical form of `json` (rules above), or nullopt if it is not strict RFC 8259 JSON.
std::optional<std::string> canonicalJson(std::string_view json);

/// Same as canonicalJson, but the error says why and where ("invalid JSON at byte 12: ..."). The message
/// names the rule broken and a byte offset; it never quotes the document.
std::expected<std::string, std::string> canonicalizeJson(std::string_view json);

/// Appends `text` to `out` as a JSON string literal (with the quotes), escaped as in the canonical form.
/// Bytes of `text` that are not valid UTF-8 are replaced by U+FFFD, so the result is always valid JSON.
void appendJsonString(std::string& out, std::string_view text);

}  // namespace idem::core
