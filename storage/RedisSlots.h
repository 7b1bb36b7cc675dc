#pragma once
// Internal to the Redis Cluster store: key -> hash slot, and the slot map read from CLUSTER SLOTS.
//
// keySlot follows the cluster specification (Appendix A): CRC16-XMODEM (polynomial 0x1021, initial value 0)
// of the key, or of the text inside its first non-empty {...} hash tag, modulo 16384.
//
// Thread-safety: pure functions.

#include "storage/RedisConnection.h"

#include <cstdint>
#include <string_view>
#include <vector>

namespace idem::storage {

inline constexpr std::uint16_t kRedisSlotCount = 16384;

/// CRC16-XMODEM; crc16("123456789") == 0x31C3.
std::uint16_t crc16(std::string_view data);

/// The hash tag of a key: the text between the first '{' and the first '}' after it, if non-empty;
/// otherwise the whole key.
std::string_view hashTag(std::string_view key);

/// The cluster slot of a key (0..16383).
std::uint16_t keySlot(std::string_view key);

/// One range of CLUSTER SLOTS: slots [first, last] served by `master`.
struct RedisSlotRange {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    RedisEndpoint master;
};

/// Parses a CLUSTER SLOTS reply (masters only; replicas are ignored). An empty host in a node entry (Redis 7
/// "unknown endpoint") is replaced by `answeringHost`, the host of the node that answered. A malformed
/// reply is Unavailable.
Result<std::vector<RedisSlotRange>> parseClusterSlots(const RedisReply& reply, std::string_view answeringHost);

}  // namespace idem::storage
