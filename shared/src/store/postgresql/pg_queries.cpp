// The reads: the API's (requests, allocations), the dispatcher's and the operators' (outbox,
// deliveries, webhooks) and the metrics' counts.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "../id_list.h"
#include "allocation_relay/render.h"
#include "pg_backend.h"
#include "pg_rows.h"

namespace allocation_relay::postgresql {
namespace {

// A read of several statements sees one snapshot.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(Connection& c) : c_(c) {
    c_.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  ~ReadSnapshot() {
    try {
      if (!c_.Lost()) c_.Run("COMMIT");
    } catch (...) {
    }
  }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

 private:
  Connection& c_;
};

// " AND <column> IN (<ids>)"; " AND false" for no ids (PostgreSQL has no empty IN-list).
std::string ScopeSql(std::span<const std::int64_t> ids, const char* column) {
  if (ids.empty()) return " AND false";
  return std::string(" AND ") + column + " IN (" + JoinIds(ids) + ")";
}

// The SELECT of ListRequests; parameters: $1 after_id, $2 limit, $3 offset, $4 the warehouse
// name (only when the query has one). Statuses and ids are inlined (enums and integers, never
// user text). With an OFFSET the page is chosen over ids only, then its rows are read.
std::string ListRequestsSql(const RequestQuery& query, bool skipping) {
  std::vector<RequestStatus> statuses = query.statuses;
  std::sort(statuses.begin(), statuses.end());
  statuses.erase(std::unique(statuses.begin(), statuses.end()), statuses.end());
  const bool pending_only =
      statuses == std::vector<RequestStatus>{RequestStatus::kAllocated, RequestStatus::kSent,
                                             RequestStatus::kFailed};
  std::string inner = skipping ? "SELECT r.id FROM allocation_requests r "
                               : std::string(kRequestSelect) + "FROM allocation_requests r ";
  inner += "WHERE r.id > $1";
  if (!query.order_numbers.empty()) {
    inner += " AND r.order_number IN (" + JoinIds(query.order_numbers) + ")";
  }
  const bool by_warehouse = !query.warehouse_ids.empty() || query.scope.only;
  if (pending_only && by_warehouse) {
    // requests_pending_by_warehouse's own predicate: no other pending index matches it.
    inner += " AND r.status IN ('allocated', 'sent', 'failed')";
  } else if (pending_only) {
    inner += " AND r.pending = 1";
  } else if (!statuses.empty()) {
    inner += " AND r.status IN (";
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      inner += (i ? ", '" : "'") + std::string(ToString(statuses[i])) + "'";
    }
    inner += ")";
  }
  if (!query.warehouse_ids.empty()) {
    inner += " AND r.warehouse_id IN (" + JoinIds(query.warehouse_ids) + ")";
  }
  if (query.warehouse_name) inner += " AND r.warehouse_name = $4";
  if (query.scope.only) inner += ScopeSql(*query.scope.only, "r.warehouse_id");
  inner += " ORDER BY r.id LIMIT $2 OFFSET $3";
  if (!skipping) return inner;
  return std::string(kRequestSelect) + "FROM (" + inner +
         ") page JOIN allocation_requests r ON r.id = page.id ORDER BY r.id";
}

// ListOrderRequests: the query's page (ListRequestsSql, same parameters) beside whether the
// order exists for the query's scope (`known`, column 0): a row whose request columns are NULL
// when no request matches. Unscoped, the order exists with its allocation; scoped, with a
// request at one of the scope's warehouses.
std::string OrderRequestsSql(std::int64_t order_number, const RequestQuery& query) {
  std::string number = std::to_string(order_number);
  std::string known = query.scope.only
                          ? "SELECT 1 FROM allocation_requests WHERE order_number = " + number +
                                ScopeSql(*query.scope.only, "warehouse_id")
                          : "SELECT 1 FROM allocations WHERE order_number = " + number;
  return "SELECT k.known, page.* FROM (SELECT EXISTS (" + known + ") AS known) k LEFT JOIN (" +
         ListRequestsSql(query, false) + ") page ON true ORDER BY page.id";
}

Params ListParameters(const RequestQuery& query) {
  Params params;
  params.Add(query.after_id).Add(query.limit).Add(query.offset);
  if (query.warehouse_name) params.Add(*query.warehouse_name);
  return params;
}

std::vector<std::string> PlanLines(const Result& r) {
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.str(i, 0));
  return out;
}

constexpr const char* kNextExpirationSql =
    "SELECT min(expires_at) FROM allocation_requests WHERE pending = 1";
constexpr const char* kNextCheckExpirationSql =
    "SELECT min(expires_at) FROM checks WHERE status = 'asked'";
constexpr const char* kExpiryScanSql =
    "SELECT id, allocation_id, warehouse_id FROM allocation_requests WHERE pending = 1 AND "
    "expires_at <= $1 ORDER BY expires_at LIMIT $2";

}  // namespace

StoreResult<std::optional<TimePoint>> PgBackend::NextExpiration() {
  return Guarded([&]() -> std::optional<TimePoint> {
    c_.EnsureOpen();
    // least() skips a NULL: the earlier of the two, or NULL if neither has one.
    Result r = c_.Exec(std::string("SELECT least((") + kNextExpirationSql + "), (" +
                       kNextCheckExpirationSql + "))");
    if (r.null(0, 0)) return std::nullopt;
    return FromUnixMicros(r.i64(0, 0));
  });
}

StoreResult<std::optional<AllocationRequest>> PgBackend::GetRequest(std::int64_t request_id) {
  return Guarded([&] {
    c_.EnsureOpen();
    return ReadRequest(c_, request_id);
  });
}

StoreResult<std::optional<Allocation>> PgBackend::GetAllocationByOrder(std::int64_t order_number) {
  return Guarded([&]() -> std::optional<Allocation> {
    c_.EnsureOpen();
    ReadSnapshot snapshot(c_);
    Allocation a;
    {
      Result r = c_.Exec(
          "SELECT id, order_id, order_number, groups_json, current_group, state, "
          "confirmed_warehouse_id, created_at, updated_at, lines_json FROM allocations "
          "WHERE order_number = $1",
          Params().Add(order_number));
      if (r.rows() == 0) return std::nullopt;
      a.id = r.i64(0, 0);
      a.order.id = r.str(0, 1);
      a.order.number = r.i64(0, 2);
      a.groups = nlohmann::json::parse(r.text(0, 3)).get<PriorityGroups>();
      a.current_group = r.i32(0, 4);
      a.state = StateValue(r.text(0, 5));
      if (!r.null(0, 6)) a.confirmed_warehouse_id = r.i64(0, 6);
      a.created_at = FromUnixMicros(r.i64(0, 7));
      a.updated_at = FromUnixMicros(r.i64(0, 8));
      a.lines = ParseLinesJson(r.str(0, 9));
    }
    Result r = c_.Exec(std::string(kRequestColumns) + "WHERE r.allocation_id = $1 ORDER BY r.id",
                       Params().Add(a.id));
    for (int i = 0; i < r.rows(); ++i) a.requests.push_back(RequestFromRow(r, i));
    Result c = c_.Exec(std::string(kCheckColumns) + "WHERE allocation_id = $1 ORDER BY id",
                       Params().Add(a.id));
    for (int i = 0; i < c.rows(); ++i) a.checks.push_back(CheckFromRow(c, i));
    return a;
  });
}

StoreResult<std::vector<AllocationRequest>> PgBackend::ListRequests(const RequestQuery& query) {
  return Guarded([&]() -> std::vector<AllocationRequest> {
    c_.EnsureOpen();
    Result r = c_.Exec(ListRequestsSql(query, query.offset > 0), ListParameters(query));
    std::vector<AllocationRequest> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(RequestFromRow(r, i));
    return out;
  });
}

StoreResult<std::optional<std::vector<AllocationRequest>>> PgBackend::ListOrderRequests(
    std::int64_t order_number, const RequestQuery& query) {
  return Guarded([&]() -> std::optional<std::vector<AllocationRequest>> {
    c_.EnsureOpen();
    Result r = c_.Exec(OrderRequestsSql(order_number, query), ListParameters(query));
    if (r.rows() == 0 || r.text(0, 0) != "t") return std::nullopt;
    std::vector<AllocationRequest> out;
    for (int i = 0; i < r.rows(); ++i) {
      if (!r.null(i, 1)) out.push_back(RequestFromRow(r, i, 1));
    }
    return out;
  });
}

StoreResult<std::vector<std::string>> PgBackend::ExplainListRequestsForTest(
    const RequestQuery& query) {
  return Guarded([&] {
    c_.EnsureOpen();
    return PlanLines(
        c_.Exec("EXPLAIN " + ListRequestsSql(query, query.offset > 0), ListParameters(query)));
  });
}

StoreResult<std::vector<std::string>> PgBackend::ExplainExpiryScanForTest() {
  return Guarded([&] {
    c_.EnsureOpen();
    return PlanLines(
        c_.Exec(std::string("EXPLAIN ") + kExpiryScanSql, Params().Add(std::int64_t{0}).Add(500)));
  });
}

StoreResult<std::vector<std::string>> PgBackend::ExplainNextExpirationForTest() {
  return Guarded([&] {
    c_.EnsureOpen();
    return PlanLines(c_.Exec(std::string("EXPLAIN ") + kNextExpirationSql));
  });
}

StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>>
PgBackend::CountRequestsByStatus() {
  return Guarded([&] {
    c_.EnsureOpen();
    std::vector<std::pair<RequestStatus, std::int64_t>> out;
    for (RequestStatus s : kAllRequestStatuses) out.emplace_back(s, 0);
    Result r = c_.Exec("SELECT status, count(*) FROM allocation_requests GROUP BY status");
    for (int i = 0; i < r.rows(); ++i) {
      out[static_cast<std::size_t>(StatusValue(r.text(i, 0)))].second = r.i64(i, 1);
    }
    return out;
  });
}

StoreResult<std::vector<std::pair<CheckStatus, std::int64_t>>> PgBackend::CountChecksByStatus() {
  return Guarded([&] {
    c_.EnsureOpen();
    std::vector<std::pair<CheckStatus, std::int64_t>> out;
    for (CheckStatus s : kAllCheckStatuses) out.emplace_back(s, 0);
    Result r = c_.Exec("SELECT status, count(*) FROM checks GROUP BY status");
    for (int i = 0; i < r.rows(); ++i) {
      if (auto s = ParseCheckStatus(r.text(i, 0))) {
        out[static_cast<std::size_t>(*s)].second = r.i64(i, 1);
      }
    }
    return out;
  });
}

StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>>
PgBackend::CountAllocationsByState() {
  return Guarded([&] {
    c_.EnsureOpen();
    std::vector<std::pair<AllocationState, std::int64_t>> out;
    for (AllocationState s : {AllocationState::kOpen, AllocationState::kConfirmed,
                              AllocationState::kExhausted, AllocationState::kCancelled}) {
      out.emplace_back(s, 0);
    }
    Result r = c_.Exec(
        "SELECT count(*) FILTER (WHERE state = 'open'), count(*) FILTER (WHERE state = "
        "'confirmed'), count(*) FILTER (WHERE state = 'exhausted'), count(*) FILTER (WHERE "
        "state = 'cancelled') FROM allocations");
    for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)].second = r.i64(0, i);
    return out;
  });
}

StoreResult<std::optional<TimePoint>> PgBackend::OldestFinishedAllocation() {
  return Guarded([&]() -> std::optional<TimePoint> {
    c_.EnsureOpen();
    Result r = c_.Exec("SELECT min(updated_at) FROM allocations WHERE state <> 'open'");
    if (r.null(0, 0)) return std::nullopt;
    return FromUnixMicros(r.i64(0, 0));
  });
}

StoreResult<std::vector<OutboxEvent>> PgBackend::ListUnbatchedEvents(
    std::optional<std::int64_t> warehouse, int limit) {
  return Guarded([&]() -> std::vector<OutboxEvent> {
    c_.EnsureOpen();
    Result r =
        warehouse
            ? c_.Exec(std::string(kEventColumns) +
                          "WHERE delivery_id IS NULL AND warehouse_id = $1 "
                          "ORDER BY id LIMIT $2",
                      Params().Add(*warehouse).Add(limit))
            : c_.Exec(std::string(kEventColumns) + "WHERE delivery_id IS NULL ORDER BY id LIMIT $1",
                      Params().Add(limit));
    std::vector<OutboxEvent> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(EventFromRow(r, i));
    return out;
  });
}

StoreResult<std::vector<std::int64_t>> PgBackend::WarehousesWithEventsAfter(std::int64_t event_id) {
  return Guarded([&] {
    c_.EnsureOpen();
    return Ids(c_.Exec(
        "SELECT DISTINCT warehouse_id FROM outbox_events WHERE id > $1 ORDER BY warehouse_id",
        Params().Add(event_id)));
  });
}

StoreResult<std::vector<Delivery>> PgBackend::ListDeliveries(std::optional<DeliveryState> state,
                                                             std::optional<std::int64_t> warehouse,
                                                             int limit) {
  return Guarded([&]() -> std::vector<Delivery> {
    c_.EnsureOpen();
    std::string sql = std::string(kDeliveryColumns) + "WHERE true";
    if (state) sql += " AND state = '" + std::string(ToString(*state)) + "'";
    if (warehouse) sql += " AND warehouse_id = " + std::to_string(*warehouse);
    sql += " ORDER BY id LIMIT " + std::to_string(limit);
    Result r = c_.Exec(sql);
    std::vector<Delivery> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(DeliveryFromRow(r, i));
    return out;
  });
}

StoreResult<std::vector<DeliveryAttempt>> PgBackend::ListAttempts(std::int64_t delivery_id) {
  return Guarded([&]() -> std::vector<DeliveryAttempt> {
    c_.EnsureOpen();
    Result r = c_.Exec(
        "SELECT delivery_id, attempt, started_at, duration_us, http_status, error, "
        "coalesce(response_head, '') FROM delivery_attempts WHERE delivery_id = $1 "
        "ORDER BY attempt",
        Params().Add(delivery_id));
    std::vector<DeliveryAttempt> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(AttemptFromRow(r, i));
    return out;
  });
}

StoreResult<std::vector<OutboxEvent>> PgBackend::EventsOfRequests(
    std::span<const std::int64_t> request_ids, std::span<const std::int64_t> check_ids) {
  return Guarded([&]() -> std::vector<OutboxEvent> {
    std::vector<OutboxEvent> out;
    if (request_ids.empty() && check_ids.empty()) return out;
    c_.EnsureOpen();
    Result r = c_.Exec(std::string(kEventColumns) +
                           "WHERE request_id = ANY($1::bigint[]) OR check_id = ANY($2::bigint[]) "
                           "ORDER BY id",
                       Params().AddIds(request_ids).AddIds(check_ids));
    for (int i = 0; i < r.rows(); ++i) out.push_back(EventFromRow(r, i));
    return out;
  });
}

StoreResult<std::optional<Delivery>> PgBackend::GetDelivery(std::int64_t delivery_id) {
  return Guarded([&] {
    c_.EnsureOpen();
    return ReadDelivery(c_, delivery_id);
  });
}

StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>>
PgBackend::CountDeliveriesByState() {
  return Guarded([&] {
    c_.EnsureOpen();
    std::vector<std::pair<DeliveryState, std::int64_t>> out = {
        {DeliveryState::kPending, 0}, {DeliveryState::kSucceeded, 0}, {DeliveryState::kDead, 0}};
    // Pending and dead ones in their partial indexes; succeeded ones are the total kept by
    // triggers minus those.
    Result r = c_.Exec(
        "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'), "
        "(SELECT count(*) FROM deliveries WHERE state = 'dead'), "
        "(SELECT coalesce(sum(value), 0) FROM row_counts WHERE name = 'deliveries')::bigint");
    const std::int64_t pending = r.i64(0, 0), dead = r.i64(0, 1);
    out[0].second = pending;
    out[1].second = std::max<std::int64_t>(0, r.i64(0, 2) - pending - dead);
    out[2].second = dead;
    return out;
  });
}

StoreResult<std::vector<std::pair<std::int64_t, std::int64_t>>>
PgBackend::UnbatchedEventsByWarehouse() {
  return Guarded([&] {
    c_.EnsureOpen();
    Result r = c_.Exec(
        "SELECT warehouse_id, count(*) FROM outbox_events WHERE delivery_id IS NULL "
        "GROUP BY warehouse_id ORDER BY warehouse_id");
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.i64(i, 0), r.i64(i, 1));
    return out;
  });
}

StoreResult<std::int64_t> PgBackend::MaxEventId() {
  return Guarded([&] {
    c_.EnsureOpen();
    return c_.Exec("SELECT coalesce(max(id), 0) FROM outbox_events").i64(0, 0);
  });
}

StoreResult<std::vector<std::int64_t>> PgBackend::DisabledWebhooks() {
  return Guarded([&] {
    c_.EnsureOpen();
    return Ids(c_.Exec(
        "SELECT warehouse_id FROM webhook_endpoints WHERE disabled_at IS NOT NULL ORDER BY 1"));
  });
}

}  // namespace allocation_relay::postgresql
