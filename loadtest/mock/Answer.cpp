#include "Answer.h"

#include "Json.h"

#include <charconv>
#include <random>

namespace idem::mock {

namespace {

void appendNumber(std::string& out, std::uint64_t n)
{
    char buffer[24];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, n);
    out.append(buffer, end);
}

// The JSON number following "amount": in the body, or empty when there is none.
std::string_view findAmount(std::string_view body)
{
    constexpr std::string_view kField = "\"amount\"";
    const auto at = body.find(kField);
    if (at == std::string_view::npos) return {};
    std::size_t i = at + kField.size();
    while (i < body.size() && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) ++i;
    if (i >= body.size() || body[i] != ':') return {};
    ++i;
    while (i < body.size() && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) ++i;
    const std::size_t start = i;
    while (i < body.size() && (std::string_view("0123456789+-.eE").find(body[i]) != std::string_view::npos)) ++i;
    if (i == start || body[start] == '+' || body[start] == '.' || body[start] == 'e' || body[start] == 'E') return {};
    return body.substr(start, i - start);
}

}  // namespace

void appendFiller(std::string& out, std::size_t n)
{
    static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    constexpr std::string_view kOpen = "{\"filler\":\"";
    constexpr std::string_view kClose = "\"}";
    const bool json = n >= kOpen.size() + kClose.size();
    const std::size_t inner = json ? n - kOpen.size() - kClose.size() : n;
    if (json) out += kOpen;
    const std::size_t base = out.size();
    out.resize(base + inner);
    for (std::size_t i = 0; i < inner; ++i) out[base + i] = kAlphabet[i % kAlphabet.size()];
    if (json) out += kClose;
}

AnswerBuilder::AnswerBuilder()
{
    std::random_device device;
    std::uint32_t r = device();
    static constexpr char kHex[] = "0123456789abcdef";
    idPrefix_ = "pay_";
    for (int i = 7; i >= 0; --i) idPrefix_ += kHex[(r >> (i * 4)) & 0xF];
    idPrefix_ += '_';
}

void AnswerBuilder::build(const Controls& controls, const RequestFacts& facts, Answer& out)
{
    const bool isPost = facts.method == "POST";
    out.status = controls.status.value_or(isPost ? 201 : 200);
    out.headers = controls.headers;
    out.chunks = controls.chunks;
    out.body.clear();
    if (controls.body) {
        out.body = *controls.body;
    } else if (controls.bodySize) {
        appendFiller(out.body, *controls.bodySize);
    } else if (out.status < 200 || out.status >= 300) {
        out.body += "{\"error\":\"mock_status\",\"status\":";
        appendNumber(out.body, static_cast<std::uint64_t>(out.status));
        out.body += '}';
    } else if (isPost) {
        out.body += "{\"id\":\"";
        out.body += idPrefix_;
        appendNumber(out.body, nextPayment_.fetch_add(1, std::memory_order_relaxed));
        out.body += "\",\"object\":\"payment\",\"amount\":";
        const auto amount = findAmount(facts.bodyPrefix);
        out.body += amount.empty() ? std::string_view("null") : amount;
        out.body += ",\"body_length\":";
        appendNumber(out.body, facts.bodyLength);
        out.body += ",\"idempotency_key\":";
        if (facts.hasKey) appendJsonString(out.body, facts.key);
        else out.body += "null";
        out.body += '}';
    } else {
        out.body += "{\"ok\":true,\"method\":";
        appendJsonString(out.body, facts.method);
        out.body += ",\"path\":";
        appendJsonString(out.body, facts.path);
        out.body += '}';
    }
}

}  // namespace idem::mock
