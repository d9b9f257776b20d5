#include "support/outbox_seed.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdint>

#include "allocation_relay/store.h"
#include "support/test_database.h"

namespace allocation_relay::testing {

void SeedOutbox(const std::string& path, int n, int warehouses) {
  Store::Open(SqliteStoreOptions(path, SynchronousMode::kOff));
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt *a, *r, *e;
  sqlite3_prepare_v2(db,
                     "INSERT INTO allocations (id, order_id, order_number, groups_json, "
                     "lines_json, current_group, state, created_at, updated_at) VALUES "
                     "(?, 'ab12', ?, '[[1]]', ?, 0, 'open', ?, ?)",
                     -1, &a, nullptr);
  sqlite3_prepare_v2(db,
                     "INSERT INTO allocation_requests (id, allocation_id, order_id, order_number, "
                     "lines_json, warehouse_id, warehouse_name, group_index, status, pending, "
                     "created_at, expires_at, updated_at) VALUES (?, ?, 'ab12', ?, ?, ?, 'W', 0, "
                     "'allocated', 1, ?, ?, ?)",
                     -1, &r, nullptr);
  sqlite3_prepare_v2(db,
                     "INSERT INTO outbox_events (warehouse_id, request_id, action, status, "
                     "created_at) VALUES (?, ?, 'create', 'allocated', ?)",
                     -1, &e, nullptr);
  std::int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const char* lines = R"([{"lineId":73,"quantity":5,"stockItemId":1}])";
  for (int id = 1; id <= n; ++id) {
    int w = 1 + id % warehouses;
    sqlite3_bind_int(a, 1, id);
    sqlite3_bind_int(a, 2, id);
    sqlite3_bind_text(a, 3, lines, -1, SQLITE_STATIC);
    sqlite3_bind_int64(a, 4, now);
    sqlite3_bind_int64(a, 5, now);
    sqlite3_step(a);
    sqlite3_reset(a);
    sqlite3_bind_int(r, 1, id);
    sqlite3_bind_int(r, 2, id);
    sqlite3_bind_int(r, 3, id);
    sqlite3_bind_text(r, 4, lines, -1, SQLITE_STATIC);
    sqlite3_bind_int(r, 5, w);
    sqlite3_bind_int64(r, 6, now);
    sqlite3_bind_int64(r, 7, now + 3'600'000'000LL);
    sqlite3_bind_int64(r, 8, now);
    sqlite3_step(r);
    sqlite3_reset(r);
    sqlite3_bind_int(e, 1, w);
    sqlite3_bind_int(e, 2, id);
    sqlite3_bind_int64(e, 3, now);
    sqlite3_step(e);
    sqlite3_reset(e);
  }
  sqlite3_finalize(a);
  sqlite3_finalize(r);
  sqlite3_finalize(e);
  sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
}

}  // namespace allocation_relay::testing
