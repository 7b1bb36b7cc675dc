#pragma once
// HttpRequestParser: a strict, incremental HTTP/1.1 request parser (RFC 9112) for the server edge.
// Pure: no sockets, no allocation beyond the core::HttpRequest strings it fills.
//
// Two phases per request:
//  - parseHead(data, request): `data` is every byte received for this request so far, from its first
//    byte (the caller keeps them and passes them again with more appended; the parser remembers how far
//    it has looked, so a head that arrives one byte at a time is scanned once). On Done, `consumed` is
//    the size of the head; method, path, query and headers are in `request` and head() says how the
//    body is framed, whether the connection may stay open, and whether the client expects 100 Continue.
//  - parseBody(data, body, limit): after a Done head with a body (framing Length or Chunked), decodes
//    body bytes from `data` (the bytes after those already consumed) into `body`. Done once the body is
//    complete; `consumed` says how many bytes of `data` belonged to it (the rest is the next request).
//
// Grammar (RFC 9112 §2-§7), strictly:
//  - request line "METHOD SP request-target SP HTTP/1.x": a token method; an origin-form target
//    ("/path?query"), absolute-form ("http://host/path?query": the path and query are taken) or "*"
//    for OPTIONS; target bytes 0x21-0x7E except '#'. Exactly one SP between the parts. HTTP/1.0 and
//    HTTP/1.1 only: another "HTTP/d.d" is 505, anything else 400. Empty lines before it are skipped.
//  - header fields "name: value": a token name with no space before the colon, a value of visible
//    bytes, obs-text, SP and HTAB, surrounding whitespace trimmed. Kept in order with the client's
//    spelling, repeated names as separate entries. Obsolete line folding is refused (400).
//  - lines end in CRLF; a bare LF is accepted in the head (RFC 9112 §2.2), never a bare CR. Chunked
//    framing needs CRLF everywhere.
//  - HTTP/1.1 needs exactly one Host field; HTTP/1.0 at most one.
//  - framing: Transfer-Encoding must end in "chunked" (else 400), with no other coding before it (501)
//    and not in HTTP/1.0 (400); with Content-Length as well: 400. Content-Length: digits only; repeated
//    lines or a comma list are accepted only when every value is the same (else 400). Neither: no body.
//  - chunked bodies: hex size (at most 15 digits), extensions after ';' ignored, CRLF after the data,
//    trailer fields dropped (bounded like header fields).
//  - keep-alive: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
//  - "Expect: 100-continue" in HTTP/1.1 sets expectContinue (ignored in HTTP/1.0, RFC 9110 §10.1.1);
//    other expectations are ignored.
//
// Limits (RequestLimits): a request line longer than maxRequestLine is 414; header field lines over
// maxHeaderBytes in all, or more than maxHeaderLines of them, are 431. A body over the caller's limit
// is 413: a Content-Length over it is refused before any body byte is read.
//
// Errors: Status::Error with error() = {HTTP status, a sentence for the problem's detail}. After an
// error the connection must be closed: where the next request starts is unknown.
// Thread-safety: one parser per connection; no shared state.

#include "gateway/core/Http.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace idem::core {

struct RequestLimits {
    std::size_t maxRequestLine = 8 * 1024;   ///< bytes, line end excluded
    std::size_t maxHeaderBytes = 64 * 1024;  ///< all header field lines, line ends included
    std::size_t maxHeaderLines = 100;
};

enum class BodyFraming { None, Length, Chunked };

/// What the head says beyond the request's fields.
struct RequestHead {
    int minorVersion = 1;                      ///< HTTP/1.<minorVersion>
    bool keepAlive = true;                     ///< the connection may carry another request after this one
    bool expectContinue = false;               ///< HTTP/1.1 "Expect: 100-continue"
    BodyFraming framing = BodyFraming::None;
    std::uint64_t contentLength = 0;           ///< Length framing only
};

struct RequestParseError {
    int status = 0;       ///< 400, 413, 414, 431, 501 or 505
    std::string detail;   ///< for the problem's `detail`; quotes no request bytes
};

class HttpRequestParser {
public:
    enum class Status { NeedMore, Done, Error };
    struct Step {
        Status status;
        std::size_t consumed;  ///< bytes of `data` used (0 from parseHead until Done)
    };

    explicit HttpRequestParser(RequestLimits limits = {}) : limits_(limits) {}

    /// Starts a new request (before each request on a connection).
    void reset();

    /// The head phase (see the top). `request` is cleared when the first line is parsed (string
    /// capacities are kept).
    Step parseHead(std::string_view data, HttpRequest& request);

    /// The body phase (see the top): appends to `body`; over `limit` bytes: Error 413.
    Step parseBody(std::string_view data, std::string& body, std::size_t limit);

    const RequestHead& head() const { return head_; }
    const RequestParseError& error() const { return error_; }

private:
    enum class Phase { RequestLine, Headers, Body, Done, Error };
    enum class Chunk { Size, Ext, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf };

    Step fail(int status, std::string detail);
    bool parseRequestLine(std::string_view line, HttpRequest& request);
    bool parseHeaderLine(std::string_view line, HttpRequest& request);
    bool finishHead(HttpRequest& request);
    Step parseChunked(std::string_view data, std::string& body, std::size_t limit);

    RequestLimits limits_;
    Phase phase_ = Phase::RequestLine;
    std::size_t pos_ = 0;         ///< parseHead: start of the line being read
    std::size_t scanned_ = 0;     ///< parseHead: bytes already searched for a line end
    std::size_t headerBytes_ = 0;
    std::size_t headerLines_ = 0;
    RequestHead head_;
    RequestParseError error_;
    // body
    std::uint64_t remaining_ = 0;  ///< Length: bytes still to come; Chunked: of the current chunk
    Chunk chunk_ = Chunk::Size;
    int sizeDigits_ = 0;
    std::size_t lineBytes_ = 0;    ///< Chunked: bytes of the current size or trailer line
};

}  // namespace idem::core
