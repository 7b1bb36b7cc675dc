// Two idemgate processes sharing one redis-server (the `redis` CTest fixture; B09 starts a private one it
// can stop and start on the same port), over HTTP, in front of the real mock upstream. Each test case
// keeps its records under a key prefix of its own (store.redis.key_prefix).
#define BOOST_TEST_MODULE e2e two instances on Redis
#include "tests/e2e/TwoInstancesScenarios.h"

#include "tests/support/ServiceEnv.h"

using namespace idem::test;
using namespace idem::test::two;

namespace {

std::string redisStoreYaml(const std::string& address, const std::string& prefix) {
    return "store:\n  type: redis\n  redis:\n"
           "    address: " + address + "\n"
           "    key_prefix: \"" + prefix + ":\"\n"
           "    connect_timeout: 500ms\n"
           "    command_timeout: 1s\n";
}

class PrivateRedisStore final : public PrivateStore {
public:
    explicit PrivateRedisStore(const TempDir& dir) : redis_(dir) {}
    std::string storeYaml(const std::string& ns) const override { return redisStoreYaml(redis_.address(), ns); }
    void stop() override { redis_.stop(); }
    void start() override { redis_.start(); }

private:
    PrivateRedis redis_;
};

class RedisKit final : public StoreKit {
public:
    RedisKit() : address_(serviceEnv("redis", "IDEM_REDIS")) {}

    std::string storeYaml(const std::string& ns) const override { return redisStoreYaml(address_, ns); }
    int recordCount(const std::string& ns) const override {
        return static_cast<int>(redisKeys(address_, ns + ":*").size());
    }
    int recordsWithoutExpiry(const std::string& ns) const override {
        int n = 0;
        for (const auto& k : redisKeys(address_, ns + ":*"))
            if (redisCli(address_, {"TTL", k}) == "-1") ++n;
        return n;
    }
    int corruptCompleted(const std::string& ns) const override {
        int n = 0;
        for (const auto& k : redisKeys(address_, ns + ":*")) {
            if (redisCli(address_, {"HGET", k, "st"}) != "C") continue;
            // Format version 'x' (0x78): no idemgate build wrote it.
            redisCli(address_, {"HSET", k, "hdr", "xx-not-a-record"});
            ++n;
        }
        return n;
    }
    std::unique_ptr<PrivateStore> startPrivate(const TempDir& dir) const override {
        return std::make_unique<PrivateRedisStore>(dir);
    }
    void cleanup(const std::string& ns) const override {
        for (const auto& k : redisKeys(address_, ns + ":*")) redisCli(address_, {"DEL", k});
    }

private:
    std::string address_;
};

const RedisKit& kit() {
    static const RedisKit k;
    return k;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(RedisTwoInstances)

BOOST_AUTO_TEST_CASE(b01_concurrent_copies_split_across_instances) { b01ConcurrentCopiesAcrossInstances(kit()); }
BOOST_AUTO_TEST_CASE(b02_concurrent_pairs_one_per_instance) { b02PairsAcrossInstances(kit()); }
BOOST_AUTO_TEST_CASE(b04_sigkill_owner_then_lease_then_on_unknown) { b04KilledInstance(kit()); }
BOOST_AUTO_TEST_CASE(b09_store_stopped_and_started_again) { b09StoreOutage(kit()); }
BOOST_AUTO_TEST_CASE(b10_replay_across_instances_restarts_and_corruption) { b10ReplayAcrossInstancesAndRestarts(kit()); }
BOOST_AUTO_TEST_CASE(b12_mismatch_while_in_flight_on_the_other_instance) { b12MismatchWhileInFlight(kit()); }
BOOST_AUTO_TEST_CASE(b24_forwarded_key_stable_across_restart_and_takeover) { b24ForwardedKeyStable(kit()); }

BOOST_AUTO_TEST_SUITE_END()
