// conformance_memory: the shared store suite (StoreConformanceCases.h) over the MemoryStore on fake
// time, plus memory-only cases: the record cap (Full, never evicting), purge counts, the sweeper on
// real time, and concurrent use from many threads.
#define BOOST_TEST_MODULE conformance_memory
#include <boost/test/unit_test.hpp>

#include "tests/conformance/StoreConformanceSupport.h"

#include "storage/MemoryStore.h"
#include "tests/support/ManualClock.h"

#include <set>

#include <array>
#include <tuple>

namespace idem::test {

/// Conformance fixture: a fresh MemoryStore on a ManualClock. The sweeper runs every 5 ms of real time,
/// so it races every case's calls (expiry is still decided by the fake clock).
struct MemoryFx {
    static constexpr const char* kName = "memory";
    static constexpr bool kNetworked = false;
    static constexpr Millis kTtlUnit{1000};
    static constexpr std::size_t kMaxResponseBytes = kMinConformanceResponseBytes;

    MemoryFx() : clock_(std::make_shared<ManualClock>()), store_(config(), limits(), clock_) {}

    storage::Store& store() { return store_; }
    void advance(Millis d) { clock_->advance(d); }
    std::unique_ptr<storage::Store> makeUnreachable() { return nullptr; }
    std::unique_ptr<storage::Store> makeVia(std::uint16_t) { return nullptr; }
    std::pair<std::string, std::uint16_t> endpoint() { return {}; }

    static storage::MemoryStoreConfig config() {
        storage::MemoryStoreConfig c;
        c.sweepInterval = Millis{5};
        return c;
    }
    static storage::StoreLimits limits() {
        storage::StoreLimits l;
        l.maxResponseBytes = kMaxResponseBytes;
        return l;
    }

    std::shared_ptr<ManualClock> clock_;
    storage::MemoryStore store_;
};

}  // namespace idem::test

using StoreFixtures = std::tuple<idem::test::MemoryFx>;

BOOST_AUTO_TEST_SUITE(memory)
#include "tests/conformance/StoreConformanceCases.h"
BOOST_AUTO_TEST_SUITE_END()

namespace idem::test {
namespace {

using storage::MemoryStore;
using storage::MemoryStoreConfig;
using std::chrono::seconds;

storage::StoreLimits smallLimits() {
    storage::StoreLimits l;
    l.maxResponseBytes = 64 * 1024;
    return l;
}

MemoryStoreConfig capped(std::size_t maxRecords, std::size_t shards, Millis sweep) {
    MemoryStoreConfig c;
    c.maxRecords = maxRecords;
    c.shards = shards;
    c.sweepInterval = sweep;
    return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memory_only)

BOOST_AUTO_TEST_CASE(invalidConfigurationIsRejected) {
    auto clock = std::make_shared<ManualClock>();
    BOOST_CHECK_THROW(MemoryStore(capped(10, 0, Millis{0}), smallLimits(), clock), std::invalid_argument);
    BOOST_CHECK_THROW(MemoryStore(capped(0, 4, Millis{0}), smallLimits(), clock), std::invalid_argument);
    BOOST_CHECK_THROW(MemoryStore(capped(10, 4, Millis{0}), smallLimits(), nullptr), std::invalid_argument);
    MemoryStore ok(capped(10, 4, Millis{0}), smallLimits(), clock);
    BOOST_TEST(ok.name() == "memory");
    BOOST_TEST(ok.size() == 0u);
}

// At the cap a new key is refused with Full; held and completed records stay, existing keys keep
// working, and once records are released or expire new keys are accepted again.
BOOST_AUTO_TEST_CASE(capRefusesNewKeysAndNeverEvicts) {
    auto clock = std::make_shared<ManualClock>();
    constexpr std::size_t kCap = 8;
    MemoryStore store(capped(kCap, 4, Millis{0}), smallLimits(), clock);
    Ids ids("memory");
    const auto fp = fingerprintOf("cap");
    std::vector<storage::RecordId> keys;
    std::vector<storage::Token> owners;
    for (std::size_t i = 0; i < kCap; ++i) {
        keys.push_back(ids.next());
        owners.push_back(newToken());
        const auto r = store.begin(keys[i], fp, owners[i], seconds(1), seconds(10));
        BOOST_TEST_REQUIRE(isOwnedBy(r, owners[i]), describe(r));
    }
    for (std::size_t i = 0; i < kCap / 2; ++i)
        BOOST_TEST_REQUIRE(isOk(store.complete(keys[i], owners[i], response("cap" + std::to_string(i)), seconds(10))));
    BOOST_TEST(store.size() == kCap);

    auto r = store.begin(ids.next(), fp, newToken(), seconds(1), seconds(10));
    BOOST_TEST(failsWith(r, StoreError::Kind::Full), describe(r));
    r = store.takeover(ids.next(), fp, newToken(), newToken(), seconds(1), seconds(10));
    BOOST_TEST(failsWith(r, StoreError::Kind::Full), "takeover of a new key: " << describe(r));
    BOOST_TEST(store.size() == kCap);
    for (std::size_t i = 0; i < kCap; ++i) {
        r = store.begin(keys[i], fp, newToken(), seconds(1), seconds(10));
        if (i < kCap / 2) BOOST_TEST(isDoneWith(r, response("cap" + std::to_string(i))), describe(r));
        else BOOST_TEST(as<InProgress>(r), describe(r));
    }
    r = store.begin(keys[kCap - 1], fp, owners[kCap - 1], seconds(1), seconds(10));
    BOOST_TEST(isOwnedBy(r, owners[kCap - 1]), "existing key at the cap: " << describe(r));

    // A release frees exactly one slot.
    BOOST_TEST_REQUIRE(isTrue(store.release(keys[kCap - 1], owners[kCap - 1])));
    const auto t = newToken();
    r = store.begin(ids.next(), fp, t, seconds(1), seconds(10));
    BOOST_TEST(isOwnedBy(r, t), describe(r));
    r = store.begin(ids.next(), fp, newToken(), seconds(1), seconds(10));
    BOOST_TEST(failsWith(r, StoreError::Kind::Full), describe(r));

    // Once everything expired (nothing purged explicitly, no sweeper), the whole cap is usable again.
    clock->advance(seconds(11));
    for (std::size_t i = 0; i < kCap; ++i) {
        const auto fresh = newToken();
        r = store.begin(ids.next(), fp, fresh, seconds(1), seconds(10));
        BOOST_TEST(isOwnedBy(r, fresh), "after expiry, key " << i << ": " << describe(r));
    }
    r = store.begin(ids.next(), fp, newToken(), seconds(1), seconds(10));
    BOOST_TEST(failsWith(r, StoreError::Kind::Full), describe(r));
    BOOST_TEST(store.size() == kCap);
}

// purgeExpired removes expired records only, at most `batch` per call, and reports the count.
BOOST_AUTO_TEST_CASE(purgeCountsExpiredRecordsInBatches) {
    auto clock = std::make_shared<ManualClock>();
    MemoryStore store(capped(100, 4, Millis{0}), smallLimits(), clock);
    Ids ids("memory");
    const auto fp = fingerprintOf("purge-count");
    for (int i = 0; i < 3; ++i) {
        const auto t = newToken();
        BOOST_TEST_REQUIRE(isOwnedBy(store.begin(ids.next(), fp, t, seconds(1), seconds(2)), t));
    }
    for (int i = 0; i < 2; ++i) {
        const auto t = newToken();
        BOOST_TEST_REQUIRE(isOwnedBy(store.begin(ids.next(), fp, t, seconds(1), seconds(60)), t));
    }
    auto n = store.purgeExpired(100);
    BOOST_TEST((n && *n == 0u), "nothing expired yet: " << describe(n));
    clock->advance(seconds(2));  // expiresAt == now: expired
    n = store.purgeExpired(1);
    BOOST_TEST((n && *n == 1u), describe(n));
    n = store.purgeExpired(100);
    BOOST_TEST((n && *n == 2u), describe(n));
    n = store.purgeExpired(100);
    BOOST_TEST((n && *n == 0u), describe(n));
    BOOST_TEST(store.size() == 2u);
}

// The expiry index keeps one lane per lease/retention span (and a mixed lane past 16 spans): records of
// many spans, indexed in shuffled order and moved by complete(), still expire exactly at their time,
// earliest first, with nothing removed early and nothing left behind.
BOOST_AUTO_TEST_CASE(expiryOrderHoldsAcrossManySpansAndMoves) {
    auto clock = std::make_shared<ManualClock>();
    MemoryStore store(capped(1000, 1, Millis{0}), smallLimits(), clock);  // one shard: one index
    Ids ids("lanes");
    const auto fp = fingerprintOf("lanes");
    // 24 spans (8 past the lane limit), 5 records each, interleaved; every third one is completed a
    // little later with a retention of its own, which moves it to another lane.
    std::multiset<long> expiries;  // seconds from the start at which each record expires
    long now = 0;
    for (int round = 0; round < 5; ++round) {
        for (int span = 24; span >= 1; --span) {
            const auto id = ids.next();
            const auto t = newToken();
            BOOST_TEST_REQUIRE(isOwnedBy(store.begin(id, fp, t, seconds(span), seconds(span)), t));
            if ((span + round) % 3 == 0) {
                clock->advance(seconds(1));
                ++now;
                const long retention = (span * 7) % 30 + 1;
                storage::StoredResponse response;
                response.status = 201;
                BOOST_TEST_REQUIRE(store.complete(id, t, response, seconds(retention)).has_value());
                expiries.insert(now + retention);
            } else {
                expiries.insert(now + span);
            }
        }
    }
    BOOST_TEST(store.size() == 120u);
    // Step through time from here: at every second exactly the records due by then are purged.
    for (long at = now; !expiries.empty(); ++at) {
        if (at > now) clock->advance(seconds(1));
        const auto last = expiries.upper_bound(at);
        const auto due = static_cast<std::size_t>(std::distance(expiries.begin(), last));
        const auto n = store.purgeExpired(1000);
        BOOST_TEST_REQUIRE((n && *n == due), "at " << at << "s: " << describe(n) << " purged, " << due << " due");
        expiries.erase(expiries.begin(), last);
        BOOST_TEST_REQUIRE(store.size() == expiries.size());
    }
    BOOST_TEST(store.size() == 0u);
}

// The sweeper alone (real clock, 50 ms interval) reclaims expired records: no purge call, no begin.
BOOST_AUTO_TEST_CASE(sweeperReclaimsExpiredRecords) {
    constexpr std::size_t kCap = 64;
    MemoryStore store(capped(kCap, 8, Millis{50}), smallLimits(), std::make_shared<core::SystemClock>());
    Ids ids("memory");
    const auto fp = fingerprintOf("sweeper");
    for (std::size_t i = 0; i < kCap; ++i) {
        const auto id = ids.next();
        const auto t = newToken();
        const auto r = store.begin(id, fp, t, Millis{5}, Millis{20});
        BOOST_TEST_REQUIRE(isOwnedBy(r, t), describe(r));
        if (i % 2 == 0) BOOST_TEST_REQUIRE(isOk(store.complete(id, t, response("x"), Millis{20})));
    }
    BOOST_TEST(store.size() == kCap);
    // Bounded wait (not a timing assertion): the sweeper gets up to 30 s to do what takes ~70 ms.
    for (int i = 0; i < 3000 && store.size() > 0; ++i) std::this_thread::sleep_for(Millis{10});
    BOOST_TEST(store.size() == 0u);
    const auto t = newToken();
    const auto r = store.begin(ids.next(), fp, t, seconds(10), seconds(10));
    BOOST_TEST(isOwnedBy(r, t), describe(r));
}

// 8 threads hammer 32 keys with begin / resend / complete / release: never two owners of one key at
// once, no owner lost (every owner's release succeeds; afterwards no key is stuck in flight), at most
// one completion per key, and every replay is the response its completer stored.
BOOST_AUTO_TEST_CASE(concurrentUseHasNoLostOrDuplicatedOwner) {
    constexpr int kThreads = 8;
    constexpr int kKeys = 32;
    constexpr int kOpsPerThread = 4000;
    auto clock = std::make_shared<ManualClock>();  // never advanced: leases never lapse
    MemoryStore store(capped(1000, 8, Millis{1}), smallLimits(), clock);
    Ids ids("memory");
    const auto fp = fingerprintOf("hammer");
    std::vector<storage::RecordId> keys;
    for (int i = 0; i < kKeys; ++i) keys.push_back(ids.next());

    struct KeyState {
        std::atomic<int> holders{0};
        std::atomic<int> completions{0};
        std::mutex mu;
        std::string completedBy;  // token of the completer, written before its complete call
    };
    std::array<KeyState, kKeys> state;
    std::atomic<int> duplicated{0}, lost{0}, badReplay{0}, unexpected{0}, owned{0}, done{0};

    {
        std::vector<std::jthread> threads;
        for (int th = 0; th < kThreads; ++th)
            threads.emplace_back([&, th] {
                std::mt19937 rng(static_cast<unsigned>(th) * 7919u + 1);
                for (int op = 0; op < kOpsPerThread; ++op) {
                    const int k = static_cast<int>(rng() % kKeys);
                    KeyState& ks = state[k];
                    const auto t = newToken();
                    const auto r = store.begin(keys[k], fp, t, seconds(60), seconds(600));
                    if (isOwnedBy(r, t)) {
                        ++owned;
                        if (ks.holders.fetch_add(1) != 0) ++duplicated;
                        if (!isOwnedBy(store.begin(keys[k], fp, t, seconds(60), seconds(600)), t)) ++lost;
                        const bool finish = rng() % 16 == 0;
                        ks.holders.fetch_sub(1);
                        if (finish) {
                            {
                                std::lock_guard lock(ks.mu);
                                ks.completedBy = t;
                            }
                            StoredResponse resp = response("hammer");
                            resp.body = t;
                            if (isOk(store.complete(keys[k], t, resp, seconds(600)))) ++ks.completions;
                            else ++lost;
                        } else if (!isTrue(store.release(keys[k], t))) {
                            ++lost;
                        }
                    } else if (const Done* d = as<Done>(r)) {
                        ++done;
                        std::lock_guard lock(ks.mu);
                        if (!d->response.body || *d->response.body != ks.completedBy) ++badReplay;
                    } else if (!as<InProgress>(r)) {
                        ++unexpected;
                    }
                }
            });
    }
    BOOST_TEST(duplicated.load() == 0);
    BOOST_TEST(lost.load() == 0);
    BOOST_TEST(badReplay.load() == 0);
    BOOST_TEST(unexpected.load() == 0);
    BOOST_TEST(owned.load() > 0);
    std::size_t completedKeys = 0;
    for (int k = 0; k < kKeys; ++k) {
        BOOST_TEST(state[k].completions.load() <= 1, "key " << k);
        const auto t = newToken();
        const auto r = store.begin(keys[k], fp, t, seconds(60), seconds(600));
        if (state[k].completions.load() == 1) {
            ++completedKeys;
            const Done* d = as<Done>(r);
            BOOST_TEST((d && d->response.body == state[k].completedBy), "key " << k << ": " << describe(r));
        } else {
            BOOST_TEST(isOwnedBy(r, t), "key " << k << " must be free: " << describe(r));
        }
    }
    BOOST_TEST(store.size() == static_cast<std::size_t>(kKeys));
    BOOST_TEST_MESSAGE(owned.load() << " ownerships, " << done.load() << " replays, " << completedKeys
                                    << " keys completed");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace idem::test

// FaultProxy (tests/support/FaultProxy.h) is what the networked suites' case 20 relies on; it is checked
// here, in the one conformance binary that needs no external service, against an in-process echo server.
namespace idem::test {
namespace {

/// Loopback echo server counting the bytes it received. Stops and joins in its destructor.
class EchoServer {
public:
    EchoServer() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            throw std::runtime_error("EchoServer: cannot listen");
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] {
            while (!stop_.load()) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 20) <= 0) continue;
                const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0) continue;
                std::lock_guard lock(mu_);
                workers_.emplace_back([this, c] { serve(c); });
            }
        });
    }
    ~EchoServer() {
        stop_.store(true);
        acceptor_.join();
        for (auto& w : workers_) w.join();
        ::close(fd_);
    }
    std::uint16_t port() const { return port_; }
    std::size_t received() const { return received_.load(); }

private:
    void serve(int c) {
        char buf[4096];
        while (!stop_.load()) {
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            received_.fetch_add(static_cast<std::size_t>(n));
            if (::send(c, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
        }
        ::close(c);
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> received_{0};
    std::mutex mu_;
    std::vector<std::thread> workers_;
    std::thread acceptor_;
};

/// A blocking client socket connected to 127.0.0.1:port; reads give up after `readTimeout`.
int connectTo(std::uint16_t port, Millis readTimeout) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("cannot connect to the proxy");
    timeval tv{static_cast<time_t>(readTimeout.count() / 1000),
               static_cast<suseconds_t>((readTimeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

enum class ReadResult { Data, Silence, Closed };

/// Reads once: Data (appended to `out`), Silence (read timeout) or Closed (EOF or reset).
ReadResult readOnce(int fd, std::string& out) {
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        return ReadResult::Data;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ReadResult::Silence;
    return ReadResult::Closed;
}

bool sendAll(int fd, std::string_view data) {
    return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

/// Waits (bounded, 10 s) until `pred` holds.
template <class Pred>
bool eventually(Pred pred) {
    for (int i = 0; i < 1000; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(Millis{10});
    }
    return pred();
}

constexpr Millis kAnswer{10'000};  // an answer that is due arrives well within this
constexpr Millis kQuiet{200};      // silence is checked over this long (a late byte would still fail later reads)

}  // namespace

BOOST_AUTO_TEST_SUITE(fault_proxy)

BOOST_AUTO_TEST_CASE(passForwardsBothWays) {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port());
    const int c = connectTo(proxy.port(), kAnswer);
    BOOST_TEST_REQUIRE(sendAll(c, "hello"));
    std::string got;
    while (got.size() < 5 && readOnce(c, got) == ReadResult::Data) {
    }
    BOOST_TEST(got == "hello");
    ::close(c);
    BOOST_TEST(proxy.accepted() == 1u);
}

BOOST_AUTO_TEST_CASE(blackholeNeitherForwardsNorAnswers) {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port());
    proxy.setMode(FaultProxy::Mode::Blackhole);
    const int c = connectTo(proxy.port(), kQuiet);
    BOOST_TEST_REQUIRE(sendAll(c, "lost"));
    std::string got;
    BOOST_TEST((readOnce(c, got) == ReadResult::Silence), got);
    BOOST_TEST(echo.received() == 0u);
    ::close(c);
}

BOOST_AUTO_TEST_CASE(dropRepliesForwardsButNeverAnswers) {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port());
    proxy.setMode(FaultProxy::Mode::DropReplies);
    const int c = connectTo(proxy.port(), kQuiet);
    BOOST_TEST_REQUIRE(sendAll(c, "acted"));
    BOOST_TEST(eventually([&] { return echo.received() == 5u; }));
    std::string got;
    BOOST_TEST((readOnce(c, got) == ReadResult::Silence), got);
    ::close(c);
}

BOOST_AUTO_TEST_CASE(dropNextReplyAndResetLosesTheAckOnly) {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port());
    const int c = connectTo(proxy.port(), kAnswer);
    BOOST_TEST_REQUIRE(sendAll(c, "warm"));
    std::string got;
    while (got.size() < 4 && readOnce(c, got) == ReadResult::Data) {
    }
    BOOST_TEST_REQUIRE(got == "warm");

    proxy.dropNextReplyAndReset(FaultProxy::Mode::Refuse);
    BOOST_TEST_REQUIRE(sendAll(c, "commit"));
    got.clear();
    BOOST_TEST((readOnce(c, got) == ReadResult::Closed), "reply leaked: " << got);
    BOOST_TEST(echo.received() == 10u);  // the request reached the server
    BOOST_TEST(proxy.resets() == 1u);
    BOOST_TEST((proxy.mode() == FaultProxy::Mode::Refuse));
    ::close(c);

    const int again = connectTo(proxy.port(), kAnswer);
    sendAll(again, "retry");  // may already fail: the proxy resets refused connections at once
    got.clear();
    BOOST_TEST((readOnce(again, got) == ReadResult::Closed), got);
    ::close(again);
    BOOST_TEST(echo.received() == 10u);
}

BOOST_AUTO_TEST_CASE(refuseResetsExistingConnections) {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port());
    const int c = connectTo(proxy.port(), kAnswer);
    BOOST_TEST_REQUIRE(sendAll(c, "up"));
    std::string got;
    while (got.size() < 2 && readOnce(c, got) == ReadResult::Data) {
    }
    BOOST_TEST_REQUIRE(got == "up");
    proxy.setMode(FaultProxy::Mode::Refuse);
    got.clear();
    BOOST_TEST((readOnce(c, got) == ReadResult::Closed), got);
    ::close(c);
    proxy.setMode(FaultProxy::Mode::Pass);
    const int fresh = connectTo(proxy.port(), kAnswer);
    BOOST_TEST_REQUIRE(sendAll(fresh, "back"));
    got.clear();
    while (got.size() < 4 && readOnce(fresh, got) == ReadResult::Data) {
    }
    BOOST_TEST(got == "back");
    ::close(fresh);
}

BOOST_AUTO_TEST_CASE(unreachableTargetResetsTheClient) {
    std::uint16_t closedPort = 0;
    {
        EchoServer gone;
        closedPort = gone.port();
    }
    FaultProxy proxy("127.0.0.1", closedPort);
    const int c = connectTo(proxy.port(), kAnswer);
    sendAll(c, "anyone?");
    std::string got;
    BOOST_TEST((readOnce(c, got) == ReadResult::Closed), got);
    ::close(c);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace idem::test
