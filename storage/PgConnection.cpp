#include "storage/PgConnection.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

#include "gateway/io/Fiber.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace idem::storage {
namespace {

using Clock = std::chrono::steady_clock;

StoreError unavailable(std::string msg) { return StoreError{StoreError::Kind::Unavailable, std::move(msg)}; }

std::string trimmed(const char* s) {
    std::string out = s ? s : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    for (auto& ch : out)
        if (ch == '\n' || ch == '\t') ch = ' ';
    return out;
}

/// The one place where libpq failures become StoreErrors. `poison` says whether the connection must be
/// dropped: it is set for anything at the connection level, where reusing it could only fail again
/// (or, for a read-only standby, claim nothing: the next connect finds the primary through
/// target_session_attrs=read-write).
struct PgFailure {
    StoreError error;
    bool poison = false;
};

PgFailure pgError(pg_conn* conn, const pg_result* res, const std::string& what) {
    const std::string prefix = "postgres " + what + ": ";
    if (PQstatus(conn) != CONNECTION_OK)
        return {unavailable(prefix + "connection lost: " + trimmed(PQerrorMessage(conn))), true};
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = res ? trimmed(PQresultErrorMessage(res)) : "";
    if (msg.empty()) msg = trimmed(PQerrorMessage(conn));
    const std::string_view sqlstate = state ? state : "";
    const std::string text = prefix + msg + (sqlstate.empty() ? "" : " [" + std::string(sqlstate) + "]");
    if (sqlstate == "57014")  // query_canceled: our statement_timeout fired; the outcome is unknown
        return {StoreError{StoreError::Kind::Timeout, text}, false};
    if (sqlstate.starts_with("08") || sqlstate.starts_with("57P"))  // connection exception, admin shutdown
        return {unavailable(text), true};
    if (sqlstate == "25006")  // read_only_sql_transaction: a hot standby (or a demoted primary)
        return {unavailable(text), true};
    if (sqlstate.starts_with("53"))  // insufficient resources: disk full, out of memory, too many connections
        return {unavailable(text), false};
    if (sqlstate.empty())  // no server error at all: a protocol or client-side failure
        return {unavailable(text), true};
    return {unavailable(text), false};
}

/// Waits until the socket is readable (or writable too, when `write`), or the deadline passes.
/// Returns false on timeout.
bool waitSocket(int fd, std::uint64_t owner, bool write, Clock::time_point deadline, std::string& err) {
    for (;;) {
        if (deadline <= Clock::now()) return false;
        // io::waitFd: on a fiber the loop runs other requests meanwhile (gateway/io/Fiber.h).
        const int n = io::waitFd(fd, static_cast<short>(POLLIN | (write ? POLLOUT : 0)), deadline, owner);
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) {
            err = std::strerror(errno);
            return true;  // let libpq discover the failure on the socket
        }
    }
}

Millis clientMargin(Millis statementTimeout) {
    // The server cancels at statement_timeout and reports 57014; the client gives up a little later,
    // only when the network itself went silent (a partition, a stopped server).
    return Millis{500} + statementTimeout / 4;
}

}  // namespace

// ---- PgParam ----

PgParam PgParam::fromBigEndian(std::uint64_t v, unsigned bytes) {
    PgParam p{std::string_view{}};
    p.inline_ = true;
    p.inlineLen_ = static_cast<unsigned char>(bytes);
    for (unsigned i = 0; i < bytes; ++i) p.buf_[i] = static_cast<char>((v >> (8 * (bytes - 1 - i))) & 0xff);
    return p;
}
PgParam PgParam::int2(std::int16_t v) { return fromBigEndian(static_cast<std::uint16_t>(v), 2); }
PgParam PgParam::int4(std::int32_t v) { return fromBigEndian(static_cast<std::uint32_t>(v), 4); }
PgParam PgParam::int8(std::int64_t v) { return fromBigEndian(static_cast<std::uint64_t>(v), 8); }
PgParam PgParam::boolean(bool v) { return fromBigEndian(v ? 1 : 0, 1); }

// ---- PgResult ----

namespace {
/// Applies `f` to a decoded field, passing an error through (std::expected::transform is C++23 library
/// support that GCC 12 lacks).
template <class F>
auto decoded(Result<std::string_view> field, F f) -> Result<decltype(f(std::string_view{}))> {
    if (!field) return std::unexpected(field.error());
    return f(*field);
}

std::uint64_t readBigEndian(std::string_view b) {
    std::uint64_t v = 0;
    for (char ch : b) v = (v << 8) | static_cast<unsigned char>(ch);
    return v;
}
}  // namespace

PgResult::PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
PgResult& PgResult::operator=(PgResult&& o) noexcept {
    if (this != &o) {
        if (r_) PQclear(r_);
        r_ = o.r_;
        o.r_ = nullptr;
    }
    return *this;
}
PgResult::~PgResult() {
    if (r_) PQclear(r_);
}

int PgResult::rows() const { return r_ ? PQntuples(r_) : 0; }
int PgResult::columns() const { return r_ ? PQnfields(r_) : 0; }

std::size_t PgResult::affectedRows() const {
    if (!r_) return 0;
    const char* s = PQcmdTuples(r_);
    std::size_t n = 0;
    if (s) std::from_chars(s, s + std::strlen(s), n);
    return n;
}

bool PgResult::isNull(int row, int col) const { return !r_ || PQgetisnull(r_, row, col) != 0; }

std::string_view PgResult::bytes(int row, int col) const {
    if (isNull(row, col)) return {};
    return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
}

Result<std::string_view> PgResult::fixed(int row, int col, std::size_t len, const char* type) const {
    if (!r_ || row >= rows() || col >= columns())
        return std::unexpected(StoreError{StoreError::Kind::Corrupt, "postgres result has no such field"});
    if (isNull(row, col))
        return std::unexpected(
            StoreError{StoreError::Kind::Corrupt, std::string("postgres returned NULL for a ") + type + " column"});
    auto b = bytes(row, col);
    if (b.size() != len)
        return std::unexpected(StoreError{StoreError::Kind::Corrupt,
                                          std::string("postgres returned a malformed binary ") + type + " value"});
    return b;
}

Result<std::int16_t> PgResult::int2(int row, int col) const {
    return decoded(fixed(row, col, 2, "int2"), [](std::string_view b) {
        return static_cast<std::int16_t>(static_cast<std::uint16_t>(readBigEndian(b)));
    });
}
Result<std::int32_t> PgResult::int4(int row, int col) const {
    return decoded(fixed(row, col, 4, "int4"), [](std::string_view b) {
        return static_cast<std::int32_t>(static_cast<std::uint32_t>(readBigEndian(b)));
    });
}
Result<std::int64_t> PgResult::int8(int row, int col) const {
    return decoded(fixed(row, col, 8, "int8"), [](std::string_view b) {
        return static_cast<std::int64_t>(readBigEndian(b));
    });
}
Result<bool> PgResult::boolean(int row, int col) const {
    return decoded(fixed(row, col, 1, "bool"), [](std::string_view b) { return b[0] != 0; });
}
Result<std::string> PgResult::uuid(int row, int col) const {
    return decoded(fixed(row, col, 16, "uuid"), [](std::string_view b) {
        static constexpr char kHex[] = "0123456789abcdef";
        std::string out;
        out.reserve(32);
        for (char ch : b) {
            const auto u = static_cast<unsigned char>(ch);
            out.push_back(kHex[u >> 4]);
            out.push_back(kHex[u & 0xf]);
        }
        return out;
    });
}
Result<std::int64_t> PgResult::intervalMs(int row, int col) const {
    // Binary interval: int64 microseconds, int32 days, int32 months.
    return decoded(fixed(row, col, 16, "interval"), [](std::string_view b) {
        constexpr std::int64_t kDayUs = 86'400'000'000;
        const auto us = static_cast<std::int64_t>(readBigEndian(b.substr(0, 8)));
        const auto days = static_cast<std::int32_t>(static_cast<std::uint32_t>(readBigEndian(b.substr(8, 4))));
        const auto months = static_cast<std::int32_t>(static_cast<std::uint32_t>(readBigEndian(b.substr(12, 4))));
        const std::int64_t total = us + days * kDayUs + std::int64_t{months} * 30 * kDayUs;
        return total >= 0 ? (total + 999) / 1000 : -((-total) / 1000);
    });
}

// ---- PgConnection ----

PgConnection::PgConnection(pg_conn* c, Millis statementTimeout) : c_(c), statementTimeout_(statementTimeout) {}

PgConnection::~PgConnection() {
    if (c_) PQfinish(c_);
}

Result<std::unique_ptr<PgConnection>> PgConnection::connect(const PgConnectOptions& o,
                                                            std::span<const PgStatement> statements) {
    const auto secs = std::max<long long>(1, (o.connectTimeout.count() + 999) / 1000);
    const std::string connectTimeout = std::to_string(secs);
    // Defaults first: the url (expanded from `dbname`) may override them. The password comes last, so a
    // secret resolved from the environment or a file wins over anything in the url.
    std::vector<const char*> keys{"connect_timeout", "keepalives",       "keepalives_idle", "keepalives_interval",
                                  "keepalives_count", "application_name", "client_encoding", "target_session_attrs",
                                  "dbname"};
    std::vector<const char*> values{connectTimeout.c_str(), "1",    "30",         "10", "3",
                                    o.applicationName.c_str(), "UTF8", "read-write", o.url.c_str()};
    if (!o.password.empty()) {
        keys.push_back("password");
        values.push_back(o.password.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);

    // Connected step by step (PQconnectPoll) through io::waitFd, so a fiber never blocks its loop on a slow
    // or unreachable server; the whole connect, every host tried included, is bounded by connect_timeout.
    pg_conn* raw = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/1);
    if (!raw) return std::unexpected(unavailable("postgres connect: out of memory"));
    std::unique_ptr<PgConnection> conn(new PgConnection(raw, o.statementTimeout));
    const auto deadline = Clock::now() + std::chrono::seconds(secs);
    PostgresPollingStatusType polling = PQstatus(raw) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (polling != PGRES_POLLING_OK && polling != PGRES_POLLING_FAILED) {
        const short events = polling == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (io::waitFd(PQsocket(raw), events, deadline) <= 0)
            return std::unexpected(unavailable("postgres connect: no answer within connect_timeout (" +
                                               std::to_string(secs) + "s)"));
        polling = PQconnectPoll(raw);
    }
    if (polling == PGRES_POLLING_FAILED || PQstatus(raw) != CONNECTION_OK)
        return std::unexpected(unavailable("postgres connect: " + trimmed(PQerrorMessage(raw))));
    PQsetNoticeProcessor(raw, [](void*, const char*) {}, nullptr);  // "already exists, skipping" etc.
    if (PQsetnonblocking(raw, 1) != 0)
        return std::unexpected(unavailable("postgres connect: " + trimmed(PQerrorMessage(raw))));

    if (o.statementTimeout.count() > 0) {
        auto r = conn->exec("SET statement_timeout = " + std::to_string(o.statementTimeout.count()));
        if (!r) return std::unexpected(r.error());
    }
    for (const auto& st : statements) {
        auto r = conn->prepare(st);
        if (!r) return std::unexpected(r.error());
    }
    return conn;
}

Result<void> PgConnection::prepare(const PgStatement& st) {
    std::vector<unsigned> types(st.paramTypes.size());
    std::transform(st.paramTypes.begin(), st.paramTypes.end(), types.begin(),
                   [](PgType t) { return static_cast<unsigned>(t); });
    if (!PQsendPrepare(c_, st.name.c_str(), st.sql.c_str(), static_cast<int>(types.size()), types.data())) {
        auto f = pgError(c_, nullptr, "prepare " + st.name);
        broken_ = broken_ || f.poison;
        return std::unexpected(f.error);
    }
    auto r = awaitResult(Clock::now() + replyBound(), "prepare " + st.name);
    if (!r) return std::unexpected(r.error());
    return {};
}

Result<PgResult> PgConnection::execPrepared(const std::string& name, std::span<const PgParam> params) {
    return run(Send::Prepared, name, params);
}

Result<PgResult> PgConnection::exec(const std::string& sql, std::span<const PgParam> params) {
    return run(Send::Sql, sql, params);
}

Result<PgResult> PgConnection::run(Send kind, const std::string& what, std::span<const PgParam> params) {
    const std::string label = kind == Send::Prepared ? what : "statement";
    if (broken_) return std::unexpected(unavailable("postgres " + label + ": connection is broken"));
    if (auto sent = send(kind, what, params, label); !sent) return std::unexpected(sent.error());
    const auto deadline = Clock::now() + replyBound();
    if (auto flushed = flush(deadline, label); !flushed) return std::unexpected(flushed.error());
    return awaitResult(deadline, label);
}

Result<void> PgConnection::send(Send kind, const std::string& what, std::span<const PgParam> params,
                                const std::string& label) {
    constexpr std::size_t kInline = 8;  // our statements have at most 6 parameters
    const char* valuesInline[kInline];
    int lengthsInline[kInline];
    static constexpr int kFormats[kInline] = {1, 1, 1, 1, 1, 1, 1, 1};
    std::vector<const char*> valuesHeap;
    std::vector<int> lengthsHeap, formatsHeap;
    const char** values = valuesInline;
    int* lengths = lengthsInline;
    const int* formats = kFormats;
    if (params.size() > kInline) {
        valuesHeap.resize(params.size());
        lengthsHeap.resize(params.size());
        formatsHeap.assign(params.size(), 1);
        values = valuesHeap.data();
        lengths = lengthsHeap.data();
        formats = formatsHeap.data();
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        values[i] = params[i].data();
        lengths[i] = params[i].length();
    }
    const int n = static_cast<int>(params.size());
    const int ok = kind == Send::Prepared
                       ? PQsendQueryPrepared(c_, what.c_str(), n, values, lengths, formats, 1)
                       : PQsendQueryParams(c_, what.c_str(), n, nullptr, values, lengths, formats, 1);
    if (!ok) {
        auto f = pgError(c_, nullptr, label);
        broken_ = broken_ || f.poison;
        return std::unexpected(f.error);
    }
    return {};
}

Result<void> PgConnection::flush(Clock::time_point deadline, const std::string& label) {
    // Non-blocking mode: push the whole request out (a large bytea may not fit the socket buffer).
    for (;;) {
        const int f = PQflush(c_);
        if (f == 0) return {};
        if (f < 0) {
            auto e = pgError(c_, nullptr, label);
            broken_ = true;
            return std::unexpected(e.error);
        }
        std::string err;
        if (!waitSocket(PQsocket(c_), owner_, true, deadline, err)) {
            broken_ = true;
            return std::unexpected(
                StoreError{StoreError::Kind::Timeout, "postgres " + label + ": timed out sending the request"});
        }
        if (!PQconsumeInput(c_)) {
            auto e = pgError(c_, nullptr, label);
            broken_ = true;
            return std::unexpected(e.error);
        }
    }
}

Result<void> PgConnection::enterPipeline() {
    if (PQenterPipelineMode(c_) != 1) {
        broken_ = true;
        return std::unexpected(unavailable("postgres: cannot enter pipeline mode: " + trimmed(PQerrorMessage(c_))));
    }
    pipelined_ = true;
    return {};
}

void PgConnection::pipeline(std::span<const PgCall> calls, std::vector<Result<PgResult>>& out) {
    out.clear();
    if (calls.empty()) return;
    if (calls.size() == 1) return pipelineRun(calls, out, nullptr);
    // One transaction for the batch: one Sync, so one write, one commit and one flush of the answers.
    // Every statement touches one row, and the batch is sent in the callers' lock-key order (PgCall),
    // so that two batches never wait for each other's rows in a cycle.
    order_.resize(calls.size());
    for (std::size_t i = 0; i < calls.size(); ++i) order_[i] = i;
    std::stable_sort(order_.begin(), order_.end(),
                     [&](std::size_t a, std::size_t b) { return calls[a].lockKey < calls[b].lockKey; });
    sorted_.clear();
    for (auto i : order_) sorted_.push_back(calls[i]);
    std::vector<Result<PgResult>> inOrder;
    std::vector<char> retry;
    pipelineRun(sorted_, inOrder, &retry);
    for (std::size_t i = 0; i < calls.size(); ++i) out.emplace_back(std::unexpected(StoreError{}));
    // A statement that failed rolls the whole batch back: it reports its own error, and every other one
    // (rolled back, or never run: PGRES_PIPELINE_ABORTED) runs again in a transaction of its own.
    std::vector<std::size_t> again;
    for (std::size_t k = 0; k < inOrder.size(); ++k) {
        auto& r = inOrder[k];
        if (retry[k]) again.push_back(order_[k]);
        else out[order_[k]] = std::move(r);
    }
    if (again.empty()) return;
    std::vector<PgCall> rerun;
    for (auto i : again) rerun.push_back(calls[i]);
    std::vector<Result<PgResult>> rerunOut;
    pipelineRun(rerun, rerunOut, nullptr);
    for (std::size_t k = 0; k < again.size(); ++k) out[again[k]] = std::move(rerunOut[k]);
}

void PgConnection::pipelineRun(std::span<const PgCall> calls, std::vector<Result<PgResult>>& out,
                               std::vector<char>* retry) {
    out.clear();
    const bool oneTransaction = retry != nullptr;
    if (retry) retry->assign(calls.size(), 0);
    // A connection-level failure: every call not yet answered gets the error. In one transaction, so
    // does every answered one: until its Sync is read, the batch's commit is not known to have happened.
    const auto failRest = [&](const StoreError& e) {
        broken_ = true;
        if (oneTransaction)
            for (auto& r : out) r = std::unexpected(e);
        while (out.size() < calls.size()) out.push_back(std::unexpected(e));
    };
    if (broken_ || !pipelined_) return failRest(unavailable("postgres pipeline: connection is broken"));
    const std::string label = calls.size() == 1 ? *calls[0].name : "pipeline of " + std::to_string(calls.size());
    for (const auto& call : calls) {
        if (auto sent = send(Send::Prepared, *call.name, call.params, *call.name); !sent) return failRest(sent.error());
        // Without oneTransaction each statement is its own implicit transaction (PQpipelineSync also
        // flushes: libpq 15 has no Sync without a flush).
        if (!oneTransaction && PQpipelineSync(c_) != 1) return failRest(pgError(c_, nullptr, label).error);
    }
    if (oneTransaction && PQpipelineSync(c_) != 1) return failRest(pgError(c_, nullptr, label).error);
    const auto bound = replyBound();
    if (auto flushed = flush(Clock::now() + bound, label); !flushed) return failRest(flushed.error());

    // Waits until PQgetResult would not block; false: the connection failed (out is completed).
    const auto ready = [&](Clock::time_point deadline, const std::string& what) {
        auto in = awaitInput(deadline, what);
        if (!in) failRest(in.error());
        return in.has_value();
    };
    // Reads the Sync that closes a transaction; false: the connection failed or is out of step, and
    // every call of that transaction (and every later one) has the error.
    const auto readSync = [&](Clock::time_point deadline, const std::string& what) {
        const std::size_t answered = out.size();
        const auto failTransaction = [&](const StoreError& e) {
            // Per statement, the last answered call is this Sync's transaction: its commit is unknown.
            if (!oneTransaction && answered > 0) out[answered - 1] = std::unexpected(e);
            failRest(e);
            return false;
        };
        if (auto in = awaitInput(deadline, what); !in) return failTransaction(in.error());
        pg_result* sync = PQgetResult(c_);
        const bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        if (sync) PQclear(sync);
        if (synced && PQstatus(c_) == CONNECTION_OK) return true;
        return failTransaction(pgError(c_, nullptr, what + " (pipeline out of step)").error);
    };
    bool batchFailed = false;
    for (const auto& call : calls) {
        // Each statement's deadline starts when the previous one answered: the server runs them in turn.
        const auto deadline = Clock::now() + bound;
        PgResult kept;
        pg_result* failed = nullptr;
        bool any = false, aborted = false;
        // The statement's results end with a null.
        for (int nulls = 0;;) {
            if (!ready(deadline, *call.name)) {
                if (failed) PQclear(failed);
                return;
            }
            pg_result* r = PQgetResult(c_);
            if (!r) {
                if (any) break;
                if (++nulls > 1 || PQstatus(c_) != CONNECTION_OK) {
                    failRest(pgError(c_, nullptr, *call.name).error);
                    return;
                }
                continue;  // a null before the first result ends the previous Sync's cycle
            }
            any = true;
            const auto st = PQresultStatus(r);
            if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                kept = PgResult(r);
            } else if (st == PGRES_PIPELINE_ABORTED) {
                aborted = true;
                PQclear(r);
            } else if (st == PGRES_PIPELINE_SYNC || failed) {
                PQclear(r);  // out of step (a Sync here) or a second failure: the first one is reported
            } else {
                failed = r;
            }
        }
        if (failed) {
            auto f = pgError(c_, failed, *call.name);
            PQclear(failed);
            broken_ = broken_ || f.poison;
            out.push_back(std::unexpected(f.error));
            batchFailed = true;
        } else if (aborted) {
            out.push_back(std::unexpected(unavailable("postgres " + *call.name + ": aborted with its batch")));
            (*retry)[out.size() - 1] = 1;  // only a one-transaction batch is ever aborted
        } else {
            out.push_back(std::move(kept));
        }
        if (!oneTransaction && !readSync(deadline, *call.name)) return;
    }
    if (oneTransaction && !readSync(Clock::now() + bound, label)) return;
    if (oneTransaction && batchFailed) {
        // Rolled back: what succeeded before the failure did not happen after all.
        for (std::size_t k = 0; k < out.size(); ++k)
            if (out[k]) (*retry)[k] = 1;
    }
}

Millis PgConnection::replyBound() const { return statementTimeout_ + clientMargin(statementTimeout_); }

Result<void> PgConnection::awaitInput(Clock::time_point deadline, const std::string& label) {
    while (PQisBusy(c_)) {
        std::string err;
        if (!waitSocket(PQsocket(c_), owner_, false, deadline, err)) {
            broken_ = true;  // a reply may still arrive: the connection is out of step
            return std::unexpected(StoreError{StoreError::Kind::Timeout, "postgres " + label + ": no reply within " +
                                                                             std::to_string(replyBound().count()) + " ms"});
        }
        if (!PQconsumeInput(c_)) {
            auto f = pgError(c_, nullptr, label);
            broken_ = true;
            return std::unexpected(f.error);
        }
    }
    return {};
}

Result<PgResult> PgConnection::awaitResult(Clock::time_point deadline, const std::string& label) {
    PgResult kept;
    pg_result* failed = nullptr;  // the first failed result, if any
    for (;;) {
        if (auto in = awaitInput(deadline, label); !in) {
            if (failed) PQclear(failed);
            return std::unexpected(in.error());
        }
        pg_result* r = PQgetResult(c_);
        if (!r) break;
        const auto st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            kept = PgResult(r);
        } else if (!failed) {
            failed = r;
        } else {
            PQclear(r);
        }
        if (PQstatus(c_) != CONNECTION_OK) break;
    }
    if (failed || PQstatus(c_) != CONNECTION_OK) {
        auto f = pgError(c_, failed, label);
        if (failed) PQclear(failed);
        broken_ = broken_ || f.poison || PQstatus(c_) != CONNECTION_OK;
        return std::unexpected(f.error);
    }
    if (PQtransactionStatus(c_) == PQTRANS_INERROR || PQtransactionStatus(c_) == PQTRANS_UNKNOWN) broken_ = true;
    return kept;
}

bool PgConnection::checkIdle() {
    if (broken_) return false;
    if (!PQconsumeInput(c_) || PQstatus(c_) != CONNECTION_OK) {
        broken_ = true;
        return false;
    }
    // A pooled connection is idle between statements: anything queued now (an error before closing)
    // means the server is getting rid of it.
    if (PQisBusy(c_) == 0) {
        if (pg_result* r = PQgetResult(c_)) {
            PQclear(r);
            broken_ = true;
            return false;
        }
    }
    // libpq may have taken the server's last words as a notice (pipeline mode does) without reading the
    // end of the stream yet: look for it, or for anything else unasked, without consuming it.
    char byte;
    const ssize_t n = ::recv(PQsocket(c_), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        broken_ = true;
        return false;
    }
    return true;
}

// ---- PgPool ----

PgPool::PgPool(PgConnectOptions options, std::vector<PgStatement> statements, std::size_t size, Millis waitTimeout)
    : options_(std::move(options)),
      statements_(std::move(statements)),
      size_(std::max<std::size_t>(1, size)),
      waitTimeout_(waitTimeout) {}

PgPool::Lease::~Lease() {
    if (pool_ && conn_) pool_->giveBack(std::move(conn_));
}

Result<PgPool::Lease> PgPool::acquire() {
    const auto deadline = Clock::now() + waitTimeout_;
    std::vector<std::unique_ptr<PgConnection>> dead;  // closed outside the lock
    std::unique_lock lk(mu_);
    for (;;) {
        while (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            if (c->checkIdle()) return Lease(this, std::move(c));
            --open_;
            dead.push_back(std::move(c));
        }
        if (open_ < size_) {
            ++open_;
            lk.unlock();
            dead.clear();
            auto c = PgConnection::connect(options_, statements_);
            if (!c) {
                {
                    std::lock_guard g(mu_);
                    --open_;
                }
                freed_.notify_one();
                return std::unexpected(c.error());
            }
            return Lease(this, std::move(*c));
        }
        if (freed_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= size_)
            return std::unexpected(unavailable("postgres pool: all " + std::to_string(size_) + " connections busy for " +
                                               std::to_string(waitTimeout_.count()) + " ms"));
    }
}

void PgPool::giveBack(std::unique_ptr<PgConnection> c) {
    {
        std::lock_guard g(mu_);
        if (c->broken()) {
            --open_;
        } else {
            idle_.push_back(std::move(c));
        }
    }
    freed_.notify_one();
    // A broken connection (if any) is closed here, outside the lock.
}

Result<PgResult> PgPool::execPrepared(const std::string& name, std::span<const PgParam> params) {
    auto lease = acquire();
    if (!lease) return std::unexpected(lease.error());
    return (*lease)->execPrepared(name, params);
}

}  // namespace idem::storage
