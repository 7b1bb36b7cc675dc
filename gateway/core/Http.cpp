#include "gateway/core/Http.h"

#include <algorithm>

namespace idem::core {
namespace {

constexpr char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
    return true;
}

const std::string* findHeader(const Headers& headers, std::string_view name) {
    for (const auto& [n, v] : headers)
        if (iequals(n, name)) return &v;
    return nullptr;
}

std::size_t countHeader(const Headers& headers, std::string_view name) {
    return static_cast<std::size_t>(
        std::count_if(headers.begin(), headers.end(), [&](const Header& h) { return iequals(h.first, name); }));
}

void eraseHeader(Headers& headers, std::string_view name) {
    std::erase_if(headers, [&](const Header& h) { return iequals(h.first, name); });
}

void setHeader(Headers& headers, std::string_view name, std::string value) {
    // The single line takes the place of the first existing one (order of the others is kept);
    // with none, it is appended.
    auto first = std::find_if(headers.begin(), headers.end(), [&](const Header& h) { return iequals(h.first, name); });
    if (first == headers.end()) {
        headers.emplace_back(std::string(name), std::move(value));
        return;
    }
    first->first.assign(name);
    first->second = std::move(value);
    auto out = first + 1;
    for (auto it = first + 1; it != headers.end(); ++it)
        if (!iequals(it->first, name)) {
            if (out != it) *out = std::move(*it);
            ++out;
        }
    headers.erase(out, headers.end());
}

}  // namespace idem::core
