// PgBackend: the store on a PostgreSQL database shared by any number of processes on any hosts
// (SPEC section 10). Each object owns one connection, used for its reads and its writes (not
// thread-safe: one per thread); PostgreSQL runs the writes of many connections at once, and the
// rules lock the rows they decide on (pg_transaction.h). A write's statements go out pipelined:
// BEGIN with the first statement, the commit with every statement whose result was not needed.
//
// Its methods are spread over files by topic: pg_backend.cpp (open, migrate, write, health),
// pg_queries.cpp (reads), pg_console_queries.cpp (the operator console's reads).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_BACKEND_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_BACKEND_H_

#include <memory>

#include "../backend.h"
#include "pg_connection.h"

namespace allocation_relay::postgresql {

class PgBackend final : public StoreBackend {
 public:
  // Connects to options.url (and, if options.create_and_migrate, migrates the schema under an
  // advisory lock, so processes starting at once migrate once). Throws StoreError.
  static std::unique_ptr<PgBackend> Open(const StoreOptions& options);
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
  explicit PgBackend(const StoreOptions& options);
  static void Migrate(Connection& c);
  static int VersionOf(Connection& c);
  void RollbackQuietly();
  // Wakes the dispatchers listening (EventSignal) after a write that queued outbox events.
  void Notify();

  Connection c_;
  std::string salt_;  // the delivery salt, read once
};

}  // namespace allocation_relay::postgresql

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_BACKEND_H_
