// The store's schema on both backends: migrations from every earlier version, a database of a
// newer build refused, and what opening does with a missing, junk or locked file (SQLite) or an
// unreachable server (PostgreSQL).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <span>

#include "allocation_relay/store.h"
#include "store/postgresql/pg_schema.h"  // the migrations as shipped, to build older databases
#include "store/sqlite/schema.h"         // the same for SQLite
#include "support/query_plan.h"
#include "support/store_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Join;
using testing::PlanUses;
using testing::StoreTest;
using Outcome = UpdateResult::Outcome;

using StoreSchema = StoreTest;

TEST_F(StoreSchema, MigratesToTheLatestVersionOnceAndReopens) {
  EXPECT_EQ(*store_->SchemaVersion(), Store::LatestSchemaVersion());
  Create(15, {{3}});
  store_.reset();
  store_ = Store::Open(Options());
  EXPECT_EQ(*store_->SchemaVersion(), Store::LatestSchemaVersion());
  EXPECT_EQ(Get(15).requests.size(), 1u);
  EXPECT_TRUE(*store_->IntegrityCheck());
}

// Every earlier schema version, made by running the migrations as they shipped and filled
// with rows by plain SQL, is upgraded on open with its rows kept and its indexes serving.
TEST_F(StoreSchema, UpgradesEveryEarlierVersionKeepingItsRows) {
  for (int version = 1; version < Store::LatestSchemaVersion(); ++version) {
    SCOPED_TRACE("from version " + std::to_string(version));
    StoreOptions options = Options();
    options.path = dir_.File("v" + std::to_string(version) + ".db");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(options.path.c_str(), &db), SQLITE_OK);
    std::string sql = "PRAGMA journal_mode = WAL; BEGIN;";
    for (int v = 0; v < version; ++v) sql += schema::kMigrations[v];
    sql += "PRAGMA user_version = " + std::to_string(version) + "; COMMIT;";
    const std::string now = std::to_string(testing::kStartMicros);
    sql += R"(
      INSERT INTO allocations (id, order_id, order_number, groups_json, lines_json, state,
                               created_at, updated_at)
        VALUES (1, 'ab12', 15, '[[3]]', '[{"lineId":73,"quantity":5,"stockItemId":1}]', 'open',
                )" +
           now + ", " + now + R"();
      INSERT INTO allocation_requests (id, allocation_id, order_id, order_number, lines_json,
                                       warehouse_id, warehouse_name, group_index, status,
                                       created_at, expires_at, updated_at)" +
           std::string(version >= 3 ? ", pending" : "") + R"()
        VALUES (1, 1, 'ab12', 15, '[{"lineId":73,"quantity":5,"stockItemId":1}]', 3, 'W3', 0,
                'sent', )" +
           now + ", " + now + "+3600000000, " + now + (version >= 3 ? ", 1" : "") + R"();
      INSERT INTO deliveries (id, uid, warehouse_id, state, document, attempt_count,
                              next_attempt_at, created_at, finished_at)" +
           std::string(version >= 3 ? ", request_ids" : "") + R"()
        VALUES (1, 'msg_a', 3, 'succeeded', '{"events":[]}', 1, )" +
           now + ", " + now + ", " + now + (version >= 3 ? ", '1'" : "") + R"(),
               (2, 'msg_b', 3, 'dead', '{"events":[]}', 7, )" +
           now + ", " + now + ", " + now + (version >= 3 ? ", ''" : "") + R"();
      INSERT INTO outbox_events (id, warehouse_id, request_id, action, status, created_at,
                                 delivery_id)
        VALUES (1, 3, 1, 'create', 'allocated', )" +
           now + R"(, 1);
      INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, http_status)
        VALUES (1, 1, )" +
           now + R"(, 1500, 200);)";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);

    auto store = Store::Open(options);
    EXPECT_EQ(*store->SchemaVersion(), Store::LatestSchemaVersion());
    RequestQuery q;
    q.statuses = {RequestStatus::kAllocated, RequestStatus::kSent, RequestStatus::kFailed};
    q.warehouse_ids = {3};
    auto plan = *store->ExplainListRequestsForTest(q);
    EXPECT_TRUE(PlanUses(plan, "COVERING INDEX requests_pending_by_warehouse")) << Join(plan);
    auto requests = *store->ListRequests(q);
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].status, RequestStatus::kSent);
    auto delivery = *store->GetDelivery(1);
    ASSERT_TRUE(delivery.has_value());
    EXPECT_EQ(delivery->uid, "msg_a");
    EXPECT_EQ(delivery->request_ids, std::vector<std::int64_t>{1});
    auto dead = *store->ListDeliveries(DeliveryState::kDead, 3, 10);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].uid, "msg_b");
    EXPECT_EQ(dead[0].attempt_count, 7);
    EXPECT_EQ(store->ListAttempts(1)->size(), 1u);
    auto counts = *store->CountDeliveriesByState();
    EXPECT_EQ(counts[0], std::pair(DeliveryState::kPending, std::int64_t{0}));
    EXPECT_EQ(counts[1], std::pair(DeliveryState::kSucceeded, std::int64_t{1}));
    EXPECT_EQ(counts[2], std::pair(DeliveryState::kDead, std::int64_t{1}));
    // Version 9: the console's reads over the rows kept.
    auto page = *store->ListDeliveryPage({});
    ASSERT_EQ(page.size(), 2u);
    EXPECT_EQ(page[0].delivery.uid, "msg_b");
    EXPECT_FALSE(page[0].last_attempt.has_value());
    EXPECT_EQ(page[1].delivery.uid, "msg_a");
    ASSERT_TRUE(page[1].last_attempt.has_value());
    EXPECT_EQ(page[1].last_attempt->http_status, 200);
    auto activity = *store->ReadActivity({}, {}, {});
    ASSERT_EQ(activity.warehouses.size(), 1u);
    EXPECT_EQ(activity.warehouses[0].warehouse_id, 3);
    EXPECT_EQ(activity.warehouses[0].pending_requests, 1);
    EXPECT_EQ(activity.warehouses[0].dead_deliveries, 1);
    EXPECT_TRUE(activity.minutes.empty());
    EXPECT_EQ(*store->ResendDeadDelivery(2, {}, FromUnixMicros(testing::kStartMicros)),
              ResendOutcome::kResent);
    EXPECT_TRUE(*store->IntegrityCheck());
  }
}

TEST_F(StoreSchema, RefusesADatabaseFromANewerBuild) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("relay.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    Store::Open(Options());
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("schema version 999"));
  }
}

TEST_F(StoreSchema, FurtherConnectionsNeverCreateAMissingFile) {
  StoreOptions o = Options();
  o.path = dir_.File("missing.db");
  o.create_and_migrate = false;
  try {
    Store::Open(o);
    FAIL() << "opened a missing file";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.kind(), StoreError::Kind::kUnavailable);
  }
  EXPECT_FALSE(std::filesystem::exists(o.path));
  StoreOptions existing = Options();
  existing.create_and_migrate = false;
  EXPECT_NO_THROW(Store::Open(existing));
}

TEST_F(StoreSchema, RefusesAFileThatIsNotADatabase) {
  store_.reset();
  dir_.Write("junk.db", std::string(8192, 'x'));
  StoreOptions o = Options();
  o.path = dir_.File("junk.db");
  try {
    Store::Open(o);
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_EQ(e.kind(), StoreError::Kind::kCorrupt);
  }
}

// A writer holding the lock longer than busy_timeout is an error value, not an exception, and
// the store works again once the lock is gone.
TEST_F(StoreSchema, LockedDatabaseIsABusyErrorValueAndRecovers) {
  StoreOptions o = Options();
  o.busy_timeout = 50ms;
  store_.reset();  // the writer connection takes the options of the first Store of the file
  store_ = Store::Open(o);
  Create(15, {{3}});
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("relay.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = store_->ConfirmRequest(RequestOf(15, 3).id, {}, clock_.Now());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), StoreError::Kind::kBusy);
  // Reads still work under WAL while another process writes.
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kAllocated);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_EQ(Confirm(RequestOf(15, 3).id).outcome, Outcome::kUpdated);
}

}  // namespace
}  // namespace allocation_relay

namespace allocation_relay {
namespace {

using StoreSchemaPostgresql = testing::StoreTest;

// A database migrated by a newer build is refused with a clear message, as on SQLite.
TEST_F(StoreSchemaPostgresql, RefusesADatabaseFromANewerBuild) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  store_.reset();
  testing::ExecSql(Options(), "UPDATE store_schema SET version = 999");
  try {
    Store::Open(Options());
    FAIL() << "opened a newer schema";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.kind(), StoreError::Kind::kUnavailable);
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("schema version 999"));
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("upgrade allocation-relay"));
  }
}

// Version 7 counts deliveries per statement instead of per row. A database of version 6, made
// by running migrations 5 and 6 as they shipped (their row trigger, the foreign keys to
// deliveries, no dispatchers table), keeps its delivery count through the upgrade, and the new
// triggers count multi-row inserts and deletes.
TEST_F(StoreSchemaPostgresql, UpgradeFromVersion6KeepsTheDeliveryCount) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  store_.reset();
  testing::ExecSql(Options(), "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  testing::ExecSql(Options(), postgresql::schema::kMigrations[4]);
  testing::ExecSql(Options(), postgresql::schema::kMigrations[5]);
  testing::ExecSql(Options(), R"sql(
CREATE TABLE store_schema (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL);
INSERT INTO store_schema VALUES (1, 6);
INSERT INTO deliveries (uid, warehouse_id, state, document, next_attempt_at, created_at)
  SELECT 'msg_' || g, 3, 'succeeded', '', 0, 0 FROM generate_series(1, 5) g;
)sql");
  store_ = Store::Open(Options());
  EXPECT_EQ(*store_->SchemaVersion(), Store::LatestSchemaVersion());
  EXPECT_EQ(
      testing::QueryOne(Options(),
                        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'deliveries'::regclass "
                        "AND NOT tgisinternal"),
      "2");
  EXPECT_EQ(testing::QueryOne(Options(),
                              "SELECT count(*) FROM pg_constraint WHERE confrelid = "
                              "'deliveries'::regclass"),
            "0");
  EXPECT_EQ(testing::QueryOne(Options(), "SELECT count(*) FROM dispatchers"), "0");
  testing::ExecSql(Options(), R"sql(
INSERT INTO deliveries (uid, warehouse_id, state, document, next_attempt_at, created_at)
  SELECT 'msg_b' || g, 4, 'succeeded', '', 0, 0 FROM generate_series(1, 4) g;
DELETE FROM deliveries WHERE uid IN ('msg_1', 'msg_2', 'msg_b1');
)sql");
  auto counts = store_->CountDeliveriesByState();
  ASSERT_TRUE(counts.has_value());
  std::int64_t total = 0;
  for (auto [state, n] : *counts) total += n;
  EXPECT_EQ(total, 6);
  EXPECT_EQ(testing::QueryOne(Options(), "SELECT count(*) FROM deliveries"), "6");
}

// Version 9 adds the console's tables and an index of deliveries by warehouse. A database of
// version 8, made by running migrations 5 to 8 as they shipped and filled by plain SQL, keeps
// its rows, and the console reads them and records activity.
TEST_F(StoreSchemaPostgresql, UpgradeFromVersion8KeepsItsRowsForTheConsole) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  store_.reset();
  testing::ExecSql(Options(), "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  for (int v = 4; v < 8; ++v) testing::ExecSql(Options(), postgresql::schema::kMigrations[v]);
  const std::string now = std::to_string(testing::kStartMicros);
  testing::ExecSql(Options(), R"sql(
CREATE TABLE store_schema (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL);
INSERT INTO store_schema VALUES (1, 8);
INSERT INTO allocations (id, order_id, order_number, groups_json, lines_json, state, created_at,
                         updated_at)
  VALUES (1, 'ab12', 15, '[[3]]', '[{"lineId":73,"quantity":5,"stockItemId":1}]', 'open', )sql" +
                                  now + ", " + now + R"sql();
INSERT INTO allocation_requests (id, allocation_id, order_id, order_number, lines_json,
                                 warehouse_id, warehouse_name, group_index, status, pending,
                                 created_at, expires_at, updated_at)
  VALUES (1, 1, 'ab12', 15, '[{"lineId":73,"quantity":5,"stockItemId":1}]', 3, 'W3', 0, 'sent',
          1, )sql" + now + ", " + now +
                                  "+3600000000, " + now + R"sql();
INSERT INTO deliveries (id, uid, warehouse_id, state, document, request_ids, attempt_count,
                        next_attempt_at, created_at, finished_at)
  VALUES (1, 'msg_a', 3, 'succeeded', '', '1', 1, )sql" +
                                  now + ", " + now + ", " + now +
                                  R"sql(),
         (2, 'msg_b', 3, 'dead', '{"events":[]}', '', 7, )sql" +
                                  now + ", " + now + ", " + now + R"sql();
INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, http_status)
  VALUES (1, 1, )sql" + now + R"sql(, 1500, 200), (2, 7, )sql" +
                                  now + R"sql(, 2500, 500);
SELECT setval(pg_get_serial_sequence('deliveries', 'id'), 2);
)sql");
  store_ = Store::Open(Options());
  EXPECT_EQ(*store_->SchemaVersion(), Store::LatestSchemaVersion());
  auto page = *store_->ListDeliveryPage({std::nullopt, 3, {}, 0, 10});
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].delivery.uid, "msg_b");
  ASSERT_TRUE(page[0].last_attempt.has_value());
  EXPECT_EQ(page[0].last_attempt->http_status, 500);
  EXPECT_EQ(page[1].delivery.uid, "msg_a");
  auto activity = *store_->ReadActivity({}, {}, {});
  ASSERT_EQ(activity.warehouses.size(), 1u);
  EXPECT_EQ(activity.warehouses[0].pending_requests, 1);
  EXPECT_EQ(activity.warehouses[0].dead_deliveries, 1);
  EXPECT_EQ(*store_->ResendDeadDelivery(2, {}, clock_.Now()), ResendOutcome::kResent);
  // A call recorded now counts.
  DeliveryAttempt a;
  a.delivery_id = 2;
  a.attempt = 8;
  a.started_at = clock_.Now();
  a.duration = std::chrono::milliseconds(3);
  a.http_status = 200;
  Store::AttemptRecord record{a, AttemptOutcome::kSucceeded, clock_.Now(), {}, {}};
  auto render = [](std::span<const OutboxEvent>, std::span<const AllocationRequest>,
                   std::span<const CheckEventSubject>) { return std::string(); };
  ASSERT_TRUE(store_->RecordAndTake(std::span(&record, 1), {}, {}, clock_.Now(), render));
  activity = *store_->ReadActivity({}, {}, {});
  ASSERT_EQ(activity.minutes.size(), 1u);
  EXPECT_EQ(activity.minutes[0].delivered, 1);
  EXPECT_EQ(activity.warehouses[0].last_success_at, clock_.Now());
}

// A server that does not answer is a start-up error naming the URL (with any password masked),
// and the error is kUnavailable.
TEST_F(StoreSchemaPostgresql, AnUnreachableServerIsUnavailableAndNamesTheUrl) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  StoreOptions o = Options();
  o.url = "postgresql://relay:hunter2@127.0.0.1:1/relay?connect_timeout=2";
  try {
    Store::Open(o);
    FAIL() << "connected to nothing";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.kind(), StoreError::Kind::kUnavailable);
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("postgresql://relay:***@127.0.0.1:1"));
    EXPECT_THAT(std::string(e.what()), ::testing::Not(::testing::HasSubstr("hunter2")));
  }
}

}  // namespace
}  // namespace allocation_relay
