#include "support/request_seed.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "support/pg_bench.h"
#include "support/test_database.h"

namespace allocation_relay::testing {

void CheckSqlite(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
    std::exit(1);
  }
}

namespace {

// Bulk-loads benchmark rows (raw SQL: this is a test tool, not the product): one allocation per
// request, in one transaction at synchronous=OFF, checkpointed at the end.
class Seeder {
 public:
  explicit Seeder(const std::string& path) {
    CheckSqlite(sqlite3_open(path.c_str(), &db_), db_, "open");
    CheckSqlite(
        sqlite3_exec(db_, "PRAGMA busy_timeout=10000; PRAGMA synchronous=OFF; BEGIN IMMEDIATE",
                     nullptr, nullptr, nullptr),
        db_, "begin");
    CheckSqlite(
        sqlite3_prepare_v2(db_,
                           "INSERT INTO allocations (id, order_id, order_number, groups_json, "
                           "current_group, state, confirmed_warehouse_id, created_at, "
                           "updated_at, lines_json) "
                           "VALUES (?, '486e13eaaa65d5ff1e87c997b5dce54e', ?, ?, 0, ?, ?, ?, ?, ?)",
                           -1, &alloc_, nullptr),
        db_, "prepare");
    CheckSqlite(
        sqlite3_prepare_v2(db_,
                           "INSERT INTO allocation_requests (id, allocation_id, warehouse_id, "
                           "warehouse_name, group_index, status, pending, created_at, "
                           "expires_at, updated_at, order_id, order_number, lines_json) "
                           "VALUES (?1, ?2, ?3, ?4, 0, ?5, CASE WHEN ?5 = 'allocated' OR ?5 = "
                           "'sent' OR ?5 = 'failed' THEN 1 END, ?6, ?7, ?8, "
                           "'486e13eaaa65d5ff1e87c997b5dce54e', ?9, ?10)",
                           -1, &req_, nullptr),
        db_, "prepare");
    now_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  }
  ~Seeder() {
    sqlite3_finalize(alloc_);
    sqlite3_finalize(req_);
    CheckSqlite(
        sqlite3_exec(db_, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
        db_, "commit");
    sqlite3_close(db_);
  }

  // Request (and allocation, and order number) `id` at warehouse (id % 50) + 1, created
  // `age_ms` ago; a pending one expires an hour from now.
  void Insert(std::int64_t id, const char* status, std::int64_t age_ms) {
    const bool pending = std::string_view(status) == "sent";
    std::int64_t warehouse = (id % 50) + 1;
    const char* state = pending                                   ? "open"
                        : std::string_view(status) == "confirmed" ? "confirmed"
                                                                  : "exhausted";
    std::string groups = "[[" + std::to_string(warehouse) + "]]";
    std::string lines = R"([{"lineId":73,"quantity":)" + std::to_string(1 + rng_() % 5) +
                        R"(,"stockItemId":)" + std::to_string(1 + rng_() % 1000) + "}]";
    std::int64_t created = now_us_ - age_ms * 1000;
    sqlite3_bind_int64(alloc_, 1, id);
    sqlite3_bind_int64(alloc_, 2, id);
    sqlite3_bind_text(alloc_, 3, groups.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(alloc_, 4, state, -1, SQLITE_STATIC);
    if (std::string_view(status) == "confirmed") {
      sqlite3_bind_int64(alloc_, 5, warehouse);
    } else {
      sqlite3_bind_null(alloc_, 5);
    }
    sqlite3_bind_int64(alloc_, 6, created);
    sqlite3_bind_int64(alloc_, 7, created);
    sqlite3_bind_text(alloc_, 8, lines.c_str(), -1, SQLITE_TRANSIENT);
    CheckSqlite(sqlite3_step(alloc_), db_, "insert allocation");
    sqlite3_reset(alloc_);
    std::string name = "Warehouse " + std::to_string(warehouse);
    sqlite3_bind_int64(req_, 1, id);
    sqlite3_bind_int64(req_, 2, id);
    sqlite3_bind_int64(req_, 3, warehouse);
    sqlite3_bind_text(req_, 4, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req_, 5, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(req_, 6, created);
    sqlite3_bind_int64(req_, 7, pending ? now_us_ + 3'600'000'000LL : created + 3'600'000'000LL);
    sqlite3_bind_int64(req_, 8, created);
    sqlite3_bind_int64(req_, 9, id);
    sqlite3_bind_text(req_, 10, lines.c_str(), -1, SQLITE_TRANSIENT);
    CheckSqlite(sqlite3_step(req_), db_, "insert request");
    sqlite3_reset(req_);
  }

  std::mt19937& rng() { return rng_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* alloc_ = nullptr;
  sqlite3_stmt* req_ = nullptr;
  std::mt19937 rng_{42};
  std::int64_t now_us_ = 0;
};

}  // namespace

// The benchmark database: n requests over 50 warehouses.
void Seed(const std::string& path, std::int64_t n, std::vector<std::int64_t>& pending_ids) {
  Store::Open(testing::SqliteStoreOptions(path, SynchronousMode::kOff));  // schema
  Seeder seeder(path);
  const char* finals[] = {"confirmed", "rejected", "outdated", "timed-out"};
  for (std::int64_t id = 1; id <= n; ++id) {
    // As in a live system, pending requests are the recent ones (older ones were answered or
    // timed out): two thirds of the newest 3 % are pending, 2 % in all.
    bool pending = id > n - n * 3 / 100 && seeder.rng()() % 3 != 0;
    seeder.Insert(id, pending ? "sent" : finals[seeder.rng()() % 4], n - id);
    if (pending) pending_ids.push_back(id);
  }
}

// Appends `count` pending requests (one allocation each, ids and order numbers after every
// existing one) to the live database, for the write part: confirms and rejects each need one of
// their own. Returns their ids.
std::vector<std::int64_t> AddPending(const std::string& path, std::int64_t count) {
  std::int64_t first_id = 1;
  {
    sqlite3* db = nullptr;
    CheckSqlite(sqlite3_open(path.c_str(), &db), db, "open");
    sqlite3_stmt* max = nullptr;
    CheckSqlite(sqlite3_prepare_v2(db,
                                   "SELECT max((SELECT coalesce(max(id), 0) FROM allocations), "
                                   "(SELECT coalesce(max(id), 0) FROM allocation_requests))",
                                   -1, &max, nullptr),
                db, "prepare");
    CheckSqlite(sqlite3_step(max), db, "max id");
    first_id = sqlite3_column_int64(max, 0) + 1;
    sqlite3_finalize(max);
    sqlite3_close(db);
  }
  std::vector<std::int64_t> ids;
  Seeder seeder(path);
  for (std::int64_t id = first_id; id < first_id + count; ++id) {
    seeder.Insert(id, "sent", 0);
    ids.push_back(id);
  }
  return ids;
}

// The benchmark database on PostgreSQL: n requests over 50 warehouses, as Seed makes them
// (schema through Store::Open, then INSERT ... SELECT from generate_series, one transaction),
// its two tables vacuumed and analysed as autovacuum would leave a live database (the empty
// ones stay never analysed, see SeedOutboxPg). Returns the pending ids.
std::vector<std::int64_t> PgSeed(const StoreOptions& options, std::int64_t n) {
  Store::Open(options);  // schema
  const std::string now = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  const std::string count = std::to_string(n);
  testing::PgRun(
      options.url,
      "SELECT setseed(0.42); "
      "CREATE TEMP TABLE seed AS SELECT id, (id % 50) + 1 AS w, "
      "CASE WHEN id > " +
          std::to_string(n - n * 3 / 100) +
          " AND random() < 2.0 / 3 THEN 'sent' ELSE (ARRAY['confirmed', 'rejected', "
          "'outdated', 'timed-out'])[1 + floor(random() * 4)::int] END AS status, "
          "'[{\"lineId\":73,\"quantity\":' || (1 + floor(random() * 5)::int) || "
          "',\"stockItemId\":' || (1 + floor(random() * 1000)::int) || '}]' AS lines, " +
          now + " - (" + count + " - id) * 1000 AS created FROM generate_series(1, " + count +
          ") AS id; "
          "INSERT INTO allocations (id, order_id, order_number, groups_json, current_group, "
          "state, confirmed_warehouse_id, created_at, updated_at, lines_json) SELECT id, "
          "'486e13eaaa65d5ff1e87c997b5dce54e', id, '[[' || w || ']]', 0, CASE status WHEN "
          "'sent' THEN 'open' WHEN 'confirmed' THEN 'confirmed' ELSE 'exhausted' END, CASE WHEN "
          "status = 'confirmed' THEN w END, created, created, lines FROM seed; "
          "INSERT INTO allocation_requests (id, allocation_id, warehouse_id, warehouse_name, "
          "group_index, status, pending, created_at, expires_at, updated_at, order_id, "
          "order_number, lines_json) SELECT id, id, w, 'Warehouse ' || w, 0, status, CASE WHEN "
          "status = 'sent' THEN 1 END, created, CASE WHEN status = 'sent' THEN " +
          now +
          " + 3600000000 ELSE created + 3600000000 END, created, "
          "'486e13eaaa65d5ff1e87c997b5dce54e', id, lines FROM seed; "
          "SELECT setval(pg_get_serial_sequence('allocations', 'id'), " +
          count + "); SELECT setval(pg_get_serial_sequence('allocation_requests', 'id'), " + count +
          ")");
  testing::PgRun(options.url, "VACUUM ANALYZE allocations, allocation_requests");
  std::vector<std::int64_t> ids;
  for (const auto& row : testing::PgRun(
           options.url, "SELECT id FROM allocation_requests WHERE pending = 1 ORDER BY id")) {
    ids.push_back(std::stoll(row[0]));
  }
  return ids;
}

// `count` pending requests (one allocation each, at warehouse (id % 50) + 1) with ids from the
// tables' own sequences, so intake's later ids do not collide with them. Returns their ids.
std::vector<std::int64_t> PgAddPending(const StoreOptions& options, std::int64_t count) {
  const std::string now = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  auto rows = testing::PgRun(
      options.url,
      "WITH a AS (INSERT INTO allocations (id, order_id, order_number, groups_json, "
      "current_group, state, created_at, updated_at, lines_json) SELECT i, "
      "'486e13eaaa65d5ff1e87c997b5dce54e', i, '[[' || (i % 50) + 1 || ']]', 0, 'open', " +
          now + ", " + now +
          ", '[{\"lineId\":73,\"quantity\":1,\"stockItemId\":1}]' FROM (SELECT "
          "nextval(pg_get_serial_sequence('allocations', 'id')) AS i FROM generate_series(1, " +
          std::to_string(count) +
          ")) s RETURNING id, order_number, lines_json) "
          "INSERT INTO allocation_requests (allocation_id, warehouse_id, warehouse_name, "
          "group_index, status, pending, created_at, expires_at, updated_at, order_id, "
          "order_number, lines_json) SELECT id, (id % 50) + 1, 'Warehouse ' || (id % 50) + 1, 0, "
          "'sent', 1, " +
          now + ", " + now + " + 3600000000, " + now +
          ", '486e13eaaa65d5ff1e87c997b5dce54e', order_number, lines_json FROM a RETURNING id");
  std::vector<std::int64_t> ids;
  for (const auto& row : rows) ids.push_back(std::stoll(row[0]));
  std::sort(ids.begin(), ids.end());
  return ids;
}

// What the write part left pending among requests first..last: made final, out of the way.
void PgOutdate(const StoreOptions& options, std::int64_t first, std::int64_t last) {
  const std::string range = " BETWEEN " + std::to_string(first) + " AND " + std::to_string(last);
  testing::PgRun(options.url,
                 "BEGIN; UPDATE allocations SET state = 'exhausted' WHERE state = 'open' AND id "
                 "IN (SELECT allocation_id FROM allocation_requests WHERE pending = 1 AND id" +
                     range +
                     "); UPDATE allocation_requests SET status = 'outdated', pending = NULL "
                     "WHERE pending = 1 AND id" +
                     range + "; COMMIT");
}

}  // namespace allocation_relay::testing
