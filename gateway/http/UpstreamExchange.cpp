#include "gateway/http/UpstreamExchange.h"

#include "gateway/config/Units.h"
#include "gateway/core/HttpResponseParser.h"

#include <array>

namespace idem::http {
namespace {

using Kind = core::UpstreamResult::Kind;
using Clock = std::chrono::steady_clock;

// Bytes read per recv: most answers arrive in one read.
constexpr std::size_t kReadChunk = 16 * 1024;

ExchangeResult failure(Kind kind, bool sent, std::string detail) {
    ExchangeResult out;
    out.result.kind = kind;
    out.result.detail = std::move(detail);
    out.sent = sent;
    return out;
}

}  // namespace

std::string requestHead(const core::HttpRequest& request, std::string_view basePath, std::string_view hostHeader) {
    std::size_t size = request.method.size() + basePath.size() + request.path.size() + request.query.size() +
                       hostHeader.size() + 64;
    for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 4;
    std::string out;
    out.reserve(size);
    out += request.method;
    out += ' ';
    out += basePath;
    out += request.path.empty() ? std::string_view("/") : std::string_view(request.path);
    if (!request.query.empty()) {
        out += '?';
        out += request.query;
    }
    out += " HTTP/1.1\r\nHost: ";
    out += hostHeader;
    out += "\r\n";
    for (const auto& [name, value] : request.headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
        out += "Content-Length: ";
        out += std::to_string(request.body.size());
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

ExchangeResult exchange(UpstreamSocket& socket, std::string_view head, std::string_view body, bool headRequest,
                        const ExchangeDeadlines& deadlines, std::string_view who, const std::atomic<bool>* abort) {
    const auto started = Clock::now();
    Deadline sendDeadline = deadlines.total;
    if (deadlines.send) sendDeadline = std::min(sendDeadline, started + *deadlines.send);

    const std::array<std::string_view, 2> parts{head, body};
    std::size_t written = 0;
    const IoResult w = socket.writeAll(parts, sendDeadline, written, abort);
    if (w != IoResult::Ok) {
        // Plain TCP with nothing accepted: the request never left (a pooled connection the peer had just
        // closed). Over TLS a failed write may have put part of a record on the wire: count it as sent.
        const bool sent = written > 0 || socket.tls();
        const std::string where = std::string(who);
        if (w == IoResult::Timeout) {
            const bool bySend = deadlines.send && sendDeadline < deadlines.total;
            return failure(sent ? Kind::TimedOut : Kind::NotSent, sent,
                           where + " did not take the request within " +
                               (bySend ? "timeouts.send " + config::formatDuration(*deadlines.send)
                                       : std::string("the upstream deadline")));
        }
        if (w == IoResult::Aborted) return failure(sent ? Kind::Reset : Kind::NotSent, sent, "aborted");
        return failure(sent ? Kind::Reset : Kind::NotSent, sent,
                       where + ": the connection broke while sending the request" +
                           (socket.error().empty() ? std::string() : " (" + socket.error() + ")"));
    }

    const auto sentAt = Clock::now();
    Deadline firstByteDeadline = deadlines.total;
    if (deadlines.firstByte) firstByteDeadline = std::min(firstByteDeadline, sentAt + *deadlines.firstByte);

    core::HttpResponseParser parser(headRequest);
    char buffer[kReadChunk];
    bool first = true;
    bool leftover = false;
    for (;;) {
        std::size_t got = 0;
        const Deadline deadline = first ? firstByteDeadline : deadlines.total;
        const IoResult r = socket.readSome(buffer, sizeof buffer, got, deadline, first, abort);
        if (r == IoResult::Ok) {
            first = false;
            const std::size_t used = parser.feed(std::string_view(buffer, got));
            if (parser.failed())
                return failure(Kind::Reset, true, std::string(who) + " sent an invalid response: " + parser.error());
            if (parser.done()) {
                leftover = used < got;
                break;
            }
            continue;
        }
        if (r == IoResult::Closed) {
            parser.finish();
            if (parser.done()) break;
            return failure(Kind::Reset, true, std::string(who) + ": " + parser.error());
        }
        if (r == IoResult::Timeout) {
            const bool byFirstByte = first && deadlines.firstByte && firstByteDeadline < deadlines.total;
            std::string what = byFirstByte ? "no response within timeouts.first_byte " +
                                                 config::formatDuration(*deadlines.firstByte)
                                           : (parser.started() ? "the response was not complete by the upstream deadline"
                                                               : "no response by the upstream deadline");
            return failure(Kind::TimedOut, true, std::string(who) + ": " + what);
        }
        if (r == IoResult::Aborted) return failure(Kind::Reset, true, "aborted");
        return failure(Kind::Reset, true,
                       std::string(who) + ": the connection broke " +
                           (parser.started() ? "inside the response" : "before a response arrived") +
                           (socket.error().empty() ? std::string() : " (" + socket.error() + ")"));
    }
    ExchangeResult out;
    out.sent = true;
    out.result.kind = Kind::Response;
    out.result.response = std::move(parser.response());
    out.reusable = parser.keepAlive() && !leftover;
    return out;
}

}  // namespace idem::http
