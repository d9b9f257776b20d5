// SqliteBackend: the store on one SQLite file in WAL mode, shared by the processes of one
// machine. Each object owns one reading connection (not thread-safe: one per thread); its writes
// go through the WriteGroup of its file in this process (group commit), and SQLite serialises
// the writers of different processes.
//
// Its methods are spread over files by topic: sqlite_backend.cpp (open, migrate, write, backup,
// health), queries.cpp (the API's reads and counts), delivery_queries.cpp (outbox, deliveries
// and webhook reads), console_queries.cpp (the operator console's).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SQLITE_BACKEND_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SQLITE_BACKEND_H_

#include <memory>

#include "../backend.h"
#include "connection.h"
#include "write_group.h"

namespace allocation_relay::sqlite {

class SqliteBackend final : public StoreBackend {
 public:
  // Opens the file (creating, switching to WAL and migrating it if options.create_and_migrate).
  // Throws StoreError.
  static std::unique_ptr<SqliteBackend> Open(const StoreOptions& options);
  static int LatestSchemaVersion();

  std::optional<StoreError> Write(const std::function<bool(StoreTransaction&)>& op) override;

  StoreResult<int> SchemaVersion() override;
  StoreResult<std::optional<TimePoint>> NextExpiration() override;
  StoreResult<std::optional<AllocationRequest>> GetRequest(std::int64_t request_id) override;
  StoreResult<std::optional<Allocation>> GetAllocationByOrder(std::int64_t order_number) override;
  StoreResult<std::vector<AllocationRequest>> ListRequests(const RequestQuery& query) override;
  StoreResult<std::optional<std::vector<AllocationRequest>>> ListOrderRequests(
      std::int64_t order_number, const RequestQuery& query) override;
  StoreResult<std::vector<OutboxEvent>> ListUnbatchedEvents(std::optional<std::int64_t> warehouse,
                                                            int limit) override;
  StoreResult<std::vector<std::int64_t>> WarehousesWithEventsAfter(std::int64_t event_id) override;
  StoreResult<std::vector<Delivery>> ListDeliveries(std::optional<DeliveryState> state,
                                                    std::optional<std::int64_t> warehouse,
                                                    int limit) override;
  StoreResult<std::vector<DeliveryAttempt>> ListAttempts(std::int64_t delivery_id) override;
  StoreResult<std::vector<OutboxEvent>> EventsOfRequests(
      std::span<const std::int64_t> request_ids, std::span<const std::int64_t> check_ids) override;
  StoreResult<std::optional<Delivery>> GetDelivery(std::int64_t delivery_id) override;
  StoreResult<ActivityRead> ReadActivity(const WarehouseScope& scope, TimePoint since) override;
  StoreResult<std::vector<DeliverySummary>> ListDeliveryPage(const DeliveryQuery& query) override;
  StoreResult<bool> BackupTo(const std::string& path) override;
  StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>> CountDeliveriesByState()
      override;
  StoreResult<std::vector<std::pair<std::int64_t, std::int64_t>>> UnbatchedEventsByWarehouse()
      override;
  StoreResult<std::int64_t> MaxEventId() override;
  StoreResult<std::vector<std::int64_t>> DisabledWebhooks() override;
  StoreResult<std::vector<std::string>> ExplainListRequestsForTest(
      const RequestQuery& query) override;
  StoreResult<std::vector<std::string>> ExplainExpiryScanForTest() override;
  StoreResult<std::vector<std::string>> ExplainNextExpirationForTest() override;
  StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>> CountRequestsByStatus() override;
  StoreResult<std::vector<std::pair<CheckStatus, std::int64_t>>> CountChecksByStatus() override;
  StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>> CountAllocationsByState()
      override;
  StoreResult<std::optional<TimePoint>> OldestFinishedAllocation() override;
  StoreResult<bool> Ping() override;
  StoreResult<bool> IntegrityCheck() override;
  WriteGroupStats GroupStats() const override;

 private:
  SqliteBackend(const StoreOptions& options, std::shared_ptr<WriteGroup> group);

  Connection reader_;
  std::shared_ptr<WriteGroup> group_;
};

}  // namespace allocation_relay::sqlite

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SQLITE_BACKEND_H_
