// WriteGroup: the group commit of one database file's writes in this process (SQLite backend).
//
// Every write of this process to one file goes through its WriteGroup, which owns
// one writer connection. Writes queued together run on it as one batch: one BEGIN IMMEDIATE
// transaction, each write in a SAVEPOINT so one write's undo or failure leaves the others
// intact, one commit (one fsync), and each writer gets its own outcome once that commit is done.
// Under load N confirms cost one fsync instead of N; writers wait in the group instead of
// SQLite's sleeping busy handler; and the writer connection's cache stays warm (a connection that
// did not write must drop its cache after another one did). Writers in other processes still
// serialise through SQLite's lock.
//
// Who runs a batch: a write that finds the group idle runs at once on its own thread, alone (no
// thread switch: a quiet service, or the dispatcher's round thread, pays nothing for the group).
// Writes that arrive meanwhile queue up; when that batch ends they are handed to the group's
// writer thread (started at the first hand-over), which runs everything queued as the next batch
// and goes on with the writes queued during that one until the queue is empty. Under load,
// batches thus follow each other on one thread with no wake-up in between. A queued write sleeps
// on a futex of its own until its batch has committed: one wake-up per write, no herd.
//
// Thread-safe: Run() and Stats() from any thread. The writer connection is used only by the
// thread running a batch.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_WRITE_GROUP_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_WRITE_GROUP_H_

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../transaction.h"
#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"
#include "connection.h"
#include "sqlite_transaction.h"

namespace allocation_relay::sqlite {

class WriteGroup {
 public:
  using Op = std::function<bool(StoreTransaction&)>;

  // The group of `options.path` in this process, made at first use; shared by the Stores of
  // that file and kept while one is alive.
  static std::shared_ptr<WriteGroup> For(const StoreOptions& options);

  explicit WriteGroup(StoreOptions options);
  // Only once no Store of the file is left, so no write is queued or running.
  ~WriteGroup();
  WriteGroup(const WriteGroup&) = delete;
  WriteGroup& operator=(const WriteGroup&) = delete;

  // Runs `op` in a batch; returns once the batch has committed (or failed). `op` returns true to
  // keep its changes, false to undo them; its exceptions, or the commit's, are rethrown here.
  void Run(const Op& op) EXCLUDES(mu_);

  WriteGroupStats Stats() EXCLUDES(mu_);

 private:
  using Steady = std::chrono::steady_clock;
  struct Pending;
  // The writer connection and its transaction object, opened by the first batch (and again
  // after a failure broke it).
  struct Writer {
    Writer(const StoreOptions& options, const char* vfs)
        : connection(options, Connection::Role::kWriter, vfs), transaction(connection) {}
    Connection connection;
    SqliteTransaction transaction;
  };
  static constexpr std::size_t kMaxBatch = 256;
  static constexpr int kCheckpointFrames = 8000;  // as Connection's wal_autocheckpoint

  void WriterThread() EXCLUDES(mu_);
  // Takes the queued writes, runs them as one batch (without the lock) and wakes their writers.
  // Called with the lock held, returns with it held.
  void RunBatch() REQUIRES(mu_);
  void Execute(const std::vector<std::shared_ptr<Pending>>& batch) EXCLUDES(mu_);
  static int WalHook(void* arg, sqlite3* db, const char* name, int frames);

  StoreOptions options_;
  std::unique_ptr<Writer> writer_;
  int wal_frames_ = 0;  // in the log after the writer's last commit (writer's thread only)
  Mutex mu_;
  std::deque<std::shared_ptr<Pending>> queue_ GUARDED_BY(mu_);
  bool busy_ GUARDED_BY(mu_) = false;    // a batch is running, or the writer thread has the queue
  bool handed_ GUARDED_BY(mu_) = false;  // the queue is the writer thread's to run
  bool stop_ GUARDED_BY(mu_) = false;
  std::condition_variable thread_cv_;
  std::thread thread_ GUARDED_BY(mu_);  // the writer thread, started at the first hand-over
  WriteGroupStats stats_ GUARDED_BY(mu_);
};

}  // namespace allocation_relay::sqlite

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_WRITE_GROUP_H_
