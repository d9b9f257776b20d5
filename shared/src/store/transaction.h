// StoreTransaction: the row operations of one write transaction, as a storage backend provides
// them. The rules of the allocation flow (flow.cpp) and of webhook deliveries (deliveries.cpp)
// are written once against this interface; each backend (sqlite/, and any later one) implements
// it in its own SQL, and decides nothing itself.
//
// A StoreTransaction exists only inside StoreBackend::Write, on the thread running it. Every
// method may throw (the backend's own exceptions, or StoreError); Write turns them into a
// StoreError value and undoes the write.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_TRANSACTION_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_TRANSACTION_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "allocation_relay/clock.h"
#include "allocation_relay/domain.h"
#include "allocation_relay/store.h"

namespace allocation_relay {

// The sets of request statuses a move may start from. Fixed sets, so that a backend can spell
// each as its indexes need.
enum class StatusSet {
  kPending,      // allocated, sent, failed
  kConfirmable,  // pending or timed-out
  kSendable,     // allocated or failed: may become sent
  kUnsent,       // allocated: may become failed
};

// What the flow needs of an allocation row.
struct AllocationRow {
  std::int64_t id = 0;
  AllocationState state = AllocationState::kOpen;
  int current_group = 0;
  PriorityGroups groups;
  OrderRef order;
  std::string lines_json;
};

// A request with the state of its allocation: what an update checks first.
struct RequestHead {
  RequestStatus status;
  std::int64_t warehouse_id;
  std::int64_t allocation_id;
  int group_index;
  AllocationState allocation_state;
  int current_group;
};

class StoreTransaction {
 public:
  virtual ~StoreTransaction() = default;

  // --- Allocations and requests (flow.cpp) ---

  // The allocation of an order: its id and state.
  virtual std::optional<std::pair<std::int64_t, AllocationState>> AllocationByOrder(
      std::int64_t order_number) = 0;
  // Inserts an open allocation at its first group and returns its id; nullopt (nothing written)
  // if the order already has an allocation. One operation, so that a backend with round trips
  // checks and inserts at once.
  virtual std::optional<std::int64_t> InsertAllocation(const OrderRef& order,
                                                       const std::string& groups_json,
                                                       const std::string& lines_json,
                                                       TimePoint now) = 0;
  // Throws StoreError (kCorrupt) if there is none: a request points at it.
  virtual AllocationRow ReadAllocation(std::int64_t allocation_id) = 0;
  // Moves an open allocation's flow to `group`. Nothing if it is not open.
  virtual void SetCurrentGroup(std::int64_t allocation_id, int group, TimePoint now) = 0;
  // What the flow closes when an allocation closes: its confirmable requests (outdated) and
  // its asked checks (rejected), each as (id, warehouse id), oldest first.
  struct OpenWork {
    std::vector<std::pair<std::int64_t, std::int64_t>> requests;
    std::vector<std::pair<std::int64_t, std::int64_t>> checks;
  };
  // Moves an open allocation to `to` (confirmed: by `confirmed_warehouse_id`). nullopt if it was
  // not open; else its open work, without the request `keep`. One operation, so that a backend
  // with round trips reads them as it closes.
  virtual std::optional<OpenWork> CloseAllocation(std::int64_t allocation_id, AllocationState to,
                                                  std::int64_t confirmed_warehouse_id,
                                                  std::int64_t keep, TimePoint now) = 0;

  // Inserts an `allocated` request, pending until `expires`; nullopt (nothing written) if the
  // warehouse already has a request in this allocation.
  virtual std::optional<std::int64_t> InsertRequest(const AllocationRow& allocation,
                                                    const WarehouseInfo& warehouse, int group_index,
                                                    TimePoint now, TimePoint expires) = 0;
  virtual std::optional<RequestHead> ReadRequestHead(std::int64_t request_id) = 0;
  // What a priority group of an allocation holds: the flow moves on from it once nothing is
  // pending or asked.
  struct GroupCounts {
    int pending_requests = 0;
    int requests = 0;  // any status: its direct-then-confirm part has begun
    int asked_checks = 0;
  };
  virtual GroupCounts CountGroup(std::int64_t allocation_id, int group_index) = 0;
  // Pending requests whose expiration is <= now, soonest first.
  struct ExpiredRequest {
    std::int64_t id, allocation_id, warehouse_id;
  };
  virtual std::vector<ExpiredRequest> ExpiredRequests(TimePoint now, int limit) = 0;
  // Moves the request to `to` if its status is in `from`; false if it was not.
  virtual bool MoveRequest(std::int64_t request_id, RequestStatus to, StatusSet from,
                           TimePoint now) = 0;
  // The same for each of `ids`; returns how many moved.
  virtual int MoveRequests(std::span<const std::int64_t> ids, RequestStatus to, StatusSet from,
                           TimePoint now) = 0;
  // Appends an event to the webhook outbox.
  virtual void QueueEvent(std::int64_t warehouse_id, std::int64_t request_id, EventAction action,
                          RequestStatus status, TimePoint now) = 0;

  // --- Checks ("Check first, then allocate", flow.cpp) ---

  // Inserts an `asked` check, timing out at `expires`; nullopt (nothing written) if the
  // warehouse already has a check in this allocation.
  virtual std::optional<std::int64_t> InsertCheck(std::int64_t allocation_id,
                                                  std::int64_t warehouse_id, int group_index,
                                                  TimePoint now, TimePoint expires) = 0;
  // A warehouse's check in an order's allocation, with the allocation's state. The allocation
  // is locked first where the backend has row locks (as ReadRequestHead).
  struct CheckHead {
    std::int64_t id = 0;
    CheckStatus status = CheckStatus::kAsked;
    std::int64_t allocation_id = 0;
    int group_index = 0;
    AllocationState allocation_state = AllocationState::kOpen;
    int current_group = 0;
    TimePoint expires_at;  // the check's expiry: no answer is taken from then on
  };
  virtual std::optional<CheckHead> ReadCheckHead(std::int64_t order_number,
                                                 std::int64_t warehouse_id) = 0;
  // Moves an asked check to `to`; false if it was not asked.
  virtual bool AnswerCheck(std::int64_t check_id, CheckStatus to, TimePoint now) = 0;
  // Asked checks whose expiration is <= now, soonest first.
  struct ExpiredCheck {
    std::int64_t id, allocation_id, warehouse_id;
  };
  virtual std::vector<ExpiredCheck> ExpiredChecks(TimePoint now, int limit) = 0;
  // Appends a check_first event about `check_id` to the webhook outbox; `status` is the
  // check's after the change the event reports.
  virtual void QueueCheckEvent(std::int64_t warehouse_id, std::int64_t check_id, EventAction action,
                               CheckStatus status, TimePoint now) = 0;

  // --- Webhook deliveries (deliveries.cpp) ---

  // The database's secret salt for delivery uids (created with the schema).
  virtual const std::string& DeliverySalt() = 0;
  // A pending delivery as the claim reads it.
  struct PendingDelivery {
    std::int64_t id = 0;
    TimePoint next_attempt_at;
    std::optional<TimePoint> lease_until;
  };
  // A warehouse's pending deliveries with ids > `after_id`, oldest first.
  virtual std::vector<PendingDelivery> PendingDeliveries(std::int64_t warehouse_id,
                                                         std::int64_t after_id, int limit) = 0;
  // Its pending deliveries that are due at `now` and not leased at `lease_now` (LeaseClock),
  // oldest first.
  virtual std::vector<std::int64_t> DueDeliveries(std::int64_t warehouse_id, TimePoint now,
                                                  TimePoint lease_now, int limit) = 0;
  // The earliest next attempt among its pending deliveries not due at `now`.
  virtual std::optional<TimePoint> NextDueDelivery(std::int64_t warehouse_id, TimePoint now) = 0;
  // The clock leases are judged by, at `now` on the caller's clock: the database's on a shared
  // server (PostgreSQL: hosts' clocks are never compared), `now` itself on SQLite (one host).
  // Every lease time below is on this clock.
  virtual TimePoint LeaseClock(TimePoint now) = 0;
  // Takes or renews the warehouse's lease for `owner` until `until`, unless another owner's
  // lease runs past `now`; false if it does.
  virtual bool ClaimWarehouse(std::int64_t warehouse_id, const std::string& owner, TimePoint now,
                              TimePoint until) = 0;
  // Gives the warehouse's lease up if `owner` holds it.
  virtual void ReleaseWarehouse(std::int64_t warehouse_id, const std::string& owner) = 0;
  // Marks `owner` live until `until` (the lease clock), forgets dispatchers not seen live at
  // `now`, and returns the live ones' owners, sorted. An `until` of `now` takes `owner` out.
  virtual std::vector<std::string> LiveDispatchers(const std::string& owner, TimePoint now,
                                                   TimePoint until) = 0;
  // Leases a pending delivery to `owner` until `until` unless another owner's lease runs past
  // `now`; false if it does.
  virtual bool ClaimLease(std::int64_t delivery_id, const std::string& owner, TimePoint now,
                          TimePoint until) = 0;
  // Renews (or, with nullopt, releases) a pending delivery's lease if `owner` holds it.
  virtual void SetLease(std::int64_t delivery_id, const std::string& owner,
                        std::optional<TimePoint> until) = 0;
  virtual std::optional<Delivery> ReadDelivery(std::int64_t delivery_id) = 0;
  // A warehouse's outbox events not yet in a delivery with ids > `after_event`, oldest first,
  // each with what it is about: its request, or its check (a check_first event).
  struct UnbatchedEvent {
    OutboxEvent event;
    std::optional<AllocationRequest> request;
    std::optional<CheckEventSubject> check;
  };
  virtual std::vector<UnbatchedEvent> UnbatchedWithSubjects(std::int64_t warehouse_id,
                                                            std::int64_t after_event,
                                                            int limit) = 0;
  // A delivery formed in this round, after its first call: what InsertDeliveries stores.
  struct FirstAttempt {
    const Delivery* formed = nullptr;  // its uid, warehouse, events, requests and creation time
    DeliveryState state = DeliveryState::kPending;
    bool keep_document = true;  // false: stored without its document
    TimePoint next_attempt_at;
    const TimePoint* finished_at = nullptr;  // null while pending
    DeliveryAttempt attempt;                 // the first (response head already text)
  };
  // Stores each delivery with its first attempt, and puts those of its events that are in no
  // delivery yet into it. Returns their ids, in order. All of a round's new deliveries come in
  // one call, so that a backend with round trips can write them together.
  virtual std::vector<std::int64_t> InsertDeliveries(std::span<const FirstAttempt> firsts) = 0;
  // Sets a stored pending delivery with attempt_count `number` - 1 to attempt `number`'s outcome
  // (the lease released; the document dropped if `drop_document`) and returns its warehouse;
  // nullopt (nothing written) if it was not so.
  virtual std::optional<std::int64_t> AdvanceDelivery(std::int64_t delivery_id, int number,
                                                      DeliveryState state,
                                                      TimePoint next_attempt_at,
                                                      const TimePoint* finished_at,
                                                      bool drop_document) = 0;
  virtual void InsertAttempt(std::int64_t delivery_id, const DeliveryAttempt& attempt) = 0;

  // --- Console activity (deliveries.cpp) ---

  // What one warehouse's recorded attempts add to one minute's activity.
  struct ActivityRow {
    TimePoint minute;  // its start
    std::int64_t warehouse_id = 0;
    std::int64_t delivered = 0, failed_attempts = 0, dead = 0;
    std::array<std::int64_t, kCallDurationBuckets> calls{};  // by duration bucket
  };
  // Adds each row to the kept (minute, warehouse) row, creating it at zero. `rows` hold no key
  // twice and come sorted by it (so concurrent writers lock in one order).
  virtual void AddActivity(std::span<const ActivityRow> rows) = 0;
  // Keeps each (warehouse, start of a successful call) as the warehouse's last success unless
  // a later one is kept. One entry per warehouse, sorted.
  virtual void NoteLastSuccesses(std::span<const std::pair<std::int64_t, TimePoint>> successes) = 0;
  // Deletes the activity of minutes before `before`; returns the rows deleted.
  virtual std::int64_t DeleteActivityBefore(TimePoint before) = 0;

  // --- Retention (retention.cpp) ---

  // Final allocations last changed before `cutoff` whose (updated_at, id) is after the given
  // pair, in that order.
  struct FinishedAllocation {
    std::int64_t id = 0;
    std::int64_t updated_at_us = 0;
  };
  virtual std::vector<FinishedAllocation> FinishedAllocationsBefore(TimePoint cutoff,
                                                                    std::int64_t after_updated_us,
                                                                    std::int64_t after_id,
                                                                    int limit) = 0;
  // Those of `allocation_ids` with an event in a pending delivery, or not yet in a delivery and
  // of one of `webhook_warehouses` (nullopt: of any warehouse).
  virtual std::vector<std::int64_t> AllocationsAwaitingDelivery(
      std::span<const std::int64_t> allocation_ids,
      const std::optional<std::vector<std::int64_t>>& webhook_warehouses) = 0;
  // The allocations of the newest request and of the newest outbox event.
  virtual std::vector<std::int64_t> NewestAllocations() = 0;
  // Deletes the allocations with their requests, checks and outbox events.
  struct DeletedAllocations {
    std::int64_t allocations = 0, requests = 0, checks = 0, events = 0;
    std::vector<std::int64_t> deliveries;  // that held their events
  };
  virtual DeletedAllocations DeleteAllocations(std::span<const std::int64_t> allocation_ids) = 0;
  // Deletes those of `delivery_ids` that are not pending, have no event left and are not the
  // newest delivery, with their attempts.
  struct DeletedDeliveries {
    std::int64_t deliveries = 0, attempts = 0;
    std::int64_t attempts_before = 0;  // of those attempts, the ones started before the cutoff
  };
  virtual DeletedDeliveries DeleteDeliveriesWithoutEvents(
      std::span<const std::int64_t> delivery_ids, std::optional<TimePoint> attempts_cutoff) = 0;
  // Deletes up to `limit` attempts that started before `cutoff`, oldest first; returns how many.
  virtual std::int64_t DeleteAttemptsBefore(TimePoint cutoff, int limit) = 0;
  virtual std::int64_t CountAttemptsBefore(TimePoint cutoff) = 0;

  // --- Operator actions ---

  // Turns the warehouse's webhook off; false if it already was.
  virtual bool DisableWebhook(std::int64_t warehouse_id, const std::string& reason,
                              TimePoint now) = 0;
  // Turns it on again; false if it was not off.
  virtual bool EnableWebhook(std::int64_t warehouse_id) = 0;
  // Dead deliveries (of one warehouse, or all) become pending, due at `now`; returns how many.
  virtual int ResendDead(std::optional<std::int64_t> warehouse_id, TimePoint now) = 0;
  // The warehouse of a stored delivery; nullopt if there is none.
  virtual std::optional<std::int64_t> DeliveryWarehouse(std::int64_t delivery_id) = 0;
  // One dead delivery becomes pending, due at `now` (as ResendDead); false if it was not dead.
  virtual bool ResendDeadDelivery(std::int64_t delivery_id, TimePoint now) = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_TRANSACTION_H_
