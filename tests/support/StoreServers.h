#pragma once
// Store servers and helpers for the end-to-end tests that run two idemgate instances over one store:
// private PostgreSQL / redis-server / Redis Cluster instances that a test can stop and start again on the
// same port and data directory, psql and redis-cli helpers to inspect or damage what the gateways stored,
// a config builder for a pair of gateways, and a pair of gateway processes that can be killed or restarted.
//
// Every server listens on 127.0.0.1 on a free port with its files in a test's TempDir, and is stopped by
// its PID when its object dies (also when the test fails).

#include "tests/support/E2E.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace idem::test {

// ---------------------------------------------------------------- processes and polling

struct CommandResult {
    int status = -1;  ///< exit status, 128+signal, or -1 when it was killed for running too long
    std::string output;  ///< stdout and stderr
};

/// Runs argv (argv[0] is looked up in PATH) with stdin from /dev/null, capturing its output.
CommandResult runCommand(const std::vector<std::string>& argv, Millis timeout = Millis(60000));
/// runCommand, and throws std::runtime_error naming the command and its output unless it exits 0.
std::string runChecked(const std::vector<std::string>& argv, Millis timeout = Millis(60000));

/// The process exists and is not a zombie (/proc/PID/stat; kill -0 answers for zombies too).
bool pidAlive(pid_t pid);

/// A lowercase identifier unique to this test process and call: prefix + pid + counter ([a-z0-9_]).
std::string uniqueName(const std::string& prefix);

/// A free loopback port P whose P+10000 (the Redis Cluster bus port) was free as well.
std::uint16_t freePortPair();

// ---------------------------------------------------------------- PostgreSQL

/// Directory of the PostgreSQL 15 binaries (IDEM_PG_BIN or /usr/lib/postgresql/15/bin).
std::string pgBin();

/// Runs one SQL command through psql against `url`; returns its unaligned, tuples-only output without the
/// trailing newline. Throws std::runtime_error when psql fails.
std::string psql(const std::string& url, const std::string& sql);

/// A PostgreSQL 15 of its own (tests/support/pg-service.sh start) in `dir`/pg, which a test can stop and
/// start again on the same port and data directory. Stopped by PID when destroyed.
class PrivatePostgres {
public:
    explicit PrivatePostgres(const TempDir& dir);
    ~PrivatePostgres();
    PrivatePostgres(const PrivatePostgres&) = delete;
    PrivatePostgres& operator=(const PrivatePostgres&) = delete;

    const std::string& url() const { return url_; }
    std::uint16_t port() const { return port_; }
    /// pg_ctl stop -m fast (SIGKILL by PID if that fails); returns once the postmaster is gone.
    void stop();
    /// pg_ctl start on the same port and data directory; returns once it accepts connections.
    void start();

private:
    void writeEnv() const;

    std::string dir_;
    std::string data_;
    std::string bin_;
    std::string url_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    bool running_ = false;
};

// ---------------------------------------------------------------- Redis

/// redis-cli -h HOST -p PORT ARGS... against `address` (host:port); returns its output without the
/// trailing newline. Throws std::runtime_error when redis-cli fails or answers an error.
std::string redisCli(const std::string& address, const std::vector<std::string>& args);
/// The keys matching `pattern` on that node (SCAN, so also on a cluster node: its own keys only).
std::vector<std::string> redisKeys(const std::string& address, const std::string& pattern);
/// redis-cli's exit status and output, without throwing.
CommandResult redisCliRaw(const std::string& address, const std::vector<std::string>& args);

/// One redis-server of its own in `dir`, nothing persisted; stop() and start() keep the port.
class PrivateRedis {
public:
    /// `extra`: further redis-server arguments (the cluster nodes' --cluster-enabled ...).
    explicit PrivateRedis(const TempDir& dir, const std::string& name = "redis", std::vector<std::string> extra = {});
    ~PrivateRedis();
    PrivateRedis(const PrivateRedis&) = delete;
    PrivateRedis& operator=(const PrivateRedis&) = delete;

    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    std::uint16_t port() const { return port_; }
    /// SIGTERM (SIGKILL after a bound), waits for the exit.
    void stop();
    /// Starts it again on the same port; returns once it answers PING.
    void start();

private:
    std::vector<std::string> argv() const;

    std::string dir_;
    std::string name_;
    std::vector<std::string> extra_;
    std::uint16_t port_ = 0;
    std::unique_ptr<Process> process_;
};

/// A three-master Redis Cluster of its own in `dir`; stop() and start() stop and start every node, which
/// come back with the same ports, node ids and slots (their nodes-N.conf files), and no data.
class PrivateRedisCluster {
public:
    explicit PrivateRedisCluster(const TempDir& dir);
    PrivateRedisCluster(const PrivateRedisCluster&) = delete;
    PrivateRedisCluster& operator=(const PrivateRedisCluster&) = delete;

    std::vector<std::string> nodes() const;
    void stop();
    /// Starts every node again; returns once every node reports cluster_state:ok.
    void start();

private:
    bool healthy() const;
    std::vector<std::unique_ptr<PrivateRedis>> nodes_;
};

// ---------------------------------------------------------------- two gateways

/// Routes of the two-instance config (all POST; tenant from Authorization):
///   /v1/payments       upstream `up` (timeout 10s), lease 15s, JSON fingerprint, forward_key client
///   /v1/b04/hold       upstream `short` (timeout 3s), lease 4s, on_unknown hold, forward_key derived
///   /v1/b04/release    upstream `short` (timeout 3s), lease 4s, on_unknown release, forward_key derived
///   /v1/open           upstream `up`, store_failure open, forward_key client
struct TwoInstanceRoutes {
    static constexpr int kShortLeaseMs = 4000;
    static constexpr int kShortTimeoutMs = 3000;
    static constexpr int kPaymentsLeaseMs = 15000;
};

/// The config of one of the two gateways: listen port, the mock upstream's port, and the `store:` section
/// (a YAML block starting with "store:\n").
std::string twoInstanceConfig(std::uint16_t gatewayPort, std::uint16_t upstreamPort, const std::string& storeYaml);

/// Gateways "a" (index 0) and "b" (index 1), each on its own free port with the same routes and store.
class GatewayPair {
public:
    GatewayPair(const TempDir& dir, std::uint16_t upstreamPort, const std::string& storeYaml);
    std::uint16_t port(int i) const { return ports_.at(static_cast<std::size_t>(i)); }
    Gateway& gateway(int i) { return *gateways_.at(static_cast<std::size_t>(i)); }
    /// SIGKILL, and wait until the process is gone.
    void kill(int i);
    /// SIGTERM and wait for exit (returns its exit status), without starting it again.
    int stop(int i);
    /// Starts instance i again (same name, config and port) after kill() or stop().
    void start(int i);
    /// stop() then start(); returns the exit status of the stop.
    int restart(int i);
    /// Both logs, for failure messages.
    std::string logs() const;

private:
    const TempDir& dir_;
    std::array<std::uint16_t, 2> ports_{};
    std::array<std::string, 2> yaml_;
    std::array<std::unique_ptr<Gateway>, 2> gateways_;
};

}  // namespace idem::test
