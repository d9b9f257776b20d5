// SqliteTransaction: StoreTransaction on the writer connection of a WriteGroup, inside the
// transaction the group opened. Not thread-safe: only the thread running a batch uses it.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SQLITE_TRANSACTION_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SQLITE_TRANSACTION_H_

#include <string>

#include "../transaction.h"
#include "connection.h"

namespace allocation_relay::sqlite {

class SqliteTransaction final : public StoreTransaction {
 public:
  explicit SqliteTransaction(Connection& connection) : c_(connection) {}

  std::optional<std::pair<std::int64_t, AllocationState>> AllocationByOrder(
      std::int64_t order_number) override;
  std::optional<std::int64_t> InsertAllocation(const OrderRef& order,
                                               const std::string& groups_json,
                                               const std::string& lines_json,
                                               TimePoint now) override;
  AllocationRow ReadAllocation(std::int64_t allocation_id) override;
  void SetCurrentGroup(std::int64_t allocation_id, int group, TimePoint now) override;
  std::optional<OpenWork> CloseAllocation(std::int64_t allocation_id, AllocationState to,
                                          std::int64_t confirmed_warehouse_id, std::int64_t keep,
                                          TimePoint now) override;
  std::optional<std::int64_t> InsertRequest(const AllocationRow& allocation,
                                            const WarehouseInfo& warehouse, int group_index,
                                            TimePoint now, TimePoint expires) override;
  std::optional<RequestHead> ReadRequestHead(std::int64_t request_id) override;
  GroupCounts CountGroup(std::int64_t allocation_id, int group_index) override;
  std::vector<ExpiredRequest> ExpiredRequests(TimePoint now, int limit) override;
  bool MoveRequest(std::int64_t request_id, RequestStatus to, StatusSet from,
                   TimePoint now) override;
  int MoveRequests(std::span<const std::int64_t> ids, RequestStatus to, StatusSet from,
                   TimePoint now) override;
  void QueueEvent(std::int64_t warehouse_id, std::int64_t request_id, EventAction action,
                  RequestStatus status, TimePoint now) override;
  std::optional<std::int64_t> InsertCheck(std::int64_t allocation_id, std::int64_t warehouse_id,
                                          int group_index, TimePoint now,
                                          TimePoint expires) override;
  std::optional<CheckHead> ReadCheckHead(std::int64_t order_number,
                                         std::int64_t warehouse_id) override;
  bool AnswerCheck(std::int64_t check_id, CheckStatus to, TimePoint now) override;
  std::vector<ExpiredCheck> ExpiredChecks(TimePoint now, int limit) override;
  void QueueCheckEvent(std::int64_t warehouse_id, std::int64_t check_id, EventAction action,
                       CheckStatus status, TimePoint now) override;

  const std::string& DeliverySalt() override;
  std::vector<PendingDelivery> PendingDeliveries(std::int64_t warehouse_id, std::int64_t after_id,
                                                 int limit) override;
  std::vector<std::int64_t> DueDeliveries(std::int64_t warehouse_id, TimePoint now,
                                          TimePoint lease_now, int limit) override;
  std::optional<TimePoint> NextDueDelivery(std::int64_t warehouse_id, TimePoint now) override;
  TimePoint LeaseClock(TimePoint now) override;
  bool ClaimWarehouse(std::int64_t warehouse_id, const std::string& owner, TimePoint now,
                      TimePoint until) override;
  void ReleaseWarehouse(std::int64_t warehouse_id, const std::string& owner) override;
  std::vector<std::string> LiveDispatchers(const std::string& owner, TimePoint now,
                                           TimePoint until) override;
  bool ClaimLease(std::int64_t delivery_id, const std::string& owner, TimePoint now,
                  TimePoint until) override;
  void SetLease(std::int64_t delivery_id, const std::string& owner,
                std::optional<TimePoint> until) override;
  std::optional<Delivery> ReadDelivery(std::int64_t delivery_id) override;
  std::vector<UnbatchedEvent> UnbatchedWithSubjects(std::int64_t warehouse_id,
                                                    std::int64_t after_event, int limit) override;
  std::vector<std::int64_t> InsertDeliveries(std::span<const FirstAttempt> firsts) override;
  std::optional<std::int64_t> AdvanceDelivery(std::int64_t delivery_id, int number,
                                              DeliveryState state, TimePoint next_attempt_at,
                                              const TimePoint* finished_at,
                                              bool drop_document) override;
  void InsertAttempt(std::int64_t delivery_id, const DeliveryAttempt& attempt) override;
  void AddActivity(std::span<const ActivityRow> rows) override;
  void NoteLastSuccesses(std::span<const std::pair<std::int64_t, TimePoint>> successes) override;
  std::int64_t DeleteActivityBefore(TimePoint before) override;

  // Retention (prune_rows.cpp).
  std::vector<FinishedAllocation> FinishedAllocationsBefore(TimePoint cutoff,
                                                            std::int64_t after_updated_us,
                                                            std::int64_t after_id,
                                                            int limit) override;
  std::vector<std::int64_t> AllocationsAwaitingDelivery(
      std::span<const std::int64_t> allocation_ids,
      const std::optional<std::vector<std::int64_t>>& webhook_warehouses) override;
  std::vector<std::int64_t> NewestAllocations() override;
  DeletedAllocations DeleteAllocations(std::span<const std::int64_t> allocation_ids) override;
  DeletedDeliveries DeleteDeliveriesWithoutEvents(
      std::span<const std::int64_t> delivery_ids,
      std::optional<TimePoint> attempts_cutoff) override;
  std::int64_t DeleteAttemptsBefore(TimePoint cutoff, int limit) override;
  std::int64_t CountAttemptsBefore(TimePoint cutoff) override;

  bool DisableWebhook(std::int64_t warehouse_id, const std::string& reason, TimePoint now) override;
  bool EnableWebhook(std::int64_t warehouse_id) override;
  int ResendDead(std::optional<std::int64_t> warehouse_id, TimePoint now) override;
  std::optional<std::int64_t> DeliveryWarehouse(std::int64_t delivery_id) override;
  bool ResendDeadDelivery(std::int64_t delivery_id, TimePoint now) override;

 private:
  std::vector<std::pair<std::int64_t, std::int64_t>> ConfirmableRequests(std::int64_t allocation_id,
                                                                         std::int64_t keep);
  std::int64_t InsertDelivery(const FirstAttempt& first);
  void AssignEvents(std::int64_t delivery_id, std::int64_t warehouse_id,
                    std::span<const std::int64_t> event_ids);

  Connection& c_;
  std::string salt_;  // DeliverySalt(), read once
};

// The SQL of the expiry scan (ExpiredRequests), for its query plan.
extern const char* const kExpiryScanSql;

}  // namespace allocation_relay::sqlite

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SQLITE_TRANSACTION_H_
