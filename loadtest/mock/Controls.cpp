#include "Controls.h"

#include "Json.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <charconv>

namespace idem::mock {

namespace {

std::optional<std::size_t> parseCount(std::string_view text, std::size_t max)
{
    std::size_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end || value > max) return std::nullopt;
    return value;
}

std::optional<Fault> parseFault(std::string_view text)
{
    if (text == "reset") return Fault::Reset;
    if (text == "reset-mid-body") return Fault::ResetMidBody;
    if (text == "hang") return Fault::Hang;
    if (text == "close") return Fault::Close;
    if (text == "none" || text.empty()) return Fault::None;
    return std::nullopt;
}

bool validStatus(long status) { return status >= 200 && status <= 599; }

// A header name must be a token: no separators, no spaces, no control characters.
bool validFieldName(std::string_view name)
{
    if (name.empty()) return false;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return false;
        if (std::string_view("\"(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos) return false;
    }
    return true;
}

bool validFieldValue(std::string_view value)
{
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
    }
    return true;
}

std::expected<void, std::string> addHeader(HeaderList& headers, std::string name, std::string value)
{
    if (!validFieldName(name)) return std::unexpected("invalid header name '" + name + "'");
    if (!validFieldValue(value)) return std::unexpected("invalid value for header '" + name + "'");
    headers.emplace_back(std::move(name), std::move(value));
    return {};
}

std::string trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

// Reads an integer field of a script entry within [min, max].
std::expected<long, std::string> intField(const Poco::JSON::Object& entry, const std::string& name, long min,
                                          long max)
{
    const Poco::Dynamic::Var v = entry.get(name);
    if (!v.isInteger()) return std::unexpected("'" + name + "' must be an integer");
    long n = 0;
    try {
        n = v.convert<long>();
    } catch (const Poco::Exception&) {
        return std::unexpected("'" + name + "' is out of range");
    }
    if (n < min || n > max)
        return std::unexpected("'" + name + "' must be in " + std::to_string(min) + ".." + std::to_string(max));
    return n;
}

std::expected<Controls, std::string> parseStep(const Poco::JSON::Object& entry)
{
    Controls step;
    for (const auto& [name, value] : entry) {
        if (name == "status") {
            auto n = intField(entry, name, 200, 599);
            if (!n) return std::unexpected(n.error());
            step.status = static_cast<int>(*n);
        } else if (name == "body") {
            if (!value.isString()) return std::unexpected(std::string("'body' must be a string"));
            step.body = value.extract<std::string>();
        } else if (name == "body_size") {
            auto n = intField(entry, name, 0, static_cast<long>(kMaxGeneratedBody));
            if (!n) return std::unexpected(n.error());
            step.bodySize = static_cast<std::size_t>(*n);
        } else if (name == "chunks") {
            auto n = intField(entry, name, 0, 1'000'000);
            if (!n) return std::unexpected(n.error());
            step.chunks = static_cast<std::size_t>(*n);
        } else if (name == "delay_ms") {
            auto n = intField(entry, name, 0, 86'400'000);
            if (!n) return std::unexpected(n.error());
            step.delay = std::chrono::milliseconds(*n);
        } else if (name == "fault") {
            const auto fault = value.isString() ? parseFault(value.extract<std::string>()) : std::nullopt;
            if (!fault) return std::unexpected(std::string("'fault' must be reset|reset-mid-body|hang|close"));
            step.fault = *fault;
        } else if (name == "headers") {
            if (const auto array = entry.getArray(name)) {
                for (std::size_t i = 0; i < array->size(); ++i) {
                    const auto pair = array->getArray(static_cast<unsigned>(i));
                    if (!pair || pair->size() != 2 || !pair->get(0).isString() || !pair->get(1).isString())
                        return std::unexpected(std::string("'headers' entries must be [name, value] strings"));
                    auto ok = addHeader(step.headers, pair->getElement<std::string>(0),
                                        pair->getElement<std::string>(1));
                    if (!ok) return std::unexpected(ok.error());
                }
            } else if (const auto object = entry.getObject(name)) {
                for (const auto& [headerName, headerValue] : *object) {
                    if (!headerValue.isString())
                        return std::unexpected("header '" + headerName + "' must have a string value");
                    auto ok = addHeader(step.headers, headerName, headerValue.extract<std::string>());
                    if (!ok) return std::unexpected(ok.error());
                }
            } else {
                return std::unexpected(std::string("'headers' must be [[name, value], ...] or an object"));
            }
        } else {
            return std::unexpected("unknown field '" + name + "' in a response entry");
        }
    }
    if (step.body && step.bodySize) return std::unexpected(std::string("'body' and 'body_size' exclude each other"));
    return step;
}

}  // namespace

std::expected<void, std::string> applyControlHeader(Controls& controls, std::string_view suffix,
                                                    const std::string& value)
{
    if (iequals(suffix, "Delay-Ms")) {
        const auto n = parseCount(value, 86'400'000);
        if (!n) return std::unexpected("X-Mock-Delay-Ms: expected milliseconds, got '" + value + "'");
        controls.delay = std::chrono::milliseconds(*n);
    } else if (iequals(suffix, "Status")) {
        const auto n = parseCount(value, 599);
        if (!n || !validStatus(static_cast<long>(*n)))
            return std::unexpected("X-Mock-Status: expected 200..599, got '" + value + "'");
        controls.status = static_cast<int>(*n);
    } else if (iequals(suffix, "Body")) {
        if (controls.bodySize) return std::unexpected(std::string("X-Mock-Body and X-Mock-Body-Size exclude each other"));
        controls.body = value;
    } else if (iequals(suffix, "Body-Size")) {
        const auto n = parseCount(value, kMaxGeneratedBody);
        if (!n) return std::unexpected("X-Mock-Body-Size: expected a byte count, got '" + value + "'");
        if (controls.body) return std::unexpected(std::string("X-Mock-Body and X-Mock-Body-Size exclude each other"));
        controls.bodySize = *n;
    } else if (iequals(suffix, "Header")) {
        const auto colon = value.find(':');
        if (colon == std::string::npos)
            return std::unexpected("X-Mock-Header: expected 'Name: value', got '" + value + "'");
        auto ok = addHeader(controls.headers, trim(std::string_view(value).substr(0, colon)),
                            trim(std::string_view(value).substr(colon + 1)));
        if (!ok) return std::unexpected("X-Mock-Header: " + ok.error());
    } else if (iequals(suffix, "Chunked")) {
        const auto n = parseCount(value, 1'000'000);
        if (!n || *n == 0) return std::unexpected("X-Mock-Chunked: expected a chunk count >= 1, got '" + value + "'");
        controls.chunks = *n;
    } else if (iequals(suffix, "Fault")) {
        const auto fault = parseFault(value);
        if (!fault) return std::unexpected("X-Mock-Fault: expected reset|reset-mid-body|hang|close, got '" + value + "'");
        controls.fault = *fault;
    } else if (iequals(suffix, "Dedupe")) {
        if (value == "1" || value == "true") controls.dedupe = true;
        else if (value == "0" || value == "false") controls.dedupe = false;
        else return std::unexpected("X-Mock-Dedupe: expected 1 or 0, got '" + value + "'");
    } else {
        return std::unexpected("unknown control header X-Mock-" + std::string(suffix));
    }
    return {};
}

std::expected<Script, std::string> parseScript(const std::string& json)
{
    Poco::JSON::Object::Ptr root;
    try {
        Poco::JSON::Parser parser;
        root = parser.parse(json).extract<Poco::JSON::Object::Ptr>();
    } catch (const Poco::Exception& e) {
        return std::unexpected("script is not a JSON object: " + e.displayText());
    } catch (const std::exception& e) {
        return std::unexpected(std::string("script is not a JSON object: ") + e.what());
    }
    if (!root) return std::unexpected(std::string("script is not a JSON object"));

    Script script;
    bool haveKey = false;
    bool haveResponses = false;
    for (const auto& [name, value] : *root) {
        if (name == "key") {
            if (!value.isString()) return std::unexpected(std::string("'key' must be a string"));
            script.key = value.extract<std::string>();
            haveKey = true;
        } else if (name == "dedupe") {
            if (!value.isBoolean()) return std::unexpected(std::string("'dedupe' must be true or false"));
            script.dedupe = value.extract<bool>();
        } else if (name == "responses") {
            const auto array = root->getArray(name);
            if (!array || array->size() == 0)
                return std::unexpected(std::string("'responses' must be a non-empty array"));
            for (std::size_t i = 0; i < array->size(); ++i) {
                const auto entry = array->getObject(static_cast<unsigned>(i));
                if (!entry) return std::unexpected("responses[" + std::to_string(i) + "] must be an object");
                auto step = parseStep(*entry);
                if (!step) return std::unexpected("responses[" + std::to_string(i) + "]: " + step.error());
                script.steps.push_back(std::move(*step));
            }
            haveResponses = true;
        } else {
            return std::unexpected("unknown field '" + name + "' in script");
        }
    }
    if (!haveKey) return std::unexpected(std::string("script needs 'key' (a key, or \"*\" for every key)"));
    if (!haveResponses) return std::unexpected(std::string("script needs 'responses'"));
    return script;
}

}  // namespace idem::mock
