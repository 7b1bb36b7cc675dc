// Two idemgate processes sharing one PostgreSQL 15 (the `postgres` CTest fixture; B09 starts a private
// one it can stop and start), over HTTP, in front of the real mock upstream. Each test case uses a table of
// its own (store.postgres.table), created by the gateways' migration at start.
#define BOOST_TEST_MODULE e2e two instances on PostgreSQL
#include "tests/e2e/TwoInstancesScenarios.h"

#include "tests/support/ServiceEnv.h"

using namespace idem::test;
using namespace idem::test::two;

namespace {

std::string pgStoreYaml(const std::string& url, const std::string& table) {
    return "store:\n  type: postgres\n  postgres:\n"
           "    url: \"" + url + "\"\n"
           "    table: " + table + "\n"
           "    connect_timeout: 1s\n"
           "    statement_timeout: 2s\n"
           "    pool_wait_timeout: 1s\n";
}

class PrivatePg final : public PrivateStore {
public:
    explicit PrivatePg(const TempDir& dir) : pg_(dir) {}
    std::string storeYaml(const std::string& ns) const override { return pgStoreYaml(pg_.url(), ns); }
    void stop() override { pg_.stop(); }
    void start() override { pg_.start(); }

private:
    PrivatePostgres pg_;
};

class PostgresKit final : public StoreKit {
public:
    PostgresKit() : url_(serviceEnv("postgres", "IDEM_PG_URL")) {}

    std::string storeYaml(const std::string& ns) const override { return pgStoreYaml(url_, ns); }
    int recordCount(const std::string& ns) const override { return std::stoi(psql(url_, "SELECT count(*) FROM " + ns)); }
    int recordsWithoutExpiry(const std::string& ns) const override {
        return std::stoi(psql(url_, "SELECT count(*) FROM " + ns + " WHERE expires_at IS NULL"));
    }
    int corruptCompleted(const std::string& ns) const override {
        // Version byte 0xff: no idemgate build wrote it.
        return std::stoi(psql(url_, "WITH u AS (UPDATE " + ns +
                                        " SET resp_meta = '\\xff00ff00'::bytea WHERE state = 1 RETURNING 1) "
                                        "SELECT count(*) FROM u"));
    }
    std::unique_ptr<PrivateStore> startPrivate(const TempDir& dir) const override {
        return std::make_unique<PrivatePg>(dir);
    }
    void cleanup(const std::string& ns) const override { psql(url_, "DROP TABLE IF EXISTS " + ns); }

private:
    std::string url_;
};

const PostgresKit& kit() {
    static const PostgresKit k;
    return k;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(PostgresTwoInstances)

BOOST_AUTO_TEST_CASE(b01_concurrent_copies_split_across_instances) { b01ConcurrentCopiesAcrossInstances(kit()); }
BOOST_AUTO_TEST_CASE(b02_concurrent_pairs_one_per_instance) { b02PairsAcrossInstances(kit()); }
BOOST_AUTO_TEST_CASE(b04_sigkill_owner_then_lease_then_on_unknown) { b04KilledInstance(kit()); }
BOOST_AUTO_TEST_CASE(b09_store_stopped_and_started_again) { b09StoreOutage(kit()); }
BOOST_AUTO_TEST_CASE(b10_replay_across_instances_restarts_and_corruption) { b10ReplayAcrossInstancesAndRestarts(kit()); }
BOOST_AUTO_TEST_CASE(b12_mismatch_while_in_flight_on_the_other_instance) { b12MismatchWhileInFlight(kit()); }
BOOST_AUTO_TEST_CASE(b24_forwarded_key_stable_across_restart_and_takeover) { b24ForwardedKeyStable(kit()); }

BOOST_AUTO_TEST_SUITE_END()
