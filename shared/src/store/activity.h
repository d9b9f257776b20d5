// The console's activity (docs/console.md), written once over the backends: what a round's
// recorded attempts add to the kept (minute, warehouse) rows and last successes, and how
// Store::ReadActivity sums what a backend read.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_ACTIVITY_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_ACTIVITY_H_

#include <cstdint>
#include <map>
#include <utility>

#include "allocation_relay/store.h"
#include "backend.h"
#include "transaction.h"

namespace allocation_relay::activity {

// The columns of webhook_activity (schema 9, both backends) that count calls by duration
// bucket, in bucket order.
inline constexpr const char* kCallColumns[] = {
    "calls_1ms",  "calls_2ms",   "calls_5ms",   "calls_10ms",    "calls_20ms",
    "calls_50ms", "calls_100ms", "calls_200ms", "calls_500ms",   "calls_1s",
    "calls_2s",   "calls_5s",    "calls_10s",   "calls_over_10s"};
static_assert(std::size(kCallColumns) == kCallDurationBuckets);

// The start of the minute holding `t`.
TimePoint MinuteOf(TimePoint t);
// The bucket of kCallDurationBoundsMs holding a call of `duration` (its upper bound is the
// first bound at or above it; kCallDurationBuckets - 1 past the last one).
std::size_t BucketOf(Micros duration);

// A round's recorded attempts, summed per (minute of their start, warehouse).
class Tally {
 public:
  void Add(std::int64_t warehouse_id, const DeliveryAttempt& attempt, AttemptOutcome outcome);
  // One upsert per (minute, warehouse) and one for the last successes; nothing if empty.
  void Write(StoreTransaction& t) const;

 private:
  std::map<std::pair<std::int64_t, std::int64_t>, StoreTransaction::ActivityRow> rows_;
  std::map<std::int64_t, TimePoint> last_success_;
};

// Store::ReadActivity from what the backend read (of `scope`'s warehouses, minutes from
// min(chart_since, latency_since) on).
ActivityOverview Summarise(StoreBackend::ActivityRead read, const WarehouseScope& scope,
                           TimePoint chart_since, TimePoint latency_since);

}  // namespace allocation_relay::activity

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_ACTIVITY_H_
