// The domain of the store flows, "Direct, then confirm" and "Check first, then allocate":
// statuses, allocations, allocation requests, checks and the outbox events that tell warehouses
// about them (SPEC sections 2 and 12). Plain value types; the
// transitions themselves are Store methods, each one atomic SQLite transaction.
#ifndef ALLOCATION_RELAY_DOMAIN_H_
#define ALLOCATION_RELAY_DOMAIN_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "allocation_relay/clock.h"

namespace allocation_relay {

enum class RequestStatus {
  kAllocated,
  kSent,
  kFailed,
  kConfirmed,
  kRejected,
  kTimedOut,
  kOutdated
};

inline constexpr RequestStatus kAllRequestStatuses[] = {
    RequestStatus::kAllocated, RequestStatus::kSent,     RequestStatus::kFailed,
    RequestStatus::kConfirmed, RequestStatus::kRejected, RequestStatus::kTimedOut,
    RequestStatus::kOutdated};

// Centra's spelling: "allocated", "sent", "failed", "confirmed", "rejected", "timed-out",
// "outdated".
std::string_view ToString(RequestStatus s);
std::optional<RequestStatus> ParseRequestStatus(std::string_view text);

// Pending: waiting for the warehouse, webhook delivered or not (allocated, sent, failed).
bool IsPending(RequestStatus s);
// Confirmable while the allocation is open: pending or timed-out.
bool IsConfirmable(RequestStatus s);
// Final: never changes again (confirmed, rejected, outdated).
bool IsFinal(RequestStatus s);

enum class AllocationState { kOpen, kConfirmed, kExhausted, kCancelled };
std::string_view ToString(AllocationState s);
std::optional<AllocationState> ParseAllocationState(std::string_view text);

// An allocation-request event is `create` or `update`; a check_first event `create`,
// `accepted`, `rejected` or `timeout` (Centra's actions).
enum class EventAction { kCreate, kUpdate, kAccepted, kRejected, kTimeout };
std::string_view ToString(EventAction a);
std::optional<EventAction> ParseEventAction(std::string_view text);

// A check of a "Check first, then allocate" warehouse: asked until it answers (POST
// /check-first) or its time runs out; the other three are final.
enum class CheckStatus { kAsked, kAccepted, kRejected, kTimedOut };
inline constexpr CheckStatus kAllCheckStatuses[] = {CheckStatus::kAsked, CheckStatus::kAccepted,
                                                    CheckStatus::kRejected, CheckStatus::kTimedOut};
std::string_view ToString(CheckStatus s);  // "asked", "accepted", "rejected", "timed-out"
std::optional<CheckStatus> ParseCheckStatus(std::string_view text);

// How a warehouse takes part in the flow (config `policy`).
enum class WarehousePolicy {
  kDirectThenConfirm,  // gets an allocation request and confirms or rejects it
  kCheckFirst,         // is asked first, with the group's other check-first warehouses
};
std::string_view ToString(WarehousePolicy p);  // "direct-then-confirm", "check-first"

struct OrderRef {
  std::string id;  // hex string, e.g. "486e13eaaa65d5ff1e87c997b5dce54e"
  std::int64_t number = 0;
};

struct OrderLine {
  std::int64_t line_id = 0;
  std::int64_t quantity = 0;
  std::int64_t stock_item_id = 0;
};

// Candidate warehouses by priority: {{3, 4}, {7}} asks 3 and 4 first, then 7.
using PriorityGroups = std::vector<std::vector<std::int64_t>>;

// One request to one warehouse; carries its order and all lines, as the API shows it.
struct AllocationRequest {
  std::int64_t id = 0;
  std::int64_t allocation_id = 0;
  RequestStatus status = RequestStatus::kAllocated;
  std::int64_t warehouse_id = 0;
  std::string warehouse_name;  // as configured when the request was made
  int group_index = 0;         // index into the allocation's PriorityGroups
  TimePoint created_at;
  TimePoint expires_at;
  TimePoint updated_at;
  OrderRef order;
  // The order's lines exactly as the API shows them, a JSON array in line id order:
  // [{"lineId":73,"quantity":5,"stockItemId":1}]. Kept as text because it is only ever copied
  // into answers (render.h: LinesJson / ParseLinesJson convert).
  std::string lines_json;
};

// One check of one check-first warehouse in one allocation.
struct Check {
  std::int64_t id = 0;
  std::int64_t allocation_id = 0;
  std::int64_t warehouse_id = 0;
  int group_index = 0;
  CheckStatus status = CheckStatus::kAsked;
  TimePoint created_at;
  TimePoint expires_at;  // when an unanswered check times out
  TimePoint updated_at;
};

// One allocation per order, with every request made for it (ordered by id).
struct Allocation {
  std::int64_t id = 0;
  OrderRef order;
  std::vector<OrderLine> lines;
  PriorityGroups groups;
  int current_group = 0;
  AllocationState state = AllocationState::kOpen;
  std::optional<std::int64_t> confirmed_warehouse_id;
  TimePoint created_at;
  TimePoint updated_at;
  std::vector<AllocationRequest> requests;
  std::vector<Check> checks;  // of its check-first warehouses, ordered by id
};

// An allocation as submitted by the order system, before it is stored.
struct NewAllocation {
  OrderRef order;
  std::vector<OrderLine> lines;
  PriorityGroups groups;
};

// A state change a warehouse must hear of, queued in the same transaction as the change. About
// an allocation request (request_id), or about a check (check_id, a check_first event).
struct OutboxEvent {
  std::int64_t id = 0;
  std::int64_t warehouse_id = 0;
  std::int64_t request_id = 0;  // 0 for a check_first event
  std::int64_t check_id = 0;    // 0 for an allocation-request event
  EventAction action = EventAction::kCreate;
  RequestStatus status = RequestStatus::kAllocated;  // the request's status the event reports
  TimePoint created_at;
  std::optional<std::int64_t> delivery_id;  // set once the event is put into a batch
};

// A batch of outbox events sent as one webhook call, retried as it is under one delivery id.
enum class DeliveryState { kPending, kSucceeded, kDead };
std::string_view ToString(DeliveryState s);
std::optional<DeliveryState> ParseDeliveryState(std::string_view text);

struct Delivery {
  std::int64_t id = 0;  // 0 until stored (a new delivery is stored with its first attempt)
  std::string uid;      // the delivery id receivers see (webhook-id)
  std::int64_t warehouse_id = 0;
  DeliveryState state = DeliveryState::kPending;
  // The events JSON, fixed when the batch was formed; not kept once it succeeded (nothing sends
  // it again; its events and requests render it again).
  std::string document;
  int attempt_count = 0;
  TimePoint next_attempt_at;
  std::optional<TimePoint> lease_until;  // claimed by a dispatcher until then
  TimePoint created_at;
  std::vector<std::int64_t> request_ids;  // the requests its events are about, in event order
  std::vector<std::int64_t> event_ids;    // its events, while not stored (id 0)
};

// One attempt to deliver a Delivery.
struct DeliveryAttempt {
  std::int64_t delivery_id = 0;
  int attempt = 0;  // 1 for the first
  TimePoint started_at;
  Micros duration{0};
  int http_status = 0;  // 0: no HTTP answer (network error, timeout)
  std::string error;
  std::string response_head;  // the first bytes of the response body
};

// What an attempt means for its delivery.
enum class AttemptOutcome {
  kSucceeded,  // 2xx: the delivery is done; its requests allocated/failed -> sent
  kRetry,      // failed: pending again at the given time; its requests allocated -> failed
  kDead,       // failed and no retries left: kept as dead; allocated -> failed
};

// What a check_first event says: its order (the event's `id`) and, for `create`, every
// warehouse asked with it (its group's checks, by check id) and when each check runs out.
struct CheckEventSubject {
  std::int64_t check_id = 0;
  std::int64_t order_number = 0;
  std::int64_t warehouse_id = 0;
  std::vector<std::pair<std::int64_t, TimePoint>> asked;  // (warehouse, expires_at)
};

// What the flow needs to know of a configured warehouse.
struct WarehouseInfo {
  std::int64_t id = 0;
  std::string name;
  // A check-first warehouse's time to answer its check; a direct one's to confirm a request.
  std::chrono::milliseconds confirm_timeout{std::chrono::hours(1)};
  WarehousePolicy policy = WarehousePolicy::kDirectThenConfirm;
};

// The configured warehouses by id. Immutable after construction; safe to share across threads.
class WarehouseCatalog {
 public:
  WarehouseCatalog() = default;
  explicit WarehouseCatalog(const std::vector<WarehouseInfo>& warehouses);
  // Returns nullptr for an unknown id.
  const WarehouseInfo* Find(std::int64_t id) const;
  std::size_t size() const { return by_id_.size(); }

 private:
  std::unordered_map<std::int64_t, WarehouseInfo> by_id_;
};

// Which warehouses a caller may see: all of them, or a listed few (a scoped API key).
struct WarehouseScope {
  std::optional<std::vector<std::int64_t>> only;  // nullopt: every warehouse
  bool Allows(std::int64_t warehouse_id) const;
};

// Centra's PUT /allocation-request error strings, byte for byte.
inline constexpr const char* kRequestNotFoundMessage = "Allocation request not found";
// "You can't update allocation request, which is in status <status>."
std::string CannotUpdateMessage(RequestStatus current);

// Centra's POST /check-first error strings, byte for byte.
inline constexpr const char* kOrderDoesNotExistMessage = "order does not exist";
inline constexpr const char* kFailedToAllocateMessage = "failed to allocate stock";

// What the flow does once no request of the current group is pending any more.
enum class FlowStep { kWait, kNextGroup, kExhausted };

// REQUIRES: current_group < group_count.
// `current_group_pending` is how many requests of the current group are still pending.
FlowStep DecideFlowStep(int current_group, int group_count, int current_group_pending);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DOMAIN_H_
