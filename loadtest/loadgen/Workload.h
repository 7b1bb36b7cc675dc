// What the load generator sends: key names, tenants, payloads and the request bytes.
//
// Key number g (0, 1, 2, ...) is named "<prefix>-<g>", belongs to tenant g mod T and always carries the same
// payload (variant 0); variant 1 (for --conflict-ratio) differs in its amount. Keys are unique across
// tenants, so the upstream's per-key counts need no tenant to be read.
#pragma once

#include "Options.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace idem::load {

/// splitmix64: small, fast, good enough to pick keys.
class Random {
public:
    explicit Random(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next()
    {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform in [0, 1).
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    /// Uniform in [0, n), n > 0.
    std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }

private:
    std::uint64_t state_;
};

/// 64-bit FNV-1a, to compare response bodies without keeping them.
std::uint64_t hashBytes(std::string_view bytes);

class Workload {
public:
    explicit Workload(const Options& options);

    const std::string& prefix() const { return prefix_; }
    void appendKey(std::string& out, std::uint64_t key) const;
    std::string keyName(std::uint64_t key) const;
    /// Parses "<prefix>-<g>" back to g; false for any other name.
    bool parseKey(std::string_view name, std::uint64_t& key) const;

    /// Appends the whole request for `key` (variant 0 or 1) to `target` (index into options.targets).
    void appendRequest(std::string& out, std::size_t target, std::uint64_t key, int variant) const;

private:
    void appendBody(std::string& out, std::uint64_t key, int variant) const;

    const Options& options_;
    std::string prefix_;
    std::vector<std::string> heads_;  ///< per target: request line, Host, Content-Type
    std::size_t bodyLength_ = 0;      ///< every body has this length (the amount is zero-padded)
};

}  // namespace idem::load
