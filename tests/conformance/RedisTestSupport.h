#pragma once
// Redis helpers shared by RedisConformance.cpp and ClusterConformance.cpp: service endpoints from the CTest
// fixtures, store configs for the fixtures, a plain admin connection (through the store's own
// RedisConnection), free and closed loopback ports, and RedisProcess, a redis-server owned by one test.
//
// Include at file scope, after StoreConformanceSupport.h. A missing service or redis-server binary throws:
// the tests fail, never skip.
// Thread-safety: Admin and RedisProcess are used from one thread at a time; the free functions are
// thread-safe.

#include "storage/RedisConnection.h"
#include "storage/StoreConfig.h"
#include "tests/support/ServiceEnv.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace idem::test::redistest {

using storage::HostPort;
using storage::RedisArgv;
using storage::RedisEndpoint;
using storage::RedisReply;

inline HostPort parseHostPort(const std::string& s) {
    auto e = storage::parseEndpoint(s);
    if (!e) throw std::runtime_error(e.error().message);
    return HostPort{e->host, e->port};
}

/// The standalone fixture server (IDEM_REDIS).
inline HostPort standaloneService() { return parseHostPort(serviceEnv("redis", "IDEM_REDIS")); }

/// The cluster fixture's nodes (IDEM_REDIS_CLUSTER).
inline std::vector<HostPort> clusterService() {
    const std::string list = serviceEnv("cluster", "IDEM_REDIS_CLUSTER");
    std::vector<HostPort> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        const auto comma = list.find(',', start);
        const auto item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) out.push_back(parseHostPort(item));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (out.empty()) throw std::runtime_error("IDEM_REDIS_CLUSTER lists no node");
    return out;
}

/// A loopback port the kernel just handed out and that nobody listens on now.
inline std::uint16_t unusedPort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot find a free loopback port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

/// A key prefix no other fixture instance, test or run uses.
inline std::string uniquePrefix() {
    static std::atomic<int> counter{0};
    return "idemtest:" + runId().substr(0, 12) + ":" + std::to_string(counter.fetch_add(1)) + ":";
}

inline storage::StoreLimits limits() {
    storage::StoreLimits l;
    l.maxResponseBytes = kMinConformanceResponseBytes;
    return l;
}

/// Settings of every test store: the suite runs up to 64 begins at once, so callers may wait for a
/// connection; the command timeout bounds the fault-proxy cases.
inline storage::RedisStoreConfig baseConfig(const std::string& prefix) {
    storage::RedisStoreConfig c;
    c.keyPrefix = prefix;
    c.poolSize = 16;
    c.connectTimeout = Millis{500};
    c.commandTimeout = Millis{700};
    c.poolWaitTimeout = Millis{5000};
    c.maxRedirects = 5;
    return c;
}

inline storage::RedisStoreConfig standaloneConfig(const std::string& prefix, HostPort address) {
    auto c = baseConfig(prefix);
    c.address = std::move(address);
    return c;
}

inline storage::RedisStoreConfig clusterConfig(const std::string& prefix, std::vector<HostPort> nodes) {
    auto c = baseConfig(prefix);
    c.nodes = std::move(nodes);
    return c;
}

/// The record key the stores use (RedisStore.h): <prefix>{<id>}.
inline std::string recordKey(const std::string& prefix, const std::string& id) { return prefix + "{" + id + "}"; }

/// A plain connection for inspecting and administering one node. Transport failures throw.
class Admin {
public:
    explicit Admin(const HostPort& node) : Admin(RedisEndpoint{node.host, node.port}) {}
    explicit Admin(const RedisEndpoint& node) {
        storage::RedisConnectionOptions o;
        o.connectTimeout = Millis{2000};
        o.commandTimeout = Millis{10000};
        auto c = storage::RedisConnection::open(node, o);
        if (!c) throw std::runtime_error("admin connection to " + node.str() + ": " + c.error().message);
        conn_ = std::move(*c);
    }

    RedisReply cmd(const RedisArgv& argv) {
        auto r = conn_->command(argv);
        if (!r) throw std::runtime_error("admin command on " + conn_->endpoint().str() + ": " + r.error().message);
        return std::move(*r);
    }
    /// A command that must not answer with an error reply.
    RedisReply ok(const RedisArgv& argv) {
        auto r = cmd(argv);
        if (r.isError()) {
            std::string text;
            for (auto a : argv) text += std::string(a.substr(0, 40)) + " ";
            throw std::runtime_error("admin " + text + "on " + conn_->endpoint().str() + ": " + r.errorText());
        }
        return r;
    }
    std::int64_t integer(const RedisArgv& argv) {
        auto r = ok(argv);
        if (!r.isInteger()) throw std::runtime_error("admin: expected an integer reply");
        return r.integer();
    }
    std::string text(const RedisArgv& argv) { return ok(argv).text(); }

    /// A number from INFO <section>: the `field=` value on the line `line:` ("commandstats", "cmdstat_eval",
    /// "calls"), or with an empty field the line's own value ("memory", "used_memory", ""). 0 if absent.
    std::int64_t infoCounter(const std::string& section, const std::string& line, const std::string& field) {
        const std::string info = "\n" + text({"INFO", section});
        const auto at = info.find("\n" + line + ":");
        if (at == std::string::npos) return 0;
        const auto eol = info.find('\n', at + 1);
        const std::string row = info.substr(at + 1, eol == std::string::npos ? std::string::npos : eol - at - 1);
        if (field.empty()) return std::stoll(row.substr(line.size() + 1));
        const auto f = row.find(field + "=");
        if (f == std::string::npos) return 0;
        return std::stoll(row.substr(f + field.size() + 1));
    }

    const RedisEndpoint& endpoint() const { return conn_->endpoint(); }

private:
    std::unique_ptr<storage::RedisConnection> conn_;
};

/// A redis-server owned by one test (for faults the shared fixtures must not see: memory full, restarts).
/// Started on a free loopback port in a temporary directory with the fixture's settings plus `extraArgs`;
/// stopped by PID (TERM, then KILL after a bound) and its directory removed on destruction.
class RedisProcess {
public:
    explicit RedisProcess(std::vector<std::string> extraArgs = {}) : extraArgs_(std::move(extraArgs)) {
        char tmpl[] = "/tmp/idem-redis-test-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
            port_ = unusedPort();
            if (!launch()) stop();
        }
        if (pid_ <= 0) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
            throw std::runtime_error("could not start a test redis-server (is redis-server installed?)");
        }
    }
    ~RedisProcess() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    RedisProcess(const RedisProcess&) = delete;
    RedisProcess& operator=(const RedisProcess&) = delete;

    HostPort address() const { return HostPort{"127.0.0.1", port_}; }
    std::uint16_t port() const { return port_; }

    /// Stops the server (TERM, KILL after 5 s) and waits for it to exit. Idempotent.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(Millis{10});
        }
        pid_ = -1;
    }

    /// Starts the server again on the same port (a restart: it comes back empty).
    void restart() {
        stop();
        for (int attempt = 0; attempt < 20 && pid_ <= 0; ++attempt) {
            if (!launch()) {
                stop();
                std::this_thread::sleep_for(Millis{100});
            }
        }
        if (pid_ <= 0) throw std::runtime_error("could not restart the test redis-server on its port");
    }

private:
    // Forks redis-server and waits (up to 10 s) until it answers PING. False if it exits first.
    bool launch() {
        std::vector<std::string> args{"redis-server", "--bind", "127.0.0.1", "--port", std::to_string(port_),
                                      "--save", "", "--appendonly", "no", "--dir", dir_, "--daemonize", "no",
                                      "--maxmemory-policy", "noeviction", "--hash-max-listpack-value", "8192",
                                      "--logfile", dir_ + "/redis.log"};
        args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const std::string out = dir_ + "/redis.out";
        const pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
            const int devnull = ::open("/dev/null", O_RDONLY);
            const int log = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (devnull >= 0) ::dup2(devnull, 0);
            if (log >= 0) {
                ::dup2(log, 1);
                ::dup2(log, 2);
            }
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            storage::RedisConnectionOptions o;
            o.connectTimeout = Millis{200};
            o.commandTimeout = Millis{500};
            if (auto c = storage::RedisConnection::open(RedisEndpoint{"127.0.0.1", port_}, o)) {
                // Any reply means it is serving (NOAUTH too, with --requirepass).
                if ((*c)->command({"PING"})) return true;
            }
            std::this_thread::sleep_for(Millis{20});
        }
        return false;
    }

    std::vector<std::string> extraArgs_;
    std::string dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

/// Restores a CONFIG parameter of one node when it goes out of scope.
class ConfigGuard {
public:
    ConfigGuard(const HostPort& node, std::string name) : node_(node), name_(std::move(name)) {
        Admin a(node_);
        auto r = a.ok({"CONFIG", "GET", name_});
        if (!r.isArray() || r.array().size() != 2) throw std::runtime_error("CONFIG GET " + name_ + ": bad reply");
        saved_ = r.array()[1].str();
    }
    ~ConfigGuard() {
        try {
            Admin(node_).ok({"CONFIG", "SET", name_, saved_});
        } catch (const std::exception& e) {
            BOOST_TEST_MESSAGE("could not restore " << name_ << ": " << e.what());
        }
    }
    void set(const std::string& value) { Admin(node_).ok({"CONFIG", "SET", name_, value}); }

private:
    HostPort node_;
    std::string name_;
    std::string saved_;
};

/// Captures what is written to std::cerr while alive (the stores' start-up warnings).
class CerrCapture {
public:
    CerrCapture() : old_(std::cerr.rdbuf(buffer_.rdbuf())) {}
    ~CerrCapture() { std::cerr.rdbuf(old_); }
    std::string text() const { return buffer_.str(); }

private:
    std::ostringstream buffer_;
    std::streambuf* old_;
};

}  // namespace idem::test::redistest
