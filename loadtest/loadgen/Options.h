// Command-line options of idemgate-loadtest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include <netinet/in.h>

namespace idem::load {

struct Endpoint {
    std::string host;        ///< as given
    std::uint16_t port = 0;
    sockaddr_in address{};   ///< resolved IPv4 address
    std::string text() const { return host + ":" + std::to_string(port); }
};

/// Parses and resolves "host:port" (IPv4 literal or a name that resolves to IPv4).
std::expected<Endpoint, std::string> parseEndpoint(const std::string& text);

struct Options {
    std::vector<Endpoint> targets;          ///< connections are spread round-robin over them
    std::string path = "/v1/payments";
    int connections = 32;
    int threads = 0;                        ///< 0: min(2, connections)
    double rate = 0;                        ///< requests/s; > 0 selects the open loop
    std::uint64_t requests = 0;             ///< 0: no count bound
    double duration = 0;                    ///< seconds; 0: no time bound (10 s when neither bound is given)
    std::uint64_t keys = 0;                 ///< key space; 0: unbounded (every new key is fresh)
    double duplicateRatio = 0;              ///< fraction of requests that reuse an already-sent key
    int burst = 1;                          ///< copies of a new key sent at once on different connections
    double burstRatio = 0.1;                ///< fraction of new keys sent as a burst (when burst > 1)
    int tenants = 1;                        ///< Authorization: Bearer tenant-<i>; 0: no Authorization header
    std::size_t payloadBytes = 64;          ///< request body size (at least the minimal JSON object)
    bool miss = false;                      ///< every request uses a new key
    bool replay = false;                    ///< pre-warm the key set, then only replay
    double conflictRatio = 0;               ///< fraction of duplicates sent with a different payload
    double timeout = 10;                    ///< seconds a request may take before it counts as timed out
    std::string keyPrefix;                  ///< key = <prefix>-<n>; default: random per run
    std::string label;                      ///< a name for the report, JSON and plot

    bool verify = false;
    Endpoint upstream;                      ///< the mock upstream (for --verify)
    bool allow503 = false;
    bool resetUpstream = false;             ///< POST /__reset to the upstream before the run

    std::string jsonPath;
    std::string plotPath;
    bool quiet = false;                     ///< no progress lines
    bool help = false;

    bool openLoop() const { return rate > 0; }
};

/// Parses argv and checks the combination; the error names the offending flag.
std::expected<Options, std::string> parseOptions(int argc, char** argv);

const char* usageText();

}  // namespace idem::load
