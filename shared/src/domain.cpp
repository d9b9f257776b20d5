#include "allocation_relay/domain.h"

#include <algorithm>

namespace allocation_relay {

std::string_view ToString(RequestStatus s) {
  switch (s) {
    case RequestStatus::kAllocated:
      return "allocated";
    case RequestStatus::kSent:
      return "sent";
    case RequestStatus::kFailed:
      return "failed";
    case RequestStatus::kConfirmed:
      return "confirmed";
    case RequestStatus::kRejected:
      return "rejected";
    case RequestStatus::kTimedOut:
      return "timed-out";
    case RequestStatus::kOutdated:
      return "outdated";
  }
  return "unknown";
}

std::optional<RequestStatus> ParseRequestStatus(std::string_view text) {
  for (RequestStatus s : kAllRequestStatuses) {
    if (ToString(s) == text) return s;
  }
  return std::nullopt;
}

bool IsPending(RequestStatus s) {
  return s == RequestStatus::kAllocated || s == RequestStatus::kSent || s == RequestStatus::kFailed;
}

bool IsConfirmable(RequestStatus s) { return IsPending(s) || s == RequestStatus::kTimedOut; }

bool IsFinal(RequestStatus s) {
  return s == RequestStatus::kConfirmed || s == RequestStatus::kRejected ||
         s == RequestStatus::kOutdated;
}

std::string_view ToString(AllocationState s) {
  switch (s) {
    case AllocationState::kOpen:
      return "open";
    case AllocationState::kConfirmed:
      return "confirmed";
    case AllocationState::kExhausted:
      return "exhausted";
    case AllocationState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::optional<AllocationState> ParseAllocationState(std::string_view text) {
  for (AllocationState s : {AllocationState::kOpen, AllocationState::kConfirmed,
                            AllocationState::kExhausted, AllocationState::kCancelled}) {
    if (ToString(s) == text) return s;
  }
  return std::nullopt;
}

std::string_view ToString(EventAction a) {
  switch (a) {
    case EventAction::kCreate:
      return "create";
    case EventAction::kUpdate:
      return "update";
    case EventAction::kAccepted:
      return "accepted";
    case EventAction::kRejected:
      return "rejected";
    case EventAction::kTimeout:
      return "timeout";
  }
  return "unknown";
}

std::optional<EventAction> ParseEventAction(std::string_view text) {
  for (EventAction a : {EventAction::kCreate, EventAction::kUpdate, EventAction::kAccepted,
                        EventAction::kRejected, EventAction::kTimeout}) {
    if (ToString(a) == text) return a;
  }
  return std::nullopt;
}

std::string_view ToString(CheckStatus s) {
  switch (s) {
    case CheckStatus::kAsked:
      return "asked";
    case CheckStatus::kAccepted:
      return "accepted";
    case CheckStatus::kRejected:
      return "rejected";
    case CheckStatus::kTimedOut:
      return "timed-out";
  }
  return "unknown";
}

std::optional<CheckStatus> ParseCheckStatus(std::string_view text) {
  for (CheckStatus s : {CheckStatus::kAsked, CheckStatus::kAccepted, CheckStatus::kRejected,
                        CheckStatus::kTimedOut}) {
    if (ToString(s) == text) return s;
  }
  return std::nullopt;
}

std::string_view ToString(WarehousePolicy p) {
  return p == WarehousePolicy::kCheckFirst ? "check-first" : "direct-then-confirm";
}

std::string_view ToString(DeliveryState s) {
  switch (s) {
    case DeliveryState::kPending:
      return "pending";
    case DeliveryState::kSucceeded:
      return "succeeded";
    case DeliveryState::kDead:
      return "dead";
  }
  return "unknown";
}

std::optional<DeliveryState> ParseDeliveryState(std::string_view text) {
  for (DeliveryState s :
       {DeliveryState::kPending, DeliveryState::kSucceeded, DeliveryState::kDead}) {
    if (ToString(s) == text) return s;
  }
  return std::nullopt;
}

WarehouseCatalog::WarehouseCatalog(const std::vector<WarehouseInfo>& warehouses) {
  for (const WarehouseInfo& w : warehouses) by_id_.emplace(w.id, w);
}

const WarehouseInfo* WarehouseCatalog::Find(std::int64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

bool WarehouseScope::Allows(std::int64_t warehouse_id) const {
  return !only || std::find(only->begin(), only->end(), warehouse_id) != only->end();
}

std::string CannotUpdateMessage(RequestStatus current) {
  return "You can't update allocation request, which is in status " +
         std::string(ToString(current)) + ".";
}

FlowStep DecideFlowStep(int current_group, int group_count, int current_group_pending) {
  if (current_group_pending > 0) return FlowStep::kWait;
  return current_group + 1 < group_count ? FlowStep::kNextGroup : FlowStep::kExhausted;
}

}  // namespace allocation_relay
