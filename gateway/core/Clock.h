#pragma once
// Time for the core, injectable so that tests move it by hand instead of sleeping.

#include <chrono>

namespace idem::core {

class Clock {
public:
    using time_point = std::chrono::steady_clock::time_point;
    virtual ~Clock() = default;
    virtual time_point now() const = 0;
};

class SystemClock final : public Clock {
public:
    time_point now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace idem::core
