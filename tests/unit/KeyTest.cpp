#include "gateway/core/Key.h"

#include <boost/test/unit_test.hpp>

#include <string>

using namespace idem::core;
using Status = KeyParse::Status;

namespace {

KeyParse parseOne(std::string value, KeyFormat format = KeyFormat::Default) {
    return parseKey(Headers{{"Content-Type", "application/json"}, {"Idempotency-Key", std::move(value)}},
                    "Idempotency-Key", format);
}

bool mentions(const KeyParse& p, const std::string& word) { return p.problem.find(word) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_SUITE(KeyTest)

BOOST_AUTO_TEST_CASE(absentWhenNoFieldLine) {
    const auto p = parseKey(Headers{{"Content-Type", "text/plain"}}, "Idempotency-Key", KeyFormat::Default);
    BOOST_TEST((p.status == Status::Absent));
    BOOST_TEST(p.key.empty());
}

BOOST_AUTO_TEST_CASE(plainTokenIsTheKey) {
    const auto p = parseOne("k-b01-1");
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == "k-b01-1");
    BOOST_TEST(p.problem.empty());
}

BOOST_AUTO_TEST_CASE(surroundingSpacesAndTabsAreTrimmed) {
    const auto p = parseOne(" \tk-1\t ");
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == "k-1");
}

BOOST_AUTO_TEST_CASE(sfStringIsUnquoted) {
    const auto p = parseOne("\"k-b23-1\"");
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == "k-b23-1");
}

BOOST_AUTO_TEST_CASE(sfStringEscapesAreDecoded) {
    const auto p = parseOne(R"("a\"b\\c")");
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == R"(a"b\c)");
}

BOOST_AUTO_TEST_CASE(sfStringWithOtherEscapeIsInvalid) {
    const auto p = parseOne(R"("a\nb")");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "escape"));
}

BOOST_AUTO_TEST_CASE(sfStringWithoutClosingQuoteIsInvalid) {
    BOOST_TEST((parseOne("\"abc").status == Status::Invalid));
    BOOST_TEST((parseOne(R"("abc\")").status == Status::Invalid));
}

BOOST_AUTO_TEST_CASE(sfStringWithParametersOrListIsInvalid) {
    BOOST_TEST((parseOne(R"("abc";a=1)").status == Status::Invalid));
    BOOST_TEST((parseOne(R"("abc", "def")").status == Status::Invalid));
    BOOST_TEST((parseOne(R"("abc"x)").status == Status::Invalid));
}

BOOST_AUTO_TEST_CASE(sfStringFollowedByOnlyWhitespaceIsOk) {
    const auto p = parseOne("\"abc\"  \t");
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == "abc");
}

BOOST_AUTO_TEST_CASE(sfStringWithSpaceInsideFailsTheCharset) {
    const auto p = parseOne("\"a b\"");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "0x20 at position 2"));
}

BOOST_AUTO_TEST_CASE(emptyValueIsInvalid) {
    const auto p = parseOne("");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "empty"));
}

BOOST_AUTO_TEST_CASE(spacesOnlyIsInvalid) {
    const auto p = parseOne("   \t ");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "empty"));
}

BOOST_AUTO_TEST_CASE(emptySfStringIsInvalid) {
    const auto p = parseOne("\"\"");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "empty"));
}

BOOST_AUTO_TEST_CASE(repeatedFieldLineIsInvalidEvenWithEqualValues) {
    for (const auto& second : {std::string("k-b23-2"), std::string("k-b23-3")}) {
        const auto p = parseKey(Headers{{"Idempotency-Key", "k-b23-2"}, {"idempotency-key", second}},
                                "Idempotency-Key", KeyFormat::Default);
        BOOST_TEST((p.status == Status::Invalid));
        BOOST_TEST(mentions(p, "repeated"));
        BOOST_TEST(p.key.empty());
    }
}

BOOST_AUTO_TEST_CASE(listIsInvalid) {
    const auto p = parseOne("k-b23-5, k-b23-6");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "list"));
}

BOOST_AUTO_TEST_CASE(length255IsOkAnd256IsInvalid) {
    const auto ok = parseOne(std::string(255, 'a'));
    BOOST_TEST((ok.status == Status::Ok));
    BOOST_TEST(ok.key.size() == 255u);

    const auto tooLong = parseOne(std::string(256, 'a'));
    BOOST_TEST((tooLong.status == Status::Invalid));
    BOOST_TEST(mentions(tooLong, "too long (256 > 255"));

    const auto huge = parseOne(std::string(10 * 1024, 'x'));
    BOOST_TEST((huge.status == Status::Invalid));
    BOOST_TEST(mentions(huge, "too long (10240 > 255"));
}

BOOST_AUTO_TEST_CASE(length255CountsAfterUnquoting) {
    const auto p = parseOne("\"" + std::string(255, 'q') + "\"");
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key.size() == 255u);
}

BOOST_AUTO_TEST_CASE(controlCharacterIsInvalidWithItsPosition) {
    const auto p = parseOne(std::string("ab\x01" "cd"));
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "0x01 at position 3"));
}

BOOST_AUTO_TEST_CASE(innerSpaceIsInvalid) {
    const auto p = parseOne("ab cd");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "0x20 at position 3"));
}

BOOST_AUTO_TEST_CASE(delIsInvalid) {
    const auto p = parseOne(std::string("abc\x7F"));
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "0x7F at position 4"));
}

BOOST_AUTO_TEST_CASE(nonAsciiIsInvalid) {
    const auto p = parseOne("caf\xC3\xA9");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(mentions(p, "0xC3 at position 4"));
    BOOST_TEST((parseOne("\"caf\xC3\xA9\"").status == Status::Invalid));
}

BOOST_AUTO_TEST_CASE(allPrintableAsciiIsAccepted) {
    std::string key;
    for (char c = 0x21; c <= 0x7E; ++c)
        if (c != ',') key.push_back(c);
    const auto p = parseOne(key);
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == key);
}

BOOST_AUTO_TEST_CASE(uuidFormat) {
    BOOST_TEST((parseOne("123e4567-e89b-12d3-a456-426614174000", KeyFormat::Uuid).status == Status::Ok));
    BOOST_TEST((parseOne("123E4567-E89B-12D3-A456-426614174000", KeyFormat::Uuid).status == Status::Ok));
    BOOST_TEST((parseOne("\"123e4567-e89b-12d3-a456-426614174000\"", KeyFormat::Uuid).status == Status::Ok));
    const auto bad = parseOne("k-not-a-uuid", KeyFormat::Uuid);
    BOOST_TEST((bad.status == Status::Invalid));
    BOOST_TEST(mentions(bad, "UUID"));
    BOOST_TEST((parseOne("123e4567e89b12d3a456426614174000", KeyFormat::Uuid).status == Status::Invalid));
    BOOST_TEST((parseOne("123e4567-e89b-12d3-a456-42661417400g", KeyFormat::Uuid).status == Status::Invalid));
    BOOST_TEST((parseOne("123e4567-e89b-12d3-a456-4266141740000", KeyFormat::Uuid).status == Status::Invalid));
    BOOST_TEST((parseOne("123e4567-e89b-12d3a-456-426614174000", KeyFormat::Uuid).status == Status::Invalid));
    // The default format accepts a non-UUID key.
    BOOST_TEST((parseOne("k-not-a-uuid", KeyFormat::Default).status == Status::Ok));
}

BOOST_AUTO_TEST_CASE(headerNameIsCaseInsensitive) {
    for (const char* name : {"idempotency-key", "IDEMPOTENCY-KEY", "Idempotency-Key", "iDeMpOtEnCy-KeY"}) {
        const auto p = parseKey(Headers{{name, "k-b23-1"}}, "Idempotency-Key", KeyFormat::Default);
        BOOST_TEST((p.status == Status::Ok), name);
        BOOST_TEST(p.key == "k-b23-1");
    }
}

BOOST_AUTO_TEST_CASE(aliasHeaderNameIsCaseInsensitive) {
    const Headers h{{"x-IDEMPOTENCY-key", "k-b23-7"}, {"Idempotency-Key", "other"}};
    const auto p = parseKey(h, "X-Idempotency-Key", KeyFormat::Default);
    BOOST_TEST((p.status == Status::Ok));
    BOOST_TEST(p.key == "k-b23-7");
}

BOOST_AUTO_TEST_CASE(keysAreCaseSensitive) {
    BOOST_TEST(parseOne("Key-A").key == "Key-A");
    BOOST_TEST(parseOne("Key-A").key != parseOne("key-a").key);
}

BOOST_AUTO_TEST_CASE(problemNeverQuotesTheKey) {
    const auto p = parseOne("secret-key-with\x01" "control");
    BOOST_TEST((p.status == Status::Invalid));
    BOOST_TEST(!mentions(p, "secret"));
}

BOOST_AUTO_TEST_CASE(redactKeyKeepsEightCharacters) {
    BOOST_TEST(redactKey("abcdefghijkl") == "abcdefgh...");
    BOOST_TEST(redactKey("abcdefgh") == "abcdefgh");
    BOOST_TEST(redactKey("abc") == "abc");
    BOOST_TEST(redactKey("") == "");
}

BOOST_AUTO_TEST_SUITE_END()
