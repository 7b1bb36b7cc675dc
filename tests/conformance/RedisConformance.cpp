// The store conformance suite against one real redis-server (CTest fixture `redis`,
// tests/support/redis-services.sh), plus Redis-specific cases: the record layout, error classification,
// NOSCRIPT recovery after SCRIPT FLUSH, case 24 (memory full under noeviction), the maxmemory-policy check,
// recovery after a Redis restart without rebuilding the store, AUTH, and the pool's bounds and timeouts.
//
// Every RedisFx uses its own key prefix; record ids are unique per run, so runs never share records.
// Faults that the shared server must not see (memory full, restarts, passwords) get a redis-server of their
// own (RedisProcess). A missing service throws: the tests fail, never skip.

#define BOOST_TEST_MODULE conformance_redis
#include "tests/conformance/StoreConformanceSupport.h"

#include "storage/RedisConnection.h"
#include "storage/RedisPool.h"
#include "storage/RedisStore.h"
#include "tests/conformance/RedisTestSupport.h"
#include "tests/support/FaultProxy.h"

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace idem::test {

using ReplayRead = storage::RedisStoreConfig::ReplayRead;

/// The conformance fixture: a fresh store with its own key prefix on the fixture server. The suite runs
/// twice: with the default replay_read (auto: the begin script decides every begin at the suite's low
/// replay share) and with replay_read always (a plain HMGET settles completed records first).
template <ReplayRead Mode>
struct RedisFxOf {
    static constexpr const char* kName = Mode == ReplayRead::Always ? "redis-replay-read" : "redis";
    static constexpr bool kNetworked = true;
    static constexpr Millis kTtlUnit{300};
    static constexpr std::size_t kMaxResponseBytes = kMinConformanceResponseBytes;

    RedisFxOf() : address_(redistest::standaloneService()), prefix_(redistest::uniquePrefix()) {
        store_ = storage::makeRedisStore(config(address_), redistest::limits());
    }

    storage::Store& store() { return *store_; }
    void advance(Millis d) { std::this_thread::sleep_for(d); }

    /// The same kind of store at a closed port: constructing it does not throw, every call fails fast.
    std::unique_ptr<storage::Store> makeUnreachable() {
        return storage::makeRedisStore(config({"127.0.0.1", redistest::unusedPort()}), redistest::limits());
    }
    /// The same records reached through 127.0.0.1:proxyPort (a FaultProxy in front of the fixture server).
    std::unique_ptr<storage::Store> makeVia(std::uint16_t proxyPort) {
        return storage::makeRedisStore(config({"127.0.0.1", proxyPort}), redistest::limits());
    }
    std::pair<std::string, std::uint16_t> endpoint() { return {address_.host, address_.port}; }

    const std::string& prefix() const { return prefix_; }
    storage::RedisStoreConfig config(storage::HostPort address) const {
        auto c = redistest::standaloneConfig(prefix_, std::move(address));
        c.replayRead = Mode;
        return c;
    }

private:
    storage::HostPort address_;
    std::string prefix_;
    std::unique_ptr<storage::Store> store_;
};

using RedisFx = RedisFxOf<ReplayRead::Auto>;
using StoreFixtures = std::tuple<RedisFx, RedisFxOf<ReplayRead::Always>>;

BOOST_AUTO_TEST_SUITE(store_conformance)
#include "tests/conformance/StoreConformanceCases.h"
BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------------
// Redis-specific cases.

namespace {

using redistest::Admin;
using redistest::recordKey;
using Kind = StoreError::Kind;

constexpr Millis kLongLease{30'000};
constexpr Millis kLongRetention{60'000};

// hiredis/read.h, which the tests do not include: REDIS_ERR_IO and REDIS_ERR_EOF.
constexpr int kHiredisErrIo = 1;
constexpr int kHiredisErrEof = 3;

std::string field(Admin& a, const std::string& key, const std::string& name) {
    auto r = a.ok({"HGET", key, name});
    return r.isString() ? r.str() : std::string("<nil>");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_specific)

// Error replies and transport failures map to routing decisions and StoreError kinds in one place.
BOOST_AUTO_TEST_CASE(error_classification) {
    using storage::RedisErrorClass;
    auto moved = storage::classifyErrorReply("MOVED 3999 127.0.0.1:6381");
    BOOST_TEST((moved.kind == RedisErrorClass::Kind::Moved));
    BOOST_TEST(moved.slot == 3999);
    BOOST_TEST((moved.target == storage::RedisEndpoint{"127.0.0.1", 6381}));
    auto ask = storage::classifyErrorReply("ASK 16383 ::1:7000");
    BOOST_TEST((ask.kind == RedisErrorClass::Kind::Ask));
    BOOST_TEST(ask.slot == 16383);
    BOOST_TEST(ask.target.host == "::1");
    BOOST_TEST(ask.target.port == 7000);
    auto sameHost = storage::classifyErrorReply("MOVED 12 :7001");
    BOOST_TEST((sameHost.kind == RedisErrorClass::Kind::Moved));
    BOOST_TEST(sameHost.target.host.empty());
    BOOST_TEST((storage::classifyErrorReply("MOVED 99999 h:1").kind == RedisErrorClass::Kind::Other));
    BOOST_TEST((storage::classifyErrorReply("TRYAGAIN Multiple keys request during rehashing of slot").kind ==
                RedisErrorClass::Kind::TryAgain));
    BOOST_TEST((storage::classifyErrorReply("CLUSTERDOWN The cluster is down").kind ==
                RedisErrorClass::Kind::ClusterDown));
    BOOST_TEST((storage::classifyErrorReply("NOSCRIPT No matching script. Please use EVAL.").kind ==
                RedisErrorClass::Kind::NoScript));
    BOOST_TEST((storage::classifyErrorReply("ERR unknown command").kind == RedisErrorClass::Kind::Other));

    for (const char* refusal : {"OOM command not allowed when used memory > 'maxmemory'.",
                                "READONLY You can't write against a read only replica.",
                                "LOADING Redis is loading the dataset in memory", "MASTERDOWN Link with MASTER is down",
                                "CLUSTERDOWN The cluster is down", "ERR something else"}) {
        BOOST_TEST((storage::mapErrorReply(refusal).kind == Kind::Unavailable), refusal);
    }
    BOOST_TEST((storage::mapErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value").kind ==
                Kind::Corrupt));

    BOOST_TEST((storage::mapTransportError(kHiredisErrIo, "Resource temporarily unavailable", EAGAIN, false).kind ==
                Kind::Timeout));
    BOOST_TEST((storage::mapTransportError(kHiredisErrIo, "Connection reset by peer", ECONNRESET, false).kind ==
                Kind::Unavailable));
    BOOST_TEST((storage::mapTransportError(kHiredisErrEof, "Server closed the connection", 0, false).kind ==
                Kind::Unavailable));
    BOOST_TEST((storage::mapTransportError(kHiredisErrIo, "Connection refused", ECONNREFUSED, true).kind ==
                Kind::Unavailable));
    BOOST_TEST((storage::mapTransportError(kHiredisErrIo, "Connection timed out", ETIMEDOUT, true).kind ==
                Kind::Unavailable));
}

// One hash per record at <prefix>{<id>} with the documented fields; the key's TTL is the retention from
// begin, then the final TTL from complete; small records keep the compact listpack encoding.
BOOST_AUTO_TEST_CASE(record_layout_is_one_hash_per_record) {
    RedisFx fx;
    Admin admin(redistest::standaloneService());
    const storage::RecordId id = hashParts({runId(), "layout"});
    const auto key = recordKey(fx.prefix(), id);
    const auto fp = fingerprintOf("layout");
    const auto tok = newToken();
    BOOST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, tok, kLongLease, kLongRetention), tok));
    BOOST_TEST(admin.text({"TYPE", key}) == "hash");
    BOOST_TEST(field(admin, key, "st") == "P");
    BOOST_TEST(field(admin, key, "tok") == tok);
    BOOST_TEST(field(admin, key, "fp") == fp);
    BOOST_TEST(field(admin, key, "fence") == "1");
    const auto time = admin.ok({"TIME"});
    const long long nowMs = std::stoll(time.array()[0].str()) * 1000 + std::stoll(time.array()[1].str()) / 1000;
    const long long lease = std::stoll(field(admin, key, "lease"));
    BOOST_TEST(lease > nowMs);
    BOOST_TEST(lease <= nowMs + kLongLease.count());
    auto pttl = admin.integer({"PTTL", key});
    BOOST_TEST(pttl > kLongLease.count());  // the retention, not the lease
    BOOST_TEST(pttl <= kLongRetention.count());

    StoredResponse resp = response("layout");
    BOOST_REQUIRE(isOk(fx.store().complete(id, tok, resp, Millis{5000})));
    BOOST_TEST(field(admin, key, "st") == "C");
    BOOST_TEST(field(admin, key, "code") == "201");
    BOOST_TEST(field(admin, key, "hasbody") == "1");
    BOOST_TEST(field(admin, key, "body") == *resp.body);
    BOOST_TEST((field(admin, key, "hdr") == storage::encodeResponseMeta(resp)));
    pttl = admin.integer({"PTTL", key});
    BOOST_TEST(pttl > 0);
    BOOST_TEST(pttl <= 5000);
    BOOST_TEST(admin.text({"OBJECT", "ENCODING", key}) == "listpack");
}

// replay_read: `always` settles a completed record (replay or mismatch) and any record under another
// fingerprint with one plain HMGET and no script; everything else still runs the begin script. `never`
// reads nothing first; `auto` reads first only once most recent begins found a completed record, and
// stops again when misses return. Counted on a redis-server of this test's own (INFO commandstats).
BOOST_AUTO_TEST_CASE(replay_read_settles_completed_records_without_a_script) {
    redistest::RedisProcess server;
    Admin admin(server.address());
    const auto calls = [&](const std::string& cmd) {
        return admin.infoCounter("commandstats", "cmdstat_" + cmd, "calls");
    };
    // Every script here (begin, complete) runs exactly one HMGET of its own: the plain reads are the rest.
    const auto scripts = [&] { return calls("evalsha") + calls("eval"); };
    const auto reads = [&] { return calls("hmget") - scripts(); };
    const auto storeWith = [&](ReplayRead mode) {
        auto cfg = redistest::standaloneConfig(redistest::uniquePrefix(), server.address());
        cfg.replayRead = mode;
        return storage::makeRedisStore(cfg, redistest::limits());
    };
    const auto fp = fingerprintOf("replay-read"), otherFp = fingerprintOf("replay-read-other");
    const StoredResponse answer = response("replayed");
    {
        // Load both scripts (EVAL after NOSCRIPT) so that every later script is one EVALSHA.
        auto warm = storeWith(ReplayRead::Never);
        const auto t = newToken();
        BOOST_REQUIRE(isOwnedBy(warm->begin("rr-warm", fp, t, kLongLease, kLongRetention), t));
        BOOST_REQUIRE(isOk(warm->complete("rr-warm", t, answer, kLongRetention)));
    }
    {
        auto store = storeWith(ReplayRead::Always);
        const auto owner = newToken();
        // Absent: one read, then the script creates the record.
        auto r0 = reads(), s0 = scripts();
        BOOST_TEST(isOwnedBy(store->begin("rr-1", fp, owner, kLongLease, kLongRetention), owner));
        BOOST_TEST(reads() == r0 + 1);
        BOOST_TEST(scripts() == s0 + 1);
        // In flight under this fingerprint: the script judges the lease (busy).
        auto busy = store->begin("rr-1", fp, newToken(), kLongLease, kLongRetention);
        BOOST_TEST(as<InProgress>(busy), describe(busy));
        BOOST_TEST(scripts() == s0 + 2);
        // In flight under another fingerprint: settled by the read.
        auto other = store->begin("rr-1", otherFp, newToken(), kLongLease, kLongRetention);
        BOOST_TEST(as<Mismatch>(other), describe(other));
        BOOST_TEST(scripts() == s0 + 2);
        BOOST_TEST(reads() == r0 + 3);

        BOOST_REQUIRE(isOk(store->complete("rr-1", owner, answer, kLongRetention)));
        const auto r1 = reads(), s1 = scripts();
        for (int i = 0; i < 3; ++i)
            BOOST_TEST(isDoneWith(store->begin("rr-1", fp, newToken(), kLongLease, kLongRetention), answer));
        auto late = store->begin("rr-1", otherFp, newToken(), kLongLease, kLongRetention);
        BOOST_TEST(as<Mismatch>(late), describe(late));
        BOOST_TEST(reads() == r1 + 4);
        BOOST_TEST(scripts() == s1);  // no script for a completed record
    }
    {
        auto store = storeWith(ReplayRead::Never);
        const auto owner = newToken();
        BOOST_REQUIRE(isOwnedBy(store->begin("rr-2", fp, owner, kLongLease, kLongRetention), owner));
        BOOST_REQUIRE(isOk(store->complete("rr-2", owner, answer, kLongRetention)));
        const auto r0 = reads();
        for (int i = 0; i < 100; ++i)
            BOOST_TEST(isDoneWith(store->begin("rr-2", fp, newToken(), kLongLease, kLongRetention), answer));
        BOOST_TEST(reads() == r0);
    }
    {
        auto store = storeWith(ReplayRead::Auto);
        const auto owner = newToken();
        BOOST_REQUIRE(isOwnedBy(store->begin("rr-3", fp, owner, kLongLease, kLongRetention), owner));
        BOOST_REQUIRE(isOk(store->complete("rr-3", owner, answer, kLongRetention)));
        // A run of replays: the first ones go through the script, then the read takes over.
        const auto r0 = reads();
        for (int i = 0; i < 200; ++i)
            BOOST_TEST(isDoneWith(store->begin("rr-3", fp, newToken(), kLongLease, kLongRetention), answer));
        const auto readsDuringReplays = reads() - r0;
        BOOST_TEST(readsDuringReplays > 100);
        BOOST_TEST(readsDuringReplays < 200);
        // A run of new keys: the reads stop once misses dominate again.
        for (int i = 0; i < 200; ++i) {
            const auto t = newToken();
            BOOST_TEST(isOwnedBy(store->begin("rr-new-" + std::to_string(i), fp, t, kLongLease, kLongRetention), t));
        }
        const auto r1 = reads();
        for (int i = 0; i < 50; ++i) {
            const auto t = newToken();
            BOOST_TEST(isOwnedBy(store->begin("rr-more-" + std::to_string(i), fp, t, kLongLease, kLongRetention), t));
        }
        BOOST_TEST(reads() == r1);
    }
}

// Something unreadable at a record's address is Corrupt, never a miss that would let the request run again:
// a value of another type, or a completed record whose header block does not decode; on both read paths.
BOOST_AUTO_TEST_CASE_TEMPLATE(unreadable_records_are_corrupt_never_a_miss, Fx, StoreFixtures) {
    Fx fx;
    Admin admin(redistest::standaloneService());
    const auto fp = fingerprintOf("corrupt");
    const storage::RecordId foreign = hashParts({runId(), "foreign"}), garbled = hashParts({runId(), "garbled"});
    admin.ok({"SET", recordKey(fx.prefix(), foreign), "not a hash", "PX", "60000"});
    auto r = fx.store().begin(foreign, fp, newToken(), kLongLease, kLongRetention);
    BOOST_TEST(failsWith(r, Kind::Corrupt), describe(r));
    auto c = fx.store().complete(foreign, newToken(), response("x"), kLongRetention);
    BOOST_TEST(failsWith(c, Kind::Corrupt), describe(c));

    admin.ok({"HSET", recordKey(fx.prefix(), garbled), "st", "C", "fp", fp, "tok", "t", "fence", "1", "code", "200",
              "hdr", "garbage", "hasbody", "0", "body", ""});
    admin.ok({"PEXPIRE", recordKey(fx.prefix(), garbled), "60000"});
    r = fx.store().begin(garbled, fp, newToken(), kLongLease, kLongRetention);
    BOOST_TEST(failsWith(r, Kind::Corrupt), describe(r));
}

// The script cache is lost on restart, failover or SCRIPT FLUSH: every operation falls back to EVAL and
// succeeds.
BOOST_AUTO_TEST_CASE(noscript_recovery_after_script_flush) {
    RedisFx fx;
    Admin admin(redistest::standaloneService());
    Ids ids("redis-noscript");
    const auto fp = fingerprintOf("noscript");
    const auto warm = newToken();
    BOOST_REQUIRE(isOwnedBy(fx.store().begin(ids.next(), fp, warm, kLongLease, kLongRetention), warm));

    admin.ok({"SCRIPT", "FLUSH"});
    const auto evalsBefore = admin.infoCounter("commandstats", "cmdstat_eval", "calls");
    const auto id = ids.next();
    const auto tok = newToken();
    auto r = fx.store().begin(id, fp, tok, kLongLease, kLongRetention);
    BOOST_TEST(isOwnedBy(r, tok), describe(r));
    BOOST_TEST(admin.infoCounter("commandstats", "cmdstat_eval", "calls") > evalsBefore);

    for (int round = 0; round < 2; ++round) {  // after another flush, and with the cache warm again
        admin.ok({"SCRIPT", "FLUSH"});
        const auto other = ids.next();
        const auto t2 = newToken();
        BOOST_TEST(isOwnedBy(fx.store().begin(other, fp, t2, kLongLease, kLongRetention), t2));
        admin.ok({"SCRIPT", "FLUSH"});
        BOOST_TEST(isTrue(fx.store().extend(other, t2, kLongLease)));
        admin.ok({"SCRIPT", "FLUSH"});
        BOOST_TEST(isTrue(fx.store().release(other, t2)));
        admin.ok({"SCRIPT", "FLUSH"});
        const auto t3 = newToken();
        BOOST_TEST(isOwnedBy(fx.store().takeover(other, fp, t2, t3, kLongLease, kLongRetention), t3));
        admin.ok({"SCRIPT", "FLUSH"});
        BOOST_TEST(isOk(fx.store().complete(other, t3, response("ns"), kLongRetention)));
        BOOST_TEST(isDoneWith(fx.store().begin(other, fp, newToken(), kLongLease, kLongRetention), response("ns")));
    }
}

// 24. Memory full under noeviction: begin and complete fail with Unavailable (OOM) and write nothing;
//     once memory is available again the same store works. A server of its own, so nobody else sees the
//     fault. maxmemory is set below what the data already uses, so every write is refused whatever the
//     size of the request buffers.
BOOST_AUTO_TEST_CASE(memory_full_under_noeviction_is_unavailable_without_partial_record) {
    redistest::RedisProcess server;
    const std::string prefix = redistest::uniquePrefix();
    auto store = storage::makeRedisStore(redistest::standaloneConfig(prefix, server.address()), redistest::limits());
    Admin admin(server.address());
    const auto fp = fingerprintOf("oom");
    const storage::RecordId inFlight = "oom-in-flight", fresh = "oom-fresh";
    const auto owner = newToken();
    BOOST_REQUIRE(isOwnedBy(store->begin(inFlight, fp, owner, kLongLease, kLongRetention), owner));

    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 32; ++i) admin.ok({"SET", "filler:" + std::to_string(i), chunk});  // 2 MiB of data
    const auto used = admin.infoCounter("memory", "used_memory", "");
    BOOST_REQUIRE(used > (2 << 20));
    admin.ok({"CONFIG", "SET", "maxmemory", std::to_string(used - (1 << 20))});
    auto probe = admin.cmd({"SET", "probe", "x"});
    BOOST_REQUIRE_MESSAGE(probe.isError() && probe.errorText().rfind("OOM", 0) == 0, "memory is not full");

    const auto b = store->begin(fresh, fp, newToken(), kLongLease, kLongRetention);
    BOOST_TEST(failsWith(b, Kind::Unavailable), describe(b));
    BOOST_TEST((!b && b.error().message.find("OOM") != std::string::npos));
    BOOST_TEST(admin.integer({"EXISTS", recordKey(prefix, fresh)}) == 0);  // no partial record

    StoredResponse big = response("oom");
    big.body = std::string(256 * 1024, 'b');
    const auto c = store->complete(inFlight, owner, big, kLongRetention);
    BOOST_TEST(failsWith(c, Kind::Unavailable), describe(c));
    BOOST_TEST(field(admin, recordKey(prefix, inFlight), "st") == "P");  // untouched
    BOOST_TEST(admin.integer({"HEXISTS", recordKey(prefix, inFlight), "body"}) == 0);
    const auto busy = store->begin(inFlight, fp, newToken(), kLongLease, kLongRetention);
    BOOST_TEST(as<InProgress>(busy), describe(busy));  // reads still work

    admin.ok({"CONFIG", "SET", "maxmemory", "0"});
    const auto t2 = newToken();
    auto r = store->begin(fresh, fp, t2, kLongLease, kLongRetention);
    BOOST_TEST(isOwnedBy(r, t2), describe(r));
    BOOST_TEST(isOk(store->complete(inFlight, owner, big, kLongRetention)));
    BOOST_TEST(isDoneWith(store->begin(inFlight, fp, newToken(), kLongLease, kLongRetention), big));
}

// maxmemory-policy: anything but noeviction is a warning naming the risk, or fatal with requireNoEviction.
BOOST_AUTO_TEST_CASE(eviction_policy_is_warned_about_or_fatal) {
    const auto address = redistest::standaloneService();
    auto cfg = redistest::standaloneConfig(redistest::uniquePrefix(), address);
    {
        redistest::CerrCapture quiet;
        cfg.requireNoEviction = true;
        BOOST_CHECK_NO_THROW(storage::makeRedisStore(cfg, redistest::limits()));
        BOOST_TEST(quiet.text().empty(), quiet.text());
    }
    {
        redistest::ConfigGuard policy(address, "maxmemory-policy");
        policy.set("volatile-lru");
        {
            redistest::CerrCapture warned;
            cfg.requireNoEviction = false;
            std::unique_ptr<storage::Store> store;
            BOOST_CHECK_NO_THROW(store = storage::makeRedisStore(cfg, redistest::limits()));
            const auto text = warned.text();
            BOOST_TEST(text.find("volatile-lru") != std::string::npos, text);
            BOOST_TEST(text.find("noeviction") != std::string::npos, text);
            BOOST_TEST(text.find("twice") != std::string::npos, text);
            const auto tok = newToken();
            BOOST_REQUIRE(store);
            const auto r = store->begin(hashParts({runId(), "policy"}), fingerprintOf("p"), tok, kLongLease,
                                        kLongRetention);
            BOOST_TEST(isOwnedBy(r, tok), describe(r));
        }
        cfg.requireNoEviction = true;
        BOOST_CHECK_THROW(storage::makeRedisStore(cfg, redistest::limits()), std::runtime_error);
    }
    BOOST_CHECK_NO_THROW(storage::makeRedisStore(cfg, redistest::limits()));
}

// A Redis restart: while it is down every call fails with Unavailable (never Owned); once it is back the
// same store object works again, with no rebuild and no stale connection reused.
BOOST_AUTO_TEST_CASE(store_recovers_after_redis_restart) {
    redistest::RedisProcess server;
    auto cfg = redistest::standaloneConfig(redistest::uniquePrefix(), server.address());
    cfg.poolSize = 4;
    auto store = storage::makeRedisStore(cfg, redistest::limits());
    const auto fp = fingerprintOf("restart");
    const auto tok = newToken();
    BOOST_REQUIRE(isOwnedBy(store->begin("restart-1", fp, tok, kLongLease, kLongRetention), tok));
    // Several pooled connections, all of which die with the server.
    {
        std::vector<std::jthread> threads;
        for (int i = 0; i < 4; ++i) threads.emplace_back([&] { (void)store->ping(); });
    }

    server.stop();
    for (int i = 0; i < 3; ++i) {
        const auto p = store->ping();
        BOOST_TEST(failsWith(p, Kind::Unavailable), describe(p));
        const auto b = store->begin("restart-2", fp, newToken(), kLongLease, kLongRetention);
        BOOST_TEST(failsWith(b, Kind::Unavailable), describe(b));
        const auto c = store->complete("restart-1", tok, response("r"), kLongRetention);
        BOOST_TEST(failsWith(c, Kind::Unavailable), describe(c));
    }

    server.restart();
    const auto p = store->ping();
    BOOST_TEST(p.has_value(), describe(p));
    const auto t2 = newToken();
    auto r = store->begin("restart-2", fp, t2, kLongLease, kLongRetention);
    BOOST_TEST(isOwnedBy(r, t2), describe(r));
    // The server came back empty (no persistence): the old record is gone, its owner is fenced.
    BOOST_TEST(isFenced(store->complete("restart-1", tok, response("r"), kLongRetention)));
}

// Restart without any call while the server is down: the idle pooled connections are stale, and the first
// calls after the restart must not fail because of them.
BOOST_AUTO_TEST_CASE(stale_pooled_connections_are_not_reused_after_restart) {
    redistest::RedisProcess server;
    auto cfg = redistest::standaloneConfig(redistest::uniquePrefix(), server.address());
    cfg.poolSize = 4;
    auto store = storage::makeRedisStore(cfg, redistest::limits());
    {
        std::vector<std::jthread> threads;
        for (int i = 0; i < 4; ++i) threads.emplace_back([&] { (void)store->ping(); });
    }
    server.restart();
    for (int i = 0; i < 8; ++i) {
        const auto tok = newToken();
        const auto r = store->begin("stale-" + std::to_string(i), fingerprintOf("s"), tok, kLongLease, kLongRetention);
        BOOST_TEST(isOwnedBy(r, tok), describe(r));
    }
}

// AUTH: a password-protected server works with the password and refuses (Unavailable) without it.
BOOST_AUTO_TEST_CASE(auth_with_password) {
    redistest::RedisProcess server({"--requirepass", "s3cret pass"});
    auto cfg = redistest::standaloneConfig(redistest::uniquePrefix(), server.address());
    cfg.password = "s3cret pass";
    auto store = storage::makeRedisStore(cfg, redistest::limits());
    const auto tok = newToken();
    auto r = store->begin("auth-1", fingerprintOf("a"), tok, kLongLease, kLongRetention);
    BOOST_TEST(isOwnedBy(r, tok), describe(r));

    cfg.password.clear();
    redistest::CerrCapture warned;  // the policy cannot be read without AUTH
    auto anonymous = storage::makeRedisStore(cfg, redistest::limits());
    r = anonymous->begin("auth-2", fingerprintOf("a"), newToken(), kLongLease, kLongRetention);
    BOOST_TEST(failsWith(r, Kind::Unavailable), describe(r));
    cfg.password = "wrong";
    auto wrong = storage::makeRedisStore(cfg, redistest::limits());
    r = wrong->begin("auth-2", fingerprintOf("a"), newToken(), kLongLease, kLongRetention);
    BOOST_TEST(failsWith(r, Kind::Unavailable), describe(r));
    BOOST_TEST((!r && r.error().message.find("s3cret") == std::string::npos));  // never printed
}

// The pool: bounded (a caller waits at most the given deadline, then Unavailable); a command timeout is
// Timeout and breaks the connection, which is dropped; the next acquire opens a fresh one.
BOOST_AUTO_TEST_CASE(pool_bounds_and_command_timeouts) {
    const auto address = redistest::standaloneService();
    storage::RedisConnectionOptions o;
    o.connectTimeout = Millis{500};
    o.commandTimeout = Millis{150};
    auto pool = storage::RedisPool::create({address.host, address.port}, o, 1);
    using Clock = storage::RedisPool::Clock;
    {
        auto held = pool->acquire(Clock::now() + Millis{500});
        BOOST_REQUIRE(held.has_value());
        auto waited = pool->acquire(Clock::now() + Millis{100});
        BOOST_REQUIRE(!waited.has_value());
        BOOST_TEST((waited.error().kind == Kind::Unavailable));

        // BLPOP on an empty list blocks server-side for 2 s: the 150 ms command timeout fires first.
        auto r = (**held).command({"BLPOP", "idemtest:" + runId() + ":never", "2"});
        BOOST_REQUIRE(!r.has_value());
        BOOST_TEST((r.error().kind == Kind::Timeout), r.error().message);
        BOOST_TEST((**held).broken());
        auto again = (**held).command({"PING"});
        BOOST_TEST(!again.has_value());  // a broken connection is never used again
    }
    auto fresh = pool->acquire(Clock::now() + Millis{500});
    BOOST_REQUIRE(fresh.has_value());
    auto pong = (**fresh).command({"PING"});
    BOOST_TEST((pong && pong->text() == "PONG"));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace idem::test
