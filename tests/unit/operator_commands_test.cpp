// The operator commands' answers that depend on the store's backend: `backup` copies a SQLite
// file and, on PostgreSQL, opens nothing and points at pg_dump.
#include "operator_commands.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
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

}  // namespace
}  // namespace allocation_relay
