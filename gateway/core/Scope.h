#pragma once
// Hashing for the record scope (SEMANTICS.md §2, B14, B15, B22, B24) and the fencing tokens.
//
//  - Every digest here is SHA-256 (OpenSSL EVP) over length-prefixed fields behind a domain tag, so that
//    field boundaries cannot shift ("a:b"+"c" never equals "a"+"b:c") and digests made for one purpose
//    can never collide with digests made for another. Each field is its 8-byte big-endian length followed
//    by its bytes; the tag is the first field.
//  - The record id binds tenant, route, version, method, path and key; the store never sees the raw key
//    and its length never depends on the key (a 255-character key fits, B22).
//  - The tenant credential (e.g. the Authorization value) is hashed with tag "tenant1" and is never
//    stored or logged.
//  - The derived forward key depends on the scope only: stable across retries, instances, takeovers and
//    restarts, and different for two tenants (B24).
//
// Thread-safety: pure functions, except newToken which reads OpenSSL's thread-safe CSPRNG.

#include "storage/Store.h"

#include <string>
#include <string_view>

namespace idem::core {

using storage::RecordId;
using storage::Token;

/// Incremental SHA-256 over length-prefixed fields (the encoding above). Not copyable; one per digest.
class FieldHasher {
public:
    /// Starts a digest whose first field is `tag`.
    explicit FieldHasher(std::string_view tag);
    ~FieldHasher();
    FieldHasher(const FieldHasher&) = delete;
    FieldHasher& operator=(const FieldHasher&) = delete;

    /// Appends one field: its length (8 bytes, big-endian), then its bytes.
    FieldHasher& add(std::string_view field);
    /// 64 lowercase hex characters. Ends the digest: call once.
    std::string hexDigest();

private:
    void* ctx_;  ///< EVP_MD_CTX (kept opaque: no OpenSSL header in our headers)
};

/// Lowercase hex SHA-256 of `data` (64 characters), no tag, no length prefix.
std::string sha256Hex(std::string_view data);

/// Hex SHA-256 of the tenant credential with the domain tag "tenant1".
std::string tenantHash(std::string_view credential);

/// Record address: hex SHA-256 of ("scope1", tenantHash, routeId, version, method, path, key).
RecordId recordId(std::string_view tenantHash, std::string_view routeId, std::string_view version,
                  std::string_view method, std::string_view path, std::string_view key);

/// "idg_" + the first 40 hex characters of SHA-256 of ("fwd1", the same fields as recordId).
std::string derivedForwardKey(std::string_view tenantHash, std::string_view routeId, std::string_view version,
                              std::string_view method, std::string_view path, std::string_view key);

/// A fresh fencing token: 32 lowercase hex characters from 128 bits of OpenSSL RAND_bytes. If the CSPRNG
/// fails (it cannot on a sane system), the process aborts: fencing without randomness is unsafe.
Token newToken();

}  // namespace idem::core
