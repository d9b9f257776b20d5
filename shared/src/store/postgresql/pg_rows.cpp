#include "pg_rows.h"

#include "../id_list.h"

namespace allocation_relay::postgresql {

const char* StatusSetSql(StatusSet set) {
  switch (set) {
    case StatusSet::kPending:
      return "status IN ('allocated', 'sent', 'failed')";
    case StatusSet::kConfirmable:
      return "status IN ('allocated', 'sent', 'failed', 'timed-out')";
    case StatusSet::kSendable:
      return "status IN ('allocated', 'failed')";
    case StatusSet::kUnsent:
      return "status = 'allocated'";
  }
  return "false";
}

RequestStatus StatusValue(std::string_view text) {
  std::optional<RequestStatus> s = ParseRequestStatus(std::string(text));
  if (!s)
    throw StoreError(StoreError::Kind::kCorrupt, "unknown request status " + std::string(text));
  return *s;
}

AllocationState StateValue(std::string_view text) {
  std::optional<AllocationState> s = ParseAllocationState(std::string(text));
  if (!s) {
    throw StoreError(StoreError::Kind::kCorrupt, "unknown allocation state " + std::string(text));
  }
  return *s;
}

AllocationRequest RequestFromRow(const Result& r, int row, int f) {
  AllocationRequest q;
  q.id = r.i64(row, f + 0);
  q.allocation_id = r.i64(row, f + 1);
  q.status = StatusValue(r.text(row, f + 2));
  q.warehouse_id = r.i64(row, f + 3);
  q.warehouse_name = r.str(row, f + 4);
  q.group_index = r.i32(row, f + 5);
  q.created_at = FromUnixMicros(r.i64(row, f + 6));
  q.expires_at = FromUnixMicros(r.i64(row, f + 7));
  q.updated_at = FromUnixMicros(r.i64(row, f + 8));
  q.order.id = r.str(row, f + 9);
  q.order.number = r.i64(row, f + 10);
  q.lines_json = r.str(row, f + 11);
  return q;
}

OutboxEvent EventFromRow(const Result& r, int row) {
  OutboxEvent e;
  e.id = r.i64(row, 0);
  e.warehouse_id = r.i64(row, 1);
  e.action = ParseEventAction(r.str(row, 3)).value_or(EventAction::kCreate);
  e.created_at = FromUnixMicros(r.i64(row, 5));
  if (!r.null(row, 6)) e.delivery_id = r.i64(row, 6);
  if (!r.null(row, 7)) {
    e.check_id = r.i64(row, 7);  // a check_first event: its status is the check's
  } else {
    e.request_id = r.i64(row, 2);
    e.status = StatusValue(r.text(row, 4));
  }
  return e;
}

Check CheckFromRow(const Result& r, int row) {
  Check c;
  c.id = r.i64(row, 0);
  c.allocation_id = r.i64(row, 1);
  c.warehouse_id = r.i64(row, 2);
  c.group_index = r.i32(row, 3);
  std::optional<CheckStatus> status = ParseCheckStatus(r.text(row, 4));
  if (!status) throw StoreError(StoreError::Kind::kCorrupt, "unknown check status");
  c.status = *status;
  c.created_at = FromUnixMicros(r.i64(row, 5));
  c.expires_at = FromUnixMicros(r.i64(row, 6));
  c.updated_at = FromUnixMicros(r.i64(row, 7));
  return c;
}

DeliveryAttempt AttemptFromRow(const Result& r, int row, int first) {
  DeliveryAttempt a;
  a.delivery_id = r.i64(row, first);
  a.attempt = r.i32(row, first + 1);
  a.started_at = FromUnixMicros(r.i64(row, first + 2));
  a.duration = Micros(r.i64(row, first + 3));
  a.http_status = r.i32(row, first + 4);
  a.error = r.str(row, first + 5);
  a.response_head = r.str(row, first + 6);
  return a;
}

Delivery DeliveryFromRow(const Result& r, int row) {
  Delivery d;
  d.id = r.i64(row, 0);
  d.uid = r.str(row, 1);
  d.warehouse_id = r.i64(row, 2);
  std::optional<DeliveryState> state = ParseDeliveryState(r.str(row, 3));
  if (!state) throw StoreError(StoreError::Kind::kCorrupt, "unknown delivery state");
  d.state = *state;
  d.document = r.str(row, 4);
  d.attempt_count = r.i32(row, 5);
  d.next_attempt_at = FromUnixMicros(r.i64(row, 6));
  if (!r.null(row, 7)) d.lease_until = FromUnixMicros(r.i64(row, 7));
  d.created_at = FromUnixMicros(r.i64(row, 8));
  d.request_ids = ParseIdList(r.text(row, 9));
  return d;
}

std::optional<AllocationRequest> ReadRequest(Connection& c, std::int64_t request_id) {
  Result r = c.Exec(std::string(kRequestColumns) + "WHERE r.id = $1", Params().Add(request_id));
  if (r.rows() == 0) return std::nullopt;
  return RequestFromRow(r, 0);
}

std::optional<Delivery> ReadDelivery(Connection& c, std::int64_t delivery_id) {
  Result r = c.Exec(std::string(kDeliveryColumns) + "WHERE id = $1", Params().Add(delivery_id));
  if (r.rows() == 0) return std::nullopt;
  return DeliveryFromRow(r, 0);
}

std::vector<std::int64_t> Ids(const Result& r) {
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.i64(i, 0));
  return out;
}

}  // namespace allocation_relay::postgresql
