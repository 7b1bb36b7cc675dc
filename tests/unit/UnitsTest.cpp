// Durations and sizes as the config writes them: every unit, composites, limits and malformed input.

#include "gateway/config/Units.h"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <string>

using namespace std::chrono_literals;
using idem::config::formatDuration;
using idem::config::formatSize;
using idem::config::kMaxDuration;
using idem::config::parseDuration;
using idem::config::parseSize;

namespace {

std::string durationError(std::string_view text) {
    const auto d = parseDuration(text);
    BOOST_TEST_INFO("input: \"" << text << "\"");
    BOOST_REQUIRE(!d.has_value());
    return d.error();
}

std::string sizeError(std::string_view text) {
    const auto s = parseSize(text);
    BOOST_TEST_INFO("input: \"" << text << "\"");
    BOOST_REQUIRE(!s.has_value());
    return s.error();
}

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(UnitsSuite, *boost::unit_test::label("unit"))

BOOST_AUTO_TEST_CASE(durationEveryUnit) {
    BOOST_TEST(parseDuration("250ms").value().count() == 250);
    BOOST_TEST(parseDuration("30s").value().count() == 30'000);
    BOOST_TEST(parseDuration("5m").value().count() == 300'000);
    BOOST_TEST(parseDuration("24h").value().count() == 86'400'000);
    BOOST_TEST(parseDuration("7d").value().count() == 7 * 86'400'000LL);
    BOOST_TEST(parseDuration("0s").value().count() == 0);
    BOOST_TEST(parseDuration("0ms").value().count() == 0);
    BOOST_TEST(parseDuration("007s").value().count() == 7'000);
}

BOOST_AUTO_TEST_CASE(durationComposites) {
    BOOST_TEST(parseDuration("1h30m").value() == 90min);
    BOOST_TEST(parseDuration("1m500ms").value() == 60'500ms);
    BOOST_TEST(parseDuration("1d2h3m4s5ms").value().count() == 86'400'000LL + 2 * 3'600'000 + 3 * 60'000 + 4'000 + 5);
    BOOST_TEST(parseDuration("2h0m").value() == 2h);
}

BOOST_AUTO_TEST_CASE(durationCompositeOrderIsLargestFirst) {
    BOOST_TEST(contains(durationError("30m1h"), "largest to smallest"));
    BOOST_TEST(contains(durationError("1s1s"), "largest to smallest"));
    BOOST_TEST(contains(durationError("500ms1s"), "largest to smallest"));
}

BOOST_AUTO_TEST_CASE(durationBareNumberNeedsAUnit) {
    BOOST_TEST(contains(durationError("30"), "needs a unit"));
    BOOST_TEST(contains(durationError("0"), "needs a unit"));
    BOOST_TEST(contains(durationError("1h30"), "needs a unit"));
}

BOOST_AUTO_TEST_CASE(durationGarbage) {
    BOOST_TEST(contains(durationError(""), "empty"));
    BOOST_TEST(contains(durationError("s"), "needs a number"));
    BOOST_TEST(contains(durationError("abc"), "needs a number"));
    BOOST_TEST(contains(durationError("30x"), "unknown unit \"x\""));
    BOOST_TEST(contains(durationError("30S"), "unknown unit \"S\""));
    BOOST_TEST(contains(durationError("1us"), "unknown unit \"us\""));
    BOOST_TEST(contains(durationError("-5s"), "negative"));
    BOOST_TEST(contains(durationError("+5s"), "unexpected character"));
    BOOST_TEST(contains(durationError("1.5s"), "fractions"));
    BOOST_TEST(contains(durationError("30 s"), "spaces"));
    BOOST_TEST(contains(durationError(" 30s"), "spaces"));
    BOOST_TEST(contains(durationError("30s "), "spaces"));
    BOOST_TEST(contains(durationError("30s!"), "unexpected character"));
    // Every error names the input and the expected form.
    const std::string e = durationError("30");
    BOOST_TEST(contains(e, "\"30\""));
    BOOST_TEST(contains(e, "expected a duration like 30s"));
}

BOOST_AUTO_TEST_CASE(durationOverflowAndCap) {
    BOOST_TEST(parseDuration("3650d").value() == kMaxDuration);
    BOOST_TEST(contains(durationError("3651d"), "too long"));
    BOOST_TEST(contains(durationError("3650d1ms"), "too long"));
    BOOST_TEST(contains(durationError("99999999999999999999s"), "too long"));   // overflows uint64 while reading
    BOOST_TEST(contains(durationError("9223372036854775807d"), "too long"));    // overflows when multiplied
    BOOST_TEST(contains(durationError("18446744073709551615ms"), "too long"));  // uint64 max
}

BOOST_AUTO_TEST_CASE(durationFormat) {
    BOOST_TEST(formatDuration(0ms) == "0s");
    BOOST_TEST(formatDuration(250ms) == "250ms");
    BOOST_TEST(formatDuration(30s) == "30s");
    BOOST_TEST(formatDuration(90s) == "1m30s");
    BOOST_TEST(formatDuration(1500ms) == "1s500ms");
    BOOST_TEST(formatDuration(24h) == "24h");
    BOOST_TEST(formatDuration(std::chrono::hours(24 * 7)) == "168h");
    BOOST_TEST(formatDuration(35s) == "35s");
    BOOST_TEST(formatDuration(3h + 1ms) == "3h1ms");
    BOOST_TEST(formatDuration(-1500ms) == "-1s500ms");
    BOOST_TEST(formatDuration(std::chrono::milliseconds::min()).front() == '-');
}

BOOST_AUTO_TEST_CASE(durationFormatRoundTrips) {
    for (std::int64_t ms : std::initializer_list<std::int64_t>{1, 999, 1000, 59'999, 3'600'001, 86'400'000,
                                                             123'456'789, kMaxDuration.count()}) {
        const std::chrono::milliseconds d(ms);
        BOOST_TEST_INFO("ms = " << ms);
        BOOST_TEST(parseDuration(formatDuration(d)).value() == d);
    }
}

BOOST_AUTO_TEST_CASE(sizeEveryUnit) {
    BOOST_TEST(parseSize("512").value() == 512u);
    BOOST_TEST(parseSize("0").value() == 0u);
    BOOST_TEST(parseSize("512B").value() == 512u);
    BOOST_TEST(parseSize("64KiB").value() == 64u * 1024);
    BOOST_TEST(parseSize("1MiB").value() == 1u << 20);
    BOOST_TEST(parseSize("2GiB").value() == std::size_t{2} << 30);
    BOOST_TEST(parseSize("3TiB").value() == std::size_t{3} << 40);
    BOOST_TEST(parseSize("10KB").value() == 10'000u);
    BOOST_TEST(parseSize("10kB").value() == 10'000u);
    BOOST_TEST(parseSize("5MB").value() == 5'000'000u);
    BOOST_TEST(parseSize("2GB").value() == 2'000'000'000u);
    BOOST_TEST(parseSize("1TB").value() == 1'000'000'000'000u);
}

BOOST_AUTO_TEST_CASE(sizeGarbage) {
    BOOST_TEST(contains(sizeError(""), "empty"));
    BOOST_TEST(contains(sizeError("MiB"), "needs a number"));
    BOOST_TEST(contains(sizeError("1mib"), "unknown unit \"mib\""));
    BOOST_TEST(contains(sizeError("1Mb"), "unknown unit \"Mb\""));
    BOOST_TEST(contains(sizeError("1K"), "unknown unit \"K\""));
    BOOST_TEST(contains(sizeError("1.5MiB"), "fractions"));
    BOOST_TEST(contains(sizeError("-1"), "negative"));
    BOOST_TEST(contains(sizeError("1 MiB"), "spaces"));
    BOOST_TEST(contains(sizeError("1MiB1KiB"), "unknown unit"));
    BOOST_TEST(contains(sizeError("0x10"), "unknown unit \"x10\""));
    BOOST_TEST(contains(sizeError("12#"), "unexpected character"));
    BOOST_TEST(contains(sizeError("1.5MiB"), "expected a size like"));
}

BOOST_AUTO_TEST_CASE(sizeOverflow) {
    const auto max = std::numeric_limits<std::size_t>::max();
    BOOST_TEST(parseSize(std::to_string(max)).value() == max);
    BOOST_TEST(contains(sizeError("18446744073709551616"), "too large"));  // size_t max + 1
    BOOST_TEST(contains(sizeError("16777216TiB"), "too large"));           // 2^64
    BOOST_TEST(parseSize("16777215TiB").value() == std::size_t{16777215} << 40);
    BOOST_TEST(contains(sizeError("99999999999999999999999"), "too large"));
}

BOOST_AUTO_TEST_CASE(sizeFormat) {
    BOOST_TEST(formatSize(0) == "0B");
    BOOST_TEST(formatSize(1) == "1B");
    BOOST_TEST(formatSize(1500) == "1500B");
    BOOST_TEST(formatSize(1024) == "1KiB");
    BOOST_TEST(formatSize(1u << 20) == "1MiB");
    BOOST_TEST(formatSize(std::size_t{2} << 30) == "2GiB");
    BOOST_TEST(formatSize(2000) == "2KB");
    BOOST_TEST(formatSize(5'000'000) == "5MB");
    BOOST_TEST(formatSize(1'024'000) == "1024KB");  // shorter than 1000KiB
    BOOST_TEST(formatSize(1'000'000'000'000) == "1TB");
}

BOOST_AUTO_TEST_CASE(sizeFormatRoundTrips) {
    for (std::size_t n : {std::size_t{0}, std::size_t{7}, std::size_t{1023}, std::size_t{4096}, std::size_t{1'000'000},
                          std::size_t{1'048'577}, std::numeric_limits<std::size_t>::max()}) {
        BOOST_TEST_INFO("bytes = " << n);
        BOOST_TEST(parseSize(formatSize(n)).value() == n);
    }
}

BOOST_AUTO_TEST_SUITE_END()
