#include "Workload.h"

#include <algorithm>
#include <charconv>
#include <random>

namespace idem::load {

namespace {

constexpr std::string_view kOpen = "{\"amount\":";
constexpr std::string_view kCurrency = ",\"currency\":\"usd\"";
constexpr std::string_view kPadOpen = ",\"pad\":\"";
constexpr std::size_t kAmountDigits = 9;
constexpr std::size_t kMinimalBody = kOpen.size() + kAmountDigits + kCurrency.size() + 1;

void appendNumber(std::string& out, std::uint64_t n)
{
    char buffer[24];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, n);
    out.append(buffer, end);
}

}  // namespace

std::uint64_t hashBytes(std::string_view bytes)
{
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return h;
}

Workload::Workload(const Options& options) : options_(options), prefix_(options.keyPrefix)
{
    if (prefix_.empty()) {
        std::random_device device;
        static constexpr char kHex[] = "0123456789abcdef";
        prefix_ = "lt";
        std::uint64_t r = (static_cast<std::uint64_t>(device()) << 32) | device();
        for (int i = 0; i < 10; ++i) {
            prefix_ += kHex[r & 0xF];
            r >>= 4;
        }
    }
    bodyLength_ = std::max(options.payloadBytes, kMinimalBody);
    for (const Endpoint& target : options.targets) {
        std::string head = "POST ";
        head += options.path;
        head += " HTTP/1.1\r\nHost: ";
        head += target.text();
        head += "\r\nContent-Type: application/json\r\nContent-Length: ";
        appendNumber(head, bodyLength_);
        head += "\r\n";
        heads_.push_back(std::move(head));
    }
}

void Workload::appendKey(std::string& out, std::uint64_t key) const
{
    out += prefix_;
    out += '-';
    appendNumber(out, key);
}

std::string Workload::keyName(std::uint64_t key) const
{
    std::string out;
    appendKey(out, key);
    return out;
}

bool Workload::parseKey(std::string_view name, std::uint64_t& key) const
{
    if (name.size() <= prefix_.size() + 1 || !name.starts_with(prefix_) || name[prefix_.size()] != '-') return false;
    const std::string_view digits = name.substr(prefix_.size() + 1);
    if (digits.size() > 1 && digits[0] == '0') return false;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), key);
    return ec == std::errc{} && ptr == digits.data() + digits.size();
}

void Workload::appendBody(std::string& out, std::uint64_t key, int variant) const
{
    const std::size_t start = out.size();
    out += kOpen;
    appendNumber(out, 100000000 + key % 800000000 + static_cast<std::uint64_t>(variant));
    out += kCurrency;
    const std::size_t padded = kMinimalBody + kPadOpen.size() + 1;
    if (bodyLength_ >= padded) {
        out += kPadOpen;
        out.append(bodyLength_ - padded, 'x');
        out += '"';
    }
    out += '}';
    // Between the minimal body and the smallest padded one: trailing white space (insignificant in JSON).
    if (out.size() - start < bodyLength_) out.append(bodyLength_ - (out.size() - start), ' ');
}

void Workload::appendRequest(std::string& out, std::size_t target, std::uint64_t key, int variant) const
{
    out += heads_[target];
    if (options_.tenants > 0) {
        out += "Authorization: Bearer tenant-";
        appendNumber(out, key % static_cast<std::uint64_t>(options_.tenants));
        out += "\r\n";
    }
    out += "Idempotency-Key: ";
    appendKey(out, key);
    out += "\r\n\r\n";
    appendBody(out, key, variant);
}

}  // namespace idem::load
