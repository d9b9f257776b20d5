// The benchmark database of api_bench, on either backend: n allocation requests (one allocation
// each) over 50 warehouses, 2 % of them pending and among the newest, the rest final, as in a live
// system; and the pending requests the write part adds and clears. Raw SQL: a test tool, not the
// product. Failures end the process with a message (SQLite) or throw (PostgreSQL).
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_REQUEST_SEED_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_REQUEST_SEED_H_

#include <cstdint>
#include <string>
#include <vector>

#include "allocation_relay/store.h"

struct sqlite3;

namespace allocation_relay::testing {

// Ends the process with "<what>: <SQLite's message>" unless `rc` is SQLITE_OK, _DONE or _ROW.
void CheckSqlite(int rc, sqlite3* db, const char* what);

// SQLite: seeds the database file at `path` (created) and appends the pending ids.
void Seed(const std::string& path, std::int64_t n, std::vector<std::int64_t>& pending_ids);
// SQLite: appends `count` pending requests after every existing one; returns their ids.
std::vector<std::int64_t> AddPending(const std::string& path, std::int64_t count);

// PostgreSQL: the same, on the database of `options` (schema through Store::Open); returns the
// pending ids.
std::vector<std::int64_t> PgSeed(const StoreOptions& options, std::int64_t n);
std::vector<std::int64_t> PgAddPending(const StoreOptions& options, std::int64_t count);
// PostgreSQL: the requests first..last still pending made final (and their allocations).
void PgOutdate(const StoreOptions& options, std::int64_t first, std::int64_t last);

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_REQUEST_SEED_H_
