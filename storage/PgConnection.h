#pragma once
// libpq plumbing for the PostgreSQL store: one connection (PgConnection), its results (PgResult), binary
// parameters (PgParam) and a bounded pool (PgPool).
//
// Contract:
// - Every statement goes out with binary parameters (paramFormats=1, explicit lengths: bytea with NULs is
//   safe) and asks for binary results (resultFormat=1); PgResult decodes int2/int4/int8/bool/uuid/bytea/
//   text and interval in network byte order.
// - Each call is bounded on the client side too (statement timeout plus a margin), so a silent network
//   cannot hang a caller: past the deadline the call fails with StoreError::Kind::Timeout.
// - SQLSTATEs and connection failures become a StoreError in one place (PgConnection.cpp, `pgError`).
//   A connection that failed at the connection level (lost, admin shutdown, client timeout, read-only
//   standby) is marked broken; the pool drops it and connects afresh on next use, re-preparing every
//   statement. Nothing is ever resent automatically: the caller decides (our statements are idempotent
//   per token, so a resend with the same token is safe).
//
// Thread-safety: a PgConnection and a PgResult belong to one thread at a time. PgPool is safe for
// concurrent use; a PgPool::Lease must not outlive its pool.
//
// libpq-fe.h is included only by the .cpp files: this header forward-declares the C types.

#include "storage/Store.h"

#include <array>
#include <chrono>
#include "gateway/io/Fiber.h"

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace idem::storage {

/// Type OIDs of the parameters we send (pg_type.oid, stable across PostgreSQL versions).
enum class PgType : unsigned {
    Bool = 16,
    Bytea = 17,
    Int8 = 20,
    Int2 = 21,
    Int4 = 23,
    Text = 25,
    Uuid = 2950,
};

/// A statement prepared on every (re)connection under `name`.
struct PgStatement {
    std::string name;
    std::string sql;
    std::vector<PgType> paramTypes;
};

/// One binary parameter. Text and bytea are views: the bytes must outlive the call that sends them.
/// Integers are kept inline in network byte order.
class PgParam {
public:
    static PgParam text(std::string_view s) { return PgParam(s); }
    static PgParam bytea(std::string_view b) { return PgParam(b); }
    static PgParam int2(std::int16_t v);
    static PgParam int4(std::int32_t v);
    static PgParam int8(std::int64_t v);
    static PgParam boolean(bool v);
    static PgParam null() {
        PgParam p{std::string_view{}};
        p.null_ = true;
        return p;
    }

    const char* data() const { return null_ ? nullptr : inline_ ? buf_.data() : view_.data(); }
    int length() const { return null_ ? 0 : inline_ ? static_cast<int>(inlineLen_) : static_cast<int>(view_.size()); }

private:
    explicit PgParam(std::string_view v) : view_(v) {}
    static PgParam fromBigEndian(std::uint64_t v, unsigned bytes);

    std::string_view view_;
    std::array<char, 8> buf_{};
    unsigned char inlineLen_ = 0;
    bool inline_ = false;
    bool null_ = false;
};

/// RAII owner of a PGresult that completed successfully, with binary decoders. Decoders check the
/// value's length and nullness and report a malformed value as StoreError::Kind::Corrupt.
class PgResult {
public:
    PgResult() = default;
    explicit PgResult(pg_result* r) : r_(r) {}
    PgResult(PgResult&&) noexcept;
    PgResult& operator=(PgResult&&) noexcept;
    PgResult(const PgResult&) = delete;
    PgResult& operator=(const PgResult&) = delete;
    ~PgResult();

    int rows() const;
    int columns() const;
    /// Rows touched by an INSERT/UPDATE/DELETE (PQcmdTuples), 0 for other commands.
    std::size_t affectedRows() const;
    bool isNull(int row, int col) const;

    /// Raw bytes of a binary bytea/text value (empty for NULL: check isNull first).
    std::string_view bytes(int row, int col) const;
    Result<std::int16_t> int2(int row, int col) const;
    Result<std::int32_t> int4(int row, int col) const;
    Result<std::int64_t> int8(int row, int col) const;
    Result<bool> boolean(int row, int col) const;
    /// A uuid as 32 lowercase hex characters.
    Result<std::string> uuid(int row, int col) const;
    /// An interval in whole milliseconds, rounded up (months count as 30 days, as PostgreSQL does).
    Result<std::int64_t> intervalMs(int row, int col) const;

private:
    Result<std::string_view> fixed(int row, int col, std::size_t len, const char* type) const;
    pg_result* r_ = nullptr;
};

/// One statement of a pipeline: a statement prepared at connect time and its parameters (which must stay
/// valid until the pipeline returns).
struct PgCall {
    const std::string* name;
    std::span<const PgParam> params;
    std::string_view lockKey;  ///< the row the statement touches (a batch runs in this order); may be empty
};

/// How to reach the database. `url` is a libpq URI or key=value string (multi-host allowed); its
/// parameters override our defaults (target_session_attrs=read-write, keepalives, application_name),
/// while `password`, when set, is passed as its own parameter and wins over the url.
struct PgConnectOptions {
    std::string url;
    std::string password;
    Millis connectTimeout{2000};    ///< per host; libpq counts whole seconds, at least 2
    Millis statementTimeout{2000};  ///< SET statement_timeout for the session; the client waits this + a margin
    std::string applicationName = "idemgate";
};

/// One libpq connection in non-blocking mode with its prepared statements.
class PgConnection {
public:
    /// Connects, sets statement_timeout and prepares `statements`. Errors: Unavailable (refused, auth,
    /// a missing table named by a statement, ...) or Timeout.
    static Result<std::unique_ptr<PgConnection>> connect(const PgConnectOptions& options,
                                                         std::span<const PgStatement> statements);
    ~PgConnection();
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;

    /// Runs a statement prepared at connect time.
    Result<PgResult> execPrepared(const std::string& name, std::span<const PgParam> params);
    /// Runs one SQL statement (no multi-statement strings) with binary parameters, types inferred
    /// by the server unless cast in the SQL.
    Result<PgResult> exec(const std::string& sql, std::span<const PgParam> params = {});

    /// Switches the connection into libpq pipeline mode, for pipeline() only (execPrepared and exec are
    /// then no longer allowed). Fails as Unavailable.
    Result<void> enterPipeline();
    /// In pipeline mode: runs every call (a statement prepared at connect time, touching at most one row)
    /// in one write and one transaction, sorted by lockKey so that concurrent batches never deadlock, and
    /// puts the results into `out`, one per call, in the calls' order. If a statement fails, the batch
    /// rolls back: that statement reports its error and every other one runs again in a transaction of its
    /// own, so one request's error never becomes another's. Each result is bounded by the statement
    /// timeout plus a margin from the previous one. A connection-level failure (lost, timed out, out of
    /// step) gives every call not yet answered that error and marks the connection broken.
    void pipeline(std::span<const PgCall> calls, std::vector<Result<PgResult>>& out);

    /// True once the connection failed in a way that forbids reuse; the pool then drops it.
    bool broken() const { return broken_; }
    /// Forbids reuse: the pool closes the connection when it comes back (e.g. a session-level lock
    /// could not be released, so closing it is the only way to release it).
    void markBroken() { broken_ = true; }
    /// Reads whatever the server sent while the connection sat idle; marks it broken if the server
    /// closed it (restart, admin shutdown, idle timeout). Never blocks.
    bool checkIdle();

private:
    PgConnection(pg_conn* c, Millis statementTimeout);
    enum class Send { Prepared, Sql };
    Result<PgResult> run(Send kind, const std::string& what, std::span<const PgParam> params);
    Result<void> send(Send kind, const std::string& what, std::span<const PgParam> params, const std::string& label);
    Result<void> flush(std::chrono::steady_clock::time_point deadline, const std::string& label);
    /// pipeline() in one round trip: each call in its own transaction (retry null), or all in one
    /// (retry set: then (*retry)[i] says that call i did not take effect, rolled back or aborted with the
    /// batch, and must run again).
    void pipelineRun(std::span<const PgCall> calls, std::vector<Result<PgResult>>& out, std::vector<char>* retry);
    Result<PgResult> awaitResult(std::chrono::steady_clock::time_point deadline, const std::string& what);
    /// Reads until PQgetResult would not block. A timeout ("no reply within" replyBound()) or a failed read
    /// leaves the connection broken and is the error.
    Result<void> awaitInput(std::chrono::steady_clock::time_point deadline, const std::string& what);
    /// How long a statement's reply may take: statement_timeout plus the client's margin.
    Millis replyBound() const;
    Result<void> prepare(const PgStatement& st);

    pg_conn* c_ = nullptr;
    /// Tags the socket's registrations in the loops' epoll sets (io::waitFd with an owner): the socket
    /// stays registered between round trips, which then cost no epoll_ctl.
    std::uint64_t owner_ = io::newFdOwner();
    Millis statementTimeout_;
    bool broken_ = false;
    bool pipelined_ = false;
    std::vector<std::size_t> order_;  // pipeline(): reused across batches
    std::vector<PgCall> sorted_;
};

/// A bounded pool of lazily opened connections. A caller waits at most `waitTimeout` for a free slot
/// (then Unavailable). Broken connections are dropped when returned; idle ones are checked before
/// reuse, so the pool heals by itself once the database is back.
class PgPool {
public:
    class Lease {
    public:
        Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) { o.pool_ = nullptr; }
        Lease& operator=(Lease&&) = delete;
        ~Lease();
        PgConnection& operator*() const { return *conn_; }
        PgConnection* operator->() const { return conn_.get(); }

    private:
        friend class PgPool;
        Lease(PgPool* pool, std::unique_ptr<PgConnection> c) : pool_(pool), conn_(std::move(c)) {}
        PgPool* pool_;
        std::unique_ptr<PgConnection> conn_;
    };

    PgPool(PgConnectOptions options, std::vector<PgStatement> statements, std::size_t size, Millis waitTimeout);
    PgPool(const PgPool&) = delete;
    PgPool& operator=(const PgPool&) = delete;

    Result<Lease> acquire();

    /// Acquire, run a prepared statement, give the connection back.
    Result<PgResult> execPrepared(const std::string& name, std::span<const PgParam> params);

private:
    void giveBack(std::unique_ptr<PgConnection> c);

    const PgConnectOptions options_;
    const std::vector<PgStatement> statements_;
    const std::size_t size_;
    const Millis waitTimeout_;
    std::mutex mu_;
    io::CondVar freed_;  ///< fibers and threads wait here for a connection
    std::vector<std::unique_ptr<PgConnection>> idle_;
    std::size_t open_ = 0;  ///< connections in use, idle, or being opened
};

}  // namespace idem::storage
