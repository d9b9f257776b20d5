#include "support/pg_bench.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/test_database.h"

namespace allocation_relay::testing {
namespace {

struct Closer {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, Closer>;

Conn Connect(const std::string& url) {
  Conn c(PQconnectdb(url.c_str()));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to " + url + ": " +
                             (c ? PQerrorMessage(c.get()) : "out of memory"));
  }
  PQsetNoticeProcessor(
      c.get(), [](void*, const char*) {}, nullptr);
  return c;
}

}  // namespace

std::vector<std::vector<std::string>> PgRun(const std::string& url, const std::string& sql) {
  Conn c = Connect(url);
  std::vector<std::vector<std::string>> rows;
  if (!PQsendQuery(c.get(), sql.c_str())) {
    throw std::runtime_error(sql.substr(0, 200) + ": " + PQerrorMessage(c.get()));
  }
  std::string error;
  while (PGresult* r = PQgetResult(c.get())) {
    ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_TUPLES_OK) {
      rows.clear();
      for (int i = 0; i < PQntuples(r); ++i) {
        std::vector<std::string> row;
        for (int j = 0; j < PQnfields(r); ++j) {
          row.push_back(PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
        }
        rows.push_back(std::move(row));
      }
    } else if (status != PGRES_COMMAND_OK && error.empty()) {
      error = PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  if (!error.empty()) throw std::runtime_error(sql.substr(0, 200) + ": " + error);
  return rows;
}

PgBenchDatabase::PgBenchDatabase(const std::string& admin_url, const std::string& prefix)
    : admin_url_(admin_url) {
  std::random_device random;
  name_ = prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(random() % 100000);
  PgRun(admin_url_, "CREATE DATABASE " + name_);
  url_ = WithDatabase(admin_url_, name_);
}

PgBenchDatabase::~PgBenchDatabase() {
  try {
    PgRun(admin_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench database %s not dropped: %s\n", name_.c_str(), e.what());
  }
}

StoreOptions PgBenchDatabase::Options(int pool) const {
  StoreOptions options;
  options.backend = StoreBackendKind::kPostgresql;
  options.url = url_;
  options.pool = pool;
  return options;
}

std::string PgDurability(const std::string& url) {
  auto rows = PgRun(url,
                    "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM "
                    "pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                    "'full_page_writes', 'wal_sync_method', 'commit_delay')");
  return rows.empty() ? "" : rows[0][0];
}

double ProcessCpuSeconds(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double PostgresServerCpuSeconds(const std::string& url) {
  static std::mutex mu;
  static std::map<std::string, std::string> postmasters;  // url -> pid
  std::string postmaster;
  {
    std::lock_guard lock(mu);
    auto it = postmasters.find(url);
    if (it == postmasters.end()) {
      std::string pid;
      try {
        auto rows = PgRun(url, "SHOW data_directory");
        std::ifstream in(rows.at(0).at(0) + "/postmaster.pid");
        std::getline(in, pid);
      } catch (const std::exception&) {
      }
      it = postmasters.emplace(url, pid).first;
    }
    postmaster = it->second;
  }
  if (postmaster.empty()) return 0;
  double total = ProcessCpuSeconds(postmaster);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = entry.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    std::string state, ppid;
    if (!(fields >> state >> ppid) || ppid != postmaster) continue;
    total += ProcessCpuSeconds(pid);
  }
  return total;
}

double RawPgCommitsPerSecond(const std::string& url, int clients, double seconds,
                             RawCpu* cpu_us_per_commit) {
  PgRun(url,
        "CREATE TABLE IF NOT EXISTS raw_commits (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY "
        "KEY, v bigint NOT NULL); TRUNCATE raw_commits");
  std::vector<Conn> connections;
  for (int i = 0; i < clients; ++i) {
    connections.push_back(Connect(url));
    PGresult* r = PQprepare(connections.back().get(), "ins",
                            "INSERT INTO raw_commits (v) VALUES ($1)", 1, nullptr);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::string message = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error("prepare raw_commits insert: " + message);
    }
    PQclear(r);
  }
  std::atomic<std::int64_t> total{0};
  std::atomic<bool> failed{false};
  const double server0 = PostgresServerCpuSeconds(url), self0 = ProcessCpuSeconds("self");
  const auto start = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      PGconn* c = connections[static_cast<std::size_t>(i)].get();
      std::this_thread::sleep_until(start);
      std::int64_t n = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        std::string v = std::to_string(n);
        const char* values[] = {v.c_str()};
        PGresult* r = PQexecPrepared(c, "ins", 1, values, nullptr, nullptr, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) failed = true;
        PQclear(r);
        ++n;
      }
      total += n;
    });
  }
  for (std::thread& t : threads) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed) throw std::runtime_error("raw PostgreSQL commits failed");
  if (cpu_us_per_commit != nullptr && total > 0) {
    const double n = static_cast<double>(total);
    cpu_us_per_commit->server_us = (PostgresServerCpuSeconds(url) - server0) / n * 1e6;
    cpu_us_per_commit->client_us = (ProcessCpuSeconds("self") - self0) / n * 1e6;
  }
  return static_cast<double>(total) / elapsed;
}

void SeedOutboxPg(const StoreOptions& options, int requests, int warehouses) {
  Store::Open(options);  // schema
  const std::string now = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  const std::string n = std::to_string(requests), w = std::to_string(warehouses);
  const std::string lines = "'[{\"lineId\":73,\"quantity\":5,\"stockItemId\":1}]'";
  PgRun(options.url,
        "INSERT INTO allocations (id, order_id, order_number, groups_json, lines_json, "
        "current_group, state, created_at, updated_at) SELECT id, 'ab12', id, '[[1]]', " +
            lines + ", 0, 'open', " + now + ", " + now + " FROM generate_series(1, " + n +
            ") AS id; "
            "INSERT INTO allocation_requests (id, allocation_id, order_id, order_number, "
            "lines_json, warehouse_id, warehouse_name, group_index, status, pending, created_at, "
            "expires_at, updated_at) SELECT id, id, 'ab12', id, " +
            lines + ", 1 + id % " + w + ", 'W', 0, 'allocated', 1, " + now + ", " + now +
            " + 3600000000, " + now + " FROM generate_series(1, " + n +
            ") AS id; "
            "INSERT INTO outbox_events (id, warehouse_id, request_id, action, status, "
            "created_at) SELECT id, 1 + id % " +
            w + ", id, 'create', 'allocated', " + now + " FROM generate_series(1, " + n +
            ") AS id; "
            "SELECT setval(pg_get_serial_sequence('allocations', 'id'), " +
            n + "); SELECT setval(pg_get_serial_sequence('allocation_requests', 'id'), " + n +
            "); SELECT setval(pg_get_serial_sequence('outbox_events', 'id'), " + n + ")");
  // The seeded tables only: the others stay never analysed, as in a new database. (Analysed
  // while empty, PostgreSQL would trust them to stay tiny and plan sequential scans, e.g. in
  // the foreign-key checks on deliveries, until autovacuum analyses them again.)
  PgRun(options.url, "VACUUM ANALYZE allocations, allocation_requests, outbox_events");
}

PgCounters ReadPgCounters(const std::string& url) {
  PgCounters out;
  auto rows =
      PgRun(url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
  if (!rows.empty()) out.commits = std::stod(rows[0][0]);
  try {
    rows = PgRun(url,
                 "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON "
                 "d.oid = s.dbid WHERE d.datname = current_database()");
    if (!rows.empty()) out.statements = std::stod(rows[0][0]);
  } catch (const std::exception&) {
    out.statements = -1;  // the extension is not loaded or not created in this database
  }
  return out;
}

}  // namespace allocation_relay::testing
