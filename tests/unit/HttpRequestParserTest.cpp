#include "gateway/core/HttpRequestParser.h"

#include <boost/test/unit_test.hpp>

#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

using namespace idem::core;
using namespace std::string_literals;

namespace idem::core {
std::ostream& operator<<(std::ostream& o, HttpRequestParser::Status s) {
    return o << (s == HttpRequestParser::Status::Done ? "Done" : s == HttpRequestParser::Status::Error ? "Error" : "NeedMore");
}
std::ostream& operator<<(std::ostream& o, BodyFraming f) {
    return o << (f == BodyFraming::None ? "None" : f == BodyFraming::Length ? "Length" : "Chunked");
}
}  // namespace idem::core

namespace {

using Status = HttpRequestParser::Status;

/// One request as a connection would see it: fragments arrive at the `cuts` offsets (strictly
/// increasing, below wire.size()); parseHead gets every unconsumed byte, parseBody the bytes after the
/// head. `offset` is where the request began and advances past it.
struct Parsed {
    Status status = Status::NeedMore;
    HttpRequest request;
    RequestHead head;
    RequestParseError error;
    std::size_t end = 0;  ///< offset just after the request in the wire
};

class Feeder {
public:
    Feeder(std::string wire, std::vector<std::size_t> cuts, std::size_t bodyLimit)
        : wire_(std::move(wire)), cuts_(std::move(cuts)), limit_(bodyLimit) {}

    /// Parses the next request; status NeedMore when the wire ran out first.
    Parsed next() {
        Parsed out;
        parser_.reset();
        bool inBody = false;
        for (;;) {
            const std::string_view data = std::string_view(wire_).substr(offset_, available_ - offset_);
            HttpRequestParser::Step step{Status::NeedMore, 0};
            if (!inBody) {
                step = parser_.parseHead(data, out.request);
                if (step.status == Status::Done) {
                    offset_ += step.consumed;
                    if (parser_.head().framing == BodyFraming::None) return finish(out, Status::Done);
                    inBody = true;
                    continue;
                }
            } else {
                step = parser_.parseBody(data, out.request.body, limit_);
                offset_ += step.consumed;
                if (step.status == Status::Done) return finish(out, Status::Done);
            }
            if (step.status == Status::Error) return finish(out, Status::Error);
            // NeedMore: the next fragment arrives.
            if (available_ == wire_.size()) return finish(out, Status::NeedMore);
            while (nextCut_ < cuts_.size() && cuts_[nextCut_] <= available_) ++nextCut_;
            available_ = nextCut_ < cuts_.size() ? cuts_[nextCut_++] : wire_.size();
        }
    }

    bool exhausted() const { return offset_ == wire_.size(); }

private:
    Parsed finish(Parsed& out, Status status) {
        out.status = status;
        out.head = parser_.head();
        out.error = parser_.error();
        out.end = offset_;
        return std::move(out);
    }

    std::string wire_;
    std::vector<std::size_t> cuts_;
    std::size_t limit_;
    HttpRequestParser parser_;
    std::size_t offset_ = 0;
    std::size_t available_ = 0;
    std::size_t nextCut_ = 0;
};

/// The ways to split a wire: whole, one byte at a time, and in two at every offset.
std::vector<std::pair<std::string, std::vector<std::size_t>>> splits(std::size_t size) {
    std::vector<std::pair<std::string, std::vector<std::size_t>>> out;
    out.emplace_back("whole", std::vector<std::size_t>{});
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < size; ++i) bytes.push_back(i);
    out.emplace_back("byte by byte", bytes);
    for (std::size_t i = 1; i < size; ++i) out.emplace_back("split at " + std::to_string(i), std::vector<std::size_t>{i});
    return out;
}

struct Valid {
    std::string name;
    std::string wire;
    std::string method;
    std::string path;
    std::string query;
    Headers headers;
    std::string body;
    BodyFraming framing = BodyFraming::None;
    bool keepAlive = true;
    bool expectContinue = false;
    int minorVersion = 1;
};

const std::vector<Valid>& validCases() {
    static const std::vector<Valid> cases = {
        {"simple GET", "GET /health HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", "/health", "", {{"Host", "gw"}}, ""},
        {"POST with Content-Length and a query",
         "POST /v1/payments?expand=a&x= HTTP/1.1\r\nHost: gw\r\nIdempotency-Key: k-1\r\nContent-Type: application/json\r\n"
         "Content-Length: 13\r\n\r\n{\"amount\":10}",
         "POST", "/v1/payments", "expand=a&x=",
         {{"Host", "gw"}, {"Idempotency-Key", "k-1"}, {"Content-Type", "application/json"}, {"Content-Length", "13"}},
         "{\"amount\":10}", BodyFraming::Length},
        {"chunked with extensions and trailers",
         "POST /p HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1\r\nhello\r\nA ; a=\"q\"\r\n, world!!!\r\n0\r\nX-Trailer: t\r\nX-Other: 2\r\n\r\n",
         "POST", "/p", "", {{"Host", "gw"}, {"Transfer-Encoding", "chunked"}}, "hello, world!!!", BodyFraming::Chunked},
        {"chunked, upper-case hex and a case-insensitive coding",
         "PUT /p HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: Chunked\r\n\r\n1F\r\n" + std::string(31, 'z') + "\r\n0\r\n\r\n",
         "PUT", "/p", "", {{"Host", "gw"}, {"Transfer-Encoding", "Chunked"}}, std::string(31, 'z'), BodyFraming::Chunked},
        {"repeated names in order, whitespace trimmed, empty value",
         "POST /p HTTP/1.1\r\nHost: gw\r\nIdempotency-Key:  a \r\nX-Empty:\r\nidempotency-key:\tb\t\r\nContent-Length: 0\r\n\r\n",
         "POST", "/p", "",
         {{"Host", "gw"}, {"Idempotency-Key", "a"}, {"X-Empty", ""}, {"idempotency-key", "b"}, {"Content-Length", "0"}}, ""},
        {"Content-Length repeated with one value",
         "POST /p HTTP/1.1\r\nHost: gw\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc", "POST", "/p", "",
         {{"Host", "gw"}, {"Content-Length", "3, 3"}, {"Content-Length", "3"}}, "abc", BodyFraming::Length},
        {"HTTP/1.0 without Host closes", "GET / HTTP/1.0\r\n\r\n", "GET", "/", "", {}, "", BodyFraming::None, false,
         false, 0},
        {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", "",
         {{"Connection", "Keep-Alive"}}, "", BodyFraming::None, true, false, 0},
        {"HTTP/1.0 ignores 100-continue", "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", "POST",
         "/", "", {{"Expect", "100-continue"}, {"Content-Length", "1"}}, "x", BodyFraming::Length, false, false, 0},
        {"Connection: close", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, Close\r\n\r\n", "GET", "/", "",
         {{"Host", "gw"}, {"Connection", "keep-alive, Close"}}, "", BodyFraming::None, false},
        {"Expect: 100-continue", "POST /p HTTP/1.1\r\nHost: gw\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi",
         "POST", "/p", "", {{"Host", "gw"}, {"Expect", "100-Continue"}, {"Content-Length", "2"}}, "hi",
         BodyFraming::Length, true, true},
        {"empty lines before the request line", "\r\n\r\nGET / HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", "/", "",
         {{"Host", "gw"}}, ""},
        {"bare LF line ends in the head", "POST /p HTTP/1.1\nHost: gw\nContent-Length: 2\n\nok", "POST", "/p", "",
         {{"Host", "gw"}, {"Content-Length", "2"}}, "ok", BodyFraming::Length},
        {"absolute-form", "POST http://pay.example:8080/v1/payments?a=1 HTTP/1.1\r\nHost: gw\r\n\r\n", "POST",
         "/v1/payments", "a=1", {{"Host", "gw"}}, ""},
        {"absolute-form without a path", "GET HTTPS://pay.example HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", "/", "",
         {{"Host", "gw"}}, ""},
        {"absolute-form with only a query", "GET http://pay.example?x HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", "/", "x",
         {{"Host", "gw"}}, ""},
        {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n", "OPTIONS", "*", "", {{"Host", "gw"}}, ""},
        {"obs-text in a value", "GET / HTTP/1.1\r\nHost: gw\r\nX-Name: caf\xc3\xa9\r\n\r\n", "GET", "/", "",
         {{"Host", "gw"}, {"X-Name", "caf\xc3\xa9"}}, ""},
        {"percent-encoding kept", "GET /a%20b/%2F?q=%41 HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", "/a%20b/%2F", "q=%41",
         {{"Host", "gw"}}, ""},
    };
    return cases;
}

void checkValid(const Valid& c, const Parsed& p) {
    BOOST_TEST(p.status == Status::Done, "status; error " << p.error.status << " " << p.error.detail);
    BOOST_TEST(p.end == c.wire.size());
    BOOST_TEST(p.request.method == c.method);
    BOOST_TEST(p.request.path == c.path);
    BOOST_TEST(p.request.query == c.query);
    BOOST_TEST(p.request.headers == c.headers);
    BOOST_TEST(p.request.body == c.body);
    BOOST_TEST((p.head.framing == c.framing));
    BOOST_TEST(p.head.keepAlive == c.keepAlive);
    BOOST_TEST(p.head.expectContinue == c.expectContinue);
    BOOST_TEST(p.head.minorVersion == c.minorVersion);
    if (c.framing == BodyFraming::Length) BOOST_TEST(p.head.contentLength == c.body.size());
}

struct Malformed {
    std::string name;
    std::string wire;
    int status;
    std::size_t bodyLimit = 1 << 20;
};

std::string headerLines(std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) out += "X-H" + std::to_string(i) + ": v\r\n";
    return out;
}

const std::vector<Malformed>& malformedCases() {
    const std::string host = "Host: gw\r\n";
    static const std::vector<Malformed> cases = {
        // request line
        {"HTTP/0.9 request", "GET /\r\n\r\n", 400},
        {"two spaces", "GET  / HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"trailing space", "GET / HTTP/1.1 \r\nHost: gw\r\n\r\n", 400},
        {"tab as separator", "GET\t/ HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"bad method byte", "GE(T / HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"lower-case version", "GET / http/1.1\r\nHost: gw\r\n\r\n", 400},
        {"garbage version", "GET / HTTX/1.1\r\nHost: gw\r\n\r\n", 400},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: gw\r\n\r\n", 505},
        {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: gw\r\n\r\n", 505},
        {"control byte in the target", "GET /a\x01 HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"DEL in the target", "GET /a\x7f HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"non-ASCII in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"fragment in the target", "GET /a#b HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"asterisk for GET", "GET * HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"authority-form", "CONNECT pay.example:443 HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"unknown scheme", "GET ftp://pay.example/ HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"empty authority", "GET http:///p HTTP/1.1\r\nHost: gw\r\n\r\n", 400},
        {"bare CR ends the request line", "GET / HTTP/1.1\rHost: gw\r\n\r\n", 400},
        {"request line over 8 KiB", "GET /" + std::string(8 * 1024, 'a') + " HTTP/1.1\r\nHost: gw\r\n\r\n", 414},
        {"unterminated request line over 8 KiB", "GET /" + std::string(9 * 1024, 'a'), 414},
        {"endless empty lines", std::string(9 * 1024, '\n'), 400},
        // header fields
        {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
        {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
        {"two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"no colon", "GET / HTTP/1.1\r\n" + host + "X-Bad\r\n\r\n", 400},
        {"empty name", "GET / HTTP/1.1\r\n" + host + ": v\r\n\r\n", 400},
        {"space before the colon", "GET / HTTP/1.1\r\nHost : gw\r\n\r\n", 400},
        {"bad name byte", "GET / HTTP/1.1\r\n" + host + "X(Y): v\r\n\r\n", 400},
        {"obsolete line folding", "GET / HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", 400},
        {"NUL in a value", "GET / HTTP/1.1\r\nHost: gw\r\nX-A: a\0b\r\n\r\n"s, 400},
        {"bare CR in a value", "GET / HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n", 400},
        {"header block over 64 KiB", "GET / HTTP/1.1\r\n" + host + "X-Big: " + std::string(64 * 1024, 'v') + "\r\n\r\n", 431},
        {"unterminated header block over 64 KiB", "GET / HTTP/1.1\r\n" + host + "X-Big: " + std::string(65 * 1024, 'v'),
         431},
        {"101 header fields", "GET / HTTP/1.1\r\n" + host + headerLines(100) + "\r\n", 431},
        // framing
        {"Content-Length not a number", "POST / HTTP/1.1\r\n" + host + "Content-Length: abc\r\n\r\n", 400},
        {"negative Content-Length", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
        {"Content-Length with a sign", "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\n", 400},
        {"Content-Length with inner space", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1 2\r\n\r\n", 400},
        {"empty Content-Length", "POST / HTTP/1.1\r\n" + host + "Content-Length:\r\n\r\n", 400},
        {"conflicting Content-Length list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 6\r\n\r\nhello!", 400},
        {"conflicting Content-Length lines",
         "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
        {"Content-Length overflow", "POST / HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999\r\n\r\n", 400},
        {"Content-Length and Transfer-Encoding",
         "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"chunked not last", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"unknown coding only", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", 400},
        {"chunked twice", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"empty Transfer-Encoding", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: \r\n\r\n", 400},
        {"another coding before chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
        // chunked bodies
        {"chunk size not hex", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"chunk size missing", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n\r\n", 400},
        {"chunk size too long", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
         400},
        {"bare LF after the chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
         400},
        {"chunk data without CRLF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
         400},
        {"chunk data with a bare LF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n",
         400},
        {"control byte in a chunk extension",
         "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1;a\x01\r\nx\r\n0\r\n\r\n", 400},
        {"chunk extension too long",
         "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1;" + std::string(5000, 'e') + "\r\nx\r\n0\r\n\r\n",
         400},
        {"trailer line with a bare LF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n",
         400},
        {"trailers over 64 KiB",
         "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(64 * 1024, 't') + "\r\n\r\n",
         431},
        // body limit
        {"Content-Length over the limit", "POST / HTTP/1.1\r\n" + host + "Content-Length: 11\r\n\r\nhello world", 413, 10},
        {"chunked body over the limit",
         "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", 413, 10},
        {"one chunk over the limit", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n", 413, 10},
    };
    return cases;
}

/// A wire too long to split in two at every offset in reasonable time is split byte by byte and whole.
bool shortEnoughForEverySplit(const std::string& wire) { return wire.size() <= 600; }

}  // namespace

BOOST_AUTO_TEST_SUITE(HttpRequestParserTest)

BOOST_AUTO_TEST_CASE(validRequestsAtEveryFragmentation) {
    for (const auto& c : validCases()) {
        for (const auto& [how, cuts] : splits(c.wire.size())) {
            BOOST_TEST_CONTEXT(c.name << ", " << how) {
                Feeder feeder(c.wire, cuts, 1 << 20);
                checkValid(c, feeder.next());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(pipelinedRequestsAtEveryFragmentation) {
    // Every valid case that keeps the connection open, back to back on one connection, then a last one.
    std::string wire;
    std::vector<const Valid*> expected;
    for (const auto& c : validCases())
        if (c.keepAlive) {
            wire += c.wire;
            expected.push_back(&c);
        }
    const Valid& last = validCases().front();
    wire += last.wire;
    expected.push_back(&last);

    std::vector<std::pair<std::string, std::vector<std::size_t>>> ways;
    ways.emplace_back("whole", std::vector<std::size_t>{});
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < wire.size(); ++i) bytes.push_back(i);
    ways.emplace_back("byte by byte", bytes);
    for (std::size_t step : {2u, 3u, 7u, 64u, 1000u}) {
        std::vector<std::size_t> cuts;
        for (std::size_t i = step; i < wire.size(); i += step) cuts.push_back(i);
        ways.emplace_back("every " + std::to_string(step) + " bytes", cuts);
    }
    for (const auto& [how, cuts] : ways) {
        Feeder feeder(wire, cuts, 1 << 20);
        std::size_t start = 0;
        for (const Valid* c : expected) {
            BOOST_TEST_CONTEXT(how << ", " << c->name) {
                Parsed p = feeder.next();
                Valid shifted = *c;
                shifted.wire = std::string(c->wire.size(), '\0');  // checkValid compares end with the size
                p.end -= start;
                checkValid(shifted, p);
                start += c->wire.size();
            }
        }
        BOOST_TEST(feeder.exhausted(), how);
    }
}

BOOST_AUTO_TEST_CASE(incompleteRequestsNeedMore) {
    for (const auto& c : validCases()) {
        for (std::size_t size = 0; size < c.wire.size(); ++size) {
            BOOST_TEST_CONTEXT(c.name << ", first " << size << " bytes") {
                Feeder feeder(c.wire.substr(0, size), {}, 1 << 20);
                const Parsed p = feeder.next();
                BOOST_TEST((p.status == Status::NeedMore));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(malformedRequestsAndTheirStatus) {
    for (const auto& c : malformedCases()) {
        auto ways = splits(c.wire.size());
        if (!shortEnoughForEverySplit(c.wire)) ways.resize(2);
        for (const auto& [how, cuts] : ways) {
            BOOST_TEST_CONTEXT(c.name << ", " << how) {
                Feeder feeder(c.wire, cuts, c.bodyLimit);
                const Parsed p = feeder.next();
                BOOST_TEST((p.status == Status::Error));
                BOOST_TEST(p.error.status == c.status);
                BOOST_TEST(!p.error.detail.empty());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(limitsAreInclusive) {
    const std::string target = "/" + std::string(8 * 1024 - 4 - 9 - 1, 'a');  // "GET " + target + " HTTP/1.1"
    const std::string line = "GET " + target + " HTTP/1.1";
    BOOST_REQUIRE(line.size() == 8192u);
    Feeder exact(line + "\r\nHost: gw\r\n\r\n", {}, 0);
    BOOST_TEST((exact.next().status == Status::Done));

    Feeder hundred("GET / HTTP/1.1\r\n" + headerLines(99) + "Host: gw\r\n\r\n", {}, 0);
    const Parsed p = hundred.next();
    BOOST_TEST((p.status == Status::Done));
    BOOST_TEST(p.request.headers.size() == 100u);

    // Header field lines of exactly 64 KiB, line ends included.
    const std::string fixed = "Host: gw\r\nX-Big: \r\n";
    const std::string big = "GET / HTTP/1.1\r\nHost: gw\r\nX-Big: " + std::string(64 * 1024 - fixed.size(), 'v') + "\r\n\r\n";
    Feeder block(big, {}, 0);
    BOOST_TEST((block.next().status == Status::Done));

    Feeder body("POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n0123456789", {}, 10);
    BOOST_TEST(body.next().request.body == "0123456789");
    Feeder chunked("POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n",
                   {}, 10);
    BOOST_TEST(chunked.next().request.body == "0123456789");
}

BOOST_AUTO_TEST_CASE(bodyLimitRefusedBeforeTheBodyArrives) {
    // The head alone is enough to refuse a declared length over the limit: no body byte is needed.
    HttpRequestParser parser;
    HttpRequest request;
    const std::string head = "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000000\r\n\r\n";
    const auto step = parser.parseHead(head, request);
    BOOST_REQUIRE((step.status == Status::Done));
    BOOST_TEST(step.consumed == head.size());
    BOOST_TEST(parser.head().contentLength == 5000000u);
    const auto body = parser.parseBody("", request.body, 1024);
    BOOST_TEST((body.status == Status::Error));
    BOOST_TEST(parser.error().status == 413);
    BOOST_TEST(request.body.empty());
}

BOOST_AUTO_TEST_CASE(resetStartsANewRequestAndKeepsNothing) {
    HttpRequestParser parser;
    HttpRequest request;
    BOOST_REQUIRE((parser.parseHead("GET / HTTP/2.0\r\n\r\n", request).status == Status::Error));
    BOOST_TEST(parser.error().status == 505);
    parser.reset();
    BOOST_TEST(parser.error().status == 0);
    const std::string wire = "POST /a?b HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz";
    const auto head = parser.parseHead(wire, request);
    BOOST_REQUIRE((head.status == Status::Done));
    BOOST_TEST(!parser.head().keepAlive);
    BOOST_TEST((parser.parseBody(std::string_view(wire).substr(head.consumed), request.body, 10).status == Status::Done));
    parser.reset();
    // The next request replaces every field of the previous one.
    BOOST_REQUIRE((parser.parseHead("GET /c HTTP/1.1\r\nHost: x\r\n\r\n", request).status == Status::Done));
    BOOST_TEST(request.method == "GET");
    BOOST_TEST(request.path == "/c");
    BOOST_TEST(request.query.empty());
    BOOST_TEST(request.body.empty());
    BOOST_TEST(request.headers.size() == 1u);
    BOOST_TEST(parser.head().keepAlive);
    BOOST_TEST((parser.head().framing == BodyFraming::None));
}

BOOST_AUTO_TEST_SUITE_END()
