#include "pruner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "allocation_relay/duration.h"

namespace allocation_relay {
namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The next batch size: halved after a step that took over twice the target, grown by half (at
// least by one, so a batch of 1 can grow again) after one that took under half of it. Step
// time is roughly proportional to the rows a step touches, so this settles near the target
// whatever the disk, the rows per allocation or the other process's load.
int Adapt(int n, SteadyClock::duration took, std::chrono::microseconds target, int min, int max) {
  if (took > 2 * target) {
    n /= 2;
  } else if (took < target / 2) {
    n += std::max(1, n / 2);
  }
  return std::clamp(n, min, max);
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// The pruner only works on a database a service or an operator already has: a prune command
// run with a wrong path must fail, not create an empty file.
StoreOptions ExistingDatabase(StoreOptions options) {
  options.create_and_migrate = false;
  return options;
}

}  // namespace

std::string DescribePruneCounts(const PruneCounts& c) {
  return std::to_string(c.allocations) + " allocations, " + std::to_string(c.requests) +
         " requests, " + std::to_string(c.events) + " events, " + std::to_string(c.deliveries) +
         " deliveries, " + std::to_string(c.attempts) + " attempts";
}

Pruner::Options Pruner::DefaultsFor(const StoreOptions& store) {
  Options options;
  if (store.backend == StoreBackendKind::kPostgresql) options.target_step = kTargetStepPostgresql;
  return options;
}

Pruner::Pruner(StoreOptions store, const Clock& clock, RetentionConfig retention)
    : Pruner(store, clock, retention, DefaultsFor(store)) {}

Pruner::Pruner(StoreOptions store, const Clock& clock, RetentionConfig retention, Options options)
    : options_(ExistingDatabase(std::move(store))),
      clock_(clock),
      pacing_(options),
      retention_(retention) {}

Pruner::~Pruner() { Stop(); }

void Pruner::Start() {
  {
    MutexLock lock(pass_mu_);
    if (!store_) store_ = Store::Open(options_);
  }
  thread_ = std::thread([this] { Loop(); });
}

void Pruner::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  MutexLock lock(pass_mu_);  // after a RunPass in progress has seen stopping_
  store_.reset();
}

void Pruner::SetConfig(RetentionConfig retention) {
  {
    MutexLock lock(mu_);
    retention_ = retention;
    ++config_generation_;
  }
  wake_.notify_all();
}

Pruner::PassResult Pruner::RunPass(bool dry_run) {
  RetentionConfig retention;
  {
    MutexLock lock(mu_);
    retention = retention_;
  }
  MutexLock lock(pass_mu_);
  return Pass(retention, dry_run);
}

Pruner::Counters Pruner::counters() const {
  Counters c;
  {
    MutexLock lock(mu_);
    c = counters_;
  }
  if (c.oldest_finished) {
    c.oldest_finished_age_seconds =
        std::max(0.0, std::chrono::duration<double>(clock_.Now() - *c.oldest_finished).count());
  }
  return c;
}

bool Pruner::SleepUnlessStopping(std::chrono::microseconds d) {
  MutexLock lock(mu_);
  if (d <= 0us) return stopping_;
  return lock.WaitFor(wake_, d, [this]() REQUIRES(mu_) { return stopping_; });
}

Pruner::PassResult Pruner::Pass(const RetentionConfig& retention, bool dry_run) {
  PassResult result;
  const SteadyClock::time_point start = SteadyClock::now();
  if (!store_) {
    try {
      store_ = Store::Open(options_);
    } catch (const StoreError& e) {
      result.error = e;
      result.took = SteadyClock::now() - start;
      return result;
    }
  }

  // One "now" for the whole pass, so every step deletes by the same cutoffs.
  const TimePoint now = clock_.Now();
  RetentionCutoffs cutoffs;
  if (retention.finished > 0ms) {
    cutoffs.finished = now - std::chrono::duration_cast<Micros>(retention.finished);
  }
  if (retention.attempts > 0ms) {
    cutoffs.attempts = now - std::chrono::duration_cast<Micros>(retention.attempts);
  }
  cutoffs.webhook_warehouses = retention.webhook_warehouses;
  PruneCursor cursor;
  // A kind kept forever has nothing to walk.
  cursor.allocations_done = !cutoffs.finished;
  cursor.attempts_done = !cutoffs.attempts;

  int max_allocations = kStartAllocations;
  int max_attempts = kStartAttempts;
  while (!cursor.done()) {
    if (SleepUnlessStopping(result.steps > 0 ? pacing_.pause_between_steps : 0us)) {
      result.stopped = true;
      break;
    }
    const SteadyClock::time_point step_start = SteadyClock::now();
    StoreResult<PruneCounts> step =
        store_->PruneStep(cutoffs, cursor, max_allocations, max_attempts, dry_run);
    const SteadyClock::duration took = SteadyClock::now() - step_start;
    if (!step) {
      result.error = step.error();
      // The connection may be what failed (file replaced, I/O error): the next pass opens a
      // fresh one.
      store_.reset();
      break;
    }
    ++result.steps;
    result.counts.Add(*step);
    if (!dry_run && step->Total() > 0) {
      // Per step, not per pass: what a failed or stopped pass deleted is gone all the same.
      MutexLock lock(mu_);
      counters_.pruned.Add(*step);
    }
    max_allocations =
        Adapt(max_allocations, took, pacing_.target_step, kMinAllocations, kMaxAllocations);
    max_attempts = Adapt(max_attempts, took, pacing_.target_step, kMinAttempts, kMaxAttempts);
  }

  if (!result.error && !result.stopped) {
    // The gauge is refreshed after a pass, not per scrape: one indexed read every interval.
    if (auto oldest = store_->OldestFinishedAllocation()) {
      MutexLock lock(mu_);
      counters_.oldest_finished = *oldest;
    }
  }
  result.took = SteadyClock::now() - start;
  return result;
}

void Pruner::PruneActivity() {
  if (!store_) {
    try {
      store_ = Store::Open(options_);
    } catch (const StoreError& e) {
      spdlog::warn("prune: console activity: {}", e.what());
      return;
    }
  }
  StoreResult<std::int64_t> deleted = store_->PruneActivity(clock_.Now() - kActivityKept);
  if (!deleted) {
    spdlog::warn("prune: console activity: {}", deleted.error().what());
    store_.reset();  // as after a failed step: the next use opens a fresh connection
    return;
  }
  MutexLock lock(mu_);
  counters_.activity_rows_pruned += *deleted;
}

void Pruner::Loop() {
  std::optional<SteadyClock::time_point> last_end;  // nullopt: the first pass is due at once
  SteadyClock::time_point activity_due = SteadyClock::now();
  for (;;) {
    RetentionConfig retention;
    bool pass_due = false;
    {
      MutexLock lock(mu_);
      for (;;) {
        if (stopping_) return;
        retention = retention_;
        const std::uint64_t seen = config_generation_;
        auto woken = [this, seen]()
                         REQUIRES(mu_) { return stopping_ || config_generation_ != seen; };
        // No pass while the interval is 0, until a reload sets one.
        const SteadyClock::time_point now = SteadyClock::now();
        std::optional<SteadyClock::time_point> pass_at;
        if (retention.interval > 0ms) pass_at = last_end ? *last_end + retention.interval : now;
        pass_due = pass_at && now >= *pass_at;
        if (pass_due || now >= activity_due) break;
        lock.WaitUntil(wake_, pass_at ? std::min(*pass_at, activity_due) : activity_due, woken);
      }
    }
    if (SteadyClock::now() >= activity_due) {
      MutexLock lock(pass_mu_);
      PruneActivity();
      activity_due = SteadyClock::now() + kActivityInterval;
    }
    if (!pass_due) continue;
    PassResult r = [&] {
      MutexLock lock(pass_mu_);
      return Pass(retention, false);
    }();
    last_end = SteadyClock::now();
    if (r.error) {
      spdlog::warn("prune: {} (deleted {} before it); retrying in {}", r.error->what(),
                   DescribePruneCounts(r.counts), FormatDuration(retention.interval));
    } else if (r.counts.Total() > 0) {
      spdlog::info("prune: deleted {} in {:.3f} s, {} steps{}", DescribePruneCounts(r.counts),
                   Seconds(r.took), r.steps, r.stopped ? " (stopped)" : "");
    } else {
      spdlog::debug("prune: deleted {} in {:.3f} s, {} steps", DescribePruneCounts(r.counts),
                    Seconds(r.took), r.steps);
    }
  }
}

}  // namespace allocation_relay
