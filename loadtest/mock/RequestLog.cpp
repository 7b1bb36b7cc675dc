#include "RequestLog.h"

#include "Json.h"

#include <utility>

namespace idem::mock {

std::uint64_t RequestLog::append(RecordedRequest& scratch)
{
    std::lock_guard lock(mutex_);
    scratch.seq = ++appended_;
    std::swap(slots_[(appended_ - 1) % slots_.size()], scratch);
    return appended_;
}

std::string RequestLog::toJson(const std::optional<std::string>& key) const
{
    std::vector<RecordedRequest> picked;
    {
        std::lock_guard lock(mutex_);
        const std::uint64_t capacity = slots_.size();
        const std::uint64_t first = appended_ > capacity ? appended_ - capacity : 0;
        for (std::uint64_t i = first; i < appended_; ++i) {
            const RecordedRequest& r = slots_[i % capacity];
            if (!key || r.key == *key) picked.push_back(r);
        }
    }
    std::string out = "[";
    for (const RecordedRequest& r : picked) {
        if (out.size() > 1) out += ',';
        out += "{\"seq\":" + std::to_string(r.seq) + ",\"received_at_ms\":" + std::to_string(r.receivedAtMs);
        out += ",\"method\":";
        appendJsonString(out, r.method);
        out += ",\"path\":";
        appendJsonString(out, r.path);
        out += ",\"query\":";
        appendJsonString(out, r.query);
        out += ",\"key\":";
        appendJsonString(out, r.key);
        out += r.hasKey ? ",\"has_key\":true" : ",\"has_key\":false";
        out += ",\"headers\":[";
        for (std::size_t i = 0; i < r.headers.size(); ++i) {
            if (i > 0) out += ',';
            out += '[';
            appendJsonString(out, r.headers[i].first);
            out += ',';
            appendJsonString(out, r.headers[i].second);
            out += ']';
        }
        out += "],\"body_length\":" + std::to_string(r.bodyLength) + ",\"body\":";
        appendJsonString(out, r.body);
        out += '}';
    }
    out += ']';
    return out;
}

void RequestLog::clear()
{
    std::lock_guard lock(mutex_);
    for (RecordedRequest& r : slots_) r = RecordedRequest{};
    appended_ = 0;
}

}  // namespace idem::mock
