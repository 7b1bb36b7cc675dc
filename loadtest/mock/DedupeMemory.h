// The mock's own de-duplication by forwarded Idempotency-Key, as a real payment API does it:
// the first answered response for a key is remembered and returned to later executions.
// Only responses below 500, other than 409 and 429, are remembered (refusals and outages do
// not commit the operation). Thread-safe.
#pragma once

#include "Answer.h"

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace idem::mock {

class DedupeMemory {
public:
    static bool remembers(int status) { return status < 500 && status != 409 && status != 429; }

    std::shared_ptr<const Answer> find(const std::string& key) const;

    // Remembers answer for key unless one is already there; returns the one that holds.
    std::shared_ptr<const Answer> rememberOrGet(const std::string& key, const Answer& answer);

    void clear();

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<const Answer>> answers_;
};

}  // namespace idem::mock
