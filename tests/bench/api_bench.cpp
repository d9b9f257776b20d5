// api_bench: throughput and latency of the real allocation-api, each figure beside a baseline
// measured in the same run on the same machine:
//   - GET /allocation-requests?warehouse=W (default: pending) vs a static cpp-httplib server
//     answering a body of the same size with the same threads;
//   - GET ?status=all&page=P (random P; and first vs last pages) vs the same static server;
//   - PUT /allocation-request confirms vs raw single-row SQLite commits at the same
//     synchronous setting;
//   - p50/p99 latencies, and the API's peak RSS.
// The database is seeded with --requests allocation requests (default 1,000,000) over 50
// warehouses, 2 % of them pending and the rest final, as in a live system (the pending ones are
// among the newest, since older requests have been answered or have timed out).
//
// Usage: api_bench --api <allocation-api binary> [--requests N] [--seconds S] [--connections C]
//                  [--only get|all|put]
//        api_bench --seed-only <path> [--requests N]   (just seed a database, for experiments)
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "support/loopback_server.h"
#include "support/process.h"
#include "support/temp_dir.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;

namespace {

struct Options {
  std::string api;
  std::int64_t requests = 1'000'000;
  double seconds = 5;
  int connections = 16;
  int threads = 16;
  std::string only;     // "get", "all" or "put": run just that part
  std::string seed_to;  // only seed a database at this path, for experiments
};

void Check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
    std::exit(1);
  }
}

// Bulk-loads the benchmark data (raw SQL: this is a test tool, not the product).
void Seed(const std::string& path, std::int64_t n, std::vector<std::int64_t>& pending_ids) {
  Store::Open({path, SynchronousMode::kOff, std::chrono::milliseconds(5000)});  // schema
  sqlite3* db = nullptr;
  Check(sqlite3_open(path.c_str(), &db), db, "open");
  Check(sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr), db, "begin");
  sqlite3_stmt *alloc, *req;
  Check(sqlite3_prepare_v2(db,
                           "INSERT INTO allocations (id, order_id, order_number, groups_json, "
                           "current_group, state, confirmed_warehouse_id, created_at, updated_at, "
                           "lines_json) "
                           "VALUES (?, '486e13eaaa65d5ff1e87c997b5dce54e', ?, ?, 0, ?, ?, ?, ?, ?)",
                           -1, &alloc, nullptr),
        db, "prepare");
  Check(sqlite3_prepare_v2(db,
                           "INSERT INTO allocation_requests (id, allocation_id, warehouse_id, "
                           "warehouse_name, group_index, status, pending, created_at, expires_at, "
                           "updated_at, order_id, order_number, lines_json) "
                           "VALUES (?1, ?2, ?3, ?4, 0, ?5, CASE WHEN ?5 = 'allocated' OR ?5 = "
                           "'sent' OR ?5 = 'failed' THEN 1 END, ?6, ?7, ?8, "
                           "'486e13eaaa65d5ff1e87c997b5dce54e', ?9, ?10)",
                           -1, &req, nullptr),
        db, "prepare");
  std::mt19937 rng(42);
  const char* finals[] = {"confirmed", "rejected", "outdated", "timed-out"};
  std::int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  for (std::int64_t id = 1; id <= n; ++id) {
    std::int64_t warehouse = (id % 50) + 1;
    // As in a live system, pending requests are the recent ones (older ones were answered or
    // timed out): two thirds of the newest 3 % are pending, 2 % in all.
    bool pending = id > n - n * 3 / 100 && rng() % 3 != 0;
    const char* status = pending ? "sent" : finals[rng() % 4];
    const char* state = pending                                   ? "open"
                        : std::string_view(status) == "confirmed" ? "confirmed"
                                                                  : "exhausted";
    std::string groups = "[[" + std::to_string(warehouse) + "]]";
    std::string lines = R"([{"lineId":73,"quantity":)" + std::to_string(1 + rng() % 5) +
                        R"(,"stockItemId":)" + std::to_string(1 + rng() % 1000) + "}]";
    std::int64_t created = now_us - (n - id) * 1000;
    sqlite3_bind_int64(alloc, 1, id);
    sqlite3_bind_int64(alloc, 2, id);
    sqlite3_bind_text(alloc, 3, groups.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(alloc, 4, state, -1, SQLITE_STATIC);
    if (std::string_view(status) == "confirmed") {
      sqlite3_bind_int64(alloc, 5, warehouse);
    } else {
      sqlite3_bind_null(alloc, 5);
    }
    sqlite3_bind_int64(alloc, 6, created);
    sqlite3_bind_int64(alloc, 7, created);
    sqlite3_bind_text(alloc, 8, lines.c_str(), -1, SQLITE_TRANSIENT);
    Check(sqlite3_step(alloc), db, "insert allocation");
    sqlite3_reset(alloc);
    std::string name = "Warehouse " + std::to_string(warehouse);
    sqlite3_bind_int64(req, 1, id);
    sqlite3_bind_int64(req, 2, id);
    sqlite3_bind_int64(req, 3, warehouse);
    sqlite3_bind_text(req, 4, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(req, 5, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(req, 6, created);
    sqlite3_bind_int64(req, 7, pending ? now_us + 3'600'000'000LL : created + 3'600'000'000LL);
    sqlite3_bind_int64(req, 8, created);
    sqlite3_bind_int64(req, 9, id);
    sqlite3_bind_text(req, 10, lines.c_str(), -1, SQLITE_TRANSIENT);
    Check(sqlite3_step(req), db, "insert request");
    sqlite3_reset(req);
    if (pending) pending_ids.push_back(id);
  }
  sqlite3_finalize(alloc);
  sqlite3_finalize(req);
  Check(sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr), db,
        "commit");
  sqlite3_close(db);
}

struct LoadResult {
  std::int64_t count = 0;
  std::int64_t errors = 0;
  double seconds = 0;
  double p50_ms = 0, p99_ms = 0;
  std::size_t bytes = 0;  // body size of the last answer
  double rate() const { return static_cast<double>(count) / seconds; }
};

// `connections` keep-alive clients issue requests made by `next(thread, rng)` for `seconds`
// (or until `next` returns an empty method).
template <typename Next>
LoadResult Load(int port, int connections, double seconds, Next next) {
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(connections));
  std::atomic<std::int64_t> errors{0};  // answers other than 200, and failed calls
  std::atomic<std::size_t> bytes{0};
  auto start = Steady::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_tcp_nodelay(true);
      c.set_keep_alive(true);
      std::mt19937 rng(static_cast<std::uint32_t>(t) * 7919u + 1u);
      auto& lat = latencies[static_cast<std::size_t>(t)];
      while (Steady::now() < deadline) {
        auto [method, path, body] = next(t, rng);
        if (method.empty()) break;
        httplib::Headers headers{{"API-Authorization", "bench-token"}};
        auto t0 = Steady::now();
        auto r =
            method == "GET" ? c.Get(path, headers) : c.Put(path, headers, body, "application/json");
        double ms = std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
        if (!r || r->status != 200) {
          if (errors++ == 0) {
            std::fprintf(stderr, "first error: %s\n",
                         r ? (std::to_string(r->status) + " " + r->body).c_str()
                           : httplib::to_string(r.error()).c_str());
          }
          continue;
        }
        bytes = r->body.size();
        lat.push_back(ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  LoadResult result;
  result.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  result.count = static_cast<std::int64_t>(all.size());
  result.errors = errors;
  result.bytes = bytes;
  if (!all.empty()) {
    result.p50_ms = all[all.size() / 2];
    result.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return result;
}

using Request = std::tuple<std::string, std::string, std::string>;

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
  return static_cast<double>(n) / elapsed;
}

void Row(const char* what, const LoadResult& r, const char* unit) {
  std::printf("%-44s %10.0f %-10s p50 %6.2f ms  p99 %6.2f ms  (%lld ok, %lld errors, %zu B)\n",
              what, r.rate(), unit, r.p50_ms, r.p99_ms, static_cast<long long>(r.count),
              static_cast<long long>(r.errors), r.bytes);
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
    else if (flag == "--seed-only")
      o.seed_to = value;
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
  if (o.api.empty()) {
    std::fprintf(stderr,
                 "usage: api_bench --api <allocation-api> [--requests N] [--seconds S] "
                 "[--connections C]\n");
    return 2;
  }
  testing::TempDir dir;
  std::vector<std::int64_t> pending;
  auto t0 = Steady::now();
  Seed(dir.File("bench.db"), o.requests, pending);
  std::printf("seeded %lld requests over 50 warehouses (%zu pending) in %.1f s\n",
              static_cast<long long>(o.requests), pending.size(),
              std::chrono::duration<double>(Steady::now() - t0).count());

  std::string config =
      "timezone: Europe/Stockholm\nlog_level: info\n"
      "store: {path: bench.db, synchronous: full}\n"
      "api:\n  listen: 127.0.0.1:0\n  threads: " +
      std::to_string(o.threads) +
      "\n  keys:\n    - {name: bench, sha256: " + Sha256Hex("bench-token") +
      ", endpoints: [GET /allocation-requests, PUT /allocation-request]}\n"
      "warehouses:\n";
  for (int w = 1; w <= 50; ++w) {
    config += "  - {id: " + std::to_string(w) + ", name: Warehouse " + std::to_string(w) + "}\n";
  }
  dir.Write("bench.yaml", config);
  testing::Process api({o.api, "--config", dir.File("bench.yaml")}, dir.path());
  int port = 0;
  std::regex listening(R"(api listening on 127\.0\.0\.1:(\d+))");
  std::smatch match;
  testing::WaitFor(
      [&] {
        std::string err = api.Stderr();
        if (!std::regex_search(err, match, listening)) return false;
        port = std::stoi(match[1]);
        return true;
      },
      std::chrono::seconds(30));
  if (port == 0) {
    std::fprintf(stderr, "allocation-api did not start: %s\n", api.Stderr().c_str());
    return 1;
  }
  std::printf(
      "allocation-api pid %d on port %d, %d worker threads; load: %d keep-alive "
      "connections, %.0f s per figure\n\n",
      api.pid(), port, o.threads, o.connections, o.seconds);

  auto runs = [&](const char* part) {
    return o.only.empty() || o.only.find(part) != std::string::npos;
  };
  // 1. The default query every warehouse polls.
  if (runs("get")) {
    auto by_warehouse = [](int, std::mt19937& rng) -> Request {
      return {"GET", "/allocation-requests?warehouse=" + std::to_string(1 + rng() % 50), ""};
    };
    LoadResult api_default = Load(port, o.connections, o.seconds, by_warehouse);
    LoadResult static_default;
    {
      StaticServer baseline(api_default.bytes, o.threads);
      static_default = Load(baseline.port(), o.connections, o.seconds, by_warehouse);
    }
    Row("GET ?warehouse=W (pending, random W)", api_default, "pages/s");
    Row("  baseline: static httplib, same body size", static_default, "pages/s");
    std::printf("  ratio %.2f (target >= 0.25)\n\n", api_default.rate() / static_default.rate());
  }

  // 2. Deep paging through everything.
  if (runs("all")) {
    std::int64_t pages = (o.requests + 99) / 100;
    auto all_pages = [pages](int, std::mt19937& rng) -> Request {
      return {"GET", "/allocation-requests?status=all&page=" + std::to_string(1 + rng() % pages),
              ""};
    };
    LoadResult api_all = Load(port, o.connections, o.seconds, all_pages);
    LoadResult static_all;
    {
      StaticServer baseline(api_all.bytes, o.threads);
      static_all = Load(baseline.port(), o.connections, o.seconds, all_pages);
    }
    Row("GET ?status=all&page=P (random P)", api_all, "pages/s");
    Row("  baseline: static httplib, same body size", static_all, "pages/s");
    std::printf("  ratio %.2f\n", api_all.rate() / static_all.rate());
    auto fixed_page = [](std::int64_t p) {
      return [p](int, std::mt19937&) -> Request {
        return {"GET", "/allocation-requests?status=all&page=" + std::to_string(p), ""};
      };
    };
    LoadResult first = Load(port, o.connections, o.seconds / 2, fixed_page(1));
    LoadResult last = Load(port, o.connections, o.seconds / 2, fixed_page(pages));
    Row("  page 1", first, "pages/s");
    Row("  last page", last, "pages/s");
    auto confirmed_pages = [](std::int64_t p) {
      return [p](int, std::mt19937&) -> Request {
        return {"GET", "/allocation-requests?status=confirmed&page=" + std::to_string(p), ""};
      };
    };
    LoadResult filtered_first = Load(port, o.connections, o.seconds / 2, confirmed_pages(1));
    LoadResult filtered_deep = Load(port, o.connections, o.seconds / 2, confirmed_pages(2000));
    Row("  status=confirmed page 1", filtered_first, "pages/s");
    Row("  status=confirmed page 2000", filtered_deep, "pages/s");
    std::printf("\n");
  }

  // 3. Confirms: each connection confirms its own share of the pending requests.
  if (runs("put")) {
    std::vector<std::vector<std::int64_t>> shares(static_cast<std::size_t>(o.connections));
    for (std::size_t i = 0; i < pending.size(); ++i) {
      shares[i % shares.size()].push_back(pending[i]);
    }
    std::vector<std::size_t> next_index(shares.size(), 0);
    auto confirm = [&](int t, std::mt19937&) -> Request {
      auto& share = shares[static_cast<std::size_t>(t)];
      std::size_t& i = next_index[static_cast<std::size_t>(t)];
      if (i >= share.size()) return {"", "", ""};
      return {"PUT", "/allocation-request",
              R"({"id":)" + std::to_string(share[i++]) + R"(,"status":"confirmed"})"};
    };
    LoadResult confirms = Load(port, o.connections, o.seconds, confirm);
    double raw = RawCommitsPerSecond(dir.File("raw.db"), o.seconds);
    Row("PUT confirm (synchronous=full)", confirms, "confirms/s");
    std::printf(
        "  baseline: raw single-row SQLite commits     %10.0f commits/s (WAL, "
        "synchronous=FULL, BEGIN IMMEDIATE)\n",
        raw);
    std::printf("  ratio %.2f (target >= 0.5)\n\n", confirms.rate() / raw);
  }

  long rss = testing::PeakRssKb(api.pid());
  std::printf("allocation-api peak RSS: %.1f MiB (target < 64 MiB)\n",
              static_cast<double>(rss) / 1024);
  api.Signal(SIGTERM);
  auto code = api.Wait(std::chrono::seconds(20));
  std::printf("allocation-api exit status after SIGTERM: %d\n", code.value_or(-1));
  return 0;
}
