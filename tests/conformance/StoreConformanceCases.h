// The store conformance suite (STORE-DESIGN §0 and §6, with its amendment; the Store contract in
// storage/Store.h), written once and compiled unchanged for every store.
//
// USAGE (one translation unit per store, e.g. RedisConformance.cpp):
//
//     #define BOOST_TEST_MODULE conformance_redis
//     #include <boost/test/unit_test.hpp>
//     #include "tests/conformance/StoreConformanceSupport.h"   // at file scope, before the fixture
//     struct RedisFx { ... };                                    // models the concept below
//     using StoreFixtures = std::tuple<RedisFx>;                 // or boost::mpl::list<RedisFx>
//     BOOST_AUTO_TEST_SUITE(redis)
//     #include "tests/conformance/StoreConformanceCases.h"      // inside the suite: includes nothing
//     BOOST_AUTO_TEST_SUITE_END()
//
// Tests are then named like redis/beginNewKeyIsOwned<RedisFx>.
//
// FIXTURE CONCEPT (every case builds a fresh `Fx fx;`):
//
//   struct Fx {
//     static constexpr const char* kName;            // "memory", "redis", "redis-cluster", "postgres"
//     static constexpr bool kNetworked;              // false only for the in-process memory store
//     static constexpr storage::Millis kTtlUnit;     // memory: 1s of fake time; networked: 300ms of real time.
//                                                    // Cases express every lease/TTL as a multiple of it.
//     static constexpr std::size_t kMaxResponseBytes; // the StoreLimits::maxResponseBytes the store was
//                                                    // built with; >= kMinConformanceResponseBytes (2 MiB)
//     Fx();                                          // builds a fresh store; throws (the case fails, never
//                                                    // skips) if the service is missing
//     storage::Store& store();
//     void advance(storage::Millis d);               // memory: ManualClock::advance(d); networked: sleep d
//     // Networked fixtures only (memory returns nullptr / is never asked):
//     std::unique_ptr<storage::Store> makeUnreachable();  // same store type pointed at a closed port; its
//                                                         // construction must not throw, its calls fail fast
//     std::unique_ptr<storage::Store> makeVia(std::uint16_t proxyPort);  // same store type, through a
//                                                         // FaultProxy on 127.0.0.1:proxyPort; no background
//                                                         // traffic of its own (reaper off), command timeout
//                                                         // short (<= 1 s)
//     std::pair<std::string, std::uint16_t> endpoint();   // the service address the FaultProxy targets
//   };
//
// Timing: no assertion on elapsed time. On fake time, boundaries are checked to the millisecond
// (justBefore / wellPast in StoreConformanceSupport.h); on real time with 2x margins.
// Record ids are unique per process run, fixture, case and counter (Ids), so a persistent server needs
// no cleanup between runs.

#ifndef IDEM_STORE_CONFORMANCE_SUPPORT_INCLUDED
#error "include tests/conformance/StoreConformanceSupport.h at file scope before StoreConformanceCases.h"
#endif

#ifndef IDEM_STORE_CONFORMANCE_CASES_INCLUDED
#define IDEM_STORE_CONFORMANCE_CASES_INCLUDED

using namespace ::idem::test;

// 1. A new key is Owned by the caller's token.
BOOST_AUTO_TEST_CASE_TEMPLATE(beginNewKeyIsOwned, Fx, StoreFixtures) {
    static_assert(Fx::kMaxResponseBytes >= kMinConformanceResponseBytes);
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("one");
    for (int i = 0; i < 3; ++i) {
        const auto t = newToken();
        const auto r = fx.store().begin(ids.next(), fp, t, 10 * u, 100 * u);
        BOOST_TEST(isOwnedBy(r, t), describe(r));
    }
}

// 2. A held key -> InProgress, 0 < leaseLeft <= the lease left (never the retention).
BOOST_AUTO_TEST_CASE_TEMPLATE(heldKeyIsInProgress, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("held");
    const auto t1 = newToken();
    auto r = fx.store().begin(id, fp, t1, 10 * u, 100 * u);
    BOOST_TEST_REQUIRE(isOwnedBy(r, t1), describe(r));

    r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    const InProgress* busy = as<InProgress>(r);
    BOOST_TEST_REQUIRE(busy, describe(r));
    BOOST_TEST(busy->leaseLeft.count() > 0);
    BOOST_TEST(busy->leaseLeft.count() <= (10 * u).count());

    fx.advance(4 * u);
    r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    busy = as<InProgress>(r);
    BOOST_TEST_REQUIRE(busy, describe(r));
    BOOST_TEST(busy->leaseLeft.count() > 0);
    // At least 4u of the store's time has passed since the lease began (ms rounding allowed).
    BOOST_TEST(busy->leaseLeft.count() <= (6 * u + Millis{1}).count());
}

// 3. 32 threads racing begin on one key (released together by a barrier) -> exactly one Owned, every
//    other InProgress. Repeated for 20 keys.
BOOST_AUTO_TEST_CASE_TEMPLATE(concurrentBeginHasExactlyOneOwner, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    constexpr int kThreads = 32;
    constexpr int kKeys = 20;
    ::idem::storage::Store& store = fx.store();
    for (int key = 0; key < kKeys; ++key) {
        const auto id = ids.next();
        const auto fp = fingerprintOf("race");
        std::vector<::idem::storage::Token> tokens(kThreads);
        for (auto& t : tokens) t = newToken();
        std::vector<std::optional<Result<BeginOutcome>>> results(kThreads);
        std::barrier sync(kThreads);
        {
            std::vector<std::jthread> threads;
            for (int i = 0; i < kThreads; ++i)
                threads.emplace_back([&, i] {
                    sync.arrive_and_wait();
                    results[i] = store.begin(id, fp, tokens[i], 30 * u, 100 * u);
                });
        }
        int owned = 0, busy = 0;
        for (int i = 0; i < kThreads; ++i) {
            const auto& r = *results[i];
            if (isOwnedBy(r, tokens[i])) ++owned;
            else if (as<InProgress>(r)) ++busy;
            else BOOST_ERROR("key " << key << " thread " << i << ": " << describe(r));
        }
        BOOST_TEST(owned == 1, "key " << key << ": " << owned << " owners");
        BOOST_TEST(busy == kThreads - 1, "key " << key << ": " << busy << " InProgress");
    }
}

// 4. A changed fingerprint -> Mismatch while in flight (even for the owner's token, even after the lease
//    lapsed) and once done.
BOOST_AUTO_TEST_CASE_TEMPLATE(changedFingerprintIsMismatch, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fpA = fingerprintOf("A");
    const auto fpB = fingerprintOf("B");
    const auto id = ids.next();
    const auto lapsed = ids.next();
    const auto t1 = newToken();
    const auto t2 = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fpA, t1, 20 * u, 100 * u), t1));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(lapsed, fpA, t2, u, 100 * u), t2));

    auto r = fx.store().begin(id, fpB, newToken(), 20 * u, 100 * u);
    BOOST_TEST(as<Mismatch>(r), "other token, in flight: " << describe(r));
    r = fx.store().begin(id, fpB, t1, 20 * u, 100 * u);
    BOOST_TEST(as<Mismatch>(r), "owner's token, in flight: " << describe(r));

    const auto resp = response("mismatch");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, t1, resp, 100 * u)));
    r = fx.store().begin(id, fpB, newToken(), 20 * u, 100 * u);
    BOOST_TEST(as<Mismatch>(r), "done: " << describe(r));
    r = fx.store().begin(id, fpA, newToken(), 20 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), "done, same fingerprint: " << describe(r));

    fx.advance(wellPast<Fx>(u));
    r = fx.store().begin(lapsed, fpB, newToken(), 20 * u, 100 * u);
    BOOST_TEST(as<Mismatch>(r), "lease lapsed: " << describe(r));
    r = fx.store().begin(lapsed, fpA, newToken(), 20 * u, 100 * u);
    const Abandoned* ab = as<Abandoned>(r);
    BOOST_TEST((ab && ab->token == t2), "lease lapsed, same fingerprint: " << describe(r));
}

// 5. The owner's token again (a resend after an ambiguous reply) -> Owned, no fence bump.
BOOST_AUTO_TEST_CASE_TEMPLATE(sameTokenIsOwnedWithoutFenceBump, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("resend");
    const auto t = newToken();
    const auto first = fx.store().begin(id, fp, t, 10 * u, 100 * u);
    BOOST_TEST_REQUIRE(isOwnedBy(first, t), describe(first));
    for (int i = 0; i < 3; ++i) {
        const auto again = fx.store().begin(id, fp, t, 10 * u, 100 * u);
        BOOST_TEST_REQUIRE(isOwnedBy(again, t), describe(again));
        BOOST_TEST(as<Owned>(again)->fence == as<Owned>(first)->fence);
    }
    const auto other = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(as<InProgress>(other), describe(other));
}

// 6. complete, then begin -> Done with the byte-identical response, for any token (the owner's too).
BOOST_AUTO_TEST_CASE_TEMPLATE(completedKeyReplaysByteIdentical, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("replay");
    const auto t = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t, 10 * u, 100 * u), t));
    StoredResponse resp;
    resp.status = 402;
    resp.headers = {{"Content-Type", "application/problem+json"}, {"Retry-After", "7"}, {"x-lower-case", "Mixed Value"}};
    resp.body = R"({"type":"about:blank","status":402})";
    resp.settlement = ::idem::storage::Settlement::Definite;
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, t, resp, 100 * u)));
    for (const auto& who : {newToken(), newToken(), t}) {
        const auto r = fx.store().begin(id, fp, who, 10 * u, 100 * u);
        BOOST_TEST(isDoneWith(r, resp), describe(r));
    }
}

// 7. A 1 MiB body with NUL and 0xFF bytes and multi-valued headers (order kept) survive unchanged.
BOOST_AUTO_TEST_CASE_TEMPLATE(largeBinaryBodyAndRepeatedHeadersSurvive, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("binary");
    const auto t = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t, 10 * u, 100 * u), t));
    StoredResponse resp;
    resp.status = 200;
    resp.headers = {{"Set-Cookie", "a=1"}, {"X-Multi", "first"}, {"Set-Cookie", "b=2; Path=/"},
                    {"X-Multi", "second"},  {"X-Empty", ""},        {"X-Bytes", std::string("\0\xff\x01z", 4)},
                    {"x-multi", "third"}};
    std::string body(1u << 20, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919u) >> 3);
    body[0] = '\0';
    body[1] = '\xff';
    body[body.size() - 2] = '\xff';
    body[body.size() - 1] = '\0';
    resp.body = body;
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, t, resp, 100 * u)));
    const auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    const Done* done = as<Done>(r);
    BOOST_TEST_REQUIRE(done, describe(r));
    BOOST_TEST(done->response.status == 200);
    BOOST_TEST_REQUIRE(done->response.body.has_value());
    BOOST_TEST(done->response.body->size() == body.size());
    BOOST_TEST((*done->response.body == body), "body bytes differ");
    BOOST_TEST_REQUIRE(done->response.headers.size() == resp.headers.size());
    for (std::size_t i = 0; i < resp.headers.size(); ++i) {
        BOOST_TEST(done->response.headers[i].first == resp.headers[i].first, "header " << i);
        BOOST_TEST((done->response.headers[i].second == resp.headers[i].second), "header value " << i);
    }
    BOOST_TEST((done->response == resp));
}

// 8. An empty body and an absent body are different and both survive.
BOOST_AUTO_TEST_CASE_TEMPLATE(emptyBodyDiffersFromAbsentBody, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("bodies");
    const auto emptyId = ids.next();
    const auto absentId = ids.next();
    const auto t1 = newToken();
    const auto t2 = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(emptyId, fp, t1, 10 * u, 100 * u), t1));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(absentId, fp, t2, 10 * u, 100 * u), t2));
    StoredResponse empty;
    empty.status = 200;
    empty.headers = {{"Content-Length", "0"}};
    empty.body = std::string();
    StoredResponse absent = empty;
    absent.body.reset();
    absent.settlement = ::idem::storage::Settlement::Unreplayable;
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(emptyId, t1, empty, 100 * u)));
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(absentId, t2, absent, 100 * u)));

    const auto e = fx.store().begin(emptyId, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST_REQUIRE(as<Done>(e), describe(e));
    BOOST_TEST(as<Done>(e)->response.body.has_value());
    BOOST_TEST((as<Done>(e)->response == empty), describe(e));
    const auto a = fx.store().begin(absentId, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST_REQUIRE(as<Done>(a), describe(a));
    BOOST_TEST(!as<Done>(a)->response.body.has_value());
    BOOST_TEST((as<Done>(a)->response == absent), describe(a));
}

// 9. complete with a wrong token -> Fenced and the record is unchanged (still in flight, its owner
//    completes it afterwards with its own response).
BOOST_AUTO_TEST_CASE_TEMPLATE(wrongTokenCompleteIsFenced, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("fenced");
    const auto owner = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, owner, 10 * u, 100 * u), owner));
    const auto c = fx.store().complete(id, newToken(), response("intruder"), 100 * u);
    BOOST_TEST(isFenced(c), describe(c));
    auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), describe(r));
    const auto mine = response("owner");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, owner, mine, 100 * u)));
    r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, mine), describe(r));
}

// 10. complete / release / extend on a missing key -> Fenced / false / false, and nothing is created.
BOOST_AUTO_TEST_CASE_TEMPLATE(completeOnMissingKeyIsFenced, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("missing");
    const auto t = newToken();
    const auto c = fx.store().complete(id, t, response("ghost"), 100 * u);
    BOOST_TEST(isFenced(c), describe(c));
    const auto rel = fx.store().release(id, t);
    BOOST_TEST(isFalse(rel), describe(rel));
    const auto ext = fx.store().extend(id, t, 10 * u);
    BOOST_TEST(isFalse(ext), describe(ext));
    const auto t2 = newToken();
    const auto r = fx.store().begin(id, fp, t2, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, t2), describe(r));
}

// 11. After the lease lapses: begin -> Abandoned{old token}; takeover with a fresh token -> Owned (fence
//     bumped; a resend of the takeover stays Owned); the stale owner's complete / release / extend are
//     no-ops; a third party's takeover with the old token after that -> not Owned.
BOOST_AUTO_TEST_CASE_TEMPLATE(lapsedLeaseIsAbandonedThenTakenOver, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("takeover");
    const auto stale = newToken();
    const auto first = fx.store().begin(id, fp, stale, u, 100 * u);
    BOOST_TEST_REQUIRE(isOwnedBy(first, stale), describe(first));
    fx.advance(wellPast<Fx>(u));

    auto r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
    const Abandoned* ab = as<Abandoned>(r);
    BOOST_TEST_REQUIRE(ab, describe(r));
    BOOST_TEST(ab->token == stale);

    const auto fresh = newToken();
    const auto took = fx.store().takeover(id, fp, stale, fresh, 20 * u, 100 * u);
    BOOST_TEST_REQUIRE(isOwnedBy(took, fresh), describe(took));
    BOOST_TEST(as<Owned>(took)->fence > as<Owned>(first)->fence);
    const auto resent = fx.store().takeover(id, fp, stale, fresh, 20 * u, 100 * u);
    BOOST_TEST_REQUIRE(isOwnedBy(resent, fresh), describe(resent));
    BOOST_TEST(as<Owned>(resent)->fence == as<Owned>(took)->fence);

    const auto staleComplete = fx.store().complete(id, stale, response("stale"), 100 * u);
    BOOST_TEST(isFenced(staleComplete), describe(staleComplete));
    const auto staleRelease = fx.store().release(id, stale);
    BOOST_TEST(isFalse(staleRelease), describe(staleRelease));
    const auto staleExtend = fx.store().extend(id, stale, 50 * u);
    BOOST_TEST(isFalse(staleExtend), describe(staleExtend));

    r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), describe(r));
    const auto third = newToken();
    r = fx.store().takeover(id, fp, stale, third, 20 * u, 100 * u);
    BOOST_TEST(!as<Owned>(r), describe(r));
    BOOST_TEST(as<InProgress>(r), describe(r));

    const auto resp = response("fresh");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, fresh, resp, 100 * u)));
    r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), describe(r));
}

// 11b. takeover is a compare-and-set: it needs an in-flight record, the same fingerprint, a lapsed lease
//      and the stale owner's token; otherwise it answers what begin would answer for the fresh token.
BOOST_AUTO_TEST_CASE_TEMPLATE(takeoverRequiresLapsedLeaseAndStaleToken, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("cas");
    const auto missing = ids.next();
    const auto live = ids.next();
    const auto lapsed = ids.next();
    const auto done = ids.next();
    const auto tLive = newToken(), tLapsed = newToken(), tDone = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(live, fp, tLive, 50 * u, 100 * u), tLive));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(lapsed, fp, tLapsed, u, 100 * u), tLapsed));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(done, fp, tDone, u, 100 * u), tDone));
    const auto resp = response("cas-done");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(done, tDone, resp, 100 * u)));
    fx.advance(wellPast<Fx>(u));

    const auto t1 = newToken();
    auto r = fx.store().takeover(missing, fp, newToken(), t1, 20 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, t1), "missing: " << describe(r));

    r = fx.store().takeover(live, fp, tLive, newToken(), 20 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), "live lease: " << describe(r));

    r = fx.store().takeover(lapsed, fp, newToken(), newToken(), 20 * u, 100 * u);
    const Abandoned* ab = as<Abandoned>(r);
    BOOST_TEST((ab && ab->token == tLapsed), "wrong stale token: " << describe(r));
    r = fx.store().takeover(lapsed, fingerprintOf("other"), tLapsed, newToken(), 20 * u, 100 * u);
    BOOST_TEST(as<Mismatch>(r), "other fingerprint: " << describe(r));

    r = fx.store().takeover(done, fp, tDone, newToken(), 20 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), "completed: " << describe(r));

    const auto t2 = newToken();
    r = fx.store().takeover(lapsed, fp, tLapsed, t2, 20 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, t2), "all preconditions met: " << describe(r));
}

// 11c. An Abandoned record settled as "unknown" (on_unknown: hold) by completing it with the stale token
//      is then replayed as that unknown outcome.
BOOST_AUTO_TEST_CASE_TEMPLATE(abandonedRecordSettledAsUnknown, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("unknown");
    const auto stale = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, stale, u, 100 * u), stale));
    fx.advance(wellPast<Fx>(u));
    auto r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
    BOOST_TEST_REQUIRE(as<Abandoned>(r), describe(r));
    StoredResponse unknown;
    unknown.status = 504;
    unknown.headers = {{"Content-Type", "application/problem+json"}};
    unknown.body = R"({"title":"outcome unknown"})";
    unknown.settlement = ::idem::storage::Settlement::Unknown;
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, as<Abandoned>(r)->token, unknown, 100 * u)));
    r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, unknown), describe(r));
    BOOST_TEST((as<Done>(r) && as<Done>(r)->response.settlement == ::idem::storage::Settlement::Unknown));
    r = fx.store().takeover(id, fp, stale, newToken(), 20 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, unknown), "takeover after settling: " << describe(r));
}

// 12. A repeated complete by the owner -> Ok, and the first response stays.
BOOST_AUTO_TEST_CASE_TEMPLATE(repeatedCompleteIsOkAndUnchanged, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("repeat");
    const auto t = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t, 10 * u, 100 * u), t));
    const auto first = response("first");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, t, first, 100 * u)));
    const auto again = fx.store().complete(id, t, first, 100 * u);
    BOOST_TEST(isOk(again), describe(again));
    const auto other = fx.store().complete(id, t, response("second", 500), 100 * u);
    BOOST_TEST(isOk(other), describe(other));
    const auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, first), describe(r));
}

// 13. release by the owner frees the key; by anyone else, twice, or once done it is a no-op.
BOOST_AUTO_TEST_CASE_TEMPLATE(releaseFreesOnlyOwnInFlightRecord, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("release");
    const auto id = ids.next();
    const auto owner = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, owner, 10 * u, 100 * u), owner));
    auto rel = fx.store().release(id, newToken());
    BOOST_TEST(isFalse(rel), "other token: " << describe(rel));
    auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), describe(r));
    rel = fx.store().release(id, owner);
    BOOST_TEST(isTrue(rel), "owner: " << describe(rel));
    rel = fx.store().release(id, owner);
    BOOST_TEST(isFalse(rel), "twice: " << describe(rel));
    const auto next = newToken();
    r = fx.store().begin(id, fp, next, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, next), describe(r));

    const auto doneId = ids.next();
    const auto t = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(doneId, fp, t, 10 * u, 100 * u), t));
    const auto resp = response("kept");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(doneId, t, resp, 100 * u)));
    rel = fx.store().release(doneId, t);
    BOOST_TEST(isFalse(rel), "done: " << describe(rel));
    r = fx.store().begin(doneId, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), describe(r));
}

// 14. extend works for the owner only and really moves the lease end; not on a completed record.
BOOST_AUTO_TEST_CASE_TEMPLATE(extendWorksForOwnerOnly, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("extend");
    const auto mine = ids.next();
    const auto theirs = ids.next();
    const auto owner = newToken();
    const auto other = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(mine, fp, owner, 2 * u, 100 * u), owner));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(theirs, fp, other, 2 * u, 100 * u), other));
    fx.advance(u);
    auto e = fx.store().extend(mine, owner, 8 * u);  // lease now ends at 9u
    BOOST_TEST(isTrue(e), "owner: " << describe(e));
    e = fx.store().extend(theirs, owner, 8 * u);     // not the owner: lease still ends at 2u
    BOOST_TEST(isFalse(e), "non-owner: " << describe(e));
    fx.advance(4 * u);                               // 5u: past the original 2u, before 9u

    auto r = fx.store().begin(mine, fp, newToken(), 10 * u, 100 * u);
    const InProgress* busy = as<InProgress>(r);
    BOOST_TEST_REQUIRE(busy, "extended lease: " << describe(r));
    BOOST_TEST(busy->leaseLeft.count() <= (8 * u).count());
    r = fx.store().begin(theirs, fp, newToken(), 10 * u, 100 * u);
    const Abandoned* ab = as<Abandoned>(r);
    BOOST_TEST((ab && ab->token == other), "not extended: " << describe(r));

    BOOST_TEST_REQUIRE(isOk(fx.store().complete(mine, owner, response("x"), 100 * u)));
    e = fx.store().extend(mine, owner, 8 * u);
    BOOST_TEST(isFalse(e), "done: " << describe(e));
}

// 15. A done record lives for the final TTL counted from complete: alive just before, gone after.
BOOST_AUTO_TEST_CASE_TEMPLATE(doneRecordExpiresAtFinalTtlFromComplete, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("final-ttl");
    const auto t = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t, 10 * u, 100 * u), t));
    fx.advance(3 * u);
    const Millis finalTtl = 4 * u;
    const auto resp = response("final");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(id, t, resp, finalTtl)));
    fx.advance(justBefore<Fx>(finalTtl));
    auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), "just before the final TTL: " << describe(r));
    fx.advance(wellPast<Fx>(finalTtl) - justBefore<Fx>(finalTtl));
    const auto next = newToken();
    r = fx.store().begin(id, fp, next, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, next), "after the final TTL: " << describe(r));
}

// 16. The lease and the final TTL are independent. complete is fenced only by the token: an owner whose
//     lease lapsed, but whom nobody took over, still completes (Ok). A short final TTL after a long lease
//     ends the record at the final TTL.
BOOST_AUTO_TEST_CASE_TEMPLATE(leaseAndFinalTtlAreIndependent, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("independent");
    const auto slow = ids.next();
    const auto quick = ids.next();
    const auto tSlow = newToken(), tQuick = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(slow, fp, tSlow, u, 100 * u), tSlow));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(quick, fp, tQuick, 40 * u, 100 * u), tQuick));
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(quick, tQuick, response("quick"), 2 * u)));
    fx.advance(wellPast<Fx>(2 * u));  // slow's 1u lease has lapsed; quick's 2u final TTL has run out

    const auto resp = response("slow");
    const auto c = fx.store().complete(slow, tSlow, resp, 100 * u);
    BOOST_TEST(isOk(c), "lease lapsed, not taken over: " << describe(c));
    auto r = fx.store().begin(slow, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), describe(r));

    const auto next = newToken();
    r = fx.store().begin(quick, fp, next, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, next), "final TTL shorter than the lease: " << describe(r));
}

// 17. Isolation: records never interfere; ids from length-prefixed parts ("a:b"+"c" vs "a"+"b:c") differ;
//     ids with braces, UTF-8 and 255 printable bytes work.
BOOST_AUTO_TEST_CASE_TEMPLATE(recordIdsAreIsolated, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("isolation");
    const auto base = ids.next();
    const auto left = hashParts({base, "a:b", "c"});
    const auto right = hashParts({base, "a", "b:c"});
    BOOST_TEST_REQUIRE(left != right);
    const auto tl = newToken(), tr = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(left, fp, tl, 10 * u, 100 * u), tl));
    auto r = fx.store().begin(right, fp, tr, 10 * u, 100 * u);
    BOOST_TEST_REQUIRE(isOwnedBy(r, tr), describe(r));
    const auto resp = response("left");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(left, tl, resp, 100 * u)));
    r = fx.store().begin(right, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), "right unaffected: " << describe(r));
    r = fx.store().begin(left, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, resp), describe(r));

    std::string longest = base + "-";
    for (char c = '!'; longest.size() < ::idem::storage::kMaxRecordIdBytes; c = c == '~' ? '!' : static_cast<char>(c + 1))
        longest.push_back(c);
    const std::vector<::idem::storage::RecordId> odd = {
        base + "{tenant}:{route}",
        base + "}{",
        base + "-\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-\xe9\x8d\xb5-\xf0\x9f\x94\x91",  // "-ключ-鍵-🔑" in UTF-8
        longest,
        longest.substr(0, ::idem::storage::kMaxRecordIdBytes - 1),
    };
    BOOST_TEST_REQUIRE(longest.size() == ::idem::storage::kMaxRecordIdBytes);
    std::vector<::idem::storage::Token> owners;
    for (const auto& id : odd) {
        owners.push_back(newToken());
        r = fx.store().begin(id, fp, owners.back(), 10 * u, 100 * u);
        BOOST_TEST(isOwnedBy(r, owners.back()), "id of " << id.size() << " bytes: " << describe(r));
    }
    for (std::size_t i = 0; i < odd.size(); ++i) {
        const auto c = fx.store().complete(odd[i], owners[i], response("odd" + std::to_string(i)), 100 * u);
        BOOST_TEST(isOk(c), "id " << i << ": " << describe(c));
    }
    for (std::size_t i = 0; i < odd.size(); ++i) {
        r = fx.store().begin(odd[i], fp, newToken(), 10 * u, 100 * u);
        BOOST_TEST(isDoneWith(r, response("odd" + std::to_string(i))), "id " << i << ": " << describe(r));
    }
}

// 18. An oversize record id (256 bytes) and an oversize response -> TooLarge from every store; the
//     response limit is inclusive, and a refused response leaves the record in flight.
BOOST_AUTO_TEST_CASE_TEMPLATE(oversizeIdAndResponseAreTooLarge, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("limits");
    using Kind = StoreError::Kind;
    std::string tooLong = ids.next();
    tooLong.resize(::idem::storage::kMaxRecordIdBytes + 1, 'x');
    const auto t = newToken();
    const auto b = fx.store().begin(tooLong, fp, t, 10 * u, 100 * u);
    BOOST_TEST(failsWith(b, Kind::TooLarge), "begin: " << describe(b));
    const auto tk = fx.store().takeover(tooLong, fp, t, newToken(), 10 * u, 100 * u);
    BOOST_TEST(failsWith(tk, Kind::TooLarge), "takeover: " << describe(tk));
    const auto c = fx.store().complete(tooLong, t, response("x"), 100 * u);
    BOOST_TEST(failsWith(c, Kind::TooLarge), "complete: " << describe(c));
    const auto rel = fx.store().release(tooLong, t);
    BOOST_TEST(failsWith(rel, Kind::TooLarge), "release: " << describe(rel));
    const auto ext = fx.store().extend(tooLong, t, 10 * u);
    BOOST_TEST(failsWith(ext, Kind::TooLarge), "extend: " << describe(ext));

    const auto id = ids.next();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t, 10 * u, 100 * u), t));
    const auto big = responseOfSize(Fx::kMaxResponseBytes + 1);
    const auto refused = fx.store().complete(id, t, big, 100 * u);
    BOOST_TEST(failsWith(refused, Kind::TooLarge), "limit + 1: " << describe(refused));
    auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), "after a refused response: " << describe(r));
    const auto fits = responseOfSize(Fx::kMaxResponseBytes);
    const auto ok = fx.store().complete(id, t, fits, 100 * u);
    BOOST_TEST(isOk(ok), "exactly the limit: " << describe(ok));
    r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, fits), describe(r));
}

// 19. A store that cannot be reached -> Unavailable or Timeout from every call, never Owned; a blackholed
//     (paused) server -> the same. Memory: the store is always reachable.
BOOST_AUTO_TEST_CASE_TEMPLATE(unreachableStoreNeverOwns, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("down");
    if constexpr (Fx::kNetworked) {
        const auto id = ids.next();
        const auto t = newToken();
        {
            auto down = fx.makeUnreachable();
            BOOST_TEST_REQUIRE(down.get());
            const auto b = down->begin(id, fp, t, 10 * u, 100 * u);
            BOOST_TEST(failsUnreachable(b), "begin: " << describe(b));
            const auto tk = down->takeover(id, fp, t, newToken(), 10 * u, 100 * u);
            BOOST_TEST(failsUnreachable(tk), "takeover: " << describe(tk));
            const auto c = down->complete(id, t, response("x"), 100 * u);
            BOOST_TEST(failsUnreachable(c), "complete: " << describe(c));
            const auto rel = down->release(id, t);
            BOOST_TEST(failsUnreachable(rel), "release: " << describe(rel));
            const auto ext = down->extend(id, t, 10 * u);
            BOOST_TEST(failsUnreachable(ext), "extend: " << describe(ext));
            const auto p = down->ping();
            BOOST_TEST(failsUnreachable(p), "ping: " << describe(p));
        }
        const auto [host, port] = fx.endpoint();
        FaultProxy proxy(host, port);
        const auto paused = ids.next();
        {
            auto via = fx.makeVia(proxy.port());
            BOOST_TEST_REQUIRE(via.get());
            proxy.setMode(FaultProxy::Mode::Blackhole);
            const auto b = via->begin(paused, fp, t, 10 * u, 100 * u);
            BOOST_TEST(failsUnreachable(b), "blackholed begin: " << describe(b));
        }
        // Nothing reached the server: both keys are still free.
        const auto t2 = newToken();
        auto r = fx.store().begin(id, fp, t2, 10 * u, 100 * u);
        BOOST_TEST(isOwnedBy(r, t2), describe(r));
        r = fx.store().begin(paused, fp, t2, 10 * u, 100 * u);
        BOOST_TEST(isOwnedBy(r, t2), describe(r));
    } else {
        const auto p = fx.store().ping();
        BOOST_TEST(p.has_value(), describe(p));
        BOOST_TEST(!fx.store().name().empty());
    }
}

// 20. Unknown outcome: begin is committed but its reply is lost and the connection reset -> an error
//     (Timeout/Unavailable), never a guess. Resending with the same token over a healthy path -> Owned;
//     a different token -> InProgress: exactly one owner. The faulted client recovers afterwards.
//     Memory has no wire: the same-token resend rule is checked directly.
BOOST_AUTO_TEST_CASE_TEMPLATE(lostReplyThenResendHasOneOwner, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("lost-ack");
    const auto id = ids.next();
    const auto t = newToken();
    if constexpr (Fx::kNetworked) {
        const auto [host, port] = fx.endpoint();
        FaultProxy proxy(host, port);
        auto via = fx.makeVia(proxy.port());
        BOOST_TEST_REQUIRE(via.get());
        // Warm up: connection, handshake, prepared statements or scripts are in place before the fault.
        const auto ping = via->ping();
        BOOST_TEST_REQUIRE(ping.has_value(), describe(ping));
        const auto warm = newToken();
        const auto w = via->begin(ids.next(), fp, warm, 10 * u, 100 * u);
        BOOST_TEST_REQUIRE(isOwnedBy(w, warm), describe(w));

        // Any retry the client makes on its own after the reset meets a refusing server.
        proxy.dropNextReplyAndReset(FaultProxy::Mode::Refuse);
        const auto lost = via->begin(id, fp, t, 20 * u, 100 * u);
        BOOST_TEST(failsUnreachable(lost), "begin with lost reply: " << describe(lost));
        BOOST_TEST(proxy.resets() == 1u);

        auto r = fx.store().begin(id, fp, t, 20 * u, 100 * u);
        BOOST_TEST(isOwnedBy(r, t), "resend, same token: " << describe(r));
        r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
        BOOST_TEST(as<InProgress>(r), "other token: " << describe(r));

        proxy.setMode(FaultProxy::Mode::Pass);
        Result<BeginOutcome> again = std::unexpected(StoreError{StoreError::Kind::Unavailable, "not tried"});
        for (int attempt = 0; attempt < 64 && !again; ++attempt) again = via->begin(id, fp, t, 20 * u, 100 * u);
        BOOST_TEST(isOwnedBy(again, t), "faulted client after recovery: " << describe(again));
    } else {
        auto r = fx.store().begin(id, fp, t, 20 * u, 100 * u);
        BOOST_TEST_REQUIRE(isOwnedBy(r, t), describe(r));
        r = fx.store().begin(id, fp, t, 20 * u, 100 * u);
        BOOST_TEST(isOwnedBy(r, t), "resend, same token: " << describe(r));
        r = fx.store().begin(id, fp, newToken(), 20 * u, 100 * u);
        BOOST_TEST(as<InProgress>(r), "other token: " << describe(r));
    }
}

// 21. An expired but unreaped record is never Done (nor InProgress/Abandoned): it is absent.
BOOST_AUTO_TEST_CASE_TEMPLATE(expiredUnreapedRecordIsAbsent, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("expired");
    const auto done = ids.next();
    const auto inFlight = ids.next();
    const auto t1 = newToken(), t2 = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(done, fp, t1, u, 100 * u), t1));
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(done, t1, response("old"), 2 * u)));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(inFlight, fp, t2, u, 2 * u), t2));
    fx.advance(wellPast<Fx>(2 * u));
    const auto n1 = newToken(), n2 = newToken();
    auto r = fx.store().begin(done, fp, n1, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, n1), "expired done record: " << describe(r));
    r = fx.store().begin(inFlight, fp, n2, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, n2), "expired in-flight record: " << describe(r));
    const auto c = fx.store().complete(inFlight, t2, response("late"), 100 * u);
    BOOST_TEST(isFenced(c), "stale owner of an expired record: " << describe(c));
}

// 22. purgeExpired removes only expired records: live in-flight and completed records survive, and no
//     expired record is returned afterwards (Redis, expiring natively, may report 0).
BOOST_AUTO_TEST_CASE_TEMPLATE(purgeRemovesOnlyExpiredRecords, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto fp = fingerprintOf("purge");
    const auto liveFlight = ids.next(), liveDone = ids.next(), deadDone = ids.next(), deadFlight = ids.next();
    const auto a = newToken(), b = newToken(), c = newToken(), d = newToken();
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(liveFlight, fp, a, 50 * u, 100 * u), a));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(liveDone, fp, b, u, 100 * u), b));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(deadDone, fp, c, u, 100 * u), c));
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(deadFlight, fp, d, u, 2 * u), d));
    const auto kept = response("kept");
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(liveDone, b, kept, 100 * u)));
    BOOST_TEST_REQUIRE(isOk(fx.store().complete(deadDone, c, response("gone"), 2 * u)));
    fx.advance(wellPast<Fx>(2 * u));

    for (int round = 0; round < 10'000; ++round) {
        const auto n = fx.store().purgeExpired(1000);
        BOOST_TEST_REQUIRE(n.has_value(), describe(n));
        if (*n == 0) break;
    }
    auto r = fx.store().begin(liveFlight, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(as<InProgress>(r), "live in-flight record: " << describe(r));
    r = fx.store().begin(liveDone, fp, newToken(), 10 * u, 100 * u);
    BOOST_TEST(isDoneWith(r, kept), "live completed record: " << describe(r));
    const auto n1 = newToken(), n2 = newToken();
    r = fx.store().begin(deadDone, fp, n1, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, n1), "expired completed record: " << describe(r));
    r = fx.store().begin(deadFlight, fp, n2, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, n2), "expired in-flight record: " << describe(r));
}

// Amendment: an in-flight record that is never completed keeps existing (Abandoned once its lease is
// over) for its retention TTL counted from begin, and disappears after it, not before.
BOOST_AUTO_TEST_CASE_TEMPLATE(inFlightRecordLivesForRetentionFromBegin, Fx, StoreFixtures) {
    Fx fx;
    Ids ids(Fx::kName);
    const Millis u = Fx::kTtlUnit;
    const auto id = ids.next();
    const auto fp = fingerprintOf("retention");
    const auto t = newToken();
    const Millis retention = 6 * u;
    BOOST_TEST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t, u, retention), t));
    fx.advance(justBefore<Fx>(retention));
    auto r = fx.store().begin(id, fp, newToken(), 10 * u, 100 * u);
    const Abandoned* ab = as<Abandoned>(r);
    BOOST_TEST((ab && ab->token == t), "before the retention TTL: " << describe(r));
    fx.advance(wellPast<Fx>(retention) - justBefore<Fx>(retention));
    const auto next = newToken();
    r = fx.store().begin(id, fp, next, 10 * u, 100 * u);
    BOOST_TEST(isOwnedBy(r, next), "after the retention TTL: " << describe(r));
}

#endif  // IDEM_STORE_CONFORMANCE_CASES_INCLUDED
