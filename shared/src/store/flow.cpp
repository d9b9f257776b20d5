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

// Closes what a closed allocation left open: its confirmable requests are outdated (update
// events) and its asked checks rejected (check_first rejected events).
void CloseOpenWork(StoreTransaction& t, const StoreTransaction::OpenWork& open, TimePoint now) {
  for (auto [request_id, warehouse_id] : open.requests) {
    if (t.MoveRequest(request_id, RequestStatus::kOutdated, StatusSet::kConfirmable, now)) {
      t.QueueEvent(warehouse_id, request_id, EventAction::kUpdate, RequestStatus::kOutdated, now);
    }
  }
  for (auto [check_id, warehouse_id] : open.checks) {
    if (t.AnswerCheck(check_id, CheckStatus::kRejected, now)) {
      t.QueueCheckEvent(warehouse_id, check_id, EventAction::kRejected, CheckStatus::kRejected,
                        now);
    }
  }
}

bool IsCheckFirst(const WarehouseInfo& w) { return w.policy == WarehousePolicy::kCheckFirst; }

// Asks the group's check-first warehouses (a check and a create event each); returns how many.
int AskGroup(StoreTransaction& t, const AllocationRow& allocation, int g, TimePoint now,
             const WarehouseCatalog& catalog, Allocation* made) {
  int asked = 0;
  for (std::int64_t warehouse_id : allocation.groups[static_cast<std::size_t>(g)]) {
    const WarehouseInfo* info = catalog.Find(warehouse_id);
    if (!info || !IsCheckFirst(*info)) continue;
    const TimePoint expires = now + std::chrono::duration_cast<Micros>(info->confirm_timeout);
    const std::optional<std::int64_t> id =
        t.InsertCheck(allocation.id, warehouse_id, g, now, expires);
    if (!id) continue;
    t.QueueCheckEvent(warehouse_id, *id, EventAction::kCreate, CheckStatus::kAsked, now);
    if (made) {
      made->checks.push_back(
          Check{*id, allocation.id, warehouse_id, g, CheckStatus::kAsked, now, expires, now});
    }
    ++asked;
  }
  return asked;
}

// Makes requests for the group's direct-then-confirm warehouses; returns how many.
int RequestGroup(StoreTransaction& t, const AllocationRow& allocation, int g, TimePoint now,
                 const WarehouseCatalog& catalog, Allocation* made) {
  int created = 0;
  for (std::int64_t warehouse_id : allocation.groups[static_cast<std::size_t>(g)]) {
    const WarehouseInfo* info = catalog.Find(warehouse_id);
    if (info && !IsCheckFirst(*info) &&
        InsertRequest(t, allocation, *info, g, now, made ? &made->requests : nullptr)) {
      ++created;
    }
  }
  return created;
}

// Starts group `first` or, if none of its warehouses can be asked, the first later group that
// has one; past the last group the allocation is exhausted. A group starts with its check-first
// warehouses (checks) if it has any, else (or, with `checks_done`, for group `first` once its
// checks are all answered) with its direct-then-confirm ones (requests). Returns kNextGroup or
// kExhausted. What it makes is appended to `made` if given, and `made->current_group` set.
FlowStep StartGroupFrom(StoreTransaction& t, const AllocationRow& allocation, int first,
                        TimePoint now, const WarehouseCatalog& catalog, Allocation* made = nullptr,
                        bool checks_done = false) {
  const PriorityGroups& groups = allocation.groups;
  for (int g = first; g < static_cast<int>(groups.size()); ++g) {
    const bool ask = !(checks_done && g == first);
    if ((ask && AskGroup(t, allocation, g, now, catalog, made) > 0) ||
        RequestGroup(t, allocation, g, now, catalog, made) > 0) {
      // A new allocation's first group is already its current one, as of `now`.
      if (g != allocation.current_group) t.SetCurrentGroup(allocation.id, g, now);
      if (made) made->current_group = g;
      return FlowStep::kNextGroup;
    }
  }
  if (auto open = t.CloseAllocation(allocation.id, AllocationState::kExhausted, 0, 0, now)) {
    CloseOpenWork(t, *open, now);
  }
  return FlowStep::kExhausted;
}

// After a request of the allocation left the pending set, or a check was answered or timed
// out: moves the flow on if its current group has nothing pending or asked any more. A group
// whose checks are all answered (none accepted) goes on to its direct-then-confirm warehouses.
FlowStep MaybeAdvance(StoreTransaction& t, std::int64_t allocation_id, TimePoint now,
                      const WarehouseCatalog& catalog) {
  AllocationRow row = t.ReadAllocation(allocation_id);
  if (row.state != AllocationState::kOpen) return FlowStep::kWait;
  const StoreTransaction::GroupCounts counts = t.CountGroup(allocation_id, row.current_group);
  if (counts.asked_checks > 0) return FlowStep::kWait;
  if (counts.requests == 0) {
    return StartGroupFrom(t, row, row.current_group, now, catalog, nullptr, /*checks_done=*/true);
  }
  FlowStep step = DecideFlowStep(row.current_group, static_cast<int>(row.groups.size()),
                                 counts.pending_requests);
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
  made.checks.clear();
  made.current_group = 0;
  const FlowStep step = StartGroupFrom(t, row, 0, now, catalog, &made);
  made.id = row.id;
  made.order = allocation.order;
  made.lines = intake.lines;
  made.groups = allocation.groups;
  made.state = step == FlowStep::kExhausted ? AllocationState::kExhausted : AllocationState::kOpen;
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
  CloseOpenWork(t, *open, now);
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
  for (const StoreTransaction::ExpiredCheck& e : t.ExpiredChecks(now, limit)) {
    if (t.AnswerCheck(e.id, CheckStatus::kTimedOut, now)) {
      t.QueueCheckEvent(e.warehouse_id, e.id, EventAction::kTimeout, CheckStatus::kTimedOut, now);
      ++result.checks_timed_out;
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
  std::optional<StoreTransaction::OpenWork> open;
  if (state == AllocationState::kOpen) {
    open = t.CloseAllocation(allocation_id, AllocationState::kCancelled, 0, 0, now);
  }
  if (!open) {
    result = CancelResult{CancelResult::Outcome::kNotOpen, state};
    return false;
  }
  CloseOpenWork(t, *open, now);
  result = CancelResult{CancelResult::Outcome::kCancelled, AllocationState::kCancelled};
  return true;
}

bool AnswerCheck(StoreTransaction& t, const CheckAnswer& answer, const WarehouseScope& scope,
                 TimePoint now, const WarehouseCatalog& catalog, CheckResult& result) {
  using Outcome = CheckResult::Outcome;
  result = CheckResult{Outcome::kUnknown};
  if (!scope.Allows(answer.warehouse_id)) return false;
  const std::optional<StoreTransaction::CheckHead> head =
      t.ReadCheckHead(answer.order_number, answer.warehouse_id);
  if (!head) return false;
  result = CheckResult{Outcome::kFailed};
  if (head->status != CheckStatus::kAsked || head->allocation_state != AllocationState::kOpen) {
    return false;
  }
  // At its expiry an unanswered check can no longer be answered (SPEC section 12), whether or
  // not the expiry worker has marked it timed-out yet (it may be a moment behind, or not
  // running): nothing is written here; the worker times it out and sends its timeout event.
  if (now >= head->expires_at) return false;
  if (!answer.accepted) {
    if (!t.AnswerCheck(head->id, CheckStatus::kRejected, now)) return false;
    t.QueueCheckEvent(answer.warehouse_id, head->id, EventAction::kRejected, CheckStatus::kRejected,
                      now);
    if (head->group_index == head->current_group) {
      MaybeAdvance(t, head->allocation_id, now, catalog);
    }
    result = CheckResult{Outcome::kAnswered};
    return true;
  }
  if (!t.AnswerCheck(head->id, CheckStatus::kAccepted, now)) return false;
  auto open = t.CloseAllocation(head->allocation_id, AllocationState::kConfirmed,
                                answer.warehouse_id, 0, now);
  if (!open) return false;  // another answer closed it first: undone
  t.QueueCheckEvent(answer.warehouse_id, head->id, EventAction::kAccepted, CheckStatus::kAccepted,
                    now);
  CloseOpenWork(t, *open, now);
  result = CheckResult{Outcome::kAnswered};
  return true;
}

}  // namespace allocation_relay::flow
