// StoreBackend: one kind of database behind Store (store.h). Store keeps the rules (flow.cpp,
// deliveries.cpp) and hands a backend what is specific to it: its connections, its schema, its
// write transactions (as StoreTransaction) and its reads, spelt for its indexes. Each backend
// lives in a folder of its own (sqlite/).
//
// Thread safety as Store: one thread uses a backend object; a backend may share its writes
// with the other backend objects of the same database in the process (SQLite's group commit).
// No method throws: failures are StoreError values.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_BACKEND_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "allocation_relay/store.h"
#include "transaction.h"

namespace allocation_relay {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;

  // Runs `op` in one write transaction: kept if it returns true, undone if it returns false or
  // throws. Returns the error that undid it (op's own, or the commit's), if any; then nothing
  // of `op` is kept.
  virtual std::optional<StoreError> Write(const std::function<bool(StoreTransaction&)>& op) = 0;

  virtual StoreResult<int> SchemaVersion() = 0;
  virtual StoreResult<std::optional<TimePoint>> NextExpiration() = 0;
  virtual StoreResult<std::optional<AllocationRequest>> GetRequest(std::int64_t request_id) = 0;
  virtual StoreResult<std::optional<Allocation>> GetAllocationByOrder(
      std::int64_t order_number) = 0;
  virtual StoreResult<std::vector<AllocationRequest>> ListRequests(const RequestQuery& query) = 0;
  // Store::ListOrderRequests. REQUIRES: query.order_numbers is {order_number}; no after_id or
  // offset (Store sets them).
  virtual StoreResult<std::optional<std::vector<AllocationRequest>>> ListOrderRequests(
      std::int64_t order_number, const RequestQuery& query) = 0;
  virtual StoreResult<std::vector<OutboxEvent>> ListUnbatchedEvents(
      std::optional<std::int64_t> warehouse, int limit) = 0;
  virtual StoreResult<std::vector<std::int64_t>> WarehousesWithEventsAfter(
      std::int64_t event_id) = 0;
  virtual StoreResult<std::vector<Delivery>> ListDeliveries(std::optional<DeliveryState> state,
                                                            std::optional<std::int64_t> warehouse,
                                                            int limit) = 0;
  virtual StoreResult<std::vector<DeliveryAttempt>> ListAttempts(std::int64_t delivery_id) = 0;
  virtual StoreResult<std::vector<OutboxEvent>> EventsOfRequests(
      std::span<const std::int64_t> request_ids, std::span<const std::int64_t> check_ids) = 0;
  virtual StoreResult<std::optional<Delivery>> GetDelivery(std::int64_t delivery_id) = 0;
  // What Store::ReadActivity sums (activity.cpp), read in one snapshot, of the warehouses in
  // `scope` only: the open work by warehouse, read in the partial indexes of open work alone;
  // the disabled webhooks; the last successes; and the activity rows of minutes at or after
  // `since`.
  struct ActivityRead {
    enum class Count {
      kPendingRequests,
      kAskedChecks,
      kQueuedEvents,
      kPendingDeliveries,
      kDeadDeliveries
    };
    struct CountRow {
      Count kind = Count::kPendingRequests;
      std::int64_t warehouse_id = 0, count = 0;
    };
    struct Disabled {
      std::int64_t warehouse_id = 0;
      TimePoint at;
      std::string reason;
    };
    std::vector<CountRow> counts;
    std::vector<Disabled> disabled;
    std::vector<std::pair<std::int64_t, TimePoint>> last_successes;
    std::vector<StoreTransaction::ActivityRow> activity;
  };
  virtual StoreResult<ActivityRead> ReadActivity(const WarehouseScope& scope, TimePoint since) = 0;
  // Store::ListDeliveryPage. REQUIRES: query.limit > 0.
  virtual StoreResult<std::vector<DeliverySummary>> ListDeliveryPage(
      const DeliveryQuery& query) = 0;
  virtual StoreResult<bool> BackupTo(const std::string& path) = 0;
  virtual StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>>
  CountDeliveriesByState() = 0;
  virtual StoreResult<std::vector<std::pair<std::int64_t, std::int64_t>>>
  UnbatchedEventsByWarehouse() = 0;
  virtual StoreResult<std::int64_t> MaxEventId() = 0;
  virtual StoreResult<std::vector<std::int64_t>> DisabledWebhooks() = 0;
  virtual StoreResult<std::vector<std::string>> ExplainListRequestsForTest(
      const RequestQuery& query) = 0;
  virtual StoreResult<std::vector<std::string>> ExplainExpiryScanForTest() = 0;
  virtual StoreResult<std::vector<std::string>> ExplainNextExpirationForTest() = 0;
  virtual StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>>
  CountRequestsByStatus() = 0;
  virtual StoreResult<std::vector<std::pair<CheckStatus, std::int64_t>>> CountChecksByStatus() = 0;
  virtual StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>>
  CountAllocationsByState() = 0;
  virtual StoreResult<std::optional<TimePoint>> OldestFinishedAllocation() = 0;
  virtual StoreResult<bool> Ping() = 0;
  virtual StoreResult<bool> IntegrityCheck() = 0;
  virtual WriteGroupStats GroupStats() const = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_BACKEND_H_
