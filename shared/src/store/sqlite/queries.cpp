// The API's reads: requests, allocations, their counts and query plans.
#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "allocation_relay/render.h"
#include "rows.h"
#include "sqlite_backend.h"
#include "sqlite_transaction.h"

namespace allocation_relay::sqlite {
namespace {

// Without INDEXED BY the planner answers min() through requests_by_status, reading every
// pending row (27 ms at 200,000 pending, each time the expiry worker looks); with it, O(log n).
constexpr const char* kNextExpirationSql =
    "SELECT min(expires_at) FROM allocation_requests INDEXED BY requests_pending_by_expiry "
    "WHERE pending = 1";
constexpr const char* kNextCheckExpirationSql =
    "SELECT min(expires_at) FROM checks INDEXED BY checks_asked_by_expiry WHERE status = 'asked'";

// The SELECT of ListRequests; parameters: ?1 after_id, ?2 limit, ?3 offset, ?4 the warehouse
// name (only when the query has one). Statuses and ids are inlined (enums and integers, never
// user text); the pending statuses are asked for as `pending = 1`, the partial indexes' own
// predicate, so SQLite can use them.
//
// When rows are skipped (`skipping`: an OFFSET), the page is chosen by an inner query over ids
// only, so the skipped rows are stepped over in an index without reading their table rows; the
// outer query then reads the (at most `limit`) rows of the page. Without an OFFSET one plain
// query reads the page directly.
std::string ListRequestsSql(const RequestQuery& query, bool skipping) {
  std::vector<RequestStatus> statuses = query.statuses;
  std::sort(statuses.begin(), statuses.end());
  statuses.erase(std::unique(statuses.begin(), statuses.end()), statuses.end());
  const bool pending_only =
      statuses == std::vector<RequestStatus>{RequestStatus::kAllocated, RequestStatus::kSent,
                                             RequestStatus::kFailed};
  // The default (pending) query is what every warehouse polls. Without statistics the planner
  // walks the full-history index instead of the small partial one, so name it. An order filter
  // is more selective still (an order has at most a request per warehouse), but without
  // statistics the planner may take a warehouse's pending index for it (a scoped key asking
  // for an order's pending requests read all its warehouse's): name the order index.
  const char* index = "";
  if (!query.order_numbers.empty()) {
    index = "INDEXED BY requests_by_order ";
  } else if (pending_only) {
    index = (!query.warehouse_ids.empty() || query.scope.only)
                ? "INDEXED BY requests_pending_by_warehouse "
                : "INDEXED BY requests_pending ";
  }
  std::string inner = skipping ? "SELECT r.id FROM allocation_requests r "
                               : std::string(kRequestSelect) + "FROM allocation_requests r ";
  inner += index;
  inner += "WHERE r.id > ?1";
  if (!query.order_numbers.empty())
    inner += " AND r.order_number IN " + IdList(query.order_numbers);
  if (pending_only) {
    inner += " AND r.pending = 1";
  } else if (!statuses.empty()) {
    inner += " AND (";
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      inner += (i ? " OR status = '" : "status = '") + std::string(ToString(statuses[i])) + "'";
    }
    inner += ")";
  }
  if (!query.warehouse_ids.empty()) {
    inner += " AND r.warehouse_id IN " + IdList(query.warehouse_ids);
  }
  if (query.warehouse_name) inner += " AND r.warehouse_name = ?4";
  if (query.scope.only) inner += " AND r.warehouse_id IN " + IdList(*query.scope.only);
  inner += " ORDER BY r.id LIMIT ?2 OFFSET ?3";
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
                                " AND warehouse_id IN " + IdList(*query.scope.only)
                          : "SELECT 1 FROM allocations WHERE order_number = " + number;
  return "SELECT k.known, page.* FROM (SELECT EXISTS (" + known + ") AS known) k LEFT JOIN (" +
         ListRequestsSql(query, false) + ") page ON true ORDER BY page.id";
}

bool IsUnfiltered(const RequestQuery& q) {
  return q.statuses.empty() && q.order_numbers.empty() && q.warehouse_ids.empty() &&
         !q.warehouse_name && !q.scope.only;
}

void BindListParameters(SQLite::Statement& s, const RequestQuery& query, std::int64_t after_id,
                        std::int64_t offset) {
  s.bind(1, after_id);
  s.bind(2, query.limit);
  s.bind(3, offset);
  if (query.warehouse_name) s.bind(4, *query.warehouse_name);
}

}  // namespace

StoreResult<std::optional<TimePoint>> SqliteBackend::NextExpiration() {
  return Guarded([&]() -> std::optional<TimePoint> {
    std::optional<TimePoint> next;
    for (const char* sql : {kNextExpirationSql, kNextCheckExpirationSql}) {
      Borrowed s = reader_.Prepared(sql);
      if (!s->executeStep() || s->getColumn(0).isNull()) continue;
      const TimePoint at = FromUnixMicros(s->getColumn(0).getInt64());
      if (!next || at < *next) next = at;
    }
    return next;
  });
}

StoreResult<std::optional<AllocationRequest>> SqliteBackend::GetRequest(std::int64_t request_id) {
  return Guarded([&] { return ReadRequest(reader_, request_id); });
}

StoreResult<std::optional<Allocation>> SqliteBackend::GetAllocationByOrder(
    std::int64_t order_number) {
  return Guarded([&]() -> std::optional<Allocation> {
    ReadTransaction txn(reader_.db());
    Allocation a;
    {
      Borrowed s = reader_.Prepared(
          "SELECT id, order_id, order_number, groups_json, current_group, state, "
          "confirmed_warehouse_id, created_at, updated_at, lines_json FROM allocations "
          "WHERE order_number = ?");
      s->bind(1, order_number);
      if (!s->executeStep()) return std::nullopt;
      a.id = s->getColumn(0).getInt64();
      a.order.id = s->getColumn(1).getString();
      a.order.number = s->getColumn(2).getInt64();
      a.groups = nlohmann::json::parse(s->getColumn(3).getString()).get<PriorityGroups>();
      a.current_group = s->getColumn(4).getInt();
      a.state = StateColumn(s->getColumn(5));
      if (!s->getColumn(6).isNull()) a.confirmed_warehouse_id = s->getColumn(6).getInt64();
      a.created_at = FromUnixMicros(s->getColumn(7).getInt64());
      a.updated_at = FromUnixMicros(s->getColumn(8).getInt64());
      a.lines = ParseLinesJson(s->getColumn(9).getString());
    }
    {
      Borrowed s = reader_.Prepared(std::string(kRequestColumns) +
                                    "WHERE r.allocation_id = ? ORDER BY r.id");
      s->bind(1, a.id);
      while (s->executeStep()) a.requests.push_back(RequestFromRow(*s));
    }
    {
      Borrowed s =
          reader_.Prepared(std::string(kCheckColumns) + "WHERE allocation_id = ? ORDER BY id");
      s->bind(1, a.id);
      while (s->executeStep()) a.checks.push_back(CheckFromRow(*s));
    }
    return a;
  });
}

StoreResult<std::vector<AllocationRequest>> SqliteBackend::ListRequests(const RequestQuery& query) {
  return Guarded([&]() -> std::vector<AllocationRequest> {
    ReadTransaction txn(reader_.db());
    std::int64_t after_id = query.after_id;
    std::int64_t offset = query.offset;
    if (offset > 0 && IsUnfiltered(query)) {
      // Dense ids (count = max(id)): page P is the id range after (P-1)*100, O(log n).
      Borrowed d = reader_.Prepared(
          "SELECT (SELECT value FROM row_counts WHERE name = 'allocation_requests'), "
          "(SELECT max(id) FROM allocation_requests)");
      if (d->executeStep() && !d->getColumn(1).isNull() &&
          d->getColumn(0).getInt64() == d->getColumn(1).getInt64()) {
        after_id = offset > std::numeric_limits<std::int64_t>::max() - after_id
                       ? std::numeric_limits<std::int64_t>::max()
                       : after_id + offset;
        offset = 0;
      }
    }
    std::vector<AllocationRequest> out;
    {
      Borrowed s = reader_.Prepared(ListRequestsSql(query, offset > 0));
      BindListParameters(*s, query, after_id, offset);
      while (s->executeStep()) out.push_back(RequestFromRow(*s));
    }
    return out;
  });
}

StoreResult<std::optional<std::vector<AllocationRequest>>> SqliteBackend::ListOrderRequests(
    std::int64_t order_number, const RequestQuery& query) {
  return Guarded([&]() -> std::optional<std::vector<AllocationRequest>> {
    Borrowed s = reader_.Prepared(OrderRequestsSql(order_number, query));
    BindListParameters(*s, query, query.after_id, query.offset);
    bool known = false;
    std::vector<AllocationRequest> out;
    while (s->executeStep()) {
      known = s->getColumn(0).getInt() != 0;
      if (!known) break;
      if (!s->getColumn(1).isNull()) out.push_back(RequestFromRow(*s, 1));
    }
    if (!known) return std::nullopt;
    return out;
  });
}

StoreResult<std::vector<std::string>> SqliteBackend::ExplainListRequestsForTest(
    const RequestQuery& query) {
  return Guarded([&] { return reader_.Explain(ListRequestsSql(query, query.offset > 0)); });
}

StoreResult<std::vector<std::string>> SqliteBackend::ExplainExpiryScanForTest() {
  return Guarded([&] { return reader_.Explain(kExpiryScanSql); });
}

StoreResult<std::vector<std::string>> SqliteBackend::ExplainNextExpirationForTest() {
  return Guarded([&] { return reader_.Explain(kNextExpirationSql); });
}

StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>>
SqliteBackend::CountRequestsByStatus() {
  return Guarded([&] {
    std::vector<std::pair<RequestStatus, std::int64_t>> out;
    for (RequestStatus s : kAllRequestStatuses) out.emplace_back(s, 0);
    Borrowed q = reader_.Prepared(
        "SELECT status, count(*) FROM allocation_requests INDEXED BY requests_by_status "
        "GROUP BY status");
    while (q->executeStep()) {
      RequestStatus s = StatusColumn(q->getColumn(0));
      out[static_cast<std::size_t>(s)].second = q->getColumn(1).getInt64();
    }
    return out;
  });
}

StoreResult<std::vector<std::pair<CheckStatus, std::int64_t>>>
SqliteBackend::CountChecksByStatus() {
  return Guarded([&] {
    std::vector<std::pair<CheckStatus, std::int64_t>> out;
    for (CheckStatus s : kAllCheckStatuses) out.emplace_back(s, 0);
    Borrowed q = reader_.Prepared("SELECT status, count(*) FROM checks GROUP BY status");
    while (q->executeStep()) {
      if (auto s = ParseCheckStatus(q->getColumn(0).getString())) {
        out[static_cast<std::size_t>(*s)].second = q->getColumn(1).getInt64();
      }
    }
    return out;
  });
}

StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>>
SqliteBackend::CountAllocationsByState() {
  return Guarded([&] {
    std::vector<std::pair<AllocationState, std::int64_t>> out;
    for (AllocationState s : {AllocationState::kOpen, AllocationState::kConfirmed,
                              AllocationState::kExhausted, AllocationState::kCancelled}) {
      out.emplace_back(s, 0);
    }
    // One pass with a counter per state: `GROUP BY state` (no index on it) sorted every
    // allocation in memory, ~47 MiB per scrape at a million rows, kept by the allocator.
    Borrowed q = reader_.Prepared(
        "SELECT count(*) FILTER (WHERE state = 'open'), count(*) FILTER (WHERE state = "
        "'confirmed'), count(*) FILTER (WHERE state = 'exhausted'), count(*) FILTER (WHERE "
        "state = 'cancelled') FROM allocations");
    if (q->executeStep()) {
      for (int i = 0; i < 4; ++i)
        out[static_cast<std::size_t>(i)].second = q->getColumn(i).getInt64();
    }
    return out;
  });
}

StoreResult<std::optional<TimePoint>> SqliteBackend::OldestFinishedAllocation() {
  return Guarded([&]() -> std::optional<TimePoint> {
    Borrowed s = reader_.Prepared(
        "SELECT min(updated_at) FROM allocations INDEXED BY allocations_finished_by_change "
        "WHERE state != 'open'");
    if (!s->executeStep() || s->getColumn(0).isNull()) return std::nullopt;
    return FromUnixMicros(s->getColumn(0).getInt64());
  });
}

}  // namespace allocation_relay::sqlite
