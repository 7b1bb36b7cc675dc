#pragma once
// The PostgreSQL store (STORE-DESIGN.md §3 and its amendment): one table keyed by the record id, each
// decision one autocommitted statement under READ COMMITTED, arbitrated by the primary key and the row
// lock; leases and expiry judged by the server's now().
//
// Contract: exactly Store.h. begin is one INSERT ... ON CONFLICT DO UPDATE ... WHERE expired, plus a
// follow-up SELECT when no row comes back (loops, bounded, if the record vanished between the two).
// takeover, complete, release and extend are compare-and-sets on the token. Oversize ids and responses
// fail with TooLarge before any I/O. A background reaper (PostgresStoreConfig::reapInterval, 0 = off)
// deletes expired rows in batches, one instance at a time (session advisory lock held during a pass),
// and logs one line per pass that deleted something to stderr.
//
// Thread-safety: the store is safe for concurrent use; it owns a bounded pool of connections
// (PostgresStoreConfig::poolSize) that reconnects by itself when the database comes back.

#include "storage/Store.h"
#include "storage/StoreConfig.h"

#include <cstdint>
#include <memory>
#include <utility>

namespace idem::storage {

/// The schema version this build creates and expects (idemgate_schema_version.version).
inline constexpr int kPostgresSchemaVersion = 1;

/// Builds the store. Runs migratePostgres first when config.migrateOnStart is set. Throws
/// std::invalid_argument for a bad table name and std::runtime_error when the migration fails; without
/// migration it does not connect at construction (the pool connects lazily, so a store built while the
/// database is down answers Unavailable and recovers by itself).
std::unique_ptr<Store> makePostgresStore(const PostgresStoreConfig& config, StoreLimits limits);

/// Creates or upgrades the table named by config.table (and idemgate_schema_version, in the same
/// schema), in one transaction holding pg_advisory_xact_lock, so concurrent callers (several instances
/// starting at once) are safe and a second run changes nothing. Throws std::invalid_argument for a bad
/// table name and std::runtime_error on any failure, or when the database's schema is newer than this
/// build. Used by `idemgate migrate` and by makePostgresStore when migrateOnStart is set.
void migratePostgres(const PostgresStoreConfig& config);

/// The session advisory lock (two-int4 key space: class, hash of the table name) the reaper of
/// `table` holds during a pass, so an operator can find it in pg_locks (classid, objid) and a test can
/// hold it to keep the reaper out.
std::pair<std::int32_t, std::int32_t> postgresReaperLock(const std::string& table);

}  // namespace idem::storage
