#include "ResponseWriter.h"

#include "Json.h"

#include <Poco/Net/HTTPResponse.h>

#include <algorithm>
#include <charconv>
#include <string_view>

namespace idem::mock {

namespace {

// Bodies up to this size are copied behind the headers and sent with one send().
constexpr std::size_t kCoalesceLimit = 16 * 1024;

void appendNumber(std::string& out, std::uint64_t n, int base = 10)
{
    char buffer[24];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, n, base);
    out.append(buffer, end);
}

void sendAll(Poco::Net::StreamSocket& socket, std::string_view data)
{
    while (!data.empty()) {
        const int n = socket.sendBytes(data.data(), static_cast<int>(data.size()));
        if (n <= 0) throw Poco::IOException("send failed");
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool bodyless(int status) { return status == 204 || status == 304; }

bool containsClose(std::string_view value)
{
    for (std::size_t i = 0; i + 5 <= value.size(); ++i) {
        if (iequals(value.substr(i, 5), "close")) return true;
    }
    return false;
}

enum class BodyFraming { None, Length, Chunked };

// Appends the status line and headers; returns false when the answer asked for close.
bool appendHead(std::string& out, const Answer& answer, const Framing& framing, BodyFraming bodyFraming,
                std::size_t contentLength)
{
    out += "HTTP/1.1 ";
    appendNumber(out, static_cast<std::uint64_t>(answer.status));
    out += ' ';
    out += Poco::Net::HTTPResponse::getReasonForStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
    out += "\r\n";

    bool haveContentType = false;
    bool haveConnection = false;
    bool keepOpen = framing.keepAlive;
    for (const auto& [name, value] : answer.headers) {
        if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) continue;
        if (iequals(name, "Content-Type")) haveContentType = true;
        if (iequals(name, "Connection")) {
            haveConnection = true;
            if (containsClose(value)) keepOpen = false;
        }
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    if (!haveContentType && bodyFraming != BodyFraming::None) out += "Content-Type: application/json\r\n";
    if (bodyFraming == BodyFraming::Length) {
        out += "Content-Length: ";
        appendNumber(out, contentLength);
        out += "\r\n";
    } else if (bodyFraming == BodyFraming::Chunked) {
        out += "Transfer-Encoding: chunked\r\n";
    }
    if (!haveConnection) {
        if (!framing.keepAlive) out += "Connection: close\r\n";
        else if (framing.http10) out += "Connection: Keep-Alive\r\n";
    }
    out += "\r\n";
    return keepOpen;
}

}  // namespace

bool sendAnswer(Poco::Net::StreamSocket& socket, const Answer& answer, const Framing& framing, std::string& scratch)
{
    scratch.clear();
    const std::string_view body = bodyless(answer.status) ? std::string_view() : std::string_view(answer.body);
    const BodyFraming bodyFraming = bodyless(answer.status) ? BodyFraming::None
                                    : (answer.chunks > 0)   ? BodyFraming::Chunked
                                                            : BodyFraming::Length;
    const bool keepOpen = appendHead(scratch, answer, framing, bodyFraming, body.size());
    if (framing.head || bodyFraming == BodyFraming::None) {
        sendAll(socket, scratch);
        return keepOpen;
    }

    if (bodyFraming == BodyFraming::Length) {
        if (body.size() <= kCoalesceLimit) {
            scratch += body;
            sendAll(socket, scratch);
        } else {
            sendAll(socket, scratch);
            sendAll(socket, body);
        }
        return keepOpen;
    }

    // Chunked: exactly min(chunks, body size) non-empty chunks (an empty one would end the
    // body), each its own send(), then the terminating zero chunk.
    sendAll(socket, scratch);
    const std::size_t count = body.empty() ? 0 : std::min(answer.chunks, body.size());
    std::size_t offset = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t size = body.size() / count + (i < body.size() % count ? 1 : 0);
        scratch.clear();
        appendNumber(scratch, size, 16);
        scratch += "\r\n";
        scratch += body.substr(offset, size);
        scratch += "\r\n";
        if (i + 1 == count) scratch += "0\r\n\r\n";
        sendAll(socket, scratch);
        offset += size;
    }
    if (count == 0) sendAll(socket, "0\r\n\r\n");
    return keepOpen;
}

void sendHalfAnswer(Poco::Net::StreamSocket& socket, const Answer& answer, std::string& scratch)
{
    std::string filler;
    std::string_view body = answer.body;
    if (body.size() < 2) {
        appendFiller(filler, 64);
        body = filler;
    }
    scratch.clear();
    appendHead(scratch, answer, Framing{}, BodyFraming::Length, body.size());
    scratch += body.substr(0, body.size() / 2);
    sendAll(socket, scratch);
}

void resetConnection(Poco::Net::StreamSocket& socket)
{
    try {
        socket.setLinger(true, 0);
    } catch (const Poco::Exception&) {
    }
    socket.close();
}

void closeConnection(Poco::Net::StreamSocket& socket)
{
    socket.close();
}

}  // namespace idem::mock
