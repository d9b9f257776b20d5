#include "activity.h"

#include <algorithm>

namespace allocation_relay::activity {

TimePoint MinuteOf(TimePoint t) { return std::chrono::floor<std::chrono::minutes>(t); }

std::size_t BucketOf(Micros duration) {
  std::size_t i = 0;
  while (i < std::size(kCallDurationBoundsMs) &&
         duration > std::chrono::milliseconds(kCallDurationBoundsMs[i])) {
    ++i;
  }
  return i;
}

void Tally::Add(std::int64_t warehouse_id, const DeliveryAttempt& attempt, AttemptOutcome outcome) {
  const TimePoint minute = MinuteOf(attempt.started_at);
  StoreTransaction::ActivityRow& row = rows_[{ToUnixMicros(minute), warehouse_id}];
  row.minute = minute;
  row.warehouse_id = warehouse_id;
  ++row.calls[BucketOf(attempt.duration)];
  switch (outcome) {
    case AttemptOutcome::kSucceeded: {
      ++row.delivered;
      auto [at, added] = last_success_.try_emplace(warehouse_id, attempt.started_at);
      if (!added) at->second = std::max(at->second, attempt.started_at);
      break;
    }
    case AttemptOutcome::kRetry:
      ++row.failed_attempts;
      break;
    case AttemptOutcome::kDead:
      ++row.failed_attempts;
      ++row.dead;
      break;
  }
}

void Tally::Write(StoreTransaction& t) const {
  if (rows_.empty()) return;
  std::vector<StoreTransaction::ActivityRow> rows;
  rows.reserve(rows_.size());
  for (const auto& [key, row] : rows_) rows.push_back(row);  // sorted by (minute, warehouse)
  t.AddActivity(rows);
  if (last_success_.empty()) return;
  std::vector<std::pair<std::int64_t, TimePoint>> successes(last_success_.begin(),
                                                            last_success_.end());
  t.NoteLastSuccesses(successes);
}

ActivityOverview Summarise(StoreBackend::ActivityRead read, const WarehouseScope& scope,
                           TimePoint chart_since, TimePoint latency_since) {
  using Count = StoreBackend::ActivityRead::Count;
  std::map<std::int64_t, WarehouseActivity> warehouses;
  auto of = [&](std::int64_t id) -> WarehouseActivity& {
    WarehouseActivity& w = warehouses[id];
    w.warehouse_id = id;
    return w;
  };
  for (const StoreBackend::ActivityRead::CountRow& c : read.counts) {
    if (c.count == 0) continue;
    WarehouseActivity& w = of(c.warehouse_id);
    switch (c.kind) {
      case Count::kPendingRequests:
        w.pending_requests += c.count;
        break;
      case Count::kAskedChecks:
        w.asked_checks += c.count;
        break;
      case Count::kQueuedEvents:
        w.queued_events += c.count;
        break;
      case Count::kPendingDeliveries:
        w.pending_deliveries += c.count;
        break;
      case Count::kDeadDeliveries:
        w.dead_deliveries += c.count;
        break;
    }
  }
  for (StoreBackend::ActivityRead::Disabled& d : read.disabled) {
    WarehouseActivity& w = of(d.warehouse_id);
    w.disabled_at = d.at;
    w.disabled_reason = std::move(d.reason);
  }
  for (const auto& [id, at] : read.last_successes) of(id).last_success_at = at;
  std::map<TimePoint, ActivityMinute> minutes;
  for (const StoreTransaction::ActivityRow& row : read.activity) {
    if (row.minute >= latency_since) {
      WarehouseActivity& w = of(row.warehouse_id);
      for (std::size_t i = 0; i < kCallDurationBuckets; ++i) w.call_durations[i] += row.calls[i];
    }
    if (row.minute >= chart_since && scope.Allows(row.warehouse_id)) {
      ActivityMinute& m = minutes[row.minute];
      m.minute = row.minute;
      m.delivered += row.delivered;
      m.failed_attempts += row.failed_attempts;
      m.dead += row.dead;
    }
  }
  ActivityOverview out;
  for (auto& [id, w] : warehouses) {
    if (scope.Allows(id)) out.warehouses.push_back(std::move(w));
  }
  for (const auto& [minute, m] : minutes) out.minutes.push_back(m);
  return out;
}

}  // namespace allocation_relay::activity
