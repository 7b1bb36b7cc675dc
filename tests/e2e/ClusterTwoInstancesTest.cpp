// Two idemgate processes sharing one 3-master Redis Cluster (the `cluster` CTest fixture; B09 starts a
// private cluster it can stop and start on the same ports), over HTTP, in front of the real mock upstream.
// Each test case keeps its records under a key prefix of its own (store.redis_cluster.key_prefix); records
// are found with SCAN on every master and inspected on the node that holds them.
#define BOOST_TEST_MODULE e2e two instances on Redis Cluster
#include "tests/e2e/TwoInstancesScenarios.h"

#include "tests/support/ServiceEnv.h"

#include <sstream>

using namespace idem::test;
using namespace idem::test::two;

namespace {

std::vector<std::string> splitNodes(const std::string& list) {
    std::vector<std::string> out;
    std::istringstream in(list);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    if (out.empty()) throw std::runtime_error("IDEM_REDIS_CLUSTER names no node");
    return out;
}

std::string clusterStoreYaml(const std::vector<std::string>& nodes, const std::string& prefix) {
    std::string list;
    for (const auto& n : nodes) list += (list.empty() ? "" : ", ") + n;
    return "store:\n  type: redis-cluster\n  redis_cluster:\n"
           "    nodes: [" + list + "]\n"
           "    key_prefix: \"" + prefix + ":\"\n"
           "    connect_timeout: 500ms\n"
           "    command_timeout: 1s\n";
}

/// (node, key) for every record under the prefix, on whichever master holds it.
std::vector<std::pair<std::string, std::string>> clusterKeys(const std::vector<std::string>& nodes,
                                                             const std::string& ns) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& n : nodes)
        for (auto& k : redisKeys(n, ns + ":*")) out.emplace_back(n, std::move(k));
    return out;
}

class PrivateClusterStore final : public PrivateStore {
public:
    explicit PrivateClusterStore(const TempDir& dir) : cluster_(dir) {}
    std::string storeYaml(const std::string& ns) const override { return clusterStoreYaml(cluster_.nodes(), ns); }
    void stop() override { cluster_.stop(); }
    void start() override { cluster_.start(); }

private:
    PrivateRedisCluster cluster_;
};

class ClusterKit final : public StoreKit {
public:
    ClusterKit() : nodes_(splitNodes(serviceEnv("cluster", "IDEM_REDIS_CLUSTER"))) {}

    std::string storeYaml(const std::string& ns) const override { return clusterStoreYaml(nodes_, ns); }
    int recordCount(const std::string& ns) const override { return static_cast<int>(clusterKeys(nodes_, ns).size()); }
    int recordsWithoutExpiry(const std::string& ns) const override {
        int n = 0;
        for (const auto& [node, k] : clusterKeys(nodes_, ns))
            if (redisCli(node, {"TTL", k}) == "-1") ++n;
        return n;
    }
    int corruptCompleted(const std::string& ns) const override {
        int n = 0;
        for (const auto& [node, k] : clusterKeys(nodes_, ns)) {
            if (redisCli(node, {"HGET", k, "st"}) != "C") continue;
            redisCli(node, {"HSET", k, "hdr", "xx-not-a-record"});
            ++n;
        }
        return n;
    }
    std::unique_ptr<PrivateStore> startPrivate(const TempDir& dir) const override {
        return std::make_unique<PrivateClusterStore>(dir);
    }
    void cleanup(const std::string& ns) const override {
        for (const auto& [node, k] : clusterKeys(nodes_, ns)) redisCli(node, {"DEL", k});
    }

private:
    std::vector<std::string> nodes_;
};

const ClusterKit& kit() {
    static const ClusterKit k;
    return k;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ClusterTwoInstances)

BOOST_AUTO_TEST_CASE(b01_concurrent_copies_split_across_instances) { b01ConcurrentCopiesAcrossInstances(kit()); }
BOOST_AUTO_TEST_CASE(b02_concurrent_pairs_one_per_instance) { b02PairsAcrossInstances(kit()); }
BOOST_AUTO_TEST_CASE(b04_sigkill_owner_then_lease_then_on_unknown) { b04KilledInstance(kit()); }
BOOST_AUTO_TEST_CASE(b09_store_stopped_and_started_again) { b09StoreOutage(kit()); }
BOOST_AUTO_TEST_CASE(b10_replay_across_instances_restarts_and_corruption) { b10ReplayAcrossInstancesAndRestarts(kit()); }
BOOST_AUTO_TEST_CASE(b12_mismatch_while_in_flight_on_the_other_instance) { b12MismatchWhileInFlight(kit()); }
BOOST_AUTO_TEST_CASE(b24_forwarded_key_stable_across_restart_and_takeover) { b24ForwardedKeyStable(kit()); }

BOOST_AUTO_TEST_SUITE_END()
