#include "storage/MemoryStore.h"

#include "storage/RecordCodec.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace idem::storage {
namespace {

using TimePoint = core::Clock::time_point;

/// Records the sweeper removes per shard lock hold: bounds how long one sweep blocks requests.
constexpr std::size_t kSweepBatch = 512;
/// Records a begin at the cap may reclaim across all shards before it answers Full.
constexpr std::size_t kCapReclaimBatch = 1024;

enum class State : std::uint8_t { InFlight, Completed };

StoreError tooLarge(std::string message) { return StoreError{StoreError::Kind::TooLarge, std::move(message)}; }

std::optional<StoreError> checkId(const RecordId& id) {
    if (id.size() <= kMaxRecordIdBytes) return std::nullopt;
    return tooLarge("record id of " + std::to_string(id.size()) + " bytes exceeds " +
                    std::to_string(kMaxRecordIdBytes));
}

Millis leaseLeft(TimePoint leaseUntil, TimePoint now) {
    // Rounded up, so a live lease is never reported as 0 ms.
    return std::max(Millis{1}, std::chrono::ceil<Millis>(leaseUntil - now));
}

}  // namespace

struct MemoryStore::Shard {
    struct Record {
        State state = State::InFlight;
        Token token;
        Fingerprint fp;
        std::int64_t fence = 0;
        TimePoint leaseUntil;
        TimePoint expiresAt;
        std::shared_ptr<const StoredResponse> response;  // set once completed; copied out of the lock
        // Expiry index links (see Lane). Records live in unordered_map nodes, whose addresses are stable.
        Record* prev = nullptr;
        Record* next = nullptr;
        const RecordId* key = nullptr;
        std::uint8_t lane = 0;
    };
    using Map = std::unordered_map<RecordId, Record>;
    /// Records taken out of the map under the lock, destroyed after it is released.
    using Garbage = std::vector<Map::node_type>;

    /// The expiry index: records whose expiry is `now + span` for the same span (a route's lease or its
    /// retention) are linked in one lane in the order they were indexed, and `now` only grows under the
    /// shard lock, so each lane is ordered by expiry at O(1) per insert, instead of a tree of every
    /// record (O(log n) with a cache miss per level: it was the memory store's largest cost on the miss
    /// path at a million keys). A configuration has a handful of spans; past kMaxLanes the last lane
    /// takes any span and keeps its order by walking back from its tail.
    struct Lane {
        TimePoint::duration span{};
        Record* head = nullptr;  ///< earliest expiry
        Record* tail = nullptr;
    };
    static constexpr std::size_t kMaxLanes = 16;

    std::mutex mu;
    Map records;
    std::vector<Lane> lanes;  // every record is linked in exactly one lane

    /// Indexes a record of `records` to expire at `at` (= now + its lease or retention).
    void index(Map::iterator it, TimePoint at, TimePoint now) {
        Record& r = it->second;
        r.expiresAt = at;
        r.key = &it->first;
        const auto span = at - now;
        std::size_t li = 0;
        while (li < lanes.size() && lanes[li].span != span) ++li;
        if (li == lanes.size()) {
            if (lanes.size() < kMaxLanes) lanes.push_back(Lane{span});
            else li = kMaxLanes - 1;
        }
        Lane& lane = lanes[li];
        r.lane = static_cast<std::uint8_t>(li);
        Record* before = lane.tail;  // r goes after `before`
        while (before && before->expiresAt > at) before = before->prev;
        r.prev = before;
        r.next = before ? before->next : lane.head;
        (r.next ? r.next->prev : lane.tail) = &r;
        (before ? before->next : lane.head) = &r;
    }

    void unlink(Record& r) {
        Lane& lane = lanes[r.lane];
        (r.prev ? r.prev->next : lane.head) = r.next;
        (r.next ? r.next->prev : lane.tail) = r.prev;
        r.prev = r.next = nullptr;
    }

    /// Moves an indexed record's expiry.
    void setExpiry(Map::iterator it, TimePoint at, TimePoint now) {
        unlink(it->second);
        index(it, at, now);
    }

    void remove(Map::iterator it, Garbage& garbage) {
        unlink(it->second);
        garbage.push_back(records.extract(it));
    }

    /// Removes up to `max` records with expiresAt <= now, oldest first.
    std::size_t removeExpired(TimePoint now, std::size_t max, Garbage& garbage) {
        std::size_t removed = 0;
        while (removed < max) {
            Record* oldest = nullptr;
            for (const Lane& lane : lanes)
                if (lane.head && lane.head->expiresAt <= now && (!oldest || lane.head->expiresAt < oldest->expiresAt))
                    oldest = lane.head;
            if (!oldest) break;
            remove(records.find(*oldest->key), garbage);
            ++removed;
        }
        return removed;
    }

    /// The live record for `id`, or end() (absent or expired).
    Map::iterator findLive(const RecordId& id, TimePoint now) {
        const auto it = records.find(id);
        if (it == records.end() || it->second.expiresAt <= now) return records.end();
        return it;
    }
};

MemoryStore::MemoryStore(MemoryStoreConfig config, StoreLimits limits, std::shared_ptr<const core::Clock> clock)
    : config_(config), limits_(limits), clock_(std::move(clock)) {
    if (!clock_) throw std::invalid_argument("MemoryStore: no clock");
    if (config_.shards == 0) throw std::invalid_argument("MemoryStore: shards must be at least 1");
    if (config_.maxRecords == 0) throw std::invalid_argument("MemoryStore: maxRecords must be at least 1");
    shards_.reserve(config_.shards);
    for (std::size_t i = 0; i < config_.shards; ++i) shards_.push_back(std::make_unique<Shard>());
    if (config_.sweepInterval.count() > 0) sweeper_ = std::thread([this] { sweepLoop(); });
}

MemoryStore::~MemoryStore() {
    {
        std::lock_guard lock(sweepMu_);
        stopping_.store(true);
    }
    sweepCv_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();
}

MemoryStore::Shard& MemoryStore::shardFor(const RecordId& id) {
    // Mix the hash so the shard index and the map's bucket index use different bits.
    std::uint64_t h = std::hash<std::string_view>{}(id);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return *shards_[h % shards_.size()];
}

bool MemoryStore::reserveSlot() {
    std::size_t n = count_.load(std::memory_order_relaxed);
    do {
        if (n >= config_.maxRecords) return false;
    } while (!count_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel, std::memory_order_relaxed));
    return true;
}

Result<BeginOutcome> MemoryStore::begin(const RecordId& id, const Fingerprint& fp, const Token& token, Millis lease,
                                        Millis retention) {
    return claim(id, fp, token, nullptr, lease, retention);
}

Result<BeginOutcome> MemoryStore::takeover(const RecordId& id, const Fingerprint& fp, const Token& staleToken,
                                           const Token& freshToken, Millis lease, Millis retention) {
    return claim(id, fp, freshToken, &staleToken, lease, retention);
}

Result<BeginOutcome> MemoryStore::claim(const RecordId& id, const Fingerprint& fp, const Token& token,
                                        const Token* staleToken, Millis lease, Millis retention) {
    if (auto err = checkId(id)) return std::unexpected(std::move(*err));
    Shard& shard = shardFor(id);
    // Destroyed after the lock is released (declared before it): reclaimed records, a replaced response.
    Shard::Garbage garbage;
    std::shared_ptr<const StoredResponse> replaced;
    std::shared_ptr<const StoredResponse> replay;
    BeginOutcome outcome;

    for (int attempt = 0;; ++attempt) {
        std::unique_lock lock(shard.mu);
        const TimePoint now = clock_->now();
        const TimePoint leaseUntil = now + lease;
        const TimePoint expiresAt = std::max(now + retention, leaseUntil);
        auto it = shard.records.find(id);

        if (it != shard.records.end() && it->second.expiresAt > now) {
            // Live record, in Store.h's precedence.
            Shard::Record& rec = it->second;
            if (rec.fp != fp) {
                outcome = Mismatch{};
            } else if (rec.state == State::Completed) {
                replay = rec.response;  // the deep copy into Done happens after unlocking
            } else if (rec.token == token) {
                outcome = Owned{token, rec.fence};
            } else if (rec.leaseUntil > now) {
                outcome = InProgress{leaseLeft(rec.leaseUntil, now)};
            } else if (staleToken && rec.token == *staleToken) {
                rec.token = token;
                ++rec.fence;
                rec.leaseUntil = leaseUntil;
                shard.setExpiry(it, expiresAt, now);
                outcome = Owned{token, rec.fence};
            } else {
                outcome = Abandoned{rec.token};
            }
            break;
        }

        if (it != shard.records.end()) {
            // Expired but not reaped: absent. Reuse the slot; the cap count does not change.
            Shard::Record& rec = it->second;
            replaced = std::move(rec.response);
            rec.state = State::InFlight;
            rec.token = token;
            rec.fp = fp;
            rec.fence = 1;
            rec.leaseUntil = leaseUntil;
            shard.setExpiry(it, expiresAt, now);
            outcome = Owned{token, rec.fence};
            break;
        }

        if (!reserveSlot()) {
            const std::size_t reclaimed = shard.removeExpired(now, std::numeric_limits<std::size_t>::max(), garbage);
            count_.fetch_sub(reclaimed, std::memory_order_acq_rel);
            if (!reserveSlot()) {
                if (attempt == 0) {
                    // Expired records may sit in other shards: reclaim a bounded batch, then look again
                    // (another thread may have created this key meanwhile).
                    lock.unlock();
                    garbage.clear();
                    (void)purgeExpired(kCapReclaimBatch);
                    continue;
                }
                return std::unexpected(StoreError{
                    StoreError::Kind::Full, "memory store is at its cap of " + std::to_string(config_.maxRecords) +
                                                " records; no expired record to reclaim"});
            }
        }
        const auto ins = shard.records.try_emplace(id).first;
        Shard::Record& rec = ins->second;
        rec.state = State::InFlight;
        rec.token = token;
        rec.fp = fp;
        rec.fence = 1;
        rec.leaseUntil = leaseUntil;
        shard.index(ins, expiresAt, now);
        outcome = Owned{token, rec.fence};
        break;
    }

    if (replay) return Done{*replay};
    return outcome;
}

Result<CompleteOutcome> MemoryStore::complete(const RecordId& id, const Token& token, const StoredResponse& response,
                                              Millis retention) {
    if (auto err = checkId(id)) return std::unexpected(std::move(*err));
    const std::size_t size = storedSize(response);
    if (size > limits_.maxResponseBytes)
        return std::unexpected(tooLarge("response of " + std::to_string(size) + " bytes exceeds the limit of " +
                                        std::to_string(limits_.maxResponseBytes)));
    // Copied before locking; if unused (fenced, repeat) it is freed after unlocking.
    auto stored = std::make_shared<const StoredResponse>(response);
    Shard& shard = shardFor(id);
    std::lock_guard lock(shard.mu);
    const TimePoint now = clock_->now();
    const auto it = shard.findLive(id, now);
    if (it == shard.records.end() || it->second.token != token) return CompleteOutcome::Fenced;
    Shard::Record& rec = it->second;
    if (rec.state == State::Completed) return CompleteOutcome::Ok;  // idempotent repeat: unchanged
    rec.state = State::Completed;
    rec.response = std::move(stored);
    shard.setExpiry(it, now + retention, now);
    return CompleteOutcome::Ok;
}

Result<bool> MemoryStore::release(const RecordId& id, const Token& token) {
    if (auto err = checkId(id)) return std::unexpected(std::move(*err));
    Shard& shard = shardFor(id);
    Shard::Garbage garbage;
    std::lock_guard lock(shard.mu);
    const auto it = shard.findLive(id, clock_->now());
    if (it == shard.records.end() || it->second.state != State::InFlight || it->second.token != token) return false;
    shard.remove(it, garbage);
    count_.fetch_sub(1, std::memory_order_acq_rel);
    return true;
}

Result<bool> MemoryStore::extend(const RecordId& id, const Token& token, Millis lease) {
    if (auto err = checkId(id)) return std::unexpected(std::move(*err));
    Shard& shard = shardFor(id);
    std::lock_guard lock(shard.mu);
    const TimePoint now = clock_->now();
    const auto it = shard.findLive(id, now);
    if (it == shard.records.end() || it->second.state != State::InFlight || it->second.token != token) return false;
    Shard::Record& rec = it->second;
    rec.leaseUntil = now + lease;
    if (rec.leaseUntil > rec.expiresAt) shard.setExpiry(it, rec.leaseUntil, now);
    return true;
}

std::size_t MemoryStore::purgeShard(Shard& shard, std::size_t max) {
    Shard::Garbage garbage;  // destroyed after the lock below is released
    std::lock_guard lock(shard.mu);
    const std::size_t removed = shard.removeExpired(clock_->now(), max, garbage);
    count_.fetch_sub(removed, std::memory_order_acq_rel);
    return removed;
}

Result<std::size_t> MemoryStore::purgeExpired(std::size_t batch) {
    // Start at a rotating shard so that small batches do not always favour the first shards.
    const std::size_t n = shards_.size();
    const std::size_t start = purgeCursor_.fetch_add(1, std::memory_order_relaxed) % n;
    std::size_t removed = 0;
    for (std::size_t i = 0; i < n && removed < batch; ++i) removed += purgeShard(*shards_[(start + i) % n], batch - removed);
    return removed;
}

Result<void> MemoryStore::ping() { return {}; }

std::string MemoryStore::name() const { return "memory"; }

std::size_t MemoryStore::size() const { return count_.load(std::memory_order_acquire); }

Store::Stats MemoryStore::stats() const {
    Stats s;
    s.reapedRecords = sweptRecords_.load(std::memory_order_relaxed);
    s.reapPasses = sweepPasses_.load(std::memory_order_relaxed);
    s.records = size();
    return s;
}

void MemoryStore::sweepLoop() {
    std::unique_lock lock(sweepMu_);
    while (!stopping_.load()) {
        if (sweepCv_.wait_for(lock, config_.sweepInterval, [this] { return stopping_.load(); })) break;
        lock.unlock();
        std::uint64_t removed = 0;
        for (auto& shard : shards_) {
            // Bounded batches: the shard's lock is released between them.
            for (;;) {
                if (stopping_.load()) break;
                const auto n = purgeShard(*shard, kSweepBatch);
                removed += n;
                if (n != kSweepBatch) break;
            }
            if (stopping_.load()) break;
        }
        sweptRecords_.fetch_add(removed, std::memory_order_relaxed);
        sweepPasses_.fetch_add(1, std::memory_order_relaxed);
        lock.lock();
    }
}

}  // namespace idem::storage
