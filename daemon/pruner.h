// Pruner: deletes what retention no longer keeps (SPEC section 9): final allocations last
// changed before `retention.finished` with everything of theirs, and attempt records older than
// `retention.attempts`.
//
// A pass walks the database with Store::PruneStep, one small write transaction per step. The
// batch sizes adapt so that a step takes about target_step, and the pass pauses
// pause_between_steps after each one: the API (another process) waits for the write lock in
// SQLite's busy handler, and the pause lets it in, so a prune of millions of rows never holds
// an API write back for more than a step.
//
// The same thread deletes the operator console's activity older than kActivityKept
// (Store::PruneActivity) at start and every kActivityInterval, whatever the retention: one
// range delete of a few hundred rows.
//
// Owns one thread (Start: a pass at once, then one every `retention.interval`; none while the
// interval is 0) and its own Store, opened on first use from the StoreOptions given. Every
// public method may be called from any thread; passes never overlap (RunPass waits for the
// thread's pass and vice versa). Stop() ends a pass in progress after its current step.
#ifndef ALLOCATION_RELAY_DAEMON_PRUNER_H_
#define ALLOCATION_RELAY_DAEMON_PRUNER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"

namespace allocation_relay {

class Pruner {
 public:
  // What one step (one write transaction) aims to take: small next to SPEC's 50 ms bound, so an
  // API write waiting behind it is hardly delayed.
  static constexpr std::chrono::milliseconds kTargetStep{2};
  // The pause after each step, in which waiting writers of other processes get the lock.
  static constexpr std::chrono::milliseconds kPauseBetweenSteps{4};
  // The same on PostgreSQL: a step there locks only the rows it deletes (no writer waits for it
  // unless it writes those very rows) and costs a dozen round trips whatever its size, so a
  // 2 ms target would keep every step at one allocation.
  static constexpr std::chrono::milliseconds kTargetStepPostgresql{50};
  // The console's activity (docs/console.md): kept a day, deleted every few minutes.
  static constexpr std::chrono::hours kActivityKept{24};
  static constexpr std::chrono::minutes kActivityInterval{5};
  // Batch sizes of a step: where a pass starts, and the bounds the adaptation keeps them in.
  static constexpr int kStartAllocations = 50, kMinAllocations = 1, kMaxAllocations = 5000;
  static constexpr int kStartAttempts = 500, kMinAttempts = 10, kMaxAttempts = 50000;

  // The pacing of a pass; benchmarks tune it, the dispatcher uses the defaults.
  struct Options {
    std::chrono::microseconds target_step = kTargetStep;
    std::chrono::microseconds pause_between_steps = kPauseBetweenSteps;
  };
  // The defaults for the backend of `store`.
  static Options DefaultsFor(const StoreOptions& store);

  // What one pass did.
  struct PassResult {
    // Rows deleted (with dry_run: that would be), also when the pass ended early.
    PruneCounts counts;
    int steps = 0;
    std::chrono::steady_clock::duration took{};
    bool stopped = false;             // Stop() ended it before it was done
    std::optional<StoreError> error;  // a database error ended it (what was deleted stays so)
  };

  // For /metrics. `pruned` counts rows deleted since start (dry runs not included).
  struct Counters {
    PruneCounts pruned;
    // When the oldest final allocation kept was last changed, as read after the last pass
    // (nullopt: none kept, or no pass yet), and its age at the time counters() was called.
    std::optional<TimePoint> oldest_finished;
    double oldest_finished_age_seconds = 0;
    std::int64_t activity_rows_pruned = 0;  // console activity rows deleted since start
  };

  // `clock` (the source of "now" for the cutoffs) must outlive the pruner. The database must
  // exist: the pruner never creates one.
  Pruner(StoreOptions store, const Clock& clock, RetentionConfig retention);
  Pruner(StoreOptions store, const Clock& clock, RetentionConfig retention, Options options);
  ~Pruner();
  Pruner(const Pruner&) = delete;
  Pruner& operator=(const Pruner&) = delete;

  // Opens the Store and starts the thread. Throws StoreError.
  void Start();
  // Ends a pass in progress after its current step and joins the thread. Idempotent; the
  // counters stay readable.
  void Stop();
  // The retention of a reload; a new interval counts from the end of the last pass.
  void SetConfig(RetentionConfig retention);

  // One pass now with the current retention, on the caller's thread (the `prune` command,
  // tests). With `dry_run` nothing is deleted and the counts say what would be.
  PassResult RunPass(bool dry_run);

  Counters counters() const;

 private:
  PassResult Pass(const RetentionConfig& retention, bool dry_run) REQUIRES(pass_mu_);
  // Deletes the console's activity older than kActivityKept; a failure is logged.
  void PruneActivity() REQUIRES(pass_mu_) EXCLUDES(mu_);
  // Waits `d`; returns true if Stop() was called (at once if it already was).
  bool SleepUnlessStopping(std::chrono::microseconds d) EXCLUDES(mu_);
  void Loop();

  const StoreOptions options_;
  const Clock& clock_;
  const Options pacing_;

  Mutex pass_mu_;  // held for a whole pass; taken before mu_, never after
  std::unique_ptr<Store> store_ GUARDED_BY(pass_mu_);

  mutable Mutex mu_;
  std::condition_variable wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
  RetentionConfig retention_ GUARDED_BY(mu_);
  std::uint64_t config_generation_ GUARDED_BY(mu_) = 0;  // moves on at each SetConfig
  Counters counters_ GUARDED_BY(mu_);
  std::thread thread_;
};

// One line per pass for the log: "12 allocations, 30 requests, 45 events, 6 deliveries, 80
// attempts".
std::string DescribePruneCounts(const PruneCounts& counts);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_PRUNER_H_
