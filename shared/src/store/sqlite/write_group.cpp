#include "write_group.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <string>
#include <system_error>
#include <utility>

#include "log_buffer_vfs.h"

namespace allocation_relay::sqlite {
namespace {

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

// One write and its outcome. Shared: the thread that finishes it still touches it (the
// wake-up) when its writer may already have returned.
struct WriteGroup::Pending {
  explicit Pending(const Op* o) : op(o), queued(Steady::now()) {}
  // Sleeps in the kernel until Done(): a futex, not std::atomic::wait, which spins on
  // sched_yield first (with a dozen writers waiting on two cores, 12 % of the service's CPU).
  void Wait() {
    while (done.load(std::memory_order_acquire) == 0) {
      syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&done), FUTEX_WAIT_PRIVATE, 0, nullptr,
              nullptr, 0);
    }
  }
  void Done() {
    done.store(1, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&done), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
  }
  const Op* op;
  std::exception_ptr error;
  std::atomic<std::uint32_t> done{0};
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  Steady::time_point queued;
};

std::shared_ptr<WriteGroup> WriteGroup::For(const StoreOptions& options) {
  static std::mutex registry_mu;
  static std::map<std::pair<pid_t, std::string>, std::weak_ptr<WriteGroup>> registry;
  // Keyed by process too: a forked child must never use its parent's connection.
  std::pair<pid_t, std::string> key{getpid(), options.path};
  std::lock_guard lock(registry_mu);
  std::shared_ptr<WriteGroup> group = registry[key].lock();
  if (!group) {
    group = std::make_shared<WriteGroup>(options);
    registry[key] = group;
  }
  return group;
}

WriteGroup::WriteGroup(StoreOptions options) : options_(std::move(options)) {
  options_.create_and_migrate = false;  // the writer connection never creates the file
}

WriteGroup::~WriteGroup() {
  std::thread thread;
  {
    MutexLock lock(mu_);
    stop_ = true;
    thread.swap(thread_);
  }
  thread_cv_.notify_one();
  if (thread.joinable()) thread.join();
}

void WriteGroup::Run(const Op& op) {
  auto me = std::make_shared<Pending>(&op);
  MutexLock lock(mu_);
  queue_.push_back(me);
  if (busy_) {
    lock.Unlock();
    me->Wait();
  } else {
    busy_ = true;
    RunBatch();  // just this write
    if (queue_.empty()) {
      busy_ = false;
    } else {
      handed_ = true;
      if (thread_.joinable()) {
        thread_cv_.notify_one();
      } else {
        try {
          thread_ = std::thread([this] { WriterThread(); });
        } catch (const std::system_error&) {  // no thread to be had: run them here
          handed_ = false;
          while (!queue_.empty()) RunBatch();
          busy_ = false;
        }
      }
    }
    lock.Unlock();
  }
  // Taken out of the shared record: the thread that drops its last reference may be the
  // writer thread, which must not be the one to destroy an exception this thread still uses.
  std::exception_ptr error = std::move(me->error);
  if (error) std::rethrow_exception(error);
}

WriteGroupStats WriteGroup::Stats() {
  MutexLock lock(mu_);
  return stats_;
}

void WriteGroup::WriterThread() {
  MutexLock lock(mu_);
  while (true) {
    lock.Wait(thread_cv_, [&]() REQUIRES(mu_) { return handed_ || stop_; });
    if (!handed_) return;
    handed_ = false;
    while (!queue_.empty()) RunBatch();
    busy_ = false;
  }
}

void WriteGroup::RunBatch() {
  std::vector<std::shared_ptr<Pending>> batch;
  const Steady::time_point start = Steady::now();
  while (!queue_.empty() && batch.size() < kMaxBatch) {
    stats_.wait_seconds += Seconds(start - queue_.front()->queued);
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  ++stats_.commits;
  stats_.writes += batch.size();
  mu_.unlock();
  Execute(batch);
  for (const std::shared_ptr<Pending>& p : batch) p->Done();
  mu_.lock();
}

// Only the thread running a batch calls this, so the writer connection is used by one thread
// at a time.
void WriteGroup::Execute(const std::vector<std::shared_ptr<Pending>>& batch) {
  const Steady::time_point start = Steady::now();
  Steady::time_point executed = start;
  bool open = false;  // a transaction is open on the writer connection
  try {
    if (!writer_) {
      // Gathering a commit's log writes is safe only when every commit syncs the log.
      const bool syncs = options_.synchronous == SynchronousMode::kFull ||
                         options_.synchronous == SynchronousMode::kExtra;
      writer_ = std::make_unique<Writer>(options_, syncs ? LogBufferVfsName() : nullptr);
      wal_frames_ = 0;
      sqlite3_wal_hook(writer_->connection.db().getHandle(), &WriteGroup::WalHook, this);
    }
    Connection& c = writer_->connection;
    // Transaction control through cached statements, not parsed again for every batch.
    auto exec = [&c](const char* sql) { c.Prepared(sql)->exec(); };
    exec("BEGIN IMMEDIATE");
    open = true;
    // Alone in its transaction, a write needs no savepoint: undoing it is a rollback. (A
    // savepoint makes SQLite copy every page the write changes into a statement journal,
    // which for a dispatcher round of thousands of rows is most of its I/O.)
    const bool alone = batch.size() == 1;
    bool keep_any = false;
    for (const std::shared_ptr<Pending>& p : batch) {
      if (!alone) exec("SAVEPOINT write_op");
      bool keep = false;
      try {
        keep = (*p->op)(writer_->transaction);
      } catch (...) {
        p->error = std::current_exception();
      }
      keep_any = keep_any || keep;
      if (!alone) {
        if (!keep) exec("ROLLBACK TO write_op");
        exec("RELEASE write_op");
      }
    }
    executed = Steady::now();
    exec(keep_any ? "COMMIT" : "ROLLBACK");
    open = false;
  } catch (...) {
    // Opening, BEGIN, a savepoint or COMMIT failed (busy, full, read-only, ...): nothing of
    // the batch is kept. A broken writer connection is reopened by the next batch.
    for (const std::shared_ptr<Pending>& p : batch) {
      if (!p->error) p->error = std::current_exception();
    }
    if (open && writer_) {
      try {
        writer_->connection.db().exec("ROLLBACK");
      } catch (...) {
      }
    }
    writer_.reset();
  }
  const Steady::time_point end = Steady::now();
  MutexLock lock(mu_);
  stats_.execute_seconds += Seconds(executed - start);
  stats_.commit_seconds += Seconds(end - executed);
}

// Called by SQLite after each commit of the writer connection with the number of frames in the
// log: counts them, and checkpoints as the hook of `wal_autocheckpoint` (which this replaces)
// would, PASSIVE once the log holds kCheckpointFrames, timing it.
int WriteGroup::WalHook(void* arg, sqlite3* db, const char* name, int frames) {
  auto* self = static_cast<WriteGroup*>(arg);
  const int appended = frames >= self->wal_frames_ ? frames - self->wal_frames_ : frames;
  self->wal_frames_ = frames;
  double seconds = -1;
  if (frames >= kCheckpointFrames) {
    const Steady::time_point start = Steady::now();
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    seconds = Seconds(Steady::now() - start);
  }
  MutexLock lock(self->mu_);
  self->stats_.wal_frames += static_cast<std::uint64_t>(appended);
  if (seconds >= 0) {
    ++self->stats_.checkpoints;
    self->stats_.checkpoint_seconds += seconds;
  }
  return SQLITE_OK;
}

}  // namespace allocation_relay::sqlite
