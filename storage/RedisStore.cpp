#include "storage/RedisStore.h"

#include "storage/RecordCodec.h"
#include "storage/RedisClusterRouter.h"
#include "storage/RedisDispatcher.h"

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <iostream>
#include <stdexcept>
#include <variant>

namespace idem::storage {
namespace {

// ---- Lua scripts -------------------------------------------------------------------------------------
// KEYS[1] is the record. Every script reads before it writes, so an error (OOM under noeviction) can only
// come from the first write and leaves no partial record. `now` is Redis TIME in ms; Lua numbers are
// doubles, exact for ms since the epoch, and Redis renders integral ones without exponent.

// Shared by begin and takeover: judge an existing record for `token` (the amendment's precedence), or
// create it when absent.
constexpr std::string_view kPrelude = R"lua(
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function read(key)
  return redis.call('HMGET', key, 'st', 'fp', 'tok', 'fence', 'lease', 'code', 'hdr', 'hasbody', 'body')
end
local function create(key, now, token, fp, lease_ms, retention_ms)
  -- The key is absent (read() found no state), so the fence of the new record is 1.
  redis.call('HSET', key, 'st', 'P', 'tok', token, 'fp', fp, 'lease', now + lease_ms, 'fence', 1)
  redis.call('PEXPIRE', key, retention_ms)
  return {'OWNED', 1}
end
-- Redis TIME is read only where a lease is judged: a replay (the common case of an existing record)
-- costs one redis.call.
local function judge(r, token, fp)
  if r[2] ~= fp then return {'MISMATCH'} end
  if r[1] == 'C' then return {'DONE', r[6], r[7], r[8], r[9]} end
  if r[3] == token then return {'OWNED', tonumber(r[4])} end
  local now = now_ms()
  local lease = tonumber(r[5]) or 0
  if lease > now then return {'BUSY', lease - now} end
  return {'ABANDONED', r[3]}
end
)lua";

// ARGV: token, fp, lease_ms, retention_ms
constexpr std::string_view kBeginBody = R"lua(
local r = read(KEYS[1])
if not r[1] then return create(KEYS[1], now_ms(), ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])) end
return judge(r, ARGV[1], ARGV[2])
)lua";

// ARGV: stale token, fresh token, fp, lease_ms, retention_ms
constexpr std::string_view kTakeoverBody = R"lua(
local r = read(KEYS[1])
if not r[1] then return create(KEYS[1], now_ms(), ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])) end
if r[1] == 'P' and r[2] == ARGV[3] and r[3] == ARGV[1] then
  local now = now_ms()
  if (tonumber(r[5]) or 0) <= now then
    redis.call('HSET', KEYS[1], 'tok', ARGV[2], 'lease', now + tonumber(ARGV[4]))
    local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {'OWNED', fence}
  end
end
return judge(r, ARGV[2], ARGV[3])
)lua";

// ARGV: token, code, hdr, hasbody, body, final_ms. 0: fenced (missing or not ours); 1: written or repeat.
constexpr std::string_view kComplete = R"lua(
local r = redis.call('HMGET', KEYS[1], 'st', 'tok')
if r[2] ~= ARGV[1] then return 0 end
if r[1] == 'C' then return 1 end
redis.call('HSET', KEYS[1], 'st', 'C', 'code', ARGV[2], 'hdr', ARGV[3], 'hasbody', ARGV[4], 'body', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
)lua";

// ARGV: token. Deletes only an in-flight record owned by token.
constexpr std::string_view kRelease = R"lua(
local r = redis.call('HMGET', KEYS[1], 'st', 'tok')
if r[1] == 'P' and r[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
)lua";

// ARGV: token, lease_ms. Moves the lease of an in-flight record owned by token; the record itself is kept
// at least as long as the new lease, so that a live lease never vanishes with its record.
constexpr std::string_view kExtend = R"lua(
local r = redis.call('HMGET', KEYS[1], 'st', 'tok')
if r[1] ~= 'P' or r[2] ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'lease', now + lease_ms)
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 and pttl < lease_ms then redis.call('PEXPIRE', KEYS[1], lease_ms) end
return 1
)lua";

std::string sha1Hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr) != 1)
        throw std::runtime_error("redis store: SHA1 of a Lua script failed (OpenSSL)");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(kHex[digest[i] >> 4]);
        out.push_back(kHex[digest[i] & 0xf]);
    }
    return out;
}

/// A script and its SHA1, computed once.
struct Script {
    explicit Script(std::string text) : source(std::move(text)), sha(sha1Hex(source)) {}
    std::string source;
    std::string sha;
};

StoreError corrupt(const std::string& what) {
    return StoreError{StoreError::Kind::Corrupt, "redis: unexpected script reply: " + what};
}

std::string ms(Millis d) { return std::to_string(std::max<Millis::rep>(d.count(), 1)); }

bool toInt(const std::string& s, long long& out) {
    return std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc{} && !s.empty();
}

/// A completed record from its code, hdr, hasbody and body fields (the begin script's DONE reply, or the
/// replay read's HMGET).
Result<BeginOutcome> decodeDone(const RedisReply& codeField, const RedisReply& hdr, const RedisReply& hasBody,
                                const RedisReply& body) {
    long long code = 0;
    if (!codeField.isString() || !toInt(codeField.str(), code) || !hdr.isString() || !hasBody.isString())
        return std::unexpected(corrupt("completed record lacks status or headers"));
    Done done;
    done.response.status = static_cast<int>(code);
    if (auto ok = decodeResponseMeta(hdr.str(), done.response); !ok) return std::unexpected(ok.error());
    if (hasBody.str() == "1") {
        if (!body.isString()) return std::unexpected(corrupt("completed record lacks its body"));
        done.response.body = body.str();
    } else if (hasBody.str() != "0") {
        return std::unexpected(corrupt("completed record has a bad body flag"));
    }
    return done;
}

Result<BeginOutcome> decodeBegin(const RedisReply& reply, const Token& token) {
    if (!reply.isArray() || reply.array().empty() || !reply.array()[0].isString())
        return std::unexpected(corrupt("begin: not a tagged array"));
    const auto& a = reply.array();
    const auto& tag = a[0].str();
    if (tag == "OWNED" && a.size() == 2 && a[1].isInteger()) return Owned{token, a[1].integer()};
    if (tag == "BUSY" && a.size() == 2 && a[1].isInteger())
        return InProgress{Millis(std::max<std::int64_t>(a[1].integer(), 1))};
    if (tag == "MISMATCH") return Mismatch{};
    if (tag == "ABANDONED" && a.size() == 2 && a[1].isString()) return Abandoned{a[1].str()};
    if (tag == "DONE" && a.size() == 5) return decodeDone(a[1], a[2], a[3], a[4]);
    return std::unexpected(corrupt("begin: unknown outcome '" + tag + "'"));
}

class RedisStore final : public Store {
public:
    RedisStore(std::unique_ptr<RedisDispatcher> dispatcher, const RedisStoreConfig& config, StoreLimits limits,
               std::string name)
        : dispatcher_(std::move(dispatcher)),
          prefix_(config.keyPrefix),
          limits_(limits),
          name_(std::move(name)),
          begin_(std::string(kPrelude) + std::string(kBeginBody)),
          takeover_(std::string(kPrelude) + std::string(kTakeoverBody)),
          complete_(std::string(kComplete)),
          release_(std::string(kRelease)),
          extend_(std::string(kExtend)),
          replayRead_(config.replayRead) {
        checkEvictionPolicy(config.requireNoEviction);
    }

    Result<BeginOutcome> begin(const RecordId& id, const Fingerprint& fp, const Token& token, Millis lease,
                               Millis retention) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        if (readFirst()) {
            auto settled = readSettled(id, fp);
            if (!settled) return std::unexpected(settled.error());
            if (*settled) {
                noteBegin(true);
                return std::move(**settled);
            }
        }
        const auto leaseMs = ms(lease), retentionMs = ms(retention);
        auto reply = eval(begin_, id, {token, fp, leaseMs, retentionMs});
        if (!reply) return std::unexpected(reply.error());
        auto outcome = decodeBegin(*reply, token);
        noteBegin(outcome && std::holds_alternative<Done>(*outcome));
        return outcome;
    }

    Result<BeginOutcome> takeover(const RecordId& id, const Fingerprint& fp, const Token& staleToken,
                                  const Token& freshToken, Millis lease, Millis retention) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        const auto leaseMs = ms(lease), retentionMs = ms(retention);
        auto reply = eval(takeover_, id, {staleToken, freshToken, fp, leaseMs, retentionMs});
        if (!reply) return std::unexpected(reply.error());
        return decodeBegin(*reply, freshToken);
    }

    Result<CompleteOutcome> complete(const RecordId& id, const Token& token, const StoredResponse& response,
                                     Millis retention) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        if (storedSize(response) > limits_.maxResponseBytes)
            return std::unexpected(StoreError{StoreError::Kind::TooLarge,
                                              "response of " + std::to_string(storedSize(response)) +
                                                  " bytes exceeds the store limit of " +
                                                  std::to_string(limits_.maxResponseBytes)});
        const auto code = std::to_string(response.status);
        const auto meta = encodeResponseMeta(response);
        const std::string_view hasBody = response.body ? "1" : "0";
        const std::string_view body = response.body ? std::string_view(*response.body) : std::string_view();
        const auto retentionMs = ms(retention);
        auto reply = eval(complete_, id, {token, code, meta, hasBody, body, retentionMs});
        if (!reply) return std::unexpected(reply.error());
        if (!reply->isInteger()) return std::unexpected(corrupt("complete: not an integer"));
        return reply->integer() == 1 ? CompleteOutcome::Ok : CompleteOutcome::Fenced;
    }

    Result<bool> release(const RecordId& id, const Token& token) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        auto reply = eval(release_, id, {token});
        if (!reply) return std::unexpected(reply.error());
        if (!reply->isInteger()) return std::unexpected(corrupt("release: not an integer"));
        return reply->integer() == 1;
    }

    Result<bool> extend(const RecordId& id, const Token& token, Millis lease) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        const auto leaseMs = ms(lease);
        auto reply = eval(extend_, id, {token, leaseMs});
        if (!reply) return std::unexpected(reply.error());
        if (!reply->isInteger()) return std::unexpected(corrupt("extend: not an integer"));
        return reply->integer() == 1;
    }

    Result<std::size_t> purgeExpired(std::size_t) override { return 0; }

    Result<void> ping() override {
        auto replies = dispatcher_->executeOnMasters({"PING"});
        if (!replies) return std::unexpected(replies.error());
        for (const auto& [node, reply] : *replies) {
            if (!reply) return std::unexpected(reply.error());
            if (reply->isError()) return std::unexpected(mapErrorReply(reply->errorText()));
            if (reply->text() != "PONG")
                return std::unexpected(StoreError{StoreError::Kind::Unavailable,
                                                  "redis " + node.str() + " answered PING with '" + reply->text() +
                                                      "'"});
        }
        return {};
    }

    std::string name() const override { return name_; }

private:
    std::optional<StoreError> checkId(const RecordId& id) const {
        if (id.size() > kMaxRecordIdBytes)
            return StoreError{StoreError::Kind::TooLarge, "record id of " + std::to_string(id.size()) +
                                                              " bytes exceeds " + std::to_string(kMaxRecordIdBytes)};
        return std::nullopt;
    }

    std::string keyOf(const RecordId& id) const { return prefix_ + "{" + id + "}"; }

    // ---- replay read (RedisStoreConfig::replayRead) ----
    // A completed record never changes until it expires (complete repeats change nothing; takeover and
    // release touch only in-flight records), and Done and Mismatch are judged without a clock. So one
    // plain HMGET can settle a begin that finds a completed record, or any record under another
    // fingerprint, at the moment Redis runs it; everything else (absent, in flight under this
    // fingerprint) goes to the begin script, which judges it atomically as before.

    /// Done or Mismatch when the record settles this begin; nullopt when the begin script must decide.
    Result<std::optional<BeginOutcome>> readSettled(const RecordId& id, const Fingerprint& fp) {
        const auto key = keyOf(id);
        RedisCommand cmd;
        cmd.argv = {"HMGET", key, "st", "fp", "code", "hdr", "hasbody", "body"};
        auto reply = dispatcher_->execute(key, cmd);
        if (!reply) return std::unexpected(reply.error());
        if (!reply->isArray() || reply->array().size() != 6)
            return std::unexpected(corrupt("replay read: HMGET answered " + reply->text()));
        const auto& a = reply->array();
        if (a[0].isNil()) return std::nullopt;  // absent (or expired): the script creates it
        if (!a[0].isString() || !a[1].isString())
            return std::unexpected(corrupt("replay read: record lacks its state or fingerprint"));
        if (a[1].str() != fp) return std::optional<BeginOutcome>(Mismatch{});
        if (a[0].str() != "C") return std::nullopt;  // in flight: the lease is judged by the script
        auto done = decodeDone(a[2], a[3], a[4], a[5]);
        if (!done) return std::unexpected(done.error());
        return std::optional<BeginOutcome>(std::move(*done));
    }

    bool readFirst() const {
        using R = RedisStoreConfig::ReplayRead;
        return replayRead_ == R::Always ||
               (replayRead_ == R::Auto && doneShare_.load(std::memory_order_relaxed) >= kDoneShareOne / 2);
    }

    /// Auto mode's estimate: the share of recent begins that found a completed record, an exponentially
    /// weighted average over about the last 64 (in 1/65536). Racy by design (relaxed load and store): it
    /// picks a read path, never an outcome.
    void noteBegin(bool done) {
        if (replayRead_ != RedisStoreConfig::ReplayRead::Auto) return;
        const auto s = doneShare_.load(std::memory_order_relaxed);
        doneShare_.store(s - (s >> 6) + (done ? (kDoneShareOne >> 6) : 0), std::memory_order_relaxed);
    }

    /// EVALSHA sha 1 key args..., with EVAL src 1 key args... as the NOSCRIPT fallback: one round trip
    /// unless the node lost its script cache (restart, failover, SCRIPT FLUSH).
    Result<RedisReply> eval(const Script& script, const RecordId& id, std::initializer_list<std::string_view> args) {
        const auto key = keyOf(id);
        RedisCommand cmd;
        cmd.argv.reserve(args.size() + 4);
        cmd.onNoScript.reserve(args.size() + 4);
        cmd.argv.insert(cmd.argv.end(), {"EVALSHA", script.sha, "1", key});
        cmd.onNoScript.insert(cmd.onNoScript.end(), {"EVAL", script.source, "1", key});
        cmd.argv.insert(cmd.argv.end(), args);
        cmd.onNoScript.insert(cmd.onNoScript.end(), args);
        return dispatcher_->execute(key, cmd);
    }

    void checkEvictionPolicy(bool requireNoEviction) {
        const std::string risk =
            "in-flight idempotency locks can be evicted silently under memory pressure, and a retry would then "
            "execute the request twice (duplicate payments). Set maxmemory-policy noeviction.";
        std::vector<std::string> problems;
        bool fatal = false;
        auto replies = dispatcher_->executeOnMasters({"CONFIG", "GET", "maxmemory-policy"});
        if (!replies) {
            problems.push_back("cannot check maxmemory-policy (" + replies.error().message + ")");
        } else {
            for (const auto& [node, reply] : *replies) {
                if (!reply) {
                    problems.push_back("cannot check maxmemory-policy of " + node.str() + " (" +
                                       reply.error().message + ")");
                } else if (!reply->isArray() || reply->array().size() != 2 || !reply->array()[1].isString()) {
                    problems.push_back("cannot read maxmemory-policy of " + node.str() + " (" + reply->text() +
                                       ")");
                } else if (const auto& policy = reply->array()[1].str(); policy != "noeviction") {
                    problems.push_back("redis " + node.str() + " has maxmemory-policy " + policy + ": " + risk);
                    fatal = true;
                }
            }
        }
        if (problems.empty()) return;
        std::string all;
        for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
        if (requireNoEviction)
            throw std::runtime_error(name_ + " store: " + all +
                                     (fatal ? "" : " (require_noeviction needs the policy to be verifiable)"));
        std::cerr << "idemgate: warning: " << name_ << " store: " << all << std::endl;
    }

    std::unique_ptr<RedisDispatcher> dispatcher_;
    const std::string prefix_;
    const StoreLimits limits_;
    const std::string name_;
    const Script begin_, takeover_, complete_, release_, extend_;
    static constexpr std::uint32_t kDoneShareOne = 65536;
    const RedisStoreConfig::ReplayRead replayRead_;
    std::atomic<std::uint32_t> doneShare_{0};
};

}  // namespace

std::unique_ptr<Store> makeRedisStoreWith(std::unique_ptr<RedisDispatcher> dispatcher,
                                          const RedisStoreConfig& config, StoreLimits limits, std::string name) {
    return std::make_unique<RedisStore>(std::move(dispatcher), config, limits, std::move(name));
}

std::unique_ptr<Store> makeRedisStore(const RedisStoreConfig& config, StoreLimits limits) {
    return makeRedisStoreWith(std::make_unique<RedisStandaloneDispatcher>(config), config, limits, "redis");
}

std::unique_ptr<Store> makeRedisClusterStore(const RedisStoreConfig& config, StoreLimits limits) {
    if (config.nodes.empty()) throw std::runtime_error("redis-cluster store: no seed nodes configured");
    return makeRedisStoreWith(std::make_unique<RedisClusterRouter>(config), config, limits, "redis-cluster");
}

}  // namespace idem::storage
