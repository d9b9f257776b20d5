// The operator console's overview on a large database (issue: "the overview on a million
// requests answers in under 100 ms"), beside a baseline in the same process: the Order API's
// default page (GET /allocation-requests), the read every warehouse polls.
//
// The database: --requests requests over 50 warehouses (support/request_seed.h: 2 % pending,
// the newest), then three hours of webhook activity written the way the dispatcher writes it:
// one delivery per warehouse, and one attempt of each per minute for 180 minutes (through
// Store::RecordAndTake, so the activity rows are the product's own), every tenth failed.
// Both reads run in-process through ApiService::Handle (the handler, its database reads and
// its JSON; no HTTP), --calls times each, after a warm-up.
//
//   console_bench [--requests N] [--calls C] [--backend sqlite|postgresql] [--pg-url URL]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "api_service.h"
#include "support/api_request.h"
#include "support/pg_bench.h"
#include "support/request_seed.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::int64_t requests = 1'000'000;
  int calls = 200;
  std::string backend = "sqlite";
  std::string pg_url;
};

struct Figures {
  double mean_ms = 0, p50_ms = 0, p99_ms = 0;
  std::size_t bytes = 0;
};

Figures Time(ApiService& service, const std::string& target, int calls) {
  const ApiRequest request = testing::ApiCall("GET", target, "bench-token");
  Figures f;
  for (int i = 0; i < 5; ++i) {  // warm-up: connections opened, pages cached
    ApiResponse res = service.Handle(request);
    if (res.status != 200) {
      std::fprintf(stderr, "%s answered %d: %s\n", target.c_str(), res.status, res.body.c_str());
      std::exit(1);
    }
    f.bytes = res.body.size();
  }
  std::vector<double> ms;
  for (int i = 0; i < calls; ++i) {
    auto t0 = Steady::now();
    service.Handle(request);
    ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  for (double m : ms) f.mean_ms += m / static_cast<double>(ms.size());
  f.p50_ms = ms[ms.size() / 2];
  f.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  return f;
}

// Three hours of activity: one delivery per warehouse, an attempt of each every minute.
void SeedActivity(const StoreOptions& options, std::int64_t first_order, TimePoint now) {
  std::unique_ptr<Store> store = Store::Open(options);
  Config config;
  for (int w = 1; w <= 50; ++w) {
    WarehouseConfig warehouse;
    warehouse.id = w;
    warehouse.name = "Warehouse " + std::to_string(w);
    config.warehouses.push_back(warehouse);
  }
  WarehouseCatalog catalog = config.Catalog();
  for (int w = 1; w <= 50; ++w) {
    NewAllocation a{{"abc", first_order + w}, {{1, 1, 1}}, {{w}}};
    if (!store->CreateAllocation(a, now - 181min, catalog)) std::exit(1);
  }
  auto render = [](std::span<const OutboxEvent>, std::span<const AllocationRequest>,
                   std::span<const CheckEventSubject>) { return std::string("[]"); };
  std::vector<Store::DeliveryWant> wants;
  for (int w = 1; w <= 50; ++w) wants.push_back({w, 1, 100, true, now + 1h, {}, false, 0});
  auto taken = store->RecordAndTake({}, {}, wants, now - 181min, render, "bench");
  if (!taken) std::exit(1);
  std::vector<Delivery> deliveries;
  for (const Store::DeliveryTake& t : *taken) deliveries.push_back(t.claimed.at(0));
  for (int minute = 0; minute < 180; ++minute) {
    TimePoint at = now - std::chrono::minutes(180 - minute);
    std::vector<Store::AttemptRecord> records;
    for (Delivery& d : deliveries) {
      bool failed = (minute + d.warehouse_id) % 10 == 0;
      DeliveryAttempt attempt{d.id,
                              minute + 1,
                              at,
                              Micros(2000 + 300 * d.warehouse_id),
                              failed ? 500 : 200,
                              failed ? "HTTP 500" : "",
                              ""};
      Store::AttemptRecord r{attempt, AttemptOutcome::kRetry, at + 30s, d.request_ids, {}};
      if (d.id == 0) r.formed = d;
      records.push_back(std::move(r));
    }
    if (!store->RecordAndTake(records, {}, {}, at, render, "bench")) std::exit(1);
    if (minute == 0) {  // stored now: their ids and counts for the next records
      auto stored = store->ListDeliveries(DeliveryState::kPending, std::nullopt, 100);
      if (!stored || stored->size() != deliveries.size()) std::exit(1);
      deliveries = *stored;
    }
  }
}

int Run(const Options& o) {
  testing::TempDir dir;
  std::unique_ptr<testing::PgBenchDatabase> pg;
  StoreOptions options;
  std::vector<std::int64_t> pending;
  auto t0 = Steady::now();
  if (o.backend == "postgresql") {
    pg = std::make_unique<testing::PgBenchDatabase>(o.pg_url, "console_bench");
    options = pg->Options(8);
    pending = testing::PgSeed(options, o.requests);
  } else {
    options = testing::SqliteStoreOptions(dir.File("bench.db"), SynchronousMode::kNormal);
    testing::Seed(options.path, o.requests, pending);
  }
  TimePoint now = SystemClock().Now();
  SeedActivity(options, o.requests + 1, now);
  std::printf(
      "[%s] seeded %lld requests over 50 warehouses (%zu pending) and 180 minutes of "
      "activity in %.1f s\n",
      o.backend.c_str(), static_cast<long long>(o.requests), pending.size(),
      std::chrono::duration<double>(Steady::now() - t0).count());

  std::string yaml = "store: " + testing::StoreYaml(options) +
                     "\napi:\n  keys:\n    - {name: bench, sha256: " + Sha256Hex("bench-token") +
                     ", endpoints: [console, GET /allocation-requests]}\nwarehouses:\n";
  for (int w = 1; w <= 50; ++w) {
    yaml += "  - {id: " + std::to_string(w) + ", name: Warehouse " + std::to_string(w) +
            ", webhook: {url: 'https://w" + std::to_string(w) + ".example/hook', secret: s}}\n";
  }
  auto config = std::make_shared<const Config>(ParseConfig(yaml, "bench.yaml"));
  SystemClock clock;
  ApiService service(config, clock);

  Figures page = Time(service, "/allocation-requests", o.calls);
  Figures overview = Time(service, "/console/api/overview", o.calls);
  Figures page_again = Time(service, "/allocation-requests", o.calls);
  auto line = [&](const char* what, const Figures& f) {
    std::printf("[%s] %-38s mean %7.2f ms  p50 %7.2f ms  p99 %7.2f ms  (%zu bytes)\n",
                o.backend.c_str(), what, f.mean_ms, f.p50_ms, f.p99_ms, f.bytes);
  };
  line("baseline GET /allocation-requests", page);
  line("GET /console/api/overview", overview);
  line("baseline again", page_again);
  double baseline = (page.mean_ms + page_again.mean_ms) / 2;
  std::printf("[%s] overview / default page (mean): %.2f; target: overview under 100 ms: %s\n",
              o.backend.c_str(), overview.mean_ms / baseline,
              overview.p99_ms < 100 ? "met (p99)" : "NOT met (p99)");
  return 0;
}

}  // namespace
}  // namespace allocation_relay

int main(int argc, char** argv) {
  allocation_relay::Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--requests") {
      o.requests = std::stoll(value);
    } else if (flag == "--calls") {
      o.calls = std::max(1, std::stoi(value));
    } else if (flag == "--backend") {
      o.backend = value;
    } else if (flag == "--pg-url") {
      o.pg_url = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (o.backend != "sqlite" && !(o.backend == "postgresql" && !o.pg_url.empty())) {
    std::fprintf(stderr,
                 "usage: console_bench [--requests N] [--calls C] [--backend sqlite|postgresql "
                 "--pg-url URL]\n");
    return 2;
  }
  return allocation_relay::Run(o);
}
