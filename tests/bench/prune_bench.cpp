// prune_bench: retention (SPEC section 9, issue #15) beside the Order API's confirms. A prune of
// millions of old rows must run in small transactions (each at most 50 ms) so that API writes
// interleave: the confirms' p99 may rise by at most 10 ms while it runs.
//
// The database holds three cohorts, all with consistent outbox history (each allocation has one
// request and a `create` event, half of them an `update` event too; events are batched in
// succeeded deliveries of up to 10, each with one attempt):
//   - --allocations N final allocations (default 1,000,000), 200 days old: what the real
//     `allocation-dispatcherd --config F prune` deletes (retention.finished and .attempts 90d);
//   - --step-allocations M final allocations (default 50,000), 60 days old: kept by that prune,
//     deleted afterwards by an in-process pass (cutoffs 30 days) that times every
//     Store::PruneStep with the Pruner's own batch sizes, adaptation and pause;
//   - --pending P open allocations (default 500,000) with a sent request at warehouse 3: the
//     confirm load's work, each confirmed once.
//
// With the real allocation-api on that file (synchronous full, 16 workers), each figure is
// --seconds S (default 8) of confirms (PUT /allocation-request, --clients keep-alive clients,
// default 16), in this order: without pruning; while the `prune` command runs (the load starts
// with it and stops when it ends, if that is sooner); without pruning again; while the
// in-process timed pass runs. Each prune goes on to its end after its figure, alone. Printed:
// rows/s pruned (overall, beside the confirms and alone) and per-kind counts, confirms/s and
// p50/p99 without and with, the p99 difference against the 10 ms budget, and the prune steps'
// p50/p99/max time against the 50 ms limit: alone (the transaction, plus the checkpoint some
// commits run; those are flagged) and beside the confirms (plus the wait for the write lock).
// --confirm-rate R paces the confirms at R/s in all (default: as fast as the clients go);
// --step-target-us and --step-pause-us set the timed pass's pacing (default: the Pruner's), to
// try others without rebuilding the daemon.
//
// Usage: prune_bench --api <allocation-api> --dispatcher <allocation-dispatcherd>
//                    [--allocations N] [--step-allocations M] [--pending P] [--seconds S]
//                    [--clients C] [--confirm-rate R] [--step-target-us T] [--step-pause-us P]
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "allocation_relay/clock.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "pruner.h"
#include "support/http_load.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;
using testing::LoadRequest;
using testing::LoadResult;
using testing::RunLoad;

namespace {

struct Options {
  std::string api, dispatcher;
  std::int64_t allocations = 1'000'000;    // old final ones, for the `prune` command
  std::int64_t step_allocations = 50'000;  // final ones for the timed in-process pass
  std::int64_t pending = 500'000;          // open ones, for the confirm load
  double seconds = 8;
  int clients = 16;
  double confirm_rate = 0;  // confirms/s over all clients; 0: each client as fast as it can
  // The timed in-process pass's pacing (the `prune` command always has the Pruner's defaults).
  std::chrono::microseconds step_target = Pruner::kTargetStep;
  std::chrono::microseconds step_pause = Pruner::kPauseBetweenSteps;
};

constexpr std::int64_t kDayUs = 86'400'000'000LL;
constexpr int kBlock = 10;  // allocations per block: one warehouse, one delivery per event kind

void Check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
    std::exit(1);
  }
}

double Since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

std::int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Bulk-loads the cohorts (raw SQL: a test tool, not the product) in big transactions at
// synchronous=OFF and without a journal (no other connection is open while it seeds; the file
// is back in WAL mode at the end). Ids (allocations = requests = order numbers) are
// given; events, deliveries and attempts get the next rowids.
class Seeder {
 public:
  explicit Seeder(const std::string& path) {
    Check(sqlite3_open(path.c_str(), &db_), db_, "open");
    Check(sqlite3_exec(db_,
                       "PRAGMA busy_timeout=10000; PRAGMA journal_mode=OFF; "
                       "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144",
                       nullptr, nullptr, nullptr),
          db_, "pragmas");
    Prepare(&alloc_,
            "INSERT INTO allocations (id, order_id, order_number, groups_json, lines_json, "
            "current_group, state, confirmed_warehouse_id, created_at, updated_at) "
            "VALUES (?1, '486e13eaaa65d5ff1e87c997b5dce54e', ?1, ?2, ?3, 0, ?4, ?5, ?6, ?7)");
    Prepare(&req_,
            "INSERT INTO allocation_requests (id, allocation_id, warehouse_id, warehouse_name, "
            "group_index, status, pending, created_at, expires_at, updated_at, order_id, "
            "order_number, lines_json) VALUES (?1, ?1, ?2, ?3, 0, ?4, CASE WHEN ?4 = 'sent' "
            "THEN 1 END, ?5, ?6, ?7, '486e13eaaa65d5ff1e87c997b5dce54e', ?1, ?8)");
    Prepare(&delivery_,
            "INSERT INTO deliveries (uid, warehouse_id, state, document, request_ids, "
            "attempt_count, next_attempt_at, created_at, finished_at) "
            "VALUES (lower(hex(randomblob(12))), ?, 'succeeded', '', ?, 1, ?, ?, ?)");
    Prepare(&attempt_,
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, "
            "http_status) VALUES (?, 1, ?, 20000, 200)");
    Prepare(&event_,
            "INSERT INTO outbox_events (warehouse_id, request_id, action, status, created_at, "
            "delivery_id) VALUES (?, ?, ?, ?, ?, ?)");
  }
  ~Seeder() {
    for (sqlite3_stmt* s : {alloc_, req_, delivery_, attempt_, event_}) sqlite3_finalize(s);
    Check(sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr), db_, "WAL");
    sqlite3_close(db_);
  }

  // Final allocations first_id .. first_id+count-1, created `age_days` ago (1 ms apart, each
  // finished a minute after its creation), in blocks of 10 at one warehouse each: confirmed,
  // rejected, timed out (+ an update event), cancelled (+ an update event), in turn.
  void Finished(std::int64_t first_id, std::int64_t count, int age_days) {
    const std::int64_t base = now_us_ - age_days * kDayUs;
    Seed(first_id, count, [&](std::int64_t id, std::int64_t k) {
      Row r;
      r.warehouse = 1 + (k / kBlock) % 50;
      r.created = base + k * 1000;
      r.updated = r.created + 60'000'000;
      r.expires = r.created + 3'600'000'000LL;
      static const char* const kStates[] = {"confirmed", "exhausted", "exhausted", "cancelled"};
      static const char* const kStatuses[] = {"confirmed", "rejected", "timed-out", "outdated"};
      r.state = kStates[id % 4];
      r.status = kStatuses[id % 4];
      r.update_event = id % 4 >= 2;
      return r;
    });
  }

  // Open allocations with a request sent to warehouse 3 (its create event delivered), created
  // now, expiring in a week.
  void Pending(std::int64_t first_id, std::int64_t count) {
    Seed(first_id, count, [&](std::int64_t, std::int64_t) {
      Row r;
      r.warehouse = 3;
      r.created = r.updated = now_us_;
      r.expires = now_us_ + 7 * kDayUs;
      r.state = "open";
      r.status = "sent";
      return r;
    });
  }

 private:
  struct Row {
    std::int64_t warehouse = 0, created = 0, updated = 0, expires = 0;
    const char* state = "";
    const char* status = "";
    bool update_event = false;
  };

  void Prepare(sqlite3_stmt** s, const char* sql) {
    Check(sqlite3_prepare_v2(db_, sql, -1, s, nullptr), db_, "prepare");
  }
  void Step(sqlite3_stmt* s, const char* what) {
    Check(sqlite3_step(s), db_, what);
    sqlite3_reset(s);
  }

  // A succeeded delivery of `events` (request id, status, created_at), with its attempt, and
  // the events in it.
  void Deliver(std::int64_t warehouse, const char* action,
               const std::vector<std::tuple<std::int64_t, const char*, std::int64_t>>& events) {
    if (events.empty()) return;
    std::string request_ids;
    std::int64_t last = 0;
    for (const auto& [request, status, at] : events) {
      if (!request_ids.empty()) request_ids += ',';
      request_ids += std::to_string(request);
      last = std::max(last, at);
    }
    const std::int64_t sent = last + 1'000'000;
    sqlite3_bind_int64(delivery_, 1, warehouse);
    sqlite3_bind_text(delivery_, 2, request_ids.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(delivery_, 3, sent);
    sqlite3_bind_int64(delivery_, 4, sent);
    sqlite3_bind_int64(delivery_, 5, sent + 20'000);
    Step(delivery_, "insert delivery");
    const std::int64_t delivery = sqlite3_last_insert_rowid(db_);
    sqlite3_bind_int64(attempt_, 1, delivery);
    sqlite3_bind_int64(attempt_, 2, sent);
    Step(attempt_, "insert attempt");
    for (const auto& [request, status, at] : events) {
      sqlite3_bind_int64(event_, 1, warehouse);
      sqlite3_bind_int64(event_, 2, request);
      sqlite3_bind_text(event_, 3, action, -1, SQLITE_STATIC);
      sqlite3_bind_text(event_, 4, status, -1, SQLITE_STATIC);
      sqlite3_bind_int64(event_, 5, at);
      sqlite3_bind_int64(event_, 6, delivery);
      Step(event_, "insert event");
    }
  }

  template <typename MakeRow>
  void Seed(std::int64_t first_id, std::int64_t count, MakeRow make) {
    Check(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db_, "begin");
    for (std::int64_t k0 = 0; k0 < count; k0 += kBlock) {
      std::vector<std::tuple<std::int64_t, const char*, std::int64_t>> creates, updates;
      std::int64_t warehouse = 0;
      for (std::int64_t k = k0; k < std::min(count, k0 + kBlock); ++k) {
        const std::int64_t id = first_id + k;
        const Row r = make(id, k);
        warehouse = r.warehouse;
        const std::string groups = "[[" + std::to_string(r.warehouse) + "]]";
        const std::string lines = R"([{"lineId":73,"quantity":)" + std::to_string(1 + rng_() % 5) +
                                  R"(,"stockItemId":)" + std::to_string(1 + rng_() % 1000) + "}]";
        sqlite3_bind_int64(alloc_, 1, id);
        sqlite3_bind_text(alloc_, 2, groups.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(alloc_, 3, lines.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(alloc_, 4, r.state, -1, SQLITE_STATIC);
        if (std::string_view(r.state) == "confirmed") {
          sqlite3_bind_int64(alloc_, 5, r.warehouse);
        } else {
          sqlite3_bind_null(alloc_, 5);
        }
        sqlite3_bind_int64(alloc_, 6, r.created);
        sqlite3_bind_int64(alloc_, 7, r.updated);
        Step(alloc_, "insert allocation");
        const std::string name = "Warehouse " + std::to_string(r.warehouse);
        sqlite3_bind_int64(req_, 1, id);
        sqlite3_bind_int64(req_, 2, r.warehouse);
        sqlite3_bind_text(req_, 3, name.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(req_, 4, r.status, -1, SQLITE_STATIC);
        sqlite3_bind_int64(req_, 5, r.created);
        sqlite3_bind_int64(req_, 6, r.expires);
        sqlite3_bind_int64(req_, 7, r.updated);
        sqlite3_bind_text(req_, 8, lines.c_str(), -1, SQLITE_TRANSIENT);
        Step(req_, "insert request");
        creates.emplace_back(id, "allocated", r.created);
        if (r.update_event) updates.emplace_back(id, r.status, r.updated);
      }
      Deliver(warehouse, "create", creates);
      Deliver(warehouse, "update", updates);
      if ((k0 / kBlock) % 10'000 == 9'999) {  // 100,000 allocations a transaction
        Check(sqlite3_exec(db_, "COMMIT; BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db_,
              "commit");
      }
    }
    Check(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr), db_, "commit");
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt *alloc_ = nullptr, *req_ = nullptr, *delivery_ = nullptr, *attempt_ = nullptr,
               *event_ = nullptr;
  std::mt19937 rng_{42};
  std::int64_t now_us_ = NowUs();
};

// Rows of each table, counted on a read connection (WAL: it blocks no writer).
std::map<std::string, std::int64_t> CountRows(const std::string& path) {
  sqlite3* db = nullptr;
  Check(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), db, "open");
  std::map<std::string, std::int64_t> out;
  for (const char* table :
       {"allocations", "allocation_requests", "outbox_events", "deliveries", "delivery_attempts"}) {
    sqlite3_stmt* s = nullptr;
    Check(sqlite3_prepare_v2(db, (std::string("SELECT count(*) FROM ") + table).c_str(), -1, &s,
                             nullptr),
          db, "prepare count");
    Check(sqlite3_step(s), db, "count");
    out[table] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return out;
}

// The requests left, from the trigger-kept count (cheap: one row).
std::int64_t RequestsLeft(const std::string& path) {
  sqlite3* db = nullptr;
  Check(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), db, "open");
  sqlite3_stmt* s = nullptr;
  Check(sqlite3_prepare_v2(db, "SELECT value FROM row_counts WHERE name = 'allocation_requests'",
                           -1, &s, nullptr),
        db, "prepare");
  Check(sqlite3_step(s), db, "row count");
  const std::int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

// Frames of the write-ahead log copied into the database so far (nBackfill of the WAL index in
// the -shm file, SQLite's documented layout: a u32 at byte 96, native order); -1 if unreadable.
// It grows while a checkpoint runs and drops to 0 when a writer starts the log over: a step
// during which it grew ran a checkpoint (after its commit, without the write lock).
std::int64_t WalBackfill(int shm_fd) {
  std::uint32_t backfill = 0;
  if (shm_fd < 0 || pread(shm_fd, &backfill, sizeof backfill, 96) != sizeof backfill) return -1;
  return backfill;
}

// Pruner's adaptation of a batch size (daemon/pruner.cpp): halved after a step over twice the
// target, grown by half after one under half of it.
int Adapt(int n, Steady::duration took, std::chrono::microseconds target, int min, int max) {
  if (took > 2 * target) {
    n /= 2;
  } else if (took < target / 2) {
    n += std::max(1, n / 2);
  }
  return std::clamp(n, min, max);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

void Row(const char* what, const LoadResult& r) {
  std::printf(
      "%-40s %7.0f confirms/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %7.2f ms  (%lld "
      "ok, %lld errors, %.1f s)\n",
      what, r.rate(), r.Percentile(0.5), r.Percentile(0.99), r.Percentile(0.999), r.Percentile(1.0),
      static_cast<long long>(r.count), static_cast<long long>(r.errors), r.seconds);
  std::fflush(stdout);
}

void PrintCounts(const PruneCounts& c, double seconds) {
  std::printf(
      "  deleted %lld allocations, %lld requests, %lld events, %lld deliveries, %lld attempts "
      "= %lld rows in %.1f s: %.0f rows/s (%.0f allocations/s)\n",
      static_cast<long long>(c.allocations), static_cast<long long>(c.requests),
      static_cast<long long>(c.events), static_cast<long long>(c.deliveries),
      static_cast<long long>(c.attempts), static_cast<long long>(c.Total()), seconds,
      static_cast<double>(c.Total()) / seconds, static_cast<double>(c.allocations) / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--api")
      o.api = value;
    else if (flag == "--dispatcher")
      o.dispatcher = value;
    else if (flag == "--allocations")
      o.allocations = std::stoll(value);
    else if (flag == "--step-allocations")
      o.step_allocations = std::stoll(value);
    else if (flag == "--pending")
      o.pending = std::stoll(value);
    else if (flag == "--seconds")
      o.seconds = std::stod(value);
    else if (flag == "--clients")
      o.clients = std::stoi(value);
    else if (flag == "--confirm-rate")
      o.confirm_rate = std::stod(value);
    else if (flag == "--step-target-us")
      o.step_target = std::chrono::microseconds(std::stoll(value));
    else if (flag == "--step-pause-us")
      o.step_pause = std::chrono::microseconds(std::stoll(value));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (o.api.empty() || o.dispatcher.empty()) {
    std::fprintf(stderr,
                 "usage: prune_bench --api <allocation-api> --dispatcher <allocation-dispatcherd> "
                 "[--allocations N] [--step-allocations M] [--pending P] [--seconds S] "
                 "[--clients C] [--confirm-rate R] [--step-target-us T] [--step-pause-us P]\n");
    return 2;
  }

  const auto run_start = Steady::now();
  testing::TempDir dir;
  const std::string db_path = dir.File("bench.db");
  const std::int64_t step_first = o.allocations + 1;
  const std::int64_t pending_first = step_first + o.step_allocations;
  {
    auto t0 = Steady::now();
    Store::Open(testing::SqliteStoreOptions(db_path, SynchronousMode::kOff));  // schema
    {
      Seeder seeder(db_path);
      seeder.Finished(1, o.allocations, 200);
      seeder.Finished(step_first, o.step_allocations, 60);
      seeder.Pending(pending_first, o.pending);
    }
    auto rows = CountRows(db_path);
    std::int64_t total = 0;
    for (const auto& [table, n] : rows) total += n;
    std::printf(
        "seeded in %.1f s: %lld final allocations 200 days old, %lld 60 days old, %lld open "
        "(a request sent to warehouse 3 each); %lld rows: %lld allocations, %lld requests, %lld "
        "events, %lld deliveries, %lld attempts\n",
        Since(t0), static_cast<long long>(o.allocations),
        static_cast<long long>(o.step_allocations), static_cast<long long>(o.pending),
        static_cast<long long>(total), static_cast<long long>(rows["allocations"]),
        static_cast<long long>(rows["allocation_requests"]),
        static_cast<long long>(rows["outbox_events"]), static_cast<long long>(rows["deliveries"]),
        static_cast<long long>(rows["delivery_attempts"]));
  }

  std::string config =
      "timezone: Europe/Stockholm\nlog_level: info\n"
      "store: {path: bench.db, synchronous: full}\n"
      "api:\n  listen: 127.0.0.1:0\n  threads: 16\n  keys:\n    - {name: bench, sha256: " +
      Sha256Hex("bench-token") +
      ", endpoints: [PUT /allocation-request]}\n"
      "retention: {finished: 90d, attempts: 90d, interval: 10m}\n"
      "warehouses:\n";
  for (int w = 1; w <= 50; ++w) {
    config += "  - {id: " + std::to_string(w) + ", name: Warehouse " + std::to_string(w) + "}\n";
  }
  const std::string config_path = dir.Write("bench.yaml", config);
  testing::Process api({o.api, "--config", config_path}, dir.path());
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
      "allocation-api pid %d on port %d (synchronous full, 16 workers); load: PUT "
      "/allocation-request confirms, %d keep-alive clients, %.0f s per figure\n"
      "pruning: Pruner defaults, a step aims at %lld us and is followed by a %lld us pause\n\n",
      api.pid(), port, o.clients, o.seconds,
      static_cast<long long>(std::chrono::microseconds(Pruner::kTargetStep).count()),
      static_cast<long long>(std::chrono::microseconds(Pruner::kPauseBetweenSteps).count()));
  std::fflush(stdout);

  // Every confirm takes the next pending request; `stop` ends a figure early (its prune ended).
  // With --confirm-rate each client sends on its own schedule (its share of the rate; a late
  // answer delays the client's next sends, and latencies are those of the calls alone).
  std::atomic<std::int64_t> next_pending{0};
  std::atomic<bool> stop{false};
  std::vector<Steady::time_point> due(static_cast<std::size_t>(o.clients));
  Steady::time_point figure_end;
  const auto interval = std::chrono::duration_cast<Steady::duration>(
      std::chrono::duration<double>(o.confirm_rate > 0 ? o.clients / o.confirm_rate : 0));
  auto confirm = [&](int client, std::mt19937&) -> LoadRequest {
    if (o.confirm_rate > 0) {
      Steady::time_point& at = due[static_cast<std::size_t>(client)];
      if (at >= figure_end) return {"", "", ""};
      while (Steady::now() < at && !stop.load()) {
        std::this_thread::sleep_until(std::min(at, Steady::now() + std::chrono::milliseconds(5)));
      }
      at += interval;
    }
    if (stop.load()) return {"", "", ""};
    const std::int64_t k = next_pending++;
    if (k >= o.pending) return {"", "", ""};
    return {"PUT", "/allocation-request",
            R"({"id":)" + std::to_string(pending_first + k) + R"(,"status":"confirmed"})"};
  };
  auto load = [&] {
    stop = false;
    // Clients start spread over one interval.
    figure_end = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                     std::chrono::duration<double>(o.seconds));
    for (std::size_t c = 0; c < due.size(); ++c) {
      due[c] = Steady::now() + interval * static_cast<int>(c) / o.clients;
    }
    LoadResult r = RunLoad(port, o.clients, o.seconds, confirm, R"("success":true)");
    if (next_pending.load() >= o.pending) {
      std::printf("  WARNING: the confirm load ran out of pending requests (--pending)\n");
    }
    return r;
  };

  // 1. Without pruning, after a second of warm-up (the first writes on the fresh file are
  // slower: the page cache fills, the first checkpoint).
  {
    const double seconds = o.seconds;
    o.seconds = std::min(1.0, seconds);
    load();
    o.seconds = seconds;
  }
  LoadResult without1 = load();
  Row("confirms, no prune", without1);

  // 2. While `allocation-dispatcherd prune` runs.
  LoadResult with_cli;
  PruneCounts cli_counts;
  double cli_seconds = 0, window_rate = 0, after_rate = 0;
  int cli_code = -1;
  {
    const std::int64_t requests0 = RequestsLeft(db_path);
    std::atomic<bool> done{false};
    std::optional<int> code;
    auto t0 = Steady::now();
    testing::Process prune({o.dispatcher, "--config", config_path, "prune"}, dir.path());
    std::thread waiter([&] {
      code = prune.Wait(std::chrono::hours(1));
      cli_seconds = Since(t0);
      done = true;
      stop = true;
    });
    with_cli = load();
    const double window = Since(t0);
    const std::int64_t requests1 = RequestsLeft(db_path);
    const bool ended_in_window = done.load();
    waiter.join();
    cli_code = code.value_or(-1);
    Row("confirms, `prune` command running", with_cli);
    const std::string out = prune.Stdout();
    std::istringstream lines(out);
    std::string kind;
    std::int64_t n = 0;
    while (lines >> kind >> n) {
      if (kind == "allocations") cli_counts.allocations = n;
      if (kind == "requests") cli_counts.requests = n;
      if (kind == "events") cli_counts.events = n;
      if (kind == "deliveries") cli_counts.deliveries = n;
      if (kind == "attempts") cli_counts.attempts = n;
    }
    if (cli_code != 0) {
      std::printf("  `prune` exit status %d: %s%s\n", cli_code, out.c_str(),
                  prune.Stderr().c_str());
    }
    std::printf("  `allocation-dispatcherd --config F prune`, exit status %d:\n", cli_code);
    PrintCounts(cli_counts, cli_seconds);
    // Rows per request of the whole pass, to turn requests deleted into rows.
    const double per_request =
        cli_counts.requests > 0
            ? static_cast<double>(cli_counts.Total()) / static_cast<double>(cli_counts.requests)
            : 0;
    window_rate = static_cast<double>(requests0 - requests1) * per_request / window;
    const std::int64_t requests2 = RequestsLeft(db_path);
    if (!ended_in_window && cli_seconds > window) {
      after_rate =
          static_cast<double>(requests1 - requests2) * per_request / (cli_seconds - window);
    }
    std::printf(
        "  during the confirm figure (%.1f s%s): %lld requests deleted, ~%.0f rows/s (at the "
        "pass's %.2f rows per request)\n",
        window, ended_in_window ? ", the prune ended in it" : "",
        static_cast<long long>(requests0 - requests1), window_rate, per_request);
    if (!ended_in_window) {
      std::printf("  after it, alone (%.1f s): %lld requests deleted, ~%.0f rows/s\n",
                  cli_seconds - window, static_cast<long long>(requests1 - requests2), after_rate);
    }
    std::fflush(stdout);
  }

  // 3. Without pruning again (drift).
  LoadResult without2 = load();
  Row("confirms, no prune (again)", without2);

  // 4. An in-process pass over the 60-day cohort, each step timed: the Pruner's loop
  // (daemon/pruner.cpp) with its start sizes, adaptation and pause, on the same database.
  LoadResult with_pass;
  struct Step {
    double ms;
    bool in_figure;
    bool checkpoint;  // a checkpoint ran in it
    int allocations, attempts;
    std::int64_t rows;
  };
  std::vector<Step> steps;
  PruneCounts pass_counts;
  double pass_seconds = 0;
  {
    auto store = Store::Open(testing::SqliteStoreOptions(db_path, SynchronousMode::kFull,
                                                         std::chrono::milliseconds(5000),
                                                         /*create_and_migrate=*/false));
    std::atomic<bool> done{false}, figure_over{false};
    std::string error;
    auto t0 = Steady::now();
    std::thread pass([&] {
      const std::int64_t now = NowUs();
      RetentionCutoffs cutoffs;
      cutoffs.finished = TimePoint(Micros(now - 30 * kDayUs));
      cutoffs.attempts = TimePoint(Micros(now - 30 * kDayUs));
      PruneCursor cursor;
      int max_allocations = Pruner::kStartAllocations, max_attempts = Pruner::kStartAttempts;
      const int shm = open((db_path + "-shm").c_str(), O_RDONLY);
      while (!cursor.done()) {
        if (!steps.empty()) std::this_thread::sleep_for(o.step_pause);
        const bool in_figure = !figure_over.load();
        const std::int64_t backfill0 = WalBackfill(shm);
        const auto start = Steady::now();
        auto step = store->PruneStep(cutoffs, cursor, max_allocations, max_attempts, false);
        const auto took = Steady::now() - start;
        const std::int64_t backfill1 = WalBackfill(shm);
        if (!step) {
          error = step.error().what();
          break;
        }
        pass_counts.Add(*step);
        steps.push_back({std::chrono::duration<double, std::milli>(took).count(), in_figure,
                         backfill1 > 0 && backfill1 != backfill0, max_allocations, max_attempts,
                         step->Total()});
        max_allocations = Adapt(max_allocations, took, o.step_target, Pruner::kMinAllocations,
                                Pruner::kMaxAllocations);
        max_attempts =
            Adapt(max_attempts, took, o.step_target, Pruner::kMinAttempts, Pruner::kMaxAttempts);
      }
      if (shm >= 0) close(shm);
      pass_seconds = Since(t0);
      done = true;
      stop = true;
    });
    with_pass = load();
    figure_over = true;
    pass.join();
    Row("confirms, timed in-process pass running", with_pass);
    if (!error.empty()) std::printf("  pass error: %s\n", error.c_str());
    std::printf(
        "  in-process pass (Store::PruneStep, cutoffs 30 days; steps aim at %lld us, %lld us "
        "pause), %zu steps:\n",
        static_cast<long long>(o.step_target.count()), static_cast<long long>(o.step_pause.count()),
        steps.size());
    PrintCounts(pass_counts, pass_seconds);
  }

  // Summary.
  // The rise is taken against the better of the two figures without pruning: a stall of the VM
  // in one of them must not hide a rise.
  const double p99_without = std::min(without1.Percentile(0.99), without2.Percentile(0.99));
  const double p50_without = std::min(without1.Percentile(0.5), without2.Percentile(0.5));
  std::printf("\nsummary\n");
  std::printf(
      "  `prune` command: %.0f rows/s overall (%lld rows in %.1f s, exit status %d); ~%.0f rows/s "
      "beside the confirms, ~%.0f rows/s alone after them\n",
      static_cast<double>(cli_counts.Total()) / cli_seconds,
      static_cast<long long>(cli_counts.Total()), cli_seconds, cli_code, window_rate, after_rate);
  std::printf("  confirm p50 / p99 without pruning: %.2f / %.2f ms and %.2f / %.2f ms\n",
              without1.Percentile(0.5), without1.Percentile(0.99), without2.Percentile(0.5),
              without2.Percentile(0.99));
  std::printf("  confirm p50 / p99 with the `prune` command: %.2f / %.2f ms\n",
              with_cli.Percentile(0.5), with_cli.Percentile(0.99));
  std::printf("  confirm p50 / p99 with the timed pass: %.2f / %.2f ms\n",
              with_pass.Percentile(0.5), with_pass.Percentile(0.99));
  for (const auto& [what, r] :
       {std::pair<const char*, const LoadResult*>{"`prune` command", &with_cli},
        {"timed pass", &with_pass}}) {
    const double rise = r->Percentile(0.99) - p99_without;
    if (r->count == 0) {
      std::printf("  p99 rise with the %s: no confirms (raise --pending)\n", what);
      continue;
    }
    std::printf(
        "  p99 rise with the %s: %+.2f ms (p50 %+.2f ms) against the better without: %s "
        "the 10 ms budget\n",
        what, rise, r->Percentile(0.5) - p50_without, rise <= 10 ? "within" : "OVER");
  }
  // A step's time is Store::PruneStep's: the wait for the write lock (SQLite's busy handler,
  // while the API writes) and then the transaction. Alone, no other process writes, so a step's
  // time is its transaction's: how long it holds API writes back.
  std::vector<double> alone_ms, figure_ms, alone_no_checkpoint_ms;
  int largest_allocations = 0, largest_attempts = 0, figure_allocations = 0;
  int checkpoints = 0, over_limit = 0, over_20 = 0;
  for (const Step& s : steps) {
    (s.in_figure ? figure_ms : alone_ms).push_back(s.ms);
    if (!s.in_figure) {
      if (!s.checkpoint) alone_no_checkpoint_ms.push_back(s.ms);
      checkpoints += s.checkpoint;
      over_limit += s.ms > 50;
      over_20 += s.ms > 20;
    }
    largest_allocations = std::max(largest_allocations, s.allocations);
    largest_attempts = std::max(largest_attempts, s.attempts);
    if (s.in_figure) figure_allocations = s.allocations;
  }
  std::printf(
      "  prune step, alone (%zu steps; the transaction itself): p50 %.2f ms, p99 %.2f ms, max "
      "%.2f ms (limit 50 ms: %s)\n",
      alone_ms.size(), Percentile(alone_ms, 0.5), Percentile(alone_ms, 0.99),
      Percentile(alone_ms, 1.0), Percentile(alone_ms, 1.0) <= 50 ? "met" : "NOT met");
  std::printf(
      "    %d of them over 20 ms, %d over 50 ms; %d ran a checkpoint of the log after their "
      "commit; without those: p99 %.2f ms, max %.2f ms\n",
      over_20, over_limit, checkpoints, Percentile(alone_no_checkpoint_ms, 0.99),
      Percentile(alone_no_checkpoint_ms, 1.0));
  for (const Step& s : steps) {
    if (!s.in_figure && s.ms > 50) {
      std::printf("    a step of %.1f ms: batch %d allocations / %d attempts, %lld rows%s\n", s.ms,
                  s.allocations, s.attempts, static_cast<long long>(s.rows),
                  s.checkpoint ? ", checkpoint" : "");
    }
  }
  std::printf(
      "  prune step, beside the confirms (%zu steps; the wait for the write lock and the "
      "transaction): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
      figure_ms.size(), Percentile(figure_ms, 0.5), Percentile(figure_ms, 0.99),
      Percentile(figure_ms, 1.0));
  std::printf(
      "  batch sizes: up to %d allocations and %d attempts a step; %d allocations in the last "
      "step beside the confirms\n",
      largest_allocations, largest_attempts, figure_allocations);

  api.Signal(SIGTERM);
  auto code = api.Wait(std::chrono::seconds(20));
  std::printf("allocation-api exit status after SIGTERM: %d; whole run %.0f s\n", code.value_or(-1),
              Since(run_start));
  return 0;
}
