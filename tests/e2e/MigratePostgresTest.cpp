// `idemgate migrate` and migrate_on_start against the shared PostgreSQL of the `postgres` fixture:
// the schema is created by idemgate itself, migrating twice is harmless, and a gateway whose table
// does not exist yet fails closed (503) instead of forwarding, then works once it is migrated.
#define BOOST_TEST_MODULE e2e postgres migrate
#include <boost/test/unit_test.hpp>

#include "tests/support/E2E.h"
#include "tests/support/ServiceEnv.h"
#include "tests/support/StoreServers.h"

using namespace idem::test;

namespace {

std::string storeYaml(const std::string& url, const std::string& table, bool migrateOnStart) {
    return "store:\n  type: postgres\n  postgres:\n    url: \"" + url + "\"\n    table: " + table +
           "\n    migrate_on_start: " + (migrateOnStart ? "true" : "false") + "\n    reap_interval: 0s\n";
}

bool tableExists(const std::string& url, const std::string& table) {
    return psql(url, "SELECT count(*) FROM pg_tables WHERE tablename = '" + table + "'").find('1') != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(MigratePostgres)

BOOST_AUTO_TEST_CASE(migrateCommandCreatesTheSchemaAndIsIdempotent) {
    const std::string url = serviceEnv("postgres", "IDEM_PG_URL");
    const std::string table = uniqueName("mig");
    CaseOptions options;
    options.storeYaml = storeYaml(url, table, false);
    options.gatewayPort = freePort();
    options.upstreamPort = freePort();
    TempDir dir;
    dir.write("gw.yaml", caseConfig(options));

    BOOST_TEST(!tableExists(url, table));
    auto first = run({binaryDir() + "/idemgate", "migrate", "--config", dir.file("gw.yaml")}, dir);
    BOOST_TEST(first.status == 0, first.output);
    BOOST_TEST(tableExists(url, table));
    auto again = run({binaryDir() + "/idemgate", "migrate", "--config", dir.file("gw.yaml")}, dir);
    BOOST_TEST(again.status == 0, again.output);
    BOOST_TEST(psql(url, "SELECT version FROM idemgate_schema_version WHERE table_name = '" + table + "'")
                   .find('1') != std::string::npos);
    psql(url, "DROP TABLE " + table);
}

BOOST_AUTO_TEST_CASE(migrateRefusesANonPostgresConfig) {
    TempDir dir;
    CaseOptions options;
    options.gatewayPort = freePort();
    options.upstreamPort = freePort();
    dir.write("gw.yaml", caseConfig(options));
    auto r = run({binaryDir() + "/idemgate", "migrate", "--config", dir.file("gw.yaml")}, dir);
    BOOST_TEST(r.status != 0);
    BOOST_TEST(r.output.find("not postgres") != std::string::npos, r.output);
}

BOOST_AUTO_TEST_CASE(withoutTheTableTheGatewayFailsClosedUntilMigrated) {
    const std::string url = serviceEnv("postgres", "IDEM_PG_URL");
    const std::string table = uniqueName("late");
    CaseOptions options;
    options.storeYaml = storeYaml(url, table, false);
    CaseEnv env(options);

    auto before = env.post("k-mig-1", R"({"amount":1})");
    BOOST_TEST(before.status == 503);
    BOOST_TEST(problemType(before) == "urn:idemgate:problem:store-unavailable");
    BOOST_TEST(env.up.total() == 0);

    auto migrated = run({binaryDir() + "/idemgate", "migrate", "--config", env.dir.file("gw.yaml")}, env.dir);
    BOOST_TEST(migrated.status == 0, migrated.output);

    auto after = env.post("k-mig-1", R"({"amount":1})");
    BOOST_TEST(after.status == 201);
    auto replay = env.post("k-mig-1", R"({"amount":1})");
    BOOST_TEST(replay.status == 201);
    BOOST_TEST(replay.header("Idempotent-Replayed").value_or("") == "true");
    BOOST_TEST(env.up.total() == 1);
    psql(url, "DROP TABLE " + table);
}

BOOST_AUTO_TEST_CASE(migrateOnStartCreatesTheTable) {
    const std::string url = serviceEnv("postgres", "IDEM_PG_URL");
    const std::string table = uniqueName("start");
    CaseOptions options;
    options.storeYaml = storeYaml(url, table, true);
    CaseEnv env(options);
    BOOST_TEST(tableExists(url, table));
    BOOST_TEST(env.post("k-mig-2", R"({"amount":2})").status == 201);
    BOOST_TEST(env.up.total() == 1);
    env.gw.reset();
    psql(url, "DROP TABLE " + table);
}

BOOST_AUTO_TEST_SUITE_END()
