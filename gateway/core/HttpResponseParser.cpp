#include "gateway/core/HttpResponseParser.h"

#include <algorithm>
#include <limits>

namespace idem::core {
namespace {

// A chunk-size line ("1a2b;ext=1") longer than this is not a chunk size.
constexpr std::size_t kMaxChunkLine = 4096;

bool isTokenChar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trimOws(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// Calls `each` for every comma-separated, trimmed, non-empty element of a list field value.
template <class F>
void forEachListElement(std::string_view value, F&& each) {
    while (true) {
        const std::size_t comma = value.find(',');
        const std::string_view element = trimOws(value.substr(0, comma));
        if (!element.empty()) each(element);
        if (comma == std::string_view::npos) return;
        value.remove_prefix(comma + 1);
    }
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7F) ? c : '?';
    return out;
}

}  // namespace

HttpResponseParser::HttpResponseParser(bool headRequest, Limits limits) : limits_(limits) { reset(headRequest); }

void HttpResponseParser::reset(bool headRequest) {
    headRequest_ = headRequest;
    state_ = State::Head;
    started_ = false;
    error_.clear();
    response_.status = 0;
    response_.reason.clear();
    response_.headers.clear();
    response_.body.reset();
    keepAlive_ = false;
    head_.clear();
    scanFrom_ = 0;
    framing_ = Framing::None;
    remaining_ = 0;
    chunk_ = ChunkState::Size;
    line_.clear();
    trailerBytes_ = 0;
}

bool HttpResponseParser::fail(std::string message) {
    state_ = State::Error;
    error_ = std::move(message);
    keepAlive_ = false;
    return false;
}

std::size_t HttpResponseParser::feed(std::string_view data) {
    if (!data.empty()) started_ = true;
    std::size_t used = 0;
    while (used < data.size()) {
        const std::string_view rest = data.substr(used);
        std::size_t n = 0;
        if (state_ == State::Head) n = feedHead(rest);
        else if (state_ == State::Body) n = feedBody(rest);
        else break;
        used += n;
        if (n == 0) break;
    }
    return used;
}

std::size_t HttpResponseParser::feedHead(std::string_view data) {
    std::size_t skipped = 0;
    if (head_.empty()) {
        // Stray empty lines before a status line (some servers add CRLF after a body): ignored.
        while (skipped < data.size() && (data[skipped] == '\r' || data[skipped] == '\n')) ++skipped;
        data.remove_prefix(skipped);
        if (data.empty()) return skipped;
    }
    const std::size_t before = head_.size();
    const std::size_t room = limits_.maxHead + 4 > before ? limits_.maxHead + 4 - before : 0;
    head_.append(data.substr(0, room));
    std::size_t end = std::string::npos;
    for (std::size_t i = head_.find('\n', scanFrom_); i != std::string::npos; i = head_.find('\n', i + 1)) {
        if (i + 1 >= head_.size()) {
            scanFrom_ = i;
            break;
        }
        if (head_[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (head_[i + 1] == '\r') {
            if (i + 2 >= head_.size()) {
                scanFrom_ = i;
                break;
            }
            if (head_[i + 2] == '\n') {
                end = i + 3;
                break;
            }
        }
        scanFrom_ = i + 1;
    }
    if (end == std::string::npos) {
        if (head_.size() > limits_.maxHead) {
            fail("the response head is larger than " + std::to_string(limits_.maxHead) + " bytes");
            return skipped + data.size();
        }
        if (scanFrom_ < head_.size() && head_.find('\n', scanFrom_) == std::string::npos) scanFrom_ = head_.size();
        return skipped + data.size();
    }
    if (end > limits_.maxHead) {
        fail("the response head is larger than " + std::to_string(limits_.maxHead) + " bytes");
        return skipped + data.size();
    }
    const std::size_t usedHere = end - before;  // bytes of `data` that belong to this head
    head_.resize(end);
    if (!parseHead(head_)) return skipped + usedHere;
    head_.clear();
    scanFrom_ = 0;
    return skipped + usedHere;
}

bool HttpResponseParser::parseHead(std::string_view head) {
    response_.headers.clear();
    response_.headers.reserve(16);  // one allocation for a typical head instead of one per doubling
    response_.reason.clear();
    response_.body.reset();
    std::size_t pos = 0;
    auto nextLine = [&](std::string_view& line) {
        const std::size_t nl = head.find('\n', pos);
        if (nl == std::string_view::npos) return false;
        line = head.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos = nl + 1;
        return true;
    };
    std::string_view line;
    nextLine(line);
    // HTTP-version SP status-code [SP reason-phrase]
    if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[7] < '0' || line[7] > '9' || line[8] != ' ')
        return fail("malformed status line \"" + excerpt(line) + "\"");
    const int minor = line[7] - '0';
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') return fail("malformed status code in \"" + excerpt(line) + "\"");
        status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || status > 599) return fail("status " + std::to_string(status) + " is out of range");
    if (line.size() > 12) {
        if (line[12] != ' ') return fail("malformed status line \"" + excerpt(line) + "\"");
        const std::string_view reason = line.substr(13);
        for (char c : reason)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F)
                return fail("control character in the reason phrase");
        response_.reason.assign(reason);
    }
    response_.status = status;

    while (nextLine(line)) {
        if (line.empty()) break;
        for (char c : line)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F)
                return fail("control character in a header field");
        if (line.front() == ' ' || line.front() == '\t') {
            // obs-fold: continues the previous field's value, replaced by one space (RFC 9112 §5.2).
            if (response_.headers.empty()) return fail("a header block starts with a continuation line");
            const std::string_view more = trimOws(line);
            auto& value = response_.headers.back().second;
            if (!more.empty()) {
                if (!value.empty()) value += ' ';
                value.append(more);
            }
            continue;
        }
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) return fail("header line without a colon: \"" + excerpt(line) + "\"");
        const std::string_view name = line.substr(0, colon);
        if (name.empty() || !std::all_of(name.begin(), name.end(), isTokenChar))
            return fail("invalid header name \"" + excerpt(name) + "\"");
        if (response_.headers.size() >= limits_.maxFields)
            return fail("more than " + std::to_string(limits_.maxFields) + " header fields");
        response_.headers.emplace_back(std::string(name), std::string(trimOws(line.substr(colon + 1))));
    }

    if (status < 200) {
        if (status == 101) return fail("unexpected 101 Switching Protocols (no upgrade was requested)");
        // Interim response: wait for the final one.
        response_.headers.clear();
        response_.reason.clear();
        response_.status = 0;
        return true;
    }
    return chooseFraming(minor);
}

bool HttpResponseParser::chooseFraming(int minorVersion) {
    bool close = false;
    bool keepAliveToken = false;
    bool hasTransferEncoding = false;
    bool chunkedLast = false;
    bool chunkedEarlier = false;
    bool hasLength = false;
    std::uint64_t length = 0;
    for (const auto& [name, value] : response_.headers) {
        if (iequals(name, "Connection")) {
            forEachListElement(value, [&](std::string_view t) {
                if (iequals(t, "close")) close = true;
                else if (iequals(t, "keep-alive")) keepAliveToken = true;
            });
        } else if (iequals(name, "Transfer-Encoding")) {
            forEachListElement(value, [&](std::string_view coding) {
                if (chunkedLast) chunkedEarlier = true;  // something follows a chunked coding
                hasTransferEncoding = true;
                chunkedLast = iequals(coding, "chunked");
            });
        } else if (iequals(name, "Content-Length")) {
            bool bad = false;
            std::uint64_t lineLength = 0;
            bool first = true;
            forEachListElement(value, [&](std::string_view v) {
                std::uint64_t n = 0;
                if (v.empty() || v.size() > 19 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                    bad = true;
                    return;
                }
                for (char c : v) n = n * 10 + static_cast<std::uint64_t>(c - '0');
                if (!first && n != lineLength) bad = true;
                lineLength = n;
                first = false;
            });
            if (bad || first) return fail("invalid Content-Length \"" + excerpt(value) + "\"");
            if (hasLength && lineLength != length) return fail("conflicting Content-Length fields");
            hasLength = true;
            length = lineLength;
        }
    }
    keepAlive_ = minorVersion >= 1 ? !close : (keepAliveToken && !close);

    const int status = response_.status;
    if (headRequest_ || status == 204 || status == 304) {
        response_.body.reset();
        framing_ = Framing::None;
        state_ = State::Done;
        return true;
    }
    response_.body.emplace();
    if (hasTransferEncoding) {
        if (chunkedEarlier) return fail("chunked is not the last transfer coding");
        // With Transfer-Encoding, Content-Length is ignored, and such a message ends the connection.
        if (hasLength || minorVersion == 0) keepAlive_ = false;
        if (chunkedLast) {
            framing_ = Framing::Chunked;
            chunk_ = ChunkState::Size;
            line_.clear();
        } else {
            framing_ = Framing::UntilClose;
            keepAlive_ = false;
        }
    } else if (hasLength) {
        if (length > limits_.maxBody)
            return fail("the response body of " + std::to_string(length) + " bytes is larger than the limit of " +
                        std::to_string(limits_.maxBody));
        framing_ = Framing::Length;
        remaining_ = length;
        response_.body->reserve(static_cast<std::size_t>(length));
        if (length == 0) {
            state_ = State::Done;
            return true;
        }
    } else {
        framing_ = Framing::UntilClose;
        keepAlive_ = false;
    }
    state_ = State::Body;
    return true;
}

bool HttpResponseParser::appendBody(std::string_view bytes) {
    auto& body = *response_.body;
    if (body.size() + bytes.size() > limits_.maxBody)
        return fail("the response body is larger than the limit of " + std::to_string(limits_.maxBody) + " bytes");
    body.append(bytes);
    return true;
}

std::size_t HttpResponseParser::feedBody(std::string_view data) {
    switch (framing_) {
        case Framing::Length: {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size()));
            response_.body->append(data.substr(0, n));
            remaining_ -= n;
            if (remaining_ == 0) state_ = State::Done;
            return n;
        }
        case Framing::UntilClose:
            appendBody(data);
            return data.size();
        case Framing::Chunked:
            return feedChunked(data);
        case Framing::None:
            break;
    }
    state_ = State::Done;
    return 0;
}

std::size_t HttpResponseParser::feedChunked(std::string_view data) {
    std::size_t used = 0;
    while (used < data.size() && state_ == State::Body) {
        if (chunk_ == ChunkState::Data) {
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - used));
            if (!appendBody(data.substr(used, n))) return used + n;
            used += n;
            remaining_ -= n;
            if (remaining_ == 0) chunk_ = ChunkState::DataEnd;
            continue;
        }
        // Size, DataEnd and Trailer work on whole lines.
        const std::size_t nl = data.find('\n', used);
        const std::size_t take = (nl == std::string_view::npos ? data.size() : nl + 1) - used;
        const std::size_t lineLimit = chunk_ == ChunkState::Trailer ? limits_.maxHead : kMaxChunkLine;
        if (line_.size() + take > lineLimit + 2) {
            fail(chunk_ == ChunkState::Trailer ? "the trailer section is too large" : "a chunk-size line is too long");
            return used + take;
        }
        line_.append(data.substr(used, take));
        used += take;
        if (nl == std::string_view::npos) break;
        std::string_view line(line_);
        line.remove_suffix(1);  // '\n'
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

        if (chunk_ == ChunkState::DataEnd) {
            if (!line.empty()) {
                fail("chunk data is longer than its declared size");
                return used;
            }
            chunk_ = ChunkState::Size;
        } else if (chunk_ == ChunkState::Size) {
            std::uint64_t size = 0;
            std::size_t i = 0;
            for (; i < line.size() && hexValue(line[i]) >= 0; ++i) {
                if (size > (std::numeric_limits<std::uint64_t>::max() >> 4)) {
                    fail("chunk size overflows");
                    return used;
                }
                size = (size << 4) | static_cast<std::uint64_t>(hexValue(line[i]));
            }
            const std::string_view after = trimOws(line.substr(i));
            if (i == 0 || (!after.empty() && after.front() != ';')) {
                fail("malformed chunk size \"" + excerpt(line) + "\"");
                return used;
            }
            if (size > limits_.maxBody || response_.body->size() + size > limits_.maxBody) {
                fail("the response body is larger than the limit of " + std::to_string(limits_.maxBody) + " bytes");
                return used;
            }
            if (size == 0) {
                chunk_ = ChunkState::Trailer;
            } else {
                remaining_ = size;
                chunk_ = ChunkState::Data;
            }
        } else {  // Trailer: fields after the last chunk are read and dropped, up to an empty line
            if (line.empty()) {
                state_ = State::Done;
            } else {
                trailerBytes_ += line_.size();
                if (trailerBytes_ > limits_.maxHead) {
                    fail("the trailer section is too large");
                    return used;
                }
            }
        }
        line_.clear();
    }
    return used;
}

void HttpResponseParser::finish() {
    switch (state_) {
        case State::Done:
        case State::Error:
            return;
        case State::Head:
            fail(head_.empty() ? "the connection closed before a response arrived"
                               : "the connection closed inside the response head");
            return;
        case State::Body:
            break;
    }
    if (framing_ == Framing::UntilClose) {
        keepAlive_ = false;
        state_ = State::Done;
        return;
    }
    if (framing_ == Framing::Length) {
        fail("the connection closed after " + std::to_string(response_.body->size()) + " of " +
             std::to_string(response_.body->size() + remaining_) + " body bytes");
        return;
    }
    fail("the connection closed inside the chunked body after " + std::to_string(response_.body->size()) + " bytes");
}

}  // namespace idem::core
