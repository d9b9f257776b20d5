// The operator console's reads (docs/console.md): the overview's activity and the deliveries
// list.
#include "../activity.h"
#include "rows.h"
#include "sqlite_backend.h"

namespace allocation_relay::sqlite {
namespace {

// " AND <column> IN (<ids>)" for a scoped read, else nothing. SQLite takes an empty list.
std::string ScopeSql(const WarehouseScope& scope, const char* column) {
  if (!scope.only) return "";
  return std::string(" AND ") + column + " IN " + IdList(*scope.only);
}

// The open work by warehouse, one compound statement; column 0 is the kind (the order of
// StoreBackend::ActivityRead::Count). Each part reads a partial index of open work alone
// (covering: the warehouse is its first column), named because without statistics the planner
// may take a full-history index for a GROUP BY warehouse_id.
std::string OpenWorkSql(const WarehouseScope& scope) {
  const std::string s = ScopeSql(scope, "warehouse_id");
  return "SELECT 0, warehouse_id, count(*) FROM allocation_requests "
         "INDEXED BY requests_pending_by_warehouse WHERE pending = 1" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 1, warehouse_id, count(*) FROM checks "
         "INDEXED BY checks_asked_by_expiry WHERE status = 'asked'" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 2, warehouse_id, count(*) FROM outbox_events "
         "INDEXED BY outbox_unbatched_by_warehouse WHERE delivery_id IS NULL" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 3, warehouse_id, count(*) FROM deliveries "
         "INDEXED BY deliveries_pending_by_warehouse WHERE state = 'pending'" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 4, warehouse_id, count(*) FROM deliveries "
         "INDEXED BY deliveries_dead_by_warehouse WHERE state = 'dead'" +
         s + " GROUP BY warehouse_id";
}

std::string ActivityRowsSql(const WarehouseScope& scope) {
  std::string sql = "SELECT minute, warehouse_id, delivered, failed_attempts, dead";
  for (const char* c : activity::kCallColumns) sql += std::string(", ") + c;
  return sql + " FROM webhook_activity WHERE minute >= ?" + ScopeSql(scope, "warehouse_id") +
         " ORDER BY minute, warehouse_id";
}

// The index that serves one warehouse's deliveries in `state` in id order.
const char* DeliveryIndex(std::optional<DeliveryState> state) {
  if (state == DeliveryState::kPending) return "deliveries_pending_by_warehouse";
  if (state == DeliveryState::kDead) return "deliveries_dead_by_warehouse";
  return "deliveries_by_warehouse";
}

// ListDeliveryPage: ?1 before_id, ?2 limit. The page's ids come first: with warehouses (the
// query's one, or the scope's) from each one's index, newest first and at most a page each,
// so a scoped read never walks other warehouses' history; pending or dead ones of every
// warehouse from their partial index; else from the table newest first.
// Then their rows, with their last attempts.
std::string DeliveryPageSql(const DeliveryQuery& query) {
  const std::string state =
      query.state ? " AND state = '" + std::string(ToString(*query.state)) + "'" : "";
  std::vector<std::int64_t> warehouses;
  if (query.warehouse) {
    warehouses = {*query.warehouse};
  } else if (query.scope.only) {
    warehouses = *query.scope.only;
  }
  std::string ids;
  if (warehouses.empty() && query.state && *query.state != DeliveryState::kSucceeded) {
    // Pending and dead ones are few beside the succeeded history: all of them from their
    // partial index, sorted, rather than the table walked from its newest row until a page of
    // them turns up.
    ids = std::string("SELECT id FROM deliveries INDEXED BY ") + DeliveryIndex(query.state) +
          " WHERE id < ?1" + state + " ORDER BY id DESC LIMIT ?2";
  } else if (warehouses.empty()) {
    ids = "SELECT id FROM deliveries WHERE id < ?1" + state + " ORDER BY id DESC LIMIT ?2";
  } else {
    for (std::int64_t w : warehouses) {
      if (!ids.empty()) ids += " UNION ALL ";
      ids += std::string("SELECT id FROM (SELECT id FROM deliveries INDEXED BY ") +
             DeliveryIndex(query.state) + " WHERE warehouse_id = " + std::to_string(w) +
             " AND id < ?1" + state + " ORDER BY id DESC LIMIT ?2)";
    }
  }
  return "SELECT d.id, d.uid, d.warehouse_id, d.state, '', d.attempt_count, d.next_attempt_at, "
         "d.lease_until, d.created_at, d.request_ids, a.delivery_id, a.attempt, a.started_at, "
         "a.duration_us, a.http_status, a.error, a.response_head FROM (" +
         ids +
         ") page JOIN deliveries d ON d.id = page.id "
         "LEFT JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = d.attempt_count "
         "ORDER BY d.id DESC LIMIT ?2";
}

}  // namespace

StoreResult<StoreBackend::ActivityRead> SqliteBackend::ReadActivity(const WarehouseScope& scope,
                                                                    TimePoint since) {
  return Guarded([&]() -> ActivityRead {
    ReadTransaction txn(reader_.db());
    ActivityRead out;
    {
      Borrowed q = reader_.Prepared(OpenWorkSql(scope));
      while (q->executeStep()) {
        out.counts.push_back({static_cast<ActivityRead::Count>(q->getColumn(0).getInt()),
                              q->getColumn(1).getInt64(), q->getColumn(2).getInt64()});
      }
    }
    {
      Borrowed q = reader_.Prepared(
          "SELECT warehouse_id, disabled_at, coalesce(disabled_reason, '') FROM "
          "webhook_endpoints WHERE disabled_at IS NOT NULL" +
          ScopeSql(scope, "warehouse_id"));
      while (q->executeStep()) {
        out.disabled.push_back({q->getColumn(0).getInt64(),
                                FromUnixMicros(q->getColumn(1).getInt64()),
                                q->getColumn(2).getString()});
      }
    }
    {
      Borrowed q =
          reader_.Prepared("SELECT warehouse_id, started_at FROM webhook_last_success WHERE 1" +
                           ScopeSql(scope, "warehouse_id"));
      while (q->executeStep()) {
        out.last_successes.emplace_back(q->getColumn(0).getInt64(),
                                        FromUnixMicros(q->getColumn(1).getInt64()));
      }
    }
    {
      Borrowed q = reader_.Prepared(ActivityRowsSql(scope));
      q->bind(1, ToUnixMicros(since));
      while (q->executeStep()) {
        StoreTransaction::ActivityRow row;
        row.minute = FromUnixMicros(q->getColumn(0).getInt64());
        row.warehouse_id = q->getColumn(1).getInt64();
        row.delivered = q->getColumn(2).getInt64();
        row.failed_attempts = q->getColumn(3).getInt64();
        row.dead = q->getColumn(4).getInt64();
        for (std::size_t i = 0; i < row.calls.size(); ++i) {
          row.calls[i] = q->getColumn(static_cast<int>(5 + i)).getInt64();
        }
        out.activity.push_back(row);
      }
    }
    return out;
  });
}

StoreResult<std::vector<std::string>> SqliteBackend::ExplainConsoleReadsForTest() {
  return Guarded([&] {
    DeliveryQuery dead;
    dead.state = DeliveryState::kDead;
    std::vector<std::string> plan;
    for (const std::string& sql : {OpenWorkSql({}), ActivityRowsSql({}), DeliveryPageSql(dead)}) {
      for (std::string& step : reader_.Explain(sql)) plan.push_back(std::move(step));
    }
    return plan;
  });
}

StoreResult<std::vector<DeliverySummary>> SqliteBackend::ListDeliveryPage(
    const DeliveryQuery& query) {
  return Guarded([&]() -> std::vector<DeliverySummary> {
    Borrowed q = reader_.Prepared(DeliveryPageSql(query));
    q->bind(1, query.before_id > 0 ? query.before_id : std::numeric_limits<std::int64_t>::max());
    q->bind(2, query.limit);
    std::vector<DeliverySummary> out;
    while (q->executeStep()) {
      DeliverySummary s;
      s.delivery = DeliveryFromRow(*q);
      if (!q->getColumn(10).isNull()) s.last_attempt = AttemptFromRow(*q, 10);
      out.push_back(std::move(s));
    }
    return out;
  });
}

}  // namespace allocation_relay::sqlite
