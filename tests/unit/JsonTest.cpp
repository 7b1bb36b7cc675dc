#include "gateway/core/Json.h"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace idem::core;

namespace {

std::string canon(std::string_view in) {
    auto r = canonicalJson(in);
    BOOST_REQUIRE_MESSAGE(r.has_value(), "expected valid JSON: " << in << " / " << canonicalizeJson(in).error());
    return *r;
}

bool rejected(std::string_view in) { return !canonicalJson(in).has_value(); }

}  // namespace

BOOST_AUTO_TEST_SUITE(JsonTest)

BOOST_AUTO_TEST_CASE(objectKeysSortedAtEveryLevel) {
    BOOST_TEST(canon(R"({"b":1,"a":{"d":1,"c":2}})") == R"({"a":{"c":2,"d":1},"b":1})");
}

BOOST_AUTO_TEST_CASE(objectsInsideArraysAreSortedButArraysKeepOrder) {
    BOOST_TEST(canon(R"([{"y":2,"x":1},[{"b":0,"a":0}],3])") == R"([{"x":1,"y":2},[{"a":0,"b":0}],3])");
}

BOOST_AUTO_TEST_CASE(b11ReorderedAndReformattedBodiesAreEqual) {
    const std::string a = R"({"amount":1000,"currency":"usd","meta":{"a":1,"b":[{"x":1,"y":2}]}})";
    const std::string b = "{ \"currency\" : \"usd\",\n \"meta\":{\"b\":[{\"y\":2,\"x\":1}],\"a\":1}, \"amount\":1000 }";
    BOOST_TEST(canon(a) == canon(b));
    BOOST_TEST(canon(a) == a);
}

BOOST_AUTO_TEST_CASE(arrayOrderIsSignificant) {
    BOOST_TEST(canon(R"([{"x":3},{"x":1}])") != canon(R"([{"x":1},{"x":3}])"));
}

BOOST_AUTO_TEST_CASE(insignificantWhitespaceIsRemoved) {
    BOOST_TEST(canon(" \t\r\n[ 1 , { \"a\" : [ ] , \"b\" : { } } , \"x y\" ]\n ") == R"([1,{"a":[],"b":{}},"x y"])");
}

BOOST_AUTO_TEST_CASE(changedValueChangesTheForm) {
    BOOST_TEST(canon(R"({"amount":1000})") != canon(R"({"amount":1001})"));
}

BOOST_AUTO_TEST_CASE(numbersKeepTheirLexicalForm) {
    BOOST_TEST(canon("1000") == "1000");
    BOOST_TEST(canon("1000.0") == "1000.0");
    BOOST_TEST(canon("1e3") == "1e3");
    BOOST_TEST(canon("1E+3") == "1E+3");
    BOOST_TEST(canon("-0.5e-7") == "-0.5e-7");
    BOOST_TEST(canon("0") == "0");
    BOOST_TEST(canon("-0") == "-0");
    BOOST_TEST(canon(R"({"amount":1000})") != canon(R"({"amount":1000.0})"));
    BOOST_TEST(canon(R"({"amount":1000})") != canon(R"({"amount":1e3})"));
}

BOOST_AUTO_TEST_CASE(invalidNumbersAreRejected) {
    for (const char* in : {"01", "-01", "00", "1.", ".5", "1e", "1e+", "+1", "-", "0x10", "1.e3", "NaN", "Infinity",
                           "--1", "1..2"})
        BOOST_TEST(rejected(in), in);
}

BOOST_AUTO_TEST_CASE(literalsAndScalars) {
    BOOST_TEST(canon(" true ") == "true");
    BOOST_TEST(canon("false") == "false");
    BOOST_TEST(canon("null") == "null");
    BOOST_TEST(canon(R"("s")") == R"("s")");
    for (const char* in : {"tru", "True", "nul", "nulll", "falsey"}) BOOST_TEST(rejected(in), in);
}

BOOST_AUTO_TEST_CASE(duplicateNamesAreRejected) {
    BOOST_TEST(rejected(R"({"a":1,"a":2})"));
    BOOST_TEST(rejected(R"({"a":1,"b":0,"a":1})"));
    BOOST_TEST(rejected(R"({"x":{"a":1,"a":1}})"));
    BOOST_TEST(rejected(R"([{"a":1,"a":1}])"));
    // The same name spelled with an escape is still the same name.
    BOOST_TEST(rejected(R"({"a":1,"\u0061":2})"));
    // The same name in different objects is fine.
    BOOST_TEST(canon(R"([{"a":1},{"a":2}])") == R"([{"a":1},{"a":2}])");
    const auto err = canonicalizeJson(R"({"a":1,"a":2})");
    BOOST_REQUIRE(!err.has_value());
    BOOST_TEST(err.error().find("duplicate") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(stringsAreReEscapedCanonically) {
    BOOST_TEST(canon(R"("\u0041\/\"\\")") == R"("A/\"\\")");
    BOOST_TEST(canon(R"("\n\t\r\b\f")") == R"("\n\t\r\b\f")");
    BOOST_TEST(canon(R"("\u000a\u001F\u0000")") == R"("\n\u001f\u0000")");
    BOOST_TEST(canon(R"("\u00e9")") == "\"\xC3\xA9\"");
    BOOST_TEST(canon("\"\xC3\xA9\"") == "\"\xC3\xA9\"");
    BOOST_TEST(canon(R"("\u20AC")") == "\"\xE2\x82\xAC\"");
    BOOST_TEST(canon("\"\x7F\"") == "\"\x7F\"");
}

BOOST_AUTO_TEST_CASE(surrogatePairsAreJoined) {
    BOOST_TEST(canon(R"("\uD83D\uDE00")") == "\"\xF0\x9F\x98\x80\"");
    BOOST_TEST(canon(R"("\ud83d\ude00")") == canon("\"\xF0\x9F\x98\x80\""));
}

BOOST_AUTO_TEST_CASE(loneSurrogatesAreRejected) {
    BOOST_TEST(rejected(R"("\uD83D")"));
    BOOST_TEST(rejected(R"("\uD83Dx")"));
    BOOST_TEST(rejected(R"("\uDE00")"));
    BOOST_TEST(rejected(R"("\uD83D\u0041")"));
    BOOST_TEST(rejected(R"("\uD83D\uD83D")"));
}

BOOST_AUTO_TEST_CASE(invalidEscapesAreRejected) {
    for (const char* in : {R"("\x41")", R"("\u12")", R"("\u12G4")", R"("\a")", R"("\)", "\"\\'\""})
        BOOST_TEST(rejected(in), in);
}

BOOST_AUTO_TEST_CASE(invalidUtf8IsRejected) {
    BOOST_TEST(rejected("\"\xC3\""));              // truncated sequence
    BOOST_TEST(rejected("\"\xC0\xAF\""));          // overlong '/'
    BOOST_TEST(rejected("\"\xED\xA0\x80\""));      // encoded surrogate
    BOOST_TEST(rejected("\"\xF4\x90\x80\x80\""));  // above U+10FFFF
    BOOST_TEST(rejected("\"\xFF\""));
    BOOST_TEST(rejected("\"\x80\""));
    BOOST_TEST(rejected("{\"\xFF\":1}"));
}

BOOST_AUTO_TEST_CASE(rawControlCharacterInStringIsRejected) {
    BOOST_TEST(rejected("\"a\nb\""));
    BOOST_TEST(rejected(std::string_view("\"a\0b\"", 5)));
}

BOOST_AUTO_TEST_CASE(structuralErrorsAreRejected) {
    for (const char* in : {"", "   ", "{", "[", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{a:1}",
                           "{'a':1}", "[1 2]", "{} {}", "[1]x", "{\"a\":1}garbage", "\"abc", "[1]]", "}", "{1:2}"})
        BOOST_TEST(rejected(in), in);
}

BOOST_AUTO_TEST_CASE(trailingGarbageErrorNamesTheOffset) {
    const auto err = canonicalizeJson("[1] x");
    BOOST_REQUIRE(!err.has_value());
    BOOST_TEST(err.error() == "invalid JSON at byte 4: unexpected data after the JSON value");
}

BOOST_AUTO_TEST_CASE(depthLimit) {
    const auto nested = [](std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    BOOST_TEST(canon(nested(kMaxJsonDepth)) == nested(kMaxJsonDepth));
    BOOST_TEST(rejected(nested(kMaxJsonDepth + 1)));
    std::string objects;
    for (std::size_t i = 0; i < kMaxJsonDepth + 1; ++i) objects += "{\"a\":";
    objects += "1" + std::string(kMaxJsonDepth + 1, '}');
    BOOST_TEST(rejected(objects));
    BOOST_TEST(rejected(std::string(100000, '[')));
}

BOOST_AUTO_TEST_CASE(namesSortByUnescapedUtf8Bytes) {
    // "\u00e9" (C3 A9) sorts after "z" (7A); "B" (42) before "a" (61); "a" before "ab".
    BOOST_TEST(canon(R"({"\u00e9":1,"z":2,"ab":3,"a":4,"B":5})") == "{\"B\":5,\"a\":4,\"ab\":3,\"z\":2,\"\xC3\xA9\":1}");
}

BOOST_AUTO_TEST_CASE(canonicalFormIsAFixedPoint) {
    const std::string in = R"({"z":[true,false,null,{"q":"\u0001","p":-1.5E10}],"a":"\ud83d\ude00 /"})";
    const std::string once = canon(in);
    BOOST_TEST(canon(once) == once);
}

BOOST_AUTO_TEST_CASE(appendJsonStringReplacesInvalidUtf8) {
    std::string out;
    appendJsonString(out, "a\"\\\n\x01\xFF" "b\xC3\xA9");
    BOOST_TEST(out == "\"a\\\"\\\\\\n\\u0001\xEF\xBF\xBD" "b\xC3\xA9\"");
    BOOST_TEST(canonicalJson(out).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
