#include "Options.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

namespace idem::load {

namespace {

template <typename T>
bool parseInteger(std::string_view text, T& out, T min, T max)
{
    T value{};
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || value < min || value > max) return false;
    out = value;
    return true;
}

bool parseDouble(std::string_view text, double& out, double min, double max)
{
    double value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || !(value >= min) || !(value <= max)) return false;
    out = value;
    return true;
}

/// Seconds from "10", "10s", "1.5s", "250ms", "2m".
bool parseSeconds(std::string_view text, double& out)
{
    double scale = 1;
    if (text.ends_with("ms")) {
        scale = 0.001;
        text.remove_suffix(2);
    } else if (text.ends_with("s")) {
        text.remove_suffix(1);
    } else if (text.ends_with("m")) {
        scale = 60;
        text.remove_suffix(1);
    }
    double value = 0;
    if (!parseDouble(text, value, 0, 1e7)) return false;
    out = value * scale;
    return true;
}

/// "500", "4KiB", "1MiB", "10KB".
bool parseSize(std::string_view text, std::size_t& out)
{
    std::size_t scale = 1;
    const std::pair<std::string_view, std::size_t> units[] = {
        {"KiB", 1024}, {"MiB", 1024 * 1024}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}};
    for (const auto& [suffix, factor] : units) {
        if (text.ends_with(suffix)) {
            scale = factor;
            text.remove_suffix(suffix.size());
            break;
        }
    }
    std::size_t value = 0;
    if (!parseInteger(text, value, std::size_t{0}, std::size_t{64} << 20)) return false;
    out = value * scale;
    return out <= (std::size_t{64} << 20);
}

}  // namespace

std::expected<Endpoint, std::string> parseEndpoint(const std::string& text)
{
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
        return std::unexpected("expected host:port, got '" + text + "'");
    Endpoint endpoint;
    endpoint.host = text.substr(0, colon);
    if (!parseInteger(std::string_view(text).substr(colon + 1), endpoint.port, std::uint16_t{1}, std::uint16_t{65535}))
        return std::unexpected("bad port in '" + text + "'");
    endpoint.address.sin_family = AF_INET;
    endpoint.address.sin_port = htons(endpoint.port);
    if (::inet_pton(AF_INET, endpoint.host.c_str(), &endpoint.address.sin_addr) == 1) return endpoint;
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(endpoint.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr)
        return std::unexpected("cannot resolve '" + endpoint.host + "' to an IPv4 address");
    endpoint.address.sin_addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
    ::freeaddrinfo(found);
    return endpoint;
}

const char* usageText()
{
    return R"(usage: idemgate-loadtest --target HOST:PORT [--target HOST:PORT ...] [options]

HTTP/1.1 load generator for idemgate: keep-alive connections on non-blocking sockets (epoll), closed or
open loop, with an Idempotency-Key on every request; optionally verifies at-most-once execution.

Load
  --target HOST:PORT      gateway address; repeat (or comma-separate) to spread connections round-robin
  --path PATH             request path (default /v1/payments); every request is POST with a JSON body
  -c, --connections N     keep-alive connections (default 32)
  -t, --threads N         event-loop threads (default min(2, N connections))
  -R, --rate R            open loop: R requests/s in total; latency is measured from each request's
                          intended send time, so queueing behind a slow server is not hidden
                          (without --rate: closed loop, each connection sends when it has its answer)
  -n, --requests N        stop after N requests
  -d, --duration T        stop after T (10, 10s, 500ms, 2m); 10s when neither bound is given
  --timeout T             a request unanswered after T is an error (default 10s)

Keys and payloads
  --keys K                key space of K keys (default unbounded); when all are used, requests reuse keys
  --duplicate-ratio D     fraction of requests reusing an already-sent key (default 0)
  --burst B               a burst sends the same new key on B connections at the same moment (default 1)
  --burst-ratio F         fraction of new keys sent as a burst (default 0.1; needs --burst > 1)
  --miss                  every request uses a new key (the miss path)
  --replay                first send each of the K keys once (--keys, default 10000; not measured),
                          then only replay them (the replay path)
  --conflict-ratio F      fraction of duplicates sent with a different payload (expects 422 or 409)
  --tenants T             Authorization: Bearer tenant-<key mod T> (default 1; 0 sends none)
  --payload-bytes P       request body size (default 64)
  --key-prefix S          keys are S-<n> (default: random per run)

Verification
  --verify                after the run, check that no key executed twice upstream, that every 2xx
                          answer for a key has the same status and body bytes as the first, and that
                          every answer is one SEMANTICS.md allows for this load (2xx; 409 with
                          Retry-After; 422 only for keys sent with two payloads; 503 with --allow-503).
                          Violations are listed (first 20, and counts per kind); the exit code is 1.
                          The gateway's route must forward the client's key verbatim
                          (forward_key: client), so that the upstream's counts are per client key.
  --upstream HOST:PORT    the mock upstream (idemgate-mock-upstream), read at GET /__stats
  --reset-upstream        POST /__reset to the upstream before the run
  --allow-503             503 (store unavailable) is an allowed answer

Output
  --json FILE             write every figure (and the verification) as JSON
  --plot FILE.svg         write a latency-percentile plot
  --label TEXT            name of this run in the report, JSON and plot
  --quiet                 no progress line every second

Exit status: 0 done; 1 verification failed; 2 bad usage; 3 no request was answered.
)";
}

std::expected<Options, std::string> parseOptions(int argc, char** argv)
{
    Options o;
    bool threadsGiven = false;
    bool keysGiven = false;
    bool duplicateGiven = false;
    bool burstRatioGiven = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view inlineValue;
        bool hasInline = false;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            inlineValue = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            hasInline = true;
        }
        const std::string name(arg);
        const auto value = [&]() -> std::expected<std::string, std::string> {
            if (hasInline) return std::string(inlineValue);
            if (i + 1 >= argc) return std::unexpected(name + " needs a value");
            return std::string(argv[++i]);
        };
        const auto flag = [&]() -> std::expected<void, std::string> {
            if (hasInline) return std::unexpected(name + " takes no value");
            return {};
        };
        const auto bad = [&](const std::string& v, const char* expected) {
            return std::unexpected(name + ": expected " + expected + ", got '" + v + "'");
        };

        if (arg == "--help" || arg == "-h") {
            o.help = true;
        } else if (arg == "--miss" || arg == "--replay" || arg == "--verify" || arg == "--allow-503" ||
                   arg == "--reset-upstream" || arg == "--quiet") {
            if (auto ok = flag(); !ok) return std::unexpected(ok.error());
            if (arg == "--miss") o.miss = true;
            else if (arg == "--replay") o.replay = true;
            else if (arg == "--verify") o.verify = true;
            else if (arg == "--allow-503") o.allow503 = true;
            else if (arg == "--reset-upstream") o.resetUpstream = true;
            else o.quiet = true;
        } else {
            auto v = value();
            if (!v) return std::unexpected(v.error());
            const std::string& s = *v;
            if (arg == "--target") {
                std::size_t start = 0;
                while (start <= s.size()) {
                    const auto comma = s.find(',', start);
                    const std::string one = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                    auto endpoint = parseEndpoint(one);
                    if (!endpoint) return std::unexpected("--target: " + endpoint.error());
                    o.targets.push_back(*endpoint);
                    if (comma == std::string::npos) break;
                    start = comma + 1;
                }
            } else if (arg == "--upstream") {
                auto endpoint = parseEndpoint(s);
                if (!endpoint) return std::unexpected("--upstream: " + endpoint.error());
                o.upstream = *endpoint;
            } else if (arg == "--path") {
                if (s.empty() || s[0] != '/' || s.find_first_of(" \r\n") != std::string::npos)
                    return bad(s, "a path starting with /");
                o.path = s;
            } else if (arg == "-c" || arg == "--connections") {
                if (!parseInteger(s, o.connections, 1, 100000)) return bad(s, "1..100000");
            } else if (arg == "-t" || arg == "--threads") {
                if (!parseInteger(s, o.threads, 1, 256)) return bad(s, "1..256");
                threadsGiven = true;
            } else if (arg == "-R" || arg == "--rate") {
                if (!parseDouble(s, o.rate, 0.001, 1e8)) return bad(s, "a rate > 0");
            } else if (arg == "-n" || arg == "--requests") {
                if (!parseInteger(s, o.requests, std::uint64_t{1}, std::uint64_t{1} << 50)) return bad(s, "a count >= 1");
            } else if (arg == "-d" || arg == "--duration") {
                if (!parseSeconds(s, o.duration) || o.duration <= 0) return bad(s, "a duration > 0 (10, 10s, 500ms)");
            } else if (arg == "--timeout") {
                if (!parseSeconds(s, o.timeout) || o.timeout <= 0) return bad(s, "a duration > 0");
            } else if (arg == "--keys") {
                if (!parseInteger(s, o.keys, std::uint64_t{1}, std::uint64_t{1} << 40)) return bad(s, "a count >= 1");
                keysGiven = true;
            } else if (arg == "--duplicate-ratio") {
                if (!parseDouble(s, o.duplicateRatio, 0, 1)) return bad(s, "0..1");
                duplicateGiven = true;
            } else if (arg == "--burst") {
                if (!parseInteger(s, o.burst, 1, 1024)) return bad(s, "1..1024");
            } else if (arg == "--burst-ratio") {
                if (!parseDouble(s, o.burstRatio, 0, 1)) return bad(s, "0..1");
                burstRatioGiven = true;
            } else if (arg == "--tenants") {
                if (!parseInteger(s, o.tenants, 0, 1000000)) return bad(s, "0..1000000");
            } else if (arg == "--payload-bytes") {
                if (!parseSize(s, o.payloadBytes)) return bad(s, "a size up to 64MiB");
            } else if (arg == "--conflict-ratio") {
                if (!parseDouble(s, o.conflictRatio, 0, 1)) return bad(s, "0..1");
            } else if (arg == "--key-prefix") {
                if (s.empty() || s.size() > 128) return bad(s, "1..128 characters");
                for (const char c : s)
                    if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') return bad(s, "printable ASCII without quotes");
                o.keyPrefix = s;
            } else if (arg == "--label") {
                o.label = s;
            } else if (arg == "--json") {
                o.jsonPath = s;
            } else if (arg == "--plot") {
                o.plotPath = s;
            } else {
                return std::unexpected("unknown argument '" + std::string(argv[i]) + "'");
            }
        }
    }
    if (o.help) return o;

    if (o.targets.empty()) return std::unexpected(std::string("--target is required"));
    if (o.miss && o.replay) return std::unexpected(std::string("--miss and --replay exclude each other"));
    if (o.miss) {
        if (duplicateGiven && o.duplicateRatio > 0) return std::unexpected(std::string("--miss: no --duplicate-ratio"));
        if (o.burst > 1) return std::unexpected(std::string("--miss: no --burst"));
        if (o.conflictRatio > 0) return std::unexpected(std::string("--miss: no --conflict-ratio"));
        o.duplicateRatio = 0;
    }
    if (o.replay) {
        if (o.burst > 1) return std::unexpected(std::string("--replay: no --burst (every key is already seen)"));
        if (duplicateGiven && o.duplicateRatio < 1) return std::unexpected(std::string("--replay: duplicate ratio is 1"));
        if (!keysGiven) o.keys = 10000;
        o.duplicateRatio = 1;
    }
    if (burstRatioGiven && o.burst <= 1) return std::unexpected(std::string("--burst-ratio needs --burst > 1"));
    if (o.burst > o.connections)
        return std::unexpected("--burst " + std::to_string(o.burst) + " needs at least as many connections");
    if (o.verify && o.upstream.port == 0) return std::unexpected(std::string("--verify needs --upstream HOST:PORT"));
    if (o.resetUpstream && o.upstream.port == 0) return std::unexpected(std::string("--reset-upstream needs --upstream"));

    if (!threadsGiven) o.threads = std::min(2, o.connections);
    if (o.threads > o.connections) return std::unexpected(std::string("--threads: more threads than connections"));
    // A burst is sent by connections of one thread, so each thread needs at least `burst` connections.
    if (o.connections / o.threads < o.burst) {
        if (threadsGiven)
            return std::unexpected("--burst " + std::to_string(o.burst) + " needs at least that many connections per thread");
        o.threads = std::max(1, o.connections / o.burst);
    }
    if (o.duration <= 0 && o.requests == 0) o.duration = 10;
    return o;
}

}  // namespace idem::load
