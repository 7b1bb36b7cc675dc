// Bounded ring of the last N executions, for GET /__requests. Appending swaps the caller's
// scratch record with the evicted slot, so steady-state recording reuses buffers instead of
// allocating. Thread-safe.
#pragma once

#include "Controls.h"

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace idem::mock {

struct RecordedRequest {
    std::uint64_t seq = 0;
    std::int64_t receivedAtMs = 0;  // wall clock, ms since the epoch
    std::string method;
    std::string path;
    std::string query;
    std::string key;                // Idempotency-Key value ("" when absent; repeats joined by ", ")
    bool hasKey = false;
    HeaderList headers;             // in received order (Poco groups repeated names together)
    std::size_t bodyLength = 0;
    std::string body;               // first kBodyPrefix bytes
};

class RequestLog {
public:
    static constexpr std::size_t kBodyPrefix = 4096;

    explicit RequestLog(std::size_t capacity) : slots_(capacity) {}

    // Stores scratch (taking its contents) and returns its 1-based sequence number; scratch
    // comes back holding an old record's buffers, ready to be overwritten.
    std::uint64_t append(RecordedRequest& scratch);

    // JSON array of the records, oldest first; only those for key when given.
    std::string toJson(const std::optional<std::string>& key) const;

    void clear();

private:
    mutable std::mutex mutex_;
    std::vector<RecordedRequest> slots_;
    std::uint64_t appended_ = 0;
};

}  // namespace idem::mock
