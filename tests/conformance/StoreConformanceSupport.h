#pragma once
// Helpers for the store conformance suite (StoreConformanceCases.h): unique record ids, tokens,
// fingerprints, sample responses, outcome inspection and printing, and the Fx time helpers.
//
// Include this header at FILE SCOPE, before defining your fixture; StoreConformanceCases.h is then
// included inside a BOOST_AUTO_TEST_SUITE (a namespace), where it must not pull in any header itself.
// Record ids are 64-hex SHA-256 digests of (per-process random run id, fixture name, test case name,
// counter), so repeated runs against a persistent server never collide.
// Thread-safety: every helper may be used from any thread (the run id is initialised once).

#include "storage/RecordCodec.h"
#include "storage/Store.h"
#include "tests/support/FaultProxy.h"

#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#define IDEM_STORE_CONFORMANCE_SUPPORT_INCLUDED 1

namespace idem::test {

using storage::Abandoned;
using storage::BeginOutcome;
using storage::CompleteOutcome;
using storage::Done;
using storage::InProgress;
using storage::Millis;
using storage::Mismatch;
using storage::Owned;
using storage::Result;
using storage::StoredResponse;
using storage::StoreError;

/// Size limit every conformance fixture must build its store with at least (case 7 stores 1 MiB).
inline constexpr std::size_t kMinConformanceResponseBytes = 2u << 20;

inline std::string toHex(const unsigned char* data, std::size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(2 * n, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = kDigits[data[i] >> 4];
        out[2 * i + 1] = kDigits[data[i] & 0xf];
    }
    return out;
}

inline std::string sha256Hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("EVP_Digest(sha256) failed");
    return toHex(md, len);
}

/// SHA-256 over length-prefixed parts: ("a:b","c") and ("a","b:c") can never hash alike.
inline std::string hashParts(std::initializer_list<std::string_view> parts) {
    std::string buf;
    for (std::string_view p : parts) {
        buf += std::to_string(p.size());
        buf += ':';
        buf += p;
    }
    return sha256Hex(buf);
}

inline std::string randomHex(std::size_t bytes) {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     (std::uint64_t(std::random_device{}()) << 32)};
    std::vector<unsigned char> b(bytes);
    for (auto& c : b) c = static_cast<unsigned char>(rng());
    return toHex(b.data(), b.size());
}

/// Random per process: distinguishes this run from every earlier run against the same server.
inline const std::string& runId() {
    static const std::string id = randomHex(16);
    return id;
}

/// A fresh 128-bit token, as the gateway makes one per attempt.
inline storage::Token newToken() { return randomHex(16); }

/// A 64-hex fingerprint derived from a label.
inline storage::Fingerprint fingerprintOf(std::string_view label) { return hashParts({"fp", label}); }

/// Unique record ids for one test case.
class Ids {
public:
    explicit Ids(std::string_view fixture)
        : prefix_(std::string(fixture) + '\0' +
                  std::string(boost::unit_test::framework::current_test_case().p_name.get())) {}
    storage::RecordId next() { return hashParts({runId(), prefix_, std::to_string(counter_.fetch_add(1))}); }

private:
    std::string prefix_;
    std::atomic<int> counter_{0};
};

inline StoredResponse response(std::string_view tag, int status = 201) {
    StoredResponse r;
    r.status = status;
    r.headers = {{"Content-Type", "application/json"}, {"X-Tag", std::string(tag)}};
    r.body = std::string(R"({"tag":")") + std::string(tag) + "\"}";
    return r;
}

inline const char* kindName(StoreError::Kind k) {
    switch (k) {
        case StoreError::Kind::Unavailable: return "Unavailable";
        case StoreError::Kind::Timeout: return "Timeout";
        case StoreError::Kind::TooLarge: return "TooLarge";
        case StoreError::Kind::Full: return "Full";
        case StoreError::Kind::Corrupt: return "Corrupt";
    }
    return "?";
}

inline std::string describe(const StoreError& e) { return std::string("error ") + kindName(e.kind) + ": " + e.message; }

inline std::string describe(const StoredResponse& r) {
    std::string s = "{status " + std::to_string(r.status) + ", " + std::to_string(r.headers.size()) + " headers, ";
    s += r.body ? "body " + std::to_string(r.body->size()) + " B" : std::string("no body");
    s += ", settlement ";
    s += static_cast<char>(r.settlement);
    return s + "}";
}

inline std::string describe(const Result<BeginOutcome>& r) {
    if (!r) return describe(r.error());
    return std::visit(
        [](const auto& o) -> std::string {
            using T = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<T, Owned>) return "Owned{" + o.token + ", fence " + std::to_string(o.fence) + "}";
            else if constexpr (std::is_same_v<T, InProgress>) return "InProgress{" + std::to_string(o.leaseLeft.count()) + " ms}";
            else if constexpr (std::is_same_v<T, Done>) return "Done" + describe(o.response);
            else if constexpr (std::is_same_v<T, Mismatch>) return "Mismatch";
            else return "Abandoned{" + o.token + "}";
        },
        *r);
}

inline std::string describe(const Result<CompleteOutcome>& r) {
    if (!r) return describe(r.error());
    return *r == CompleteOutcome::Ok ? "Ok" : "Fenced";
}

template <class T>
std::string describe(const Result<T>& r) {
    if (!r) return describe(r.error());
    if constexpr (std::is_same_v<T, bool>) return *r ? "true" : "false";
    else if constexpr (std::is_void_v<T>) return "ok";
    else return std::to_string(*r);
}

/// The alternative T of a successful begin/takeover, or nullptr.
template <class T>
const T* as(const Result<BeginOutcome>& r) {
    return r ? std::get_if<T>(&*r) : nullptr;
}

inline bool isOwnedBy(const Result<BeginOutcome>& r, const storage::Token& t) {
    const Owned* o = as<Owned>(r);
    return o && o->token == t;
}

inline bool isDoneWith(const Result<BeginOutcome>& r, const StoredResponse& expected) {
    const Done* d = as<Done>(r);
    return d && d->response == expected;
}

inline bool isOk(const Result<CompleteOutcome>& r) { return r && *r == CompleteOutcome::Ok; }
inline bool isFenced(const Result<CompleteOutcome>& r) { return r && *r == CompleteOutcome::Fenced; }
inline bool isTrue(const Result<bool>& r) { return r && *r; }
inline bool isFalse(const Result<bool>& r) { return r && !*r; }

template <class T>
bool failsWith(const Result<T>& r, StoreError::Kind kind) {
    return !r && r.error().kind == kind;
}

inline bool isUnreachableError(const StoreError& e) {
    return e.kind == StoreError::Kind::Unavailable || e.kind == StoreError::Kind::Timeout;
}

/// True if the call failed the way an unreachable or unresponsive store must fail.
template <class T>
bool failsUnreachable(const Result<T>& r) {
    return !r && isUnreachableError(r.error());
}

/// A response whose storedSize() is exactly `size` (headers included), body bytes 0x00..0xFF cycling.
inline StoredResponse responseOfSize(std::size_t size) {
    StoredResponse r;
    r.status = 200;
    r.headers = {{"Content-Type", "application/octet-stream"}};
    const std::size_t meta = storage::storedSize(r);
    if (size < meta) throw std::invalid_argument("responseOfSize: smaller than its headers");
    std::string body(size - meta, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i & 0xff);
    r.body = std::move(body);
    return r;
}

/// How far to move after an event so that a TTL `ttl` counted from it has NOT yet run out: exactly to
/// the last millisecond on fake time, half of it on real time (the rest covers RPC and sleep overshoot).
template <class Fx>
constexpr Millis justBefore(Millis ttl) {
    if constexpr (Fx::kNetworked) return ttl / 2;
    else return ttl - Millis{1};
}

/// How far to move after an event so that a TTL `ttl` counted from it has surely run out.
template <class Fx>
constexpr Millis wellPast(Millis ttl) {
    if constexpr (Fx::kNetworked) return ttl * 2;
    else return ttl + Millis{1};
}

}  // namespace idem::test
