// A response the mock will send (or remembered for dedupe), and the builder of default answers.
#pragma once

#include "Controls.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace idem::mock {

struct Answer {
    int status = 200;
    HeaderList headers;      // as given by the caller; Content-Type defaults to application/json
    std::string body;
    std::size_t chunks = 0;  // 0: Content-Length framing
};

// The facts about the current request that default bodies echo.
struct RequestFacts {
    std::string_view method;
    std::string_view path;
    std::string_view key;
    bool hasKey = false;
    std::size_t bodyLength = 0;
    std::string_view bodyPrefix;  // first bytes of the body (for the "amount" echo)
};

// Builds answers from Controls plus defaults. Payment ids are "pay_<random hex>_<counter>":
// unique per execution, different across restarts. Thread-safe.
class AnswerBuilder {
public:
    AnswerBuilder();

    // Fills out (reusing its capacity) for one execution.
    void build(const Controls& controls, const RequestFacts& facts, Answer& out);

private:
    std::string idPrefix_;
    std::atomic<std::uint64_t> nextPayment_{1};
};

// n bytes of deterministic filler; valid JSON ({"filler":"..."}) when n >= 13.
void appendFiller(std::string& out, std::size_t n);

}  // namespace idem::mock
