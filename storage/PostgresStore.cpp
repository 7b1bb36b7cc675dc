#include "storage/PostgresStore.h"

#include "storage/PgConnection.h"
#include "storage/PgMultiplexer.h"
#include "storage/RecordCodec.h"

#include <algorithm>
#include <cassert>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace idem::storage {
namespace {

// pg_advisory_xact_lock key serialising every idemgate migration in a database ("idemgate" in ASCII).
constexpr std::int64_t kMigrationLockKey = 0x6964656d67617465;
// Reaper lock: the two-int4 advisory key space (distinct from the bigint one): a class constant ("idmr")
// and a hash of the table name, so one reaper runs per table across all instances.
constexpr std::int32_t kReaperLockClass = 0x69646d72;

// A begin whose INSERT changed nothing and whose SELECT found nothing raced an expiry or a delete
// between the two statements; each retry makes progress unless the key is being hammered. Eight rounds
// are far more than any observed interleaving needs.
constexpr int kBeginAttempts = 8;

// Migrations and DDL may wait behind another instance's migration or a long-running query on the table.
constexpr Millis kMigrationStatementTimeout{120'000};

bool isIdentifier(std::string_view s) {
    if (s.empty() || s.size() > 48) return false;  // 48 + "_expires_at_idx" stays within NAMEDATALEN-1 (63)
    if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z'))) return false;
    for (char ch : s)
        if (!(ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) return false;
    return true;
}

/// The table's name split into an optional schema and the bare name, validated: lowercase SQL
/// identifiers only, so quoting them can never change their meaning.
struct TableName {
    std::string schema;  // empty: the search_path decides
    std::string name;

    static TableName parse(const std::string& full) {
        TableName t;
        const auto dot = full.find('.');
        if (dot == std::string::npos) {
            t.name = full;
        } else {
            t.schema = full.substr(0, dot);
            t.name = full.substr(dot + 1);
        }
        if ((dot != std::string::npos && !isIdentifier(t.schema)) || !isIdentifier(t.name))
            throw std::invalid_argument("postgres table name '" + full +
                                        "' is not [schema.]name with lowercase letters, digits and _ (at most 48 each)");
        return t;
    }
    std::string qualify(std::string_view bare) const {
        std::string q;
        if (!schema.empty()) q = "\"" + schema + "\".";
        return q + "\"" + std::string(bare) + "\"";
    }
    std::string table() const { return qualify(name); }
    std::string versionTable() const { return qualify("idemgate_schema_version"); }
    std::string full() const { return schema.empty() ? name : schema + "." + name; }
};

std::int32_t tableHash(const std::string& s) {
    std::uint32_t h = 2166136261u;  // FNV-1a
    for (unsigned char ch : s) h = (h ^ ch) * 16777619u;
    return static_cast<std::int32_t>(h);
}

/// Migration N (1-based) is kMigrations[N-1]: statements applied in order, in one transaction.
std::vector<std::vector<std::string>> migrations(const TableName& t) {
    const std::string tbl = t.table();
    return {
        {
            // id: the record address (hex SHA-256 of the scope). state: 0 in flight, 1 done.
            // lease_until: the in-flight owner's lease (NULL once done). expires_at: the record's own
            // retention, from begin and then from complete. resp_meta: RecordCodec blob (headers and
            // settlement). resp_body NULL = no body, which differs from an empty one.
            // fillfactor 80 leaves room on each page for the begin -> complete update to stay HOT.
            "CREATE TABLE IF NOT EXISTS " + tbl +
                " ("
                "id text PRIMARY KEY CHECK (octet_length(id) <= 255), "
                "fingerprint text NOT NULL, "
                "state smallint NOT NULL CHECK (state IN (0, 1)), "
                "token text NOT NULL, "
                "fence bigint NOT NULL DEFAULT 1, "
                "lease_until timestamptz, "
                "status_code smallint, "
                "resp_meta bytea, "
                "resp_body bytea, "
                "created_at timestamptz NOT NULL DEFAULT now(), "
                "expires_at timestamptz NOT NULL"
                ") WITH (fillfactor = 80)",
            "CREATE INDEX IF NOT EXISTS \"" + t.name + "_expires_at_idx\" ON " + tbl + " (expires_at)",
        },
    };
}

std::vector<PgStatement> statements(const TableName& t) {
    const std::string tbl = t.table();
    using T = PgType;
    return {
        {"begin",
         "INSERT INTO " + tbl +
             " AS r (id, fingerprint, state, token, fence, lease_until, created_at, expires_at) "
             "VALUES ($1, $2, 0, $3, 1, now() + $4 * interval '1 millisecond', now(), "
             "now() + $5 * interval '1 millisecond') "
             "ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 0, token = EXCLUDED.token, "
             "fence = r.fence + 1, lease_until = EXCLUDED.lease_until, created_at = EXCLUDED.created_at, "
             "expires_at = EXCLUDED.expires_at, status_code = NULL, resp_meta = NULL, resp_body = NULL "
             "WHERE r.expires_at <= now() "
             "RETURNING fence",
         {T::Text, T::Text, T::Text, T::Int8, T::Int8}},
        {"lookup",
         "SELECT state, fingerprint = $2, token = $3, fence, token, status_code, resp_meta, resp_body, "
         "lease_until > now(), lease_until - now() FROM " +
             tbl + " WHERE id = $1 AND expires_at > now()",
         {T::Text, T::Text, T::Text}},
        {"takeover",
         "UPDATE " + tbl +
             " SET token = $4, fence = fence + 1, lease_until = now() + $5 * interval '1 millisecond', "
             "expires_at = now() + $6 * interval '1 millisecond' "
             "WHERE id = $1 AND state = 0 AND token = $3 AND fingerprint = $2 AND lease_until <= now() "
             "AND expires_at > now() RETURNING fence",
         {T::Text, T::Text, T::Text, T::Text, T::Int8, T::Int8}},
        {"complete",
         "UPDATE " + tbl +
             " SET state = 1, status_code = $3, resp_meta = $4, resp_body = $5, lease_until = NULL, "
             "expires_at = now() + $6 * interval '1 millisecond' "
             "WHERE id = $1 AND token = $2 AND state = 0 AND expires_at > now()",
         {T::Text, T::Text, T::Int2, T::Bytea, T::Bytea, T::Int8}},
        {"completed_by",
         "SELECT 1 FROM " + tbl + " WHERE id = $1 AND token = $2 AND state = 1 AND expires_at > now()",
         {T::Text, T::Text}},
        {"release", "DELETE FROM " + tbl + " WHERE id = $1 AND token = $2 AND state = 0 AND expires_at > now()",
         {T::Text, T::Text}},
        {"extend",
         "UPDATE " + tbl +
             " SET lease_until = now() + $3 * interval '1 millisecond' "
             "WHERE id = $1 AND token = $2 AND state = 0 AND expires_at > now()",
         {T::Text, T::Text, T::Int8}},
        {"purge",
         "WITH b AS (SELECT ctid FROM " + tbl +
             " WHERE expires_at < now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
             "DELETE FROM " +
             tbl + " r USING b WHERE r.ctid = b.ctid",
         {T::Int8}},
        {"ping", "SELECT 1", {}},
        {"reap_lock", "SELECT pg_try_advisory_lock($1, $2)", {T::Int4, T::Int4}},
        {"reap_unlock", "SELECT pg_advisory_unlock($1, $2)", {T::Int4, T::Int4}},
    };
}

PgConnectOptions connectOptions(const PostgresStoreConfig& c) {
    PgConnectOptions o;
    o.url = c.url;
    o.password = c.password;
    o.connectTimeout = c.connectTimeout;
    o.statementTimeout = c.statementTimeout;
    return o;
}

StoreError tooLarge(std::string msg) { return StoreError{StoreError::Kind::TooLarge, std::move(msg)}; }

std::int64_t ms(Millis d) { return d.count(); }

/// The Store over one table (see PostgresStore.h). Every call takes a pooled connection for its one or
/// two statements; the optional reaper thread shares the pool. Thread-safe.
class PostgresStore final : public Store {
public:
    PostgresStore(const PostgresStoreConfig& config, StoreLimits limits, const TableName& table)
        : limits_(limits),
          table_(table.full()),
          pool_(connectOptions(config), statements(table), config.poolSize, config.poolWaitTimeout),
          mux_(config.pipelineConnections > 0
                   ? std::make_unique<PgMultiplexer>(connectOptions(config), statements(table), config.pipelineConnections)
                   : nullptr),
          poolWait_(config.poolWaitTimeout),
          reapInterval_(config.reapInterval),
          reapBatch_(std::max<std::size_t>(1, config.reapBatch)),
          reaperKey_(tableHash(table.full())) {
        if (reapInterval_.count() > 0) reaper_ = std::thread([this] { reapLoop(); });
    }

    ~PostgresStore() override {
        {
            std::lock_guard g(reapMu_);
            stop_ = true;
        }
        reapCv_.notify_all();
        if (reaper_.joinable()) reaper_.join();
    }

    Result<BeginOutcome> begin(const RecordId& id, const Fingerprint& fp, const Token& token, Millis lease,
                               Millis retention) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        return beginChecked(id, fp, token, lease, retention);
    }

    Result<BeginOutcome> takeover(const RecordId& id, const Fingerprint& fp, const Token& staleToken,
                                  const Token& freshToken, Millis lease, Millis retention) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        const PgParam p[] = {PgParam::text(id),         PgParam::text(fp),         PgParam::text(staleToken),
                             PgParam::text(freshToken), PgParam::int8(ms(lease)), PgParam::int8(ms(retention))};
        auto r = exec("takeover", p);
        if (!r) return std::unexpected(r.error());
        if (r->rows() == 1) {
            auto fence = r->int8(0, 0);
            if (!fence) return std::unexpected(fence.error());
            return Owned{freshToken, *fence};
        }
        return beginChecked(id, fp, freshToken, lease, retention);
    }

    Result<CompleteOutcome> complete(const RecordId& id, const Token& token, const StoredResponse& response,
                                     Millis retention) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        const auto size = storedSize(response);
        if (size > limits_.maxResponseBytes)
            return std::unexpected(tooLarge("response of " + std::to_string(size) + " bytes exceeds the limit of " +
                                            std::to_string(limits_.maxResponseBytes)));
        if (response.status < 0 || response.status > std::numeric_limits<std::int16_t>::max())
            return std::unexpected(tooLarge("status code " + std::to_string(response.status) + " out of range"));
        const std::string meta = encodeResponseMeta(response);
        const PgParam p[] = {PgParam::text(id),
                             PgParam::text(token),
                             PgParam::int2(static_cast<std::int16_t>(response.status)),
                             PgParam::bytea(meta),
                             response.body ? PgParam::bytea(*response.body) : PgParam::null(),
                             PgParam::int8(ms(retention))};
        auto r = exec("complete", p);
        if (!r) return std::unexpected(r.error());
        if (r->affectedRows() == 1) return CompleteOutcome::Ok;
        // Not in flight under this token: a repeat by the owner after completion is Ok (and changes
        // nothing); anything else (missing, expired, taken over) is Fenced.
        const PgParam q[] = {PgParam::text(id), PgParam::text(token)};
        auto done = exec("completed_by", q);
        if (!done) return std::unexpected(done.error());
        return done->rows() == 1 ? CompleteOutcome::Ok : CompleteOutcome::Fenced;
    }

    Result<bool> release(const RecordId& id, const Token& token) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        const PgParam p[] = {PgParam::text(id), PgParam::text(token)};
        auto r = exec("release", p);
        if (!r) return std::unexpected(r.error());
        return r->affectedRows() == 1;
    }

    Result<bool> extend(const RecordId& id, const Token& token, Millis lease) override {
        if (auto e = checkId(id)) return std::unexpected(*e);
        const PgParam p[] = {PgParam::text(id), PgParam::text(token), PgParam::int8(ms(lease))};
        auto r = exec("extend", p);
        if (!r) return std::unexpected(r.error());
        return r->affectedRows() == 1;
    }

    Result<std::size_t> purgeExpired(std::size_t batch) override {
        if (batch == 0) return std::size_t{0};
        const PgParam p[] = {PgParam::int8(static_cast<std::int64_t>(
            std::min<std::size_t>(batch, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))))};
        auto r = pool_.execPrepared("purge", p);
        if (!r) return std::unexpected(r.error());
        return r->affectedRows();
    }

    Result<void> ping() override {
        auto r = exec("ping", {});  // the path the record statements take
        if (!r) return std::unexpected(r.error());
        return {};
    }

    std::string name() const override { return "postgres"; }

private:
    static std::optional<StoreError> checkId(const RecordId& id) {
        if (id.size() > kMaxRecordIdBytes)
            return tooLarge("record id of " + std::to_string(id.size()) + " bytes exceeds " +
                            std::to_string(kMaxRecordIdBytes));
        return std::nullopt;
    }

    Result<BeginOutcome> beginChecked(const RecordId& id, const Fingerprint& fp, const Token& token, Millis lease,
                                      Millis retention) {
        const PgParam ins[] = {PgParam::text(id), PgParam::text(fp), PgParam::text(token), PgParam::int8(ms(lease)),
                               PgParam::int8(ms(retention))};
        const PgParam sel[] = {PgParam::text(id), PgParam::text(fp), PgParam::text(token)};
        for (int attempt = 0; attempt < kBeginAttempts; ++attempt) {
            auto r = exec("begin", ins);
            if (!r) return std::unexpected(r.error());
            if (r->rows() == 1) {
                auto fence = r->int8(0, 0);
                if (!fence) return std::unexpected(fence.error());
                return Owned{token, *fence};
            }
            // The row exists and is live (ON CONFLICT ... WHERE refused the update). Read it; if it is
            // gone by now (expired, released or purged in between), go round again.
            auto s = exec("lookup", sel);
            if (!s) return std::unexpected(s.error());
            if (s->rows() == 1) return classify(*s, token);
        }
        return std::unexpected(StoreError{StoreError::Kind::Unavailable,
                                          "postgres begin: record " + id + " kept changing under " +
                                              std::to_string(kBeginAttempts) + " attempts"});
    }

    /// A record statement: on the pipelined connections when there are any, else on a pooled one. Each is
    /// its own transaction either way, so consecutive ones need not share a connection.
    Result<PgResult> exec(const std::string& name, std::span<const PgParam> params) {
        // Every record statement takes the record id as $1: the one row it touches (ping touches none).
        if (mux_)
            return mux_->execPrepared(
                name, params, params.empty() ? std::string_view() : std::string_view(params[0].data(), params[0].length()),
                PgMultiplexer::Clock::now() + poolWait_);
        return pool_.execPrepared(name, params);
    }

    /// Store.h precedence: Mismatch, Done, own token (Owned, no fence bump), live lease, Abandoned.
    Result<BeginOutcome> classify(const PgResult& s, const Token& token) const {
        auto state = s.int2(0, 0);
        if (!state) return std::unexpected(state.error());
        auto sameFp = s.boolean(0, 1);
        if (!sameFp) return std::unexpected(sameFp.error());
        if (!*sameFp) return Mismatch{};
        if (*state == 1) {
            Done d;
            auto status = s.int2(0, 5);
            if (!status) return std::unexpected(status.error());
            d.response.status = *status;
            if (s.isNull(0, 6))
                return std::unexpected(StoreError{StoreError::Kind::Corrupt, "postgres record done without meta"});
            if (auto m = decodeResponseMeta(s.bytes(0, 6), d.response); !m) return std::unexpected(m.error());
            if (!s.isNull(0, 7)) d.response.body = std::string(s.bytes(0, 7));
            return d;
        }
        auto own = s.boolean(0, 2);
        if (!own) return std::unexpected(own.error());
        if (*own) {
            auto fence = s.int8(0, 3);
            if (!fence) return std::unexpected(fence.error());
            return Owned{token, *fence};
        }
        if (!s.isNull(0, 8)) {
            auto live = s.boolean(0, 8);
            if (!live) return std::unexpected(live.error());
            if (*live) {
                auto left = s.intervalMs(0, 9);
                if (!left) return std::unexpected(left.error());
                return InProgress{Millis{std::max<std::int64_t>(1, *left)}};
            }
        }
        return Abandoned{Token(s.bytes(0, 4))};
    }

    // ---- reaper ----

    void reapLoop() {
        std::unique_lock lk(reapMu_);
        while (!stop_) {
            if (reapCv_.wait_for(lk, reapInterval_, [this] { return stop_; })) break;
            lk.unlock();
            reapPass();
            lk.lock();
        }
    }

    bool stopping() {
        std::lock_guard g(reapMu_);
        return stop_;
    }

    Stats stats() const override {
        Stats s;
        s.reapedRecords = reapedRecords_.load(std::memory_order_relaxed);
        s.reapPasses = reapPasses_.load(std::memory_order_relaxed);
        s.reapFailures = reapFailures_.load(std::memory_order_relaxed);
        return s;
    }

    void reapFailed(const StoreError& e) {
        reapFailures_.fetch_add(1, std::memory_order_relaxed);
        // One line per streak of failures, not one per pass while the database is down.
        if (!reapFailing_) std::fprintf(stderr, "idemgate: postgres reaper on %s: %s\n", table_.c_str(), e.message.c_str());
        reapFailing_ = true;
    }

    void reapPass() {
        auto lease = pool_.acquire();
        if (!lease) return reapFailed(lease.error());
        const PgParam key[] = {PgParam::int4(kReaperLockClass), PgParam::int4(reaperKey_)};
        auto locked = (*lease)->execPrepared("reap_lock", key);
        if (!locked) return reapFailed(locked.error());
        auto got = locked->boolean(0, 0);
        if (!got) return reapFailed(got.error());
        if (!*got) return;  // another instance is reaping this table

        std::size_t total = 0, batches = 0;
        std::optional<StoreError> failure;
        const PgParam batch[] = {PgParam::int8(static_cast<std::int64_t>(reapBatch_))};
        while (!stopping()) {
            auto r = (*lease)->execPrepared("purge", batch);
            if (!r) {
                failure = r.error();
                break;
            }
            const auto n = r->affectedRows();
            total += n;
            ++batches;
            if (n < reapBatch_) break;
        }
        auto unlocked = (*lease)->execPrepared("reap_unlock", key);
        if (!unlocked) (*lease)->markBroken();  // closing the session is what releases its lock then
        reapPasses_.fetch_add(1, std::memory_order_relaxed);
        reapedRecords_.fetch_add(total, std::memory_order_relaxed);
        if (total > 0)
            std::fprintf(stderr, "idemgate: postgres reaper removed %zu expired records from %s in %zu batch%s\n", total,
                         table_.c_str(), batches, batches == 1 ? "" : "es");
        if (failure) return reapFailed(*failure);
        reapFailing_ = false;
    }

    const StoreLimits limits_;
    const std::string table_;
    std::atomic<std::uint64_t> reapedRecords_{0};
    std::atomic<std::uint64_t> reapPasses_{0};
    std::atomic<std::uint64_t> reapFailures_{0};
    PgPool pool_;                         // the reaper, and every statement when pipeline_connections is 0
    std::unique_ptr<PgMultiplexer> mux_;  // record statements; null when pipeline_connections is 0
    const Millis poolWait_;
    const Millis reapInterval_;
    const std::size_t reapBatch_;
    const std::int32_t reaperKey_;
    std::mutex reapMu_;
    std::condition_variable reapCv_;
    bool stop_ = false;
    bool reapFailing_ = false;  // reaper thread only
    std::thread reaper_;        // last: started once everything above is built
};

void execOrThrow(PgConnection& c, const std::string& sql, std::span<const PgParam> params = {}) {
    auto r = c.exec(sql, params);
    if (!r) throw std::runtime_error("postgres migration failed: " + r.error().message);
}

}  // namespace

void migratePostgres(const PostgresStoreConfig& config) {
    const TableName t = TableName::parse(config.table);
    PgConnectOptions o = connectOptions(config);
    o.statementTimeout = std::max(o.statementTimeout, kMigrationStatementTimeout);
    auto conn = PgConnection::connect(o, {});
    if (!conn) throw std::runtime_error("postgres migration: cannot connect: " + conn.error().message);
    PgConnection& c = **conn;

    execOrThrow(c, "BEGIN");
    const PgParam lockKey[] = {PgParam::int8(kMigrationLockKey)};
    execOrThrow(c, "SELECT pg_advisory_xact_lock($1::bigint)", lockKey);
    execOrThrow(c, "CREATE TABLE IF NOT EXISTS " + t.versionTable() +
                       " (table_name text PRIMARY KEY, version integer NOT NULL, "
                       "applied_at timestamptz NOT NULL DEFAULT now())");
    const std::string fullName = t.full();
    const PgParam name[] = {PgParam::text(fullName)};
    auto cur = c.exec("SELECT version FROM " + t.versionTable() + " WHERE table_name = $1::text", name);
    if (!cur) throw std::runtime_error("postgres migration failed: " + cur.error().message);
    int version = 0;
    if (cur->rows() == 1) {
        auto v = cur->int4(0, 0);
        if (!v) throw std::runtime_error("postgres migration failed: " + v.error().message);
        version = *v;
    }
    const auto steps = migrations(t);
    assert(steps.size() == static_cast<std::size_t>(kPostgresSchemaVersion));
    if (version > static_cast<int>(steps.size()))
        throw std::runtime_error("postgres table " + fullName + " is at schema version " + std::to_string(version) +
                                 ", newer than this idemgate's " + std::to_string(steps.size()));
    for (auto i = static_cast<std::size_t>(version); i < steps.size(); ++i)
        for (const auto& sql : steps[i]) execOrThrow(c, sql);
    if (version < static_cast<int>(steps.size())) {
        const PgParam row[] = {PgParam::text(fullName), PgParam::int4(static_cast<std::int32_t>(steps.size()))};
        execOrThrow(c,
                    "INSERT INTO " + t.versionTable() +
                        " (table_name, version) VALUES ($1::text, $2::integer) "
                        "ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version, applied_at = now()",
                    row);
    }
    execOrThrow(c, "COMMIT");
}

std::pair<std::int32_t, std::int32_t> postgresReaperLock(const std::string& table) {
    return {kReaperLockClass, tableHash(TableName::parse(table).full())};
}

std::unique_ptr<Store> makePostgresStore(const PostgresStoreConfig& config, StoreLimits limits) {
    const TableName t = TableName::parse(config.table);
    if (config.migrateOnStart) migratePostgres(config);
    return std::make_unique<PostgresStore>(config, limits, t);
}

}  // namespace idem::storage
