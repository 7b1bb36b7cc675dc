#include "gateway/core/Problem.h"

#include "gateway/core/Json.h"

#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

using namespace idem::core;

namespace {

constexpr ProblemType kAllTypes[] = {
    ProblemType::KeyMissing,          ProblemType::KeyInvalid,         ProblemType::TenantMissing,
    ProblemType::InvalidBody,         ProblemType::VersionInvalid,     ProblemType::BodyTooLarge,
    ProblemType::FingerprintMismatch, ProblemType::InFlight,           ProblemType::StoreUnavailable,
    ProblemType::RecordUnreadable,    ProblemType::UpstreamUnreachable, ProblemType::OutcomeUnknown,
    ProblemType::ResponseNotReplayable, ProblemType::RouteNotFound,    ProblemType::RouteDisabled,
    ProblemType::RequestInvalid,      ProblemType::RequestHeadTooLarge, ProblemType::RequestTimeout,
    ProblemType::Overloaded,          ProblemType::Internal,
};

}  // namespace

BOOST_AUTO_TEST_SUITE(ProblemTest)

BOOST_AUTO_TEST_CASE(slugsAreTheDocumentedOnes) {
    BOOST_TEST(problemSlug(ProblemType::KeyMissing) == "key-missing");
    BOOST_TEST(problemSlug(ProblemType::KeyInvalid) == "key-invalid");
    BOOST_TEST(problemSlug(ProblemType::TenantMissing) == "tenant-missing");
    BOOST_TEST(problemSlug(ProblemType::InvalidBody) == "invalid-body");
    BOOST_TEST(problemSlug(ProblemType::VersionInvalid) == "version-invalid");
    BOOST_TEST(problemSlug(ProblemType::BodyTooLarge) == "body-too-large");
    BOOST_TEST(problemSlug(ProblemType::FingerprintMismatch) == "fingerprint-mismatch");
    BOOST_TEST(problemSlug(ProblemType::InFlight) == "in-flight");
    BOOST_TEST(problemSlug(ProblemType::StoreUnavailable) == "store-unavailable");
    BOOST_TEST(problemSlug(ProblemType::RecordUnreadable) == "record-unreadable");
    BOOST_TEST(problemSlug(ProblemType::UpstreamUnreachable) == "upstream-unreachable");
    BOOST_TEST(problemSlug(ProblemType::OutcomeUnknown) == "outcome-unknown");
    BOOST_TEST(problemSlug(ProblemType::ResponseNotReplayable) == "response-not-replayable");
    BOOST_TEST(problemSlug(ProblemType::RouteNotFound) == "route-not-found");
    BOOST_TEST(problemSlug(ProblemType::RouteDisabled) == "route-disabled");
    BOOST_TEST(problemSlug(ProblemType::RequestInvalid) == "request-invalid");
    BOOST_TEST(problemSlug(ProblemType::RequestHeadTooLarge) == "request-head-too-large");
    BOOST_TEST(problemSlug(ProblemType::RequestTimeout) == "request-timeout");
    BOOST_TEST(problemSlug(ProblemType::Overloaded) == "overloaded");
    BOOST_TEST(problemSlug(ProblemType::Internal) == "internal");
}

BOOST_AUTO_TEST_CASE(slugsAndTitlesAreDistinct) {
    std::set<std::string_view> slugs, titles;
    for (const auto t : kAllTypes) {
        slugs.insert(problemSlug(t));
        titles.insert(problemTitle(t));
    }
    BOOST_TEST(slugs.size() == std::size(kAllTypes));
    BOOST_TEST(titles.size() == std::size(kAllTypes));
}

BOOST_AUTO_TEST_CASE(bodyHasTheRfc9457Shape) {
    const auto r = makeProblem(422, ProblemType::FingerprintMismatch, "used with another body");
    BOOST_TEST(r.status == 422);
    BOOST_TEST(r.reason.empty());
    BOOST_REQUIRE(r.body.has_value());
    BOOST_TEST(*r.body ==
               R"({"type":"urn:idemgate:problem:fingerprint-mismatch","title":"Idempotency key reused with a different request","status":422,"detail":"used with another body"})");
    BOOST_TEST(canonicalJson(*r.body).has_value());
}

BOOST_AUTO_TEST_CASE(everyTypeGivesValidJson) {
    for (const auto t : kAllTypes) {
        const auto r = makeProblem(400, t, "d");
        BOOST_REQUIRE(r.body.has_value());
        BOOST_TEST(canonicalJson(*r.body).has_value(), problemSlug(t));
        BOOST_TEST(r.body->find(std::string("urn:idemgate:problem:").append(problemSlug(t))) != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(extensionsAreWrittenInOrder) {
    ProblemExtras e;
    e.retryable = true;
    e.idempotencyKey = "k-b08-1";
    e.operationState = "unknown";
    e.strings = {{"note", "n"}};
    e.numbers = {{"original_status", 201}, {"neg", -5}};
    const auto r = makeProblem(409, ProblemType::InFlight, "busy", e);
    BOOST_REQUIRE(r.body.has_value());
    const std::string expectedTail =
        R"("detail":"busy","retryable":true,"idempotency_key":"k-b08-1","operation_state":"unknown","note":"n","original_status":201,"neg":-5})";
    BOOST_TEST(r.body->ends_with(expectedTail));
    BOOST_TEST(canonicalJson(*r.body).has_value());

    ProblemExtras f;
    f.retryable = false;
    BOOST_TEST(makeProblem(504, ProblemType::OutcomeUnknown, "x", f).body->ends_with(R"("detail":"x","retryable":false})"));
}

BOOST_AUTO_TEST_CASE(detailIsEscaped) {
    const std::string detail = "quote \" backslash \\ newline \n tab \t ctl \x01 bad \xFF caf\xC3\xA9";
    const auto r = makeProblem(400, ProblemType::KeyInvalid, detail);
    BOOST_REQUIRE(r.body.has_value());
    BOOST_TEST(r.body->find(R"("detail":"quote \" backslash \\ newline \n tab \t ctl \u0001 bad )") != std::string::npos);
    BOOST_TEST(r.body->find("\xEF\xBF\xBD caf\xC3\xA9\"}") != std::string::npos);
    BOOST_TEST(canonicalJson(*r.body).has_value());
    ProblemExtras e;
    e.idempotencyKey = "a\"b";
    e.strings = {{"we\"ird", "v\\"}};
    const auto r2 = makeProblem(400, ProblemType::KeyInvalid, "d", e);
    BOOST_TEST(canonicalJson(*r2.body).has_value());
    BOOST_TEST(r2.body->find(R"("idempotency_key":"a\"b")") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(headersAreProblemJsonAndNoStore) {
    const auto r = makeProblem(503, ProblemType::StoreUnavailable, "down");
    BOOST_REQUIRE(findHeader(r.headers, "content-type") != nullptr);
    BOOST_TEST(*findHeader(r.headers, "Content-Type") == "application/problem+json");
    BOOST_REQUIRE(findHeader(r.headers, "Cache-Control") != nullptr);
    BOOST_TEST(*findHeader(r.headers, "Cache-Control") == "no-store");
    BOOST_TEST(r.headers.size() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
