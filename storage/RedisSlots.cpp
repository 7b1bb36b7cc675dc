#include "storage/RedisSlots.h"

#include <array>

namespace idem::storage {
namespace {

constexpr std::array<std::uint16_t, 256> makeCrc16Table() {
    std::array<std::uint16_t, 256> table{};
    for (unsigned i = 0; i < 256; ++i) {
        std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        table[i] = crc;
    }
    return table;
}

constexpr auto kCrc16Table = makeCrc16Table();

StoreError malformed(const std::string& what) {
    return StoreError{StoreError::Kind::Unavailable, "redis: malformed CLUSTER SLOTS reply: " + what};
}

}  // namespace

std::uint16_t crc16(std::string_view data) {
    std::uint16_t crc = 0;
    for (unsigned char c : data)
        crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
    return crc;
}

std::string_view hashTag(std::string_view key) {
    const auto open = key.find('{');
    if (open == std::string_view::npos) return key;
    const auto close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) return key;
    return key.substr(open + 1, close - open - 1);
}

std::uint16_t keySlot(std::string_view key) { return static_cast<std::uint16_t>(crc16(hashTag(key)) & 16383); }

Result<std::vector<RedisSlotRange>> parseClusterSlots(const RedisReply& reply, std::string_view answeringHost) {
    if (reply.isError()) return std::unexpected(malformed(reply.errorText()));
    if (!reply.isArray()) return std::unexpected(malformed("not an array"));
    std::vector<RedisSlotRange> ranges;
    for (const auto& entry : reply.array()) {
        // [first, last, [host, port, id, ...] (master), [host, port, ...] (replicas)...]
        if (!entry.isArray() || entry.array().size() < 3) return std::unexpected(malformed("short range entry"));
        const auto& e = entry.array();
        const auto& master = e[2];
        if (!e[0].isInteger() || !e[1].isInteger() || !master.isArray() || master.array().size() < 2 ||
            !master.array()[0].isString() || !master.array()[1].isInteger())
            return std::unexpected(malformed("unexpected range entry types"));
        const auto first = e[0].integer(), last = e[1].integer(), port = master.array()[1].integer();
        if (first < 0 || last < first || last >= kRedisSlotCount || port <= 0 || port > 65535)
            return std::unexpected(malformed("slot or port out of range"));
        std::string host = master.array()[0].str();
        if (host.empty() || host == "?") host = std::string(answeringHost);
        ranges.push_back(RedisSlotRange{static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last),
                                        RedisEndpoint{std::move(host), static_cast<std::uint16_t>(port)}});
    }
    return ranges;
}

}  // namespace idem::storage
