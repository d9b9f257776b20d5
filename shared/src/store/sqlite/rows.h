// The SQLite backend's shared SQL: the spelling of status sets, the columns of requests, events
// and deliveries, and the decoding of their rows (any value the schema does not allow is a
// corrupt row: StoreError kCorrupt).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_ROWS_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_ROWS_H_

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../id_list.h"
#include "../transaction.h"
#include "allocation_relay/domain.h"
#include "connection.h"

namespace allocation_relay::sqlite {

// A status set as an OR-chain, never `status IN (...)`: SQLite evaluates an IN-list through a
// temporary b-tree built on every execution, and an UPDATE of `status` evaluates the predicate
// of each partial index (migration 2) besides its own WHERE. The pending chain is spelt exactly
// as those index predicates, so that queries can use them.
const char* StatusSetSql(StatusSet set);

// The SET part of every move of a request's status (binds: status, updated_at). `pending` is
// set only when it changes: then a move between pending statuses leaves the indexes declared on
// it alone (SQLite updates an index when a column it names is SET).
std::string StatusAssignment(RequestStatus to);

// "(12,57)".
std::string IdList(std::span<const std::int64_t> ids);

RequestStatus StatusColumn(const SQLite::Column& c);
AllocationState StateColumn(const SQLite::Column& c);

// A request's columns, without and with its FROM.
inline constexpr const char* kRequestSelect =
    "SELECT r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, r.group_index, "
    "r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, r.lines_json ";
inline constexpr const char* kRequestColumns =
    "SELECT r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, r.group_index, "
    "r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, r.lines_json "
    "FROM allocation_requests r ";
// A request row (columns as kRequestColumns), starting at column `first`.
AllocationRequest RequestFromRow(SQLite::Statement& s, int first = 0);

// An outbox row: id, warehouse_id, request_id, action, status, created_at, delivery_id,
// check_id.
inline constexpr const char* kEventColumns =
    "SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id, check_id "
    "FROM outbox_events ";
OutboxEvent EventFromRow(SQLite::Statement& s);

// A check row: id, allocation_id, warehouse_id, group_index, status, created_at, expires_at,
// updated_at.
inline constexpr const char* kCheckColumns =
    "SELECT id, allocation_id, warehouse_id, group_index, status, created_at, expires_at, "
    "updated_at FROM checks ";
Check CheckFromRow(SQLite::Statement& s);

inline constexpr const char* kDeliveryColumns =
    "SELECT id, uid, warehouse_id, state, document, attempt_count, next_attempt_at, "
    "lease_until, created_at, request_ids FROM deliveries ";
// A delivery row (columns as kDeliveryColumns).
Delivery DeliveryFromRow(SQLite::Statement& s);

// An attempt from columns first.. (delivery_id, attempt, started_at, duration_us, http_status,
// error, response_head).
DeliveryAttempt AttemptFromRow(SQLite::Statement& s, int first = 0);

// Reads used by both a Store's own connection and the writer's.
std::optional<AllocationRequest> ReadRequest(Connection& c, std::int64_t request_id);
std::optional<Delivery> ReadDelivery(Connection& c, std::int64_t delivery_id);

}  // namespace allocation_relay::sqlite

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_ROWS_H_
