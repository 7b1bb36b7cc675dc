#include "gateway/core/Scope.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace idem::core {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

std::string toHex(const unsigned char* data, std::size_t n) {
    std::string out(n * 2, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = kHexDigits[data[i] >> 4];
        out[2 * i + 1] = kHexDigits[data[i] & 0x0F];
    }
    return out;
}

/// The SHA-256 implementation, fetched once (an explicit fetch avoids OpenSSL 3's per-init lookup).
const EVP_MD* sha256() {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md != nullptr ? md : EVP_sha256();
}

[[noreturn]] void cryptoFailure(const char* what) {
    std::fprintf(stderr, "idemgate: fatal: OpenSSL %s failed\n", what);
    std::abort();
}

EVP_MD_CTX* asCtx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

std::string scopeDigest(std::string_view tag, std::string_view tenantHash, std::string_view routeId,
                        std::string_view version, std::string_view method, std::string_view path,
                        std::string_view key) {
    FieldHasher h(tag);
    h.add(tenantHash).add(routeId).add(version).add(method).add(path).add(key);
    return h.hexDigest();
}

}  // namespace

FieldHasher::FieldHasher(std::string_view tag) : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(asCtx(ctx_), sha256(), nullptr) != 1) cryptoFailure("digest init");
    add(tag);
}

FieldHasher::~FieldHasher() { EVP_MD_CTX_free(asCtx(ctx_)); }

FieldHasher& FieldHasher::add(std::string_view field) {
    std::array<unsigned char, 8> len{};
    auto n = static_cast<std::uint64_t>(field.size());
    for (int i = 7; i >= 0; --i, n >>= 8) len[static_cast<std::size_t>(i)] = static_cast<unsigned char>(n & 0xFF);
    if (EVP_DigestUpdate(asCtx(ctx_), len.data(), len.size()) != 1 ||
        EVP_DigestUpdate(asCtx(ctx_), field.data(), field.size()) != 1)
        cryptoFailure("digest update");
    return *this;
}

std::string FieldHasher::hexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(asCtx(ctx_), md, &n) != 1) cryptoFailure("digest final");
    return toHex(md, n);
}

std::string sha256Hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), md, &n, sha256(), nullptr) != 1) cryptoFailure("digest");
    return toHex(md, n);
}

std::string tenantHash(std::string_view credential) {
    FieldHasher h("tenant1");
    h.add(credential);
    return h.hexDigest();
}

RecordId recordId(std::string_view tenantHash, std::string_view routeId, std::string_view version,
                  std::string_view method, std::string_view path, std::string_view key) {
    return scopeDigest("scope1", tenantHash, routeId, version, method, path, key);
}

std::string derivedForwardKey(std::string_view tenantHash, std::string_view routeId, std::string_view version,
                              std::string_view method, std::string_view path, std::string_view key) {
    constexpr std::size_t kForwardKeyHexChars = 40;  // 160 bits: collision-free in practice, short in logs
    return "idg_" + scopeDigest("fwd1", tenantHash, routeId, version, method, path, key).substr(0, kForwardKeyHexChars);
}

namespace {

// Tokens come from OpenSSL's CSPRNG, drawn 4 KiB at a time into a per-thread buffer: one RAND_bytes
// call (with its locking and fork check) per 256 tokens instead of per token. A fork (daemon mode)
// bumps gForks, so a child never hands out bytes its parent also had in its buffer.
std::atomic<unsigned> gForks{0};

struct TokenBytes {
    std::array<unsigned char, 4096> buffer{};
    std::size_t next = 4096;
    unsigned forks = 0;

    const unsigned char* take(std::size_t n) {
        const unsigned f = gForks.load(std::memory_order_relaxed);
        if (next + n > buffer.size() || forks != f) {
            if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) cryptoFailure("RAND_bytes");
            next = 0;
            forks = f;
        }
        const unsigned char* out = buffer.data() + next;
        next += n;
        return out;
    }
};

}  // namespace

Token newToken() {
    static const bool registered = [] {
        ::pthread_atfork(nullptr, nullptr, [] { gForks.fetch_add(1, std::memory_order_relaxed); });
        return true;
    }();
    (void)registered;
    thread_local TokenBytes bytes;
    return toHex(bytes.take(16), 16);
}

}  // namespace idem::core
