#pragma once
// The whole gateway configuration as plain typed structs, parsed once and validated by ConfigLoader.
// Nothing reads configuration by string key after loading. Defaults are the ones the README lists.

#include "gateway/core/Policy.h"
#include "storage/StoreConfig.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace idem::config {

using core::Millis;

struct ServerConfig {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    int maxThreads = 256;                     ///< one per open keep-alive connection (Poco's model)
    int maxQueued = 1024;                     ///< accepted connections waiting for a thread
    Millis keepAliveTimeout{15000};
    int maxKeepAliveRequests = 0;             ///< 0 = unlimited
    Millis receiveTimeout{30000};             ///< reading a client's request (headers and body)
    Millis sendTimeout{30000};
};

struct UpstreamConfig {
    std::string name;
    std::string scheme = "http";              ///< http only until TLS lands (issue 6)
    std::string host;
    std::uint16_t port = 80;
    std::string basePath;                     ///< prefix added before the request path ("" = none)
    Millis connectTimeout{2000};
    Millis timeout{30000};                    ///< whole exchange: send, first byte, full response
    std::size_t poolSize = 64;                ///< idle keep-alive connections kept per upstream
};

struct RouteConfig {
    std::string id;                           ///< the key under `routes:`
    std::vector<std::string> matchMethods;    ///< methods this route matches; empty = any
    std::string path;                         ///< pattern: literal segments and {name} segments
    std::string upstream;                     ///< name in `upstreams`
    core::RoutePolicy policy;
};

struct LogConfig {
    enum class Level { Error, Warning, Information, Debug };
    Level level = Level::Information;
    bool accessLog = true;
};

struct Config {
    std::string sourceFile;                   ///< the file it was loaded from
    ServerConfig server;
    storage::StoreConfig store;
    std::vector<UpstreamConfig> upstreams;
    std::vector<RouteConfig> routes;          ///< in file order; first match wins
    LogConfig log;

    const UpstreamConfig* findUpstream(const std::string& name) const {
        for (const auto& u : upstreams)
            if (u.name == name) return &u;
        return nullptr;
    }
};

}  // namespace idem::config
