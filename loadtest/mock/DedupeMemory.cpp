#include "DedupeMemory.h"

namespace idem::mock {

std::shared_ptr<const Answer> DedupeMemory::find(const std::string& key) const
{
    std::lock_guard lock(mutex_);
    const auto it = answers_.find(key);
    return it == answers_.end() ? nullptr : it->second;
}

std::shared_ptr<const Answer> DedupeMemory::rememberOrGet(const std::string& key, const Answer& answer)
{
    auto copy = std::make_shared<const Answer>(answer);
    std::lock_guard lock(mutex_);
    return answers_.try_emplace(key, std::move(copy)).first->second;
}

void DedupeMemory::clear()
{
    std::lock_guard lock(mutex_);
    answers_.clear();
}

}  // namespace idem::mock
