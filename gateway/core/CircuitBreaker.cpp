#include "gateway/core/CircuitBreaker.h"

namespace idem::core {
namespace {

std::int64_t nanos(Clock::time_point t) { return t.time_since_epoch().count(); }

}  // namespace

CircuitBreaker::CircuitBreaker(Settings settings) : settings_(settings), window_(settings.window) {}

CircuitBreaker::State CircuitBreaker::state(Clock::time_point now) const {
    if (!settings_.enabled) return State::Closed;
    const auto s = static_cast<State>(state_.load(std::memory_order_acquire));
    if (s == State::Open && nanos(now) >= openUntil_.load(std::memory_order_acquire)) return State::HalfOpen;
    return s;
}

bool CircuitBreaker::admissible(Clock::time_point now) const {
    switch (state(now)) {
        case State::Closed: return true;
        case State::Open: return false;
        case State::HalfOpen: return !probing_.load(std::memory_order_acquire);
    }
    return false;
}

CircuitBreaker::Admission CircuitBreaker::admit(Clock::time_point now) {
    if (!settings_.enabled) return Admission::Normal;
    int s = state_.load(std::memory_order_acquire);
    if (s == static_cast<int>(State::Closed)) return Admission::Normal;
    if (s == static_cast<int>(State::Open)) {
        if (nanos(now) < openUntil_.load(std::memory_order_acquire)) return Admission::Rejected;
        // openFor has elapsed: half-open (whoever wins the exchange; the others see HalfOpen).
        state_.compare_exchange_strong(s, static_cast<int>(State::HalfOpen), std::memory_order_acq_rel);
        s = state_.load(std::memory_order_acquire);
        if (s == static_cast<int>(State::Closed)) return Admission::Normal;
        if (s == static_cast<int>(State::Open)) return Admission::Rejected;
    }
    bool expected = false;
    if (probing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return Admission::Probe;
    return Admission::Rejected;
}

std::optional<CircuitBreaker::State> CircuitBreaker::onResult(Admission admission, Result result, Clock::time_point now) {
    if (!settings_.enabled || admission == Admission::Rejected) return std::nullopt;
    if (admission == Admission::Probe) {
        if (result == Result::Neutral) {
            probing_.store(false, std::memory_order_release);
            return std::nullopt;
        }
        if (result == Result::Success) {
            window_.clear();
            state_.store(static_cast<int>(State::Closed), std::memory_order_release);
            probing_.store(false, std::memory_order_release);
            return State::Closed;
        }
        openUntil_.store(nanos(now + settings_.openFor), std::memory_order_release);
        state_.store(static_cast<int>(State::Open), std::memory_order_release);
        probing_.store(false, std::memory_order_release);
        return State::Open;
    }
    if (result == Result::Neutral) return std::nullopt;
    if (state_.load(std::memory_order_acquire) != static_cast<int>(State::Closed)) return std::nullopt;
    const bool failed = result == Result::Failure;
    window_.add(now, 1, failed ? 1 : 0);
    if (!failed) return std::nullopt;
    const auto t = window_.totals(now);
    if (t.a < settings_.minRequests) return std::nullopt;
    if (static_cast<double>(t.b) < settings_.failureRate * static_cast<double>(t.a) - 1e-9) return std::nullopt;
    int closed = static_cast<int>(State::Closed);
    openUntil_.store(nanos(now + settings_.openFor), std::memory_order_release);
    if (!state_.compare_exchange_strong(closed, static_cast<int>(State::Open), std::memory_order_acq_rel))
        return std::nullopt;  // another thread opened it first
    window_.clear();
    return State::Open;
}

}  // namespace idem::core
