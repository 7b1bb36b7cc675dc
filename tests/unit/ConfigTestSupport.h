#pragma once
// Helpers shared by the config tests that came with issue 5 (versions, feature flags, layers): small YAML
// builders, error capture, and RAII for environment variables and scratch files.

#include "gateway/config/ConfigLoader.h"

#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace config_test {

/// `lines` with every line indented by `by`.
inline std::string indented(std::string_view lines, std::string_view by) {
    std::string out;
    std::size_t start = 0;
    while (start < lines.size()) {
        const std::size_t nl = lines.find('\n', start);
        out += std::string(by) + std::string(lines.substr(start, nl == std::string_view::npos ? lines.npos : nl - start)) +
               "\n";
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    return out;
}

/// Upstreams `up` and `legacy` (timeout 60s) and one route `r` on `path` with `routeExtra` inside it.
inline std::string configWith(std::string_view routeExtra, std::string_view path = "/{version}/payments/{id}",
                              std::string_view top = "") {
    std::string out(top);
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += "upstreams:\n  up:\n    url: http://127.0.0.1:9090\n  legacy:\n    url: http://127.0.0.1:9091\n"
           "    timeout: 60s\n";
    out += "routes:\n  r:\n    path: \"" + std::string(path) + "\"\n    upstream: up\n" + indented(routeExtra, "    ");
    return out;
}

/// The ConfigError loading `yaml` (as "test.yaml") throws; fails the test when it loads.
inline idem::config::ConfigError errorOf(const std::string& yaml, const idem::config::ConfigOverrides& o = {}) {
    try {
        idem::config::loadConfigString(yaml, "test.yaml", o);
    } catch (const idem::config::ConfigError& e) {
        return e;
    }
    BOOST_TEST_INFO("yaml:\n" << yaml);
    BOOST_FAIL("no ConfigError");
    return idem::config::ConfigError("", "", "");
}

inline bool has(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

/// describeConfig without its first line (which names the source).
inline std::string describedBody(const idem::config::Config& c) {
    const std::string d = idem::config::describeConfig(c);
    return d.substr(d.find('\n') + 1);
}

/// Sets an environment variable for the life of the object.
struct ScopedEnv {
    std::string name;
    ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
        ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~ScopedEnv() { ::unsetenv(name.c_str()); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
};

/// A scratch directory removed at the end of the test.
struct ScratchDir {
    std::filesystem::path path;
    ScratchDir() {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               ("idemgate-layers-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
        std::filesystem::create_directories(path);
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    std::string write(const std::string& name, const std::string& content) const {
        std::ofstream(path / name, std::ios::binary) << content;
        return (path / name).string();
    }
};

}  // namespace config_test
