// The PostgreSQL backend's shared SQL: the columns of requests, events and deliveries and the
// decoding of their rows (a value the schema does not allow is a corrupt row: kCorrupt).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_ROWS_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_ROWS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "../transaction.h"
#include "allocation_relay/domain.h"
#include "pg_connection.h"

namespace allocation_relay::postgresql {

// A status set as SQL.
const char* StatusSetSql(StatusSet set);

RequestStatus StatusValue(std::string_view text);
AllocationState StateValue(std::string_view text);

// A request's columns, without and with its FROM.
inline constexpr const char* kRequestSelect =
    "SELECT r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, r.group_index, "
    "r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, r.lines_json ";
inline constexpr const char* kRequestColumns =
    "SELECT r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, r.group_index, "
    "r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, r.lines_json "
    "FROM allocation_requests r ";
// A request row (columns as kRequestColumns), starting at column `first`.
AllocationRequest RequestFromRow(const Result& r, int row, int first = 0);

inline constexpr const char* kEventColumns =
    "SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id, check_id "
    "FROM outbox_events ";
OutboxEvent EventFromRow(const Result& r, int row);

inline constexpr const char* kCheckColumns =
    "SELECT id, allocation_id, warehouse_id, group_index, status, created_at, expires_at, "
    "updated_at FROM checks ";
Check CheckFromRow(const Result& r, int row);

inline constexpr const char* kDeliveryColumns =
    "SELECT id, uid, warehouse_id, state, document, attempt_count, next_attempt_at, "
    "lease_until, created_at, request_ids FROM deliveries ";
Delivery DeliveryFromRow(const Result& r, int row);
// An attempt from columns first.. (delivery_id, attempt, started_at, duration_us, http_status,
// error, response_head).
DeliveryAttempt AttemptFromRow(const Result& r, int row, int first = 0);

std::optional<AllocationRequest> ReadRequest(Connection& c, std::int64_t request_id);
std::optional<Delivery> ReadDelivery(Connection& c, std::int64_t delivery_id);

// The ids in column 0 of every row.
std::vector<std::int64_t> Ids(const Result& r);

}  // namespace allocation_relay::postgresql

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_ROWS_H_
