#include "sqlite_transaction.h"

#include <nlohmann/json.hpp>

#include "../activity.h"
#include "rows.h"

namespace allocation_relay::sqlite {
namespace {

void BindOptionalTime(Borrowed& s, int index, const TimePoint* t) {
  if (t) {
    s->bind(index, ToUnixMicros(*t));
  } else {
    s->bind(index);
  }
}

}  // namespace

// Pending requests past their expiration, soonest first. `pending = 1` is the partial index
// requests_pending_by_expiry's own predicate, so SQLite can use it.
// INDEXED BY: without statistics SQLite's planner prefers requests_by_status here and sorts;
// the partial index holds only pending rows and is already in expiration order.
const char* const kExpiryScanSql =
    "SELECT id, allocation_id, warehouse_id FROM allocation_requests "
    "INDEXED BY requests_pending_by_expiry "
    "WHERE pending = 1 AND expires_at <= ? ORDER BY expires_at LIMIT ?";

std::optional<std::pair<std::int64_t, AllocationState>> SqliteTransaction::AllocationByOrder(
    std::int64_t order_number) {
  Borrowed s = c_.Prepared("SELECT id, state FROM allocations WHERE order_number = ?");
  s->bind(1, order_number);
  if (!s->executeStep()) return std::nullopt;
  return std::pair{s->getColumn(0).getInt64(), StateColumn(s->getColumn(1))};
}

std::optional<std::int64_t> SqliteTransaction::InsertAllocation(const OrderRef& order,
                                                                const std::string& groups_json,
                                                                const std::string& lines_json,
                                                                TimePoint now) {
  Borrowed s = c_.Prepared(
      "INSERT INTO allocations (order_id, order_number, groups_json, lines_json, "
      "current_group, state, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 'open', ?, ?) "
      "ON CONFLICT (order_number) DO NOTHING");
  s->bind(1, order.id);
  s->bind(2, order.number);
  s->bind(3, groups_json);
  s->bind(4, lines_json);
  s->bind(5, ToUnixMicros(now));
  s->bind(6, ToUnixMicros(now));
  if (s->exec() == 0) return std::nullopt;  // the order has one
  return c_.db().getLastInsertRowid();
}

AllocationRow SqliteTransaction::ReadAllocation(std::int64_t allocation_id) {
  Borrowed s = c_.Prepared(
      "SELECT state, current_group, groups_json, order_id, order_number, lines_json "
      "FROM allocations WHERE id = ?");
  s->bind(1, allocation_id);
  if (!s->executeStep()) {
    throw StoreError(StoreError::Kind::kCorrupt, "request without allocation");
  }
  return AllocationRow{allocation_id,
                       StateColumn(s->getColumn(0)),
                       s->getColumn(1).getInt(),
                       nlohmann::json::parse(s->getColumn(2).getString()).get<PriorityGroups>(),
                       OrderRef{s->getColumn(3).getString(), s->getColumn(4).getInt64()},
                       s->getColumn(5).getString()};
}

void SqliteTransaction::SetCurrentGroup(std::int64_t allocation_id, int group, TimePoint now) {
  Borrowed s = c_.Prepared(
      "UPDATE allocations SET current_group = ?, updated_at = ? WHERE id = ? AND state = 'open'");
  s->bind(1, group);
  s->bind(2, ToUnixMicros(now));
  s->bind(3, allocation_id);
  s->exec();
}

std::optional<StoreTransaction::OpenWork> SqliteTransaction::CloseAllocation(
    std::int64_t allocation_id, AllocationState to, std::int64_t confirmed_warehouse_id,
    std::int64_t keep, TimePoint now) {
  Borrowed s = c_.Prepared(
      "UPDATE allocations SET state = ?1, updated_at = ?2, confirmed_warehouse_id = ?4 "
      "WHERE id = ?3 AND state = 'open'");
  s->bind(1, std::string(ToString(to)));
  s->bind(2, ToUnixMicros(now));
  s->bind(3, allocation_id);
  if (to == AllocationState::kConfirmed) {
    s->bind(4, confirmed_warehouse_id);
  } else {
    s->bind(4);  // NULL
  }
  if (s->exec() != 1) return std::nullopt;
  OpenWork open{ConfirmableRequests(allocation_id, keep), {}};
  Borrowed q = c_.Prepared(
      "SELECT id, warehouse_id FROM checks WHERE allocation_id = ? AND status = 'asked' "
      "ORDER BY id");
  q->bind(1, allocation_id);
  while (q->executeStep()) open.checks.emplace_back(q->getColumn(0), q->getColumn(1));
  return open;
}

std::optional<std::int64_t> SqliteTransaction::InsertRequest(const AllocationRow& allocation,
                                                             const WarehouseInfo& warehouse,
                                                             int group_index, TimePoint now,
                                                             TimePoint expires) {
  Borrowed s = c_.Prepared(
      "INSERT INTO allocation_requests (allocation_id, order_id, order_number, lines_json, "
      "warehouse_id, warehouse_name, group_index, status, pending, created_at, expires_at, "
      "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'allocated', 1, ?, ?, ?) "
      "ON CONFLICT (allocation_id, warehouse_id) DO NOTHING");
  s->bind(1, allocation.id);
  s->bind(2, allocation.order.id);
  s->bind(3, allocation.order.number);
  s->bind(4, allocation.lines_json);
  s->bind(5, warehouse.id);
  s->bind(6, warehouse.name);
  s->bind(7, group_index);
  s->bind(8, ToUnixMicros(now));
  s->bind(9, ToUnixMicros(expires));
  s->bind(10, ToUnixMicros(now));
  if (s->exec() != 1) return std::nullopt;
  return c_.db().getLastInsertRowid();
}

std::optional<RequestHead> SqliteTransaction::ReadRequestHead(std::int64_t request_id) {
  Borrowed s = c_.Prepared(
      "SELECT r.status, r.warehouse_id, r.allocation_id, r.group_index, a.state, "
      "a.current_group FROM allocation_requests r JOIN allocations a ON a.id = r.allocation_id "
      "WHERE r.id = ?");
  s->bind(1, request_id);
  if (!s->executeStep()) return std::nullopt;
  return RequestHead{StatusColumn(s->getColumn(0)), s->getColumn(1).getInt64(),
                     s->getColumn(2).getInt64(),    s->getColumn(3).getInt(),
                     StateColumn(s->getColumn(4)),  s->getColumn(5).getInt()};
}

StoreTransaction::GroupCounts SqliteTransaction::CountGroup(std::int64_t allocation_id,
                                                            int group_index) {
  Borrowed s = c_.Prepared(
      "SELECT (SELECT count(*) FROM allocation_requests WHERE allocation_id = ?1 AND "
      "group_index = ?2 AND pending = 1), (SELECT count(*) FROM allocation_requests WHERE "
      "allocation_id = ?1 AND group_index = ?2), (SELECT count(*) FROM checks WHERE "
      "allocation_id = ?1 AND group_index = ?2 AND status = 'asked')");
  s->bind(1, allocation_id);
  s->bind(2, group_index);
  s->executeStep();
  return GroupCounts{s->getColumn(0).getInt(), s->getColumn(1).getInt(), s->getColumn(2).getInt()};
}

std::vector<std::pair<std::int64_t, std::int64_t>> SqliteTransaction::ConfirmableRequests(
    std::int64_t allocation_id, std::int64_t keep) {
  Borrowed s = c_.Prepared(std::string("SELECT id, warehouse_id FROM allocation_requests "
                                       "WHERE allocation_id = ? AND id != ? AND ") +
                           StatusSetSql(StatusSet::kConfirmable) + " ORDER BY id");
  s->bind(1, allocation_id);
  s->bind(2, keep);
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  while (s->executeStep()) out.emplace_back(s->getColumn(0), s->getColumn(1));
  return out;
}

std::vector<StoreTransaction::ExpiredRequest> SqliteTransaction::ExpiredRequests(TimePoint now,
                                                                                 int limit) {
  Borrowed s = c_.Prepared(kExpiryScanSql);
  s->bind(1, ToUnixMicros(now));
  s->bind(2, limit);
  std::vector<ExpiredRequest> out;
  while (s->executeStep()) {
    out.push_back(ExpiredRequest{s->getColumn(0).getInt64(), s->getColumn(1).getInt64(),
                                 s->getColumn(2).getInt64()});
  }
  return out;
}

bool SqliteTransaction::MoveRequest(std::int64_t request_id, RequestStatus to, StatusSet from,
                                    TimePoint now) {
  Borrowed s = c_.Prepared("UPDATE allocation_requests " + StatusAssignment(to) +
                           "WHERE id = ? AND " + StatusSetSql(from));
  s->bind(1, std::string(ToString(to)));
  s->bind(2, ToUnixMicros(now));
  s->bind(3, request_id);
  return s->exec() == 1;
}

int SqliteTransaction::MoveRequests(std::span<const std::int64_t> ids, RequestStatus to,
                                    StatusSet from, TimePoint now) {
  if (ids.empty()) return 0;
  // One statement, the ids as a JSON array. NOT INDEXED: by id (rowid) alone; otherwise the
  // planner splits the status OR-chain into two searches of requests_by_status per id.
  Borrowed s =
      c_.Prepared("UPDATE allocation_requests NOT INDEXED " + StatusAssignment(to) +
                  "WHERE id IN (SELECT value FROM json_each(?)) AND " + StatusSetSql(from));
  s->bind(1, std::string(ToString(to)));
  s->bind(2, ToUnixMicros(now));
  s->bind(3, "[" + JoinIds(ids) + "]");
  return s->exec();
}

void SqliteTransaction::QueueEvent(std::int64_t warehouse_id, std::int64_t request_id,
                                   EventAction action, RequestStatus status, TimePoint now) {
  Borrowed s = c_.Prepared(
      "INSERT INTO outbox_events (warehouse_id, request_id, action, status, created_at) "
      "VALUES (?, ?, ?, ?, ?)");
  s->bind(1, warehouse_id);
  s->bind(2, request_id);
  s->bind(3, std::string(ToString(action)));
  s->bind(4, std::string(ToString(status)));
  s->bind(5, ToUnixMicros(now));
  s->exec();
}

std::optional<std::int64_t> SqliteTransaction::InsertCheck(std::int64_t allocation_id,
                                                           std::int64_t warehouse_id,
                                                           int group_index, TimePoint now,
                                                           TimePoint expires) {
  Borrowed s = c_.Prepared(
      "INSERT INTO checks (allocation_id, warehouse_id, group_index, status, created_at, "
      "expires_at, updated_at) VALUES (?1, ?2, ?3, 'asked', ?4, ?5, ?4) "
      "ON CONFLICT (allocation_id, warehouse_id) DO NOTHING");
  s->bind(1, allocation_id);
  s->bind(2, warehouse_id);
  s->bind(3, group_index);
  s->bind(4, ToUnixMicros(now));
  s->bind(5, ToUnixMicros(expires));
  if (s->exec() != 1) return std::nullopt;
  return c_.db().getLastInsertRowid();
}

std::optional<StoreTransaction::CheckHead> SqliteTransaction::ReadCheckHead(
    std::int64_t order_number, std::int64_t warehouse_id) {
  Borrowed s = c_.Prepared(
      "SELECT c.id, c.status, c.allocation_id, c.group_index, a.state, a.current_group, "
      "c.expires_at FROM allocations a JOIN checks c ON c.allocation_id = a.id AND "
      "c.warehouse_id = ? "
      "WHERE a.order_number = ?");
  s->bind(1, warehouse_id);
  s->bind(2, order_number);
  if (!s->executeStep()) return std::nullopt;
  std::optional<CheckStatus> status = ParseCheckStatus(s->getColumn(1).getString());
  if (!status) throw StoreError(StoreError::Kind::kCorrupt, "unknown check status");
  return CheckHead{s->getColumn(0).getInt64(),
                   *status,
                   s->getColumn(2).getInt64(),
                   s->getColumn(3).getInt(),
                   StateColumn(s->getColumn(4)),
                   s->getColumn(5).getInt(),
                   FromUnixMicros(s->getColumn(6).getInt64())};
}

bool SqliteTransaction::AnswerCheck(std::int64_t check_id, CheckStatus to, TimePoint now) {
  Borrowed s =
      c_.Prepared("UPDATE checks SET status = ?, updated_at = ? WHERE id = ? AND status = 'asked'");
  s->bind(1, std::string(ToString(to)));
  s->bind(2, ToUnixMicros(now));
  s->bind(3, check_id);
  return s->exec() == 1;
}

std::vector<StoreTransaction::ExpiredCheck> SqliteTransaction::ExpiredChecks(TimePoint now,
                                                                             int limit) {
  Borrowed s = c_.Prepared(
      "SELECT id, allocation_id, warehouse_id FROM checks INDEXED BY checks_asked_by_expiry "
      "WHERE status = 'asked' AND expires_at <= ? ORDER BY expires_at LIMIT ?");
  s->bind(1, ToUnixMicros(now));
  s->bind(2, limit);
  std::vector<ExpiredCheck> out;
  while (s->executeStep()) {
    out.push_back(ExpiredCheck{s->getColumn(0).getInt64(), s->getColumn(1).getInt64(),
                               s->getColumn(2).getInt64()});
  }
  return out;
}

void SqliteTransaction::QueueCheckEvent(std::int64_t warehouse_id, std::int64_t check_id,
                                        EventAction action, CheckStatus status, TimePoint now) {
  Borrowed s = c_.Prepared(
      "INSERT INTO outbox_events (warehouse_id, check_id, action, status, created_at) "
      "VALUES (?, ?, ?, ?, ?)");
  s->bind(1, warehouse_id);
  s->bind(2, check_id);
  s->bind(3, std::string(ToString(action)));
  s->bind(4, std::string(ToString(status)));
  s->bind(5, ToUnixMicros(now));
  s->exec();
}

const std::string& SqliteTransaction::DeliverySalt() {
  if (salt_.empty()) salt_ = c_.db().execAndGet("SELECT salt FROM store_identity").getString();
  return salt_;
}

std::vector<StoreTransaction::PendingDelivery> SqliteTransaction::PendingDeliveries(
    std::int64_t warehouse_id, std::int64_t after_id, int limit) {
  Borrowed q = c_.Prepared(
      "SELECT id, next_attempt_at, lease_until FROM deliveries "
      "INDEXED BY deliveries_pending_by_warehouse "
      "WHERE warehouse_id = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?");
  q->bind(1, warehouse_id);
  q->bind(2, after_id);
  q->bind(3, limit);
  std::vector<PendingDelivery> out;
  while (q->executeStep()) {
    PendingDelivery p;
    p.id = q->getColumn(0).getInt64();
    p.next_attempt_at = FromUnixMicros(q->getColumn(1).getInt64());
    if (!q->getColumn(2).isNull()) p.lease_until = FromUnixMicros(q->getColumn(2).getInt64());
    out.push_back(p);
  }
  return out;
}

std::vector<std::int64_t> SqliteTransaction::DueDeliveries(std::int64_t warehouse_id, TimePoint now,
                                                           TimePoint lease_now, int limit) {
  Borrowed q = c_.Prepared(
      "SELECT id FROM deliveries INDEXED BY deliveries_pending_by_warehouse "
      "WHERE warehouse_id = ? AND state = 'pending' AND "
      "next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
      "ORDER BY id LIMIT ?");
  q->bind(1, warehouse_id);
  q->bind(2, ToUnixMicros(now));
  q->bind(3, ToUnixMicros(lease_now));
  q->bind(4, limit);
  std::vector<std::int64_t> out;
  while (q->executeStep()) out.push_back(q->getColumn(0).getInt64());
  return out;
}

std::optional<TimePoint> SqliteTransaction::NextDueDelivery(std::int64_t warehouse_id,
                                                            TimePoint now) {
  Borrowed q = c_.Prepared(
      "SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_pending_by_warehouse "
      "WHERE warehouse_id = ? AND state = 'pending' AND next_attempt_at > ?");
  q->bind(1, warehouse_id);
  q->bind(2, ToUnixMicros(now));
  if (!q->executeStep() || q->getColumn(0).isNull()) return std::nullopt;
  return FromUnixMicros(q->getColumn(0).getInt64());
}

TimePoint SqliteTransaction::LeaseClock(TimePoint now) { return now; }

bool SqliteTransaction::ClaimWarehouse(std::int64_t warehouse_id, const std::string& owner,
                                       TimePoint now, TimePoint until) {
  Borrowed s = c_.Prepared(
      "INSERT INTO warehouse_leases (warehouse_id, owner, lease_until) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (warehouse_id) DO UPDATE SET owner = excluded.owner, "
      "lease_until = excluded.lease_until "
      "WHERE warehouse_leases.owner = excluded.owner OR warehouse_leases.lease_until <= ?4");
  s->bind(1, warehouse_id);
  s->bind(2, owner);
  s->bind(3, ToUnixMicros(until));
  s->bind(4, ToUnixMicros(now));
  return s->exec() == 1;
}

void SqliteTransaction::ReleaseWarehouse(std::int64_t warehouse_id, const std::string& owner) {
  Borrowed s = c_.Prepared("DELETE FROM warehouse_leases WHERE warehouse_id = ? AND owner = ?");
  s->bind(1, warehouse_id);
  s->bind(2, owner);
  s->exec();
}

std::vector<std::string> SqliteTransaction::LiveDispatchers(const std::string& owner, TimePoint now,
                                                            TimePoint until) {
  Borrowed up = c_.Prepared(
      "INSERT INTO dispatchers (owner, seen_until) VALUES (?1, ?2) "
      "ON CONFLICT (owner) DO UPDATE SET seen_until = excluded.seen_until");
  up->bind(1, owner);
  up->bind(2, ToUnixMicros(until));
  up->exec();
  Borrowed gone = c_.Prepared("DELETE FROM dispatchers WHERE seen_until <= ?");
  gone->bind(1, ToUnixMicros(now));
  gone->exec();
  Borrowed live = c_.Prepared("SELECT owner FROM dispatchers ORDER BY owner");
  std::vector<std::string> out;
  while (live->executeStep()) out.push_back(live->getColumn(0).getString());
  return out;
}

bool SqliteTransaction::ClaimLease(std::int64_t delivery_id, const std::string& owner,
                                   TimePoint now, TimePoint until) {
  Borrowed s = c_.Prepared(
      "UPDATE deliveries SET lease_until = ?1, lease_owner = ?2 WHERE id = ?3 AND "
      "state = 'pending' AND (lease_until IS NULL OR lease_until <= ?4 OR lease_owner = ?2)");
  s->bind(1, ToUnixMicros(until));
  s->bind(2, owner);
  s->bind(3, delivery_id);
  s->bind(4, ToUnixMicros(now));
  return s->exec() == 1;
}

void SqliteTransaction::SetLease(std::int64_t delivery_id, const std::string& owner,
                                 std::optional<TimePoint> until) {
  Borrowed s = c_.Prepared(
      "UPDATE deliveries SET lease_until = ?1, lease_owner = CASE WHEN ?1 IS NULL THEN NULL "
      "ELSE lease_owner END WHERE id = ?2 AND state = 'pending' AND lease_owner = ?3");
  BindOptionalTime(s, 1, until ? &*until : nullptr);
  s->bind(2, delivery_id);
  s->bind(3, owner);
  s->exec();
}

std::optional<Delivery> SqliteTransaction::ReadDelivery(std::int64_t delivery_id) {
  return sqlite::ReadDelivery(c_, delivery_id);
}

std::vector<StoreTransaction::UnbatchedEvent> SqliteTransaction::UnbatchedWithSubjects(
    std::int64_t warehouse_id, std::int64_t after_event, int limit) {
  // One query, not one per event; a check_first create event also reads its group's checks.
  Borrowed s = c_.Prepared(
      "SELECT e.id, e.warehouse_id, e.request_id, e.action, e.status, e.created_at, "
      "e.delivery_id, e.check_id, r.id, r.allocation_id, r.status, r.warehouse_id, "
      "r.warehouse_name, r.group_index, r.created_at, r.expires_at, r.updated_at, r.order_id, "
      "r.order_number, r.lines_json, c.allocation_id, c.group_index, c.warehouse_id, "
      "ca.order_number FROM outbox_events e INDEXED BY outbox_unbatched_by_warehouse "
      "LEFT JOIN allocation_requests r ON r.id = e.request_id "
      "LEFT JOIN checks c ON c.id = e.check_id LEFT JOIN allocations ca ON ca.id = c.allocation_id "
      "WHERE e.delivery_id IS NULL AND e.warehouse_id = ? AND e.id > ? ORDER BY e.id LIMIT ?");
  s->bind(1, warehouse_id);
  s->bind(2, after_event);
  s->bind(3, limit);
  std::vector<UnbatchedEvent> out;
  std::vector<std::pair<std::size_t, std::pair<std::int64_t, int>>> creates;  // (index, group)
  while (s->executeStep()) {
    UnbatchedEvent u{EventFromRow(*s), std::nullopt, std::nullopt};
    if (!s->getColumn(8).isNull()) u.request = RequestFromRow(*s, 8);
    if (!s->getColumn(20).isNull()) {
      u.check = CheckEventSubject{
          u.event.check_id, s->getColumn(23).getInt64(), s->getColumn(22).getInt64(), {}};
      if (u.event.action == EventAction::kCreate) {
        creates.push_back({out.size(), {s->getColumn(20).getInt64(), s->getColumn(21).getInt()}});
      }
    }
    out.push_back(std::move(u));
  }
  s->reset();
  for (const auto& [index, group] : creates) {
    Borrowed q = c_.Prepared(
        "SELECT warehouse_id, expires_at FROM checks WHERE allocation_id = ? AND "
        "group_index = ? ORDER BY id");
    q->bind(1, group.first);
    q->bind(2, group.second);
    while (q->executeStep()) {
      out[index].check->asked.emplace_back(q->getColumn(0).getInt64(),
                                           FromUnixMicros(q->getColumn(1).getInt64()));
    }
  }
  return out;
}

std::vector<std::int64_t> SqliteTransaction::InsertDeliveries(
    std::span<const FirstAttempt> firsts) {
  std::vector<std::int64_t> ids;
  ids.reserve(firsts.size());
  for (const FirstAttempt& first : firsts) {
    const std::int64_t id = InsertDelivery(first);
    AssignEvents(id, first.formed->warehouse_id, first.formed->event_ids);
    InsertAttempt(id, first.attempt);
    ids.push_back(id);
  }
  return ids;
}

std::int64_t SqliteTransaction::InsertDelivery(const FirstAttempt& first) {
  const Delivery& d = *first.formed;
  Borrowed s = c_.Prepared(
      "INSERT INTO deliveries (uid, warehouse_id, state, document, request_ids, "
      "attempt_count, next_attempt_at, created_at, finished_at) "
      "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)");
  s->bind(1, d.uid);
  s->bind(2, d.warehouse_id);
  s->bind(3, std::string(ToString(first.state)));
  static const std::string kNoDocument;
  s->bind(4, first.keep_document ? d.document : kNoDocument);
  s->bind(5, JoinIds(d.request_ids));
  s->bind(6, ToUnixMicros(first.next_attempt_at));
  s->bind(7, ToUnixMicros(d.created_at));
  BindOptionalTime(s, 8, first.finished_at);
  s->exec();
  return c_.db().getLastInsertRowid();
}

void SqliteTransaction::AssignEvents(std::int64_t delivery_id, std::int64_t warehouse_id,
                                     std::span<const std::int64_t> event_ids) {
  // One cached statement per event, not an IN-list: a new SQL text per batch would be parsed
  // every time and churn the statement cache.
  Borrowed u = c_.Prepared(
      "UPDATE outbox_events SET delivery_id = ? WHERE id = ? AND warehouse_id = ? AND "
      "delivery_id IS NULL");
  u->bind(1, delivery_id);
  u->bind(3, warehouse_id);
  for (std::int64_t id : event_ids) {
    u->bind(2, id);
    u->exec();
    u->reset();
  }
}

std::optional<std::int64_t> SqliteTransaction::AdvanceDelivery(std::int64_t delivery_id, int number,
                                                               DeliveryState state,
                                                               TimePoint next_attempt_at,
                                                               const TimePoint* finished_at,
                                                               bool drop_document) {
  Borrowed s = c_.Prepared(
      "UPDATE deliveries SET attempt_count = ?1, state = ?2, next_attempt_at = ?3, "
      "lease_until = NULL, lease_owner = NULL, finished_at = ?4, "
      "document = CASE WHEN ?7 THEN '' ELSE document END "
      "WHERE id = ?5 AND state = 'pending' AND attempt_count = ?6 RETURNING warehouse_id");
  s->bind(1, number);
  s->bind(2, std::string(ToString(state)));
  s->bind(3, ToUnixMicros(next_attempt_at));
  BindOptionalTime(s, 4, finished_at);
  s->bind(5, delivery_id);
  s->bind(6, number - 1);
  s->bind(7, drop_document ? 1 : 0);
  // RETURNING: SQLite makes the change in the first step (at most one row: by id).
  if (!s->executeStep()) return std::nullopt;
  return s->getColumn(0).getInt64();
}

void SqliteTransaction::InsertAttempt(std::int64_t delivery_id, const DeliveryAttempt& attempt) {
  Borrowed s = c_.Prepared(
      "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, "
      "http_status, error, response_head) VALUES (?, ?, ?, ?, ?, ?, ?)");
  s->bind(1, delivery_id);
  s->bind(2, attempt.attempt);
  s->bind(3, ToUnixMicros(attempt.started_at));
  s->bind(4, static_cast<std::int64_t>(attempt.duration.count()));
  s->bind(5, attempt.http_status);
  s->bind(6, attempt.error);
  s->bind(7, attempt.response_head.data(), static_cast<int>(attempt.response_head.size()));
  s->exec();
}

namespace {

// The upsert of one (minute, warehouse) row of activity: ?1 minute, ?2 warehouse, ?3-?5 the
// counts, then the calls by bucket.
std::string AddActivitySql() {
  std::string columns = "minute, warehouse_id, delivered, failed_attempts, dead";
  std::string values = "?1, ?2, ?3, ?4, ?5";
  std::string sums =
      "delivered = delivered + excluded.delivered, "
      "failed_attempts = failed_attempts + excluded.failed_attempts, dead = dead + excluded.dead";
  int parameter = 6;
  for (const char* c : activity::kCallColumns) {
    columns += std::string(", ") + c;
    values += ", ?" + std::to_string(parameter++);
    sums += std::string(", ") + c + " = " + c + " + excluded." + c;
  }
  return "INSERT INTO webhook_activity (" + columns + ") VALUES (" + values +
         ") ON CONFLICT (minute, warehouse_id) DO UPDATE SET " + sums;
}

}  // namespace

void SqliteTransaction::AddActivity(std::span<const ActivityRow> rows) {
  static const std::string kSql = AddActivitySql();
  Borrowed s = c_.Prepared(kSql);
  for (const ActivityRow& row : rows) {
    s->bind(1, ToUnixMicros(row.minute));
    s->bind(2, row.warehouse_id);
    s->bind(3, row.delivered);
    s->bind(4, row.failed_attempts);
    s->bind(5, row.dead);
    for (std::size_t i = 0; i < row.calls.size(); ++i) {
      s->bind(static_cast<int>(6 + i), row.calls[i]);
    }
    s->exec();
    s->reset();
  }
}

void SqliteTransaction::NoteLastSuccesses(
    std::span<const std::pair<std::int64_t, TimePoint>> successes) {
  Borrowed s = c_.Prepared(
      "INSERT INTO webhook_last_success (warehouse_id, started_at) VALUES (?, ?) "
      "ON CONFLICT (warehouse_id) DO UPDATE SET started_at = excluded.started_at "
      "WHERE excluded.started_at > started_at");
  for (const auto& [warehouse_id, at] : successes) {
    s->bind(1, warehouse_id);
    s->bind(2, ToUnixMicros(at));
    s->exec();
    s->reset();
  }
}

std::int64_t SqliteTransaction::DeleteActivityBefore(TimePoint before) {
  Borrowed s = c_.Prepared("DELETE FROM webhook_activity WHERE minute < ?");
  s->bind(1, ToUnixMicros(before));
  return s->exec();
}

bool SqliteTransaction::DisableWebhook(std::int64_t warehouse_id, const std::string& reason,
                                       TimePoint now) {
  Borrowed s = c_.Prepared(
      "INSERT INTO webhook_endpoints (warehouse_id, disabled_at, disabled_reason) "
      "VALUES (?, ?, ?) ON CONFLICT (warehouse_id) DO UPDATE SET disabled_at = "
      "excluded.disabled_at, disabled_reason = excluded.disabled_reason "
      "WHERE disabled_at IS NULL");
  s->bind(1, warehouse_id);
  s->bind(2, ToUnixMicros(now));
  s->bind(3, reason);
  return s->exec() == 1;
}

bool SqliteTransaction::EnableWebhook(std::int64_t warehouse_id) {
  Borrowed s = c_.Prepared(
      "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL "
      "WHERE warehouse_id = ? AND disabled_at IS NOT NULL");
  s->bind(1, warehouse_id);
  return s->exec() == 1;
}

int SqliteTransaction::ResendDead(std::optional<std::int64_t> warehouse_id, TimePoint now) {
  std::string sql =
      "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL, "
      "lease_owner = NULL, finished_at = NULL WHERE state = 'dead'";
  if (warehouse_id) sql += " AND warehouse_id = " + std::to_string(*warehouse_id);
  Borrowed s = c_.Prepared(sql);
  s->bind(1, ToUnixMicros(now));
  return s->exec();
}

std::optional<std::int64_t> SqliteTransaction::DeliveryWarehouse(std::int64_t delivery_id) {
  Borrowed s = c_.Prepared("SELECT warehouse_id FROM deliveries WHERE id = ?");
  s->bind(1, delivery_id);
  if (!s->executeStep()) return std::nullopt;
  return s->getColumn(0).getInt64();
}

bool SqliteTransaction::ResendDeadDelivery(std::int64_t delivery_id, TimePoint now) {
  Borrowed s = c_.Prepared(
      "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL, "
      "lease_owner = NULL, finished_at = NULL WHERE id = ? AND state = 'dead'");
  s->bind(1, ToUnixMicros(now));
  s->bind(2, delivery_id);
  return s->exec() == 1;
}

}  // namespace allocation_relay::sqlite
