#include "allocation_relay/allocation_history.h"

#include <algorithm>
#include <set>

namespace allocation_relay {

StoreResult<std::optional<AllocationHistory>> ReadAllocationHistory(Store& store,
                                                                    std::int64_t order_number,
                                                                    const WarehouseScope& scope,
                                                                    bool with_attempts) {
  auto allocation = store.GetAllocationByOrder(order_number);
  if (!allocation) return std::unexpected(allocation.error());
  if (!*allocation) return std::optional<AllocationHistory>();
  AllocationHistory history;
  history.allocation = std::move(**allocation);
  Allocation& a = history.allocation;
  std::erase_if(a.requests,
                [&](const AllocationRequest& r) { return !scope.Allows(r.warehouse_id); });
  std::erase_if(a.checks, [&](const Check& c) { return !scope.Allows(c.warehouse_id); });

  std::vector<std::int64_t> request_ids, check_ids;
  for (const AllocationRequest& r : a.requests) request_ids.push_back(r.id);
  for (const Check& c : a.checks) check_ids.push_back(c.id);
  if (request_ids.empty() && check_ids.empty()) return history;
  auto events = store.EventsOfRequests(request_ids, check_ids);
  if (!events) return std::unexpected(events.error());
  history.events = std::move(*events);

  std::set<std::int64_t> delivery_ids;
  for (const OutboxEvent& e : history.events) {
    if (e.delivery_id) delivery_ids.insert(*e.delivery_id);
  }
  for (std::int64_t id : delivery_ids) {
    auto delivery = store.GetDelivery(id);
    if (!delivery) return std::unexpected(delivery.error());
    if (!*delivery) continue;  // pruned between the reads
    AllocationHistory::CarriedBy carried{std::move(**delivery), {}};
    carried.delivery.document.clear();
    if (with_attempts) {
      auto attempts = store.ListAttempts(id);
      if (!attempts) return std::unexpected(attempts.error());
      carried.attempts = std::move(*attempts);
    }
    history.deliveries.push_back(std::move(carried));
  }
  return history;
}

}  // namespace allocation_relay
