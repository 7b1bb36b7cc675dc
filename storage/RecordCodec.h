#pragma once
// Binary encoding of a stored response's headers and settlement, shared by the Redis and PostgreSQL
// stores so that the write path and the read path can never disagree (B10). Versioned: the first byte
// is the format version; a blob that does not decode is StoreError::Kind::Corrupt, never a miss.

#include "storage/Store.h"

#include <string>
#include <string_view>

namespace idem::storage {

inline constexpr unsigned char kRecordFormatVersion = 1;

/// [version:1][settlement:1][count:u32 be] then per header [nameLen:u32 be][name][valueLen:u32 be][value]
std::string encodeResponseMeta(const StoredResponse& response);

/// Decodes what encodeResponseMeta wrote into `out` (status and body are not touched).
Result<void> decodeResponseMeta(std::string_view blob, StoredResponse& out);

/// Bytes a response occupies for the limit check (StoreLimits::maxResponseBytes).
std::size_t storedSize(const StoredResponse& response);

}  // namespace idem::storage
