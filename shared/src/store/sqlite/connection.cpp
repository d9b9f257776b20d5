#include "connection.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <thread>

namespace allocation_relay::sqlite {
namespace {

StoreError::Kind KindOf(int primary_code) {
  switch (primary_code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return StoreError::Kind::kBusy;
    case SQLITE_FULL:
      return StoreError::Kind::kFull;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return StoreError::Kind::kReadOnly;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return StoreError::Kind::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StoreError::Kind::kCorrupt;
    default:
      return StoreError::Kind::kInternal;
  }
}

const char* SynchronousPragma(SynchronousMode mode) {
  switch (mode) {
    case SynchronousMode::kOff:
      return "PRAGMA synchronous = OFF";
    case SynchronousMode::kNormal:
      return "PRAGMA synchronous = NORMAL";
    case SynchronousMode::kFull:
      return "PRAGMA synchronous = FULL";
    case SynchronousMode::kExtra:
      return "PRAGMA synchronous = EXTRA";
  }
  return "PRAGMA synchronous = FULL";
}

}  // namespace

StoreError Translate(const SQLite::Exception& e) {
  return StoreError(KindOf(e.getErrorCode() & 0xff), std::string("database: ") + e.what());
}

Borrowed::~Borrowed() {
  try {
    s_.reset();
    s_.clearBindings();
  } catch (...) {
  }
}

WriteTransaction::WriteTransaction(SQLite::Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

WriteTransaction::~WriteTransaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}

void WriteTransaction::Commit() {
  db_.exec("COMMIT");
  done_ = true;
}

ReadTransaction::ReadTransaction(SQLite::Database& db) : db_(db) { db_.exec("BEGIN"); }

ReadTransaction::~ReadTransaction() {
  try {
    db_.exec("COMMIT");
  } catch (...) {
  }
}

Connection::Connection(const StoreOptions& options, Role role, const char* vfs)
    : db_(options.path.c_str(),
          SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX |
              (options.create_and_migrate ? SQLite::OPEN_CREATE : 0),
          static_cast<int>(options.busy_timeout.count()), vfs),
      busy_timeout_(options.busy_timeout) {
  sqlite3_busy_handler(db_.getHandle(), &Connection::OnBusy, this);
  db_.exec(SynchronousPragma(options.synchronous));
  // Statement journals and sort b-trees in memory, not in temporary files created and
  // unlinked per statement.
  db_.exec("PRAGMA temp_store = MEMORY");
  // Checkpoint every 8000 pages (32 MiB of WAL), not 1000: a page a busy dispatcher rewrites
  // in many commits is copied to the database once per checkpoint, and checkpoints are rarer.
  // (The writer connection's WriteGroup::WalHook replaces this hook, with the same threshold.)
  db_.exec("PRAGMA wal_autocheckpoint = 8000");
  // Page cache: the writer keeps the hot pages of every write (4 MiB); a reading connection
  // (one per API worker) only needs the small indexes of the common queries (1 MiB), which
  // keeps the service's memory flat however many workers it has.
  db_.exec(role == Role::kReader ? "PRAGMA cache_size = -1024" : "PRAGMA cache_size = -4096");
  if (options.max_size > 0) {
    std::int64_t page = db_.execAndGet("PRAGMA page_size").getInt64();
    db_.exec("PRAGMA max_page_count = " +
             std::to_string(std::max<std::int64_t>(1, options.max_size / page)));
  }
}

int Connection::OnBusy(void* connection, int tries) {
  auto* c = static_cast<Connection*>(connection);
  const auto now = std::chrono::steady_clock::now();
  if (tries == 0) c->busy_since_ = now;
  if (now - c->busy_since_ >= c->busy_timeout_) return 0;  // SQLITE_BUSY to the caller
  std::this_thread::sleep_for(kBusyRetry);
  return 1;
}

Borrowed Connection::Prepared(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    if (cache_.size() > 256) cache_.clear();  // dynamic IN-lists: keep the cache bounded
    it = cache_.emplace(sql, std::make_unique<SQLite::Statement>(db_, sql)).first;
  }
  return Borrowed(*it->second);
}

std::vector<std::string> Connection::Explain(const std::string& sql) {
  SQLite::Statement s(db_, "EXPLAIN QUERY PLAN " + sql);
  std::vector<std::string> out;
  while (s.executeStep()) out.push_back(s.getColumn(3).getString());
  return out;
}

}  // namespace allocation_relay::sqlite
