// The idempotency state machine as tables (STYLE.md: "Test it as a table"), plus the header rules it
// relies on (ResponseHeaders.h) and the header helpers of Http.h.
#include "gateway/core/IdempotencyMachine.h"

#include "gateway/core/Json.h"
#include "gateway/core/ResponseHeaders.h"
#include "gateway/core/Scope.h"
#include "gateway/core/Versions.h"

#include <boost/test/unit_test.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

using namespace idem::core;
using namespace std::chrono_literals;
using idem::storage::Abandoned;
using idem::storage::BeginOutcome;
using idem::storage::Done;
using idem::storage::InProgress;
using idem::storage::Mismatch;
using idem::storage::Owned;
using idem::storage::Settlement;
using idem::storage::StoreError;

namespace {

const std::string kKey = "k-machine-0001";  // 14 characters: redacted as "k-machin..."
const Token kToken = "0123456789abcdef0123456789abcdef";
const Token kStale = "fedcba9876543210fedcba9876543210";

RoutePolicy basePolicy() {
    RoutePolicy p;
    p.routeId = "payments";
    return p;
}

BeginRecord begun() {
    BeginRecord b;
    b.id = std::string(64, 'a');
    b.fingerprint = std::string(64, 'b');
    b.key = kKey;
    b.forwardedKey = "idg_x";
    return b;
}

HttpRequest paymentRequest() {
    HttpRequest r;
    r.method = "POST";
    r.path = "/v1/payments";
    r.headers = {{"Content-Type", "application/json"}, {"Idempotency-Key", kKey}, {"Authorization", "Bearer tok-a"}};
    r.body = R"({"amount":1000,"currency":"usd"})";
    return r;
}

const std::string kNoLine = "<absent or repeated>";

/// Value of the only line of `name`, or kNoLine if it is absent or repeated.
std::string only(const Headers& h, std::string_view name) {
    if (countHeader(h, name) != 1) return kNoLine;
    return *findHeader(h, name);
}

using ExpectedHeaders = std::vector<std::pair<std::string, std::string>>;

void checkHeaders(const Headers& actual, const ExpectedHeaders& expected, const std::string& row) {
    for (const auto& [name, value] : expected) {
        BOOST_TEST(only(actual, name) == value, row << ": header " << name);
    }
}

/// The `type` URN of a problem body, checked through canonical JSON.
bool hasProblemType(const HttpResponse& r, std::string_view slug) {
    if (!r.body || !canonicalJson(*r.body)) return false;
    return r.body->find("\"type\":\"urn:idemgate:problem:" + std::string(slug) + "\"") != std::string::npos;
}

bool bodyHas(const std::optional<std::string>& body, std::string_view text) {
    return body && body->find(text) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(MachineTest)

// ---- onArrival ----------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(arrivalTable) {
    enum class Kind { PassThrough, Reject, Begin };
    struct Row {
        const char* name;
        std::string method;
        IdempotencyMode mode;
        std::vector<Header> keyLines;  // key header lines added to the request
        std::string tenantHeader;      // policy.tenantHeader
        std::vector<std::string> tenantLines;
        Kind expected;
        int status;
        const char* slug;
        std::function<void(RoutePolicy&, HttpRequest&)> tweak;
    };
    const std::vector<Header> ok{{"Idempotency-Key", kKey}};
    const std::vector<Row> rows{
        {"GET passes through even with a key", "GET", IdempotencyMode::Required, ok, "", {}, Kind::PassThrough, 0, "", {}},
        {"DELETE without key passes", "DELETE", IdempotencyMode::Required, {}, "", {}, Kind::PassThrough, 0, "", {}},
        {"route off", "POST", IdempotencyMode::Off, ok, "", {}, Kind::PassThrough, 0, "", {}},
        {"route off ignores a bad key", "POST", IdempotencyMode::Off, {{"Idempotency-Key", ""}}, "", {}, Kind::PassThrough, 0, "", {}},
        {"required, no key", "POST", IdempotencyMode::Required, {}, "", {}, Kind::Reject, 400, "key-missing", {}},
        {"optional, no key", "POST", IdempotencyMode::Optional, {}, "", {}, Kind::PassThrough, 0, "", {}},
        {"optional, invalid key", "POST", IdempotencyMode::Optional, {{"Idempotency-Key", "a b"}}, "", {}, Kind::Reject, 400, "key-invalid", {}},
        {"required, key", "POST", IdempotencyMode::Required, ok, "", {}, Kind::Begin, 0, "", {}},
        {"optional, key", "POST", IdempotencyMode::Optional, ok, "", {}, Kind::Begin, 0, "", {}},
        {"PATCH takes part", "PATCH", IdempotencyMode::Required, ok, "", {}, Kind::Begin, 0, "", {}},
        {"lower-case header name", "POST", IdempotencyMode::Required, {{"idempotency-key", kKey}}, "", {}, Kind::Begin, 0, "", {}},
        {"quoted key", "POST", IdempotencyMode::Required, {{"Idempotency-Key", "\"" + kKey + "\""}}, "", {}, Kind::Begin, 0, "", {}},
        {"repeated key", "POST", IdempotencyMode::Required, {{"Idempotency-Key", kKey}, {"IDEMPOTENCY-KEY", kKey}}, "", {}, Kind::Reject, 400, "key-invalid", {}},
        {"list key", "POST", IdempotencyMode::Required, {{"Idempotency-Key", "a, b"}}, "", {}, Kind::Reject, 400, "key-invalid", {}},
        {"empty key", "POST", IdempotencyMode::Required, {{"Idempotency-Key", "  "}}, "", {}, Kind::Reject, 400, "key-invalid", {}},
        {"255 characters", "POST", IdempotencyMode::Required, {{"Idempotency-Key", std::string(255, 'k')}}, "", {}, Kind::Begin, 0, "", {}},
        {"256 characters", "POST", IdempotencyMode::Required, {{"Idempotency-Key", std::string(256, 'k')}}, "", {}, Kind::Reject, 400, "key-invalid", {}},
        {"tenant present", "POST", IdempotencyMode::Required, ok, "Authorization", {"Bearer tok-a"}, Kind::Begin, 0, "", {}},
        {"tenant missing", "POST", IdempotencyMode::Required, ok, "Authorization", {}, Kind::Reject, 400, "tenant-missing", {}},
        {"tenant blank", "POST", IdempotencyMode::Required, ok, "Authorization", {" "}, Kind::Reject, 400, "tenant-missing", {}},
        {"key checked before tenant", "POST", IdempotencyMode::Required, {}, "Authorization", {}, Kind::Reject, 400, "key-missing", {}},
        {"tenant not needed on pass-through", "GET", IdempotencyMode::Required, ok, "Authorization", {}, Kind::PassThrough, 0, "", {}},
        {"invalid JSON body, json mode", "POST", IdempotencyMode::Required, ok, "", {}, Kind::Reject, 400, "invalid-body",
         [](RoutePolicy& p, HttpRequest& r) { p.body = BodyMode::Json; r.body = R"({"amount":)"; }},
        {"invalid JSON body, raw mode", "POST", IdempotencyMode::Required, ok, "", {}, Kind::Begin, 0, "",
         [](RoutePolicy&, HttpRequest& r) { r.body = R"({"amount":)"; }},
        {"uuid format, non-uuid key", "POST", IdempotencyMode::Required, ok, "", {}, Kind::Reject, 400, "key-invalid",
         [](RoutePolicy& p, HttpRequest&) { p.keyFormat = KeyFormat::Uuid; }},
        {"alias header", "POST", IdempotencyMode::Required, {{"x-IDEMPOTENCY-key", kKey}}, "", {}, Kind::Begin, 0, "",
         [](RoutePolicy& p, HttpRequest&) { p.keyHeader = "X-Idempotency-Key"; }},
        {"alias header, default name ignored", "POST", IdempotencyMode::Required, ok, "", {}, Kind::Reject, 400, "key-missing",
         [](RoutePolicy& p, HttpRequest&) { p.keyHeader = "X-Idempotency-Key"; }},
        {"custom methods: POST not listed", "POST", IdempotencyMode::Required, ok, "", {}, Kind::PassThrough, 0, "",
         [](RoutePolicy& p, HttpRequest&) { p.methods = {"PUT"}; }},
        {"custom methods: PUT listed", "PUT", IdempotencyMode::Required, ok, "", {}, Kind::Begin, 0, "",
         [](RoutePolicy& p, HttpRequest&) { p.methods = {"PUT"}; }},
    };

    for (const auto& row : rows) {
        RoutePolicy policy = basePolicy();
        policy.mode = row.mode;
        policy.tenantHeader = row.tenantHeader;
        HttpRequest req;
        req.method = row.method;
        req.path = "/v1/payments";
        req.headers = {{"Content-Type", "application/json"}};
        for (const auto& h : row.keyLines) req.headers.push_back(h);
        for (const auto& t : row.tenantLines) req.headers.emplace_back("Authorization", t);
        req.body = R"({"amount":1000})";
        if (row.tweak) row.tweak(policy, req);

        const ArrivalDecision d = onArrival(req, policy, "1", req.path);
        BOOST_TEST_CONTEXT(row.name) {
            BOOST_TEST(d.index() == static_cast<std::size_t>(row.expected));
            if (const auto* reject = std::get_if<Reject>(&d)) {
                BOOST_TEST(reject->response.status == row.status);
                BOOST_TEST(hasProblemType(reject->response, row.slug));
                BOOST_TEST(only(reject->response.headers, "Content-Type") == "application/problem+json");
            }
            if (const auto* b = std::get_if<BeginRecord>(&d)) {
                BOOST_TEST(b->id.size() == 64u);
                BOOST_TEST(b->fingerprint.size() == 64u);
                BOOST_TEST(!b->key.empty());
                BOOST_TEST(b->forwardedKey.starts_with("idg_"));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(arrivalKeyProblemSaysWhy) {
    auto req = paymentRequest();
    setHeader(req.headers, "Idempotency-Key", std::string(300, 'k'));
    const auto d = onArrival(req, basePolicy(), "", req.path);
    BOOST_REQUIRE(std::holds_alternative<Reject>(d));
    BOOST_TEST(bodyHas(std::get<Reject>(d).response.body, "too long (300 > 255"));
}

BOOST_AUTO_TEST_CASE(arrivalScopeSeparatesTenantsAndBindsTheRequest) {
    RoutePolicy p = basePolicy();
    p.tenantHeader = "Authorization";
    const auto beginFor = [&](const HttpRequest& r, std::string_view version = "1") {
        auto d = onArrival(r, p, version, r.path);
        BOOST_REQUIRE(std::holds_alternative<BeginRecord>(d));
        return std::get<BeginRecord>(d);
    };
    const auto a = beginFor(paymentRequest());
    BOOST_TEST(a.key == kKey);

    // Same tenant, header name in another case, quoted key: the same record and fingerprint.
    auto same = paymentRequest();
    same.headers = {{"content-type", "application/json"}, {"IDEMPOTENCY-KEY", "\"" + kKey + "\""},
                    {"authorization", "Bearer tok-a"}};
    const auto a2 = beginFor(same);
    BOOST_TEST(a2.id == a.id);
    BOOST_TEST(a2.fingerprint == a.fingerprint);
    BOOST_TEST(a2.forwardedKey == a.forwardedKey);

    // Another tenant: another record and another forwarded key, same fingerprint.
    auto other = paymentRequest();
    setHeader(other.headers, "Authorization", "Bearer tok-b");
    const auto b = beginFor(other);
    BOOST_TEST(b.id != a.id);
    BOOST_TEST(b.forwardedKey != a.forwardedKey);
    BOOST_TEST(b.fingerprint == a.fingerprint);

    // Path and method are part of the scope (B14); the version only with a separate scope (below).
    auto path = paymentRequest();
    path.path = "/v1/payments/pay_1";
    BOOST_TEST(beginFor(path).id != a.id);
    auto patch = paymentRequest();
    patch.method = "PATCH";
    BOOST_TEST(beginFor(patch).id != a.id);

    // All tenant header lines join the credential.
    auto twoLines = paymentRequest();
    twoLines.headers.emplace_back("Authorization", "extra");
    const auto t2 = beginFor(twoLines);
    BOOST_TEST(t2.id != a.id);
    BOOST_TEST(t2.id == recordId(tenantHash("Bearer tok-a\nextra"), "payments", "", "POST", "/v1/payments", kKey));

    // Different body: same record, different fingerprint (-> 422 from the store).
    auto body = paymentRequest();
    body.body = R"({"amount":1001,"currency":"usd"})";
    const auto c = beginFor(body);
    BOOST_TEST(c.id == a.id);
    BOOST_TEST(c.fingerprint != a.fingerprint);
}

VersionSpec versionNamed(std::string name) {
    VersionSpec v;
    v.name = std::move(name);
    return v;
}

/// A route /{version}/payments with versions 1 and 2, read from the path and the API-Version header.
RoutePolicy versionedPolicy(bool shared) {
    RoutePolicy p = basePolicy();
    p.versions.routePattern = "/{version}/payments";
    p.versions.versions = {versionNamed("1"), versionNamed("2")};
    p.versions.sharedScope = shared;
    return p;
}

/// Resolves the version of `r` under `p` and runs onArrival with it, as the gateway does.
BeginRecord arriveVersioned(const HttpRequest& r, const RoutePolicy& p, const RouteParams& params) {
    const auto v = resolveVersion(p.versions, r, params);
    BOOST_REQUIRE(v.has_value());
    BOOST_REQUIRE(v->spec != nullptr);
    auto d = onArrival(r, p, v->spec->name, v->scopePath);
    BOOST_REQUIRE(std::holds_alternative<BeginRecord>(d));
    return std::get<BeginRecord>(d);
}

BOOST_AUTO_TEST_CASE(arrivalVersionsShareOneScopeByDefault) {
    const RoutePolicy p = versionedPolicy(true);
    auto v1 = paymentRequest();
    v1.path = "/v1/payments";
    auto v2 = paymentRequest();
    v2.path = "/v2/payments";
    const BeginRecord a = arriveVersioned(v1, p, {{"version", "v1"}});
    const BeginRecord b = arriveVersioned(v2, p, {{"version", "v2"}});
    // One scope (the version left out, the path-version segment a placeholder), two fingerprints.
    BOOST_TEST(a.id == b.id);
    BOOST_TEST(a.id == recordId("", "payments", "", "POST", "/{version}/payments", kKey));
    BOOST_TEST(a.forwardedKey == b.forwardedKey);
    BOOST_TEST(a.fingerprint != b.fingerprint);
    // The store sees the second fingerprint differ from the recorded one: 422 (issue 5).
    const auto d = onBegin(Mismatch{}, b, kToken, p, 0ms);
    BOOST_REQUIRE(std::holds_alternative<Reject>(d));
    BOOST_TEST(std::get<Reject>(d).response.status == 422);
    BOOST_TEST(hasProblemType(std::get<Reject>(d).response, "fingerprint-mismatch"));
    // The same version again: the same record and fingerprint (a replay).
    const BeginRecord again = arriveVersioned(v1, p, {{"version", "v1"}});
    BOOST_TEST(again.id == a.id);
    BOOST_TEST(again.fingerprint == a.fingerprint);
    // "/1/payments" names version 1 too: the same scope; the real path is another, so is the fingerprint.
    auto bare = paymentRequest();
    bare.path = "/1/payments";
    const BeginRecord one = arriveVersioned(bare, p, {{"version", "1"}});
    BOOST_TEST(one.id == a.id);
    BOOST_TEST(one.fingerprint != a.fingerprint);

    // A version sent in a header shares the scope as well; the version still splits the fingerprint.
    RoutePolicy h = basePolicy();
    h.versions.versions = {versionNamed("1"), versionNamed("2")};
    auto h1 = paymentRequest();
    h1.headers.emplace_back("API-Version", "1");
    auto h2 = paymentRequest();
    h2.headers.emplace_back("API-Version", "2");
    const BeginRecord c = arriveVersioned(h1, h, {});
    const BeginRecord e = arriveVersioned(h2, h, {});
    BOOST_TEST(c.id == e.id);
    BOOST_TEST(c.id == recordId("", "payments", "", "POST", "/v1/payments", kKey));
    BOOST_TEST(c.fingerprint != e.fingerprint);
}

BOOST_AUTO_TEST_CASE(arrivalSeparateScopeGivesEachVersionItsRecords) {
    const RoutePolicy p = versionedPolicy(false);
    auto v1 = paymentRequest();
    v1.path = "/v1/payments";
    auto v2 = paymentRequest();
    v2.path = "/v2/payments";
    const BeginRecord a = arriveVersioned(v1, p, {{"version", "v1"}});
    const BeginRecord b = arriveVersioned(v2, p, {{"version", "v2"}});
    BOOST_TEST(a.id != b.id);
    BOOST_TEST(a.forwardedKey != b.forwardedKey);
    BOOST_TEST(a.id == recordId("", "payments", "1", "POST", "/v1/payments", kKey));
    BOOST_TEST(b.id == recordId("", "payments", "2", "POST", "/v2/payments", kKey));
    // Header versions on one path: the version alone separates them.
    RoutePolicy h = basePolicy();
    h.versions.versions = {versionNamed("1"), versionNamed("2")};
    h.versions.sharedScope = false;
    auto h1 = paymentRequest();
    h1.headers.emplace_back("API-Version", "1");
    auto h2 = paymentRequest();
    h2.headers.emplace_back("API-Version", "2");
    BOOST_TEST(arriveVersioned(h1, h, {}).id != arriveVersioned(h2, h, {}).id);
}

BOOST_AUTO_TEST_CASE(arrivalWithoutTenantHeaderUsesTheEmptyTenant) {
    const auto d = onArrival(paymentRequest(), basePolicy(), "", "/v1/payments");
    BOOST_REQUIRE(std::holds_alternative<BeginRecord>(d));
    BOOST_TEST(std::get<BeginRecord>(d).id == recordId("", "payments", "", "POST", "/v1/payments", kKey));
}

BOOST_AUTO_TEST_CASE(arrivalForwardKeyModes) {
    RoutePolicy p = basePolicy();
    const auto forwarded = [&](ForwardKey mode) {
        p.forwardKey = mode;
        auto d = onArrival(paymentRequest(), p, "", "/v1/payments");
        BOOST_REQUIRE(std::holds_alternative<BeginRecord>(d));
        return std::get<BeginRecord>(d).forwardedKey;
    };
    BOOST_TEST(forwarded(ForwardKey::Derived) == derivedForwardKey("", "payments", "", "POST", "/v1/payments", kKey));
    BOOST_TEST(forwarded(ForwardKey::Derived) == forwarded(ForwardKey::Derived));
    BOOST_TEST(forwarded(ForwardKey::Client) == kKey);
    BOOST_TEST(forwarded(ForwardKey::None).empty());
}

BOOST_AUTO_TEST_CASE(arrivalJsonModeAcceptsReorderedBodies) {
    RoutePolicy p = basePolicy();
    p.body = BodyMode::Json;
    auto a = paymentRequest();
    auto b = paymentRequest();
    b.body = "{ \"currency\": \"usd\", \"amount\": 1000 }";
    const auto da = onArrival(a, p, "", a.path);
    const auto db = onArrival(b, p, "", b.path);
    BOOST_REQUIRE(std::holds_alternative<BeginRecord>(da));
    BOOST_REQUIRE(std::holds_alternative<BeginRecord>(db));
    BOOST_TEST(std::get<BeginRecord>(da).fingerprint == std::get<BeginRecord>(db).fingerprint);
}

// ---- onBegin ------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(beginTable) {
    enum class Kind { Forward, Replay, Reject, Wait, TakeOver, SettleAbandoned };
    StoredResponse created{201,
                           {{"Content-Type", "application/json; charset=utf-8"},
                            {"Location", "/v1/payments/pay_1"},
                            {"Cache-Control", "private"}},
                           R"({"id":"pay_1"})",
                           Settlement::Definite};
    StoredResponse failed{500, {{"Content-Type", "text/plain"}}, "boom", Settlement::Unknown};
    StoredResponse tombstone{201, {}, std::nullopt, Settlement::Unreplayable};
    struct Row {
        const char* name;
        BeginOutcome outcome;
        OnInFlight onInFlight;
        OnUnknown onUnknown;
        Millis waited;
        Kind expected;
        int status;  // response status (record status for SettleAbandoned); 0 = none
        ExpectedHeaders headers;
        std::optional<Millis> delay;
    };
    const ExpectedHeaders replayed{{"Idempotent-Replayed", "true"}, {"Cache-Control", "no-store"}, {"Idempotency-Key", kKey}};
    const std::vector<Row> rows{
        {"owned", Owned{kToken, 1}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Forward, 0, {}, {}},
        {"in flight, 20 s left", InProgress{20000ms}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Reject, 409, {{"Retry-After", "20"}, {"Cache-Control", "no-store"}}, {}},
        {"in flight, 1.5 s left rounds up", InProgress{1500ms}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Reject, 409, {{"Retry-After", "2"}}, {}},
        {"in flight, 1 ms left is 1 s", InProgress{1ms}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Reject, 409, {{"Retry-After", "1"}}, {}},
        {"in flight, 0 ms left is still 1 s", InProgress{0ms}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Reject, 409, {{"Retry-After", "1"}}, {}},
        {"wait, first step", InProgress{30000ms}, OnInFlight::Wait, OnUnknown::Hold, 0ms, Kind::Wait, 0, {}, 25ms},
        {"wait, half of waited", InProgress{30000ms}, OnInFlight::Wait, OnUnknown::Hold, 200ms, Kind::Wait, 0, {}, 100ms},
        {"wait, capped step", InProgress{30000ms}, OnInFlight::Wait, OnUnknown::Hold, 2000ms, Kind::Wait, 0, {}, 250ms},
        {"wait, never past wait_max", InProgress{30000ms}, OnInFlight::Wait, OnUnknown::Hold, 9990ms, Kind::Wait, 0, {}, 10ms},
        {"wait, bound reached", InProgress{30000ms}, OnInFlight::Wait, OnUnknown::Hold, 10000ms, Kind::Reject, 409, {{"Retry-After", "30"}}, {}},
        {"done 201", Done{created}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Replay, 201, replayed, {}},
        {"done 201 while waiting", Done{created}, OnInFlight::Wait, OnUnknown::Hold, 500ms, Kind::Replay, 201, replayed, {}},
        {"done unknown 500", Done{failed}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Replay, 500, replayed, {}},
        {"done tombstone", Done{tombstone}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Reject, 410, {{"Idempotent-Replayed", "true"}, {"Content-Type", "application/problem+json"}}, {}},
        {"mismatch", Mismatch{}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::Reject, 422, {{"Content-Type", "application/problem+json"}}, {}},
        {"mismatch while waiting", Mismatch{}, OnInFlight::Wait, OnUnknown::Hold, 100ms, Kind::Reject, 422, {}, {}},
        {"abandoned, release", Abandoned{kStale}, OnInFlight::Reject, OnUnknown::Release, 0ms, Kind::TakeOver, 0, {}, {}},
        {"abandoned, hold", Abandoned{kStale}, OnInFlight::Reject, OnUnknown::Hold, 0ms, Kind::SettleAbandoned, 504, {{"Content-Type", "application/problem+json"}}, {}},
    };

    for (const auto& row : rows) {
        RoutePolicy policy = basePolicy();
        policy.onInFlight = row.onInFlight;
        policy.onUnknown = row.onUnknown;
        policy.waitMax = 10s;
        const BeginDecision d = onBegin(row.outcome, begun(), kToken, policy, row.waited);
        BOOST_TEST_CONTEXT(row.name) {
            BOOST_TEST(d.index() == static_cast<std::size_t>(row.expected));
            const HttpResponse* response = nullptr;
            if (const auto* r = std::get_if<Replay>(&d)) response = &r->response;
            if (const auto* r = std::get_if<Reject>(&d)) response = &r->response;
            if (response != nullptr) {
                BOOST_TEST(response->status == row.status);
                checkHeaders(response->headers, row.headers, row.name);
            }
            if (const auto* s = std::get_if<SettleAbandoned>(&d)) {
                BOOST_TEST(s->record.status == row.status);
                BOOST_TEST(s->staleToken == kStale);
                checkHeaders(s->record.headers, row.headers, row.name);
            }
            if (const auto* f = std::get_if<Forward>(&d)) BOOST_TEST(f->token == kToken);
            if (const auto* t = std::get_if<TakeOver>(&d)) BOOST_TEST(t->staleToken == kStale);
            if (const auto* w = std::get_if<Wait>(&d)) {
                BOOST_REQUIRE(row.delay.has_value());
                BOOST_TEST(w->delay.count() == row.delay->count());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(replayKeepsStatusBodyAndHeadersInOrder) {
    StoredResponse stored{201,
                          {{"Content-Type", "application/json; charset=utf-8"},
                           {"Link", "</a>; rel=\"a\""},
                           {"Cache-Control", "private"},
                           {"Link", "</b>; rel=\"b\""},
                           {"ETag", "\"v1\""}},
                          R"({"id":"pay_18"})",
                          Settlement::Definite};
    const auto d = onBegin(Done{stored}, begun(), kToken, basePolicy(), 0ms);
    BOOST_REQUIRE(std::holds_alternative<Replay>(d));
    const HttpResponse& r = std::get<Replay>(d).response;
    BOOST_TEST(r.status == 201);
    BOOST_TEST((r.body == stored.body));
    const Headers expected{{"Content-Type", "application/json; charset=utf-8"},
                           {"Link", "</a>; rel=\"a\""},
                           {"Cache-Control", "no-store"},
                           {"Link", "</b>; rel=\"b\""},
                           {"ETag", "\"v1\""},
                           {"Idempotent-Replayed", "true"},
                           {"Idempotency-Key", kKey}};
    BOOST_TEST((r.headers == expected));
}

BOOST_AUTO_TEST_CASE(replayOfAbsentBodyStaysAbsent) {
    StoredResponse noContent{204, {}, std::nullopt, Settlement::Definite};
    const auto d = onBegin(Done{noContent}, begun(), kToken, basePolicy(), 0ms);
    BOOST_REQUIRE(std::holds_alternative<Replay>(d));
    BOOST_TEST(std::get<Replay>(d).response.status == 204);
    BOOST_TEST(!std::get<Replay>(d).response.body.has_value());
    StoredResponse empty{200, {}, std::string(), Settlement::Definite};
    const auto e = onBegin(Done{empty}, begun(), kToken, basePolicy(), 0ms);
    BOOST_TEST((std::get<Replay>(e).response.body == std::optional<std::string>("")));
}

BOOST_AUTO_TEST_CASE(replayEchoesTheKeyUnderTheRouteHeader) {
    RoutePolicy p = basePolicy();
    p.keyHeader = "X-Idempotency-Key";
    StoredResponse stored{200, {{"X-Idempotency-Key", "from-upstream"}}, "ok", Settlement::Definite};
    const auto d = onBegin(Done{stored}, begun(), kToken, p, 0ms);
    BOOST_TEST(only(std::get<Replay>(d).response.headers, "x-idempotency-key") == kKey);
}

BOOST_AUTO_TEST_CASE(inFlightProblemBody) {
    const auto d = onBegin(InProgress{12345ms}, begun(), kToken, basePolicy(), 0ms);
    const HttpResponse& r = std::get<Reject>(d).response;
    BOOST_TEST(hasProblemType(r, "in-flight"));
    BOOST_TEST(bodyHas(r.body, R"("retryable":true)"));
    BOOST_TEST(bodyHas(r.body, R"("idempotency_key":"k-machin...")"));
    BOOST_TEST(!bodyHas(r.body, kKey));
    BOOST_TEST(only(r.headers, "Retry-After") == "13");
}

BOOST_AUTO_TEST_CASE(mismatchProblemIsDistinctFromInFlight) {
    const auto d = onBegin(Mismatch{}, begun(), kToken, basePolicy(), 0ms);
    const HttpResponse& r = std::get<Reject>(d).response;
    BOOST_TEST(hasProblemType(r, "fingerprint-mismatch"));
    BOOST_TEST(!findHeader(r.headers, "Retry-After"));
    BOOST_TEST(bodyHas(r.body, R"("idempotency_key":"k-machin...")"));
}

BOOST_AUTO_TEST_CASE(tombstoneProblemBody) {
    StoredResponse tombstone{201, {}, std::nullopt, Settlement::Unreplayable};
    const auto d = onBegin(Done{tombstone}, begun(), kToken, basePolicy(), 0ms);
    const HttpResponse& r = std::get<Reject>(d).response;
    BOOST_TEST(hasProblemType(r, "response-not-replayable"));
    BOOST_TEST(bodyHas(r.body, R"("original_status":201)"));
    BOOST_TEST(bodyHas(r.body, R"("operation_state":"completed")"));
}

BOOST_AUTO_TEST_CASE(abandonedHoldRecordIsAnOutcomeUnknownProblem) {
    const auto d = onBegin(Abandoned{kStale}, begun(), kToken, basePolicy(), 0ms);
    const auto& s = std::get<SettleAbandoned>(d);
    BOOST_TEST((s.record.settlement == Settlement::Unknown));
    BOOST_TEST(s.record.status == 504);
    HttpResponse asResponse{s.record.status, "", s.record.headers, s.record.body};
    BOOST_TEST(hasProblemType(asResponse, "outcome-unknown"));
    BOOST_TEST(bodyHas(s.record.body, R"("operation_state":"unknown")"));
    BOOST_TEST(bodyHas(s.record.body, R"("retryable":false)"));
    BOOST_TEST(bodyHas(s.record.body, "stopped before recording"));
    // What the caller then sends: the replay of that record.
    const auto replay = replayResponse(s.record, kKey, "Idempotency-Key");
    BOOST_TEST(only(replay.headers, "Idempotent-Replayed") == "true");
}

// ---- onStoreError -------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(storeErrorTable) {
    using K = StoreError::Kind;
    struct Row {
        const char* name;
        K kind;
        StoreFailure mode;
        bool forwardUnprotected;
        int status;
        const char* slug;
        ExpectedHeaders headers;
    };
    const std::vector<Row> rows{
        {"corrupt, closed", K::Corrupt, StoreFailure::Closed, false, 500, "record-unreadable", {}},
        {"corrupt, open: never a miss", K::Corrupt, StoreFailure::Open, false, 500, "record-unreadable", {}},
        {"unavailable, closed", K::Unavailable, StoreFailure::Closed, false, 503, "store-unavailable", {{"Retry-After", "1"}}},
        {"timeout, closed", K::Timeout, StoreFailure::Closed, false, 503, "store-unavailable", {{"Retry-After", "1"}}},
        {"full, closed", K::Full, StoreFailure::Closed, false, 503, "store-unavailable", {{"Retry-After", "1"}}},
        {"unavailable, open", K::Unavailable, StoreFailure::Open, true, 0, "", {}},
        {"timeout, open", K::Timeout, StoreFailure::Open, true, 0, "", {}},
        {"full, open", K::Full, StoreFailure::Open, true, 0, "", {}},
        {"too large, closed", K::TooLarge, StoreFailure::Closed, false, 400, "key-invalid", {}},
        {"too large, open", K::TooLarge, StoreFailure::Open, false, 400, "key-invalid", {}},
    };
    for (const auto& row : rows) {
        RoutePolicy policy = basePolicy();
        policy.storeFailure = row.mode;
        const auto d = onStoreError(StoreError{row.kind, "redis at 10.0.0.7:6379: connection refused"}, begun(), policy);
        BOOST_TEST_CONTEXT(row.name) {
            BOOST_TEST(std::holds_alternative<ForwardUnprotected>(d) == row.forwardUnprotected);
            if (const auto* r = std::get_if<Reject>(&d)) {
                BOOST_TEST(r->response.status == row.status);
                BOOST_TEST(hasProblemType(r->response, row.slug));
                checkHeaders(r->response.headers, row.headers, row.name);
                BOOST_TEST(!bodyHas(r->response.body, "10.0.0.7"));  // store internals stay in the log
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(storeUnavailableIsRetryable) {
    const auto d = onStoreError(StoreError{StoreError::Kind::Unavailable, "down"}, begun(), basePolicy());
    BOOST_TEST(bodyHas(std::get<Reject>(d).response.body, R"("retryable":true)"));
}

// ---- onUpstream ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(upstreamTable) {
    using UK = UpstreamResult::Kind;
    enum class Kind { Complete, Release };
    struct Row {
        const char* name;
        UK kind;
        int upstreamStatus;
        OnUnknown onUnknown;
        std::size_t bodySize;
        std::optional<long> limitDelta;  // max_stored_response = size of the full record + delta
        Kind expected;
        std::optional<Settlement> settlement;
        int recordStatus;
        int responseStatus;
    };
    const auto H = OnUnknown::Hold;
    const auto R = OnUnknown::Release;
    const std::vector<Row> rows{
        {"201 definite", UK::Response, 201, H, 20, {}, Kind::Complete, Settlement::Definite, 201, 201},
        {"200 definite under release", UK::Response, 200, R, 20, {}, Kind::Complete, Settlement::Definite, 200, 200},
        {"204 definite", UK::Response, 204, H, 0, {}, Kind::Complete, Settlement::Definite, 204, 204},
        {"302 definite", UK::Response, 302, H, 0, {}, Kind::Complete, Settlement::Definite, 302, 302},
        {"402 definite", UK::Response, 402, H, 20, {}, Kind::Complete, Settlement::Definite, 402, 402},
        {"404 definite", UK::Response, 404, R, 20, {}, Kind::Complete, Settlement::Definite, 404, 404},
        {"408 released", UK::Response, 408, H, 20, {}, Kind::Release, {}, 0, 408},
        {"425 released", UK::Response, 425, H, 20, {}, Kind::Release, {}, 0, 425},
        {"429 released", UK::Response, 429, H, 20, {}, Kind::Release, {}, 0, 429},
        {"503 released under hold", UK::Response, 503, H, 20, {}, Kind::Release, {}, 0, 503},
        {"503 released under release", UK::Response, 503, R, 20, {}, Kind::Release, {}, 0, 503},
        {"500 unknown, hold", UK::Response, 500, H, 20, {}, Kind::Complete, Settlement::Unknown, 500, 500},
        {"502 unknown, hold", UK::Response, 502, H, 20, {}, Kind::Complete, Settlement::Unknown, 502, 502},
        {"504 unknown, hold", UK::Response, 504, H, 20, {}, Kind::Complete, Settlement::Unknown, 504, 504},
        {"599 unknown, hold", UK::Response, 599, H, 20, {}, Kind::Complete, Settlement::Unknown, 599, 599},
        {"500 released, release", UK::Response, 500, R, 20, {}, Kind::Release, {}, 0, 500},
        {"504 released, release", UK::Response, 504, R, 20, {}, Kind::Release, {}, 0, 504},
        {"201 exactly at the limit", UK::Response, 201, H, 1000, 0, Kind::Complete, Settlement::Definite, 201, 201},
        {"201 one byte over: tombstone", UK::Response, 201, H, 1000, -1, Kind::Complete, Settlement::Unreplayable, 201, 201},
        {"201 200 KiB over 64 KiB: tombstone", UK::Response, 201, H, 200 * 1024, -(200 * 1024 - 64 * 1024), Kind::Complete, Settlement::Unreplayable, 201, 201},
        {"500 oversize, hold: tombstone", UK::Response, 500, H, 5000, -1, Kind::Complete, Settlement::Unreplayable, 500, 500},
        {"429 oversize still released", UK::Response, 429, H, 5000, -1, Kind::Release, {}, 0, 429},
        {"not sent, hold", UK::NotSent, 0, H, 0, {}, Kind::Release, {}, 0, 502},
        {"not sent, release", UK::NotSent, 0, R, 0, {}, Kind::Release, {}, 0, 502},
        {"timed out, hold", UK::TimedOut, 0, H, 0, {}, Kind::Complete, Settlement::Unknown, 504, 504},
        {"timed out, release", UK::TimedOut, 0, R, 0, {}, Kind::Release, {}, 0, 504},
        {"reset, hold", UK::Reset, 0, H, 0, {}, Kind::Complete, Settlement::Unknown, 502, 502},
        {"reset, release", UK::Reset, 0, R, 0, {}, Kind::Release, {}, 0, 502},
    };

    for (const auto& row : rows) {
        RoutePolicy policy = basePolicy();
        policy.onUnknown = row.onUnknown;
        UpstreamResult result;
        result.kind = row.kind;
        result.detail = "connect: connection refused";
        if (row.kind == UK::Response) {
            result.response.status = row.upstreamStatus;
            result.response.headers = {{"Content-Type", "application/json"},
                                       {"Transfer-Encoding", "chunked"},
                                       {"Content-Length", std::to_string(row.bodySize)},
                                       {"Location", "/v1/payments/pay_1"}};
            if (row.upstreamStatus != 204 && row.upstreamStatus != 302) result.response.body = std::string(row.bodySize, 'x');
        }
        if (row.limitDelta) {
            const auto full = toStoredResponse(result.response, false, Settlement::Definite);
            policy.maxStoredResponse = static_cast<std::size_t>(static_cast<long>(storedResponseSize(full)) + *row.limitDelta);
        }

        const UpstreamDecision d = onUpstream(result, begun(), policy);
        BOOST_TEST_CONTEXT(row.name) {
            BOOST_TEST(d.index() == static_cast<std::size_t>(row.expected));
            const HttpResponse& response = std::holds_alternative<CompleteRecord>(d) ? std::get<CompleteRecord>(d).response
                                                                                    : std::get<ReleaseRecord>(d).response;
            BOOST_TEST(response.status == row.responseStatus);
            checkHeaders(response.headers, {{"Idempotent-Replayed", "false"}, {"Idempotency-Key", kKey}}, row.name);
            BOOST_TEST(!findHeader(response.headers, "Transfer-Encoding"));
            BOOST_TEST(!findHeader(response.headers, "Content-Length"));
            if (row.kind == UK::Response) {
                // The client always gets the full answer, even when only a tombstone is kept.
                BOOST_TEST((response.body == result.response.body));
            }
            if (const auto* c = std::get_if<CompleteRecord>(&d)) {
                BOOST_REQUIRE(row.settlement.has_value());
                BOOST_TEST((c->record.settlement == *row.settlement));
                BOOST_TEST(c->record.status == row.recordStatus);
                BOOST_TEST(!findHeader(c->record.headers, "Idempotent-Replayed"));
                BOOST_TEST(!findHeader(c->record.headers, "Transfer-Encoding"));
                if (c->record.settlement == Settlement::Unreplayable) {
                    BOOST_TEST(c->record.headers.empty());
                    BOOST_TEST(!c->record.body.has_value());
                } else if (row.kind == UK::Response) {
                    BOOST_TEST((c->record.body == result.response.body));
                    BOOST_TEST(only(c->record.headers, "Location") == "/v1/payments/pay_1");
                    BOOST_TEST(storedResponseSize(c->record) <= policy.maxStoredResponse);
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(upstreamProblemsCarryStateAndRetryability) {
    RoutePolicy p = basePolicy();
    UpstreamResult r;
    r.detail = "after 30 s";

    r.kind = UpstreamResult::Kind::TimedOut;
    const auto timedOut = std::get<CompleteRecord>(onUpstream(r, begun(), p));
    BOOST_TEST(hasProblemType(timedOut.response, "outcome-unknown"));
    BOOST_TEST(bodyHas(timedOut.response.body, R"("operation_state":"unknown")"));
    BOOST_TEST(bodyHas(timedOut.response.body, R"("retryable":false)"));
    BOOST_TEST(bodyHas(timedOut.response.body, "after 30 s"));
    // The record is the same problem without the per-answer headers; its replay is the same body.
    BOOST_TEST((timedOut.record.body == timedOut.response.body));
    BOOST_TEST(!findHeader(timedOut.record.headers, "Idempotent-Replayed"));
    BOOST_TEST(only(timedOut.record.headers, "Content-Type") == "application/problem+json");

    r.kind = UpstreamResult::Kind::NotSent;
    const auto notSent = std::get<ReleaseRecord>(onUpstream(r, begun(), p));
    BOOST_TEST(hasProblemType(notSent.response, "upstream-unreachable"));
    BOOST_TEST(bodyHas(notSent.response.body, R"("retryable":true)"));
}

BOOST_AUTO_TEST_CASE(setCookieIsDroppedUnlessAllowed) {
    UpstreamResult r;
    r.response.status = 201;
    r.response.headers = {{"Set-Cookie", "a=1"}, {"Content-Type", "text/plain"}, {"Set-Cookie", "b=2"}};
    r.response.body = "ok";
    RoutePolicy p = basePolicy();
    const auto dropped = std::get<CompleteRecord>(onUpstream(r, begun(), p));
    BOOST_TEST(countHeader(dropped.record.headers, "Set-Cookie") == 0u);
    p.allowSetCookie = true;
    const auto kept = std::get<CompleteRecord>(onUpstream(r, begun(), p));
    const Headers expected{{"Set-Cookie", "a=1"}, {"Content-Type", "text/plain"}, {"Set-Cookie", "b=2"}};
    BOOST_TEST((kept.record.headers == expected));
}

// ---- pass-through -------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(passThroughTable) {
    using UK = UpstreamResult::Kind;
    struct Row {
        const char* name;
        UK kind;
        bool unprotected;
        int status;
        std::optional<std::string> enforced;
    };
    const std::vector<Row> rows{
        {"response, protected route off", UK::Response, false, 201, std::nullopt},
        {"response, store failure open", UK::Response, true, 201, "false"},
        {"not sent", UK::NotSent, false, 502, std::nullopt},
        {"not sent, unprotected", UK::NotSent, true, 502, "false"},
        {"timed out, unprotected", UK::TimedOut, true, 504, "false"},
        {"reset", UK::Reset, false, 502, std::nullopt},
    };
    for (const auto& row : rows) {
        UpstreamResult r;
        r.kind = row.kind;
        r.response.status = 201;
        r.response.headers = {{"Connection", "keep-alive, X-Hop"}, {"Keep-Alive", "timeout=5"}, {"X-Hop", "1"},
                              {"Set-Cookie", "s=1"}, {"Proxy-Authenticate", "Basic"}, {"Location", "/x"}};
        r.response.body = "body";
        const auto out = passThroughResponse(r, row.unprotected);
        BOOST_TEST_CONTEXT(row.name) {
            BOOST_TEST(out.status == row.status);
            BOOST_TEST(only(out.headers, "Idempotency-Enforced") == row.enforced.value_or(kNoLine));
            BOOST_TEST(!findHeader(out.headers, "Idempotent-Replayed"));
            if (row.kind == UK::Response) {
                const Headers expected = row.unprotected
                    ? Headers{{"Set-Cookie", "s=1"}, {"Location", "/x"}, {"Idempotency-Enforced", "false"}}
                    : Headers{{"Set-Cookie", "s=1"}, {"Location", "/x"}};
                BOOST_TEST((out.headers == expected));
                BOOST_TEST((out.body == std::optional<std::string>("body")));
            }
        }
    }
}

// ---- header rules (ResponseHeaders.h, Http.h) ---------------------------------------------------------

BOOST_AUTO_TEST_CASE(hopByHopNames) {
    for (const char* n : {"Connection", "keep-alive", "TRANSFER-ENCODING", "te", "Trailer", "Upgrade",
                          "Proxy-Authenticate", "proxy-authorization", "Proxy-Connection"})
        BOOST_TEST(isHopByHop(n), n);
    for (const char* n : {"Content-Type", "Location", "ETag", "Proxy", "Trailers-X", "Teapot", "Set-Cookie"})
        BOOST_TEST(!isHopByHop(n), n);
}

BOOST_AUTO_TEST_CASE(storableHeadersRules) {
    const Headers upstream{{"Content-Type", "application/json"}, {"Connection", "close, X-Secret-Hop"},
                           {"X-Secret-Hop", "1"},                {"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
                           {"Content-Length", "103"},            {"Link", "</a>"},
                           {"Transfer-Encoding", "chunked"},     {"Set-Cookie", "sid=1"},
                           {"Link", "</b>"},                     {"Proxy-Authenticate", "Basic"},
                           {"ETag", "\"v1\""}};
    const Headers expected{{"Content-Type", "application/json"}, {"Link", "</a>"}, {"Link", "</b>"}, {"ETag", "\"v1\""}};
    BOOST_TEST((storableHeaders(upstream, false) == expected));
    const Headers withCookie{{"Content-Type", "application/json"}, {"Link", "</a>"}, {"Set-Cookie", "sid=1"},
                             {"Link", "</b>"}, {"ETag", "\"v1\""}};
    BOOST_TEST((storableHeaders(upstream, true) == withCookie));
}

BOOST_AUTO_TEST_CASE(freshResponseHeaders) {
    HttpResponse up;
    up.status = 201;
    up.reason = "Created Nicely";
    up.headers = {{"Content-Type", "application/json"}, {"Idempotent-Replayed", "true"}, {"Keep-Alive", "x"}};
    up.body = "{}";
    const auto fresh = freshResponse(up, false, kKey, "Idempotency-Key");
    const Headers expected{{"Content-Type", "application/json"}, {"Idempotent-Replayed", "false"}, {"Idempotency-Key", kKey}};
    BOOST_TEST((fresh.headers == expected));
    BOOST_TEST(fresh.status == 201);
    BOOST_TEST(fresh.reason.empty());
    BOOST_TEST((fresh.body == up.body));
}

BOOST_AUTO_TEST_CASE(headerHelpers) {
    BOOST_TEST(iequals("Content-Type", "content-TYPE"));
    BOOST_TEST(!iequals("Content-Type", "Content-Typ"));
    BOOST_TEST(!iequals("a", "b"));
    Headers h{{"A", "1"}, {"b", "2"}, {"a", "3"}, {"C", "4"}, {"A", "5"}};
    BOOST_TEST(countHeader(h, "a") == 3u);
    BOOST_TEST(*findHeader(h, "a") == "1");
    BOOST_TEST(findHeader(h, "x") == nullptr);
    Headers set = h;
    setHeader(set, "a", "9");
    BOOST_TEST((set == Headers{{"a", "9"}, {"b", "2"}, {"C", "4"}}));
    setHeader(set, "New", "n");
    BOOST_TEST((set == Headers{{"a", "9"}, {"b", "2"}, {"C", "4"}, {"New", "n"}}));
    eraseHeader(h, "A");
    BOOST_TEST((h == Headers{{"b", "2"}, {"C", "4"}}));
}

BOOST_AUTO_TEST_SUITE_END()
