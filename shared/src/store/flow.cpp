#include "flow.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "allocation_relay/render.h"

namespace allocation_relay::flow {
namespace {

// Inserts an `allocated` request and its create event; false if the warehouse already has a
// request in this allocation. The request as stored is appended to `made` if given.
bool InsertRequest(StoreTransaction& t, const AllocationRow& allocation,
                   const WarehouseInfo& warehouse, int group_index, TimePoint now,
                   std::vector<AllocationRequest>* made) {
  const TimePoint expires = now + std::chrono::duration_cast<Micros>(warehouse.confirm_timeout);
  const std::optional<std::int64_t> id =
      t.InsertRequest(allocation, warehouse, group_index, now, expires);
  if (!id) return false;
  t.QueueEvent(warehouse.id, *id, EventAction::kCreate, RequestStatus::kAllocated, now);
  if (made) {
    made->push_back(AllocationRequest{*id, allocation.id, RequestStatus::kAllocated, warehouse.id,
                                      warehouse.name, group_index, now, expires, now,
                                      allocation.order, allocation.lines_json});
  }
  return true;
}

// Outdates the requests a closed allocation left open (with update events).
void OutdateOpenRequests(StoreTransaction& t, const StoreTransaction::OpenRequests& open,
                         TimePoint now) {
  for (auto [request_id, warehouse_id] : open) {
    if (t.MoveRequest(request_id, RequestStatus::kOutdated, StatusSet::kConfirmable, now)) {
      t.QueueEvent(warehouse_id, request_id, EventAction::kUpdate, RequestStatus::kOutdated, now);
    }
  }
}

// Starts group `first` or, if none of its warehouses can be asked, the first later group that
// has one; past the last group the allocation is exhausted. Returns kNextGroup or kExhausted.
// The requests made are appended to `made` if given.
FlowStep StartGroupFrom(StoreTransaction& t, const AllocationRow& allocation, int first,
                        TimePoint now, const WarehouseCatalog& catalog,
                        std::vector<AllocationRequest>* made = nullptr) {
  const PriorityGroups& groups = allocation.groups;
  for (int g = first; g < static_cast<int>(groups.size()); ++g) {
    int created = 0;
    for (std::int64_t warehouse_id : groups[static_cast<std::size_t>(g)]) {
      const WarehouseInfo* info = catalog.Find(warehouse_id);
      if (info && InsertRequest(t, allocation, *info, g, now, made)) ++created;
    }
    if (created == 0) continue;
    // A new allocation's first group is already its current one, as of `now`.
    if (g != allocation.current_group) t.SetCurrentGroup(allocation.id, g, now);
    return FlowStep::kNextGroup;
  }
  if (auto open = t.CloseAllocation(allocation.id, AllocationState::kExhausted, 0, 0, now)) {
    OutdateOpenRequests(t, *open, now);
  }
  return FlowStep::kExhausted;
}

// After a request of the allocation left the pending set: moves the flow on if its current
// group has nothing pending any more.
FlowStep MaybeAdvance(StoreTransaction& t, std::int64_t allocation_id, TimePoint now,
                      const WarehouseCatalog& catalog) {
  AllocationRow row = t.ReadAllocation(allocation_id);
  if (row.state != AllocationState::kOpen) return FlowStep::kWait;
  FlowStep step = DecideFlowStep(row.current_group, static_cast<int>(row.groups.size()),
                                 t.CountPendingInGroup(allocation_id, row.current_group));
  if (step == FlowStep::kWait) return step;
  return StartGroupFrom(t, row, row.current_group + 1, now, catalog);
}

// The common start of a PUT /allocation-request: the request must exist in `scope` and be
// confirmable (pending or timed-out) in an open allocation; then it moves to `to`. Returns its
// state from before, or nullopt with `result` saying why nothing changed.
std::optional<RequestHead> ApplyUpdate(StoreTransaction& t, std::int64_t request_id,
                                       const WarehouseScope& scope, RequestStatus to, TimePoint now,
                                       UpdateResult& result) {
  std::optional<RequestHead> head = t.ReadRequestHead(request_id);
  if (!head || !scope.Allows(head->warehouse_id)) {
    result = UpdateResult{UpdateResult::Outcome::kNotFound, RequestStatus::kAllocated};
    return std::nullopt;
  }
  if (!IsConfirmable(head->status) || head->allocation_state != AllocationState::kOpen ||
      !t.MoveRequest(request_id, to, StatusSet::kConfirmable, now)) {
    result = UpdateResult{UpdateResult::Outcome::kWrongStatus, head->status};
    return std::nullopt;
  }
  return head;
}

}  // namespace

Intake::Intake(const NewAllocation& a)
    : allocation(a),
      groups_json(nlohmann::json(a.groups).dump()),
      lines_json(LinesJson(a.lines)),
      lines(a.lines) {
  std::sort(lines.begin(), lines.end(),
            [](const OrderLine& x, const OrderLine& y) { return x.line_id < y.line_id; });
}

bool CreateAllocation(StoreTransaction& t, const Intake& intake, TimePoint now,
                      const WarehouseCatalog& catalog, CreateResult& result) {
  const NewAllocation& allocation = intake.allocation;
  const std::optional<std::int64_t> id =
      t.InsertAllocation(allocation.order, intake.groups_json, intake.lines_json, now);
  if (!id) {
    result.outcome = CreateResult::Outcome::kDuplicateOrder;
    return false;
  }
  AllocationRow row{
      *id, AllocationState::kOpen, 0, allocation.groups, allocation.order, intake.lines_json};
  Allocation& made = result.allocation;
  made.requests.clear();  // a retried group runs the write again
  const FlowStep step = StartGroupFrom(t, row, 0, now, catalog, &made.requests);
  made.id = row.id;
  made.order = allocation.order;
  made.lines = intake.lines;
  made.groups = allocation.groups;
  made.state = step == FlowStep::kExhausted ? AllocationState::kExhausted : AllocationState::kOpen;
  made.current_group = made.requests.empty() ? 0 : made.requests.front().group_index;
  made.created_at = now;
  made.updated_at = now;
  result.outcome = CreateResult::Outcome::kCreated;
  result.allocation_id = row.id;
  return true;
}

bool ConfirmRequest(StoreTransaction& t, std::int64_t request_id, const WarehouseScope& scope,
                    TimePoint now, UpdateResult& result) {
  std::optional<RequestHead> head =
      ApplyUpdate(t, request_id, scope, RequestStatus::kConfirmed, now, result);
  if (!head) return false;
  auto open = t.CloseAllocation(head->allocation_id, AllocationState::kConfirmed,
                                head->warehouse_id, request_id, now);
  if (!open) {
    // The allocation is no longer open: the request's change is undone.
    result = UpdateResult{UpdateResult::Outcome::kWrongStatus, head->status};
    return false;
  }
  OutdateOpenRequests(t, *open, now);
  result = UpdateResult{UpdateResult::Outcome::kUpdated, RequestStatus::kConfirmed};
  return true;
}

bool RejectRequest(StoreTransaction& t, std::int64_t request_id, const WarehouseScope& scope,
                   TimePoint now, const WarehouseCatalog& catalog, UpdateResult& result) {
  std::optional<RequestHead> head =
      ApplyUpdate(t, request_id, scope, RequestStatus::kRejected, now, result);
  if (!head) return false;
  if (head->group_index == head->current_group) {
    MaybeAdvance(t, head->allocation_id, now, catalog);
  }
  result = UpdateResult{UpdateResult::Outcome::kUpdated, RequestStatus::kRejected};
  return true;
}

bool ExpireDue(StoreTransaction& t, TimePoint now, const WarehouseCatalog& catalog, int limit,
               ExpiryResult& result) {
  result = ExpiryResult{};
  std::set<std::int64_t> allocations;
  for (const StoreTransaction::ExpiredRequest& e : t.ExpiredRequests(now, limit)) {
    if (t.MoveRequest(e.id, RequestStatus::kTimedOut, StatusSet::kPending, now)) {
      t.QueueEvent(e.warehouse_id, e.id, EventAction::kUpdate, RequestStatus::kTimedOut, now);
      ++result.timed_out;
      allocations.insert(e.allocation_id);
    }
  }
  for (std::int64_t allocation_id : allocations) {
    switch (MaybeAdvance(t, allocation_id, now, catalog)) {
      case FlowStep::kNextGroup:
        ++result.groups_advanced;
        break;
      case FlowStep::kExhausted:
        ++result.exhausted;
        break;
      case FlowStep::kWait:
        break;
    }
  }
  return true;
}

bool CancelAllocation(StoreTransaction& t, std::int64_t order_number, TimePoint now,
                      CancelResult& result) {
  std::optional<std::pair<std::int64_t, AllocationState>> found = t.AllocationByOrder(order_number);
  if (!found) {
    result = CancelResult{CancelResult::Outcome::kNotFound, {}};
    return false;
  }
  auto [allocation_id, state] = *found;
  std::optional<StoreTransaction::OpenRequests> open;
  if (state == AllocationState::kOpen) {
    open = t.CloseAllocation(allocation_id, AllocationState::kCancelled, 0, 0, now);
  }
  if (!open) {
    result = CancelResult{CancelResult::Outcome::kNotOpen, state};
    return false;
  }
  OutdateOpenRequests(t, *open, now);
  result = CancelResult{CancelResult::Outcome::kCancelled, AllocationState::kCancelled};
  return true;
}

}  // namespace allocation_relay::flow
