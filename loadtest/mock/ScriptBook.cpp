#include "ScriptBook.h"

#include <utility>

namespace idem::mock {

void ScriptBook::set(Script script)
{
    std::lock_guard lock(mutex_);
    auto shared = std::make_shared<const Script>(std::move(script));
    if (shared->key == "*") {
        wildcard_ = std::move(shared);
        wildcardPositions_.clear();
    } else {
        const std::string key = shared->key;
        byKey_.insert_or_assign(key, Position{std::move(shared), 0});
    }
    updateActive();
}

void ScriptBook::clear()
{
    std::lock_guard lock(mutex_);
    byKey_.clear();
    wildcard_.reset();
    wildcardPositions_.clear();
    updateActive();
}

bool ScriptBook::clear(const std::string& key)
{
    std::lock_guard lock(mutex_);
    bool removed = false;
    if (key == "*") {
        removed = wildcard_ != nullptr;
        wildcard_.reset();
        wildcardPositions_.clear();
    } else {
        removed = byKey_.erase(key) > 0;
    }
    updateActive();
    return removed;
}

void ScriptBook::updateActive()
{
    active_.store(!byKey_.empty() || wildcard_ != nullptr, std::memory_order_release);
}

ScriptedStep ScriptBook::take(const Script& script, std::size_t& position)
{
    const std::size_t index = position < script.steps.size() ? position : script.steps.size() - 1;
    if (position < script.steps.size()) ++position;
    return ScriptedStep{script.steps[index], script.dedupe};
}

std::optional<ScriptedStep> ScriptBook::next(const std::string& key)
{
    std::lock_guard lock(mutex_);
    if (const auto it = byKey_.find(key); it != byKey_.end()) return take(*it->second.script, it->second.next);
    if (wildcard_) return take(*wildcard_, wildcardPositions_[key]);
    return std::nullopt;
}

}  // namespace idem::mock
