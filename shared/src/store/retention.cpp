#include "retention.h"

#include <algorithm>
#include <vector>

namespace allocation_relay::retention {
namespace {

// Removes from `ids` every id in `drop`.
void Without(std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& drop) {
  std::erase_if(
      ids, [&](std::int64_t id) { return std::find(drop.begin(), drop.end(), id) != drop.end(); });
}

}  // namespace

bool PruneStep(StoreTransaction& t, const RetentionCutoffs& cutoffs, const PruneCursor& cursor,
               int max_allocations, int max_attempts, bool dry_run, PruneCounts& counts,
               PruneCursor& next) {
  counts = PruneCounts{};
  next = cursor;
  if (!next.attempts_done && !cutoffs.attempts) next.attempts_done = true;
  if (!next.attempts_done) {
    if (dry_run) {
      // An undone step would find the same attempts again: count them all at once, before
      // this step deletes any delivery (the ones it does are counted below without these).
      counts.attempts += t.CountAttemptsBefore(*cutoffs.attempts);
      next.attempts_done = true;
    } else {
      const int limit = std::max(1, max_attempts);
      const std::int64_t deleted = t.DeleteAttemptsBefore(*cutoffs.attempts, limit);
      counts.attempts += deleted;
      if (deleted < limit) next.attempts_done = true;
    }
  }
  if (!next.allocations_done && !cutoffs.finished) next.allocations_done = true;
  if (!next.allocations_done) {
    const int limit = std::max(1, max_allocations);
    const std::vector<StoreTransaction::FinishedAllocation> found = t.FinishedAllocationsBefore(
        *cutoffs.finished, next.updated_at_us, next.allocation_id, limit);
    if (static_cast<int>(found.size()) < limit) next.allocations_done = true;
    if (!found.empty()) {
      next.updated_at_us = found.back().updated_at_us;
      next.allocation_id = found.back().id;
    }
    std::vector<std::int64_t> ids;
    for (const auto& f : found) ids.push_back(f.id);
    // Kept: an allocation a warehouse has not heard everything of yet (an event unbatched, or
    // in a delivery still being tried; a warehouse without a webhook hears nothing, it polls),
    // and the owners of the newest request and event, whose
    // ids SQLite would otherwise hand out again (a client's `after=` cursor must never skip).
    if (!ids.empty()) Without(ids, t.AllocationsAwaitingDelivery(ids, cutoffs.webhook_warehouses));
    if (!ids.empty()) Without(ids, t.NewestAllocations());
    if (!ids.empty()) {
      StoreTransaction::DeletedAllocations deleted = t.DeleteAllocations(ids);
      counts.allocations = deleted.allocations;
      counts.requests = deleted.requests;
      counts.events = deleted.events;
      // A delivery goes once none of its events is left; a dead one stays re-sendable until then.
      // Only a dry run needs to know which of their attempts are old (a real one counts them
      // all here), so only it pays for reading that.
      StoreTransaction::DeletedDeliveries gone = t.DeleteDeliveriesWithoutEvents(
          deleted.deliveries, dry_run ? cutoffs.attempts : std::nullopt);
      counts.deliveries = gone.deliveries;
      // A dry run counts the old attempts all at once below, these among them.
      counts.attempts += dry_run ? gone.attempts - gone.attempts_before : gone.attempts;
    }
  }
  return !dry_run;
}

}  // namespace allocation_relay::retention
