#include "pg_transaction.h"

#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "../activity.h"
#include "../id_list.h"
#include "pg_rows.h"
#include "pg_schema.h"

namespace allocation_relay::postgresql {
namespace {

Params& AddTime(Params& p, const TimePoint* t) { return t ? p.Add(ToUnixMicros(*t)) : p.AddNull(); }

// The SET part of every move of a request's status: $1 status, $2 updated_at.
std::string StatusAssignment(RequestStatus to) {
  return IsPending(to) ? "SET status = $1, updated_at = $2, pending = 1 "
                       : "SET status = $1, updated_at = $2, pending = NULL ";
}

}  // namespace

std::optional<std::pair<std::int64_t, AllocationState>> PgTransaction::AllocationByOrder(
    std::int64_t order_number) {
  // Locked: what the caller decides on (cancel) stays so until it commits.
  Result r = c_.Exec("SELECT id, state FROM allocations WHERE order_number = $1 FOR UPDATE",
                     Params().Add(order_number));
  if (r.rows() == 0) return std::nullopt;
  return std::pair{r.i64(0, 0), StateValue(r.text(0, 1))};
}

std::optional<std::int64_t> PgTransaction::InsertAllocation(const OrderRef& order,
                                                            const std::string& groups_json,
                                                            const std::string& lines_json,
                                                            TimePoint now) {
  // A concurrent intake of the same order makes this one wait for its commit, then do nothing
  // (or insert, if that one rolled back).
  Result r = c_.Exec(
      "INSERT INTO allocations (order_id, order_number, groups_json, lines_json, "
      "current_group, state, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, 'open', $5, $5) "
      "ON CONFLICT (order_number) DO NOTHING RETURNING id",
      Params()
          .Add(order.id)
          .Add(order.number)
          .Add(groups_json)
          .Add(lines_json)
          .Add(ToUnixMicros(now)));
  if (r.rows() == 0) return std::nullopt;  // the order has one
  return r.i64(0, 0);
}

AllocationRow PgTransaction::ReadAllocation(std::int64_t allocation_id) {
  Result r = c_.Exec(
      "SELECT state, current_group, groups_json, order_id, order_number, lines_json "
      "FROM allocations WHERE id = $1 FOR UPDATE",
      Params().Add(allocation_id));
  if (r.rows() == 0) throw StoreError(StoreError::Kind::kCorrupt, "request without allocation");
  return AllocationRow{allocation_id,
                       StateValue(r.text(0, 0)),
                       r.i32(0, 1),
                       nlohmann::json::parse(r.text(0, 2)).get<PriorityGroups>(),
                       OrderRef{r.str(0, 3), r.i64(0, 4)},
                       r.str(0, 5)};
}

void PgTransaction::SetCurrentGroup(std::int64_t allocation_id, int group, TimePoint now) {
  c_.Queue(
      "UPDATE allocations SET current_group = $1, updated_at = $2 WHERE id = $3 AND state = "
      "'open'",
      Params().Add(group).Add(ToUnixMicros(now)).Add(allocation_id));
}

std::optional<StoreTransaction::OpenWork> PgTransaction::CloseAllocation(
    std::int64_t allocation_id, AllocationState to, std::int64_t confirmed_warehouse_id,
    std::int64_t keep, TimePoint now) {
  Params p;
  p.Add(std::string(ToString(to))).Add(ToUnixMicros(now)).Add(allocation_id);
  if (to == AllocationState::kConfirmed) {
    p.Add(confirmed_warehouse_id);
  } else {
    p.AddNull();
  }
  p.Add(keep);
  // One round trip: no row, not open; else a row per open request (one with NULLs if none is
  // left) and one per asked check. They are read in the statement's snapshot, after the
  // allocation's lock was taken (the flow locks it first), so none can have moved in between.
  Result r = c_.Exec(
      std::string(
          "WITH closed AS (UPDATE allocations SET state = $1, updated_at = $2, "
          "confirmed_warehouse_id = $4::bigint WHERE id = $3 AND state = 'open' RETURNING id) "
          "SELECT 0 AS kind, r.id, r.warehouse_id FROM closed LEFT JOIN allocation_requests r ON "
          "r.allocation_id = closed.id AND r.id <> $5 AND r.") +
          StatusSetSql(StatusSet::kConfirmable) +
          " UNION ALL SELECT 1, c.id, c.warehouse_id FROM closed JOIN checks c ON "
          "c.allocation_id = closed.id AND c.status = 'asked' ORDER BY 1, 2",
      p);
  if (r.rows() == 0) return std::nullopt;
  OpenWork open;
  for (int i = 0; i < r.rows(); ++i) {
    if (r.null(i, 1)) continue;
    (r.i32(i, 0) == 0 ? open.requests : open.checks).emplace_back(r.i64(i, 1), r.i64(i, 2));
  }
  return open;
}

std::optional<std::int64_t> PgTransaction::InsertRequest(const AllocationRow& allocation,
                                                         const WarehouseInfo& warehouse,
                                                         int group_index, TimePoint now,
                                                         TimePoint expires) {
  Result r = c_.Exec(
      "INSERT INTO allocation_requests (allocation_id, order_id, order_number, lines_json, "
      "warehouse_id, warehouse_name, group_index, status, pending, created_at, expires_at, "
      "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'allocated', 1, $8, $9, $8) "
      "ON CONFLICT (allocation_id, warehouse_id) DO NOTHING RETURNING id",
      Params()
          .Add(allocation.id)
          .Add(allocation.order.id)
          .Add(allocation.order.number)
          .Add(allocation.lines_json)
          .Add(warehouse.id)
          .Add(warehouse.name)
          .Add(group_index)
          .Add(ToUnixMicros(now))
          .Add(ToUnixMicros(expires)));
  if (r.rows() == 0) return std::nullopt;
  return r.i64(0, 0);
}

std::optional<RequestHead> PgTransaction::ReadRequestHead(std::int64_t request_id) {
  // The allocation is locked first: every change to one allocation's flow (a confirm, a reject,
  // an expiry moving it on, a cancel) waits for the one before it, as SQLite's single writer
  // does. The request is read after the lock, by a statement of its own: one that waited for
  // the lock would see the request as it was before the change it waited for. The two go out
  // together (pipelined, one round trip): the server runs the read only once the lock is held,
  // and the read's snapshot is taken then. No request, no lock: the read finds nothing too.
  c_.Queue(
      "SELECT 1 FROM allocations WHERE id = (SELECT allocation_id FROM "
      "allocation_requests WHERE id = $1) FOR UPDATE",
      Params().Add(request_id));
  Result r = c_.Exec(
      "SELECT r.status, r.warehouse_id, r.allocation_id, r.group_index, a.state, "
      "a.current_group FROM allocation_requests r JOIN allocations a ON a.id = r.allocation_id "
      "WHERE r.id = $1",
      Params().Add(request_id));
  if (r.rows() == 0) return std::nullopt;
  return RequestHead{StatusValue(r.text(0, 0)), r.i64(0, 1), r.i64(0, 2), r.i32(0, 3),
                     StateValue(r.text(0, 4)),  r.i32(0, 5)};
}

StoreTransaction::GroupCounts PgTransaction::CountGroup(std::int64_t allocation_id,
                                                        int group_index) {
  Result r = c_.Exec(
      "SELECT (SELECT count(*) FROM allocation_requests WHERE allocation_id = $1 AND "
      "group_index = $2 AND pending = 1), (SELECT count(*) FROM allocation_requests WHERE "
      "allocation_id = $1 AND group_index = $2), (SELECT count(*) FROM checks WHERE "
      "allocation_id = $1 AND group_index = $2 AND status = 'asked')",
      Params().Add(allocation_id).Add(group_index));
  return GroupCounts{r.i32(0, 0), r.i32(0, 1), r.i32(0, 2)};
}

std::vector<StoreTransaction::ExpiredRequest> PgTransaction::ExpiredRequests(TimePoint now,
                                                                             int limit) {
  // SKIP LOCKED: two dispatchers expiring at once take different rows; a row a confirm holds is
  // looked at again next time (the move is conditional either way).
  Result r = c_.Exec(
      "SELECT id, allocation_id, warehouse_id FROM allocation_requests WHERE pending = 1 AND "
      "expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
      Params().Add(ToUnixMicros(now)).Add(limit));
  std::vector<ExpiredRequest> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(ExpiredRequest{r.i64(i, 0), r.i64(i, 1), r.i64(i, 2)});
  }
  return out;
}

bool PgTransaction::MoveRequest(std::int64_t request_id, RequestStatus to, StatusSet from,
                                TimePoint now) {
  return c_.Exec("UPDATE allocation_requests " + StatusAssignment(to) + "WHERE id = $3 AND " +
                     StatusSetSql(from),
                 Params().Add(std::string(ToString(to))).Add(ToUnixMicros(now)).Add(request_id))
             .affected() == 1;
}

int PgTransaction::MoveRequests(std::span<const std::int64_t> ids, RequestStatus to, StatusSet from,
                                TimePoint now) {
  if (ids.empty()) return 0;
  return static_cast<int>(
      c_.Exec("UPDATE allocation_requests " + StatusAssignment(to) +
                  "WHERE id = ANY($3::bigint[]) AND " + StatusSetSql(from),
              Params().Add(std::string(ToString(to))).Add(ToUnixMicros(now)).AddIds(ids))
          .affected());
}

void PgTransaction::QueueEvent(std::int64_t warehouse_id, std::int64_t request_id,
                               EventAction action, RequestStatus status, TimePoint now) {
  events_.push_back({warehouse_id, request_id, 0, action, ToString(status), now});
}

std::optional<std::int64_t> PgTransaction::InsertCheck(std::int64_t allocation_id,
                                                       std::int64_t warehouse_id, int group_index,
                                                       TimePoint now, TimePoint expires) {
  Result r = c_.Exec(
      "INSERT INTO checks (allocation_id, warehouse_id, group_index, status, created_at, "
      "expires_at, updated_at) VALUES ($1, $2, $3, 'asked', $4, $5, $4) "
      "ON CONFLICT (allocation_id, warehouse_id) DO NOTHING RETURNING id",
      Params()
          .Add(allocation_id)
          .Add(warehouse_id)
          .Add(group_index)
          .Add(ToUnixMicros(now))
          .Add(ToUnixMicros(expires)));
  if (r.rows() == 0) return std::nullopt;
  return r.i64(0, 0);
}

std::optional<StoreTransaction::CheckHead> PgTransaction::ReadCheckHead(std::int64_t order_number,
                                                                        std::int64_t warehouse_id) {
  // The allocation is locked first, as for ReadRequestHead (and pipelined the same way): two
  // stores answering at once take turns, and the second reads what the first left.
  c_.Queue("SELECT 1 FROM allocations WHERE order_number = $1 FOR UPDATE",
           Params().Add(order_number));
  Result r = c_.Exec(
      "SELECT c.id, c.status, c.allocation_id, c.group_index, a.state, a.current_group, "
      "c.expires_at FROM allocations a JOIN checks c ON c.allocation_id = a.id AND "
      "c.warehouse_id = $2 "
      "WHERE a.order_number = $1",
      Params().Add(order_number).Add(warehouse_id));
  if (r.rows() == 0) return std::nullopt;
  std::optional<CheckStatus> status = ParseCheckStatus(r.text(0, 1));
  if (!status) throw StoreError(StoreError::Kind::kCorrupt, "unknown check status");
  return CheckHead{r.i64(0, 0),
                   *status,
                   r.i64(0, 2),
                   r.i32(0, 3),
                   StateValue(r.text(0, 4)),
                   r.i32(0, 5),
                   FromUnixMicros(r.i64(0, 6))};
}

bool PgTransaction::AnswerCheck(std::int64_t check_id, CheckStatus to, TimePoint now) {
  return c_.Exec(
               "UPDATE checks SET status = $1, updated_at = $2 WHERE id = $3 AND "
               "status = 'asked'",
               Params().Add(std::string(ToString(to))).Add(ToUnixMicros(now)).Add(check_id))
             .affected() == 1;
}

std::vector<StoreTransaction::ExpiredCheck> PgTransaction::ExpiredChecks(TimePoint now, int limit) {
  Result r = c_.Exec(
      "SELECT id, allocation_id, warehouse_id FROM checks WHERE status = 'asked' AND "
      "expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
      Params().Add(ToUnixMicros(now)).Add(limit));
  std::vector<ExpiredCheck> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(ExpiredCheck{r.i64(i, 0), r.i64(i, 1), r.i64(i, 2)});
  }
  return out;
}

void PgTransaction::QueueCheckEvent(std::int64_t warehouse_id, std::int64_t check_id,
                                    EventAction action, CheckStatus status, TimePoint now) {
  events_.push_back({warehouse_id, 0, check_id, action, ToString(status), now});
}

void PgTransaction::AppendEvents() {
  if (events_.empty()) return;
  // Each warehouse's lock first, in warehouse order (no two writes wait for each other the
  // other way round), held to the commit: the next write with events for that warehouse takes
  // its ids only after this one's are visible, so a warehouse's event ids follow the order its
  // events became visible, as on SQLite. Otherwise an event could take an id, wait for its
  // commit, and be read after a later one of the same warehouse was sent.
  std::set<std::int64_t> warehouses;
  for (const Event& e : events_) warehouses.insert(e.warehouse_id);
  for (std::int64_t w : warehouses) {
    c_.Queue("SELECT pg_advisory_xact_lock($1::integer, $2::integer)",
             Params().Add(schema::kOutboxLockClass).Add(w & 0x7fffffff));
  }
  ArrayLiteral warehouse, request, check, action, status, created;
  for (const Event& e : events_) {
    warehouse.Add(e.warehouse_id);
    if (e.check_id != 0) {
      request.AddNull();
      check.Add(e.check_id);
    } else {
      request.Add(e.request_id);
      check.AddNull();
    }
    action.Add(ToString(e.action));
    status.Add(e.status);
    created.Add(ToUnixMicros(e.at));
  }
  // Ids in the order the rules queued them.
  c_.Queue(
      "INSERT INTO outbox_events (warehouse_id, request_id, check_id, action, status, "
      "created_at) SELECT w, r, k, a, s, c FROM unnest($1::bigint[], $2::bigint[], "
      "$3::bigint[], $4::text[], $5::text[], $6::bigint[]) WITH ORDINALITY AS e(w, r, k, a, s, c, "
      "n) ORDER BY n",
      Params()
          .Add(warehouse.Text())
          .Add(request.Text())
          .Add(check.Text())
          .Add(action.Text())
          .Add(status.Text())
          .Add(created.Text()));
}

const std::string& PgTransaction::DeliverySalt() {
  if (salt_.empty()) salt_ = c_.Exec("SELECT salt FROM store_identity").str(0, 0);
  return salt_;
}

std::vector<StoreTransaction::PendingDelivery> PgTransaction::PendingDeliveries(
    std::int64_t warehouse_id, std::int64_t after_id, int limit) {
  Result r = c_.Exec(
      "SELECT id, next_attempt_at, lease_until FROM deliveries WHERE warehouse_id = $1 AND "
      "state = 'pending' AND id > $2 ORDER BY id LIMIT $3",
      Params().Add(warehouse_id).Add(after_id).Add(limit));
  std::vector<PendingDelivery> out;
  for (int i = 0; i < r.rows(); ++i) {
    PendingDelivery p;
    p.id = r.i64(i, 0);
    p.next_attempt_at = FromUnixMicros(r.i64(i, 1));
    if (!r.null(i, 2)) p.lease_until = FromUnixMicros(r.i64(i, 2));
    out.push_back(p);
  }
  return out;
}

std::vector<std::int64_t> PgTransaction::DueDeliveries(std::int64_t warehouse_id, TimePoint now,
                                                       TimePoint lease_now, int limit) {
  return Ids(c_.Exec(
      "SELECT id FROM deliveries WHERE warehouse_id = $1 AND state = 'pending' AND "
      "next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $3) "
      "ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED",
      Params().Add(warehouse_id).Add(ToUnixMicros(now)).Add(ToUnixMicros(lease_now)).Add(limit)));
}

std::optional<TimePoint> PgTransaction::NextDueDelivery(std::int64_t warehouse_id, TimePoint now) {
  Result r = c_.Exec(
      "SELECT min(next_attempt_at) FROM deliveries WHERE warehouse_id = $1 AND "
      "state = 'pending' AND next_attempt_at > $2",
      Params().Add(warehouse_id).Add(ToUnixMicros(now)));
  if (r.null(0, 0)) return std::nullopt;
  return FromUnixMicros(r.i64(0, 0));
}

TimePoint PgTransaction::LeaseClock(TimePoint) {
  // The server's clock at this moment (not the transaction's start): every host judges leases
  // by it.
  return FromUnixMicros(
      c_.Exec("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").i64(0, 0));
}

bool PgTransaction::ClaimWarehouse(std::int64_t warehouse_id, const std::string& owner,
                                   TimePoint now, TimePoint until) {
  return c_.Exec(
               "INSERT INTO warehouse_leases (warehouse_id, owner, lease_until) "
               "VALUES ($1, $2, $3) ON CONFLICT (warehouse_id) DO UPDATE SET "
               "owner = excluded.owner, lease_until = excluded.lease_until "
               "WHERE warehouse_leases.owner = excluded.owner OR "
               "warehouse_leases.lease_until <= $4",
               Params()
                   .Add(warehouse_id)
                   .Add(owner)
                   .Add(ToUnixMicros(until))
                   .Add(ToUnixMicros(now)))
             .affected() == 1;
}

void PgTransaction::ReleaseWarehouse(std::int64_t warehouse_id, const std::string& owner) {
  c_.Queue("DELETE FROM warehouse_leases WHERE warehouse_id = $1 AND owner = $2",
           Params().Add(warehouse_id).Add(owner));
}

std::vector<std::string> PgTransaction::LiveDispatchers(const std::string& owner, TimePoint now,
                                                        TimePoint until) {
  c_.Queue(
      "INSERT INTO dispatchers (owner, seen_until) VALUES ($1, $2) "
      "ON CONFLICT (owner) DO UPDATE SET seen_until = excluded.seen_until",
      Params().Add(owner).Add(ToUnixMicros(until)));
  c_.Queue("DELETE FROM dispatchers WHERE seen_until <= $1", Params().Add(ToUnixMicros(now)));
  Result r = c_.Exec("SELECT owner FROM dispatchers ORDER BY owner COLLATE \"C\"");
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.str(i, 0));
  return out;
}

bool PgTransaction::ClaimLease(std::int64_t delivery_id, const std::string& owner, TimePoint now,
                               TimePoint until) {
  return c_.Exec(
               "UPDATE deliveries SET lease_until = $1, lease_owner = $2 WHERE id = $3 AND "
               "state = 'pending' AND (lease_until IS NULL OR lease_until <= $4 OR "
               "lease_owner = $2)",
               Params().Add(ToUnixMicros(until)).Add(owner).Add(delivery_id).Add(ToUnixMicros(now)))
             .affected() == 1;
}

void PgTransaction::SetLease(std::int64_t delivery_id, const std::string& owner,
                             std::optional<TimePoint> until) {
  Params p;
  AddTime(p, until ? &*until : nullptr).Add(delivery_id).Add(owner);
  c_.Queue(
      "UPDATE deliveries SET lease_until = $1::bigint, lease_owner = CASE WHEN $1::bigint IS "
      "NULL THEN NULL ELSE lease_owner END WHERE id = $2 AND state = 'pending' AND "
      "lease_owner = $3",
      p);
}

std::optional<Delivery> PgTransaction::ReadDelivery(std::int64_t delivery_id) {
  return postgresql::ReadDelivery(c_, delivery_id);
}

std::vector<StoreTransaction::UnbatchedEvent> PgTransaction::UnbatchedWithSubjects(
    std::int64_t warehouse_id, std::int64_t after_event, int limit) {
  Result r = c_.Exec(
      "SELECT e.id, e.warehouse_id, e.request_id, e.action, e.status, e.created_at, "
      "e.delivery_id, e.check_id, r.id, r.allocation_id, r.status, r.warehouse_id, "
      "r.warehouse_name, r.group_index, r.created_at, r.expires_at, r.updated_at, r.order_id, "
      "r.order_number, r.lines_json, c.allocation_id, c.group_index, c.warehouse_id, "
      "ca.order_number FROM outbox_events e LEFT JOIN allocation_requests r ON r.id = "
      "e.request_id LEFT JOIN checks c ON c.id = e.check_id LEFT JOIN allocations ca ON ca.id = "
      "c.allocation_id WHERE e.delivery_id IS NULL AND e.warehouse_id = $1 AND e.id > $2 "
      "ORDER BY e.id LIMIT $3",
      Params().Add(warehouse_id).Add(after_event).Add(limit));
  std::vector<UnbatchedEvent> out;
  for (int i = 0; i < r.rows(); ++i) {
    UnbatchedEvent u{EventFromRow(r, i), std::nullopt, std::nullopt};
    if (!r.null(i, 8)) u.request = RequestFromRow(r, i, 8);
    if (!r.null(i, 20)) {
      u.check = CheckEventSubject{u.event.check_id, r.i64(i, 23), r.i64(i, 22), {}};
      if (u.event.action == EventAction::kCreate) {
        // A create names every warehouse asked with it (rare: one read per create).
        Result g = c_.Exec(
            "SELECT warehouse_id, expires_at FROM checks WHERE allocation_id = $1 AND "
            "group_index = $2 ORDER BY id",
            Params().Add(r.i64(i, 20)).Add(r.i32(i, 21)));
        for (int j = 0; j < g.rows(); ++j) {
          u.check->asked.emplace_back(g.i64(j, 0), FromUnixMicros(g.i64(j, 1)));
        }
      }
    }
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<std::int64_t> PgTransaction::InsertDeliveries(std::span<const FirstAttempt> firsts) {
  if (firsts.empty()) return {};
  // The ids first, in one round trip; the rows, their events and their attempts then go out as
  // three statements queued with the rest of the round, not a round trip per delivery. The ids
  // are taken in ascending order, so a warehouse's deliveries keep their order of formation.
  Result r = c_.Exec(
      "SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) "
      "FROM generate_series(1, $1) ORDER BY 1",
      Params().Add(static_cast<std::int64_t>(firsts.size())));
  std::vector<std::int64_t> ids;
  ids.reserve(firsts.size());
  for (int i = 0; i < r.rows(); ++i) ids.push_back(r.i64(i, 0));
  if (ids.size() != firsts.size()) {
    throw StoreError(StoreError::Kind::kInternal, "delivery ids: asked for " +
                                                      std::to_string(firsts.size()) + ", got " +
                                                      std::to_string(ids.size()));
  }
  ArrayLiteral id, uid, warehouse, state, document, requests, next, created, finished;
  ArrayLiteral event, event_delivery, event_warehouse;
  ArrayLiteral attempt, started, duration, http_status, error, head;
  std::unordered_set<std::int64_t> assigned;
  for (std::size_t i = 0; i < firsts.size(); ++i) {
    const FirstAttempt& f = firsts[i];
    const Delivery& d = *f.formed;
    id.Add(ids[i]);
    uid.Add(d.uid);
    warehouse.Add(d.warehouse_id);
    state.Add(ToString(f.state));
    document.Add(f.keep_document ? std::string_view(d.document) : std::string_view());
    requests.Add(JoinIds(d.request_ids));
    next.Add(ToUnixMicros(f.next_attempt_at));
    created.Add(ToUnixMicros(d.created_at));
    if (f.finished_at) {
      finished.Add(ToUnixMicros(*f.finished_at));
    } else {
      finished.AddNull();
    }
    for (std::int64_t e : d.event_ids) {
      // Once each: an UPDATE joined to two rows of one event would take either delivery, and
      // the first keeps it (as when another delivery already has it).
      if (!assigned.insert(e).second) continue;
      event.Add(e);
      event_delivery.Add(ids[i]);
      event_warehouse.Add(d.warehouse_id);
    }
    attempt.Add(f.attempt.attempt);
    started.Add(ToUnixMicros(f.attempt.started_at));
    duration.Add(static_cast<std::int64_t>(f.attempt.duration.count()));
    http_status.Add(f.attempt.http_status);
    error.Add(f.attempt.error);
    head.Add(f.attempt.response_head);
  }
  c_.Queue(
      "INSERT INTO deliveries (id, uid, warehouse_id, state, document, request_ids, "
      "attempt_count, next_attempt_at, created_at, finished_at) "
      "SELECT id, uid, warehouse_id, state, document, request_ids, 1, next_attempt_at, "
      "created_at, finished_at FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], "
      "$5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[]) AS f(id, uid, "
      "warehouse_id, state, document, request_ids, next_attempt_at, created_at, finished_at)",
      Params()
          .Add(id.Text())
          .Add(uid.Text())
          .Add(warehouse.Text())
          .Add(state.Text())
          .Add(document.Text())
          .Add(requests.Text())
          .Add(next.Text())
          .Add(created.Text())
          .Add(finished.Text()));
  // An event already in another delivery stays there.
  c_.Queue(
      "UPDATE outbox_events e SET delivery_id = f.delivery_id FROM unnest($1::bigint[], "
      "$2::bigint[], $3::bigint[]) AS f(event_id, delivery_id, warehouse_id) "
      "WHERE e.id = f.event_id AND e.warehouse_id = f.warehouse_id AND e.delivery_id IS NULL",
      Params().Add(event.Text()).Add(event_delivery.Text()).Add(event_warehouse.Text()));
  c_.Queue(
      "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, "
      "http_status, error, response_head) SELECT * FROM unnest($1::bigint[], $2::integer[], "
      "$3::bigint[], $4::bigint[], $5::integer[], $6::text[], $7::text[])",
      Params()
          .Add(id.Text())
          .Add(attempt.Text())
          .Add(started.Text())
          .Add(duration.Text())
          .Add(http_status.Text())
          .Add(error.Text())
          .Add(head.Text()));
  return ids;
}

std::optional<std::int64_t> PgTransaction::AdvanceDelivery(std::int64_t delivery_id, int number,
                                                           DeliveryState state,
                                                           TimePoint next_attempt_at,
                                                           const TimePoint* finished_at,
                                                           bool drop_document) {
  Params p;
  p.Add(number).Add(std::string(ToString(state))).Add(ToUnixMicros(next_attempt_at));
  AddTime(p, finished_at).Add(delivery_id).Add(number - 1).Add(drop_document);
  Result r = c_.Exec(
      "UPDATE deliveries SET attempt_count = $1, state = $2, next_attempt_at = $3, "
      "lease_until = NULL, lease_owner = NULL, finished_at = $4::bigint, "
      "document = CASE WHEN $7::boolean THEN '' ELSE document END "
      "WHERE id = $5 AND state = 'pending' AND attempt_count = $6 RETURNING warehouse_id",
      p);
  if (r.rows() != 1) return std::nullopt;
  return r.i64(0, 0);
}

void PgTransaction::InsertAttempt(std::int64_t delivery_id, const DeliveryAttempt& attempt) {
  c_.Queue(
      "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, "
      "http_status, error, response_head) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      Params()
          .Add(delivery_id)
          .Add(attempt.attempt)
          .Add(ToUnixMicros(attempt.started_at))
          .Add(static_cast<std::int64_t>(attempt.duration.count()))
          .Add(attempt.http_status)
          .Add(attempt.error)
          .Add(attempt.response_head));
}

namespace {

// The upsert of a round's activity rows, from arrays: $1 minutes, $2 warehouses, $3-$5 the
// counts, $6-... the calls by bucket.
std::string AddActivitySql() {
  std::string columns = "minute, warehouse_id, delivered, failed_attempts, dead";
  std::string arrays = "$1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]";
  std::string sums =
      "delivered = a.delivered + excluded.delivered, "
      "failed_attempts = a.failed_attempts + excluded.failed_attempts, "
      "dead = a.dead + excluded.dead";
  int parameter = 6;
  for (const char* c : activity::kCallColumns) {
    columns += std::string(", ") + c;
    arrays += ", $" + std::to_string(parameter++) + "::bigint[]";
    sums += std::string(", ") + c + " = a." + c + " + excluded." + c;
  }
  return "INSERT INTO webhook_activity AS a (" + columns + ") SELECT * FROM unnest(" + arrays +
         ") ON CONFLICT (minute, warehouse_id) DO UPDATE SET " + sums;
}

}  // namespace

void PgTransaction::AddActivity(std::span<const ActivityRow> rows) {
  if (rows.empty()) return;
  static const std::string kSql = AddActivitySql();
  ArrayLiteral minute, warehouse, delivered, failed, dead;
  std::array<ArrayLiteral, kCallDurationBuckets> calls;
  for (const ActivityRow& row : rows) {
    minute.Add(ToUnixMicros(row.minute));
    warehouse.Add(row.warehouse_id);
    delivered.Add(row.delivered);
    failed.Add(row.failed_attempts);
    dead.Add(row.dead);
    for (std::size_t i = 0; i < calls.size(); ++i) calls[i].Add(row.calls[i]);
  }
  Params p;
  p.Add(minute.Text()).Add(warehouse.Text()).Add(delivered.Text()).Add(failed.Text());
  p.Add(dead.Text());
  for (const ArrayLiteral& c : calls) p.Add(c.Text());
  // One statement, queued: no round trip of its own. Rows come sorted by key, so two
  // dispatchers adding to the same rows lock them in one order.
  c_.Queue(kSql, p);
}

void PgTransaction::NoteLastSuccesses(
    std::span<const std::pair<std::int64_t, TimePoint>> successes) {
  if (successes.empty()) return;
  ArrayLiteral warehouse, at;
  for (const auto& [warehouse_id, started] : successes) {
    warehouse.Add(warehouse_id);
    at.Add(ToUnixMicros(started));
  }
  c_.Queue(
      "INSERT INTO webhook_last_success AS s (warehouse_id, started_at) "
      "SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT (warehouse_id) "
      "DO UPDATE SET started_at = excluded.started_at WHERE excluded.started_at > s.started_at",
      Params().Add(warehouse.Text()).Add(at.Text()));
}

std::int64_t PgTransaction::DeleteActivityBefore(TimePoint before) {
  return c_
      .Exec("DELETE FROM webhook_activity WHERE minute < $1", Params().Add(ToUnixMicros(before)))
      .affected();
}

bool PgTransaction::DisableWebhook(std::int64_t warehouse_id, const std::string& reason,
                                   TimePoint now) {
  return c_.Exec(
               "INSERT INTO webhook_endpoints (warehouse_id, disabled_at, disabled_reason) "
               "VALUES ($1, $2, $3) ON CONFLICT (warehouse_id) DO UPDATE SET disabled_at = "
               "excluded.disabled_at, disabled_reason = excluded.disabled_reason "
               "WHERE webhook_endpoints.disabled_at IS NULL",
               Params().Add(warehouse_id).Add(ToUnixMicros(now)).Add(reason))
             .affected() == 1;
}

bool PgTransaction::EnableWebhook(std::int64_t warehouse_id) {
  return c_.Exec(
               "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL "
               "WHERE warehouse_id = $1 AND disabled_at IS NOT NULL",
               Params().Add(warehouse_id))
             .affected() == 1;
}

int PgTransaction::ResendDead(std::optional<std::int64_t> warehouse_id, TimePoint now) {
  Params p;
  p.Add(ToUnixMicros(now));
  if (warehouse_id) {
    p.Add(*warehouse_id);
  } else {
    p.AddNull();
  }
  return static_cast<int>(
      c_.Exec("UPDATE deliveries SET state = 'pending', next_attempt_at = $1, lease_until = NULL, "
              "lease_owner = NULL, finished_at = NULL WHERE state = 'dead' AND ($2::bigint IS NULL "
              "OR warehouse_id = "
              "$2::bigint)",
              p)
          .affected());
}

std::optional<std::int64_t> PgTransaction::DeliveryWarehouse(std::int64_t delivery_id) {
  Result r =
      c_.Exec("SELECT warehouse_id FROM deliveries WHERE id = $1", Params().Add(delivery_id));
  if (r.rows() == 0) return std::nullopt;
  return r.i64(0, 0);
}

bool PgTransaction::ResendDeadDelivery(std::int64_t delivery_id, TimePoint now) {
  return c_.Exec(
               "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, lease_until = NULL, "
               "lease_owner = NULL, finished_at = NULL WHERE id = $2 AND state = 'dead'",
               Params().Add(ToUnixMicros(now)).Add(delivery_id))
             .affected() == 1;
}

}  // namespace allocation_relay::postgresql
