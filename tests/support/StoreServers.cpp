#include "tests/support/StoreServers.h"

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace idem::test {
namespace {

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string chompNewlines(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

std::string joined(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv) {
        if (!s.empty()) s += ' ';
        s += a;
    }
    return s;
}

bool isRoot() { return ::geteuid() == 0; }

/// argv to run as the postgres user when we are root (PostgreSQL refuses to run as root).
std::vector<std::string> asPostgres(std::vector<std::string> argv) {
    if (!isRoot()) return argv;
    std::vector<std::string> out{"runuser", "-u", "postgres", "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

/// Reads KEY=VALUE lines.
std::string envValue(const std::string& text, const std::string& key) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq == key.size() && line.compare(0, eq, key) == 0) return line.substr(eq + 1);
    }
    throw std::runtime_error("no " + key + " in service env:\n" + text);
}

bool bindable(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

// ---------------------------------------------------------------- processes and polling

CommandResult runCommand(const std::vector<std::string>& argv, Millis timeout) {
    if (argv.empty()) throw std::runtime_error("runCommand: empty argv");
    // Output goes to a file, not a pipe: a daemon the command leaves behind (pg_ctl start) must not keep
    // us waiting for an end of file.
    char tmpl[] = "/tmp/idemgate-cmd-XXXXXX";
    const int outFd = ::mkstemp(tmpl);
    if (outFd < 0) throw std::runtime_error("mkstemp failed");
    const std::string outPath = tmpl;
    ::close(outFd);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, outPath.c_str(), O_WRONLY | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        ::unlink(outPath.c_str());
        throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
    }

    CommandResult result;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            result.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (r < 0 && errno != EINTR) break;
        if (std::chrono::steady_clock::now() >= until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
            result.status = -1;
            break;
        }
        std::this_thread::sleep_for(Millis(5));
    }
    result.output = readFile(outPath);
    ::unlink(outPath.c_str());
    return result;
}

std::string runChecked(const std::vector<std::string>& argv, Millis timeout) {
    auto r = runCommand(argv, timeout);
    if (r.status != 0)
        throw std::runtime_error("`" + joined(argv) + "` failed (status " + std::to_string(r.status) + "): " + r.output);
    return r.output;
}

bool pidAlive(pid_t pid) {
    if (pid <= 0) return false;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    if (!in) return false;
    std::string line;
    std::getline(in, line);
    // pid (comm) state ...: the state follows the last ')'.
    const auto paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size()) return false;
    const char state = line[paren + 2];
    return state != 'Z' && state != 'X';
}

std::string uniqueName(const std::string& prefix) {
    static std::atomic<int> counter{0};
    return prefix + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

std::uint16_t freePortPair() {
    for (int attempt = 0; attempt < 200; ++attempt) {
        const std::uint16_t p = freePort();
        if (p < 1024 || p > 55535) continue;
        if (bindable(static_cast<std::uint16_t>(p + 10000))) return p;
    }
    throw std::runtime_error("no free port P with P+10000 free");
}

// ---------------------------------------------------------------- PostgreSQL

std::string pgBin() {
    const char* v = std::getenv("IDEM_PG_BIN");
    return (v && *v) ? v : "/usr/lib/postgresql/15/bin";
}

std::string psql(const std::string& url, const std::string& sql) {
    return chompNewlines(runChecked({pgBin() + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql},
                                    Millis(30000)));
}

PrivatePostgres::PrivatePostgres(const TempDir& dir) : dir_(dir.file("pg")), bin_(pgBin()) {
    // The postgres user must be able to reach the service directory inside the (0700) temp dir.
    std::filesystem::permissions(dir.path(),
                                 std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                     std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                     std::filesystem::perms::others_exec);
    runChecked({"bash", sourceDir() + "/tests/support/pg-service.sh", "start", dir_}, Millis(120000));
    const std::string env = readFile(dir_ + "/env");
    url_ = envValue(env, "IDEM_PG_URL");
    port_ = static_cast<std::uint16_t>(std::stoi(envValue(env, "IDEM_PG_PORT")));
    pid_ = static_cast<pid_t>(std::stol(envValue(env, "IDEM_PG_PID")));
    data_ = envValue(env, "IDEM_PG_DATA");
    running_ = true;
}

PrivatePostgres::~PrivatePostgres() {
    try {
        stop();
    } catch (...) {
        // stop() escalates to SIGKILL itself; this is the last resort when pg_ctl could not even run.
        if (running_ && pidAlive(pid_)) ::kill(pid_, SIGKILL);
    }
}

void PrivatePostgres::writeEnv() const {
    std::ofstream out(dir_ + "/env.tmp");
    out << "IDEM_PG_URL=" << url_ << "\nIDEM_PG_PORT=" << port_ << "\nIDEM_PG_PID=" << pid_ << "\nIDEM_PG_DATA=" << data_
        << "\nIDEM_PG_BIN=" << bin_ << "\nIDEM_PG_SOCKET_DIR=" << dir_ << "\n";
    out.close();
    std::filesystem::rename(dir_ + "/env.tmp", dir_ + "/env");
}

void PrivatePostgres::stop() {
    if (!running_) return;
    runCommand(asPostgres({bin_ + "/pg_ctl", "-D", data_, "-m", "fast", "-w", "-t", "30", "stop"}), Millis(40000));
    if (!waitUntil([&] { return !pidAlive(pid_); }, Millis(10000))) {
        ::kill(pid_, SIGKILL);
        if (!waitUntil([&] { return !pidAlive(pid_); }, Millis(10000)))
            throw std::runtime_error("postmaster " + std::to_string(pid_) + " does not exit");
    }
    running_ = false;
}

void PrivatePostgres::start() {
    if (running_) return;
    const std::string options = "-p " + std::to_string(port_) + " -c listen_addresses=127.0.0.1 -k " + dir_ +
                                " -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
    runChecked(asPostgres({bin_ + "/pg_ctl", "-D", data_, "-l", dir_ + "/postgres.log", "-w", "-t", "60", "-o", options,
                           "start"}),
               Millis(70000));
    std::ifstream pidFile(data_ + "/postmaster.pid");
    long pid = -1;
    if (!(pidFile >> pid) || pid <= 0) throw std::runtime_error("no postmaster.pid after pg_ctl start in " + data_);
    pid_ = static_cast<pid_t>(pid);
    running_ = true;
    writeEnv();  // pg-service.sh stop reads the PID from there
    if (!waitForPort(port_, Millis(10000))) throw std::runtime_error("restarted PostgreSQL does not listen");
}

// ---------------------------------------------------------------- Redis

CommandResult redisCliRaw(const std::string& address, const std::vector<std::string>& args) {
    const auto colon = address.rfind(':');
    std::vector<std::string> argv{"redis-cli", "-h", address.substr(0, colon), "-p", address.substr(colon + 1)};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, Millis(30000));
}

std::string redisCli(const std::string& address, const std::vector<std::string>& args) {
    auto r = redisCliRaw(address, args);
    // redis-cli exits 0 on a server error reply when its output is not a terminal; it prints "ERR ...".
    if (r.status != 0 || r.output.starts_with("ERR") || r.output.starts_with("WRONGTYPE") ||
        r.output.starts_with("MOVED") || r.output.starts_with("Could not connect"))
        throw std::runtime_error("redis-cli " + address + " " + joined(args) + ": " + r.output);
    return chompNewlines(r.output);
}

std::vector<std::string> redisKeys(const std::string& address, const std::string& pattern) {
    const std::string out = redisCli(address, {"--scan", "--pattern", pattern});
    std::vector<std::string> keys;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) keys.push_back(line);
    return keys;
}

PrivateRedis::PrivateRedis(const TempDir& dir, const std::string& name, std::vector<std::string> extra)
    : dir_(dir.path()), name_(name), extra_(std::move(extra)) {
    port_ = freePortPair();
    start();
}

PrivateRedis::~PrivateRedis() { stop(); }

std::vector<std::string> PrivateRedis::argv() const {
    const std::string bin = std::filesystem::exists("/usr/bin/redis-server") ? "/usr/bin/redis-server"
                                                                              : "/usr/local/bin/redis-server";
    std::vector<std::string> a{bin,         "--bind",       "127.0.0.1",  "--port",
                               std::to_string(port_), "--save", "",        "--appendonly",
                               "no",        "--dir",        dir_,         "--daemonize",
                               "no",        "--maxmemory-policy", "noeviction", "--hash-max-listpack-value",
                               "8192"};
    a.insert(a.end(), extra_.begin(), extra_.end());
    return a;
}

void PrivateRedis::stop() {
    if (!process_) return;
    process_->stop(Millis(5000));
    process_.reset();
}

void PrivateRedis::start() {
    if (process_) return;
    process_ = std::make_unique<Process>(argv(), dir_ + "/" + name_ + ".log");
    const bool up = waitUntil(
        [&] {
            if (!process_->running()) return true;
            const auto r = redisCliRaw(address(), {"PING"});
            return r.status == 0 && r.output.starts_with("PONG");
        },
        Millis(10000), Millis(50));
    if (!up || !process_->running())
        throw std::runtime_error("redis-server " + name_ + " on port " + std::to_string(port_) +
                                 " did not start: " + process_->log());
}

PrivateRedisCluster::PrivateRedisCluster(const TempDir& dir) {
    for (int i = 1; i <= 3; ++i) {
        nodes_.push_back(std::make_unique<PrivateRedis>(
            dir, "node" + std::to_string(i),
            std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                     dir.file("nodes-" + std::to_string(i) + ".conf"), "--cluster-node-timeout", "5000"}));
    }
    std::vector<std::string> create{"redis-cli", "--cluster", "create"};
    for (const auto& n : nodes()) create.push_back(n);
    create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
    runChecked(create, Millis(60000));
    if (!waitUntil([&] { return healthy(); }, Millis(30000), Millis(100)))
        throw std::runtime_error("private Redis Cluster did not reach cluster_state:ok");
}

std::vector<std::string> PrivateRedisCluster::nodes() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) out.push_back(n->address());
    return out;
}

bool PrivateRedisCluster::healthy() const {
    for (const auto& n : nodes_) {
        const auto info = redisCliRaw(n->address(), {"CLUSTER", "INFO"});
        if (info.status != 0 || info.output.find("cluster_state:ok") == std::string::npos) return false;
        // Every node must know all three masters with their slots.
        const auto slots = redisCliRaw(n->address(), {"CLUSTER", "SLOTS"});
        std::size_t masters = 0;
        for (const auto& other : nodes_)
            if (slots.output.find(std::to_string(other->port())) != std::string::npos) ++masters;
        if (masters < nodes_.size()) return false;
    }
    return true;
}

void PrivateRedisCluster::stop() {
    for (auto& n : nodes_) n->stop();
}

void PrivateRedisCluster::start() {
    for (auto& n : nodes_) n->start();
    if (!waitUntil([&] { return healthy(); }, Millis(30000), Millis(100)))
        throw std::runtime_error("restarted private Redis Cluster did not reach cluster_state:ok");
}

// ---------------------------------------------------------------- two gateways

std::string twoInstanceConfig(std::uint16_t gatewayPort, std::uint16_t upstreamPort, const std::string& storeYaml) {
    const std::string up = "http://127.0.0.1:" + std::to_string(upstreamPort);
    std::string y;
    y += "server:\n  listen: 127.0.0.1:" + std::to_string(gatewayPort) + "\n";
    y += "log:\n  level: info\n";
    y += storeYaml;
    y += "upstreams:\n";
    y += "  up:\n    url: " + up + "\n    timeout: 10s\n";
    y += "  short:\n    url: " + up + "\n    timeout: " + std::to_string(TwoInstanceRoutes::kShortTimeoutMs) + "ms\n";
    y += "route_defaults:\n  tenant_header: Authorization\n  forward_key: client\n";
    y += "routes:\n";
    y += "  payments:\n    methods: [POST]\n    path: /v1/payments\n    upstream: up\n    fingerprint: {body: json}\n"
         "    lease: " + std::to_string(TwoInstanceRoutes::kPaymentsLeaseMs) + "ms\n";
    y += "  b04_hold:\n    methods: [POST]\n    path: /v1/b04/hold\n    upstream: short\n"
         "    lease: " + std::to_string(TwoInstanceRoutes::kShortLeaseMs) + "ms\n"
         "    on_unknown: hold\n    forward_key: derived\n";
    y += "  b04_release:\n    methods: [POST]\n    path: /v1/b04/release\n    upstream: short\n"
         "    lease: " + std::to_string(TwoInstanceRoutes::kShortLeaseMs) + "ms\n"
         "    on_unknown: release\n    forward_key: derived\n";
    y += "  open:\n    methods: [POST]\n    path: /v1/open\n    upstream: up\n    store_failure: open\n";
    return y;
}

GatewayPair::GatewayPair(const TempDir& dir, std::uint16_t upstreamPort, const std::string& storeYaml) : dir_(dir) {
    for (int i = 0; i < 2; ++i) {
        ports_[static_cast<std::size_t>(i)] = freePort();
        yaml_[static_cast<std::size_t>(i)] = twoInstanceConfig(ports_[static_cast<std::size_t>(i)], upstreamPort, storeYaml);
    }
    // Both at once: two instances migrating the same table concurrently is part of what is tested.
    std::array<std::thread, 2> starters;
    std::array<std::string, 2> errors;
    for (int i = 0; i < 2; ++i)
        starters[static_cast<std::size_t>(i)] = std::thread([&, i] {
            try {
                start(i);
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(i)] = e.what();
            }
        });
    for (auto& t : starters) t.join();
    for (const auto& e : errors)
        if (!e.empty()) throw std::runtime_error(e);
}

void GatewayPair::kill(int i) {
    auto& g = gateways_.at(static_cast<std::size_t>(i));
    if (!g) return;
    g->process().signal(SIGKILL);
    if (!g->process().wait(Millis(10000))) throw std::runtime_error("killed gateway did not exit");
}

int GatewayPair::stop(int i) {
    auto& g = gateways_.at(static_cast<std::size_t>(i));
    if (!g) return -1;
    return g->process().stop(Millis(15000));
}

void GatewayPair::start(int i) {
    const auto idx = static_cast<std::size_t>(i);
    if (gateways_[idx] && gateways_[idx]->process().running())
        throw std::runtime_error("gateway " + std::to_string(i) + " is still running");
    gateways_[idx] = std::make_unique<Gateway>(dir_, i == 0 ? "a" : "b", yaml_[idx], ports_[idx]);
}

int GatewayPair::restart(int i) {
    const int status = stop(i);
    start(i);
    return status;
}

std::string GatewayPair::logs() const {
    std::string s;
    for (int i = 0; i < 2; ++i) {
        s += "---- gateway ";
        s += i == 0 ? "a" : "b";
        s += " (";
        s += dir_.file(i == 0 ? "a.log" : "b.log");
        s += ")\n";
        s += readFile(dir_.file(i == 0 ? "a.log" : "b.log"));
    }
    return s;
}

}  // namespace idem::test
