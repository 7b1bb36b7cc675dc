#include "gateway/core/HttpRequestParser.h"

#include <array>
#include <cstring>

namespace idem::core {
namespace {

/// tchar (RFC 9110 §5.6.2): the bytes of a token (methods, field names, codings).
constexpr std::array<bool, 256> makeTokenTable() {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
}
constexpr auto kToken = makeTokenTable();

/// Bytes of a request-target: visible ASCII except '#' (a fragment is never sent).
constexpr std::array<bool, 256> makeTargetTable() {
    std::array<bool, 256> t{};
    for (int c = 0x21; c <= 0x7E; ++c) t[static_cast<std::size_t>(c)] = c != '#';
    return t;
}
constexpr auto kTarget = makeTargetTable();

/// Bytes of a field value: VCHAR, obs-text, SP and HTAB.
constexpr std::array<bool, 256> makeValueTable() {
    std::array<bool, 256> t{};
    t['\t'] = true;
    for (int c = 0x20; c <= 0xFF; ++c) t[static_cast<std::size_t>(c)] = c != 0x7F;
    return t;
}
constexpr auto kValue = makeValueTable();

bool isToken(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!kToken[static_cast<unsigned char>(c)]) return false;
    return true;
}

std::string_view trimOws(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// Calls f(element) for each non-empty element of a comma-separated list, trimmed (RFC 9110 §5.6.1).
template <class F>
void forEachElement(std::string_view list, F&& f) {
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t comma = list.find(',', start);
        if (comma == std::string_view::npos) comma = list.size();
        const auto element = trimOws(list.substr(start, comma - start));
        if (!element.empty()) f(element);
        start = comma + 1;
    }
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

constexpr std::size_t kMaxChunkLine = 4096;  ///< a chunk-size line with its extensions
constexpr int kMaxChunkDigits = 15;           ///< 2^60 bytes: no overflow, far over any limit
constexpr std::size_t kMaxLengthDigits = 18;  ///< Content-Length below 10^18: no overflow

}  // namespace

void HttpRequestParser::reset() {
    phase_ = Phase::RequestLine;
    pos_ = 0;
    scanned_ = 0;
    headerBytes_ = 0;
    headerLines_ = 0;
    head_ = RequestHead{};
    error_.status = 0;
    error_.detail.clear();
    remaining_ = 0;
    chunk_ = Chunk::Size;
    sizeDigits_ = 0;
    lineBytes_ = 0;
}

HttpRequestParser::Step HttpRequestParser::fail(int status, std::string detail) {
    phase_ = Phase::Error;
    error_.status = status;
    error_.detail = std::move(detail);
    return {Status::Error, 0};
}

HttpRequestParser::Step HttpRequestParser::parseHead(std::string_view data, HttpRequest& request) {
    if (phase_ == Phase::Error) return {Status::Error, 0};
    if (phase_ != Phase::RequestLine && phase_ != Phase::Headers) return {Status::Done, pos_};
    for (;;) {
        const void* found = scanned_ < data.size() ? std::memchr(data.data() + scanned_, '\n', data.size() - scanned_) : nullptr;
        if (!found) {
            scanned_ = data.size();
            const std::size_t partial = data.size() - pos_;
            if (phase_ == Phase::RequestLine && partial > limits_.maxRequestLine + 1)  // +1: its CR
                return fail(414, "the request line is longer than " + std::to_string(limits_.maxRequestLine) + " bytes");
            if (phase_ == Phase::Headers && headerBytes_ + partial > limits_.maxHeaderBytes)
                return fail(431, "the header fields are larger than " + std::to_string(limits_.maxHeaderBytes) + " bytes");
            return {Status::NeedMore, 0};
        }
        const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(found) - data.data());
        std::string_view line = data.substr(pos_, end - pos_);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const std::size_t lineBytes = end + 1 - pos_;
        pos_ = end + 1;
        scanned_ = pos_;

        if (phase_ == Phase::RequestLine) {
            if (line.empty()) {  // empty lines before a request are ignored (RFC 9112 §2.2), a few of them
                if (pos_ > limits_.maxRequestLine) return fail(400, "too many empty lines before the request line");
                continue;
            }
            if (line.size() > limits_.maxRequestLine)
                return fail(414, "the request line is longer than " + std::to_string(limits_.maxRequestLine) + " bytes");
            if (!parseRequestLine(line, request)) return {Status::Error, 0};
            phase_ = Phase::Headers;
            continue;
        }
        if (line.empty()) {
            if (!finishHead(request)) return {Status::Error, 0};
            phase_ = head_.framing == BodyFraming::None ? Phase::Done : Phase::Body;
            return {Status::Done, pos_};
        }
        headerBytes_ += lineBytes;
        if (headerBytes_ > limits_.maxHeaderBytes)
            return fail(431, "the header fields are larger than " + std::to_string(limits_.maxHeaderBytes) + " bytes");
        if (++headerLines_ > limits_.maxHeaderLines)
            return fail(431, "more than " + std::to_string(limits_.maxHeaderLines) + " header fields");
        if (!parseHeaderLine(line, request)) return {Status::Error, 0};
    }
}

bool HttpRequestParser::parseRequestLine(std::string_view line, HttpRequest& request) {
    const auto malformed = [this] {
        fail(400, "malformed request line");
        return false;
    };
    const std::size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return malformed();
    const std::string_view method = line.substr(0, sp1);
    const std::string_view rest = line.substr(sp1 + 1);
    const std::size_t sp2 = rest.find(' ');
    if (sp2 == std::string_view::npos) return malformed();
    std::string_view target = rest.substr(0, sp2);
    const std::string_view version = rest.substr(sp2 + 1);
    if (!isToken(method) || target.empty()) return malformed();

    if (version == "HTTP/1.1") {
        head_.minorVersion = 1;
    } else if (version == "HTTP/1.0") {
        head_.minorVersion = 0;
    } else if (version.size() == 8 && version.starts_with("HTTP/") && version[5] >= '0' && version[5] <= '9' &&
               version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
        fail(505, "only HTTP/1.0 and HTTP/1.1 are supported");
        return false;
    } else {
        return malformed();
    }

    for (char c : target)
        if (!kTarget[static_cast<unsigned char>(c)]) return malformed();
    if (target.front() != '/') {
        if (target == "*") {
            if (method != "OPTIONS") return malformed();
        } else {
            // absolute-form: the path and query are what the routes see (RFC 9112 §3.2.2).
            std::size_t schemeEnd = 0;
            if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) schemeEnd = 7;
            else if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) schemeEnd = 8;
            else return malformed();
            const std::size_t authorityEnd = target.find_first_of("/?", schemeEnd);
            if (authorityEnd == schemeEnd) return malformed();
            target = authorityEnd == std::string_view::npos ? std::string_view("/") : target.substr(authorityEnd);
        }
    }

    request.method.assign(method);
    const std::size_t q = target.find('?');
    if (q == std::string_view::npos) {
        request.path.assign(target);
        request.query.clear();
    } else {
        request.path.assign(q == 0 ? std::string_view("/") : target.substr(0, q));
        request.query.assign(target.substr(q + 1));
    }
    request.headers.clear();
    request.body.clear();
    return true;
}

bool HttpRequestParser::parseHeaderLine(std::string_view line, HttpRequest& request) {
    if (line.front() == ' ' || line.front() == '\t') {
        fail(400, "obsolete line folding in a header field");
        return false;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !isToken(line.substr(0, colon))) {
        fail(400, "malformed header field");
        return false;
    }
    const std::string_view value = trimOws(line.substr(colon + 1));
    for (char c : value)
        if (!kValue[static_cast<unsigned char>(c)]) {
            fail(400, "a control character in a header field value");
            return false;
        }
    request.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    return true;
}

bool HttpRequestParser::finishHead(HttpRequest& request) {
    std::size_t hosts = 0;
    bool haveLength = false;
    bool lengthInvalid = false;
    std::uint64_t length = 0;
    bool haveCoding = false;
    std::size_t codings = 0;
    bool chunkedBeforeLast = false;
    std::string_view lastCoding;
    bool close = false;
    bool keepAliveToken = false;
    bool continueExpected = false;

    for (const auto& [name, value] : request.headers) {
        switch (name.size()) {
            case 4:
                if (iequals(name, "Host")) ++hosts;
                break;
            case 6:
                if (iequals(name, "Expect") && iequals(value, "100-continue")) continueExpected = true;
                break;
            case 10:
                if (iequals(name, "Connection"))
                    forEachElement(value, [&](std::string_view token) {
                        if (iequals(token, "close")) close = true;
                        else if (iequals(token, "keep-alive")) keepAliveToken = true;
                    });
                break;
            case 14:
                if (iequals(name, "Content-Length")) {
                    std::size_t elements = 0;
                    forEachElement(value, [&](std::string_view element) {
                        ++elements;
                        if (element.size() > kMaxLengthDigits) {
                            lengthInvalid = true;
                            return;
                        }
                        std::uint64_t n = 0;
                        for (char c : element) {
                            if (c < '0' || c > '9') {
                                lengthInvalid = true;
                                return;
                            }
                            n = n * 10 + static_cast<std::uint64_t>(c - '0');
                        }
                        if (haveLength && n != length) lengthInvalid = true;
                        haveLength = true;
                        length = n;
                    });
                    if (elements == 0) lengthInvalid = true;
                }
                break;
            case 17:
                if (iequals(name, "Transfer-Encoding")) {
                    haveCoding = true;
                    forEachElement(value, [&](std::string_view coding) {
                        if (codings > 0 && iequals(lastCoding, "chunked")) chunkedBeforeLast = true;
                        ++codings;
                        lastCoding = coding;
                    });
                }
                break;
            default:
                break;
        }
    }

    if (head_.minorVersion == 1 && hosts != 1) {
        fail(400, hosts == 0 ? "an HTTP/1.1 request needs a Host header field" : "more than one Host header field");
        return false;
    }
    if (hosts > 1) {
        fail(400, "more than one Host header field");
        return false;
    }
    if (lengthInvalid) {
        fail(400, "invalid or conflicting Content-Length");
        return false;
    }
    if (haveCoding) {
        if (haveLength) {
            fail(400, "both Transfer-Encoding and Content-Length");
            return false;
        }
        if (head_.minorVersion == 0) {
            fail(400, "Transfer-Encoding in an HTTP/1.0 request");
            return false;
        }
        if (codings == 0 || !iequals(lastCoding, "chunked") || chunkedBeforeLast) {
            fail(400, "chunked must be the final transfer coding, applied once");
            return false;
        }
        if (codings > 1) {
            fail(501, "only the chunked transfer coding is supported");
            return false;
        }
        head_.framing = BodyFraming::Chunked;
    } else if (haveLength && length > 0) {
        head_.framing = BodyFraming::Length;
        head_.contentLength = length;
        remaining_ = length;
    }
    head_.keepAlive = !close && (head_.minorVersion == 1 || keepAliveToken);
    head_.expectContinue = continueExpected && head_.minorVersion == 1;
    return true;
}

HttpRequestParser::Step HttpRequestParser::parseBody(std::string_view data, std::string& body, std::size_t limit) {
    if (phase_ == Phase::Done) return {Status::Done, 0};
    if (phase_ != Phase::Body) return {Status::Error, 0};
    if (head_.framing == BodyFraming::Chunked) return parseChunked(data, body, limit);
    if (head_.contentLength > limit)
        return fail(413, "the request body is larger than this route's limit of " + std::to_string(limit) + " bytes");
    if (remaining_ == head_.contentLength && body.capacity() < remaining_) body.reserve(static_cast<std::size_t>(remaining_));
    const std::size_t n = remaining_ < data.size() ? static_cast<std::size_t>(remaining_) : data.size();
    body.append(data.data(), n);
    remaining_ -= n;
    if (remaining_ > 0) return {Status::NeedMore, n};
    phase_ = Phase::Done;
    return {Status::Done, n};
}

HttpRequestParser::Step HttpRequestParser::parseChunked(std::string_view data, std::string& body, std::size_t limit) {
    std::size_t i = 0;
    while (i < data.size()) {
        const char c = data[i];
        switch (chunk_) {
            case Chunk::Size: {
                const int v = hexValue(c);
                if (v >= 0) {
                    if (sizeDigits_ == kMaxChunkDigits) return fail(400, "chunk size too large");
                    remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(v);
                    ++sizeDigits_;
                } else if (sizeDigits_ == 0) {
                    return fail(400, "malformed chunk size");
                } else if (c == ';' || c == ' ' || c == '\t') {
                    chunk_ = Chunk::Ext;
                } else if (c == '\r') {
                    chunk_ = Chunk::SizeLf;
                } else {
                    return fail(400, "malformed chunk size");
                }
                ++i;
                if (++lineBytes_ > kMaxChunkLine) return fail(400, "chunk size line too long");
                break;
            }
            case Chunk::Ext:
                if (c == '\r') {
                    chunk_ = Chunk::SizeLf;
                } else if (!kValue[static_cast<unsigned char>(c)]) {
                    return fail(400, "malformed chunk extension");
                }
                ++i;
                if (++lineBytes_ > kMaxChunkLine) return fail(400, "chunk size line too long");
                break;
            case Chunk::SizeLf:
                if (c != '\n') return fail(400, "a chunk size line must end in CRLF");
                ++i;
                sizeDigits_ = 0;
                lineBytes_ = 0;
                if (remaining_ == 0) {
                    chunk_ = Chunk::Trailer;
                } else {
                    if (remaining_ > limit || body.size() + remaining_ > limit)
                        return fail(413, "the request body is larger than this route's limit of " + std::to_string(limit) +
                                             " bytes");
                    chunk_ = Chunk::Data;
                }
                break;
            case Chunk::Data: {
                const std::size_t left = data.size() - i;
                const std::size_t n = remaining_ < left ? static_cast<std::size_t>(remaining_) : left;
                body.append(data.data() + i, n);
                i += n;
                remaining_ -= n;
                if (remaining_ == 0) chunk_ = Chunk::DataCr;
                break;
            }
            case Chunk::DataCr:
                if (c != '\r') return fail(400, "chunk data must be followed by CRLF");
                ++i;
                chunk_ = Chunk::DataLf;
                break;
            case Chunk::DataLf:
                if (c != '\n') return fail(400, "chunk data must be followed by CRLF");
                ++i;
                chunk_ = Chunk::Size;
                break;
            case Chunk::Trailer:
                if (c == '\r') {
                    chunk_ = Chunk::TrailerLf;
                } else if (!kValue[static_cast<unsigned char>(c)]) {
                    return fail(400, "malformed trailer field");
                } else {
                    ++lineBytes_;
                    if (++headerBytes_ > limits_.maxHeaderBytes)
                        return fail(431, "the trailer fields are larger than " + std::to_string(limits_.maxHeaderBytes) +
                                             " bytes");
                }
                ++i;
                break;
            case Chunk::TrailerLf:
                if (c != '\n') return fail(400, "a trailer line must end in CRLF");
                ++i;
                if (lineBytes_ == 0) {
                    phase_ = Phase::Done;
                    return {Status::Done, i};
                }
                if (++headerLines_ > limits_.maxHeaderLines)
                    return fail(431, "more than " + std::to_string(limits_.maxHeaderLines) + " header and trailer fields");
                lineBytes_ = 0;
                chunk_ = Chunk::Trailer;
                break;
        }
    }
    return {Status::NeedMore, i};
}

}  // namespace idem::core
