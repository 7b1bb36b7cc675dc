#include "storage/RecordCodec.h"

#include <cstdint>

namespace idem::storage {
namespace {

void putU32(std::string& out, std::uint32_t v) {
    out.push_back(static_cast<char>((v >> 24) & 0xff));
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
}

bool getU32(std::string_view& in, std::uint32_t& v) {
    if (in.size() < 4) return false;
    v = (std::uint32_t(static_cast<unsigned char>(in[0])) << 24) |
        (std::uint32_t(static_cast<unsigned char>(in[1])) << 16) |
        (std::uint32_t(static_cast<unsigned char>(in[2])) << 8) | std::uint32_t(static_cast<unsigned char>(in[3]));
    in.remove_prefix(4);
    return true;
}

bool getBytes(std::string_view& in, std::string& out) {
    std::uint32_t n = 0;
    if (!getU32(in, n) || in.size() < n) return false;
    out.assign(in.data(), n);
    in.remove_prefix(n);
    return true;
}

StoreError corrupt(const char* what) {
    return StoreError{StoreError::Kind::Corrupt, std::string("idempotency record unreadable: ") + what};
}

}  // namespace

std::string encodeResponseMeta(const StoredResponse& response) {
    std::string out;
    std::size_t size = 6;
    for (const auto& [n, v] : response.headers) size += 8 + n.size() + v.size();
    out.reserve(size);
    out.push_back(static_cast<char>(kRecordFormatVersion));
    out.push_back(static_cast<char>(response.settlement));
    putU32(out, static_cast<std::uint32_t>(response.headers.size()));
    for (const auto& [name, value] : response.headers) {
        putU32(out, static_cast<std::uint32_t>(name.size()));
        out += name;
        putU32(out, static_cast<std::uint32_t>(value.size()));
        out += value;
    }
    return out;
}

Result<void> decodeResponseMeta(std::string_view in, StoredResponse& out) {
    if (in.size() < 6) return std::unexpected(corrupt("header block too short"));
    if (static_cast<unsigned char>(in[0]) != kRecordFormatVersion)
        return std::unexpected(corrupt("unknown record format version"));
    const auto s = static_cast<Settlement>(static_cast<unsigned char>(in[1]));
    if (s != Settlement::Definite && s != Settlement::Unknown && s != Settlement::Unreplayable)
        return std::unexpected(corrupt("unknown settlement"));
    in.remove_prefix(2);
    std::uint32_t count = 0;
    getU32(in, count);
    if (count > in.size() / 8) return std::unexpected(corrupt("header count larger than the block"));
    Headers headers;
    headers.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        Header h;
        if (!getBytes(in, h.first) || !getBytes(in, h.second)) return std::unexpected(corrupt("truncated header"));
        headers.push_back(std::move(h));
    }
    if (!in.empty()) return std::unexpected(corrupt("trailing bytes after headers"));
    out.settlement = s;
    out.headers = std::move(headers);
    return {};
}

std::size_t storedSize(const StoredResponse& response) {
    std::size_t n = response.body ? response.body->size() : 0;
    for (const auto& [name, value] : response.headers) n += name.size() + value.size() + 8;
    return n;
}

}  // namespace idem::storage
