#include "gateway/core/Scope.h"

#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

using namespace idem::core;

namespace {

bool isLowerHex(std::string_view s) {
    for (const char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

const std::string kTenantA = tenantHash("Bearer tok-tenant-a");
const std::string kTenantB = tenantHash("Bearer tok-tenant-b");

RecordId base() { return recordId(kTenantA, "payments", "1", "POST", "/v1/payments", "k-1"); }

}  // namespace

BOOST_AUTO_TEST_SUITE(ScopeTest)

BOOST_AUTO_TEST_CASE(sha256HexKnownVectors) {
    BOOST_TEST(sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    BOOST_TEST(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

BOOST_AUTO_TEST_CASE(tenantHashIsTaggedHexAndHidesTheCredential) {
    BOOST_TEST(kTenantA.size() == 64u);
    BOOST_TEST(isLowerHex(kTenantA));
    BOOST_TEST(kTenantA != kTenantB);
    BOOST_TEST(kTenantA == tenantHash("Bearer tok-tenant-a"));
    BOOST_TEST(kTenantA != sha256Hex("Bearer tok-tenant-a"));  // domain-tagged
    BOOST_TEST(kTenantA.find("tok-tenant-a") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(recordIdIsHex64AndDeterministic) {
    BOOST_TEST(base().size() == 64u);
    BOOST_TEST(isLowerHex(base()));
    BOOST_TEST(base() == recordId(kTenantA, "payments", "1", "POST", "/v1/payments", "k-1"));
}

BOOST_AUTO_TEST_CASE(everyScopeFieldSeparatesRecords) {
    const std::set<RecordId> ids{
        base(),
        recordId(kTenantB, "payments", "1", "POST", "/v1/payments", "k-1"),
        recordId("", "payments", "1", "POST", "/v1/payments", "k-1"),
        recordId(kTenantA, "refunds", "1", "POST", "/v1/payments", "k-1"),
        recordId(kTenantA, "payments", "2", "POST", "/v1/payments", "k-1"),
        recordId(kTenantA, "payments", "", "POST", "/v1/payments", "k-1"),
        recordId(kTenantA, "payments", "1", "PATCH", "/v1/payments", "k-1"),
        recordId(kTenantA, "payments", "1", "POST", "/v1/payments/pay_1", "k-1"),
        recordId(kTenantA, "payments", "1", "POST", "/v1/payments", "k-2"),
        recordId(kTenantA, "payments", "1", "POST", "/v1/payments", "K-1"),
    };
    BOOST_TEST(ids.size() == 10u);
}

BOOST_AUTO_TEST_CASE(fieldBoundariesCannotShift) {
    // a:b+c versus a+b:c in every adjacent pair of fields.
    BOOST_TEST(recordId("t", "ab", "c", "POST", "/p", "k") != recordId("t", "a", "bc", "POST", "/p", "k"));
    BOOST_TEST(recordId("ta", "b", "1", "POST", "/p", "k") != recordId("t", "ab", "1", "POST", "/p", "k"));
    BOOST_TEST(recordId("t", "r", "1", "POST", "/p/k", "x") != recordId("t", "r", "1", "POST", "/p", "/kx"));
    BOOST_TEST(recordId("t", "r", "1P", "OST", "/p", "k") != recordId("t", "r", "1", "POST", "/p", "k"));
    BOOST_TEST(recordId("t", "r", "", "", "", "") != recordId("", "t", "r", "", "", ""));
}

BOOST_AUTO_TEST_CASE(longKeysStillGiveFixedSizeIds) {
    const std::string k255(255, '~');
    const std::string k255b = std::string(254, '~') + "}";
    const auto a = recordId(std::string(64, 'f'), "payments", "1", "POST", "/v1/payments", k255);
    const auto b = recordId(std::string(64, 'f'), "payments", "1", "POST", "/v1/payments", k255b);
    BOOST_TEST(a.size() == 64u);
    BOOST_TEST(a != b);
}

BOOST_AUTO_TEST_CASE(derivedForwardKeyIsStableAndTenantSeparated) {
    const auto k = derivedForwardKey(kTenantA, "payments", "1", "POST", "/v1/payments", "k-b24-1");
    BOOST_TEST(k.size() == 44u);
    BOOST_TEST(k.starts_with("idg_"));
    BOOST_TEST(isLowerHex(k.substr(4)));
    // Stable: a pure function of the scope (retries, instances, takeovers and restarts all recompute it).
    BOOST_TEST(k == derivedForwardKey(kTenantA, "payments", "1", "POST", "/v1/payments", "k-b24-1"));
    // Different per tenant and per key.
    BOOST_TEST(k != derivedForwardKey(kTenantB, "payments", "1", "POST", "/v1/payments", "k-b24-1"));
    BOOST_TEST(k != derivedForwardKey(kTenantA, "payments", "1", "POST", "/v1/payments", "k-b24-2"));
    // Never the record id (another domain tag), and never contains the client key.
    const auto id = recordId(kTenantA, "payments", "1", "POST", "/v1/payments", "k-b24-1");
    BOOST_TEST(k.substr(4) != id.substr(0, 40));
    BOOST_TEST(k.find("k-b24-1") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(tokensAre32HexAndUnique) {
    std::set<Token> seen;
    for (int i = 0; i < 1000; ++i) {
        const Token t = newToken();
        BOOST_TEST_REQUIRE(t.size() == 32u);
        BOOST_TEST_REQUIRE(isLowerHex(t));
        seen.insert(t);
    }
    BOOST_TEST(seen.size() == 1000u);
}

BOOST_AUTO_TEST_CASE(fieldHasherMatchesTheHelpers) {
    FieldHasher h("tenant1");
    h.add("Bearer tok-tenant-a");
    BOOST_TEST(h.hexDigest() == kTenantA);
}

BOOST_AUTO_TEST_SUITE_END()
