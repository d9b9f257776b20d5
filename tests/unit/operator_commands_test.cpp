// The operator commands' answers that depend on the store's backend: `backup` copies a SQLite
// file and, on PostgreSQL, opens nothing and points at pg_dump; `history` lists an order's
// requests, checks and events on either.
#include "operator_commands.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "support/delivery_fixture.h"
#include "support/store_fixture.h"
#include "support/temp_dir.h"

namespace allocation_relay {
namespace {

TEST(BackupCommand, OnPostgresqlSaysToUsePgDumpWithoutOpeningTheDatabase) {
  testing::TempDir dir;
  Config config;
  config.store.backend = StoreBackendKind::kPostgresql;
  // Unreachable, and with a password the loader would refuse: only the masked URL may show.
  config.store.url = "postgresql://relay:sup3rs3cret@db1.invalid/relay?sslmode=verify-full";
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(BackupCommand(config, dir.File("relay.sql"), out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(),
            "backup: the store is PostgreSQL; back it up with pg_dump (pg_dump "
            "\"postgresql://relay:***@db1.invalid/relay?sslmode=verify-full\" > relay.sql)\n");
  EXPECT_FALSE(std::filesystem::exists(dir.File("relay.sql")));
}

TEST(BackupCommand, OnSqliteWritesTheBackupAndNamesTheFile) {
  testing::TempDir dir;
  Config config;
  config.store.path = dir.File("relay.db");
  StoreOptions options = StoreOptionsFrom(config.store);
  Store::Open(options);  // creates the database
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(BackupCommand(config, dir.File("backup.db"), out, err), 0) << err.str();
  EXPECT_EQ(out.str(),
            "backup of " + dir.File("relay.db") + " written to " + dir.File("backup.db") + "\n");
  EXPECT_TRUE(std::filesystem::exists(dir.File("backup.db")));
}

using HistoryCommandTest = testing::StoreTest;

// An order of a check-first store: its check and its check_first events are listed.
TEST_F(HistoryCommandTest, ListsAnOrdersChecksAndTheirEvents) {
  using namespace std::chrono_literals;
  catalog_ =
      WarehouseCatalog({{3, "Amsterdam", 1h}, {11, "Shop A", 30min, WarehousePolicy::kCheckFirst}});
  Create(15, {{11}, {3}});
  auto answered = store_->AnswerCheck({15, 11, false}, {}, clock_.Now(), catalog_);
  ASSERT_TRUE(answered.has_value());
  ASSERT_EQ(answered->outcome, CheckResult::Outcome::kAnswered);
  Config config;
  config.timezone = "UTC";
  testing::UseDatabase(config.store, Options());
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(HistoryCommand(config, 15, out, err), 0) << err.str();
  const std::string text = out.str();
  EXPECT_NE(text.find("order 15 (486e13eaaa65d5ff1e87c997b5dce54e): open, created "
                      "2024-03-18T08:00:00+00:00, group 2 of 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  check 1 warehouse 11: rejected, asked 2024-03-18T08:00:00+00:00, expires "
                      "2024-03-18T08:30:00+00:00, last change 2024-03-18T08:00:00+00:00\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(" check_first create of check 1 at 2024-03-18T08:00:00+00:00: not sent yet\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(" check_first rejected of check 1 at "), std::string::npos) << text;
  EXPECT_NE(text.find(" create (allocated) of request "), std::string::npos) << text;
}

using ResendCommandTest = testing::DeliveryStoreTest;

// `resend --delivery <id>`: a dead delivery goes out again; an unknown one or one that is not
// dead is an error, and nothing changes.
TEST_F(ResendCommandTest, ResendsOneDeadDeliveryAndRefusesOthers) {
  Create(15, {{3}});
  const Delivery dead = Record(Form(3), 500, AttemptOutcome::kDead);
  Config config;
  testing::UseDatabase(config.store, Options());
  auto run = [&](std::int64_t id, std::string& out_text, std::string& err_text) {
    std::ostringstream out;
    std::ostringstream err;
    int code = ResendDeadDeliveryCommand(config, id, out, err);
    out_text = out.str();
    err_text = err.str();
    return code;
  };
  std::string out, err;
  const std::string id = std::to_string(dead.id);
  EXPECT_EQ(run(dead.id + 100, out, err), 1);
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "no delivery " + std::to_string(dead.id + 100) + "\n");
  EXPECT_EQ(run(dead.id, out, err), 0) << err;
  EXPECT_EQ(out, "delivery " + id + " queued again\n");
  EXPECT_EQ(Read(dead).state, DeliveryState::kPending);
  EXPECT_EQ(run(dead.id, out, err), 1);
  EXPECT_EQ(err, "delivery " + id + " is not dead; nothing changed\n");
}

}  // namespace
}  // namespace allocation_relay
