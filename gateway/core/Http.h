#pragma once
// Plain HTTP message values: the seam between the Poco edge and the pure core. No Poco here.

#include "storage/Store.h"

#include <optional>
#include <string>
#include <string_view>

namespace idem::core {

using storage::Header;
using storage::Headers;

/// A request as the core sees it. Header names keep the client's spelling; lookups are
/// case-insensitive. Repeated field lines stay separate entries, in order (B23).
struct HttpRequest {
    std::string method;  ///< upper case, as sent
    std::string path;    ///< the path without the query, as sent (percent-encoding kept)
    std::string query;   ///< the raw query without '?', empty if none
    Headers headers;
    std::string body;
};

/// A response, fresh from the upstream, replayed from the store, or made by the gateway itself.
/// `body` absent means "no body" (204, 304, HEAD); an empty body is an empty body.
struct HttpResponse {
    int status = 200;
    std::string reason;  ///< empty: the standard reason phrase for `status`
    Headers headers;
    std::optional<std::string> body;
};

/// ASCII case-insensitive comparison of header names.
bool iequals(std::string_view a, std::string_view b);

/// First value of a header (case-insensitive name), or nullptr.
const std::string* findHeader(const Headers& headers, std::string_view name);

/// Number of field lines with that name.
std::size_t countHeader(const Headers& headers, std::string_view name);

/// Removes every field line with that name.
void eraseHeader(Headers& headers, std::string_view name);

/// Replaces every field line with that name by one line `name: value`.
void setHeader(Headers& headers, std::string_view name, std::string value);

}  // namespace idem::core
