// SqliteTransaction's retention operations: the SQL of a prune step. Id lists go in as one JSON
// array (`IN (SELECT value FROM json_each(?))`), so each statement is prepared once.
#include "rows.h"
#include "sqlite_transaction.h"

namespace allocation_relay::sqlite {
namespace {

std::string JsonIds(std::span<const std::int64_t> ids) { return "[" + JoinIds(ids) + "]"; }

std::vector<std::int64_t> Ids(Borrowed& s) {
  std::vector<std::int64_t> out;
  while (s->executeStep()) out.push_back(s->getColumn(0).getInt64());
  return out;
}

}  // namespace

std::vector<StoreTransaction::FinishedAllocation> SqliteTransaction::FinishedAllocationsBefore(
    TimePoint cutoff, std::int64_t after_updated_us, std::int64_t after_id, int limit) {
  // `state != 'open'` is the partial index's own predicate, so SQLite can use it.
  Borrowed s = c_.Prepared(
      "SELECT id, updated_at FROM allocations INDEXED BY allocations_finished_by_change "
      "WHERE state != 'open' AND updated_at < ? AND (updated_at, id) > (?, ?) "
      "ORDER BY updated_at, id LIMIT ?");
  s->bind(1, ToUnixMicros(cutoff));
  s->bind(2, after_updated_us);
  s->bind(3, after_id);
  s->bind(4, limit);
  std::vector<FinishedAllocation> out;
  while (s->executeStep()) {
    out.push_back(FinishedAllocation{s->getColumn(0).getInt64(), s->getColumn(1).getInt64()});
  }
  return out;
}

std::vector<std::int64_t> SqliteTransaction::AllocationsAwaitingDelivery(
    std::span<const std::int64_t> allocation_ids,
    const std::optional<std::vector<std::int64_t>>& webhook_warehouses) {
  Borrowed s = c_.Prepared(
      "SELECT DISTINCT r.allocation_id FROM allocation_requests r "
      "JOIN outbox_events e INDEXED BY outbox_by_request ON e.request_id = r.id "
      "LEFT JOIN deliveries d ON d.id = e.delivery_id "
      "WHERE r.allocation_id IN (SELECT value FROM json_each(?1)) "
      "AND ((e.delivery_id IS NULL AND "
      "(?3 = 0 OR e.warehouse_id IN (SELECT value FROM json_each(?2)))) "
      "OR d.state = 'pending') "
      "UNION SELECT c.allocation_id FROM checks c "
      "JOIN outbox_events e INDEXED BY outbox_by_check ON e.check_id = c.id "
      "LEFT JOIN deliveries d ON d.id = e.delivery_id "
      "WHERE c.allocation_id IN (SELECT value FROM json_each(?1)) "
      "AND ((e.delivery_id IS NULL AND "
      "(?3 = 0 OR e.warehouse_id IN (SELECT value FROM json_each(?2)))) "
      "OR d.state = 'pending')");
  s->bind(1, JsonIds(allocation_ids));
  s->bind(2, webhook_warehouses ? JsonIds(*webhook_warehouses) : std::string("[]"));
  s->bind(3, webhook_warehouses ? 1 : 0);
  return Ids(s);
}

std::vector<std::int64_t> SqliteTransaction::NewestAllocations() {
  Borrowed s = c_.Prepared(
      "SELECT allocation_id FROM allocation_requests "
      "WHERE id = (SELECT max(id) FROM allocation_requests) "
      "UNION SELECT r.allocation_id FROM allocation_requests r "
      "WHERE r.id = (SELECT request_id FROM outbox_events "
      "WHERE id = (SELECT max(id) FROM outbox_events)) "
      "UNION SELECT c.allocation_id FROM checks c "
      "WHERE c.id = (SELECT check_id FROM outbox_events "
      "WHERE id = (SELECT max(id) FROM outbox_events))");
  return Ids(s);
}

StoreTransaction::DeletedAllocations SqliteTransaction::DeleteAllocations(
    std::span<const std::int64_t> allocation_ids) {
  DeletedAllocations out;
  const std::string allocations = JsonIds(allocation_ids);
  std::string requests;
  {
    Borrowed s = c_.Prepared(
        "SELECT id FROM allocation_requests WHERE allocation_id IN "
        "(SELECT value FROM json_each(?))");
    s->bind(1, allocations);
    requests = JsonIds(Ids(s));
  }
  std::string checks;
  {
    Borrowed s = c_.Prepared(
        "SELECT id FROM checks WHERE allocation_id IN (SELECT value FROM json_each(?))");
    s->bind(1, allocations);
    checks = JsonIds(Ids(s));
  }
  {
    // The deliveries that held their events (of requests or of checks), each once.
    Borrowed s = c_.Prepared(
        "SELECT delivery_id FROM outbox_events INDEXED BY outbox_by_request "
        "WHERE request_id IN (SELECT value FROM json_each(?1)) AND delivery_id IS NOT NULL "
        "UNION SELECT delivery_id FROM outbox_events INDEXED BY outbox_by_check "
        "WHERE check_id IN (SELECT value FROM json_each(?2)) AND delivery_id IS NOT NULL");
    s->bind(1, requests);
    s->bind(2, checks);
    out.deliveries = Ids(s);
  }
  {
    Borrowed s = c_.Prepared(
        "DELETE FROM outbox_events WHERE request_id IN (SELECT value FROM json_each(?))");
    s->bind(1, requests);
    out.events = s->exec();
  }
  {
    Borrowed s =
        c_.Prepared("DELETE FROM outbox_events WHERE check_id IN (SELECT value FROM json_each(?))");
    s->bind(1, checks);
    out.events += s->exec();
  }
  {
    Borrowed s =
        c_.Prepared("DELETE FROM checks WHERE allocation_id IN (SELECT value FROM json_each(?))");
    s->bind(1, allocations);
    out.checks = s->exec();
  }
  {
    Borrowed s = c_.Prepared(
        "DELETE FROM allocation_requests WHERE allocation_id IN (SELECT value FROM json_each(?))");
    s->bind(1, allocations);
    out.requests = s->exec();
  }
  Borrowed s = c_.Prepared(
      "DELETE FROM allocations WHERE id IN (SELECT value FROM json_each(?)) AND state != 'open'");
  s->bind(1, allocations);
  out.allocations = s->exec();
  return out;
}

StoreTransaction::DeletedDeliveries SqliteTransaction::DeleteDeliveriesWithoutEvents(
    std::span<const std::int64_t> delivery_ids, std::optional<TimePoint> attempts_cutoff) {
  DeletedDeliveries out;
  if (delivery_ids.empty()) return out;
  const std::int64_t newest =
      c_.db().execAndGet("SELECT coalesce(max(id), 0) FROM deliveries").getInt64();
  for (std::int64_t id : delivery_ids) {
    if (id == newest) continue;  // SQLite would hand its id out again
    std::string request_ids;
    {
      Borrowed s = c_.Prepared("SELECT state, request_ids FROM deliveries WHERE id = ?");
      s->bind(1, id);
      if (!s->executeStep() || s->getColumn(0).getString() == "pending") continue;
      request_ids = s->getColumn(1).getString();
    }
    // Its events are events of these requests, deleted with them, and check events: none
    // left once none of the requests is and no check event names it.
    {
      Borrowed s = c_.Prepared(
          "SELECT 1 FROM allocation_requests WHERE id IN (SELECT value FROM json_each(?)) "
          "UNION ALL SELECT 1 FROM outbox_events INDEXED BY outbox_check_events_by_delivery "
          "WHERE delivery_id = ? AND check_id IS NOT NULL LIMIT 1");
      s->bind(1, "[" + request_ids + "]");
      s->bind(2, id);
      if (s->executeStep()) continue;
    }
    if (attempts_cutoff) {
      Borrowed s = c_.Prepared(
          "SELECT count(*) FROM delivery_attempts WHERE delivery_id = ? AND started_at < ?");
      s->bind(1, id);
      s->bind(2, ToUnixMicros(*attempts_cutoff));
      s->executeStep();
      out.attempts_before += s->getColumn(0).getInt64();
    }
    {
      Borrowed s = c_.Prepared("DELETE FROM delivery_attempts WHERE delivery_id = ?");
      s->bind(1, id);
      out.attempts += s->exec();
    }
    Borrowed s = c_.Prepared("DELETE FROM deliveries WHERE id = ? AND state != 'pending'");
    s->bind(1, id);
    out.deliveries += s->exec();
  }
  return out;
}

std::int64_t SqliteTransaction::DeleteAttemptsBefore(TimePoint cutoff, int limit) {
  Borrowed s = c_.Prepared(
      "DELETE FROM delivery_attempts WHERE (delivery_id, attempt) IN "
      "(SELECT delivery_id, attempt FROM delivery_attempts INDEXED BY attempts_by_start "
      "WHERE started_at < ? ORDER BY started_at LIMIT ?)");
  s->bind(1, ToUnixMicros(cutoff));
  s->bind(2, limit);
  return s->exec();
}

std::int64_t SqliteTransaction::CountAttemptsBefore(TimePoint cutoff) {
  Borrowed s = c_.Prepared(
      "SELECT count(*) FROM delivery_attempts INDEXED BY attempts_by_start WHERE started_at < ?");
  s->bind(1, ToUnixMicros(cutoff));
  s->executeStep();
  return s->getColumn(0).getInt64();
}

}  // namespace allocation_relay::sqlite
