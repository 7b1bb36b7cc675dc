// Minimal JSON output helpers for the mock's hand-built bodies (no DOM on the hot path).
#pragma once

#include <string>
#include <string_view>

namespace idem::mock {

// Appends s as a quoted JSON string. Control characters are escaped, valid UTF-8 passes
// through, and bytes that are not valid UTF-8 become U+FFFD so the output always parses.
void appendJsonString(std::string& out, std::string_view s);

// ASCII case-insensitive comparison, as HTTP field names need.
bool iequals(std::string_view a, std::string_view b);

// True when s starts with prefix, ignoring ASCII case.
bool istartsWith(std::string_view s, std::string_view prefix);

}  // namespace idem::mock
