#pragma once
// The client's idempotency key: parsing and validation of the key header (SEMANTICS.md §2, B22, B23).
//
// parseKey rules, in the order they are checked:
//  1. The header name is matched ASCII case-insensitively (`idempotency-key`, `IDEMPOTENCY-KEY` and a
//     configured alias such as `X-Idempotency-Key` in any case all match).
//  2. No field line -> Absent. More than one field line -> Invalid ("repeated"): lines are never joined
//     and the first is never picked (B23).
//  3. The value is trimmed of SP and HTAB at both ends. Empty, or only spaces -> Invalid ("empty").
//  4. A value starting with `"` is an RFC 8941 sf-string: it runs to the first unescaped `"`; the only
//     escapes are \" and \\ (any other backslash, a missing closing quote, or a character outside
//     0x20-0x7E inside the quotes -> Invalid); anything after the closing quote other than OWS, including
//     sf-parameters (`;a=1`) and list members (`, "x"`) -> Invalid. The key is the unescaped content.
//  5. An unquoted value containing a comma is a list -> Invalid ("list").
//  6. The key (after unquoting) must be 1 to kMaxKeyLength (255) characters, each 0x21-0x7E (printable
//     ASCII, no space): else Invalid, saying "empty", "too long (N > 255)" or "character 0xHH at
//     position P" (P counted from 1 in the unquoted key).
//  7. KeyFormat::Uuid additionally requires the 8-4-4-4-12 hex form (digits in either case).
// Keys are case-sensitive: "Abc" and "abc" are different keys. The raw key is never logged in full:
// use redactKey.
//
// Thread-safety: pure functions.

#include "gateway/core/Http.h"
#include "gateway/core/Policy.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace idem::core {

inline constexpr std::size_t kMaxKeyLength = 255;

/// Result of parseKey. `key` is set only for Ok; `problem` (a human sentence for the 400 problem detail,
/// which never quotes the key) only for Invalid.
struct KeyParse {
    enum class Status { Absent, Ok, Invalid } status = Status::Absent;
    std::string key;
    std::string problem;
};

KeyParse parseKey(const Headers& headers, std::string_view headerName, KeyFormat format);

/// First 8 characters of the key followed by "...", or the whole key if it has at most 8 characters.
/// For logs and the `idempotency_key` member of problem bodies.
std::string redactKey(std::string_view key);

}  // namespace idem::core
