#pragma once
// MemoryStore: the embedded default store and the reference implementation of the Store contract
// (storage/Store.h; STORE-DESIGN §0, §4 and its amendment). Records live in this process only: they are
// lost on restart and not shared between gateway instances.
//
// Layout: config.shards independent shards, each a mutex + unordered_map keyed by RecordId plus an
// expiry index (lanes of records with the same lease or retention span, each ordered by expiresAt at
// O(1) per insert; see Shard::Lane). A record holds state (in flight / completed), token,
// fingerprint, fence, leaseUntil, expiresAt and, once completed, the StoredResponse.
//
// Contract specifics (everything else is Store.h):
//  - Every time is read from the injected Clock. A record whose expiresAt <= now is absent for every
//    call (lazy expiry), whether or not it was reaped yet; a lease is over when leaseUntil <= now.
//  - begin/takeover set leaseUntil = now + lease and expiresAt = now + retention (never before the lease
//    end: a record does not vanish under a live lease; extend moves expiresAt likewise if needed).
//    complete sets expiresAt = now + retention. The fence starts at 1 for every new record.
//  - Record ids over kMaxRecordIdBytes, and responses whose storedSize() exceeds
//    limits.maxResponseBytes (inclusive limit), fail with StoreError::Kind::TooLarge before anything else.
//  - Cap: at most config.maxRecords records are held (expired but unreaped ones count). begin/takeover
//    of a NEW key at the cap first reclaims expired records (its shard, then a bounded batch across all
//    shards) and, if still at the cap, fails with StoreError::Kind::Full. A live record is never evicted.
//  - A background sweeper thread calls purgeExpired in bounded batches per shard every
//    config.sweepInterval (<= 0 disables it; purgeExpired and the cap still reclaim). The destructor
//    stops it promptly.
//  - ping() is always ok; name() is "memory".
// Locks are held only for map work: response bodies are copied and freed outside them.
//
// Thread-safety: all members are safe for concurrent use from any number of threads.

#include "gateway/core/Clock.h"
#include "storage/Store.h"
#include "storage/StoreConfig.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace idem::storage {

class MemoryStore final : public Store {
public:
    /// Throws std::invalid_argument on a null clock, zero shards or a zero record cap.
    MemoryStore(MemoryStoreConfig config, StoreLimits limits, std::shared_ptr<const core::Clock> clock);
    ~MemoryStore() override;

    MemoryStore(const MemoryStore&) = delete;
    MemoryStore& operator=(const MemoryStore&) = delete;

    Result<BeginOutcome> begin(const RecordId& id, const Fingerprint& fp, const Token& token, Millis lease,
                               Millis retention) override;
    Result<BeginOutcome> takeover(const RecordId& id, const Fingerprint& fp, const Token& staleToken,
                                  const Token& freshToken, Millis lease, Millis retention) override;
    Result<CompleteOutcome> complete(const RecordId& id, const Token& token, const StoredResponse& response,
                                     Millis retention) override;
    Result<bool> release(const RecordId& id, const Token& token) override;
    Result<bool> extend(const RecordId& id, const Token& token, Millis lease) override;
    Result<std::size_t> purgeExpired(std::size_t batch) override;
    Stats stats() const override;
    Result<void> ping() override;
    std::string name() const override;

    /// Records held right now, expired but unreaped ones included: what the cap counts.
    std::size_t size() const;

private:
    struct Shard;

    Shard& shardFor(const RecordId& id);
    /// begin (staleToken == nullptr) or takeover (staleToken set) for `token`.
    Result<BeginOutcome> claim(const RecordId& id, const Fingerprint& fp, const Token& token,
                               const Token* staleToken, Millis lease, Millis retention);
    /// Takes one unit of the cap; false at the cap.
    bool reserveSlot();
    /// Removes up to `max` expired records of one shard; returns how many.
    std::size_t purgeShard(Shard& shard, std::size_t max);
    void sweepLoop();

    const MemoryStoreConfig config_;
    const StoreLimits limits_;
    const std::shared_ptr<const core::Clock> clock_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::atomic<std::size_t> count_{0};
    std::atomic<std::size_t> purgeCursor_{0};

    std::atomic<std::uint64_t> sweptRecords_{0};
    std::atomic<std::uint64_t> sweepPasses_{0};
    std::mutex sweepMu_;
    std::condition_variable sweepCv_;
    std::atomic<bool> stopping_{false};
    std::thread sweeper_;  // last: started once everything above exists
};

}  // namespace idem::storage
