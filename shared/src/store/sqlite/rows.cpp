#include "rows.h"

namespace allocation_relay::sqlite {

const char* StatusSetSql(StatusSet set) {
  switch (set) {
    case StatusSet::kPending:
      return "(status = 'allocated' OR status = 'sent' OR status = 'failed')";
    case StatusSet::kConfirmable:
      return "(status = 'allocated' OR status = 'sent' OR status = 'failed' OR "
             "status = 'timed-out')";
    case StatusSet::kSendable:
      return "(status = 'allocated' OR status = 'failed')";
    case StatusSet::kUnsent:
      return "(status = 'allocated')";
  }
  return "(0)";
}

std::string StatusAssignment(RequestStatus to) {
  return IsPending(to) ? "SET status = ?, updated_at = ? "
                       : "SET status = ?, updated_at = ?, pending = NULL ";
}

std::string IdList(std::span<const std::int64_t> ids) { return "(" + JoinIds(ids) + ")"; }

RequestStatus StatusColumn(const SQLite::Column& c) {
  std::optional<RequestStatus> s = ParseRequestStatus(c.getString());
  if (!s) throw StoreError(StoreError::Kind::kCorrupt, "unknown request status " + c.getString());
  return *s;
}

AllocationState StateColumn(const SQLite::Column& c) {
  std::optional<AllocationState> s = ParseAllocationState(c.getString());
  if (!s) throw StoreError(StoreError::Kind::kCorrupt, "unknown allocation state " + c.getString());
  return *s;
}

AllocationRequest RequestFromRow(SQLite::Statement& s, int first) {
  auto c = [&](int i) { return s.getColumn(first + i); };
  AllocationRequest r;
  r.id = c(0).getInt64();
  r.allocation_id = c(1).getInt64();
  r.status = StatusColumn(c(2));
  r.warehouse_id = c(3).getInt64();
  r.warehouse_name = c(4).getString();
  r.group_index = c(5).getInt();
  r.created_at = FromUnixMicros(c(6).getInt64());
  r.expires_at = FromUnixMicros(c(7).getInt64());
  r.updated_at = FromUnixMicros(c(8).getInt64());
  r.order.id = c(9).getString();
  r.order.number = c(10).getInt64();
  r.lines_json = c(11).getString();
  return r;
}

OutboxEvent EventFromRow(SQLite::Statement& s) {
  OutboxEvent e;
  e.id = s.getColumn(0).getInt64();
  e.warehouse_id = s.getColumn(1).getInt64();
  e.action = ParseEventAction(s.getColumn(3).getString()).value_or(EventAction::kCreate);
  e.created_at = FromUnixMicros(s.getColumn(5).getInt64());
  if (!s.getColumn(6).isNull()) e.delivery_id = s.getColumn(6).getInt64();
  if (!s.getColumn(7).isNull()) {
    e.check_id = s.getColumn(7).getInt64();  // a check_first event: its status is the check's
  } else {
    e.request_id = s.getColumn(2).getInt64();
    e.status = StatusColumn(s.getColumn(4));
  }
  return e;
}

Check CheckFromRow(SQLite::Statement& s) {
  Check c;
  c.id = s.getColumn(0).getInt64();
  c.allocation_id = s.getColumn(1).getInt64();
  c.warehouse_id = s.getColumn(2).getInt64();
  c.group_index = s.getColumn(3).getInt();
  std::optional<CheckStatus> status = ParseCheckStatus(s.getColumn(4).getString());
  if (!status) throw StoreError(StoreError::Kind::kCorrupt, "unknown check status");
  c.status = *status;
  c.created_at = FromUnixMicros(s.getColumn(5).getInt64());
  c.expires_at = FromUnixMicros(s.getColumn(6).getInt64());
  c.updated_at = FromUnixMicros(s.getColumn(7).getInt64());
  return c;
}

DeliveryAttempt AttemptFromRow(SQLite::Statement& s, int first) {
  DeliveryAttempt a;
  a.delivery_id = s.getColumn(first).getInt64();
  a.attempt = s.getColumn(first + 1).getInt();
  a.started_at = FromUnixMicros(s.getColumn(first + 2).getInt64());
  a.duration = Micros(s.getColumn(first + 3).getInt64());
  a.http_status = s.getColumn(first + 4).getInt();
  a.error = s.getColumn(first + 5).getString();
  const SQLite::Column head = s.getColumn(first + 6);
  a.response_head.assign(static_cast<const char*>(head.getBlob()),
                         static_cast<std::size_t>(head.getBytes()));
  return a;
}

Delivery DeliveryFromRow(SQLite::Statement& s) {
  Delivery d;
  d.id = s.getColumn(0).getInt64();
  d.uid = s.getColumn(1).getString();
  d.warehouse_id = s.getColumn(2).getInt64();
  std::optional<DeliveryState> state = ParseDeliveryState(s.getColumn(3).getString());
  if (!state) throw StoreError(StoreError::Kind::kCorrupt, "unknown delivery state");
  d.state = *state;
  d.document = s.getColumn(4).getString();
  d.attempt_count = s.getColumn(5).getInt();
  d.next_attempt_at = FromUnixMicros(s.getColumn(6).getInt64());
  if (!s.getColumn(7).isNull()) d.lease_until = FromUnixMicros(s.getColumn(7).getInt64());
  d.created_at = FromUnixMicros(s.getColumn(8).getInt64());
  d.request_ids = ParseIdList(s.getColumn(9).getString());
  return d;
}

std::optional<AllocationRequest> ReadRequest(Connection& c, std::int64_t request_id) {
  Borrowed s = c.Prepared(std::string(kRequestColumns) + "WHERE r.id = ?");
  s->bind(1, request_id);
  if (!s->executeStep()) return std::nullopt;
  return RequestFromRow(*s);
}

std::optional<Delivery> ReadDelivery(Connection& c, std::int64_t delivery_id) {
  Borrowed q = c.Prepared(std::string(kDeliveryColumns) + "WHERE id = ?");
  q->bind(1, delivery_id);
  if (!q->executeStep()) return std::nullopt;
  return DeliveryFromRow(*q);
}

}  // namespace allocation_relay::sqlite
