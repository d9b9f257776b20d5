// api_bench: throughput and latency of the real allocation-api, each figure beside a baseline
// measured in the same run on the same machine:
//   - GET /allocation-requests?warehouse=W (default: pending) vs a static cpp-httplib server
//     answering a body of the same size with the same threads;
//   - GET ?status=all&page=P (random P; and first vs last pages) vs the same static server;
//   - PUT /allocation-request confirms vs raw single-row SQLite commits at the same
//     synchronous setting;
//   - the write path (issue #13): confirms, rejects and intake (POST /allocations) at each
//     client count of --clients (default 8,16), each beside raw single-row SQLite commits
//     measured right after it in the same run, on the same file system, at synchronous=FULL;
//   - p50/p99 latencies, and the API's peak RSS.
// The database is seeded with --requests allocation requests (default 1,000,000) over 50
// warehouses, 2 % of them pending and the rest final, as in a live system (the pending ones are
// among the newest, since older requests have been answered or have timed out).
//
// On PostgreSQL (--backend postgresql, a database of its own on the cluster of --pg-url, the API
// with store.pool --pool) the same database is seeded with server-side SQL, and the raw-commit
// baseline is one autocommit single-row INSERT per call from as many client threads (own
// connections) as the figure has clients, on the same cluster. With --backend sqlite,postgresql
// both run in one process: both APIs are started, and each figure runs on one backend, then the
// other, each beside its own baseline.
//
// Usage: api_bench --api <allocation-api binary> [--requests N] [--seconds S] [--connections C]
//                  [--only get,all,put,write,confirm,reject,intake] [--clients 8,16]
//                  [--write-seconds S] [--repeat R]
//                  [--backend sqlite|postgresql|sqlite,postgresql] [--pg-url <admin URL>]
//                  [--pool N]
//   --only: comma-separated parts (write = confirm, reject and intake); default: all of them.
//   --clients: client counts of the write part; --write-seconds: per write figure (default 3);
//   --repeat: the write part's figures, each this many times (a summary closes the part).
//   --backend: default sqlite; postgresql needs --pg-url (e.g. DIR/url of tests/pg_cluster.sh,
//   started with PG_CLUSTER_DURABLE=1 so that commits are durable); --pool: default 16.
//        api_bench --seed-only <path> [--requests N]   (just seed a database, for experiments)
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "support/http_load.h"
#include "support/loopback_server.h"
#include "support/pg_bench.h"
#include "support/process.h"
#include "support/request_seed.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;
using testing::AddPending;
using testing::CheckSqlite;
using testing::LoadRequest;
using testing::LoadResult;
using testing::PgAddPending;
using testing::PgOutdate;
using testing::PgSeed;
using testing::RunLoad;
using testing::Seed;

namespace {

// Intake orders go to warehouses 1..N at random (--intake-warehouses; 1: every order to one
// warehouse, whose writes then wait for each other's commits on PostgreSQL).
int g_intake_warehouses = 50;

struct Options {
  std::string api;
  std::int64_t requests = 1'000'000;
  double seconds = 5;
  int connections = 16;
  int threads = 16;
  std::string only;  // parts to run, comma-separated: get, all, put, write (= confirm, reject,
                     // intake); empty: all of them
  std::vector<int> clients = {8, 16};  // client counts of the write part
  double write_seconds = 3;            // per write figure
  int repeat = 1;                      // the write part's figures, each this many times
  std::string seed_to;                 // only seed a database at this path, for experiments
  std::vector<std::string> backends = {"sqlite"};  // sqlite, postgresql, or both (alternating)
  std::string pg_url;                              // PostgreSQL: the cluster's admin URL
  int pool = 16;                                   // PostgreSQL: store.pool of the API
};

// A static cpp-httplib server: same library, same threads, TCP_NODELAY and keep-alive limit,
// fixed body.
class StaticServer {
 public:
  StaticServer(std::size_t body_size, int threads) : body_(body_size, 'x') {
    server_.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_max_count(10000);  // as allocation-api does
    server_.Get(R"(/.*)", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(body_, "application/json");
    });
    loopback_ = std::make_unique<testing::LoopbackServer>(server_);
  }
  int port() const { return loopback_->port(); }

 private:
  std::string body_;
  httplib::Server server_;
  std::unique_ptr<testing::LoopbackServer> loopback_;
};

// Single-row commits on a fresh file: WAL, synchronous FULL, BEGIN IMMEDIATE, as the store does.
double RawCommitsPerSecond(const std::string& path, double seconds) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
               "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);",
               nullptr, nullptr, nullptr);
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  for (int i = 1; i <= 100000; ++i) {
    sqlite3_exec(db, ("INSERT INTO t VALUES (" + std::to_string(i) + ", 0)").c_str(), nullptr,
                 nullptr, nullptr);
  }
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_stmt* update = nullptr;
  sqlite3_prepare_v2(db, "UPDATE t SET v = v + 1 WHERE id = ?", -1, &update, nullptr);
  std::int64_t n = 0;
  auto start = Steady::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  while (Steady::now() < deadline) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    sqlite3_bind_int64(update, 1, 1 + n % 100000);
    sqlite3_step(update);
    sqlite3_reset(update);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    ++n;
  }
  double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
  sqlite3_finalize(update);
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return static_cast<double>(n) / elapsed;
}

// The machine's CPU time: all of it and the idle part (idle + iowait), in ticks (/proc/stat).
std::pair<double, double> MachineTicks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double total = 0, idle = 0, v = 0;
  for (int i = 0; i < 8 && in >> v; ++i) {
    total += v;
    if (i == 3 || i == 4) idle += v;
  }
  return {total, idle};
}

// Where the CPU went during a figure: the API's and this process's (the load generator's)
// CPU time per answered call, and the machine's idle share.
// With `postgres_url`, also the CPU time per call of that PostgreSQL cluster's processes.
class CpuShare {
 public:
  explicit CpuShare(pid_t api, std::string postgres_url = "")
      : api_(std::to_string(api)), postgres_(std::move(postgres_url)) {
    api0_ = testing::ProcessCpuSeconds(api_);
    self0_ = testing::ProcessCpuSeconds("self");
    if (!postgres_.empty()) postgres0_ = testing::PostgresServerCpuSeconds(postgres_);
    machine0_ = MachineTicks();
  }
  std::string Describe(std::int64_t ops) const {
    double api = testing::ProcessCpuSeconds(api_) - api0_,
           self = testing::ProcessCpuSeconds("self") - self0_;
    auto [total, idle] = MachineTicks();
    double n = static_cast<double>(std::max<std::int64_t>(1, ops));
    char server[64] = "";
    if (!postgres_.empty()) {
      std::snprintf(server, sizeof server, ", postgres %.0f us",
                    (testing::PostgresServerCpuSeconds(postgres_) - postgres0_) / n * 1e6);
    }
    char out[200];
    std::snprintf(out, sizeof out,
                  "cpu per call: api %.0f us%s, load generator %.0f us; machine idle %.0f %%",
                  api / n * 1e6, server, self / n * 1e6,
                  100 * (idle - machine0_.second) / std::max(1.0, total - machine0_.first));
    return out;
  }

 private:
  std::string api_;
  std::string postgres_;  // the cluster's URL, or empty
  double api0_, self0_, postgres0_ = 0;
  std::pair<double, double> machine0_;
};

// The resident set size of a running process now (VmRSS), in KiB; -1 if unknown.
long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

// The group commit's counters from /metrics (allocation_relay_write_*), if the API has them.
std::map<std::string, double> WriteCounters(int port) {
  std::map<std::string, double> out;
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  if (!r) return out;
  std::istringstream lines(r->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("allocation_relay_write_")) continue;
    std::size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

void Row(const char* what, const LoadResult& r, const char* unit) {
  std::printf("%-44s %10.0f %-10s p50 %6.2f ms  p99 %6.2f ms  (%lld ok, %lld errors, %zu B)\n",
              what, r.rate(), unit, r.Percentile(0.5), r.Percentile(0.99),
              static_cast<long long>(r.count), static_cast<long long>(r.errors), r.bytes);
}

// One backend under test: its database, its allocation-api, and its share of the write part's
// state.
struct Target {
  std::string name;  // sqlite, postgresql
  bool postgresql = false;
  std::string prefix;   // "[postgresql] " when more than one backend runs, else ""
  std::string db_path;  // SQLite
  std::unique_ptr<testing::PgBenchDatabase> pg;
  StoreOptions pg_options;  // PostgreSQL
  std::unique_ptr<testing::Process> api;
  int port = 0;
  std::vector<std::int64_t> pending;
  std::map<std::string, double> last_rate;  // of each write kind, to size the next one's work
  double raw_before = 0;
  int raw_clients = 0;      // the client count raw_before was measured at
  testing::RawCpu raw_cpu;  // PostgreSQL: CPU per commit of the last raw baseline
  int raw_files = 0;
};

// The raw-commit baseline of `t`: SQLite, single-row commits in one thread on a fresh file
// beside the database; PostgreSQL, `clients` threads of autocommit single-row INSERTs on the
// same cluster.
double RawCommits(Target& t, const testing::TempDir& dir, int clients, double seconds) {
  if (t.postgresql)
    return testing::RawPgCommitsPerSecond(t.pg->url(), clients, seconds, &t.raw_cpu);
  return RawCommitsPerSecond(dir.File("raw" + std::to_string(t.raw_files++) + ".db"), seconds);
}

const char* RawDescription(const Target& t) {
  return t.postgresql ? "raw single-row PostgreSQL commits (autocommit INSERT, one connection "
                        "per client thread, same cluster, fsync on)"
                      : "raw single-row SQLite commits (WAL, synchronous=FULL, BEGIN "
                        "IMMEDIATE, one thread)";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--api")
      o.api = value;
    else if (flag == "--requests")
      o.requests = std::stoll(value);
    else if (flag == "--seconds")
      o.seconds = std::stod(value);
    else if (flag == "--connections")
      o.connections = std::stoi(value);
    else if (flag == "--only")
      o.only = value;
    else if (flag == "--clients") {
      o.clients.clear();
      std::istringstream list(value);
      for (std::string item; std::getline(list, item, ',');) o.clients.push_back(std::stoi(item));
    } else if (flag == "--write-seconds")
      o.write_seconds = std::stod(value);
    else if (flag == "--repeat")
      o.repeat = std::stoi(value);
    else if (flag == "--seed-only")
      o.seed_to = value;
    else if (flag == "--backend") {
      o.backends.clear();
      std::istringstream list(value);
      for (std::string item; std::getline(list, item, ',');) o.backends.push_back(item);
    } else if (flag == "--pg-url")
      o.pg_url = value;
    else if (flag == "--pool")
      o.pool = std::stoi(value);
    else if (flag == "--intake-warehouses")
      g_intake_warehouses = std::max(1, std::min(50, std::stoi(value)));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (!o.seed_to.empty()) {
    std::vector<std::int64_t> ids;
    Seed(o.seed_to, o.requests, ids);
    std::printf("seeded %s with %lld requests (%zu pending)\n", o.seed_to.c_str(),
                static_cast<long long>(o.requests), ids.size());
    return 0;
  }
  bool bad_backend = o.backends.empty();
  for (const std::string& b : o.backends) {
    if (b != "sqlite" && b != "postgresql") bad_backend = true;
    if (b == "postgresql" && o.pg_url.empty()) bad_backend = true;
  }
  if (o.api.empty() || bad_backend) {
    std::fprintf(stderr,
                 "usage: api_bench --api <allocation-api> [--requests N] [--seconds S] "
                 "[--connections C] [--only get,all,put,write,confirm,reject,intake] "
                 "[--clients 8,16] [--write-seconds S] [--repeat R] "
                 "[--backend sqlite|postgresql|sqlite,postgresql --pg-url <admin URL> "
                 "[--pool N]] [--intake-warehouses N (1-50, default 50)]\n");
    return 2;
  }
  testing::TempDir dir;
  std::vector<Target> targets;
  for (const std::string& b : o.backends) {
    Target t;
    t.name = b;
    t.postgresql = b == "postgresql";
    if (o.backends.size() > 1) t.prefix = "[" + b + "] ";
    targets.push_back(std::move(t));
  }

  std::string warehouses_yaml = "warehouses:\n";
  for (int w = 1; w <= 50; ++w) {
    warehouses_yaml +=
        "  - {id: " + std::to_string(w) + ", name: Warehouse " + std::to_string(w) + "}\n";
  }
  for (Target& t : targets) {
    auto t0 = Steady::now();
    std::string store_yaml;
    if (t.postgresql) {
      t.pg = std::make_unique<testing::PgBenchDatabase>(o.pg_url, "api_bench");
      t.pg_options = t.pg->Options(o.pool);
      try {  // statement counts per figure, when the cluster loads pg_stat_statements
        testing::PgRun(t.pg->url(), "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      } catch (const std::exception&) {
      }
      t.pending = PgSeed(t.pg_options, o.requests);
      store_yaml = testing::StoreYaml(t.pg_options);
    } else {
      t.db_path = dir.File("bench.db");
      Seed(t.db_path, o.requests, t.pending);
      store_yaml = "{path: bench.db, synchronous: full}";
    }
    std::printf("%sseeded %lld requests over 50 warehouses (%zu pending) in %.1f s\n",
                t.prefix.c_str(), static_cast<long long>(o.requests), t.pending.size(),
                std::chrono::duration<double>(Steady::now() - t0).count());
    if (t.postgresql) {
      std::printf("%sPostgreSQL settings: %s; store pool %d\n", t.prefix.c_str(),
                  testing::PgDurability(t.pg->url()).c_str(), o.pool);
    }
    std::string config =
        "timezone: Europe/Stockholm\nlog_level: info\n"
        "store: " +
        store_yaml +
        "\n"
        "api:\n  listen: 127.0.0.1:0\n  threads: " +
        std::to_string(o.threads) +
        "\n  keys:\n    - {name: bench, sha256: " + Sha256Hex("bench-token") +
        ", endpoints: [GET /allocation-requests, PUT /allocation-request, POST /allocations]}\n" +
        warehouses_yaml;
    std::string config_file = "bench-" + t.name + ".yaml";
    dir.Write(config_file, config);
    t.api = std::make_unique<testing::Process>(
        std::vector<std::string>{o.api, "--config", dir.File(config_file)}, dir.path());
    std::regex listening(R"(api listening on 127\.0\.0\.1:(\d+))");
    std::smatch match;
    testing::WaitFor(
        [&] {
          std::string err = t.api->Stderr();
          if (!std::regex_search(err, match, listening)) return false;
          t.port = std::stoi(match[1]);
          return true;
        },
        std::chrono::seconds(30));
    if (t.port == 0) {
      std::fprintf(stderr, "allocation-api (%s) did not start: %s\n", t.name.c_str(),
                   t.api->Stderr().c_str());
      return 1;
    }
    std::printf(
        "%sallocation-api pid %d on port %d, %d worker threads; load: %d keep-alive "
        "connections, %.0f s per figure\n",
        t.prefix.c_str(), t.api->pid(), t.port, o.threads, o.connections, o.seconds);
  }
  std::printf("\n");
  std::fflush(stdout);

  std::vector<std::string> parts;
  {
    std::istringstream list(o.only);
    for (std::string item; std::getline(list, item, ',');) parts.push_back(item);
  }
  auto runs = [&](const std::string& part) {
    const bool write = part == "confirm" || part == "reject" || part == "intake";
    return parts.empty() || std::find(parts.begin(), parts.end(), part) != parts.end() ||
           (write && std::find(parts.begin(), parts.end(), "write") != parts.end());
  };
  auto label = [](const Target& t, const std::string& what) { return t.prefix + what; };
  // 1. The default query every warehouse polls; each backend beside the static server measured
  // right after it.
  if (runs("get")) {
    auto by_warehouse = [](int, std::mt19937& rng) -> LoadRequest {
      return {"GET", "/allocation-requests?warehouse=" + std::to_string(1 + rng() % 50), ""};
    };
    for (Target& t : targets) {
      CpuShare cpu(t.api->pid(), t.postgresql ? t.pg->url() : "");
      LoadResult api_default = RunLoad(t.port, o.connections, o.seconds, by_warehouse);
      std::string cpu_text = cpu.Describe(api_default.count);
      LoadResult static_default;
      {
        StaticServer baseline(api_default.bytes, o.threads);
        static_default = RunLoad(baseline.port(), o.connections, o.seconds, by_warehouse);
      }
      Row(label(t, "GET ?warehouse=W (pending, random W)").c_str(), api_default, "pages/s");
      Row("  baseline: static httplib, same body size", static_default, "pages/s");
      std::printf("  ratio %.2f (target >= 0.25)\n  %s\n\n",
                  api_default.rate() / static_default.rate(), cpu_text.c_str());
      std::fflush(stdout);
    }
  }

  // 2. Deep paging through everything.
  if (runs("all")) {
    std::int64_t pages = (o.requests + 99) / 100;
    auto all_pages = [pages](int, std::mt19937& rng) -> LoadRequest {
      return {"GET", "/allocation-requests?status=all&page=" + std::to_string(1 + rng() % pages),
              ""};
    };
    for (Target& t : targets) {
      LoadResult api_all = RunLoad(t.port, o.connections, o.seconds, all_pages);
      LoadResult static_all;
      {
        StaticServer baseline(api_all.bytes, o.threads);
        static_all = RunLoad(baseline.port(), o.connections, o.seconds, all_pages);
      }
      Row(label(t, "GET ?status=all&page=P (random P)").c_str(), api_all, "pages/s");
      Row("  baseline: static httplib, same body size", static_all, "pages/s");
      std::printf("  ratio %.2f\n", api_all.rate() / static_all.rate());
      auto fixed_page = [](std::int64_t p) {
        return [p](int, std::mt19937&) -> LoadRequest {
          return {"GET", "/allocation-requests?status=all&page=" + std::to_string(p), ""};
        };
      };
      LoadResult first = RunLoad(t.port, o.connections, o.seconds / 2, fixed_page(1));
      LoadResult last = RunLoad(t.port, o.connections, o.seconds / 2, fixed_page(pages));
      Row("  page 1", first, "pages/s");
      Row("  last page", last, "pages/s");
      auto confirmed_pages = [](std::int64_t p) {
        return [p](int, std::mt19937&) -> LoadRequest {
          return {"GET", "/allocation-requests?status=confirmed&page=" + std::to_string(p), ""};
        };
      };
      LoadResult filtered_first = RunLoad(t.port, o.connections, o.seconds / 2, confirmed_pages(1));
      LoadResult filtered_deep =
          RunLoad(t.port, o.connections, o.seconds / 2, confirmed_pages(2000));
      Row("  status=confirmed page 1", filtered_first, "pages/s");
      Row("  status=confirmed page 2000", filtered_deep, "pages/s");
      std::printf("\n");
      std::fflush(stdout);
    }
  }

  // 3. Confirms: each connection confirms its own share of the pending requests.
  if (runs("put")) {
    for (Target& t : targets) {
      std::vector<std::vector<std::int64_t>> shares(static_cast<std::size_t>(o.connections));
      for (std::size_t i = 0; i < t.pending.size(); ++i) {
        shares[i % shares.size()].push_back(t.pending[i]);
      }
      std::vector<std::size_t> next_index(shares.size(), 0);
      auto confirm = [&](int c, std::mt19937&) -> LoadRequest {
        auto& share = shares[static_cast<std::size_t>(c)];
        std::size_t& i = next_index[static_cast<std::size_t>(c)];
        if (i >= share.size()) return {"", "", ""};
        return {"PUT", "/allocation-request",
                R"({"id":)" + std::to_string(share[i++]) + R"(,"status":"confirmed"})"};
      };
      LoadResult confirms = RunLoad(t.port, o.connections, o.seconds, confirm);
      double raw = RawCommits(t, dir, o.connections, o.seconds);
      Row(label(t, "PUT confirm (durable commits)").c_str(), confirms, "confirms/s");
      std::printf("  baseline: %s: %.0f commits/s\n", RawDescription(t), raw);
      std::printf("  ratio %.2f (target >= 0.5)\n", confirms.rate() / raw);
      if (confirms.ran_out > 0) {
        std::printf("  WARNING: %d connections ran out of pending requests before the end\n",
                    confirms.ran_out);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }

  // 4. The write path: confirms, rejects and intake at each client count, each figure beside
  // raw single-row commits measured right before and right after it (same file system or
  // cluster, same durability; the ratio uses their mean). With several backends their figures
  // alternate (each kind, each client count: one backend, then the next). Every confirm and
  // reject has a pending request of its own, added (raw SQL, between figures) to the live
  // database; leftovers are made final afterwards so pending work does not pile up from one
  // figure to the next. Intake posts new allocations with fresh order numbers, one warehouse
  // each.
  const bool writes = runs("confirm") || runs("reject") || runs("intake");
  const auto print_peak_rss = [&](const Target& t, const char* when) {
    std::printf("%sallocation-api peak RSS%s: %.1f MiB (target < 64 MiB)\n", t.prefix.c_str(), when,
                static_cast<double>(testing::PeakRssKb(t.api->pid())) / 1024);
  };
  if (writes) {
    // The write part reads /metrics around each figure for the group commit's counters; at a
    // million rows each read grows the service's heap by tens of MiB (its count of allocations
    // by state sorts every allocation in memory), so the peak RSS of the parts before it is
    // the figure to compare.
    for (const Target& t : targets) print_peak_rss(t, " before the write part");
    std::printf("\n");
    const double seconds = o.write_seconds;
    std::int64_t next_order = 1'000'000'000'000;  // order numbers of intake, above every id
    struct Figure {
      std::string what;
      double rate, baseline, ratio;
    };
    std::vector<Figure> summary;
    for (Target& t : targets) {
      std::printf(
          "%swrite path, %.0f s per figure; baseline: %s, measured right before and right after "
          "each figure, ratio to their mean\n",
          t.prefix.c_str(), seconds, RawDescription(t));
    }
    for (int round = 0; round < o.repeat; ++round) {
      for (int clients : o.clients) {
        for (const char* kind : {"confirm", "reject", "intake"}) {
          if (!runs(kind)) continue;
          for (Target& t : targets) {
            // The baseline before the first figure; on PostgreSQL again whenever the client
            // count changes (its raw commits run one connection per client).
            if (t.raw_before == 0 || (t.postgresql && t.raw_clients != clients)) {
              t.raw_before = RawCommits(t, dir, clients, seconds);
              t.raw_clients = clients;
            }
            const bool intake = std::string_view(kind) == "intake";
            std::vector<std::vector<std::int64_t>> shares(static_cast<std::size_t>(clients));
            std::vector<std::size_t> next_index(shares.size(), 0);
            std::vector<std::int64_t> ids;
            if (!intake) {
              // Enough for 2.5 times the fastest of the raw commit rate, this kind's last rate
              // and 8,000/s; a client that runs out all the same is reported.
              double rate = std::max({t.raw_before, t.last_rate[kind], 8000.0});
              auto count = static_cast<std::int64_t>(2.5 * rate * seconds);
              ids = t.postgresql ? PgAddPending(t.pg_options, count) : AddPending(t.db_path, count);
              for (std::size_t i = 0; i < ids.size(); ++i)
                shares[i % shares.size()].push_back(ids[i]);
            }
            const std::string status =
                std::string_view(kind) == "confirm" ? "confirmed" : "rejected";
            std::atomic<std::int64_t> order{next_order};
            auto next = [&](int c, std::mt19937& rng) -> LoadRequest {
              if (intake) {
                return {"POST", "/allocations",
                        R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" +
                            std::to_string(order++) +
                            R"(},"lines":[{"lineId":1,"quantity":1,"stockItemId":1}],)"
                            R"("warehouses":[[)" +
                            std::to_string(1 + rng() % g_intake_warehouses) + "]]}"};
              }
              auto& share = shares[static_cast<std::size_t>(c)];
              std::size_t& i = next_index[static_cast<std::size_t>(c)];
              if (i >= share.size()) return {"", "", ""};
              return {"PUT", "/allocation-request",
                      R"({"id":)" + std::to_string(share[i++]) + R"(,"status":")" + status + "\"}"};
            };
            auto counters0 = WriteCounters(t.port);
            testing::PgCounters pg0, pg1;
            if (t.postgresql) pg0 = testing::ReadPgCounters(t.pg->url());
            CpuShare cpu(t.api->pid(), t.postgresql ? t.pg->url() : "");
            LoadResult r = RunLoad(t.port, clients, seconds, next,
                                   intake ? R"("status":"ok")" : R"("success":true)");
            std::string cpu_text = cpu.Describe(r.count);
            if (t.postgresql) pg1 = testing::ReadPgCounters(t.pg->url());
            auto counters1 = WriteCounters(t.port);
            next_order = order;
            t.last_rate[kind] = r.rate();
            if (!ids.empty()) {  // what was not confirmed or rejected: made final, out of the way
              if (t.postgresql) {
                PgOutdate(t.pg_options, ids.front(), ids.back());
              } else {
                sqlite3* db = nullptr;
                sqlite3_open(t.db_path.c_str(), &db);
                std::string range = " BETWEEN " + std::to_string(ids.front()) + " AND " +
                                    std::to_string(ids.back());
                CheckSqlite(
                    sqlite3_exec(db,
                                 ("PRAGMA busy_timeout=10000; BEGIN IMMEDIATE; "
                                  "UPDATE allocation_requests SET status = 'outdated', "
                                  "pending = NULL WHERE pending = 1 AND id" +
                                  range +
                                  "; UPDATE allocations SET state = 'exhausted' WHERE state = "
                                  "'open' AND id" +
                                  range + "; COMMIT; PRAGMA wal_checkpoint(TRUNCATE)")
                                     .c_str(),
                                 nullptr, nullptr, nullptr),
                    db, "outdate leftovers");
                sqlite3_close(db);
              }
            }
            double raw_after = RawCommits(t, dir, clients, seconds);
            double baseline = (t.raw_before + raw_after) / 2;
            std::string what = t.prefix + (intake ? "POST /allocations" : "PUT ") +
                               (intake ? "" : kind) + ", " + std::to_string(clients) + " clients";
            Row(what.c_str(), r,
                intake ? "creates/s" : (status == "confirmed" ? "confirms/s" : "rejects/s"));
            std::printf(
                "  baseline: raw single-row commits %8.0f before, %8.0f after: mean %8.0f "
                "commits/s\n",
                t.raw_before, raw_after, baseline);
            const double ratio = r.rate() / baseline;
            const char* target = t.postgresql
                                     ? (clients == 16 ? " (target >= 0.7 at 16 clients)" : "")
                                 : clients == 8  ? " (target >= 0.7 at 8 clients)"
                                 : clients == 16 ? " (target >= 0.9 at 16 clients)"
                                                 : "";
            std::printf("  ratio %.2f%s\n", ratio, target);
            if (std::min(t.raw_before, raw_after) < 0.8 * std::max(t.raw_before, raw_after)) {
              std::printf("  NOISY: the baseline moved by more than 20 %% across the figure\n");
            }
            summary.push_back({what, r.rate(), baseline, ratio});
            std::printf("  %s; api RSS %.1f MiB", cpu_text.c_str(),
                        static_cast<double>(RssKb(t.api->pid())) / 1024);
            auto delta = [&](const char* name) {
              std::string key = std::string("allocation_relay_write_") + name;
              return counters1[key] - counters0[key];
            };
            if (double commits = delta("commits_total"); commits > 0) {
              std::printf(
                  "\n  group commit: %.2f writes per commit; per commit %.0f us running writes, "
                  "%.0f us in COMMIT; a write waited %.0f us for its batch",
                  delta("ops_total") / commits, delta("execute_seconds_total") / commits * 1e6,
                  delta("commit_seconds_total") / commits * 1e6,
                  delta("wait_seconds_total") / std::max(1.0, delta("ops_total")) * 1e6);
              std::printf("\n  %.1f log pages per commit; %.0f checkpoints taking %.0f ms in all",
                          delta("wal_frames_total") / commits, delta("checkpoints_total"),
                          delta("checkpoint_seconds_total") * 1e3);
            }
            if (t.postgresql && pg0.statements >= 0 && pg1.statements >= 0 && r.count > 0) {
              std::printf("\n  %.1f statements per call (pg_stat_statements)",
                          (pg1.statements - pg0.statements) / static_cast<double>(r.count));
            }
            if (t.postgresql) {
              std::printf(
                  "\n  raw commits (after): cpu per commit postgres %.0f us, client %.0f us",
                  t.raw_cpu.server_us, t.raw_cpu.client_us);
            }
            std::printf("\n");
            if (r.ran_out > 0) {
              std::printf("  WARNING: %d clients ran out of pending requests before the end\n",
                          r.ran_out);
            }
            std::printf("\n");
            std::fflush(stdout);
            t.raw_before = raw_after;
          }
        }
      }
    }
    std::printf("write path summary (ops/s / raw commits/s measured around it = ratio):\n");
    for (const Figure& f : summary) {
      std::printf("  %-45s %8.0f / %8.0f = %.2f\n", f.what.c_str(), f.rate, f.baseline, f.ratio);
    }
    std::printf("\n");
  }

  for (Target& t : targets) {
    print_peak_rss(t, writes ? " (with the write part's /metrics reads)" : "");
    t.api->Signal(SIGTERM);
    auto code = t.api->Wait(std::chrono::seconds(20));
    std::printf("%sallocation-api exit status after SIGTERM: %d\n", t.prefix.c_str(),
                code.value_or(-1));
  }
  return 0;
}
