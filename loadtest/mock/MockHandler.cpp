#include "MockHandler.h"

#include "Json.h"
#include "ResponseWriter.h"

#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <istream>
#include <optional>
#include <string_view>

namespace idem::mock {

namespace {

// Control request bodies (scripts) larger than this are refused.
constexpr std::size_t kMaxControlBody = 16u << 20;

struct Target {
    std::string_view path;
    std::string_view query;
};

Target splitTarget(std::string_view uri)
{
    const auto q = uri.find('?');
    if (q == std::string_view::npos) return {uri, {}};
    return {uri.substr(0, q), uri.substr(q + 1)};
}

// The percent-decoded value of name in the query ('+' stays '+'), or nullopt when absent.
std::optional<std::string> queryParam(std::string_view query, std::string_view name)
{
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) != name) continue;
        std::string decoded;
        if (eq != std::string_view::npos) Poco::URI::decode(std::string(pair.substr(eq + 1)), decoded);
        return decoded;
    }
    return std::nullopt;
}

// Reads the whole request body, keeping the first `keep` bytes in prefix. Returns false when
// the body ended early (client gone or broken chunked framing).
bool drainBody(Poco::Net::HTTPServerRequest& request, std::string& prefix, std::size_t keep, std::size_t& total)
{
    prefix.clear();
    total = 0;
    // A request with neither Content-Length nor chunked framing has no body (RFC 9112 6.3);
    // Poco would read it until EOF instead.
    if (!request.getChunkedTransferEncoding() && !request.hasContentLength()) return true;
    std::istream& in = request.stream();
    char buffer[16 * 1024];
    for (;;) {
        in.read(buffer, sizeof buffer);
        const auto n = static_cast<std::size_t>(in.gcount());
        if (n == 0) break;
        if (prefix.size() < keep) prefix.append(buffer, std::min(n, keep - prefix.size()));
        total += n;
    }
    if (in.bad()) return false;
    if (request.hasContentLength() && static_cast<std::size_t>(request.getContentLength64()) != total) return false;
    return true;
}

std::int64_t nowMs()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Answer jsonAnswer(int status, std::string body)
{
    Answer answer;
    answer.status = status;
    answer.body = std::move(body);
    return answer;
}

Answer errorAnswer(int status, std::string_view field, std::string_view message)
{
    std::string body = "{\"";
    body += field;
    body += "\":";
    appendJsonString(body, message);
    body += '}';
    return jsonAnswer(status, std::move(body));
}

}  // namespace

void MockHandler::handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response)
{
    auto& impl = static_cast<Poco::Net::HTTPServerRequestImpl&>(request);
    Framing framing;
    framing.keepAlive = response.getKeepAlive();
    framing.http10 = request.getVersion() == Poco::Net::HTTPMessage::HTTP_1_0;
    framing.head = request.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD;
    try {
        if (request.getURI().starts_with("/__")) control(impl, response, framing);
        else execute(impl, response, framing);
    } catch (const std::exception&) {
        // The peer went away or the socket was shut down for exit; nothing left to answer.
        response.setKeepAlive(false);
    }
}

void MockHandler::execute(Poco::Net::HTTPServerRequestImpl& request, Poco::Net::HTTPServerResponse& response,
                          const Framing& framing)
{
    // Per-thread buffers: Poco pools its threads, so these keep their capacity across requests.
    thread_local RecordedRequest record;
    thread_local Answer answer;
    thread_local std::string key;
    thread_local std::string scratch;

    Poco::Net::StreamSocket& socket = request.socket();
    record.receivedAtMs = nowMs();
    if (!drainBody(request, record.body, RequestLog::kBodyPrefix, record.bodyLength)) {
        // An incomplete request is not an execution: no server would act on it.
        response.setKeepAlive(false);
        return;
    }

    Controls controls;
    std::string controlError;
    std::size_t keyLines = 0;
    std::size_t headerCount = 0;
    record.key.clear();
    for (const auto& [name, value] : request) {
        if (headerCount < record.headers.size()) {
            record.headers[headerCount].first.assign(name);
            record.headers[headerCount].second.assign(value);
        } else {
            record.headers.emplace_back(name, value);
        }
        ++headerCount;
        if (iequals(name, "Idempotency-Key")) {
            if (keyLines++ > 0) record.key += ", ";
            record.key += value;
        } else if (istartsWith(name, "X-Mock-") && controlError.empty()) {
            if (auto ok = applyControlHeader(controls, std::string_view(name).substr(7), value); !ok)
                controlError = ok.error();
        }
    }
    record.headers.resize(headerCount);
    record.hasKey = keyLines > 0;
    record.method.assign(request.getMethod());
    const Target target = splitTarget(request.getURI());
    record.path.assign(target.path);
    record.query.assign(target.query);
    key.assign(record.key);

    state_.counter.count(key);

    bool dedupe = controls.dedupe;
    if (!state_.scripts.empty()) {
        if (auto step = state_.scripts.next(key)) {
            controls = std::move(step->controls);
            dedupe = step->dedupe;
            controlError.clear();
        }
    }
    dedupe = dedupe && record.hasKey;  // like a real API: no key, nothing to de-duplicate by
    std::shared_ptr<const Answer> remembered = dedupe ? state_.dedupe.find(key) : nullptr;
    if (!remembered && controlError.empty()) {
        const RequestFacts facts{record.method, record.path, key, record.hasKey, record.bodyLength, record.body};
        state_.answers.build(controls, facts, answer);
    }

    const std::uint64_t seq = state_.log.append(record);  // record now holds an old slot's buffers

    int statusForLog = 0;
    if (!controlError.empty()) {
        const Answer error = errorAnswer(400, "mock_error", controlError);
        statusForLog = error.status;
        if (!sendAnswer(socket, error, framing, scratch)) response.setKeepAlive(false);
    } else if (remembered) {
        statusForLog = remembered->status;
        if (!sendAnswer(socket, *remembered, framing, scratch)) response.setKeepAlive(false);
    } else {
        if (controls.delay.count() > 0 && state_.stop.waitFor(controls.delay)) {
            response.setKeepAlive(false);  // shutting down: leave without answering
            return;
        }
        switch (controls.fault) {
        case Fault::Reset:
            resetConnection(socket);
            break;
        case Fault::ResetMidBody:
            sendHalfAnswer(socket, answer, scratch);
            state_.stop.waitFor(std::chrono::milliseconds(20));  // let the partial bytes land first
            resetConnection(socket);
            break;
        case Fault::Hang:
            state_.stop.waitPeerGone(socket.impl()->sockfd());
            closeConnection(socket);
            break;
        case Fault::Close:
            closeConnection(socket);
            break;
        case Fault::None: {
            const Answer* toSend = &answer;
            std::shared_ptr<const Answer> held;
            if (dedupe && DedupeMemory::remembers(answer.status)) {
                held = state_.dedupe.rememberOrGet(key, answer);
                toSend = held.get();
            }
            statusForLog = toSend->status;
            if (!sendAnswer(socket, *toSend, framing, scratch)) response.setKeepAlive(false);
            break;
        }
        }
        if (controls.fault != Fault::None) response.setKeepAlive(false);
    }

    if (state_.options.verbose) {
        std::fprintf(stderr, "mock #%llu %s %s key=%s -> %d\n", static_cast<unsigned long long>(seq),
                     request.getMethod().c_str(), request.getURI().c_str(), key.c_str(), statusForLog);
    }
}

void MockHandler::control(Poco::Net::HTTPServerRequestImpl& request, Poco::Net::HTTPServerResponse& response,
                          const Framing& framing)
{
    std::string body;
    std::size_t bodyLength = 0;
    if (!drainBody(request, body, kMaxControlBody, bodyLength)) {
        response.setKeepAlive(false);
        return;
    }
    const Target target = splitTarget(request.getURI());
    const std::string& method = request.getMethod();
    const bool get = method == "GET" || method == "HEAD";
    const bool post = method == "POST";

    Answer answer;
    if (bodyLength > kMaxControlBody) {
        answer = errorAnswer(413, "error", "control body too large");
    } else if (target.path == "/__stats") {
        if (!get) {
            answer = errorAnswer(405, "error", "use GET");
        } else if (const auto key = queryParam(target.query, "key")) {
            std::string out = "{\"total\":" + std::to_string(state_.counter.total()) + ",\"key\":";
            appendJsonString(out, *key);
            out += ",\"count\":" + std::to_string(state_.counter.countOf(*key)) + "}";
            answer = jsonAnswer(200, std::move(out));
        } else {
            answer = jsonAnswer(200, state_.counter.toJson());
        }
    } else if (target.path == "/__requests") {
        answer = get ? jsonAnswer(200, state_.log.toJson(queryParam(target.query, "key")))
                     : errorAnswer(405, "error", "use GET");
    } else if (target.path == "/__reset") {
        if (post) {
            state_.reset();
            answer = jsonAnswer(200, "{\"ok\":true}");
        } else {
            answer = errorAnswer(405, "error", "use POST");
        }
    } else if (target.path == "/__script") {
        if (post) {
            auto script = parseScript(body);
            if (script) {
                state_.scripts.set(std::move(*script));
                answer = jsonAnswer(200, "{\"ok\":true}");
            } else {
                answer = errorAnswer(400, "error", script.error());
            }
        } else if (method == "DELETE") {
            if (const auto key = queryParam(target.query, "key")) {
                const bool removed = state_.scripts.clear(*key);
                answer = jsonAnswer(200, removed ? "{\"ok\":true,\"removed\":1}" : "{\"ok\":true,\"removed\":0}");
            } else {
                state_.scripts.clear();
                answer = jsonAnswer(200, "{\"ok\":true}");
            }
        } else {
            answer = errorAnswer(405, "error", "use POST or DELETE");
        }
    } else if (target.path == "/__health") {
        if (get) {
            const int status = state_.healthStatus.load(std::memory_order_relaxed);
            answer = jsonAnswer(status, status == 200 ? "{\"ok\":true}"
                                                      : "{\"ok\":false,\"status\":" + std::to_string(status) + "}");
        } else if (post) {
            const auto text = queryParam(target.query, "status").value_or("200");
            int status = 0;
            const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), status);
            if (ec != std::errc{} || ptr != text.data() + text.size() || status < 200 || status > 599) {
                answer = errorAnswer(400, "error", "status must be 200..599");
            } else {
                state_.healthStatus.store(status, std::memory_order_relaxed);
                answer = jsonAnswer(200, "{\"ok\":true,\"status\":" + std::to_string(status) + "}");
            }
        } else {
            answer = errorAnswer(405, "error", "use GET or POST");
        }
    } else {
        answer = errorAnswer(404, "error", "unknown control endpoint");
    }

    std::string scratch;
    if (!sendAnswer(request.socket(), answer, framing, scratch)) response.setKeepAlive(false);
}

}  // namespace idem::mock
