// Store: the public door. Writes run the rules (flow.cpp, deliveries.cpp) in one transaction of
// the backend; reads are the backend's own.
#include "allocation_relay/store.h"

#include "activity.h"
#include "backend.h"
#include "deliveries.h"
#include "flow.h"
#include "postgresql/pg_backend.h"
#include "postgresql/pg_event_signal.h"
#include "retention.h"
#include "sqlite/sqlite_backend.h"

namespace allocation_relay {
namespace {

// Runs `op(transaction, result)` as one write of `backend`; the result, or the error that undid
// the write.
template <typename T, typename Op>
StoreResult<T> WriteResult(StoreBackend& backend, Op&& op) {
  T result{};
  // A backend may run `op` more than once (a retried group or transaction): each run starts
  // from an empty result.
  if (std::optional<StoreError> error = backend.Write([&](StoreTransaction& t) -> bool {
        result = T{};
        return op(t, result);
      })) {
    return std::unexpected(std::move(*error));
  }
  return result;
}

}  // namespace

StoreOptions StoreOptionsFrom(const StoreConfig& config) {
  return StoreOptions{config.path,     config.synchronous, config.busy_timeout, true,
                      config.max_size, config.backend,     config.url,          config.pool};
}

Store::Store(std::unique_ptr<StoreBackend> backend) : backend_(std::move(backend)) {}
Store::~Store() = default;

std::unique_ptr<Store> Store::Open(const StoreOptions& options) {
  if (options.backend == StoreBackendKind::kPostgresql) {
    return std::unique_ptr<Store>(new Store(postgresql::PgBackend::Open(options)));
  }
  return std::unique_ptr<Store>(new Store(sqlite::SqliteBackend::Open(options)));
}

std::unique_ptr<EventSignal> EventSignal::Open(const StoreOptions& options) {
  if (options.backend != StoreBackendKind::kPostgresql) return nullptr;
  return std::make_unique<postgresql::PgEventSignal>(options);
}

int Store::LatestSchemaVersion() { return sqlite::SqliteBackend::LatestSchemaVersion(); }

StoreResult<CreateResult> Store::CreateAllocation(const NewAllocation& allocation, TimePoint now,
                                                  const WarehouseCatalog& catalog) {
  const flow::Intake intake(allocation);  // prepared outside the group commit's serial part
  return WriteResult<CreateResult>(*backend_, [&](StoreTransaction& t, CreateResult& result) {
    return flow::CreateAllocation(t, intake, now, catalog, result);
  });
}

StoreResult<UpdateResult> Store::ConfirmRequest(std::int64_t request_id,
                                                const WarehouseScope& scope, TimePoint now) {
  return WriteResult<UpdateResult>(*backend_, [&](StoreTransaction& t, UpdateResult& result) {
    return flow::ConfirmRequest(t, request_id, scope, now, result);
  });
}

StoreResult<UpdateResult> Store::RejectRequest(std::int64_t request_id, const WarehouseScope& scope,
                                               TimePoint now, const WarehouseCatalog& catalog) {
  return WriteResult<UpdateResult>(*backend_, [&](StoreTransaction& t, UpdateResult& result) {
    return flow::RejectRequest(t, request_id, scope, now, catalog, result);
  });
}

StoreResult<CheckResult> Store::AnswerCheck(const CheckAnswer& answer, const WarehouseScope& scope,
                                            TimePoint now, const WarehouseCatalog& catalog) {
  return WriteResult<CheckResult>(*backend_, [&](StoreTransaction& t, CheckResult& result) {
    return flow::AnswerCheck(t, answer, scope, now, catalog, result);
  });
}

StoreResult<ExpiryResult> Store::ExpireDue(TimePoint now, const WarehouseCatalog& catalog,
                                           int limit) {
  return WriteResult<ExpiryResult>(*backend_, [&](StoreTransaction& t, ExpiryResult& result) {
    return flow::ExpireDue(t, now, catalog, limit, result);
  });
}

StoreResult<CancelResult> Store::CancelAllocation(std::int64_t order_number, TimePoint now) {
  return WriteResult<CancelResult>(*backend_, [&](StoreTransaction& t, CancelResult& result) {
    return flow::CancelAllocation(t, order_number, now, result);
  });
}

StoreResult<int> Store::MarkSent(std::span<const std::int64_t> request_ids, TimePoint now) {
  return WriteResult<int>(*backend_, [&](StoreTransaction& t, int& moved) {
    moved = t.MoveRequests(request_ids, RequestStatus::kSent, StatusSet::kSendable, now);
    return true;
  });
}

StoreResult<int> Store::MarkFailed(std::span<const std::int64_t> request_ids, TimePoint now) {
  return WriteResult<int>(*backend_, [&](StoreTransaction& t, int& moved) {
    moved = t.MoveRequests(request_ids, RequestStatus::kFailed, StatusSet::kUnsent, now);
    return true;
  });
}

StoreResult<std::vector<Store::DeliveryTake>> Store::RecordAndTake(
    std::span<const AttemptRecord> records, std::span<const LeaseChange> leases,
    std::span<const DeliveryWant> wants, TimePoint now, const DocumentRenderer& render,
    const std::string& claimant) {
  return WriteResult<std::vector<DeliveryTake>>(
      *backend_, [&](StoreTransaction& t, std::vector<DeliveryTake>& takes) {
        return deliveries::RecordAndTake(t, records, leases, wants, now, render, claimant, takes);
      });
}

StoreResult<std::vector<std::string>> Store::LiveDispatchers(const std::string& claimant,
                                                             TimePoint now, Micros ttl) {
  return WriteResult<std::vector<std::string>>(
      *backend_, [&](StoreTransaction& t, std::vector<std::string>& live) {
        live = deliveries::LiveDispatchers(t, claimant, now, ttl);
        return true;
      });
}

StoreResult<bool> Store::DisableWebhook(std::int64_t warehouse_id, const std::string& reason,
                                        TimePoint now) {
  return WriteResult<bool>(*backend_, [&](StoreTransaction& t, bool& changed) {
    changed = t.DisableWebhook(warehouse_id, reason, now);
    return true;
  });
}

StoreResult<bool> Store::EnableWebhook(std::int64_t warehouse_id) {
  return WriteResult<bool>(*backend_, [&](StoreTransaction& t, bool& changed) {
    changed = t.EnableWebhook(warehouse_id);
    return true;
  });
}

StoreResult<int> Store::ResendDead(std::optional<std::int64_t> warehouse, TimePoint now) {
  return WriteResult<int>(*backend_, [&](StoreTransaction& t, int& count) {
    count = t.ResendDead(warehouse, now);
    return true;
  });
}

StoreResult<ResendOutcome> Store::ResendDeadDelivery(std::int64_t delivery_id,
                                                     const WarehouseScope& scope, TimePoint now) {
  return WriteResult<ResendOutcome>(*backend_, [&](StoreTransaction& t, ResendOutcome& outcome) {
    outcome = deliveries::ResendDeadDelivery(t, delivery_id, scope, now);
    return true;
  });
}

StoreResult<std::int64_t> Store::PruneActivity(TimePoint before) {
  return WriteResult<std::int64_t>(*backend_, [&](StoreTransaction& t, std::int64_t& deleted) {
    deleted = t.DeleteActivityBefore(before);
    return true;
  });
}

StoreResult<ActivityOverview> Store::ReadActivity(const WarehouseScope& scope,
                                                  TimePoint chart_since, TimePoint latency_since) {
  if (scope.only && scope.only->empty()) return ActivityOverview{};  // sees no warehouse
  auto read = backend_->ReadActivity(scope, std::min(chart_since, latency_since));
  if (!read) return std::unexpected(std::move(read.error()));
  return activity::Summarise(std::move(*read), scope, chart_since, latency_since);
}

StoreResult<std::vector<DeliverySummary>> Store::ListDeliveryPage(const DeliveryQuery& query) {
  if (query.limit <= 0 || (query.scope.only && query.scope.only->empty()) ||
      (query.warehouse && !query.scope.Allows(*query.warehouse))) {
    return std::vector<DeliverySummary>{};  // nothing the caller may see
  }
  return backend_->ListDeliveryPage(query);
}

StoreResult<PruneCounts> Store::PruneStep(const RetentionCutoffs& cutoffs, PruneCursor& cursor,
                                          int max_allocations, int max_attempts, bool dry_run) {
  PruneCursor next = cursor;
  PruneCounts counts;
  std::optional<StoreError> error = backend_->Write([&](StoreTransaction& t) {
    return retention::PruneStep(t, cutoffs, cursor, max_allocations, max_attempts, dry_run, counts,
                                next);
  });
  if (error) return std::unexpected(std::move(*error));
  cursor = next;  // only once the step is done: a failed one is tried again
  return counts;
}

// Reads: the backend's.
StoreResult<int> Store::SchemaVersion() { return backend_->SchemaVersion(); }
StoreResult<std::optional<TimePoint>> Store::NextExpiration() { return backend_->NextExpiration(); }
StoreResult<std::optional<AllocationRequest>> Store::GetRequest(std::int64_t request_id) {
  return backend_->GetRequest(request_id);
}
StoreResult<std::optional<Allocation>> Store::GetAllocationByOrder(std::int64_t order_number) {
  return backend_->GetAllocationByOrder(order_number);
}
StoreResult<std::vector<AllocationRequest>> Store::ListRequests(const RequestQuery& query) {
  return backend_->ListRequests(query);
}
StoreResult<std::optional<std::vector<AllocationRequest>>> Store::ListOrderRequests(
    std::int64_t order_number, const RequestQuery& filters) {
  RequestQuery query = filters;
  query.order_numbers = {order_number};
  query.warehouse_ids.clear();
  query.after_id = 0;
  query.offset = 0;
  // No page: UNIQUE (allocation_id, warehouse_id) bounds the rows by the order's warehouses.
  query.limit = std::numeric_limits<int>::max();
  return backend_->ListOrderRequests(order_number, query);
}
StoreResult<std::vector<OutboxEvent>> Store::ListUnbatchedEvents(
    std::optional<std::int64_t> warehouse, int limit) {
  return backend_->ListUnbatchedEvents(warehouse, limit);
}
StoreResult<std::vector<std::int64_t>> Store::WarehousesWithEventsAfter(std::int64_t event_id) {
  return backend_->WarehousesWithEventsAfter(event_id);
}
StoreResult<std::vector<Delivery>> Store::ListDeliveries(std::optional<DeliveryState> state,
                                                         std::optional<std::int64_t> warehouse,
                                                         int limit) {
  return backend_->ListDeliveries(state, warehouse, limit);
}
StoreResult<std::vector<DeliveryAttempt>> Store::ListAttempts(std::int64_t delivery_id) {
  return backend_->ListAttempts(delivery_id);
}
StoreResult<std::vector<OutboxEvent>> Store::EventsOfRequests(
    std::span<const std::int64_t> request_ids, std::span<const std::int64_t> check_ids) {
  return backend_->EventsOfRequests(request_ids, check_ids);
}
StoreResult<std::optional<Delivery>> Store::GetDelivery(std::int64_t delivery_id) {
  return backend_->GetDelivery(delivery_id);
}
StoreResult<bool> Store::BackupTo(const std::string& path) { return backend_->BackupTo(path); }
StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>> Store::CountDeliveriesByState() {
  return backend_->CountDeliveriesByState();
}
StoreResult<std::vector<std::pair<std::int64_t, std::int64_t>>>
Store::UnbatchedEventsByWarehouse() {
  return backend_->UnbatchedEventsByWarehouse();
}
StoreResult<std::int64_t> Store::MaxEventId() { return backend_->MaxEventId(); }
StoreResult<std::vector<std::int64_t>> Store::DisabledWebhooks() {
  return backend_->DisabledWebhooks();
}
StoreResult<std::vector<std::string>> Store::ExplainListRequestsForTest(const RequestQuery& query) {
  return backend_->ExplainListRequestsForTest(query);
}
StoreResult<std::vector<std::string>> Store::ExplainExpiryScanForTest() {
  return backend_->ExplainExpiryScanForTest();
}
StoreResult<std::vector<std::string>> Store::ExplainNextExpirationForTest() {
  return backend_->ExplainNextExpirationForTest();
}
StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>> Store::CountRequestsByStatus() {
  return backend_->CountRequestsByStatus();
}

StoreResult<std::vector<std::pair<CheckStatus, std::int64_t>>> Store::CountChecksByStatus() {
  return backend_->CountChecksByStatus();
}
StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>>
Store::CountAllocationsByState() {
  return backend_->CountAllocationsByState();
}
StoreResult<std::optional<TimePoint>> Store::OldestFinishedAllocation() {
  return backend_->OldestFinishedAllocation();
}
StoreResult<bool> Store::Ping() { return backend_->Ping(); }
StoreResult<bool> Store::IntegrityCheck() { return backend_->IntegrityCheck(); }
WriteGroupStats Store::GroupStats() const { return backend_->GroupStats(); }

}  // namespace allocation_relay
