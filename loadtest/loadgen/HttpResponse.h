// Incremental HTTP/1.1 response parser for the load generator: status, the few headers the tool reads,
// Content-Length, chunked and read-until-close bodies. 1xx interim responses are skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace idem::load {

struct ResponseHead {
    int status = 0;
    bool http10 = false;
    bool close = false;            ///< the server closes the connection after this response
    bool chunked = false;
    std::int64_t contentLength = -1;
    bool retryAfter = false;       ///< a Retry-After header with a non-empty value
    int replayed = -1;             ///< Idempotent-Replayed: -1 absent, 0 false, 1 true
};

class ResponseParser {
public:
    enum class Result { NeedMore, Done, Error };

    void reset();
    /// Parses the bytes received so far on the connection (always the whole buffer from the start of this
    /// response). Done: head(), body() and consumed() describe the response.
    Result parse(std::string_view buffer);
    /// The peer closed the connection: completes a body delimited by the close, or fails.
    Result finishAtEof(std::string_view buffer);

    const ResponseHead& head() const { return head_; }
    /// The body (decoded when chunked); valid until the buffer or the parser changes.
    std::string_view body() const { return body_; }
    std::size_t consumed() const { return consumed_; }
    const std::string& error() const { return error_; }

private:
    enum class State { Head, Fixed, Chunked, UntilClose };

    Result parseHead(std::string_view buffer);
    Result parseChunks(std::string_view buffer);
    Result fail(const char* why);

    State state_ = State::Head;
    std::size_t start_ = 0;        ///< offset of the current message (after skipped 1xx heads)
    std::size_t scan_ = 0;         ///< where the search for the end of the head resumes
    std::size_t bodyStart_ = 0;
    std::size_t chunkPos_ = 0;
    std::string decoded_;
    ResponseHead head_;
    std::string_view body_;
    std::size_t consumed_ = 0;
    std::string error_;
};

}  // namespace idem::load
