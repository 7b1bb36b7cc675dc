// The store conformance suite against a real 3-master Redis Cluster (CTest fixture `cluster`,
// tests/support/redis-services.sh), plus cluster-specific cases (STORE-DESIGN §6 case 23): CRC16 and hash
// tags cross-checked against CLUSTER KEYSLOT, every master used, NOSCRIPT recovery after SCRIPT FLUSH on
// every node, a slot migration under traffic (MOVED and ASK), the maxmemory-policy check on every master,
// and a seed that is down.
//
// The suite's fixture (ClusterFx) puts a random hash tag in its key prefix, so that all records of one
// fixture instance live in one slot, on the master endpoint() names: the fault-proxy cases (19, 20) need
// all of a store's traffic to pass through one proxy in front of one node. Different instances draw
// different tags, so the suite as a whole runs on every master; the cluster-specific cases use untagged
// prefixes and check the spread. A missing service throws: the tests fail, never skip.

#define BOOST_TEST_MODULE conformance_cluster
#include "tests/conformance/StoreConformanceSupport.h"

#include "storage/RedisClusterRouter.h"
#include "storage/RedisDispatcher.h"
#include "storage/RedisSlots.h"
#include "storage/RedisStore.h"
#include "tests/conformance/RedisTestSupport.h"
#include "tests/support/FaultProxy.h"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace idem::test {

namespace clustertest {

using storage::RedisEndpoint;
using storage::RedisSlotRange;

/// The slot map as `node` sees it.
inline std::vector<RedisSlotRange> slotMap(const RedisEndpoint& node) {
    redistest::Admin admin(node);
    auto ranges = storage::parseClusterSlots(admin.ok({"CLUSTER", "SLOTS"}), node.host);
    if (!ranges) throw std::runtime_error("CLUSTER SLOTS on " + node.str() + ": " + ranges.error().message);
    return *ranges;
}

inline RedisEndpoint toEndpoint(const storage::HostPort& h) { return RedisEndpoint{h.host, h.port}; }

/// The master serving `slot`, as the first reachable fixture node sees it.
inline RedisEndpoint masterOf(std::uint16_t slot) {
    for (const auto& range : slotMap(toEndpoint(redistest::clusterService().front())))
        if (range.first <= slot && slot <= range.last) return range.master;
    throw std::runtime_error("no master serves slot " + std::to_string(slot));
}

/// Every master of the cluster (each once).
inline std::vector<RedisEndpoint> masters() {
    std::vector<RedisEndpoint> out;
    for (const auto& range : slotMap(toEndpoint(redistest::clusterService().front())))
        if (std::find(out.begin(), out.end(), range.master) == out.end()) out.push_back(range.master);
    return out;
}

}  // namespace clustertest

/// The conformance fixture: a fresh cluster store whose key prefix carries a random hash tag (see the top).
struct ClusterFx {
    static constexpr const char* kName = "redis-cluster";
    static constexpr bool kNetworked = true;
    static constexpr Millis kTtlUnit{300};
    static constexpr std::size_t kMaxResponseBytes = kMinConformanceResponseBytes;

    ClusterFx()
        : nodes_(redistest::clusterService()),
          prefix_("idemtest:{" + randomHex(8) + "}:"),
          master_(clustertest::masterOf(storage::keySlot(prefix_))) {
        store_ = storage::makeRedisClusterStore(redistest::clusterConfig(prefix_, nodes_), redistest::limits());
    }

    storage::Store& store() { return *store_; }
    void advance(Millis d) { std::this_thread::sleep_for(d); }

    /// The same kind of store whose only seed is a closed port: it never learns the slot map.
    std::unique_ptr<storage::Store> makeUnreachable() {
        return storage::makeRedisClusterStore(
            redistest::clusterConfig(prefix_, {{"127.0.0.1", redistest::unusedPort()}}), redistest::limits());
    }
    /// The same records through 127.0.0.1:proxyPort, a FaultProxy in front of endpoint(): the proxy is the
    /// only seed, and the node it fronts is reached through it whatever address the cluster announces.
    /// No periodic refresh, so the store makes no traffic of its own.
    std::unique_ptr<storage::Store> makeVia(std::uint16_t proxyPort) {
        auto cfg = redistest::clusterConfig(prefix_, {{"127.0.0.1", proxyPort}});
        cfg.slotRefreshInterval = std::chrono::hours(1);
        const storage::RedisEndpoint fronted = master_, proxy{"127.0.0.1", proxyPort};
        auto router = std::make_unique<storage::RedisClusterRouter>(
            cfg, [fronted, proxy](const storage::RedisEndpoint& announced) {
                return announced == fronted ? proxy : announced;
            });
        return storage::makeRedisStoreWith(std::move(router), cfg, redistest::limits(), "redis-cluster");
    }
    /// The master that serves every record of this fixture.
    std::pair<std::string, std::uint16_t> endpoint() { return {master_.host, master_.port}; }

private:
    std::vector<storage::HostPort> nodes_;
    std::string prefix_;
    storage::RedisEndpoint master_;
    std::unique_ptr<storage::Store> store_;
};

using StoreFixtures = std::tuple<ClusterFx>;

BOOST_AUTO_TEST_SUITE(store_conformance)
#include "tests/conformance/StoreConformanceCases.h"
BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------------
// Cluster-specific cases.

namespace {

using redistest::Admin;
using redistest::recordKey;
using storage::RedisEndpoint;
using Kind = StoreError::Kind;

constexpr Millis kLongLease{30'000};
constexpr Millis kLongRetention{120'000};

/// `count` random record ids whose keys (under `prefix`) all hash to `slot`.
std::vector<storage::RecordId> idsInSlot(const std::string& prefix, std::uint16_t slot, std::size_t count) {
    std::vector<storage::RecordId> out;
    while (out.size() < count) {
        auto id = randomHex(32);
        if (storage::keySlot(recordKey(prefix, id)) == slot) out.push_back(std::move(id));
    }
    return out;
}

/// Keys under `prefix` on one node (SCAN, so the node's other keys do not matter).
std::size_t countKeys(const RedisEndpoint& node, const std::string& prefix) {
    Admin admin(node);
    std::size_t n = 0;
    std::string cursor = "0";
    do {
        auto r = admin.ok({"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
        cursor = r.array()[0].str();
        n += r.array()[1].array().size();
    } while (cursor != "0");
    return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cluster_specific)

// CRC16-XMODEM and hash tags follow the cluster spec; keySlot agrees with CLUSTER KEYSLOT.
BOOST_AUTO_TEST_CASE(key_slots_match_the_cluster) {
    BOOST_TEST(storage::crc16("123456789") == 0x31C3);
    BOOST_TEST(storage::crc16("") == 0);
    BOOST_TEST(storage::hashTag("{user1000}.following") == "user1000");
    BOOST_TEST(storage::hashTag("foo{}{bar}") == "foo{}{bar}");  // first tag empty: the whole key
    BOOST_TEST(storage::hashTag("foo{{bar}}zap") == "{bar");
    BOOST_TEST(storage::hashTag("foo{bar}{zap}") == "bar");
    BOOST_TEST(storage::hashTag("no tag}{") == "no tag}{");
    BOOST_TEST(storage::keySlot("{user1000}.following") == storage::keySlot("{user1000}.followers"));

    Admin admin(redistest::clusterService().front());
    const std::vector<std::string> keys = {
        "123456789",
        "{user1000}.following",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{}",
        "",
        std::string("bin\0\xff{\x01}", 8),
        recordKey("idem:v1:", hashParts({"tenant", "route", "key"})),
        recordKey("idem:v1:", "abc}{def"),
        recordKey("idemtest:{tag}:", "whatever"),
        "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
    };
    for (const auto& key : keys) {
        const auto expected = admin.integer({"CLUSTER", "KEYSLOT", key});
        BOOST_TEST(storage::keySlot(key) == expected, "key of " << key.size() << " bytes");
    }
    for (int i = 0; i < 200; ++i) {
        const auto key = recordKey("idem:v1:", randomHex(32));
        BOOST_TEST(storage::keySlot(key) == admin.integer({"CLUSTER", "KEYSLOT", key}));
    }
}

// Case 23: records spread over every master, each reachable through the router.
BOOST_AUTO_TEST_CASE(every_master_receives_records) {
    const std::string prefix = redistest::uniquePrefix();
    auto store = storage::makeRedisClusterStore(redistest::clusterConfig(prefix, redistest::clusterService()),
                                                redistest::limits());
    const auto fp = fingerprintOf("spread");
    constexpr int kRecords = 150;
    for (int i = 0; i < kRecords; ++i) {
        const auto id = hashParts({runId(), "spread", std::to_string(i)});
        const auto tok = newToken();
        BOOST_TEST_REQUIRE(isOwnedBy(store->begin(id, fp, tok, kLongLease, kLongRetention), tok));
        BOOST_TEST_REQUIRE(isOk(store->complete(id, tok, response(id), kLongRetention)));
    }
    const auto all = clustertest::masters();
    BOOST_TEST(all.size() == 3u);
    std::size_t total = 0;
    for (const auto& node : all) {
        const auto n = countKeys(node, prefix);
        BOOST_TEST(n > 0u, node.str() << " holds none of the records");
        BOOST_TEST(Admin(node).integer({"DBSIZE"}) > 0);
        total += n;
    }
    BOOST_TEST(total == static_cast<std::size_t>(kRecords));
    for (int i = 0; i < kRecords; ++i) {
        const auto id = hashParts({runId(), "spread", std::to_string(i)});
        BOOST_TEST(isDoneWith(store->begin(id, fp, newToken(), kLongLease, kLongRetention), response(id)));
    }
    BOOST_TEST(store->ping().has_value());
    BOOST_TEST(store->name() == "redis-cluster");
}

// Case 23: the script cache is per node and lost by SCRIPT FLUSH (and restarts, failovers): every node
// falls back to EVAL and every operation succeeds.
BOOST_AUTO_TEST_CASE(noscript_recovery_after_script_flush_on_every_node) {
    const std::string prefix = redistest::uniquePrefix();
    auto store = storage::makeRedisClusterStore(redistest::clusterConfig(prefix, redistest::clusterService()),
                                                redistest::limits());
    const auto fp = fingerprintOf("noscript");
    const auto warm = newToken();
    BOOST_REQUIRE(isOwnedBy(store->begin(hashParts({runId(), "ns-warm"}), fp, warm, kLongLease, kLongRetention), warm));

    const auto all = clustertest::masters();
    std::map<std::string, std::int64_t> evalsBefore;
    for (const auto& node : all) {
        Admin a(node);
        a.ok({"SCRIPT", "FLUSH"});
        evalsBefore[node.str()] = a.infoCounter("commandstats", "cmdstat_eval", "calls");
    }
    constexpr int kRecords = 60;  // every master gets some (a master with none: p < 1e-10)
    for (int i = 0; i < kRecords; ++i) {
        const auto id = hashParts({runId(), "ns", std::to_string(i)});
        const auto tok = newToken();
        auto r = store->begin(id, fp, tok, kLongLease, kLongRetention);
        BOOST_TEST_REQUIRE(isOwnedBy(r, tok), describe(r));
        BOOST_TEST(isTrue(store->extend(id, tok, kLongLease)));
        BOOST_TEST(isOk(store->complete(id, tok, response(id), kLongRetention)));
        BOOST_TEST(isDoneWith(store->begin(id, fp, newToken(), kLongLease, kLongRetention), response(id)));
    }
    for (const auto& node : all) {
        Admin a(node);
        BOOST_TEST(a.infoCounter("commandstats", "cmdstat_eval", "calls") > evalsBefore[node.str()],
                   node.str() << " never needed EVAL");
        a.ok({"SCRIPT", "FLUSH"});
    }
    // Flushed again, now mid-way for a record in flight.
    const auto id = hashParts({runId(), "ns-last"});
    const auto tok = newToken();
    BOOST_REQUIRE(isOwnedBy(store->begin(id, fp, tok, kLongLease, kLongRetention), tok));
    for (const auto& node : all) Admin(node).ok({"SCRIPT", "FLUSH"});
    BOOST_TEST(isTrue(store->release(id, tok)));
}

// Case 23: a slot migrates to another master while 4 threads run begin/complete/begin on keys in that slot.
// Every operation succeeds (ASK while the slot is migrating, MOVED afterwards), the slot ends on the target,
// and every record is Done there.
BOOST_AUTO_TEST_CASE(slot_migration_under_traffic) {
    const auto seeds = redistest::clusterService();
    const std::string prefix = redistest::uniquePrefix();
    auto cfg = redistest::clusterConfig(prefix, seeds);
    cfg.slotRefreshInterval = std::chrono::hours(1);  // the router learns of the move only by MOVED/ASK
    cfg.commandTimeout = Millis{2000};
    auto store = storage::makeRedisClusterStore(cfg, redistest::limits());

    const auto slot = storage::keySlot(recordKey(prefix, randomHex(32)));
    constexpr std::size_t kThreads = 4, kPerThread = 10;
    const auto ids = idsInSlot(prefix, slot, kThreads * kPerThread);
    const auto source = clustertest::masterOf(slot);
    RedisEndpoint target;
    for (const auto& m : clustertest::masters())
        if (!(m == source)) target = m;
    BOOST_REQUIRE(target.port != 0);
    Admin src(source), dst(target);
    const auto srcId = src.text({"CLUSTER", "MYID"});
    const auto dstId = dst.text({"CLUSTER", "MYID"});
    const auto asksBefore = src.infoCounter("errorstats", "errorstat_ASK", "count");
    const auto movedBefore = src.infoCounter("errorstats", "errorstat_MOVED", "count");
    BOOST_TEST_MESSAGE("migrating slot " << slot << " from " << source.str() << " to " << target.str());

    const auto fp = fingerprintOf("migration");
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> ops{0};
    std::array<std::atomic<int>, kThreads> passes{};
    std::mutex failuresMu;
    std::vector<std::string> failures;
    auto fail = [&](std::string what) {
        std::lock_guard lock(failuresMu);
        failures.push_back(std::move(what));
    };
    std::vector<std::jthread> workers;
    for (std::size_t w = 0; w < kThreads; ++w)
        workers.emplace_back([&, w] {
            for (int pass = 0; !stop.load(); ++pass) {
                for (std::size_t k = w; k < ids.size(); k += kThreads) {
                    const auto& id = ids[k];
                    if (pass == 0) {
                        const auto tok = newToken();
                        auto b = store->begin(id, fp, tok, kLongLease, kLongRetention);
                        if (!isOwnedBy(b, tok)) fail("begin " + id + ": " + describe(b));
                        auto c = store->complete(id, tok, response(id), kLongRetention);
                        if (!isOk(c)) fail("complete " + id + ": " + describe(c));
                        ops += 2;
                    } else {
                        auto b = store->begin(id, fp, newToken(), kLongLease, kLongRetention);
                        if (!isDoneWith(b, response(id))) fail("replay " + id + ": " + describe(b));
                        ++ops;
                    }
                }
                passes[w].store(pass + 1);
            }
        });
    auto waitForPasses = [&](int atLeast) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (;;) {
            bool all = true;
            for (const auto& p : passes) all = all && p.load() >= atLeast;
            if (all) return true;
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(Millis{5});
        }
    };
    BOOST_REQUIRE(waitForPasses(2));  // every record exists, on the source

    // The migration, as redis-cli --cluster reshard does it, slowly enough to interleave with the traffic.
    const auto slotText = std::to_string(slot);
    dst.ok({"CLUSTER", "SETSLOT", slotText, "IMPORTING", srcId});
    src.ok({"CLUSTER", "SETSLOT", slotText, "MIGRATING", dstId});
    std::size_t moved = 0;
    for (;;) {
        auto keys = src.ok({"CLUSTER", "GETKEYSINSLOT", slotText, "3"});
        if (keys.array().empty()) break;
        const std::string port = std::to_string(target.port);  // RedisArgv holds views: keep the text alive
        storage::RedisArgv migrate{"MIGRATE", target.host, port, "", "0", "5000", "KEYS"};
        for (const auto& k : keys.array()) migrate.push_back(k.str());
        src.ok(migrate);
        moved += keys.array().size();
        std::this_thread::sleep_for(Millis{15});
    }
    dst.ok({"CLUSTER", "SETSLOT", slotText, "NODE", dstId});
    src.ok({"CLUSTER", "SETSLOT", slotText, "NODE", dstId});
    for (const auto& m : clustertest::masters())
        if (!(m == source) && !(m == target)) Admin(m).ok({"CLUSTER", "SETSLOT", slotText, "NODE", dstId});

    int now = 0;
    for (const auto& p : passes) now = std::max(now, p.load());
    BOOST_TEST(waitForPasses(now + 3));  // traffic after the move: the first call of each thread meets MOVED
    stop = true;
    workers.clear();

    BOOST_TEST(moved >= ids.size());
    {
        std::lock_guard lock(failuresMu);
        BOOST_TEST(failures.empty(), failures.size() << " failed operations of " << ops.load()
                                                     << (failures.empty() ? "" : "; first: " + failures.front()));
    }
    BOOST_TEST(src.integer({"CLUSTER", "COUNTKEYSINSLOT", slotText}) == 0);
    BOOST_TEST(dst.integer({"CLUSTER", "COUNTKEYSINSLOT", slotText}) >= static_cast<std::int64_t>(ids.size()));
    for (const auto& m : clustertest::masters()) {
        for (const auto& range : clustertest::slotMap(m))
            if (range.first <= slot && slot <= range.last)
                BOOST_TEST((range.master == target), m.str() << " maps slot " << slot << " to " << range.master.str());
    }
    BOOST_TEST(src.infoCounter("errorstats", "errorstat_ASK", "count") > asksBefore);
    BOOST_TEST(src.infoCounter("errorstats", "errorstat_MOVED", "count") > movedBefore);

    auto fresh = storage::makeRedisClusterStore(redistest::clusterConfig(prefix, seeds), redistest::limits());
    for (const auto& id : ids)
        BOOST_TEST(isDoneWith(fresh->begin(id, fp, newToken(), kLongLease, kLongRetention), response(id)));
}

// maxmemory-policy is read on every master: one evicting master is named in the warning, or is fatal.
BOOST_AUTO_TEST_CASE(eviction_policy_is_checked_on_every_master) {
    const auto all = clustertest::masters();
    const auto& evicting = all.back();
    auto cfg = redistest::clusterConfig(redistest::uniquePrefix(), redistest::clusterService());
    {
        redistest::CerrCapture quiet;
        cfg.requireNoEviction = true;
        BOOST_CHECK_NO_THROW(storage::makeRedisClusterStore(cfg, redistest::limits()));
        BOOST_TEST(quiet.text().empty(), quiet.text());
    }
    redistest::ConfigGuard policy({evicting.host, evicting.port}, "maxmemory-policy");
    policy.set("allkeys-lru");
    {
        redistest::CerrCapture warned;
        cfg.requireNoEviction = false;
        BOOST_CHECK_NO_THROW(storage::makeRedisClusterStore(cfg, redistest::limits()));
        const auto text = warned.text();
        BOOST_TEST(text.find(evicting.str()) != std::string::npos, text);
        BOOST_TEST(text.find("allkeys-lru") != std::string::npos, text);
        for (const auto& m : all)
            if (!(m == evicting)) BOOST_TEST(text.find(m.str()) == std::string::npos, text);
    }
    cfg.requireNoEviction = true;
    try {
        storage::makeRedisClusterStore(cfg, redistest::limits());
        BOOST_ERROR("requireNoEviction did not refuse an evicting master");
    } catch (const std::runtime_error& e) {
        BOOST_TEST(std::string(e.what()).find(evicting.str()) != std::string::npos, e.what());
    }
}

// Seeds that are down are skipped; a store whose seeds are all down fails every call with Unavailable and
// never Owned.
BOOST_AUTO_TEST_CASE(down_seeds_are_skipped) {
    auto seeds = redistest::clusterService();
    seeds.insert(seeds.begin(), {"127.0.0.1", redistest::unusedPort()});
    auto cfg = redistest::clusterConfig(redistest::uniquePrefix(), seeds);
    auto store = storage::makeRedisClusterStore(cfg, redistest::limits());
    for (int i = 0; i < 10; ++i) {
        const auto tok = newToken();
        auto r = store->begin(hashParts({runId(), "seeds", std::to_string(i)}), fingerprintOf("s"), tok, kLongLease,
                              kLongRetention);
        BOOST_TEST(isOwnedBy(r, tok), describe(r));
    }
    BOOST_TEST(store->ping().has_value());

    redistest::CerrCapture warned;
    cfg.nodes = {{"127.0.0.1", redistest::unusedPort()}, {"127.0.0.1", redistest::unusedPort()}};
    auto down = storage::makeRedisClusterStore(cfg, redistest::limits());
    auto r = down->begin(hashParts({runId(), "seeds-down"}), fingerprintOf("s"), newToken(), kLongLease,
                         kLongRetention);
    BOOST_TEST(failsWith(r, Kind::Unavailable), describe(r));
    BOOST_TEST(failsWith(down->ping(), Kind::Unavailable));
    BOOST_CHECK_THROW(storage::makeRedisClusterStore(storage::RedisStoreConfig{}, redistest::limits()),
                      std::runtime_error);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace idem::test
