#pragma once
// The request fingerprint (SEMANTICS.md §3, B11, B13): what makes two requests under one key "the same".
//
// fingerprint() is the lowercase hex SHA-256 (FieldHasher, Scope.h: length-prefixed fields) of, in order:
//  1. the format tag "fp1";
//  2. the method; 3. the resolved API version ("" if none);
//  4. the normalised path (normalizePath: hex digits of percent-escapes upper-cased, nothing else);
//  5. the query: with policy.fingerprintQuery, split on '&', empty parts dropped, sorted bytewise and
//     re-joined with '&' (so "a=1&b=2" == "b=2&a=1", but values still matter); otherwise "";
//  6. for each header in policy.fingerprintHeaders, in the policy's order: its lower-cased name, the
//     number of field lines (decimal; so values cannot shift between headers), then every value line
//     in the order received;
//  7. the body: BodyMode::Raw -> the raw bytes. BodyMode::Json -> if the Content-Type media type is
//     application/json or any type whose subtype ends in "+json" (case-insensitive, parameters ignored)
//     and the body is non-empty, the canonical JSON of the body (Json.h); an invalid JSON body is an
//     error whose text is meant for a 400 problem detail. Other content types and empty bodies -> the
//     raw bytes.
//
// Thread-safety: pure functions.

#include "gateway/core/Http.h"
#include "gateway/core/Policy.h"

#include <expected>
#include <string>
#include <string_view>

namespace idem::core {

std::expected<std::string, std::string> fingerprint(const HttpRequest& request, const RoutePolicy& policy,
                                                    std::string_view version);

/// `path` with the two hex digits of every percent-escape ("%2f") upper-cased ("%2F"); every other byte,
/// and a '%' not followed by two hex digits, is kept as is.
std::string normalizePath(std::string_view path);

/// The query as it enters the fingerprint (rule 5 above, the fingerprintQuery = true form).
std::string sortedQuery(std::string_view query);

/// True if the Content-Type value names JSON: application/json or any "<type>/<subtype>+json", ASCII
/// case-insensitive, parameters (";charset=utf-8") and surrounding white space ignored.
bool isJsonContentType(std::string_view contentType);

}  // namespace idem::core
