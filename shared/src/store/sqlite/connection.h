// The SQLite backend's plumbing: a connection with its statement cache, transactions, and the
// translation of SQLite's exceptions into StoreError values (the only place that catches them).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_CONNECTION_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_CONNECTION_H_

#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "allocation_relay/store.h"

namespace allocation_relay::sqlite {

StoreError Translate(const SQLite::Exception& e);

// Runs `body`, turning every exception into a StoreError value: no SQLite exception leaves
// the store.
template <typename F>
auto Guarded(F&& body) -> StoreResult<decltype(body())> {
  try {
    return body();
  } catch (const SQLite::Exception& e) {
    return std::unexpected(Translate(e));
  } catch (const StoreError& e) {
    return std::unexpected(e);
  } catch (const std::exception& e) {
    return std::unexpected(StoreError(StoreError::Kind::kInternal, e.what()));
  }
}

// A statement borrowed from the cache; reset on return so it never holds a read snapshot.
class Borrowed {
 public:
  explicit Borrowed(SQLite::Statement& s) : s_(s) {}
  ~Borrowed();
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;
  SQLite::Statement* operator->() { return &s_; }
  SQLite::Statement& operator*() { return s_; }

 private:
  SQLite::Statement& s_;
};

// BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a transaction
// that reads then writes never fails half-way with SQLITE_BUSY. Rolled back unless committed.
class WriteTransaction {
 public:
  explicit WriteTransaction(SQLite::Database& db);
  ~WriteTransaction();
  void Commit();

 private:
  SQLite::Database& db_;
  bool done_ = false;
};

// A deferred transaction for reads that take several statements: one consistent snapshot.
class ReadTransaction {
 public:
  explicit ReadTransaction(SQLite::Database& db);
  ~ReadTransaction();

 private:
  SQLite::Database& db_;
};

// One connection to the database file, with the pragmas of its role and a cache of prepared
// statements. Not thread-safe: one thread at a time.
class Connection {
 public:
  // A reader is a Store's own connection (small page cache); the writer is its WriteGroup's
  // (large cache, opened through the VFS named `vfs`, or the default one if null).
  enum class Role { kReader, kWriter };
  Connection(const StoreOptions& options, Role role, const char* vfs = nullptr);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  SQLite::Database& db() { return db_; }
  Borrowed Prepared(const std::string& sql);
  // EXPLAIN QUERY PLAN of `sql`, one line per step.
  std::vector<std::string> Explain(const std::string& sql);

 private:
  // SQLite's busy handler for busy_timeout, retrying every kBusyRetry: SQLite's own waits 1, 2,
  // 5, 10, 15... ms between tries, so a writer of one process waited up to twice as long as a
  // short transaction of another (a prune step of 5 ms cost an API confirm 8 ms), and a
  // process writing back to back starved the other's writes.
  static constexpr std::chrono::microseconds kBusyRetry{250};
  static int OnBusy(void* connection, int tries);

  SQLite::Database db_;
  std::chrono::milliseconds busy_timeout_;
  std::chrono::steady_clock::time_point busy_since_;
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> cache_;
};

}  // namespace allocation_relay::sqlite

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_CONNECTION_H_
