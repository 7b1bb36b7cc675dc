#include "Verifier.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace idem::load {

const char* violationName(Violation v)
{
    switch (v) {
    case Violation::DuplicateExecution: return "duplicate_execution";
    case Violation::ReplayBodyDiffers: return "replay_body_differs";
    case Violation::ReplayStatusDiffers: return "replay_status_differs";
    case Violation::BodyNamesOtherKey: return "body_names_other_key";
    case Violation::FreshTwice: return "fresh_answer_twice";
    case Violation::UnexpectedStatus: return "unexpected_status";
    case Violation::MissingRetryAfter: return "409_without_retry_after";
    case Violation::Unexpected422: return "unexpected_422";
    case Violation::TwoPayloadsAccepted: return "two_payloads_accepted";
    case Violation::NoAnswer: return "no_answer";
    case Violation::NotExecuted: return "answered_but_not_executed";
    case Violation::UpstreamStats: return "upstream_stats";
    case Violation::Count_: break;
    }
    return "?";
}

void ViolationLog::add(Violation kind, std::int64_t atNs, std::string text)
{
    const auto k = static_cast<std::size_t>(kind);
    ++counts_[k];
    if (examples_[k].size() < kKept)
        examples_[k].emplace_back(atNs, std::string(violationName(kind)) + ": " + std::move(text));
}

void ViolationLog::merge(const ViolationLog& other)
{
    for (std::size_t k = 0; k < kKinds; ++k) {
        counts_[k] += other.counts_[k];
        auto& mine = examples_[k];
        mine.insert(mine.end(), other.examples_[k].begin(), other.examples_[k].end());
        std::stable_sort(mine.begin(), mine.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        if (mine.size() > kKept) mine.resize(kKept);
    }
}

std::vector<std::string> ViolationLog::listed(std::size_t n) const
{
    std::vector<std::string> out;
    for (std::size_t round = 0; round < kKept && out.size() < n; ++round)
        for (std::size_t k = 0; k < kKinds && out.size() < n; ++k)
            if (round < examples_[k].size()) out.push_back(examples_[k][round].second);
    return out;
}

std::uint64_t ViolationLog::total() const
{
    std::uint64_t n = 0;
    for (const auto c : counts_) n += c;
    return n;
}

// ---------------------------------------------------------------------------------------------- KeyBook

KeyBook::KeyBook(const Options& options, const Workload& workload, int thread, int threads)
    : options_(options), workload_(workload), thread_(thread), threads_(threads)
{
}

std::uint64_t KeyBook::addKey()
{
    states_.emplace_back();
    return states_.size() - 1;
}

void KeyBook::onSend(std::uint64_t local, int variant)
{
    State& s = states_[local];
    if (s.sent != 0xFF) ++s.sent;
    s.flags |= variant == 0 ? kSent0 : kSent1;
}

void KeyBook::onAnswer(std::uint64_t local, int variant, const ResponseHead& head, std::string_view body,
                       std::int64_t atNs, ViolationLog& log)
{
    State& s = states_[local];
    const int status = head.status;
    const auto name = [&] { return workload_.keyName(globalKey(local)); };
    if (status >= 200 && status < 300) {
        const std::uint64_t h = hashBytes(body);
        const auto length = static_cast<std::uint32_t>(std::min<std::size_t>(body.size(), UINT32_MAX));
        const int okVariant = (s.flags & kOkVariant1) ? 1 : 0;
        if (s.status == 0) {
            s.status = static_cast<std::uint16_t>(status);
            s.hash = h;
            s.length = length;
            if (variant == 1) s.flags |= kOkVariant1;
        } else if (variant != okVariant) {
            log.add(Violation::TwoPayloadsAccepted, atNs,
                    "key " + name() + ": " + std::to_string(status) + " for payload " + std::to_string(variant) +
                        " after a 2xx for payload " + std::to_string(okVariant));
        } else if (status != s.status) {
            log.add(Violation::ReplayStatusDiffers, atNs,
                    "key " + name() + ": status " + std::to_string(status) + ", first 2xx was " + std::to_string(s.status));
        } else if (h != s.hash || length != s.length) {
            log.add(Violation::ReplayBodyDiffers, atNs,
                    "key " + name() + ": body of " + std::to_string(length) + " bytes differs from the first (" +
                        std::to_string(s.length) + " bytes): " + std::string(body.substr(0, 120)));
        }
        if (head.replayed == 0) {
            if (s.flags & kFresh)
                log.add(Violation::FreshTwice, atNs, "key " + name() + ": a second Idempotent-Replayed: false answer");
            s.flags |= kFresh;
        }
        // The mock upstream names the key it executed in its body: a 2xx for key A must not carry B's answer.
        constexpr std::string_view kField = "\"idempotency_key\":";
        if (const auto at = body.find(kField); at != std::string_view::npos) {
            std::string_view rest = body.substr(at + kField.size());
            while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
            if (!rest.empty() && rest.front() == '"') {
                const auto close = rest.find('"', 1);
                const std::string_view named = rest.substr(1, close == std::string_view::npos ? 0 : close - 1);
                scratch_.clear();
                workload_.appendKey(scratch_, globalKey(local));
                if (named != scratch_)
                    log.add(Violation::BodyNamesOtherKey, atNs,
                            "key " + scratch_ + ": answer body names key '" + std::string(named) + "'");
            }
        }
        return;
    }
    if (status == 409) {
        if (!head.retryAfter) log.add(Violation::MissingRetryAfter, atNs, "key " + name() + ": 409 without Retry-After");
        return;
    }
    if (status == 422) {
        if ((s.flags & (kSent0 | kSent1)) != (kSent0 | kSent1))
            log.add(Violation::Unexpected422, atNs,
                    "key " + name() + ": 422 although it was only sent with one payload: " + std::string(body.substr(0, 200)));
        return;
    }
    if (status == 503 && options_.allow503) return;
    log.add(Violation::UnexpectedStatus, atNs,
            "key " + name() + ": status " + std::to_string(status) + ": " + std::string(body.substr(0, 200)));
}

void KeyBook::onNoAnswer(std::uint64_t local, const std::string& why, std::int64_t atNs, ViolationLog& log)
{
    log.add(Violation::NoAnswer, atNs, "key " + workload_.keyName(globalKey(local)) + ": " + why);
}

void KeyBook::checkExecutions(const std::vector<std::uint32_t>& executions, bool countsComplete, ViolationLog& log,
                              std::uint64_t& keysWithAnswer) const
{
    for (std::uint64_t local = 0; local < states_.size(); ++local) {
        const State& s = states_[local];
        const std::uint32_t n = local < executions.size() ? executions[local] : 0;
        if (s.status != 0) ++keysWithAnswer;
        if (n > 1) {
            log.add(Violation::DuplicateExecution, 0,
                    "key " + workload_.keyName(globalKey(local)) + " executed " + std::to_string(n) +
                        " times upstream (sent " + std::to_string(s.sent) + (s.sent == 0xFF ? "+" : "") + " times)");
        } else if (n == 0 && s.status != 0 && countsComplete) {
            log.add(Violation::NotExecuted, 0,
                    "key " + workload_.keyName(globalKey(local)) + " was answered " + std::to_string(s.status) +
                        " but the upstream never executed it");
        }
    }
}

// ------------------------------------------------------------------------------------ upstream stats

std::expected<std::pair<int, std::string>, std::string> simpleRequest(const Endpoint& endpoint,
                                                                     const std::string& method,
                                                                     const std::string& target, double timeoutSeconds)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::unexpected(std::string("socket: ") + std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeoutSeconds);
    tv.tv_usec = static_cast<suseconds_t>((timeoutSeconds - static_cast<double>(tv.tv_sec)) * 1e6);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.address), sizeof endpoint.address) != 0)
        return std::unexpected("connect to " + endpoint.text() + ": " + std::strerror(errno));
    const std::string request = method + " " + target + " HTTP/1.1\r\nHost: " + endpoint.text() +
                                "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    std::size_t written = 0;
    while (written < request.size()) {
        const ssize_t n = ::send(fd, request.data() + written, request.size() - written, MSG_NOSIGNAL);
        if (n <= 0) return std::unexpected("send to " + endpoint.text() + ": " + std::strerror(errno));
        written += static_cast<std::size_t>(n);
    }
    std::string in;
    ResponseParser parser;
    char buffer[64 * 1024];
    for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::unexpected("reading " + target + " from " + endpoint.text() + ": " + std::strerror(errno));
        }
        ResponseParser::Result r;
        if (n == 0) {
            r = parser.finishAtEof(in);
        } else {
            in.append(buffer, static_cast<std::size_t>(n));
            r = parser.parse(in);
        }
        if (r == ResponseParser::Result::Done) return std::make_pair(parser.head().status, std::string(parser.body()));
        if (r == ResponseParser::Result::Error)
            return std::unexpected("bad response for " + target + " from " + endpoint.text() + ": " + parser.error());
    }
}

namespace {

class JsonScanner {
public:
    explicit JsonScanner(std::string_view text) : s_(text) {}

    void skipSpace()
    {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
    }
    bool consume(char c)
    {
        skipSpace();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    /// A JSON string; escapes other than \" and \\ are kept as written (this run's keys have none).
    bool string(std::string& out)
    {
        skipSpace();
        if (i_ >= s_.size() || s_[i_] != '"') return false;
        ++i_;
        out.clear();
        while (i_ < s_.size()) {
            const char c = s_[i_++];
            if (c == '"') return true;
            if (c == '\\' && i_ < s_.size()) {
                const char e = s_[i_++];
                if (e == '"' || e == '\\' || e == '/') {
                    out += e;
                } else {
                    out += '\\';
                    out += e;
                }
            } else {
                out += c;
            }
        }
        return false;
    }
    bool number(std::uint64_t& out)
    {
        skipSpace();
        const auto [ptr, ec] = std::from_chars(s_.data() + i_, s_.data() + s_.size(), out);
        if (ec != std::errc{}) return false;
        i_ = static_cast<std::size_t>(ptr - s_.data());
        return true;
    }
    /// Skips any JSON value (for members this reader does not need).
    bool skipValue()
    {
        skipSpace();
        if (i_ >= s_.size()) return false;
        const char c = s_[i_];
        if (c == '"') {
            std::string ignored;
            return string(ignored);
        }
        if (c == '{' || c == '[') {
            int depth = 0;
            while (i_ < s_.size()) {
                const char d = s_[i_];
                if (d == '"') {
                    std::string ignored;
                    if (!string(ignored)) return false;
                    continue;
                }
                ++i_;
                if (d == '{' || d == '[') ++depth;
                if ((d == '}' || d == ']') && --depth == 0) return true;
            }
            return false;
        }
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']') ++i_;
        return true;
    }

private:
    std::string_view s_;
    std::size_t i_ = 0;
};

}  // namespace

std::expected<UpstreamCounts, std::string> readUpstreamCounts(const Endpoint& upstream, const Workload& workload,
                                                              int threads, const std::vector<std::uint64_t>& keysPerThread)
{
    auto response = simpleRequest(upstream, "GET", "/__stats", 120);
    if (!response) return std::unexpected(response.error());
    if (response->first != 200)
        return std::unexpected("GET /__stats answered " + std::to_string(response->first) + ": is " + upstream.text() +
                               " an idemgate-mock-upstream?");
    UpstreamCounts counts;
    counts.perThread.resize(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t) counts.perThread[static_cast<std::size_t>(t)].assign(keysPerThread[static_cast<std::size_t>(t)], 0);

    JsonScanner json(response->second);
    const auto malformed = [] { return std::unexpected(std::string("GET /__stats: unexpected JSON")); };
    if (!json.consume('{')) return malformed();
    bool sawKeys = false;
    std::string member;
    std::string key;
    if (!json.consume('}')) {
        do {
            if (!json.string(member) || !json.consume(':')) return malformed();
            if (member == "total") {
                if (!json.number(counts.total)) return malformed();
            } else if (member == "untracked") {
                if (!json.number(counts.untracked)) return malformed();
            } else if (member == "keys") {
                sawKeys = true;
                if (!json.consume('{')) return malformed();
                if (!json.consume('}')) {
                    do {
                        std::uint64_t n = 0;
                        if (!json.string(key) || !json.consume(':') || !json.number(n)) return malformed();
                        std::uint64_t g = 0;
                        if (!workload.parseKey(key, g)) {
                            ++counts.foreignKeys;
                            continue;
                        }
                        const auto t = static_cast<std::size_t>(g % static_cast<std::uint64_t>(threads));
                        const std::uint64_t local = g / static_cast<std::uint64_t>(threads);
                        counts.ours += n;
                        auto& slots = counts.perThread[t];
                        if (local >= slots.size()) {
                            // A key of this run's name that this run never sent: count it under foreign.
                            ++counts.foreignKeys;
                            continue;
                        }
                        slots[local] = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX));
                    } while (json.consume(','));
                    if (!json.consume('}')) return malformed();
                }
            } else if (!json.skipValue()) {
                return malformed();
            }
        } while (json.consume(','));
        if (!json.consume('}')) return malformed();
    }
    if (!sawKeys) return malformed();
    return counts;
}

}  // namespace idem::load
