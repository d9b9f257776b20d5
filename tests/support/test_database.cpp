#include "support/test_database.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>

#include "allocation_relay/duration.h"

namespace allocation_relay::testing {
namespace {

constexpr const char* kBackendVariable = "ALLOCATION_RELAY_TEST_BACKEND";
constexpr const char* kUrlFileVariable = "ALLOCATION_RELAY_TEST_PG_URL_FILE";

// The cluster's admin URL, from the file the cluster fixture wrote.
std::string AdminUrl() {
  const char* file = std::getenv(kUrlFileVariable);
  if (file == nullptr || *file == '\0') {
    throw std::runtime_error(std::string(kUrlFileVariable) +
                             " is not set: run the postgresql. tests through ctest (its "
                             "postgresql_cluster_start fixture starts the cluster), or start one "
                             "with tests/pg_cluster.sh start DIR and point it at DIR/url");
  }
  std::ifstream in(file);
  std::string url;
  if (!std::getline(in, url) || url.empty()) {
    throw std::runtime_error(std::string("cannot read the test cluster's URL from ") + file +
                             " (is the cluster running? tests/pg_cluster.sh start)");
  }
  while (!url.empty() && (url.back() == '\r' || url.back() == ' ')) url.pop_back();
  return url;
}

struct PgConnectionCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConnection = std::unique_ptr<PGconn, PgConnectionCloser>;
using PgResult = std::unique_ptr<PGresult, PgResultClearer>;

PgConnection PgConnect(const std::string& url) {
  PgConnection c(PQconnectdb(url.c_str()));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to " + url + ": " +
                             (c ? PQerrorMessage(c.get()) : "out of memory"));
  }
  return c;
}

std::vector<std::vector<std::string>> PgQuery(const std::string& url, const std::string& sql) {
  PgConnection c = PgConnect(url);
  PgResult r(PQexec(c.get(), sql.c_str()));
  ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error(sql + ": " + PQerrorMessage(c.get()));
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(r.get()); ++j) {
      row.push_back(PQgetisnull(r.get(), i, j) ? "NULL" : PQgetvalue(r.get(), i, j));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::vector<std::string>> SqliteQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    throw std::runtime_error("cannot open " + path + ": " + message);
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> owner(db, sqlite3_close_v2);
  sqlite3_busy_timeout(db, 20000);
  std::vector<std::vector<std::string>> rows;
  const char* next = sql.c_str();
  while (next != nullptr && *next != '\0') {
    sqlite3_stmt* s = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(db, next, -1, &s, &tail) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db));
    }
    next = tail;
    if (s == nullptr) continue;  // whitespace or a comment
    if (sqlite3_column_count(s) > 0) rows.clear();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const unsigned char* t = sqlite3_column_text(s, i);
        row.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(sql + ": " + sqlite3_errmsg(db));
  }
  return rows;
}

const char* SynchronousName(SynchronousMode mode) {
  switch (mode) {
    case SynchronousMode::kOff:
      return "off";
    case SynchronousMode::kNormal:
      return "normal";
    case SynchronousMode::kFull:
      return "full";
    case SynchronousMode::kExtra:
      return "extra";
  }
  return "full";
}

// A name no other test process or test of this one uses: pid, a counter and a random part.
std::string NewDatabaseName() {
  static std::atomic<int> counter{0};
  std::random_device random;
  char name[64];
  std::snprintf(name, sizeof name, "relay_test_%d_%d_%08x", static_cast<int>(getpid()),
                counter.fetch_add(1), static_cast<unsigned>(random()));
  return name;
}

}  // namespace

std::string WithDatabase(const std::string& url, const std::string& database) {
  std::size_t scheme = url.find("://");
  std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  std::size_t query = url.find('?', start);
  std::size_t slash = url.find('/', start);
  std::size_t end_of_authority =
      slash != std::string::npos && (query == std::string::npos || slash < query)
          ? slash
          : (query == std::string::npos ? url.size() : query);
  std::string params = query == std::string::npos ? "" : url.substr(query);
  return url.substr(0, end_of_authority) + "/" + database + params;
}

bool TestOnPostgresql() {
  const char* backend = std::getenv(kBackendVariable);
  if (backend == nullptr || *backend == '\0' || std::string(backend) == "sqlite") return false;
  if (std::string(backend) == "postgresql") return true;
  throw std::runtime_error(std::string(kBackendVariable) + "=" + backend +
                           ": expected sqlite or postgresql");
}

TestDatabase::TestDatabase(const TempDir& dir, const std::string& file,
                           SynchronousMode synchronous) {
  if (!TestOnPostgresql()) {
    options_ = SqliteStoreOptions(dir.File(file), synchronous);
    return;
  }
  admin_url_ = AdminUrl();
  name_ = NewDatabaseName();
  PgQuery(admin_url_, "CREATE DATABASE " + name_);
  options_.path.clear();
  options_.backend = StoreBackendKind::kPostgresql;
  options_.url = WithDatabase(admin_url_, name_);
  options_.pool = 8;
}

TestDatabase::~TestDatabase() {
  if (name_.empty()) return;
  try {
    PgQuery(admin_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    // Left behind: the cluster goes away after the run anyway.
    std::fprintf(stderr, "test database %s not dropped: %s\n", name_.c_str(), e.what());
  }
}

void TestDatabase::Keep() { name_.clear(); }

StoreOptions TestStoreOptions(const TempDir& dir) {
  TestDatabase database(dir);
  database.Keep();
  return database.options();
}

std::string StoreYaml(const StoreOptions& options, const std::string& sqlite_keys) {
  if (options.backend == StoreBackendKind::kPostgresql) {
    return "{backend: postgresql, url: '" + options.url +
           "', pool: " + std::to_string(options.pool) + "}";
  }
  if (!sqlite_keys.empty()) return "{" + sqlite_keys + "}";
  std::string yaml = "{path: " + options.path +
                     ", synchronous: " + SynchronousName(options.synchronous) +
                     ", busy_timeout: " + FormatDuration(options.busy_timeout);
  if (options.max_size != 0) yaml += ", max_size: " + std::to_string(options.max_size);
  return yaml + "}";
}

void UseDatabase(StoreConfig& config, const StoreOptions& options) {
  config.backend = options.backend;
  if (options.backend == StoreBackendKind::kPostgresql) {
    config.url = options.url;
    config.pool = options.pool;
  } else {
    config.path = options.path;
  }
}

std::vector<std::vector<std::string>> QueryRows(const StoreOptions& options,
                                                const std::string& sql) {
  return options.backend == StoreBackendKind::kPostgresql ? PgQuery(options.url, sql)
                                                          : SqliteQuery(options.path, sql);
}

void ExecSql(const StoreOptions& options, const std::string& sql) { QueryRows(options, sql); }

std::string QueryOne(const StoreOptions& options, const std::string& sql) {
  auto rows = QueryRows(options, sql);
  if (rows.empty() || rows[0].empty()) throw std::runtime_error(sql + ": no row");
  return rows[0][0];
}

}  // namespace allocation_relay::testing
