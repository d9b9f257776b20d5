#include "pg_backend.h"

#include <chrono>
#include <thread>

#include "allocation_relay/config.h"
#include "pg_schema.h"
#include "pg_transaction.h"

namespace allocation_relay::postgresql {
namespace {

// A write that lost to a concurrent one (deadlock, serialization, a unique key taken meanwhile)
// runs again, up to this many times in all.
constexpr int kWriteRuns = 8;

}  // namespace

PgBackend::PgBackend(const StoreOptions& options) : c_(options.url) {}

int PgBackend::LatestSchemaVersion() { return static_cast<int>(std::size(schema::kMigrations)); }

int PgBackend::VersionOf(Connection& c) {
  if (c.Exec("SELECT to_regclass('store_schema') IS NULL").text(0, 0) == "t") return 0;
  return c.Exec("SELECT version FROM store_schema").i32(0, 0);
}

void PgBackend::Migrate(Connection& c) {
  // Session-level advisory lock: a second process waits here, then finds the work done.
  c.Exec("SELECT pg_advisory_lock(" + std::to_string(schema::kMigrationLock) + ")");
  try {
    const int version = VersionOf(c);
    if (version > LatestSchemaVersion()) {
      throw StoreError(StoreError::Kind::kUnavailable,
                       "database " + RedactUrlPassword(c.url()) + " has schema version " +
                           std::to_string(version) + ", newer than this build's " +
                           std::to_string(LatestSchemaVersion()) + "; upgrade allocation-relay");
    }
    if (version < LatestSchemaVersion()) {
      c.Run("BEGIN");
      if (version == 0) {
        c.Run(
            "CREATE TABLE store_schema (id integer PRIMARY KEY CHECK (id = 1), "
            "version integer NOT NULL); INSERT INTO store_schema VALUES (1, 0)");
      }
      for (int v = version; v < LatestSchemaVersion(); ++v) {
        if (*schema::kMigrations[v]) c.Run(schema::kMigrations[v]);
      }
      c.Run("UPDATE store_schema SET version = " + std::to_string(LatestSchemaVersion()));
      c.Run("COMMIT");
    }
  } catch (...) {
    try {
      c.Run("ROLLBACK");
    } catch (...) {
    }
    try {
      c.Exec("SELECT pg_advisory_unlock(" + std::to_string(schema::kMigrationLock) + ")");
    } catch (...) {
    }
    throw;
  }
  c.Exec("SELECT pg_advisory_unlock(" + std::to_string(schema::kMigrationLock) + ")");
}

std::unique_ptr<PgBackend> PgBackend::Open(const StoreOptions& options) {
  std::unique_ptr<PgBackend> backend(new PgBackend(options));
  try {
    if (options.create_and_migrate) {
      Migrate(backend->c_);
    } else if (int version = VersionOf(backend->c_); version != LatestSchemaVersion()) {
      throw StoreError(StoreError::Kind::kUnavailable,
                       "database " + RedactUrlPassword(options.url) + " has schema version " +
                           std::to_string(version) + ", expected " +
                           std::to_string(LatestSchemaVersion()));
    }
  } catch (const StatementError& e) {
    throw StoreError(e.kind(),
                     "cannot open database " + RedactUrlPassword(options.url) + ": " + e.what());
  }
  return backend;
}

void PgBackend::RollbackQuietly() {
  if (c_.Lost()) return;
  try {
    c_.Flush();
  } catch (...) {
  }
  try {
    c_.Run("ROLLBACK");
  } catch (...) {
  }
}

std::optional<StoreError> PgBackend::Write(const std::function<bool(StoreTransaction&)>& op) {
  for (int run = 1;; ++run) {
    try {
      c_.EnsureOpen();
      PgTransaction t(c_, salt_);
      c_.Queue("BEGIN");  // goes out with the first statement
      const bool keep = op(t);
      if (keep) t.AppendEvents();
      c_.Queue(keep ? "COMMIT" : "ROLLBACK");
      c_.Flush();
      if (keep && t.queued_events()) Notify();
      return std::nullopt;
    } catch (const StatementError& e) {
      RollbackQuietly();
      if (e.Retryable() && run < kWriteRuns) {
        std::this_thread::sleep_for(std::chrono::microseconds(200 * run));
        continue;
      }
      return StoreError(e.kind(), e.what());
    } catch (const StoreError& e) {
      RollbackQuietly();
      return e;
    } catch (const std::exception& e) {
      RollbackQuietly();
      return StoreError(StoreError::Kind::kInternal, e.what());
    }
  }
}

void PgBackend::Notify() {
  // In a transaction of its own, after the write's commit, without waiting for its flush: a
  // NOTIFY in the write's own transaction holds PostgreSQL's cluster-wide notify lock through
  // that commit's fsync, so every write that queues events would commit one at a time. Its
  // failure is not the write's (which is done): a lost notification costs a dispatcher one poll.
  try {
    c_.Queue("BEGIN");
    c_.Queue("SET LOCAL synchronous_commit = off");
    c_.Queue("NOTIFY allocation_relay_events");
    c_.Queue("COMMIT");
    c_.Flush();
  } catch (const StoreError&) {
    RollbackQuietly();
  }
}

StoreResult<int> PgBackend::SchemaVersion() {
  return Guarded([&] {
    c_.EnsureOpen();
    return VersionOf(c_);
  });
}

StoreResult<bool> PgBackend::BackupTo(const std::string&) {
  return std::unexpected(
      StoreError(StoreError::Kind::kInternal, "the store is PostgreSQL: back it up with pg_dump"));
}

StoreResult<bool> PgBackend::Ping() {
  return Guarded([&] {
    c_.EnsureOpen();
    return c_.Exec("SELECT 1").rows() == 1;
  });
}

StoreResult<bool> PgBackend::IntegrityCheck() {
  // PostgreSQL checks its pages itself (and the constraints hold the rows together); what is
  // left to look at is that the schema is ours and whole.
  return Guarded([&] {
    c_.EnsureOpen();
    return VersionOf(c_) == LatestSchemaVersion() &&
           c_.Exec("SELECT count(*) FROM store_identity").i64(0, 0) == 1;
  });
}

WriteGroupStats PgBackend::GroupStats() const { return WriteGroupStats{}; }

}  // namespace allocation_relay::postgresql
