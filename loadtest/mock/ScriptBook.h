// Response scripts keyed by Idempotency-Key value. Each execution for a key takes the next step
// of its script; once exhausted, the last step repeats. The "*" script applies to keys without
// their own, with a separate position per key. Thread-safe; empty() is a lock-free fast path.
#pragma once

#include "Controls.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace idem::mock {

struct ScriptedStep {
    Controls controls;
    bool dedupe = false;
};

class ScriptBook {
public:
    // Installs (or replaces, restarting its position) the script for script.key.
    void set(Script script);
    void clear();
    // Removes one key's script; false when there was none.
    bool clear(const std::string& key);

    bool empty() const { return !active_.load(std::memory_order_acquire); }

    // The step for this execution, or nullopt when no script applies.
    std::optional<ScriptedStep> next(const std::string& key);

private:
    struct Position {
        std::shared_ptr<const Script> script;
        std::size_t next = 0;
    };

    static ScriptedStep take(const Script& script, std::size_t& position);
    void updateActive();

    std::mutex mutex_;
    std::unordered_map<std::string, Position> byKey_;
    std::shared_ptr<const Script> wildcard_;
    std::unordered_map<std::string, std::size_t> wildcardPositions_;
    std::atomic<bool> active_{false};
};

}  // namespace idem::mock
