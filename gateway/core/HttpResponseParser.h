#pragma once
// HttpResponseParser: an incremental HTTP/1.1 response parser (RFC 9112) for the upstream client. Bytes
// go in as they arrive (any split, down to one byte at a time); a core::HttpResponse comes out.
//
//  - Status line "HTTP/1.x SSS reason"; header fields kept in order with their spelling, repeated names
//    as separate entries (hop-by-hop ones too: the caller decides what to keep). Obsolete line folding
//    is replaced by a space (RFC 9112 §5.2); a space before the colon, a bad field name or a control
//    character in a value is an error.
//  - Interim 1xx responses (100 Continue, 103 Early Hints) are skipped; 101 is an error (nothing here
//    asks for an upgrade).
//  - Body framing (RFC 9112 §6.3): no body after a HEAD request and for 1xx/204/304 (body stays
//    nullopt); Transfer-Encoding with chunked last: chunked (extensions ignored, trailers dropped);
//    another Transfer-Encoding: until the peer closes; Content-Length (repeated lines must agree);
//    neither: until the peer closes. A body cut short (finish() before the declared length or the last
//    chunk) is an error, never a short body.
//  - keepAlive() says whether the connection may carry another request afterwards: HTTP/1.1 without
//    "Connection: close", HTTP/1.0 only with "Connection: keep-alive", never after a close-delimited
//    body or a Transfer-Encoding + Content-Length message.
//
// Limits: the head (status line + fields) at most Limits::maxHead bytes, at most Limits::maxFields
// fields, the body at most Limits::maxBody bytes; beyond them: an error.
// Thread-safety: one parser per exchange; no shared state.

#include "gateway/core/Http.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace idem::core {

class HttpResponseParser {
public:
    struct Limits {
        std::size_t maxHead = 64 * 1024;
        std::size_t maxFields = 256;
        std::size_t maxBody = std::size_t{256} << 20;
    };

    enum class State { Head, Body, Done, Error };

    /// `headRequest`: the request was HEAD, so the response has no body whatever its fields say.
    explicit HttpResponseParser(bool headRequest = false) : HttpResponseParser(headRequest, Limits{}) {}
    HttpResponseParser(bool headRequest, Limits limits);

    /// Starts over for a new exchange (keeps the buffers' capacity).
    void reset(bool headRequest);

    /// Consumes bytes of the response. Returns how many were used: all of them, unless the response
    /// ended (Done) inside `data` (the rest is not part of it) or an error occurred.
    std::size_t feed(std::string_view data);

    /// The peer closed the connection: ends a close-delimited body (Done); anything else unfinished is
    /// an error ("closed before the response was complete").
    void finish();

    State state() const { return state_; }
    bool done() const { return state_ == State::Done; }
    bool failed() const { return state_ == State::Error; }
    /// Whether any byte has been fed since the last reset.
    bool started() const { return started_; }
    /// What went wrong, for logs and problem details (no message bytes quoted beyond a short excerpt).
    const std::string& error() const { return error_; }

    /// Valid once done(): the final (non-1xx) response.
    HttpResponse& response() { return response_; }
    bool keepAlive() const { return keepAlive_; }

private:
    enum class Framing { None, Length, Chunked, UntilClose };
    enum class ChunkState { Size, Data, DataEnd, Trailer };

    std::size_t feedHead(std::string_view data);
    std::size_t feedBody(std::string_view data);
    std::size_t feedChunked(std::string_view data);
    bool parseHead(std::string_view head);
    bool chooseFraming(int minorVersion);
    bool fail(std::string message);
    bool appendBody(std::string_view bytes);

    bool headRequest_ = false;
    Limits limits_;
    State state_ = State::Head;
    bool started_ = false;
    std::string error_;
    HttpResponse response_;
    bool keepAlive_ = false;

    std::string head_;          ///< bytes of the current head, up to and including its empty line
    std::size_t scanFrom_ = 0;  ///< where to resume looking for the end of the head

    Framing framing_ = Framing::None;
    std::uint64_t remaining_ = 0;  ///< Length: body bytes left; Chunked: bytes left in the chunk
    ChunkState chunk_ = ChunkState::Size;
    std::string line_;          ///< a chunk-size or trailer line being collected
    std::size_t trailerBytes_ = 0;
};

}  // namespace idem::core
