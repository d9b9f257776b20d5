// PgTransaction's retention operations: the SQL of a prune step. Id lists go in as one bigint[]
// parameter, so each statement is prepared once.
#include "pg_rows.h"
#include "pg_transaction.h"

namespace allocation_relay::postgresql {

std::vector<StoreTransaction::FinishedAllocation> PgTransaction::FinishedAllocationsBefore(
    TimePoint cutoff, std::int64_t after_updated_us, std::int64_t after_id, int limit) {
  Result r = c_.Exec(
      "SELECT id, updated_at FROM allocations WHERE state <> 'open' AND updated_at < $1 AND "
      "(updated_at, id) > ($2, $3) ORDER BY updated_at, id LIMIT $4",
      Params().Add(ToUnixMicros(cutoff)).Add(after_updated_us).Add(after_id).Add(limit));
  std::vector<FinishedAllocation> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(FinishedAllocation{r.i64(i, 0), r.i64(i, 1)});
  return out;
}

std::vector<std::int64_t> PgTransaction::AllocationsAwaitingDelivery(
    std::span<const std::int64_t> allocation_ids,
    const std::optional<std::vector<std::int64_t>>& webhook_warehouses) {
  Params p;
  p.AddIds(allocation_ids);
  if (webhook_warehouses) {
    p.AddIds(*webhook_warehouses);
  } else {
    p.AddNull();
  }
  // From the requests of these allocations to their events, each probed by index: the plan
  // must not depend on statistics (a freshly loaded table has none, and a hash join over the
  // whole outbox took 41 ms for one allocation).
  return Ids(
      c_.Exec("SELECT DISTINCT r.allocation_id FROM allocation_requests r "
              "WHERE r.allocation_id = ANY($1::bigint[]) AND EXISTS ("
              "SELECT 1 FROM outbox_events e LEFT JOIN deliveries d ON d.id = e.delivery_id "
              "WHERE e.request_id = r.id AND ((e.delivery_id IS NULL AND "
              "($2::bigint[] IS NULL OR e.warehouse_id = ANY($2))) OR d.state = 'pending')) "
              "UNION SELECT c.allocation_id FROM checks c "
              "WHERE c.allocation_id = ANY($1::bigint[]) AND EXISTS ("
              "SELECT 1 FROM outbox_events e LEFT JOIN deliveries d ON d.id = e.delivery_id "
              "WHERE e.check_id = c.id AND ((e.delivery_id IS NULL AND "
              "($2::bigint[] IS NULL OR e.warehouse_id = ANY($2))) OR d.state = 'pending'))",
              p));
}

std::vector<std::int64_t> PgTransaction::NewestAllocations() {
  // Identity columns never hand an id out again, unlike SQLite's rowids; the rule is kept the
  // same on both backends all the same (it costs two index probes).
  return Ids(
      c_.Exec("SELECT allocation_id FROM allocation_requests "
              "WHERE id = (SELECT max(id) FROM allocation_requests) "
              "UNION SELECT r.allocation_id FROM allocation_requests r "
              "WHERE r.id = (SELECT request_id FROM outbox_events "
              "WHERE id = (SELECT max(id) FROM outbox_events)) "
              "UNION SELECT c.allocation_id FROM checks c "
              "WHERE c.id = (SELECT check_id FROM outbox_events "
              "WHERE id = (SELECT max(id) FROM outbox_events))"));
}

StoreTransaction::DeletedAllocations PgTransaction::DeleteAllocations(
    std::span<const std::int64_t> allocation_ids) {
  DeletedAllocations out;
  std::vector<std::int64_t> requests =
      Ids(c_.Exec("SELECT id FROM allocation_requests WHERE allocation_id = ANY($1::bigint[])",
                  Params().AddIds(allocation_ids)));
  std::vector<std::int64_t> checks =
      Ids(c_.Exec("SELECT id FROM checks WHERE allocation_id = ANY($1::bigint[])",
                  Params().AddIds(allocation_ids)));
  // The deliveries that held their events (of requests or of checks), each once.
  out.deliveries = Ids(c_.Exec(
      "SELECT delivery_id FROM outbox_events WHERE request_id = ANY($1::bigint[]) AND "
      "delivery_id IS NOT NULL UNION SELECT delivery_id FROM outbox_events WHERE check_id = "
      "ANY($2::bigint[]) AND delivery_id IS NOT NULL",
      Params().AddIds(requests).AddIds(checks)));
  out.events = c_.Exec("DELETE FROM outbox_events WHERE request_id = ANY($1::bigint[])",
                       Params().AddIds(requests))
                   .affected();
  out.events += c_.Exec("DELETE FROM outbox_events WHERE check_id = ANY($1::bigint[])",
                        Params().AddIds(checks))
                    .affected();
  out.checks = c_.Exec("DELETE FROM checks WHERE allocation_id = ANY($1::bigint[])",
                       Params().AddIds(allocation_ids))
                   .affected();
  out.requests = c_.Exec("DELETE FROM allocation_requests WHERE allocation_id = ANY($1::bigint[])",
                         Params().AddIds(allocation_ids))
                     .affected();
  out.allocations =
      c_.Exec("DELETE FROM allocations WHERE id = ANY($1::bigint[]) AND state <> 'open'",
              Params().AddIds(allocation_ids))
          .affected();
  return out;
}

StoreTransaction::DeletedDeliveries PgTransaction::DeleteDeliveriesWithoutEvents(
    std::span<const std::int64_t> delivery_ids, std::optional<TimePoint> attempts_cutoff) {
  DeletedDeliveries out;
  if (delivery_ids.empty()) return out;
  const std::int64_t newest = c_.Exec("SELECT coalesce(max(id), 0) FROM deliveries").i64(0, 0);
  for (std::int64_t id : delivery_ids) {
    if (id == newest) continue;  // kept as on SQLite (see NewestAllocations)
    Result d = c_.Exec("SELECT state, request_ids FROM deliveries WHERE id = $1", Params().Add(id));
    if (d.rows() == 0 || d.text(0, 0) == "pending") continue;
    // Its events are events of these requests, deleted with them: none left once none of the
    // requests is.
    if (c_.Exec("SELECT 1 FROM allocation_requests WHERE id = ANY($1::bigint[]) UNION ALL "
                "SELECT 1 FROM outbox_events WHERE delivery_id = $2 AND check_id IS NOT NULL "
                "LIMIT 1",
                Params().Add("{" + d.str(0, 1) + "}").Add(id))
            .rows() > 0) {
      continue;
    }
    if (attempts_cutoff) {
      out.attempts_before +=
          c_.Exec(
                "SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1 AND started_at < $2",
                Params().Add(id).Add(ToUnixMicros(*attempts_cutoff)))
              .i64(0, 0);
    }
    out.attempts +=
        c_.Exec("DELETE FROM delivery_attempts WHERE delivery_id = $1", Params().Add(id))
            .affected();
    out.deliveries +=
        c_.Exec("DELETE FROM deliveries WHERE id = $1 AND state <> 'pending'", Params().Add(id))
            .affected();
  }
  return out;
}

std::int64_t PgTransaction::DeleteAttemptsBefore(TimePoint cutoff, int limit) {
  return c_
      .Exec(
          "DELETE FROM delivery_attempts WHERE (delivery_id, attempt) IN "
          "(SELECT delivery_id, attempt FROM delivery_attempts WHERE started_at < $1 "
          "ORDER BY started_at LIMIT $2)",
          Params().Add(ToUnixMicros(cutoff)).Add(limit))
      .affected();
}

std::int64_t PgTransaction::CountAttemptsBefore(TimePoint cutoff) {
  return c_
      .Exec("SELECT count(*) FROM delivery_attempts WHERE started_at < $1",
            Params().Add(ToUnixMicros(cutoff)))
      .i64(0, 0);
}

}  // namespace allocation_relay::postgresql
