// The PostgreSQL multiplexer (storage/PgMultiplexer.h) against the `postgres` fixture: statements of
// concurrent callers share round trips and each caller gets its own result; a batch runs in lock-key order
// in one transaction; a statement that fails fails alone while the rest of its batch takes effect once; a
// statement that cannot be sent before its deadline is never run; a killed backend fails only what it held
// and the next call reconnects. Each test case uses tables of its own.
#define BOOST_TEST_MODULE pg_multiplexer
#include <boost/test/unit_test.hpp>

#include "storage/PgConnection.h"
#include "storage/PgMultiplexer.h"
#include "tests/conformance/StoreConformanceSupport.h"
#include "tests/support/ServiceEnv.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace idem;
using namespace idem::test;
using storage::PgParam;
using storage::PgType;
using Clock = std::chrono::steady_clock;

namespace {

std::string url() { return "postgresql://idem@127.0.0.1:" + serviceEnv("postgres", "IDEM_PG_PORT") + "/idem"; }

storage::PgConnectOptions options(const std::string& app) {
    storage::PgConnectOptions o;
    o.url = url();
    o.statementTimeout = Millis{5000};
    o.applicationName = app;
    return o;
}

/// A table (k text primary key, seq bigint) and a sequence of its own, dropped at the end, plus a
/// multiplexer whose prepared statements use them.
struct Fx {
    const std::string suffix = randomHex(6);
    const std::string table = "mux_" + suffix;
    const std::string app = "idem-mux-" + suffix;
    std::unique_ptr<storage::PgConnection> admin;

    explicit Fx() {
        auto c = storage::PgConnection::connect(options("idem-mux-admin"), {});
        if (!c) throw std::runtime_error("admin connection: " + c.error().message);
        admin = std::move(*c);
        run("CREATE TABLE " + table + " (k text PRIMARY KEY, seq bigint NOT NULL)");
        run("CREATE SEQUENCE " + table + "_seq");
    }
    ~Fx() {
        try {
            run("DROP TABLE IF EXISTS " + table);
            run("DROP SEQUENCE IF EXISTS " + table + "_seq");
        } catch (const std::exception& e) {
            BOOST_TEST_MESSAGE("cleanup: " << e.what());
        }
    }

    storage::PgResult run(const std::string& sql) {
        auto r = admin->exec(sql);
        if (!r) throw std::runtime_error(sql + ": " + r.error().message);
        return std::move(*r);
    }
    std::int64_t count(const std::string& sql) {
        auto n = run(sql).int8(0, 0);
        if (!n) throw std::runtime_error(sql + ": " + n.error().message);
        return *n;
    }

    std::unique_ptr<storage::PgMultiplexer> mux(std::size_t connections) {
        std::vector<storage::PgStatement> st{
            {"ins", "INSERT INTO " + table + " (k, seq) VALUES ($1, nextval('" + table + "_seq'))", {PgType::Text}},
            {"sleep", "SELECT pg_sleep($1::int / 1000.0)", {PgType::Int4}},
            {"div", "SELECT 1 / $1::int", {PgType::Int4}},
        };
        return std::make_unique<storage::PgMultiplexer>(options(app), std::move(st), connections);
    }
};

const std::string kIns = "ins", kSleep = "sleep", kDiv = "div";

Result<storage::PgResult> insert(storage::PgMultiplexer& m, const std::string& key, Millis sendWait = Millis{5000}) {
    const PgParam p[] = {PgParam::text(key)};
    return m.execPrepared(kIns, p, key, Clock::now() + sendWait);
}

Result<storage::PgResult> sleepMs(storage::PgMultiplexer& m, int ms) {
    const PgParam p[] = {PgParam::int4(ms)};
    return m.execPrepared(kSleep, p, {}, Clock::now() + Millis{5000});
}

/// Occupies both channels of a one-connection multiplexer (a batching one and its idle twin) with a sleep
/// each, so that the calls made meanwhile queue on the batching channel and leave in ONE batch. Threads
/// only count (Boost.Test's checks are not thread-safe); the test checks the counts once they joined.
struct Occupied {
    std::atomic<int> failures{0};
    std::thread a, b;
    Occupied(storage::PgMultiplexer& m, int ms) {
        a = std::thread([this, &m, ms] { failures += sleepMs(m, ms).has_value() ? 0 : 1; });
        std::this_thread::sleep_for(Millis{30});
        b = std::thread([this, &m, ms] { failures += sleepMs(m, ms).has_value() ? 0 : 1; });
        std::this_thread::sleep_for(Millis{30});
    }
    /// Joins both sleeps; how many failed.
    int join() {
        if (a.joinable()) a.join();
        if (b.joinable()) b.join();
        return failures.load();
    }
    ~Occupied() { join(); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_statements_share_round_trips_and_keep_their_results) {
    Fx fx;
    auto m = fx.mux(1);
    constexpr int kThreads = 16, kEach = 40;
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                auto r = insert(*m, "k-" + std::to_string(t) + "-" + std::to_string(i));
                if (!r || r->affectedRows() != 1) ++bad;
            }
        });
    for (auto& th : threads) th.join();
    BOOST_TEST(bad.load() == 0);
    BOOST_TEST(fx.count("SELECT count(*) FROM " + fx.table) == kThreads * kEach);
    const auto s = m->stats();
    BOOST_TEST(s.statements == std::uint64_t{kThreads * kEach});
    BOOST_TEST(s.roundTrips < s.statements);  // they met on the connections
    BOOST_TEST(s.connects <= m->connections());
}

BOOST_AUTO_TEST_CASE(a_batch_runs_in_lock_key_order) {
    Fx fx;
    auto m = fx.mux(1);
    std::atomic<int> inserted{0};
    {
        Occupied busy(*m, 400);
        std::vector<std::thread> callers;
        for (const char* k : {"c", "a", "d", "b"}) {
            callers.emplace_back([&, k] { inserted += insert(*m, k).has_value() ? 1 : 0; });
            std::this_thread::sleep_for(Millis{5});
        }
        for (auto& th : callers) th.join();
        BOOST_TEST(busy.join() == 0);
    }
    BOOST_TEST(inserted.load() == 4);
    BOOST_TEST(m->stats().roundTrips == 3u);  // two sleeps, one batch of four
    auto r = fx.run("SELECT string_agg(k, '' ORDER BY seq) FROM " + fx.table);
    BOOST_TEST(std::string(r.bytes(0, 0)) == "abcd");
}

BOOST_AUTO_TEST_CASE(a_failing_statement_fails_alone_and_the_rest_of_its_batch_takes_effect_once) {
    Fx fx;
    auto m = fx.mux(1);
    std::atomic<int> inserted{0};
    Result<storage::PgResult> failed = std::unexpected(StoreError{});
    {
        Occupied busy(*m, 400);
        std::vector<std::thread> callers;
        for (int i = 0; i < 3; ++i)
            callers.emplace_back([&, i] {
                auto r = insert(*m, "ok-" + std::to_string(i));
                if (r && r->affectedRows() == 1) ++inserted;
            });
        std::this_thread::sleep_for(Millis{5});
        callers.emplace_back([&] {
            const PgParam zero[] = {PgParam::int4(0)};
            failed = m->execPrepared(kDiv, zero, "ok-1", Clock::now() + Millis{5000});  // sorted mid-batch
        });
        std::this_thread::sleep_for(Millis{5});
        for (int i = 3; i < 6; ++i)
            callers.emplace_back([&, i] {
                auto r = insert(*m, "ok-" + std::to_string(i));
                if (r && r->affectedRows() == 1) ++inserted;
            });
        for (auto& th : callers) th.join();
        BOOST_TEST(busy.join() == 0);
    }
    BOOST_TEST(m->stats().roundTrips == 3u);  // the seven statements went out together
    BOOST_REQUIRE(!failed.has_value());
    BOOST_TEST(failed.error().message.find("22012") != std::string::npos, failed.error().message);
    BOOST_TEST(inserted.load() == 6);
    BOOST_TEST(fx.count("SELECT count(*) FROM " + fx.table) == 6);
    // The connection is still good.
    BOOST_TEST(insert(*m, "after").has_value());
    BOOST_TEST(m->stats().connects == 2u);  // the batching channel and its twin, never reopened
}

BOOST_AUTO_TEST_CASE(a_statement_not_sent_before_its_deadline_never_runs) {
    Fx fx;
    auto m = fx.mux(1);
    Result<storage::PgResult> late = std::unexpected(StoreError{});
    {
        Occupied busy(*m, 400);
        late = insert(*m, "late", Millis{50});
        BOOST_TEST(busy.join() == 0);
    }
    BOOST_REQUIRE(!late.has_value());
    BOOST_TEST((late.error().kind == StoreError::Kind::Unavailable));
    BOOST_TEST(late.error().message.find("not sent") != std::string::npos, late.error().message);
    std::this_thread::sleep_for(Millis{100});
    BOOST_TEST(fx.count("SELECT count(*) FROM " + fx.table) == 0);
}

BOOST_AUTO_TEST_CASE(killed_backends_fail_what_they_held_and_the_next_call_reconnects) {
    Fx fx;
    auto m = fx.mux(1);
    BOOST_REQUIRE(insert(*m, "before").has_value());
    // Killed while idle: the next call notices (idle check) and reconnects; nothing fails.
    BOOST_TEST(fx.count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
                        fx.app + "'") >= 1);
    std::this_thread::sleep_for(Millis{50});
    auto again = insert(*m, "after-idle-kill");
    BOOST_TEST(again.has_value(), (again ? "" : again.error().message));
    // Killed mid-statement: that call fails as Unavailable; the next one reconnects.
    Result<storage::PgResult> held = std::unexpected(StoreError{});
    std::thread t([&] { held = sleepMs(*m, 2000); });
    std::this_thread::sleep_for(Millis{300});
    BOOST_TEST(fx.count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
                        fx.app + "' AND query LIKE '%pg_sleep%'") == 1);
    t.join();
    BOOST_REQUIRE(!held.has_value());
    BOOST_TEST((held.error().kind == StoreError::Kind::Unavailable), held.error().message);
    auto last = insert(*m, "after-busy-kill");
    BOOST_TEST(last.has_value(), (last ? "" : last.error().message));
    BOOST_TEST(fx.count("SELECT count(*) FROM " + fx.table) == 3);
}
