#include "gateway/core/Key.h"

#include <cstdio>

namespace idem::core {
namespace {

KeyParse invalid(std::string_view headerName, std::string problem) {
    KeyParse r;
    r.status = KeyParse::Status::Invalid;
    r.problem = std::string(headerName) + ": " + std::move(problem);
    return r;
}

std::string_view trimOws(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

std::string byteHex(unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned>(c));
    return buf;
}

bool isHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool isUuid(std::string_view k) {
    if (k.size() != 36) return false;
    for (std::size_t i = 0; i < k.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? k[i] != '-' : !isHex(k[i])) return false;
    }
    return true;
}

}  // namespace

KeyParse parseKey(const Headers& headers, std::string_view headerName, KeyFormat format) {
    const std::string* raw = nullptr;
    std::size_t lines = 0;
    for (const auto& [name, value] : headers) {
        if (!iequals(name, headerName)) continue;
        if (++lines == 1) raw = &value;
    }
    if (lines == 0) return {};
    if (lines > 1)
        return invalid(headerName, "repeated: " + std::to_string(lines) + " field lines; send exactly one");

    const std::string_view value = trimOws(*raw);
    if (value.empty()) return invalid(headerName, "empty value");

    std::string key;
    if (value.front() == '"') {
        std::size_t i = 1;
        bool closed = false;
        key.reserve(value.size());
        while (i < value.size()) {
            const auto c = static_cast<unsigned char>(value[i]);
            if (c == '"') {
                closed = true;
                ++i;
                break;
            }
            if (c == '\\') {
                if (i + 1 >= value.size() || (value[i + 1] != '"' && value[i + 1] != '\\'))
                    return invalid(headerName, "invalid escape in the quoted string (only \\\" and \\\\ are allowed)");
                key.push_back(value[i + 1]);
                i += 2;
                continue;
            }
            if (c < 0x20 || c > 0x7E)
                return invalid(headerName, "character " + byteHex(c) + " inside the quoted string");
            key.push_back(static_cast<char>(c));
            ++i;
        }
        if (!closed) return invalid(headerName, "quoted string without its closing quote");
        if (!trimOws(value.substr(i)).empty())
            return invalid(headerName,
                           "unexpected data after the quoted string (parameters and lists are not accepted)");
    } else {
        if (value.find(',') != std::string_view::npos)
            return invalid(headerName, "a list of values; send exactly one key");
        key.assign(value);
    }

    if (key.empty()) return invalid(headerName, "empty key");
    if (key.size() > kMaxKeyLength)
        return invalid(headerName, "too long (" + std::to_string(key.size()) + " > " + std::to_string(kMaxKeyLength) +
                                       " characters)");
    for (std::size_t i = 0; i < key.size(); ++i) {
        const auto c = static_cast<unsigned char>(key[i]);
        if (c < 0x21 || c > 0x7E)
            return invalid(headerName, "control or non-printable character " + byteHex(c) + " at position " +
                                           std::to_string(i + 1) + " (allowed: printable ASCII 0x21-0x7E)");
    }
    if (format == KeyFormat::Uuid && !isUuid(key))
        return invalid(headerName, "not a UUID (expected 8-4-4-4-12 hexadecimal digits)");

    KeyParse r;
    r.status = KeyParse::Status::Ok;
    r.key = std::move(key);
    return r;
}

std::string redactKey(std::string_view key) {
    constexpr std::size_t kShown = 8;
    if (key.size() <= kShown) return std::string(key);
    std::string out(key.substr(0, kShown));
    out += "...";
    return out;
}

}  // namespace idem::core
