// round_bench: the dispatcher's database work per event, without HTTP. Drives Store's
// RecordAndTake the way the dispatcher's round thread does when every call succeeds: each round
// records the previous round's deliveries as succeeded (storing each with its attempt, marking
// its events, moving its requests) and
// forms the next ones from the outbox, `--per-round` per warehouse, one event per delivery.
// Beside it, in the same process on the same disk: a bare outcome log (one row per event, one
// commit per round), the least a durable record of each call can cost.
//
// Usage: round_bench [--events N] [--warehouses W] [--per-round K] [--synchronous full|normal]
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "allocation_relay/render.h"
#include "allocation_relay/store.h"
#include "allocation_relay/time_zone.h"
#include "support/outbox_seed.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;

namespace {

struct Figures {
  double seconds = 0;
  long events = 0;
  int rounds = 0;
  long written = 0;  // bytes this process handed to write calls meanwhile (WAL + checkpoints)
};

// /proc/self/io's wchar: bytes written by this process so far.
long BytesWritten() {
  std::ifstream io("/proc/self/io");
  std::string key;
  long value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") return value;
  }
  return 0;
}

Figures DrainByRounds(const std::string& path, int warehouses, int per_round,
                      SynchronousMode sync) {
  auto store = Store::Open(testing::SqliteStoreOptions(path, sync));
  TimeZone zone = TimeZone::Find("Europe/Stockholm").value_or(TimeZone::Utc());
  auto render = [&](std::span<const OutboxEvent> events,
                    std::span<const AllocationRequest> requests,
                    std::span<const CheckEventSubject> checks) {
    return RenderWebhookDocument(events, requests, checks, zone);
  };
  std::vector<Store::AttemptRecord> records;
  Figures f;
  const long written_before = BytesWritten();
  const auto start = Steady::now();
  for (;;) {
    const TimePoint now = SystemClock().Now();
    std::vector<Store::DeliveryWant> wants;
    for (int w = 1; w <= warehouses; ++w) {
      wants.push_back({w, per_round, 1, true, now + std::chrono::seconds(11), {}});
    }
    auto taken = store->RecordAndTake(records, {}, wants, now, render);
    if (!taken) {
      std::fprintf(stderr, "round failed: %s\n", taken.error().what());
      std::exit(1);
    }
    ++f.rounds;
    f.events += static_cast<long>(records.size());
    records.clear();
    for (Store::DeliveryTake& take : *taken) {
      for (Delivery& d : take.claimed) {
        Store::AttemptRecord r;
        r.attempt.delivery_id = d.id;
        r.attempt.attempt = 1;
        r.attempt.started_at = now;
        r.attempt.duration = std::chrono::microseconds(800);
        r.attempt.http_status = 200;
        r.outcome = AttemptOutcome::kSucceeded;
        r.request_ids = d.request_ids;
        r.formed = std::move(d);  // new: stored with this record
        records.push_back(std::move(r));
      }
    }
    if (records.empty()) break;
  }
  f.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  f.written = BytesWritten() - written_before;
  return f;
}

// The same number of events and commits, each event one row in a bare log table.
Figures BareLog(const std::string& path, long events, int rounds, const char* sync_pragma) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  sqlite3_exec(db, sync_pragma, nullptr, nullptr, nullptr);
  sqlite3_exec(db,
               "CREATE TABLE log (id INTEGER PRIMARY KEY, event_id INTEGER, http_status INTEGER, "
               "at INTEGER)",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO log (event_id, http_status, at) VALUES (?, 200, ?)", -1,
                     &insert, nullptr);
  const long per_round = (events + rounds - 1) / rounds;
  Figures f;
  const long written_before = BytesWritten();
  const auto start = Steady::now();
  for (long done = 0; done < events;) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (long i = 0; i < per_round && done < events; ++i, ++done) {
      sqlite3_bind_int64(insert, 1, done);
      sqlite3_bind_int64(insert, 2, done * 1000);
      sqlite3_step(insert);
      sqlite3_reset(insert);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    ++f.rounds;
  }
  f.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  f.written = BytesWritten() - written_before;
  f.events = events;
  sqlite3_finalize(insert);
  sqlite3_close(db);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int events = 100000, warehouses = 50, per_round = 12;
  std::string sync = "full";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--events")
      events = std::stoi(argv[i + 1]);
    else if (flag == "--warehouses")
      warehouses = std::stoi(argv[i + 1]);
    else if (flag == "--per-round")
      per_round = std::stoi(argv[i + 1]);
    else if (flag == "--synchronous")
      sync = argv[i + 1];
  }
  const SynchronousMode mode = sync == "normal" ? SynchronousMode::kNormal : SynchronousMode::kFull;
  testing::TempDir dir;
  testing::SeedOutbox(dir.File("rounds.db"), events, warehouses);
  Figures rounds = DrainByRounds(dir.File("rounds.db"), warehouses, per_round, mode);
  Figures bare = BareLog(
      dir.File("bare.db"), rounds.events, rounds.rounds,
      mode == SynchronousMode::kNormal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
  auto us = [](const Figures& f) { return 1e6 * f.seconds / static_cast<double>(f.events); };
  auto kib = [](const Figures& f) { return f.written / 1024.0 / static_cast<double>(f.events); };
  std::printf(
      "%ld events, %d warehouses, %d per warehouse per round (%d rounds), synchronous %s\n"
      "dispatcher rounds (form, record, move requests): %6.1f us/event  %8.0f events/s  "
      "%5.2f KiB written/event\n"
      "baseline: bare outcome log, same commits:        %6.1f us/event  %8.0f events/s  "
      "%5.2f KiB written/event\n"
      "rounds cost %.1fx the bare log\n",
      rounds.events, warehouses, per_round, rounds.rounds, sync.c_str(), us(rounds),
      rounds.events / rounds.seconds, kib(rounds), us(bare), bare.events / bare.seconds, kib(bare),
      us(rounds) / us(bare));
  return 0;
}
