#pragma once
// Durations and sizes as written in the config: "30s", "1h30m", "250ms", "1MiB", "10KB", "512".
// Pure functions, no state; the error string says what was wrong and what form is expected, and the
// config loader prefixes it with the file and key path.

#include <chrono>
#include <cstddef>
#include <expected>
#include <string>
#include <string_view>

namespace idem::config {

/// Longest duration the config accepts. Deadlines are later computed as clock-now + duration in
/// nanoseconds (int64, ~292 years); a cap of ten years keeps every such sum far from overflow.
inline constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24 * 3650);

/// Parses one or more <whole number><unit> parts, units from largest to smallest, each at most once:
/// "250ms", "30s", "5m", "24h", "7d", "1h30m", "1m500ms". Units: d, h, m, s, ms. A bare number is an
/// error ("needs a unit"), as are signs, fractions, spaces inside, and anything above kMaxDuration.
std::expected<std::chrono::milliseconds, std::string> parseDuration(std::string_view text);

/// Parses <whole number>[unit]: a bare number is bytes. Units: B, KiB, MiB, GiB, TiB (powers of 1024)
/// and KB, MB, GB, TB (powers of 1000; "kB" is accepted for KB). Errors on overflow of size_t.
std::expected<std::size_t, std::string> parseSize(std::string_view text);

/// Shortest composite in h, m, s, ms that parseDuration reads back to the same value: 90s -> "1m30s",
/// 24h -> "24h", 1500ms -> "1s500ms", 0 -> "0s". Days are not used, so 7d prints as "168h".
/// Negative values print with a leading '-' (parseDuration rejects them).
std::string formatDuration(std::chrono::milliseconds d);

/// The shortest exact form, binary units winning ties: 1048576 -> "1MiB", 2000 -> "2KB",
/// 1024000 -> "1024KB", 1500 -> "1500B", 0 -> "0B". parseSize reads it back.
std::string formatSize(std::size_t bytes);

}  // namespace idem::config
