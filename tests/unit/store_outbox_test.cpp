// How writes reach the dispatchers on each backend: the order of a warehouse's outbox event ids
// on PostgreSQL, and the wake-up (LISTEN/NOTIFY there, none on SQLite).
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "allocation_relay/store.h"
#include "store/postgresql/pg_schema.h"  // the outbox lock key
#include "support/store_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;

using StoreOutboxPostgresql = testing::StoreTest;

// On PostgreSQL a write's outbox events take their ids at its commit, each warehouse's behind a
// transaction lock of that warehouse: while another transaction holds warehouse 3's lock (as a
// write does from its events' insert to its commit) and then inserts an event of warehouse 3, a
// write with an event for warehouse 3 waits, and its event's id comes after that one. Without
// the lock it would have taken the lower id and been visible first, and a dispatcher could send
// the two in the wrong order. A write for warehouse 4 meanwhile does not wait.
TEST_F(StoreOutboxPostgresql, AWarehousesEventIdsFollowTheOrderTheyBecomeVisible) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  const std::int64_t other_allocation = Create(14, {{7}});
  PGconn* holder = PQconnectdb(Options().url.c_str());
  ASSERT_EQ(PQstatus(holder), CONNECTION_OK) << PQerrorMessage(holder);
  auto run = [&](const std::string& sql) {
    PGresult* r = PQexec(holder, sql.c_str());
    const ExecStatusType status = PQresultStatus(r);
    std::string value = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) << PQerrorMessage(holder);
    PQclear(r);
    return value;
  };
  run("BEGIN");
  run("SELECT pg_advisory_xact_lock(" + std::to_string(postgresql::schema::kOutboxLockClass) +
      ", 3)");
  std::unique_ptr<Store> second = Store::Open(Options());
  std::atomic<bool> done{false};
  std::thread waiting([&] {
    NewAllocation a{{"486e13eaaa65d5ff1e87c997b5dce54e", 15}, {{73, 5, 1}}, {{3}}};
    EXPECT_TRUE(second->CreateAllocation(a, clock_.Now(), catalog_).has_value());
    done = true;
  });
  Create(16, {{4}});  // another warehouse: not held up
  EXPECT_FALSE(done.load());
  const std::string request =
      testing::QueryOne(Options(), "SELECT id FROM allocation_requests WHERE allocation_id = " +
                                       std::to_string(other_allocation));
  const std::string held_event =
      run("INSERT INTO outbox_events (warehouse_id, request_id, action, status, created_at) "
          "VALUES (3, " +
          request + ", 'update', 'timed-out', 0) RETURNING id");
  run("COMMIT");
  waiting.join();
  PQfinish(holder);
  EXPECT_TRUE(done.load());
  const std::string waited_event =
      testing::QueryOne(Options(),
                        "SELECT e.id FROM outbox_events e JOIN allocation_requests r ON r.id = "
                        "e.request_id WHERE r.order_number = 15");
  EXPECT_GT(std::stoll(waited_event), std::stoll(held_event));
}

using EventSignalPostgresql = testing::StoreTest;
using EventSignalSqlite = testing::StoreTest;

// A write that queues outbox events wakes a dispatcher waiting on the database's EventSignal
// (LISTEN/NOTIFY); a write that queues none does not.
TEST_F(EventSignalPostgresql, AWriteThatQueuesEventsWakesTheListener) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  std::unique_ptr<EventSignal> signal = EventSignal::Open(Options());
  ASSERT_NE(signal, nullptr);
  EXPECT_FALSE(signal->Wait(50ms));  // nothing yet
  Create(15, {{3}});                 // a create event
  EXPECT_TRUE(signal->Wait(10s));
  EXPECT_FALSE(signal->Wait(50ms));                   // taken
  ASSERT_TRUE(store_->EnableWebhook(3).has_value());  // a write without events
  EXPECT_FALSE(signal->Wait(200ms));
}

TEST_F(EventSignalSqlite, SqliteHasNoSignalTheDispatcherPolls) {
  EXPECT_EQ(EventSignal::Open(Options()), nullptr);
}

}  // namespace
}  // namespace allocation_relay
