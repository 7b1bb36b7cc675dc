#include "HttpResponse.h"

#include <charconv>

namespace idem::load {

namespace {

char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

bool icontains(std::string_view haystack, std::string_view needle)
{
    if (needle.size() > haystack.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i)
        if (iequals(haystack.substr(i, needle.size()), needle)) return true;
    return false;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

void ResponseParser::reset()
{
    state_ = State::Head;
    start_ = 0;
    scan_ = 0;
    bodyStart_ = 0;
    chunkPos_ = 0;
    decoded_.clear();
    head_ = ResponseHead{};
    body_ = {};
    consumed_ = 0;
    error_.clear();
}

ResponseParser::Result ResponseParser::fail(const char* why)
{
    error_ = why;
    return Result::Error;
}

ResponseParser::Result ResponseParser::parse(std::string_view buffer)
{
    for (;;) {
        switch (state_) {
        case State::Head: {
            const Result r = parseHead(buffer);
            if (r != Result::Done) return r;
            if (state_ == State::Head) continue;  // a 1xx head was skipped
            break;
        }
        case State::Fixed: {
            const auto length = static_cast<std::size_t>(head_.contentLength);
            if (buffer.size() - bodyStart_ < length) return Result::NeedMore;
            body_ = buffer.substr(bodyStart_, length);
            consumed_ = bodyStart_ + length;
            return Result::Done;
        }
        case State::Chunked:
            return parseChunks(buffer);
        case State::UntilClose:
            return Result::NeedMore;
        }
    }
}

ResponseParser::Result ResponseParser::finishAtEof(std::string_view buffer)
{
    if (state_ != State::UntilClose) return fail("connection closed before the response was complete");
    body_ = buffer.substr(bodyStart_);
    consumed_ = buffer.size();
    return Result::Done;
}

ResponseParser::Result ResponseParser::parseHead(std::string_view buffer)
{
    const std::size_t from = scan_ > start_ + 3 ? scan_ - 3 : start_;
    const auto end = buffer.find("\r\n\r\n", from);
    if (end == std::string_view::npos) {
        scan_ = buffer.size();
        if (buffer.size() - start_ > 64 * 1024) return fail("response head larger than 64 KiB");
        return Result::NeedMore;
    }
    const std::string_view headText = buffer.substr(start_, end - start_);
    const std::size_t afterHead = end + 4;

    // Status line: HTTP/1.x SP code SP reason
    const auto lineEnd = headText.find("\r\n");
    const std::string_view statusLine = headText.substr(0, lineEnd);
    if (statusLine.size() < 12 || !statusLine.starts_with("HTTP/1.") || statusLine[8] != ' ')
        return fail("malformed status line");
    ResponseHead head;
    head.http10 = statusLine[7] == '0';
    int status = 0;
    const auto [ptr, ec] = std::from_chars(statusLine.data() + 9, statusLine.data() + 12, status);
    if (ec != std::errc{} || ptr != statusLine.data() + 12 || status < 100 || status > 999)
        return fail("malformed status code");
    head.status = status;

    bool keepAlive = false;
    std::string_view rest = lineEnd == std::string_view::npos ? std::string_view() : headText.substr(lineEnd + 2);
    while (!rest.empty()) {
        const auto eol = rest.find("\r\n");
        const std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) return fail("malformed header line");
        const std::string_view name = line.substr(0, colon);
        const std::string_view value = trim(line.substr(colon + 1));
        switch (lower(name[0])) {
        case 'c':
            if (iequals(name, "content-length")) {
                std::int64_t n = -1;
                const auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), n);
                if (e != std::errc{} || p != value.data() + value.size() || n < 0) return fail("bad Content-Length");
                if (head.contentLength >= 0 && head.contentLength != n) return fail("conflicting Content-Length");
                head.contentLength = n;
            } else if (iequals(name, "connection")) {
                if (icontains(value, "close")) head.close = true;
                if (icontains(value, "keep-alive")) keepAlive = true;
            }
            break;
        case 't':
            if (iequals(name, "transfer-encoding") && icontains(value, "chunked")) head.chunked = true;
            break;
        case 'r':
            if (iequals(name, "retry-after") && !value.empty()) head.retryAfter = true;
            break;
        case 'i':
            if (iequals(name, "idempotent-replayed")) head.replayed = iequals(value, "true") ? 1 : 0;
            break;
        default:
            break;
        }
    }
    if (head.http10 && !keepAlive) head.close = true;

    if (head.status < 200 && head.status != 101) {
        // Interim response: skip it and parse the next head.
        start_ = afterHead;
        scan_ = afterHead;
        return Result::Done;
    }
    head_ = head;
    bodyStart_ = afterHead;
    if (head_.status == 204 || head_.status == 304) {
        head_.contentLength = 0;
        state_ = State::Fixed;
    } else if (head_.chunked) {
        chunkPos_ = afterHead;
        decoded_.clear();
        state_ = State::Chunked;
    } else if (head_.contentLength >= 0) {
        state_ = State::Fixed;
    } else {
        head_.close = true;
        state_ = State::UntilClose;
    }
    return Result::Done;
}

ResponseParser::Result ResponseParser::parseChunks(std::string_view buffer)
{
    for (;;) {
        const auto eol = buffer.find("\r\n", chunkPos_);
        if (eol == std::string_view::npos) return Result::NeedMore;
        std::string_view sizeText = buffer.substr(chunkPos_, eol - chunkPos_);
        if (const auto semi = sizeText.find(';'); semi != std::string_view::npos) sizeText = sizeText.substr(0, semi);
        sizeText = trim(sizeText);
        std::size_t size = 0;
        const auto [p, e] = std::from_chars(sizeText.data(), sizeText.data() + sizeText.size(), size, 16);
        if (sizeText.empty() || e != std::errc{} || p != sizeText.data() + sizeText.size())
            return fail("malformed chunk size");
        if (size == 0) {
            // Trailers (if any) end with an empty line.
            const std::size_t after = eol + 2;
            if (buffer.size() < after + 2) return Result::NeedMore;
            std::size_t end;
            if (buffer.substr(after, 2) == "\r\n") {
                end = after + 2;
            } else {
                const auto t = buffer.find("\r\n\r\n", after);
                if (t == std::string_view::npos) return Result::NeedMore;
                end = t + 4;
            }
            body_ = decoded_;
            consumed_ = end;
            return Result::Done;
        }
        const std::size_t dataStart = eol + 2;
        if (buffer.size() < dataStart + size + 2) return Result::NeedMore;
        if (buffer.substr(dataStart + size, 2) != "\r\n") return fail("chunk not followed by CRLF");
        decoded_.append(buffer.substr(dataStart, size));
        chunkPos_ = dataStart + size + 2;
    }
}

}  // namespace idem::load
