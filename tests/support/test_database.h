// The database a test runs on, on either backend. The same test sources run twice under ctest
// (docs/testing.md): as registered (SQLite: a file in the test's temp directory) and with the
// `postgresql.` prefix, where ALLOCATION_RELAY_TEST_BACKEND=postgresql and each test gets a fresh
// database on the throwaway cluster tests/pg_cluster.sh started (its admin URL in the file named
// by ALLOCATION_RELAY_TEST_PG_URL_FILE).
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_TEST_DATABASE_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_TEST_DATABASE_H_

#include <chrono>
#include <string>
#include <vector>

#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "support/temp_dir.h"

namespace allocation_relay::testing {

// SQLite options for the file `path` (what `StoreOptions{path, synchronous, busy_timeout,
// create_and_migrate}` was before StoreOptions grew its PostgreSQL fields).
inline StoreOptions SqliteStoreOptions(
    const std::string& path, SynchronousMode synchronous,
    std::chrono::milliseconds busy_timeout = std::chrono::milliseconds(5000),
    bool create_and_migrate = true) {
  StoreOptions options;
  options.path = path;
  options.synchronous = synchronous;
  options.busy_timeout = busy_timeout;
  options.create_and_migrate = create_and_migrate;
  return options;
}

// True when ALLOCATION_RELAY_TEST_BACKEND is "postgresql"; unset (or "sqlite"): false. Any other
// value throws std::runtime_error.
bool TestOnPostgresql();

// A database of the test's own, for as long as this object lives; hold it beside the TempDir
// (declared after it) and before anything that opens a Store on it.
//   SQLite:     the file `file` in `dir` with `synchronous` and busy_timeout 5 s; nothing is
//               created here (the first Store::Open does that, as always).
//   PostgreSQL: a new empty database on the test cluster (CREATE DATABASE), `pool` 8; `file`
//               and `synchronous` do not apply. Dropped WITH (FORCE) when this object dies.
// Throws std::runtime_error when the cluster cannot be reached.
class TestDatabase {
 public:
  explicit TestDatabase(const TempDir& dir, const std::string& file = "relay.db",
                        SynchronousMode synchronous = SynchronousMode::kNormal);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  // Options for Store::Open (create_and_migrate true; set it false for further connections).
  const StoreOptions& options() const { return options_; }
  // PostgreSQL: leave the database when this object dies (the cluster goes with the run).
  void Keep();

 private:
  StoreOptions options_;
  std::string admin_url_;  // PostgreSQL: the cluster's, to drop the database with
  std::string name_;       // PostgreSQL: the database's name
};

// The options of a new test database in `dir`, as TestDatabase makes it; on PostgreSQL it is
// never dropped (the cluster is thrown away after the run). Prefer TestDatabase in fixtures.
StoreOptions TestStoreOptions(const TempDir& dir);

// The value of a config file's `store:` key for `options`, one YAML flow mapping:
//   SQLite:     {path: <path>, synchronous: <mode>, busy_timeout: <duration>}, with
//               `, max_size: <bytes>` when set; `sqlite_keys`, when not empty, is written
//               between the braces instead (a config that spells its SQLite keys its own way,
//               e.g. a path relative to the file).
//   PostgreSQL: {backend: postgresql, url: '<url>', pool: <pool>} (the SQLite-only keys are
//               refused with this backend).
std::string StoreYaml(const StoreOptions& options, const std::string& sqlite_keys = "");

// Points `config` at the database of `options`: SQLite: `path`; PostgreSQL: `backend`, `url`
// and `pool`. Everything else in `config` is left as it is.
void UseDatabase(StoreConfig& config, const StoreOptions& options);

// `url` (a libpq URI, postgresql://user@host:port/db?params) with its database replaced.
std::string WithDatabase(const std::string& url, const std::string& database);

// Raw SQL on the database of `options`, on a connection of its own opened for the call (as
// another process would have it), for checks that read the same on both backends. Throws
// std::runtime_error naming the statement on any error. Write SQL both dialects accept.
void ExecSql(const StoreOptions& options, const std::string& sql);
// Every row of the (last) statement's result, each column as text ("NULL" for NULL).
std::vector<std::vector<std::string>> QueryRows(const StoreOptions& options,
                                                const std::string& sql);
// The first column of the first row, as text ("NULL" for NULL); throws if there is no row.
std::string QueryOne(const StoreOptions& options, const std::string& sql);

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_TEST_DATABASE_H_
