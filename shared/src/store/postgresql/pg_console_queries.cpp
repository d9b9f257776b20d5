// The operator console's reads (docs/console.md): the overview's activity and the deliveries
// list.
#include <limits>

#include "../activity.h"
#include "../id_list.h"
#include "pg_backend.h"
#include "pg_rows.h"

namespace allocation_relay::postgresql {
namespace {

// " AND <column> IN (<ids>)" for a scoped read (" AND false" for no ids: PostgreSQL has no
// empty IN-list), else nothing.
std::string ScopeSql(const WarehouseScope& scope, const char* column) {
  if (!scope.only) return "";
  if (scope.only->empty()) return " AND false";
  return std::string(" AND ") + column + " IN (" + JoinIds(*scope.only) + ")";
}

// The open work by warehouse, one statement; column 0 is the kind (the order of
// StoreBackend::ActivityRead::Count). Each part is spelt as its partial index's predicate
// (requests: the status list of requests_pending_by_warehouse), so it reads that index alone.
std::string OpenWorkSql(const WarehouseScope& scope) {
  const std::string s = ScopeSql(scope, "warehouse_id");
  return "SELECT 0, warehouse_id, count(*) FROM allocation_requests "
         "WHERE status IN ('allocated', 'sent', 'failed')" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 1, warehouse_id, count(*) FROM checks WHERE status = 'asked'" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 2, warehouse_id, count(*) FROM outbox_events "
         "WHERE delivery_id IS NULL" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 3, warehouse_id, count(*) FROM deliveries WHERE state = 'pending'" +
         s +
         " GROUP BY warehouse_id "
         "UNION ALL SELECT 4, warehouse_id, count(*) FROM deliveries WHERE state = 'dead'" +
         s + " GROUP BY warehouse_id";
}

std::string ActivityRowsSql(const WarehouseScope& scope) {
  std::string sql = "SELECT minute, warehouse_id, delivered, failed_attempts, dead";
  for (const char* c : activity::kCallColumns) sql += std::string(", ") + c;
  return sql + " FROM webhook_activity WHERE minute >= $1" + ScopeSql(scope, "warehouse_id") +
         " ORDER BY minute, warehouse_id";
}

// ListDeliveryPage: $1 before_id, $2 limit. The page's ids come first: with warehouses (the
// query's one, or the scope's) from each one's index (by warehouse and id; the state's partial
// one for pending and dead), newest first and at most a page each, so a scoped read never walks
// other warehouses' history; else from the table newest first. Then their rows, with their last
// attempts.
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
  if (warehouses.empty()) {
    ids = "SELECT id FROM deliveries WHERE id < $1" + state + " ORDER BY id DESC LIMIT $2";
  } else {
    for (std::int64_t w : warehouses) {
      if (!ids.empty()) ids += " UNION ALL ";
      ids += "(SELECT id FROM deliveries WHERE warehouse_id = " + std::to_string(w) +
             " AND id < $1" + state + " ORDER BY id DESC LIMIT $2)";
    }
  }
  return "SELECT d.id, d.uid, d.warehouse_id, d.state, '', d.attempt_count, d.next_attempt_at, "
         "d.lease_until, d.created_at, d.request_ids, a.delivery_id, a.attempt, a.started_at, "
         "a.duration_us, a.http_status, a.error, coalesce(a.response_head, '') FROM (" +
         ids +
         ") page JOIN deliveries d ON d.id = page.id "
         "LEFT JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = d.attempt_count "
         "ORDER BY d.id DESC LIMIT $2";
}

}  // namespace

StoreResult<StoreBackend::ActivityRead> PgBackend::ReadActivity(const WarehouseScope& scope,
                                                                TimePoint since) {
  return Guarded([&]() -> ActivityRead {
    c_.EnsureOpen();
    ActivityRead out;
    // One snapshot: the statements go out together and are read back in order.
    c_.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      Result counts = c_.Exec(OpenWorkSql(scope));
      for (int i = 0; i < counts.rows(); ++i) {
        out.counts.push_back({static_cast<ActivityRead::Count>(counts.i32(i, 0)), counts.i64(i, 1),
                              counts.i64(i, 2)});
      }
      Result disabled = c_.Exec(
          "SELECT warehouse_id, disabled_at, coalesce(disabled_reason, '') FROM "
          "webhook_endpoints WHERE disabled_at IS NOT NULL" +
          ScopeSql(scope, "warehouse_id"));
      for (int i = 0; i < disabled.rows(); ++i) {
        out.disabled.push_back(
            {disabled.i64(i, 0), FromUnixMicros(disabled.i64(i, 1)), disabled.str(i, 2)});
      }
      Result last = c_.Exec("SELECT warehouse_id, started_at FROM webhook_last_success WHERE true" +
                            ScopeSql(scope, "warehouse_id"));
      for (int i = 0; i < last.rows(); ++i) {
        out.last_successes.emplace_back(last.i64(i, 0), FromUnixMicros(last.i64(i, 1)));
      }
      Result rows = c_.Exec(ActivityRowsSql(scope), Params().Add(ToUnixMicros(since)));
      for (int i = 0; i < rows.rows(); ++i) {
        StoreTransaction::ActivityRow row;
        row.minute = FromUnixMicros(rows.i64(i, 0));
        row.warehouse_id = rows.i64(i, 1);
        row.delivered = rows.i64(i, 2);
        row.failed_attempts = rows.i64(i, 3);
        row.dead = rows.i64(i, 4);
        for (std::size_t b = 0; b < row.calls.size(); ++b) {
          row.calls[b] = rows.i64(i, static_cast<int>(5 + b));
        }
        out.activity.push_back(row);
      }
      c_.Run("COMMIT");
    } catch (...) {
      try {
        if (!c_.Lost()) c_.Run("ROLLBACK");
      } catch (...) {
      }
      throw;
    }
    return out;
  });
}

StoreResult<std::vector<std::string>> PgBackend::ExplainConsoleReadsForTest() {
  return Guarded([&] {
    c_.EnsureOpen();
    DeliveryQuery dead;
    dead.state = DeliveryState::kDead;
    std::vector<Result> plans;
    plans.push_back(c_.Exec("EXPLAIN " + OpenWorkSql({})));
    plans.push_back(c_.Exec("EXPLAIN " + ActivityRowsSql({}), Params().Add(std::int64_t{0})));
    plans.push_back(
        c_.Exec("EXPLAIN " + DeliveryPageSql(dead), Params().Add(std::int64_t{0}).Add(50)));
    std::vector<std::string> out;
    for (const Result& r : plans) {
      for (int i = 0; i < r.rows(); ++i) out.push_back(r.str(i, 0));
    }
    return out;
  });
}

StoreResult<std::vector<DeliverySummary>> PgBackend::ListDeliveryPage(const DeliveryQuery& query) {
  return Guarded([&]() -> std::vector<DeliverySummary> {
    c_.EnsureOpen();
    Result r = c_.Exec(
        DeliveryPageSql(query),
        Params()
            .Add(query.before_id > 0 ? query.before_id : std::numeric_limits<std::int64_t>::max())
            .Add(query.limit));
    std::vector<DeliverySummary> out;
    for (int i = 0; i < r.rows(); ++i) {
      DeliverySummary s;
      s.delivery = DeliveryFromRow(r, i);
      if (!r.null(i, 10)) s.last_attempt = AttemptFromRow(r, i, 10);
      out.push_back(std::move(s));
    }
    return out;
  });
}

}  // namespace allocation_relay::postgresql
