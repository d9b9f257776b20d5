// The benchmarks' PostgreSQL side: a database of their own on a cluster (tests/pg_cluster.sh,
// started with PG_CLUSTER_DURABLE=1 by tests/bench/run.sh postgresql), raw SQL on it, and the
// raw-commit baseline. Raw SQL here is a test tool, not the product.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_PG_BENCH_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_PG_BENCH_H_

#include <string>
#include <vector>

#include "allocation_relay/store.h"

namespace allocation_relay::testing {

// A new empty database on the cluster of `admin_url` (CREATE DATABASE), dropped WITH (FORCE)
// when this object dies. Throws std::runtime_error when the cluster cannot be reached.
class PgBenchDatabase {
 public:
  PgBenchDatabase(const std::string& admin_url, const std::string& prefix);
  ~PgBenchDatabase();
  PgBenchDatabase(const PgBenchDatabase&) = delete;
  PgBenchDatabase& operator=(const PgBenchDatabase&) = delete;

  const std::string& url() const { return url_; }
  // Store options for it: backend postgresql, this url, `pool` connections.
  StoreOptions Options(int pool) const;

 private:
  std::string admin_url_, name_, url_;
};

// Runs `sql` (one or more statements, no parameters) on a connection of its own; throws
// std::runtime_error naming the statement. Returns the rows of the last statement, as text.
std::vector<std::vector<std::string>> PgRun(const std::string& url, const std::string& sql);

// The cluster's durability settings as one line ("fsync=on, synchronous_commit=on, ...").
std::string PgDurability(const std::string& url);

// The raw baseline: `clients` threads, each on its own connection, each doing autocommit
// single-row INSERTs (a prepared `INSERT INTO raw_commits (v) VALUES ($1)`) for `seconds`, into a
// scratch table `raw_commits` in the database of `url` (created if missing, emptied first).
// Returns commits per second, all threads together; `cpu_us_per_commit`, when given, gets the
// CPU time per commit of the server's processes and of this process (the client threads).
struct RawCpu {
  double server_us = 0, client_us = 0;
};
double RawPgCommitsPerSecond(const std::string& url, int clients, double seconds,
                             RawCpu* cpu_us_per_commit = nullptr);

// CPU time (user + system, seconds) of the server processes of the cluster of `url` (its
// postmaster, found through data_directory/postmaster.pid, and every child of it; a backend that
// exits between two readings takes its part with it). 0 when the cluster is not on this machine
// or its files cannot be read.
double PostgresServerCpuSeconds(const std::string& url);
// The same for one process ("self" or a pid).
double ProcessCpuSeconds(const std::string& pid);

// SeedOutbox (support/outbox_seed.h) on PostgreSQL: the schema through Store::Open on
// `options`, then `requests` requests (one allocation each) over warehouses 1..`warehouses` by
// id, each `allocated` with one unbatched `create` event (INSERT ... SELECT from
// generate_series, one transaction; the identity sequences moved past them), vacuumed and
// analysed.
void SeedOutboxPg(const StoreOptions& options, int requests, int warehouses);

// Current figures of pg_stat_database for the database of `url` (xact_commit) and of
// pg_stat_statements (total calls, if the extension is loaded; else -1), for counting the
// statements and transactions a benchmark figure makes.
struct PgCounters {
  double commits = 0;
  double statements = -1;
};
PgCounters ReadPgCounters(const std::string& url);

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_PG_BENCH_H_
