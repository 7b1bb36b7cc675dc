// The store conformance suite against PostgreSQL 15 (CTest fixture `postgres`, tests/support/pg-service.sh),
// plus PostgreSQL-specific cases: B02 (concurrent first requests), B07 (a resend by the owner after a lost
// reply), concurrent migrations, the reaper under traffic, recovery after an outage, binary round trips,
// and the libpq layer's decoding, error mapping and pool bounds.
//
// Every PgFx builds its own table (random suffix) through migratePostgres and drops it afterwards, so runs
// and test cases never share records. A missing service throws: the tests fail, never skip.

#define BOOST_TEST_MODULE conformance_postgres
#include <boost/test/unit_test.hpp>

#include "tests/conformance/StoreConformanceSupport.h"

#include "storage/PgConnection.h"
#include "storage/PostgresStore.h"
#include "tests/support/FaultProxy.h"
#include "tests/support/ServiceEnv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace idem::test {

namespace pgtest {

inline std::uint16_t servicePort() { return static_cast<std::uint16_t>(std::stoi(serviceEnv("postgres", "IDEM_PG_PORT"))); }

inline std::string urlFor(std::uint16_t port) { return "postgresql://idem@127.0.0.1:" + std::to_string(port) + "/idem"; }

/// A loopback port nobody listens on (bound, then released).
inline std::uint16_t closedPort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("cannot find a closed port");
    ::close(fd);
    return ntohs(a.sin_port);
}

inline std::string freshTable(const char* prefix) { return std::string(prefix) + "_" + randomHex(6); }

inline storage::PostgresStoreConfig config(const std::string& table, std::uint16_t port = servicePort()) {
    storage::PostgresStoreConfig c;
    c.url = urlFor(port);
    c.table = table;
    c.poolSize = 16;  // case 3 and B02 run 16 begins at once
    c.connectTimeout = Millis{2000};
    c.statementTimeout = Millis{1500};
    c.poolWaitTimeout = Millis{5000};
    c.migrateOnStart = true;
    c.reapInterval = Millis{0};  // the suite calls purgeExpired itself; the reaper has its own test
    return c;
}

/// A plain connection for inspecting and preparing the database behind the store.
inline std::unique_ptr<storage::PgConnection> sql(std::uint16_t port = servicePort(), Millis statementTimeout = Millis{5000}) {
    storage::PgConnectOptions o;
    o.url = urlFor(port);
    o.statementTimeout = statementTimeout;
    auto c = storage::PgConnection::connect(o, {});
    if (!c) throw std::runtime_error("test connection: " + c.error().message);
    return std::move(*c);
}

inline storage::PgResult query(storage::PgConnection& c, const std::string& q, std::span<const storage::PgParam> p = {}) {
    auto r = c.exec(q, p);
    if (!r) throw std::runtime_error(q + ": " + r.error().message);
    return std::move(*r);
}

inline std::int64_t count(storage::PgConnection& c, const std::string& q) {
    auto r = query(c, q);
    auto n = r.int8(0, 0);
    if (!n) throw std::runtime_error(q + ": " + n.error().message);
    return *n;
}

inline void dropTable(const std::string& table) {
    auto c = sql();
    query(*c, "DROP TABLE IF EXISTS \"" + table + "\"");
    const storage::PgParam p[] = {storage::PgParam::text(table)};
    query(*c, "DELETE FROM idemgate_schema_version WHERE table_name = $1::text", p);
}

}  // namespace pgtest

/// The conformance fixture: a fresh table per instance, dropped on destruction. The store behind
/// makeVia has a short statement timeout (500 ms: the client gives up after ~1.1 s) and no reaper.
/// The suite runs twice: record statements batched on pipelined connections (the default,
/// PgMultiplexer.h), and each on a pooled connection of its own (pipeline_connections: 0).
template <std::size_t Pipelined>
struct PgFxOf {
    static constexpr const char* kName = Pipelined > 0 ? "postgres" : "postgres-pooled";
    static constexpr bool kNetworked = true;
    static constexpr Millis kTtlUnit{300};
    static constexpr std::size_t kMaxResponseBytes = kMinConformanceResponseBytes;

    PgFxOf() : table_(pgtest::freshTable("idem_conf")), port_(pgtest::servicePort()) {
        store_ = storage::makePostgresStore(config(port_), limits());
    }
    ~PgFxOf() {
        store_.reset();
        try {
            pgtest::dropTable(table_);
        } catch (const std::exception& e) {
            BOOST_TEST_MESSAGE("could not drop " << table_ << ": " << e.what());
        }
    }
    PgFxOf(const PgFxOf&) = delete;
    PgFxOf& operator=(const PgFxOf&) = delete;

    storage::PostgresStoreConfig config(std::uint16_t port) const {
        auto c = pgtest::config(table_, port);
        c.pipelineConnections = Pipelined;
        return c;
    }

    static storage::StoreLimits limits() {
        storage::StoreLimits l;
        l.maxResponseBytes = kMaxResponseBytes;
        return l;
    }

    storage::Store& store() { return *store_; }
    void advance(Millis d) { std::this_thread::sleep_for(d); }

    /// The same kind of store at a closed port: every call fails at once, nothing is created.
    std::unique_ptr<storage::Store> makeUnreachable() {
        auto c = config(pgtest::closedPort());
        c.migrateOnStart = false;
        return storage::makePostgresStore(c, limits());
    }
    /// The same table reached through 127.0.0.1:proxyPort (a FaultProxy in front of the service).
    std::unique_ptr<storage::Store> makeVia(std::uint16_t proxyPort) {
        auto c = config(proxyPort);
        c.migrateOnStart = false;
        c.statementTimeout = Millis{500};
        return storage::makePostgresStore(c, limits());
    }
    std::pair<std::string, std::uint16_t> endpoint() { return {"127.0.0.1", port_}; }

    const std::string& table() const { return table_; }

private:
    std::string table_;
    std::uint16_t port_;
    std::unique_ptr<storage::Store> store_;
};

}  // namespace idem::test

using namespace idem;  // the cases name storage:: and idem::test helpers unqualified

namespace idem::test {
using PgFx = PgFxOf<2>;
}
using StoreFixtures = std::tuple<test::PgFx, test::PgFxOf<0>>;

BOOST_AUTO_TEST_SUITE(postgres)
#include "tests/conformance/StoreConformanceCases.h"
BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------------
// PostgreSQL-specific cases.

using namespace idem::test;
using storage::PgParam;
using storage::PgType;

namespace {

constexpr Millis kLongLease{30'000};
constexpr Millis kLongRetention{60'000};

}  // namespace

BOOST_AUTO_TEST_SUITE(postgres_specific)

// B02: many concurrent first requests: exactly one owner per key, the loser sees InProgress, no errors.
BOOST_AUTO_TEST_CASE(b02_concurrent_first_requests_one_owner) {
    PgFx fx;
    constexpr int kPairsAtOnce = 8, kRounds = 25;  // 200 pairs
    std::atomic<int> errors{0}, badPairs{0};
    std::vector<std::thread> threads;
    std::vector<std::unique_ptr<std::barrier<>>> gates;
    std::vector<std::array<Result<BeginOutcome>, 2>> results(kPairsAtOnce * kRounds,
                                                            {Result<BeginOutcome>{Mismatch{}}, Result<BeginOutcome>{Mismatch{}}});
    std::vector<storage::RecordId> ids;
    for (int i = 0; i < kPairsAtOnce * kRounds; ++i) ids.push_back("b02-" + randomHex(16));
    const auto fp = fingerprintOf("b02");
    for (int p = 0; p < kPairsAtOnce; ++p) gates.push_back(std::make_unique<std::barrier<>>(2));
    for (int p = 0; p < kPairsAtOnce; ++p)
        for (int side = 0; side < 2; ++side)
            threads.emplace_back([&, p, side] {
                for (int round = 0; round < kRounds; ++round) {
                    const int k = round * kPairsAtOnce + p;
                    gates[p]->arrive_and_wait();
                    results[k][side] = fx.store().begin(ids[k], fp, newToken(), kLongLease, kLongRetention);
                }
            });
    for (auto& t : threads) t.join();
    for (std::size_t k = 0; k < results.size(); ++k) {
        int owned = 0, busy = 0;
        for (const auto& r : results[k]) {
            if (!r) ++errors;
            if (as<Owned>(r)) ++owned;
            if (as<InProgress>(r)) ++busy;
        }
        if (owned != 1 || busy != 1) {
            ++badPairs;
            BOOST_TEST_MESSAGE("pair " << k << ": " << describe(results[k][0]) << " / " << describe(results[k][1]));
        }
    }
    BOOST_TEST(errors.load() == 0);
    BOOST_TEST(badPairs.load() == 0);
}

// B07: the store commits a begin but its reply is lost; the owner's resend with the same token is
// recognised (Owned, same fence), not answered InProgress.
BOOST_AUTO_TEST_CASE(b07_resend_after_lost_reply_is_owned) {
    PgFx fx;
    FaultProxy proxy("127.0.0.1", fx.endpoint().second);
    auto via = fx.makeVia(proxy.port());
    BOOST_REQUIRE_MESSAGE(via->ping().has_value(), "warm-up through the proxy failed");

    const storage::RecordId id = "b07-" + randomHex(16);
    const auto fp = fingerprintOf("b07");
    const auto token = newToken();
    proxy.dropNextReplyAndReset(FaultProxy::Mode::Pass);
    auto first = via->begin(id, fp, token, kLongLease, kLongRetention);
    BOOST_TEST_INFO("first begin: " << describe(first));
    BOOST_REQUIRE(!first.has_value());
    BOOST_TEST(isUnreachableError(first.error()));
    BOOST_TEST(proxy.resets() == 1u);

    // The claim was committed: another attempt sees it in flight.
    auto other = fx.store().begin(id, fp, newToken(), kLongLease, kLongRetention);
    BOOST_TEST_INFO("other: " << describe(other));
    BOOST_TEST(as<InProgress>(other) != nullptr);

    auto resend = via->begin(id, fp, token, kLongLease, kLongRetention);
    BOOST_TEST_INFO("resend: " << describe(resend));
    BOOST_REQUIRE(isOwnedBy(resend, token));
    BOOST_TEST(as<Owned>(resend)->fence == 1);  // recognised, not claimed again
    BOOST_TEST((via->complete(id, token, response("b07"), kLongRetention).value_or(CompleteOutcome::Fenced) ==
               CompleteOutcome::Ok));
    BOOST_TEST(isDoneWith(fx.store().begin(id, fp, newToken(), kLongLease, kLongRetention), response("b07")));
}

// Racing begins on one key, both on a fresh key (the losers' INSERT waits for the winner's uncommitted
// row, then conflicts) and on an expired record (the losers' claim must not reuse it a second time, and
// a read of the expired version must not count), give exactly one Owned per round; everyone else gets
// InProgress, never an error, Done, Abandoned or a second Owned. Guards any rewrite of begin (e.g. as
// one statement whose snapshot cannot see a concurrently committed row: it must go round again).
BOOST_AUTO_TEST_CASE(same_key_begin_races_have_one_owner) {
    PgFx fx;
    constexpr int kRacers = 8, kRounds = 30;
    const auto fp = fingerprintOf("race");
    auto c = pgtest::sql();
    const std::string t = "\"" + fx.table() + "\"";
    std::vector<storage::RecordId> ids;
    for (int i = 0; i < kRounds; ++i) ids.push_back("race-" + std::to_string(i) + "-" + randomHex(8));
    // Odd rounds race on a record that is there but expired (done, same fingerprint: a stale read of it
    // would come back as Done).
    for (int i = 1; i < kRounds; i += 2) {
        const PgParam p[] = {PgParam::text(ids[i]), PgParam::text(fp)};
        pgtest::query(*c, "INSERT INTO " + t +
                              " (id, fingerprint, state, token, status_code, resp_meta, expires_at) "
                              "VALUES ($1::text, $2::text, 1, 'old', 200, '\\x'::bytea, now() - interval '1 second')",
                      p);
    }
    std::vector<std::vector<Result<BeginOutcome>>> results(kRounds);
    std::vector<std::vector<storage::Token>> tokens(kRounds, std::vector<storage::Token>(kRacers));
    for (int r = 0; r < kRounds; ++r) {
        results[r].assign(kRacers, Result<BeginOutcome>{Mismatch{}});
        for (auto& tok : tokens[r]) tok = newToken();
    }
    std::barrier<> gate(kRacers);
    std::vector<std::thread> threads;
    for (int k = 0; k < kRacers; ++k)
        threads.emplace_back([&, k] {
            for (int r = 0; r < kRounds; ++r) {
                gate.arrive_and_wait();
                results[r][k] = fx.store().begin(ids[r], fp, tokens[r][k], kLongLease, kLongRetention);
            }
        });
    for (auto& th : threads) th.join();
    int badRounds = 0;
    for (int r = 0; r < kRounds; ++r) {
        int owned = 0, busy = 0;
        for (int k = 0; k < kRacers; ++k) {
            if (isOwnedBy(results[r][k], tokens[r][k])) ++owned;
            if (as<InProgress>(results[r][k])) ++busy;
        }
        if (owned != 1 || busy != kRacers - 1) {
            ++badRounds;
            for (int k = 0; k < kRacers; ++k) BOOST_TEST_MESSAGE("round " << r << ": " << describe(results[r][k]));
        }
    }
    BOOST_TEST(badRounds == 0);
    // Expired rounds were taken over (fence bumped), fresh ones inserted.
    BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM " + t + " WHERE id LIKE 'race-%' AND state = 0 AND fence = 2") ==
               kRounds / 2);
    BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM " + t + " WHERE id LIKE 'race-%' AND state = 0 AND fence = 1") ==
               kRounds / 2);
}

// The store's backends are killed (pg_terminate_backend, as on a server crash or restart) while many
// threads are in the middle of calls: each call returns in bounded time with either a correct outcome
// or an error (never a hang, never a wrong answer), and the store serves again afterwards.
BOOST_AUTO_TEST_CASE(killed_backends_mid_load_fail_calls_cleanly) {
    PgFx fx;
    const std::string app = "idem_kill_" + randomHex(4);
    auto cfg = pgtest::config(fx.table());
    cfg.url += "?application_name=" + app;
    cfg.migrateOnStart = false;
    cfg.poolSize = 4;
    auto store = storage::makePostgresStore(cfg, PgFx::limits());
    BOOST_REQUIRE(store->ping().has_value());

    constexpr int kThreads = 8;
    std::atomic<bool> stop{false};
    std::atomic<int> wrong{0}, errors{0}, slow{0}, completed{0};
    std::vector<std::vector<storage::RecordId>> done(kThreads);
    std::vector<std::thread> threads;
    for (int w = 0; w < kThreads; ++w)
        threads.emplace_back([&, w] {
            for (int i = 0; !stop.load(); ++i) {
                const storage::RecordId id = "kill-" + std::to_string(w) + "-" + std::to_string(i);
                const auto tok = newToken();
                const auto t0 = std::chrono::steady_clock::now();
                auto b = store->begin(id, fingerprintOf(id), tok, kLongLease, kLongRetention);
                std::optional<Result<CompleteOutcome>> d;
                if (isOwnedBy(b, tok)) d = store->complete(id, tok, response(id), kLongRetention);
                if (std::chrono::steady_clock::now() - t0 > Millis{4000}) ++slow;  // 2 x (1.5 s + margin)
                if (!b) {
                    ++errors;
                    continue;
                }
                if (!isOwnedBy(b, tok)) {  // a fresh key can only be Owned
                    ++wrong;
                    BOOST_TEST_MESSAGE(id << ": " << describe(b));
                    continue;
                }
                if (*d && **d == CompleteOutcome::Ok) {
                    done[w].push_back(id);
                    ++completed;
                } else if (*d) {
                    ++wrong;  // the owner's complete cannot be Fenced
                } else {
                    ++errors;
                }
            }
        });
    auto admin = pgtest::sql();
    std::int64_t killed = 0;
    for (int round = 0; round < 4; ++round) {
        std::this_thread::sleep_for(Millis{250});
        killed += pgtest::count(*admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE application_name = '" + app + "'");
    }
    std::this_thread::sleep_for(Millis{250});
    stop = true;
    for (auto& th : threads) th.join();
    BOOST_TEST_MESSAGE("terminated " << killed << " backends; " << completed.load() << " completed, "
                                     << errors.load() << " errors");
    BOOST_TEST(killed >= 4);
    BOOST_TEST(wrong.load() == 0);
    BOOST_TEST(slow.load() == 0);
    BOOST_TEST(completed.load() > 0);
    // Every record whose complete said Ok replays exactly, through the recovered store.
    for (const auto& ids : done)
        for (const auto& id : ids) {
            auto r = store->begin(id, fingerprintOf(id), newToken(), kLongLease, kLongRetention);
            BOOST_TEST_INFO(id << ": " << describe(r));
            BOOST_TEST(isDoneWith(r, response(id)));
        }
}

BOOST_AUTO_TEST_CASE(migration_is_idempotent_and_safe_concurrently) {
    const std::string table = pgtest::freshTable("idem_mig");
    auto cfg = pgtest::config(table);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    std::barrier<> gate(4);
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] {
            gate.arrive_and_wait();
            try {
                storage::migratePostgres(cfg);
            } catch (const std::exception& e) {
                ++failures;
                BOOST_TEST_MESSAGE("migrate: " << e.what());
            }
        });
    for (auto& t : threads) t.join();
    BOOST_TEST(failures.load() == 0);
    BOOST_CHECK_NO_THROW(storage::migratePostgres(cfg));  // again: nothing to do

    auto c = pgtest::sql();
    const PgParam name[] = {PgParam::text(table)};
    auto v = pgtest::query(*c, "SELECT version FROM idemgate_schema_version WHERE table_name = $1::text", name);
    BOOST_REQUIRE(v.rows() == 1);
    BOOST_TEST(v.int4(0, 0).value_or(-1) == storage::kPostgresSchemaVersion);
    BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM pg_indexes WHERE tablename = '" + table + "'") == 2);
    BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM pg_class WHERE relname = '" + table +
                                     "' AND 'fillfactor=80' = ANY(reloptions)") == 1);

    cfg.migrateOnStart = false;
    auto store = storage::makePostgresStore(cfg, PgFx::limits());
    BOOST_TEST(as<Owned>(store->begin("mig-1", fingerprintOf("m"), newToken(), kLongLease, kLongRetention)) != nullptr);
    store.reset();
    pgtest::dropTable(table);

    cfg.table = "Robert'); DROP TABLE students;--";
    BOOST_CHECK_THROW(storage::migratePostgres(cfg), std::invalid_argument);
    BOOST_CHECK_THROW(storage::makePostgresStore(cfg, PgFx::limits()), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(newer_schema_is_refused) {
    const std::string table = pgtest::freshTable("idem_new");
    auto cfg = pgtest::config(table);
    storage::migratePostgres(cfg);
    auto c = pgtest::sql();
    const PgParam name[] = {PgParam::text(table)};
    pgtest::query(*c, "UPDATE idemgate_schema_version SET version = 99 WHERE table_name = $1::text", name);
    BOOST_CHECK_THROW(storage::migratePostgres(cfg), std::runtime_error);
    pgtest::dropTable(table);
}

BOOST_AUTO_TEST_CASE(purge_deletes_expired_rows_in_batches) {
    PgFx fx;
    auto c = pgtest::sql();
    const std::string t = "\"" + fx.table() + "\"";
    pgtest::query(*c, "INSERT INTO " + t +
                          " (id, fingerprint, state, token, expires_at) "
                          "SELECT 'old-' || g, 'fp', 1, 'tok', now() - interval '1 minute' FROM generate_series(1, 250) g");
    BOOST_TEST(fx.store().purgeExpired(100).value_or(999) == 100u);
    BOOST_TEST(fx.store().purgeExpired(100).value_or(999) == 100u);
    BOOST_TEST(fx.store().purgeExpired(100).value_or(999) == 50u);
    BOOST_TEST(fx.store().purgeExpired(100).value_or(999) == 0u);
}

// The reaper removes only expired records, in batches, while other threads keep working on live keys.
BOOST_AUTO_TEST_CASE(reaper_removes_only_expired_records_under_traffic) {
    PgFx fx;
    auto cfg = pgtest::config(fx.table());
    cfg.migrateOnStart = false;
    cfg.reapInterval = Millis{100};
    cfg.reapBatch = 40;

    auto c = pgtest::sql();
    const std::string t = "\"" + fx.table() + "\"";
    // 400 expired records (10 batches) and a few that expire only after the test.
    pgtest::query(*c, "INSERT INTO " + t +
                          " (id, fingerprint, state, token, status_code, resp_meta, expires_at) "
                          "SELECT 'exp-' || g, 'fp', 1, 'tok', 200, '\\x'::bytea, now() - interval '1 second' "
                          "FROM generate_series(1, 400) g");

    // Keep the reaper out while another session holds its lock: nothing may go.
    const auto [cls, obj] = storage::postgresReaperLock(fx.table());
    const PgParam key[] = {PgParam::int4(cls), PgParam::int4(obj)};
    auto holder = pgtest::sql();
    BOOST_REQUIRE(pgtest::query(*holder, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", key).boolean(0, 0).value_or(false));
    auto reaping = storage::makePostgresStore(cfg, PgFx::limits());
    std::this_thread::sleep_for(Millis{500});  // five reaper periods
    BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM " + t + " WHERE id LIKE 'exp-%'") == 400);
    pgtest::query(*holder, "SELECT pg_advisory_unlock($1::int4, $2::int4)", key);

    // Live traffic on the same table while the reaper runs.
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0};
    std::vector<std::vector<storage::RecordId>> live(2);
    std::vector<std::thread> workers;
    for (int w = 0; w < 2; ++w)
        workers.emplace_back([&, w] {
            for (int i = 0; !stop.load() || i < 20; ++i) {
                const storage::RecordId id = "live-" + std::to_string(w) + "-" + std::to_string(i);
                const auto tok = newToken();
                auto b = reaping->begin(id, fingerprintOf(id), tok, kLongLease, kLongRetention);
                if (!isOwnedBy(b, tok)) {
                    ++errors;
                    continue;
                }
                auto d = reaping->complete(id, tok, response(id), kLongRetention);
                if (!d || *d != CompleteOutcome::Ok) ++errors;
                live[w].push_back(id);
            }
        });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::int64_t left = -1;
    while (std::chrono::steady_clock::now() < deadline) {
        left = pgtest::count(*c, "SELECT count(*) FROM " + t + " WHERE id LIKE 'exp-%'");
        if (left == 0) break;
        std::this_thread::sleep_for(Millis{50});
    }
    stop = true;
    for (auto& w : workers) w.join();
    BOOST_TEST(left == 0);
    BOOST_TEST(errors.load() == 0);
    std::size_t checked = 0;
    for (const auto& ids : live)
        for (const auto& id : ids) {
            auto r = fx.store().begin(id, fingerprintOf(id), newToken(), kLongLease, kLongRetention);
            BOOST_TEST_INFO(id << ": " << describe(r));
            BOOST_TEST(isDoneWith(r, response(id)));
            ++checked;
        }
    BOOST_TEST(checked >= 40u);
    BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM " + t + " WHERE id LIKE 'live-%'") == static_cast<std::int64_t>(checked));
}

// The database goes away (connections reset, new ones refused) and comes back: calls fail with
// Unavailable meanwhile, never Owned, and the same store object works again afterwards.
BOOST_AUTO_TEST_CASE(store_recovers_after_outage) {
    PgFx fx;
    FaultProxy proxy("127.0.0.1", fx.endpoint().second);
    auto via = fx.makeVia(proxy.port());
    const auto fp = fingerprintOf("outage");
    const auto tok = newToken();
    BOOST_REQUIRE(isOwnedBy(via->begin("outage-1", fp, tok, kLongLease, kLongRetention), tok));
    BOOST_REQUIRE(via->ping().has_value());

    proxy.setMode(FaultProxy::Mode::Refuse);
    for (int i = 0; i < 3; ++i) {
        auto p = via->ping();
        BOOST_TEST(!p.has_value());
        auto b = via->begin("outage-2", fp, newToken(), kLongLease, kLongRetention);
        BOOST_TEST_INFO(describe(b));
        BOOST_TEST((!b.has_value() && b.error().kind == StoreError::Kind::Unavailable));
        auto d = via->complete("outage-1", tok, response("o"), kLongRetention);
        BOOST_TEST((!d.has_value() && isUnreachableError(d.error())));
    }

    proxy.setMode(FaultProxy::Mode::Pass);
    auto p = via->ping();
    BOOST_TEST_INFO(describe(p));
    BOOST_TEST(p.has_value());
    BOOST_TEST((via->complete("outage-1", tok, response("o"), kLongRetention).value_or(CompleteOutcome::Fenced) ==
               CompleteOutcome::Ok));
    BOOST_TEST(isDoneWith(via->begin("outage-1", fp, newToken(), kLongLease, kLongRetention), response("o")));
    const auto tok2 = newToken();
    BOOST_TEST(isOwnedBy(via->begin("outage-2", fp, tok2, kLongLease, kLongRetention), tok2));
}

BOOST_AUTO_TEST_CASE(one_mib_bytea_with_nuls_round_trips) {
    PgFx fx;
    StoredResponse big;
    big.status = 200;
    big.headers = {{"X-Bin", std::string("a\0b\xff", 4)}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}};
    std::string body(1 << 20, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131) % 256);
    big.body = body;
    const auto tok = newToken();
    const auto fp = fingerprintOf("big");
    BOOST_REQUIRE(isOwnedBy(fx.store().begin("big-1", fp, tok, kLongLease, kLongRetention), tok));
    BOOST_REQUIRE(fx.store().complete("big-1", tok, big, kLongRetention).value_or(CompleteOutcome::Fenced) == CompleteOutcome::Ok);
    auto r = fx.store().begin("big-1", fp, newToken(), kLongLease, kLongRetention);
    BOOST_REQUIRE(as<Done>(r) != nullptr);
    BOOST_TEST(as<Done>(r)->response.body->size() == body.size());
    BOOST_TEST((as<Done>(r)->response == big));

    auto c = pgtest::sql();
    BOOST_TEST(pgtest::count(*c, "SELECT octet_length(resp_body)::int8 FROM \"" + fx.table() + "\" WHERE id = 'big-1'") ==
               (1 << 20));

    // Empty and absent bodies stay distinct in the column (NULL vs '').
    for (bool empty : {true, false}) {
        StoredResponse r2 = response("e");
        r2.body = empty ? std::optional<std::string>("") : std::nullopt;
        const std::string id = empty ? "empty-body" : "no-body";
        const auto t2 = newToken();
        BOOST_REQUIRE(isOwnedBy(fx.store().begin(id, fp, t2, kLongLease, kLongRetention), t2));
        BOOST_REQUIRE(fx.store().complete(id, t2, r2, kLongRetention).has_value());
        BOOST_TEST(pgtest::count(*c, "SELECT count(*) FROM \"" + fx.table() + "\" WHERE id = '" + id +
                                         "' AND resp_body IS " + (empty ? "NOT NULL" : "NULL")) == 1);
        BOOST_TEST(isDoneWith(fx.store().begin(id, fp, newToken(), kLongLease, kLongRetention), r2));
    }
}

// The libpq layer: binary decoding of every type the store reads.
BOOST_AUTO_TEST_CASE(binary_results_decode) {
    auto c = pgtest::sql();
    const std::string bytes("\0\x01\xff\0", 4);
    const PgParam p[] = {PgParam::int2(-2), PgParam::int8(-5'000'000'000), PgParam::bytea(bytes), PgParam::text("héllo"),
                         PgParam::boolean(true), PgParam::int4(-7)};
    auto r = pgtest::query(*c,
                           "SELECT $1::int2, $2::int8, $3::bytea, $4::text, $5::bool, $6::int4, "
                           "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, interval '1 day 2.0005 seconds', "
                           "interval '-1.5 ms', NULL::bytea",
                           p);
    BOOST_TEST(r.int2(0, 0).value_or(0) == -2);
    BOOST_TEST(r.int8(0, 1).value_or(0) == -5'000'000'000);
    BOOST_TEST((r.bytes(0, 2) == bytes));
    BOOST_TEST((r.bytes(0, 3) == "héllo"));
    BOOST_TEST(r.boolean(0, 4).value_or(false));
    BOOST_TEST(r.int4(0, 5).value_or(0) == -7);
    BOOST_TEST(r.uuid(0, 6).value_or("") == "a0eebc999c0b4ef8bb6d6bb9bd380a11");
    BOOST_TEST(r.intervalMs(0, 7).value_or(0) == 86'400'000 + 2'001);  // rounded up
    BOOST_TEST(r.intervalMs(0, 8).value_or(0) == -1);
    BOOST_TEST(r.isNull(0, 9));
    BOOST_TEST((!r.int8(0, 9).has_value() && r.int8(0, 9).error().kind == StoreError::Kind::Corrupt));
    BOOST_TEST((!r.int8(0, 0).has_value() && r.int8(0, 0).error().kind == StoreError::Kind::Corrupt));  // an int2
}

// SQLSTATE mapping: statement timeout -> Timeout (connection kept); read-only (a hot standby) ->
// Unavailable and the connection dropped; a missing table -> Unavailable with the server's message.
BOOST_AUTO_TEST_CASE(sqlstate_mapping) {
    auto c = pgtest::sql(pgtest::servicePort(), Millis{200});
    auto slow = c->exec("SELECT pg_sleep(5)");
    BOOST_REQUIRE(!slow.has_value());
    BOOST_TEST((slow.error().kind == StoreError::Kind::Timeout));
    BOOST_TEST(slow.error().message.find("57014") != std::string::npos);
    BOOST_TEST(!c->broken());
    BOOST_TEST(c->exec("SELECT 1").has_value());

    pgtest::query(*c, "SET default_transaction_read_only = on");
    auto ro = c->exec("CREATE TEMP TABLE t_ro (x int)");
    BOOST_REQUIRE(!ro.has_value());
    BOOST_TEST((ro.error().kind == StoreError::Kind::Unavailable));
    BOOST_TEST(ro.error().message.find("25006") != std::string::npos);
    BOOST_TEST(c->broken());

    auto cfg = pgtest::config("idem_missing_" + randomHex(4));
    cfg.migrateOnStart = false;
    auto store = storage::makePostgresStore(cfg, PgFx::limits());
    auto b = store->begin("x", fingerprintOf("x"), newToken(), kLongLease, kLongRetention);
    BOOST_REQUIRE(!b.has_value());
    BOOST_TEST((b.error().kind == StoreError::Kind::Unavailable));
    BOOST_TEST(b.error().message.find("42P01") != std::string::npos);

    // A terminated backend (57P01, as on a server shutdown) breaks the connection; the pool reconnects.
    // The url names this store's sessions, so no other test's connection is touched.
    PgFx fx;
    const std::string app = "idem_term_" + randomHex(4);
    auto tcfg = pgtest::config(fx.table());
    tcfg.url += "?application_name=" + app;
    tcfg.migrateOnStart = false;
    auto victim = storage::makePostgresStore(tcfg, PgFx::limits());
    BOOST_REQUIRE(victim->ping().has_value());
    auto admin = pgtest::sql();
    BOOST_TEST(pgtest::count(*admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                     "WHERE application_name = '" + app + "'") == 1);
    auto afterKill = victim->ping();  // the pool notices the closed session before reuse, or this fails
    bool recovered = afterKill.has_value();
    for (int i = 0; i < 3 && !recovered; ++i) recovered = victim->ping().has_value();
    BOOST_TEST(recovered);
}

// Multi-host connection strings: a dead first host is skipped (target_session_attrs=read-write).
BOOST_AUTO_TEST_CASE(multi_host_url_finds_the_live_primary) {
    storage::PgConnectOptions o;
    o.url = "postgresql://idem@127.0.0.1:" + std::to_string(pgtest::closedPort()) + ",127.0.0.1:" +
            std::to_string(pgtest::servicePort()) + "/idem?target_session_attrs=read-write";
    auto c = storage::PgConnection::connect(o, {});
    BOOST_REQUIRE_MESSAGE(c.has_value(), (c ? std::string() : c.error().message));
    auto r = (*c)->exec("SELECT current_setting('application_name') = 'idemgate'");
    BOOST_TEST((r && r->boolean(0, 0).value_or(false)));

    o.url = "host=127.0.0.1 port=" + std::to_string(pgtest::servicePort()) + " dbname=idem user=idem";
    o.password = "unused-with-trust";
    BOOST_TEST(storage::PgConnection::connect(o, {}).has_value());
}

// The pool is bounded: with every connection leased, a caller waits poolWaitTimeout, then Unavailable.
BOOST_AUTO_TEST_CASE(pool_is_bounded) {
    storage::PgConnectOptions o;
    o.url = pgtest::urlFor(pgtest::servicePort());
    const std::vector<storage::PgStatement> st{{"one", "SELECT $1::int8 + 1", {PgType::Int8}}};
    storage::PgPool pool(o, st, 1, Millis{100});
    {
        auto held = pool.acquire();
        BOOST_REQUIRE(held.has_value());
        auto waited = pool.acquire();
        BOOST_REQUIRE(!waited.has_value());
        BOOST_TEST((waited.error().kind == StoreError::Kind::Unavailable));
    }
    const PgParam p[] = {PgParam::int8(41)};
    auto r = pool.execPrepared("one", p);
    BOOST_TEST((r && r->int8(0, 0).value_or(0) == 42));
}

BOOST_AUTO_TEST_SUITE_END()
