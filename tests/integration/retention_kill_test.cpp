// Retention (SPEC section 9): `allocation-dispatcherd prune` killed with SIGKILL in the middle
// of a pass over many seeded rows leaves a consistent file, and a second pass finishes the job.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/api_process.h"
#include "support/database_file.h"
#include "support/process.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::CommandResult;
using testing::ExpectConsistent;
using testing::NowMicros;
using testing::ParseCounts;
using testing::Process;
using testing::Sql;

constexpr const char* kNotFound =
    R"({"status":"no","errorMessages":{"order":"Allocation not found"}})";

// Seeds, in one transaction: `old` confirmed allocations changed 10 days ago (a request and a
// delivered create event each, 100 events a succeeded delivery with one attempt), then 100 such
// allocations whose events are still unbatched, then 100 open ones (50 events in a pending
// delivery, 50 unbatched). Ids are dense from 1 in that order.
void SeedForKill(const std::string& path, int old) {
  Sql db(path);
  db.Exec("PRAGMA synchronous=OFF");
  db.Exec("BEGIN IMMEDIATE");
  const std::int64_t now = NowMicros();
  const std::int64_t ago = now - 10LL * 86400 * 1000000;
  auto prepare = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db.get()));
    }
    return s;
  };
  auto step = [&](sqlite3_stmt* s) {
    if (sqlite3_step(s) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db.get()));
    sqlite3_reset(s);
  };
  sqlite3_stmt* a = prepare(
      "INSERT INTO allocations (id, order_id, order_number, groups_json, lines_json, "
      "current_group, state, confirmed_warehouse_id, created_at, updated_at) VALUES "
      "(?1, 'ab12', ?1, '[[3]]', '{\"1\":{\"lineId\":1,\"quantity\":1,\"stockItemId\":1}}', 0, ?2, "
      "?3, "
      "?4, ?4)");
  sqlite3_stmt* r = prepare(
      "INSERT INTO allocation_requests (id, allocation_id, order_id, order_number, lines_json, "
      "warehouse_id, warehouse_name, group_index, status, pending, created_at, expires_at, "
      "updated_at) VALUES (?1, ?1, 'ab12', ?1, "
      "'{\"1\":{\"lineId\":1,\"quantity\":1,\"stockItemId\":1}}', "
      "3, 'Amsterdam', 0, ?2, ?3, ?4, ?4 + 3600000000, ?4)");
  sqlite3_stmt* e = prepare(
      "INSERT INTO outbox_events (id, warehouse_id, request_id, action, status, created_at, "
      "delivery_id) VALUES (?1, 3, ?1, 'create', 'allocated', ?2, ?3)");
  sqlite3_stmt* d = prepare(
      "INSERT INTO deliveries (id, uid, warehouse_id, state, document, request_ids, attempt_count, "
      "next_attempt_at, lease_until, created_at, finished_at) VALUES "
      "(?1, 'msg_seed' || ?1, 3, ?2, ?3, ?4, 1, ?5, NULL, ?6, ?7)");
  sqlite3_stmt* t = prepare(
      "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, http_status, "
      "error, response_head) VALUES (?1, 1, ?2, 1000, ?3, '', NULL)");
  auto allocation = [&](int id, bool open, std::int64_t at, std::optional<int> delivery) {
    sqlite3_bind_int(a, 1, id);
    sqlite3_bind_text(a, 2, open ? "open" : "confirmed", -1, SQLITE_STATIC);
    if (open) {
      sqlite3_bind_null(a, 3);
    } else {
      sqlite3_bind_int(a, 3, 3);
    }
    sqlite3_bind_int64(a, 4, at);
    step(a);
    sqlite3_bind_int(r, 1, id);
    sqlite3_bind_text(r, 2, open ? "sent" : "confirmed", -1, SQLITE_STATIC);
    if (open) {
      sqlite3_bind_int(r, 3, 1);
    } else {
      sqlite3_bind_null(r, 3);
    }
    sqlite3_bind_int64(r, 4, at);
    step(r);
    sqlite3_bind_int(e, 1, id);
    sqlite3_bind_int64(e, 2, at);
    if (delivery) {
      sqlite3_bind_int(e, 3, *delivery);
    } else {
      sqlite3_bind_null(e, 3);
    }
    step(e);
  };
  auto delivery = [&](int id, bool pending, const std::string& request_ids) {
    sqlite3_bind_int(d, 1, id);
    sqlite3_bind_text(d, 2, pending ? "pending" : "succeeded", -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 3, pending ? "{\"events\":[]}" : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(d, 4, request_ids.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(d, 5, pending ? now + 3600000000LL : ago);
    sqlite3_bind_int64(d, 6, ago);
    if (pending) {
      sqlite3_bind_null(d, 7);
    } else {
      sqlite3_bind_int64(d, 7, ago);
    }
    step(d);
    sqlite3_bind_int(t, 1, id);
    sqlite3_bind_int64(t, 2, ago);
    sqlite3_bind_int(t, 3, pending ? 500 : 200);
    step(t);
  };
  int id = 0, delivery_id = 0;
  std::string batch;
  for (int i = 0; i < old; ++i) {
    ++id;
    allocation(id, false, ago, delivery_id + 1);
    batch += (batch.empty() ? "" : ",") + std::to_string(id);
    if (i % 100 == 99 || i == old - 1) {
      delivery(++delivery_id, false, batch);
      batch.clear();
    }
  }
  for (int i = 0; i < 100; ++i) allocation(++id, false, ago, std::nullopt);
  const int pending_id = delivery_id + 1;
  for (int i = 0; i < 100; ++i) {
    ++id;
    allocation(id, true, now, i < 50 ? std::optional<int>(pending_id) : std::nullopt);
    if (i < 50) batch += (batch.empty() ? "" : ",") + std::to_string(id);
  }
  delivery(pending_id, true, batch);
  for (sqlite3_stmt* s : {a, r, e, d, t}) sqlite3_finalize(s);
  db.Exec("COMMIT");
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

// 6. `prune` killed with SIGKILL in the middle of a pass over 200,000 old allocations: the file
// is intact and consistent (every step all or nothing), nothing kept was touched, and a second
// `prune` finishes the job.
TEST(RetentionKill, APruneKilledMidPassLeavesAConsistentFileAndASecondOneFinishes) {
#ifdef ALLOCATION_RELAY_SANITIZED
  constexpr int kOld = 20000;  // a sanitized build prunes ~10x slower
#else
  constexpr int kOld = 200000;
#endif
  ApiProcessOptions options;
  options.extra = "retention: {finished: 1d, attempts: 1d, interval: 0}\n";
  // Warehouse 3, the seeded one, has a webhook: its unbatched events wait for delivery (no
  // dispatcher runs here to send them).
  options.webhooks[3] = "{url: 'http://127.0.0.1:9/w3', secret: s}";
  ApiProcess api(options);
  const std::string path = api.DatabasePath();
  SeedForKill(path, kOld);
  auto count = [&](const std::string& sql) { return Sql(path).Int(sql); };
  const std::int64_t total = count("SELECT count(*) FROM allocations");
  ASSERT_EQ(total, kOld + 200);
  ExpectConsistent(path);

  std::vector<std::string> argv = {DISPATCHER_BINARY, "--config", api.ConfigPath(), "prune"};
  Process prune(argv, api.dir().path());
  // Kill it once the pass is under way (its first steps committed) and a little later.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return count("SELECT count(*) FROM allocations") < total || !prune.Running(); }, 30s));
  std::this_thread::sleep_for(150ms);
  const bool running = prune.Running();
  prune.Signal(SIGKILL);
  std::optional<int> status = prune.Wait(10s);
  if (running) {
    EXPECT_EQ(status, 128 + SIGKILL) << prune.Stdout() << prune.Stderr();
  }
  const std::int64_t left = count("SELECT count(*) FROM allocations WHERE state != 'open'");
  std::printf("prune killed %s the pass: %lld of %d old final allocations deleted\n",
              running ? "during" : "after", static_cast<long long>(kOld + 100 - left), kOld);

  ExpectConsistent(path);
  EXPECT_EQ(count("SELECT count(*) FROM allocations WHERE state = 'open'"), 100);
  EXPECT_EQ(count("SELECT count(*) FROM allocations WHERE id > " + std::to_string(kOld)), 200);
  EXPECT_EQ(count("SELECT count(*) FROM outbox_events WHERE delivery_id IS NULL"), 150);
  EXPECT_EQ(count("SELECT count(*) FROM outbox_events e JOIN deliveries d ON d.id = "
                  "e.delivery_id WHERE d.state = 'pending'"),
            50);
  // Each allocation left still has its request and its event.
  EXPECT_EQ(count("SELECT count(*) FROM allocation_requests"), left + 100);
  EXPECT_EQ(count("SELECT count(*) FROM outbox_events"), left + 100);

  CommandResult second = testing::RunCommand(argv, api.dir().path(), 120s);
  EXPECT_EQ(second.exit_code, 0) << second.out << second.err;
  auto counts = ParseCounts(second.out);
  EXPECT_EQ(counts["allocations"], left - 100) << second.out;
  std::printf("second prune: %s", second.out.c_str());
  ExpectConsistent(path);
  EXPECT_EQ(count("SELECT count(*) FROM allocations"), 200);
  EXPECT_EQ(count("SELECT count(*) FROM allocations WHERE id <= " + std::to_string(kOld)), 0);
  EXPECT_EQ(count("SELECT count(*) FROM allocation_requests"), 200);
  EXPECT_EQ(count("SELECT count(*) FROM outbox_events"), 200);
  EXPECT_EQ(count("SELECT count(*) FROM deliveries"), 1);  // the pending one
  EXPECT_EQ(count("SELECT count(*) FROM deliveries WHERE state = 'pending'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM delivery_attempts"), 0);  // all 10 days old
  EXPECT_EQ(api.Get("/allocations/" + std::to_string(kOld + 150)).Json()["allocation"]["state"],
            "open");
  EXPECT_EQ(api.Get("/allocations/1").body, kNotFound);
}

}  // namespace
}  // namespace allocation_relay
