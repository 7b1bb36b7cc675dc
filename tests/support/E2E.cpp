#include "tests/support/E2E.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

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
#include <netinet/tcp.h>
#include <poll.h>
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

bool ieq(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

std::string envOr(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return (v && *v) ? v : fallback;
}

}  // namespace

std::uint16_t freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        throw std::runtime_error("bind failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string binaryDir() { return envOr("IDEM_BINARY_DIR", "."); }
std::string sourceDir() { return envOr("IDEM_SOURCE_DIR", "."); }

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "idemgate-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& content) const {
    std::ofstream out(file(name), std::ios::binary);
    out << content;
}

Process::Process(std::vector<std::string> argv, std::string logPath)
    : Process(std::move(argv), std::move(logPath), std::vector<std::string>{}) {}

Process::Process(std::vector<std::string> argv, std::string logPath, const std::vector<std::string>& extraEnv)
    : logPath_(std::move(logPath)) {
    // The environment: ours, with every NAME of extraEnv replaced by (or added as) its NAME=VALUE.
    const auto nameOf = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string entry(*e);
        bool replaced = false;
        for (const auto& x : extraEnv) replaced = replaced || nameOf(x) == nameOf(entry);
        if (!replaced) env.push_back(std::move(entry));
    }
    env.insert(env.end(), extraEnv.begin(), extraEnv.end());
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

Process::~Process() {
    if (pid_ > 0 && !status_) stop(Millis(3000));
}

void Process::signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> Process::wait(Millis timeout) {
    if (status_) return status_;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= until) return std::nullopt;
        std::this_thread::sleep_for(Millis(10));
    }
}

bool Process::running() { return !wait(Millis(0)).has_value(); }

int Process::stop(Millis grace) {
    if (status_) return *status_;
    signal(SIGTERM);
    if (auto st = wait(grace)) return *st;
    signal(SIGKILL);
    return wait(Millis(10000)).value_or(-1);
}

std::string Process::log() const {
    std::ifstream in(logPath_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool waitForPort(std::uint16_t port, Millis timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(fd);
        if (ok) return true;
        std::this_thread::sleep_for(Millis(20));
    }
    return false;
}

std::optional<std::string> Response::header(const std::string& name) const {
    for (const auto& [n, v] : headers)
        if (ieq(n, name)) return v;
    return std::nullopt;
}

std::size_t Response::count(const std::string& name) const {
    std::size_t c = 0;
    for (const auto& [n, v] : headers)
        if (ieq(n, name)) ++c;
    return c;
}

Connection::Connection(std::uint16_t port, Millis timeout) : timeout_(timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        throw std::runtime_error("connect to port " + std::to_string(port) + " failed: " + std::strerror(err));
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() { close(); }

void Connection::close(bool reset) {
    if (fd_ < 0) return;
    if (reset) {
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(fd_);
    fd_ = -1;
}

void Connection::sendRaw(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error("send failed");
        off += static_cast<std::size_t>(n);
    }
}

void Connection::send(const Request& r) {
    std::string out = r.method + " " + r.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [n, v] : r.headers) out += n + ": " + v + "\r\n";
    if (r.contentLength && (!r.body.empty() || r.method == "POST" || r.method == "PATCH" || r.method == "PUT"))
        out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    out += "\r\n";
    out += r.body;
    sendRaw(out);
}

bool Connection::fill() {
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    if (rc <= 0) throw std::runtime_error("timed out waiting for the response");
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) throw std::runtime_error(std::string("connection reset: ") + std::strerror(errno));
    if (n == 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
}

Response Connection::receive() {
    for (;;) {
        Response r = receiveOne();
        // Interim answers (100 Continue, 103 Early Hints) precede the real one.
        if (r.status >= 200 || r.status == 101) return r;
    }
}

Response Connection::receiveOne() {
    Response r;
    std::size_t headEnd;
    for (;;) {
        headEnd = buffer_.find("\r\n\r\n");
        if (headEnd != std::string::npos) break;
        if (!fill()) throw std::runtime_error("connection closed before a complete response head");
    }
    r.rawHead = buffer_.substr(0, headEnd + 2);
    std::istringstream head(buffer_.substr(0, headEnd));
    buffer_.erase(0, headEnd + 4);
    std::string line;
    std::getline(head, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // HTTP/1.1 201 Created
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 + 1);
    r.status = std::stoi(line.substr(sp1 + 1, sp2 - sp1 - 1));
    if (sp2 != std::string::npos) r.reason = line.substr(sp2 + 1);
    while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
        r.headers.emplace_back(line.substr(0, colon), value);
    }
    const bool noBody = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
    auto te = r.header("Transfer-Encoding");
    if (!noBody && te && ieq(*te, "chunked")) {
        r.chunked = true;
        for (;;) {
            std::size_t eol;
            while ((eol = buffer_.find("\r\n")) == std::string::npos)
                if (!fill()) throw std::runtime_error("connection closed inside a chunk header");
            const std::size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
            buffer_.erase(0, eol + 2);
            while (buffer_.size() < size + 2)
                if (!fill()) throw std::runtime_error("connection closed inside a chunk");
            r.body.append(buffer_, 0, size);
            buffer_.erase(0, size + 2);
            if (size == 0) break;
        }
    } else if (auto cl = r.header("Content-Length"); !noBody && cl) {
        const std::size_t size = std::stoul(*cl);
        while (buffer_.size() < size)
            if (!fill()) throw std::runtime_error("connection closed inside the body");
        r.body = buffer_.substr(0, size);
        buffer_.erase(0, size);
    } else if (!noBody) {
        while (fill()) {
        }
        r.body = std::move(buffer_);
        buffer_.clear();
        r.closed = true;
    }
    if (auto c = r.header("Connection"); c && ieq(*c, "close")) r.closed = true;
    return r;
}

void Connection::shutdownWrite() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

std::string Connection::pending(Millis wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
        const auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) break;
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
    return buffer_;
}

Response http(std::uint16_t port, const Request& request, Millis timeout) {
    Connection c(port, timeout);
    return c.roundTrip(request);
}

MockUpstream::MockUpstream(const std::string& logDir, std::uint16_t port) : port_(port) {
    process_ = std::make_unique<Process>(
        std::vector<std::string>{binaryDir() + "/idemgate-mock-upstream", "--port", std::to_string(port), "--quiet"},
        logDir + "/mock-upstream-" + std::to_string(port) + ".log");
    if (!waitForPort(port_, Millis(10000))) throw std::runtime_error("mock upstream did not start on port " + std::to_string(port));
}

MockUpstream::MockUpstream(const std::string& logDir) {
    const std::string portFile = logDir + "/mock-" + std::to_string(::getpid()) + "-" +
                                 std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + ".port";
    process_ = std::make_unique<Process>(
        std::vector<std::string>{binaryDir() + "/idemgate-mock-upstream", "--port", "0", "--port-file", portFile, "--quiet"},
        logDir + "/mock-upstream.log");
    const auto until = std::chrono::steady_clock::now() + Millis(10000);
    while (std::chrono::steady_clock::now() < until) {
        std::ifstream in(portFile);
        int p = 0;
        if (in >> p && p > 0) {
            port_ = static_cast<std::uint16_t>(p);
            break;
        }
        if (!process_->running()) throw std::runtime_error("mock upstream exited at start: " + process_->log());
        std::this_thread::sleep_for(Millis(10));
    }
    if (port_ == 0 || !waitForPort(port_, Millis(5000))) throw std::runtime_error("mock upstream did not start");
}

std::map<std::string, int> MockUpstream::executions() {
    auto r = http(port_, Request{"GET", "/__stats", {}, "", false});
    Poco::JSON::Parser parser;
    auto obj = parser.parse(r.body).extract<Poco::JSON::Object::Ptr>();
    std::map<std::string, int> out;
    auto keys = obj->getObject("keys");
    for (const auto& name : keys->getNames()) out[name] = keys->getValue<int>(name);
    return out;
}

int MockUpstream::executions(const std::string& key) {
    auto all = executions();
    auto it = all.find(key);
    return it == all.end() ? 0 : it->second;
}

int MockUpstream::total() {
    auto r = http(port_, Request{"GET", "/__stats", {}, "", false});
    Poco::JSON::Parser parser;
    return parser.parse(r.body).extract<Poco::JSON::Object::Ptr>()->getValue<int>("total");
}

std::vector<Headers> MockUpstream::requestHeaders(const std::string& key) {
    std::string encoded;
    for (unsigned char c : key) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') encoded += static_cast<char>(c);
        else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            encoded += buf;
        }
    }
    auto r = http(port_, Request{"GET", "/__requests?key=" + encoded, {}, "", false});
    Poco::JSON::Parser parser;
    auto arr = parser.parse(r.body).extract<Poco::JSON::Array::Ptr>();
    std::vector<Headers> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        auto req = arr->getObject(static_cast<unsigned>(i));
        auto hs = req->getArray("headers");
        Headers h;
        for (std::size_t j = 0; j < hs->size(); ++j) {
            auto pair = hs->getArray(static_cast<unsigned>(j));
            h.emplace_back(pair->getElement<std::string>(0), pair->getElement<std::string>(1));
        }
        out.push_back(std::move(h));
    }
    return out;
}

std::vector<UpstreamRequest> MockUpstream::requests() {
    auto r = http(port_, Request{"GET", "/__requests", {}, "", false});
    Poco::JSON::Parser parser;
    auto arr = parser.parse(r.body).extract<Poco::JSON::Array::Ptr>();
    std::vector<UpstreamRequest> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        auto req = arr->getObject(static_cast<unsigned>(i));
        UpstreamRequest u;
        u.method = req->optValue<std::string>("method", "");
        u.path = req->optValue<std::string>("path", "");
        u.query = req->optValue<std::string>("query", "");
        u.key = req->optValue<std::string>("key", "");
        u.hasKey = req->optValue<bool>("has_key", false);
        u.bodyLength = req->optValue<std::size_t>("body_length", 0);
        u.body = req->optValue<std::string>("body", "");
        auto hs = req->getArray("headers");
        for (std::size_t j = 0; hs && j < hs->size(); ++j) {
            auto pair = hs->getArray(static_cast<unsigned>(j));
            u.headers.emplace_back(pair->getElement<std::string>(0), pair->getElement<std::string>(1));
        }
        out.push_back(std::move(u));
    }
    return out;
}

void MockUpstream::script(const std::string& json) {
    auto r = http(port_, Request{"POST", "/__script", {{"Content-Type", "application/json"}}, json});
    if (r.status / 100 != 2) throw std::runtime_error("mock rejected the script: " + r.body);
}

void MockUpstream::reset() { http(port_, Request{"POST", "/__reset", {}, ""}); }

Gateway::Gateway(const TempDir& dir, const std::string& name, const std::string& yaml, std::uint16_t port)
    : Gateway(dir, name, yaml, port, GatewayOptions{}) {}

Gateway::Gateway(const TempDir& dir, const std::string& name, const std::string& yaml, std::uint16_t port,
                 GatewayOptions options)
    : configPath_(dir.file(name + ".yaml")), logPath_(dir.file(name + ".log")), port_(port), options_(std::move(options)) {
    dir.write(name + ".yaml", yaml);
    start();
}

void Gateway::rewriteConfig(const std::string& yaml) const {
    const std::string temp = configPath_ + ".new";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out << yaml;
        if (!out.flush()) throw std::runtime_error("cannot write " + temp);
    }
    std::filesystem::rename(temp, configPath_);
}

void Gateway::start() {
    std::vector<std::string> argv{binaryDir() + "/idemgate", "--config", configPath_};
    argv.insert(argv.end(), options_.args.begin(), options_.args.end());
    process_ = std::make_unique<Process>(std::move(argv), logPath_, options_.env);
    const auto until = std::chrono::steady_clock::now() + Millis(10000);
    while (std::chrono::steady_clock::now() < until) {
        if (waitForPort(port_, Millis(50))) return;
        if (!process_->running()) break;
    }
    throw std::runtime_error("idemgate (" + configPath_ + ") did not start listening: " + process_->log());
}

void Gateway::restart() {
    const int status = process_->stop(Millis(15000));
    if (status != 0) throw std::runtime_error("idemgate did not exit cleanly on SIGTERM: status " + std::to_string(status));
    process_.reset();
    start();
}

RunResult run(std::vector<std::string> argv, const TempDir& dir, Millis timeout) {
    return run(std::move(argv), dir, std::vector<std::string>{}, timeout);
}

RunResult run(std::vector<std::string> argv, const TempDir& dir, const std::vector<std::string>& extraEnv, Millis timeout) {
    static std::atomic<int> counter{0};
    const std::string logPath = dir.file("run-" + std::to_string(++counter) + ".out");
    Process p(std::move(argv), logPath, extraEnv);
    RunResult r;
    auto status = p.wait(timeout);
    if (!status) status = p.stop(Millis(1000));
    r.status = *status;
    r.output = p.log();
    return r;
}

namespace {
Poco::JSON::Object::Ptr parseObject(const std::string& body) {
    try {
        Poco::JSON::Parser parser;
        return parser.parse(body).extract<Poco::JSON::Object::Ptr>();
    } catch (...) {
        return nullptr;
    }
}
}  // namespace

std::string jsonString(const std::string& body, const std::string& member) {
    auto obj = parseObject(body);
    if (!obj || !obj->has(member)) return "";
    auto v = obj->get(member);
    return v.isString() ? v.extract<std::string>() : "";
}

std::string problemType(const Response& response) { return jsonString(response.body, "type"); }

int retryAfter(const Response& response) {
    auto v = response.header("Retry-After");
    if (!v || v->empty() || v->size() > 9) return -1;
    for (char c : *v)
        if (c < '0' || c > '9') return -1;
    return std::stoi(*v);
}

std::string caseConfig(std::uint16_t gatewayPort, std::uint16_t upstreamPort, const std::string& storeYaml,
                       const std::string& routeExtra, const std::string& upstreamExtra) {
    CaseOptions o;
    o.gatewayPort = gatewayPort;
    o.upstreamPort = upstreamPort;
    o.storeYaml = storeYaml;
    o.paymentsExtra = routeExtra;
    o.upstreamExtra = upstreamExtra;
    return caseConfig(o);
}

std::string caseConfig(const CaseOptions& o) {
    const auto extra = [&](const std::string& id) {
        auto it = o.routeExtra.find(id);
        return it == o.routeExtra.end() ? std::string() : it->second;
    };
    std::string y;
    y += "server:\n  listen: 127.0.0.1:" + std::to_string(o.gatewayPort) + "\n";
    y += "log:\n  level: warning\n";
    y += o.storeYaml.empty() ? "store:\n  type: memory\n" : o.storeYaml;
    y += "upstreams:\n  up:\n    url: http://127.0.0.1:" + std::to_string(o.upstreamPort) + "\n    timeout: " +
         o.upstreamTimeout + "\n" + o.upstreamExtra;
    // forward_key: client (by default here) so that the mock's per-key execution counts are keyed by the
    // client's key; the gateway's own default (derived) is tested on its own in the B24 test.
    y += "route_defaults:\n  tenant_header: Authorization\n";
    if (!o.lease.empty()) y += "  lease: " + o.lease + "\n";
    if (!o.forwardKey.empty()) y += "  forward_key: " + o.forwardKey + "\n";
    y += o.defaultsExtra;
    y += "routes:\n";
    y += "  payments:\n    methods: [POST]\n    path: /v1/payments\n    upstream: up\n    fingerprint: {body: json}\n" +
         o.paymentsExtra + extra("payments");
    y += "  refunds:\n    methods: [POST]\n    path: /v1/refunds\n    upstream: up\n" + extra("refunds");
    y += "  payment_capture:\n    methods: [POST]\n    path: /v1/payments/{id}:capture\n    upstream: up\n" +
         extra("payment_capture");
    y += "  payment_update:\n    methods: [POST, PATCH]\n    path: /v1/payments/{id}\n    upstream: up\n" +
         extra("payment_update");
    y += "  payments_v2:\n    methods: [POST]\n    path: /v2/payments\n    upstream: up\n" + extra("payments_v2");
    y += o.extraRoutes;
    return y;
}

Request caseRequest(const std::string& key, const std::string& body, Headers extra, const std::string& target,
                    const std::string& tenant, const std::string& method) {
    Request r;
    r.method = method;
    r.target = target;
    if (!tenant.empty()) r.headers.emplace_back("Authorization", "Bearer " + tenant);
    r.headers.emplace_back("Content-Type", "application/json");
    if (!key.empty()) r.headers.emplace_back("Idempotency-Key", key);
    for (auto& h : extra) r.headers.push_back(std::move(h));
    r.body = body;
    return r;
}

CaseEnv::CaseEnv(CaseOptions o) : up(dir.path()), port(freePort()), options(std::move(o)) {
    options.gatewayPort = port;
    options.upstreamPort = up.port();
    gw = std::make_unique<Gateway>(dir, "gw", caseConfig(options), port);
}

}  // namespace idem::test
