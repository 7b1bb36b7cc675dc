// What one execution should do: the per-request X-Mock-* headers and the script entries both
// parse into Controls; anything left unset falls back to the default answer.
#pragma once

#include <chrono>
#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idem::mock {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

enum class Fault { None, Reset, ResetMidBody, Hang, Close };

struct Controls {
    std::optional<int> status;
    std::optional<std::string> body;
    std::optional<std::size_t> bodySize;
    HeaderList headers;                   // extra response headers, in order, repeats kept
    std::size_t chunks = 0;               // 0: Content-Length framing
    std::chrono::milliseconds delay{0};
    Fault fault = Fault::None;
    bool dedupe = false;                  // header form only; scripts carry it per script
};

// A sequence for one key ("*" is the default for keys without their own script).
struct Script {
    std::string key;
    bool dedupe = false;
    std::vector<Controls> steps;
};

// Applies one X-Mock-<suffix> request header; returns an error text for a bad value or an
// unknown suffix (a typo must not be silently ignored).
std::expected<void, std::string> applyControlHeader(Controls& controls, std::string_view suffix,
                                                    const std::string& value);

// Parses the POST /__script body.
std::expected<Script, std::string> parseScript(const std::string& json);

// Largest body the mock generates on request (X-Mock-Body-Size, body_size).
inline constexpr std::size_t kMaxGeneratedBody = 256u << 20;

}  // namespace idem::mock
