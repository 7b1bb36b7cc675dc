#include "gateway/config/Units.h"

#include <array>
#include <cstdint>
#include <limits>
#include <utility>

namespace idem::config {
namespace {

constexpr std::string_view kDurationForm = "expected a duration like 30s, 250ms or 1h30m";
constexpr std::string_view kSizeForm = "expected a size like 512, 64KiB or 1MiB";

std::string quoted(std::string_view text) {
    std::string out = "\"";
    out += text;
    out += '"';
    return out;
}

std::string fail(std::string_view text, std::string_view reason, std::string_view form) {
    std::string out = quoted(text);
    out += ": ";
    out += reason;
    out += " (";
    out += form;
    out += ')';
    return out;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/// Reads a run of decimal digits at `pos` into `value`; false on overflow of uint64.
bool readNumber(std::string_view text, std::size_t& pos, std::uint64_t& value) {
    value = 0;
    for (; pos < text.size() && isDigit(text[pos]); ++pos) {
        if (__builtin_mul_overflow(value, 10u, &value)) return false;
        if (__builtin_add_overflow(value, static_cast<std::uint64_t>(text[pos] - '0'), &value)) return false;
    }
    return true;
}

/// The problem with a character where a number was expected.
std::string_view describeUnexpected(char c) {
    if (c == '-') return "must not be negative";
    if (c == '.') return "fractions are not supported; use a smaller unit";
    if (c == ' ' || c == '\t') return "spaces are not allowed";
    return "unexpected character";
}

struct DurationUnit {
    std::string_view name;
    std::int64_t millis;
};
// Largest first: composite durations must follow this order.
constexpr std::array<DurationUnit, 5> kDurationUnits{{
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1},
}};

}  // namespace

std::expected<std::chrono::milliseconds, std::string> parseDuration(std::string_view text) {
    if (text.empty()) return std::unexpected(fail(text, "empty", kDurationForm));
    const auto maxMillis = static_cast<std::uint64_t>(kMaxDuration.count());
    std::uint64_t total = 0;
    std::size_t pos = 0;
    std::size_t lastRank = kDurationUnits.size();  // rank of the previous part's unit; none yet
    while (pos < text.size()) {
        if (!isDigit(text[pos])) {
            if (isAlpha(text[pos]) && pos == 0)
                return std::unexpected(fail(text, "needs a number before the unit", kDurationForm));
            return std::unexpected(fail(text, describeUnexpected(text[pos]), kDurationForm));
        }
        std::uint64_t number = 0;
        if (!readNumber(text, pos, number))
            return std::unexpected(fail(text, "too long; the maximum is 3650d", kDurationForm));
        const std::size_t unitStart = pos;
        while (pos < text.size() && isAlpha(text[pos])) ++pos;
        const std::string_view unit = text.substr(unitStart, pos - unitStart);
        if (unit.empty()) {
            if (pos == text.size()) {
                return std::unexpected(fail(text, lastRank == kDurationUnits.size()
                                                      ? "needs a unit (ms, s, m, h or d)"
                                                      : "the last number needs a unit (ms, s, m, h or d)",
                                            kDurationForm));
            }
            return std::unexpected(fail(text, describeUnexpected(text[pos]), kDurationForm));
        }
        std::size_t rank = kDurationUnits.size();
        for (std::size_t i = 0; i < kDurationUnits.size(); ++i)
            if (kDurationUnits[i].name == unit) rank = i;
        if (rank == kDurationUnits.size()) {
            std::string reason = "unknown unit ";
            reason += quoted(unit);
            reason += "; use ms, s, m, h or d";
            return std::unexpected(fail(text, reason, kDurationForm));
        }
        if (lastRank != kDurationUnits.size() && rank <= lastRank)
            return std::unexpected(fail(text, "units must go from largest to smallest, each once", kDurationForm));
        lastRank = rank;
        std::uint64_t part = 0;
        if (__builtin_mul_overflow(number, static_cast<std::uint64_t>(kDurationUnits[rank].millis), &part) ||
            __builtin_add_overflow(total, part, &total) || total > maxMillis)
            return std::unexpected(fail(text, "too long; the maximum is 3650d", kDurationForm));
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

std::expected<std::size_t, std::string> parseSize(std::string_view text) {
    struct SizeUnit {
        std::string_view name;
        std::uint64_t bytes;
    };
    static constexpr std::array<SizeUnit, 10> kUnits{{
        {"B", 1},
        {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
        {"KB", 1'000}, {"kB", 1'000}, {"MB", 1'000'000}, {"GB", 1'000'000'000}, {"TB", 1'000'000'000'000},
    }};
    if (text.empty()) return std::unexpected(fail(text, "empty", kSizeForm));
    std::size_t pos = 0;
    if (!isDigit(text[0])) {
        if (isAlpha(text[0])) return std::unexpected(fail(text, "needs a number before the unit", kSizeForm));
        return std::unexpected(fail(text, describeUnexpected(text[0]), kSizeForm));
    }
    std::uint64_t number = 0;
    if (!readNumber(text, pos, number)) return std::unexpected(fail(text, "too large", kSizeForm));
    const std::string_view unit = text.substr(pos);
    std::uint64_t multiplier = 0;
    if (unit.empty()) {
        multiplier = 1;
    } else {
        for (const auto& u : kUnits)
            if (u.name == unit) multiplier = u.bytes;
        if (multiplier == 0) {
            if (!isAlpha(unit[0])) return std::unexpected(fail(text, describeUnexpected(unit[0]), kSizeForm));
            std::string reason = "unknown unit ";
            reason += quoted(unit);
            reason += "; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB";
            return std::unexpected(fail(text, reason, kSizeForm));
        }
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(number, multiplier, &bytes) || bytes > std::numeric_limits<std::size_t>::max())
        return std::unexpected(fail(text, "too large", kSizeForm));
    return static_cast<std::size_t>(bytes);
}

std::string formatDuration(std::chrono::milliseconds d) {
    std::int64_t ms = d.count();
    if (ms == 0) return "0s";
    std::string out;
    std::uint64_t left = 0;
    if (ms < 0) {
        out = "-";
        left = static_cast<std::uint64_t>(-(ms + 1)) + 1;  // no overflow for the minimum value
    } else {
        left = static_cast<std::uint64_t>(ms);
    }
    // Days are skipped on purpose: "24h" reads better than "1d" for the common TTLs.
    for (std::size_t i = 1; i < kDurationUnits.size(); ++i) {
        const auto unit = static_cast<std::uint64_t>(kDurationUnits[i].millis);
        if (left >= unit) {
            out += std::to_string(left / unit);
            out += kDurationUnits[i].name;
            left %= unit;
        }
    }
    return out;
}

std::string formatSize(std::size_t bytes) {
    if (bytes == 0) return "0B";
    static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> kOrder{{
        {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10},
        {"TB", 1'000'000'000'000}, {"GB", 1'000'000'000}, {"MB", 1'000'000}, {"KB", 1'000},
    }};
    const auto value = static_cast<std::uint64_t>(bytes);
    std::string best = std::to_string(value) + "B";
    for (const auto& [name, unit] : kOrder) {
        if (value % unit != 0) continue;
        std::string candidate = std::to_string(value / unit) + std::string(name);
        if (candidate.size() < best.size()) best = std::move(candidate);  // ties keep the binary unit
    }
    return best;
}

}  // namespace idem::config
