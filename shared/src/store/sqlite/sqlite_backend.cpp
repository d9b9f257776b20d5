#include "sqlite_backend.h"

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <system_error>
#include <thread>

#include "schema.h"

namespace allocation_relay::sqlite {

SqliteBackend::SqliteBackend(const StoreOptions& options, std::shared_ptr<WriteGroup> group)
    : reader_(options, Connection::Role::kReader), group_(std::move(group)) {}

int SqliteBackend::LatestSchemaVersion() {
  return static_cast<int>(std::size(schema::kMigrations));
}

std::unique_ptr<SqliteBackend> SqliteBackend::Open(const StoreOptions& options) {
  try {
    std::unique_ptr<SqliteBackend> backend(new SqliteBackend(options, WriteGroup::For(options)));
    SQLite::Database& db = backend->reader_.db();
    if (!options.create_and_migrate) {
      int version = db.execAndGet("PRAGMA user_version").getInt();
      if (version != LatestSchemaVersion()) {
        throw StoreError(StoreError::Kind::kUnavailable,
                         "database " + options.path + " has schema version " +
                             std::to_string(version) + ", expected " +
                             std::to_string(LatestSchemaVersion()));
      }
      return backend;
    }
    // Switching to WAL needs a moment of exclusive access; a second process opening the same
    // new file at the same instant may see SQLITE_BUSY even with a busy timeout, so retry.
    for (int attempt = 0;; ++attempt) {
      try {
        std::string mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
        if (mode != "wal") {
          throw StoreError(
              StoreError::Kind::kUnavailable,
              "database " + options.path + ": cannot use WAL (journal_mode " + mode + ")");
        }
        break;
      } catch (const SQLite::Exception& e) {
        if ((e.getErrorCode() & 0xff) != SQLITE_BUSY || attempt >= 200) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }

    // A file already at this build's schema needs no write lock: under a steady stream of
    // commits, waiting for it could outlast busy_timeout.
    if (db.execAndGet("PRAGMA user_version").getInt() == LatestSchemaVersion()) return backend;
    WriteTransaction txn(db);
    int version = db.execAndGet("PRAGMA user_version").getInt();
    if (version > LatestSchemaVersion()) {
      throw StoreError(StoreError::Kind::kUnavailable,
                       "database " + options.path + " has schema version " +
                           std::to_string(version) + ", newer than this build's " +
                           std::to_string(LatestSchemaVersion()) + "; upgrade allocation-relay");
    }
    for (int v = version; v < LatestSchemaVersion(); ++v) {
      db.exec(schema::kMigrations[v]);
      db.exec("PRAGMA user_version = " + std::to_string(v + 1));
    }
    txn.Commit();
    return backend;
  } catch (const SQLite::Exception& e) {
    StoreError translated = Translate(e);
    throw StoreError(translated.kind(), "cannot open database " + options.path + ": " + e.what());
  }
}

std::optional<StoreError> SqliteBackend::Write(const std::function<bool(StoreTransaction&)>& op) {
  StoreResult<bool> done = Guarded([&] {
    group_->Run(op);
    return true;
  });
  if (done) return std::nullopt;
  return done.error();
}

StoreResult<int> SqliteBackend::SchemaVersion() {
  return Guarded([&] { return reader_.db().execAndGet("PRAGMA user_version").getInt(); });
}

StoreResult<bool> SqliteBackend::BackupTo(const std::string& path) {
  return Guarded([&]() -> bool {
    SQLite::Statement s(reader_.db(), "VACUUM INTO ?");
    s.bind(1, path);
    s.exec();
    return true;
  });
}

StoreResult<bool> SqliteBackend::Ping() {
  return Guarded([&] {
    // An open connection keeps working on a file that was deleted or moved away, but what it
    // writes then is lost to every process that opens the path: report that as unavailable.
    const std::string& path = reader_.db().getFilename();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw StoreError(StoreError::Kind::kUnavailable, "database file " + path + " is missing");
    }
    Borrowed q = reader_.Prepared("SELECT count(*) FROM sqlite_schema");
    return q->executeStep();
  });
}

StoreResult<bool> SqliteBackend::IntegrityCheck() {
  return Guarded(
      [&] { return reader_.db().execAndGet("PRAGMA integrity_check").getString() == "ok"; });
}

WriteGroupStats SqliteBackend::GroupStats() const { return group_->Stats(); }

}  // namespace allocation_relay::sqlite
