// dispatch_bench: how fast allocation-dispatcherd drains a pre-filled outbox to a fast receiver
// on loopback, beside a plain libcurl-multi loop posting the same bodies to the same receiver
// with the same concurrency, in the same run; the dispatcher's peak RSS; and the latency from the
// API's commit to receipt at a steady rate, with the real API and dispatcher.
//
// Usage: dispatch_bench --dispatcher <allocation-dispatcherd> [--events N] [--warehouses W]
//                       [--rate R] [--latency-seconds S] [--send-thread-nice N]
//                       [--backend sqlite|postgresql|sqlite,postgresql] [--pg-url <admin URL>]
//
// --backend postgresql drains the same outbox from a new database on the cluster of --pg-url
// (tests/pg_cluster.sh with PG_CLUSTER_DURABLE=1), with one dispatcher and then with two on the
// same database (they divide the warehouses between them with leases); each drain prints the
// CPU per event of the dispatchers and of the cluster, and with two the calls each one made.
// With several backends, each one's drains sit between two runs of the plain loop.
//
// --send-thread-nice sets dispatcher.send_thread_nice (without it: the product's default, -5,
// which needs root or CAP_SYS_NICE here; the dispatcher logs it when it cannot apply it).
//
// The receiver is a one-thread epoll server (tests/support/epoll_receiver.h), so the figures are
// the sender's. The warehouses use the standard-webhooks format (the JSON document, sent raw).
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/curl_loop.h"
#include "support/dispatcher_status.h"
#include "support/epoll_receiver.h"
#include "support/outbox_seed.h"
#include "support/pg_bench.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;

namespace {

class CountingReceiver {
 public:
  CountingReceiver()
      : server_([this](std::string_view, std::string_view body) {
          std::size_t n = 0;
          for (std::size_t p = body.find("\"allocation_request\""); p != std::string::npos;
               p = body.find("\"allocation_request\"", p + 1)) {
            ++n;
          }
          events_ += n;
          ++calls_;
        }) {}
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(server_.port()) + "/hook"; }
  std::size_t events() const { return events_; }
  std::size_t calls() const { return calls_; }
  void Reset() {
    events_ = 0;
    calls_ = 0;
  }

 private:
  std::atomic<std::size_t> events_{0}, calls_{0};
  testing::EpollReceiver server_;  // last: stops before the counters go
};

struct Drain {
  double seconds = 0;
  std::size_t calls = 0;
  std::vector<long> rss_kb;          // peak RSS of each dispatcher
  std::vector<long long> succeeded;  // succeeded calls of each (its /metrics), -1: unknown
  double dispatcher_cpu = 0;         // CPU seconds of the dispatchers (all together)
  double postgres_cpu = -1;          // CPU seconds of the PostgreSQL cluster; -1: SQLite
};

// Extra keys of the dispatcher's config section (e.g. ", send_thread_nice: 0").
std::string g_dispatcher_keys;

// Drains a pre-filled outbox with `dispatchers` processes on one database: SQLite (a file in
// `dir`) when `pg_admin_url` is empty, else a new database on that PostgreSQL cluster.
Drain RunDispatcher(const std::string& binary, testing::TempDir& dir, CountingReceiver& receiver,
                    int events, int warehouses, int per_call, const std::string& pg_admin_url = "",
                    int dispatchers = 1) {
  receiver.Reset();
  static int run = 0;
  const std::string name = "drain" + std::to_string(++run);
  std::unique_ptr<testing::PgBenchDatabase> pg;
  std::string store_yaml;
  if (pg_admin_url.empty()) {
    testing::SeedOutbox(dir.File(name + ".db"), events, warehouses);
    store_yaml = "{path: " + name + ".db, synchronous: full}";
  } else {
    pg = std::make_unique<testing::PgBenchDatabase>(pg_admin_url, "dispatch_bench");
    testing::SeedOutboxPg(pg->Options(4), events, warehouses);
    store_yaml = testing::StoreYaml(pg->Options(4));
  }
  // log_level info: the status port's address is logged (nothing is logged per delivery).
  std::string config = "timezone: Europe/Stockholm\nlog_level: info\nstore: " + store_yaml +
                       "\ndispatcher: {listen: '127.0.0.1:0', "
                       "concurrency: 64, allow_private_networks: true" +
                       g_dispatcher_keys + "}\nwarehouses:\n";
  for (int w = 1; w <= warehouses; ++w) {
    config += "  - {id: " + std::to_string(w) + ", name: W" + std::to_string(w) +
              ", webhook: {url: '" + receiver.Url() +
              "', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', signature: "
              "standard-webhooks, max_events_per_call: " +
              std::to_string(per_call) + "}}\n";
  }
  std::string config_path = dir.Write(name + ".yaml", config);
  const double postgres0 = pg ? testing::PostgresServerCpuSeconds(pg_admin_url) : 0;
  auto start = Steady::now();
  std::vector<std::unique_ptr<testing::Process>> processes;
  for (int i = 0; i < dispatchers; ++i) {
    processes.push_back(std::make_unique<testing::Process>(
        std::vector<std::string>{binary, "--config", config_path}, dir.path()));
  }
  testing::WaitFor([&] { return receiver.events() >= static_cast<std::size_t>(events); },
                   std::chrono::minutes(10));
  Drain d;
  d.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  d.calls = receiver.calls();
  for (auto& p : processes) {
    d.rss_kb.push_back(testing::PeakRssKb(p->pid()));
    d.dispatcher_cpu += testing::ProcessCpuSeconds(std::to_string(p->pid()));
  }
  if (pg) d.postgres_cpu = testing::PostgresServerCpuSeconds(pg_admin_url) - postgres0;
  // Each one's share: its succeeded calls, once all of them are recorded (a round after the
  // receiver got them).
  testing::WaitFor(
      [&] {
        d.succeeded.clear();
        long long sum = 0;
        for (auto& p : processes) {
          d.succeeded.push_back(testing::SucceededCalls(*p));
          sum += std::max(0LL, d.succeeded.back());
        }
        return sum >= static_cast<long long>(d.calls);
      },
      std::chrono::seconds(3));
  for (auto& p : processes) p->Signal(SIGTERM);
  for (auto& p : processes) p->Wait(std::chrono::seconds(30));
  return d;
}

// One line for a drain: events/s, calls, seconds, and each dispatcher's peak RSS (and its
// share of the calls when there are several).
void PrintDrain(const std::string& what, int events, const Drain& d) {
  std::printf("%-44s %8.0f events/s  (%zu calls, %.1f s; peak RSS", what.c_str(),
              events / d.seconds, d.calls, d.seconds);
  for (std::size_t i = 0; i < d.rss_kb.size(); ++i) {
    std::printf("%s %.1f MiB", i ? "," : "", d.rss_kb[i] / 1024.0);
  }
  if (d.rss_kb.size() > 1) {
    std::printf("; calls each");
    for (std::size_t i = 0; i < d.succeeded.size(); ++i) {
      std::printf("%s %lld", i ? "," : "", d.succeeded[i]);
    }
  }
  std::printf(")\n");
  std::printf("    cpu per event: dispatcher%s %.1f us", d.rss_kb.size() > 1 ? "s" : "",
              d.dispatcher_cpu / events * 1e6);
  if (d.postgres_cpu >= 0) std::printf(", postgres %.1f us", d.postgres_cpu / events * 1e6);
  std::printf("\n");
  std::fflush(stdout);
}

// Latency from the API's commit to receipt: the real API and dispatcher on one database,
// allocations posted at `rate` per second for `seconds`, each making one request (one `create`
// event) for warehouse 3, whose webhook is a local receiver. Measured per event from the moment
// its POST /allocations is sent (an upper bound: the commit happens inside that call) to the
// webhook's arrival, on one steady clock in this process.
void MeasureLatency(const std::string& binary, int rate, int seconds,
                    const std::optional<StoreOptions>& store = std::nullopt) {
  using Micro = std::chrono::microseconds;
  std::mutex mu;
  std::map<long, Steady::time_point> arrived;  // order number -> webhook arrival
  testing::EpollReceiver receiver([&](std::string_view, std::string_view body) {
    auto now = Steady::now();
    constexpr std::string_view kKey = "\"number\":";
    std::lock_guard lock(mu);
    for (std::size_t p = body.find(kKey); p != std::string_view::npos; p = body.find(kKey, p + 1)) {
      arrived.emplace(std::strtol(body.data() + p + kKey.size(), nullptr, 10), now);
    }
  });
  testing::ApiProcessOptions options;
  options.webhooks[3] = "{url: 'http://127.0.0.1:" + std::to_string(receiver.port()) +
                        "/hook', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', "
                        "signature: standard-webhooks}";
  options.dispatcher = "{listen: '127.0.0.1:0', allow_private_networks: true}";
  options.store = store;
  testing::ApiProcess api(options);
  testing::Process dispatcher({binary, "--config", api.ConfigPath()}, api.dir().path());
  testing::WaitFor(
      [&] { return dispatcher.Stderr().find("dispatcher ready") != std::string::npos; },
      std::chrono::seconds(10));

  const int total = rate * seconds;
  const int threads = 4;  // each on its own keep-alive connection
  std::vector<Steady::time_point> sent(static_cast<std::size_t>(total) + 1);
  std::vector<Micro> answered(static_cast<std::size_t>(total) + 1);
  std::atomic<int> failures{0};
  auto start = Steady::now() + std::chrono::milliseconds(100);
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", api.port());
      client.set_tcp_nodelay(true);
      httplib::Headers headers{{"API-Authorization", "oms-token"}};
      for (int n = 1 + t; n <= total; n += threads) {
        std::this_thread::sleep_until(start + Micro(1'000'000LL * (n - 1) / rate));
        std::string body = R"({"order":{"id":"ab12","number":)" + std::to_string(n) +
                           R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],)"
                           R"("warehouses":[[3]]})";
        auto before = Steady::now();
        auto r = client.Post("/allocations", headers, body, "application/json");
        sent[static_cast<std::size_t>(n)] = before;
        answered[static_cast<std::size_t>(n)] =
            std::chrono::duration_cast<Micro>(Steady::now() - before);
        if (!r || r->status != 200) ++failures;
      }
    });
  }
  for (std::thread& c : clients) c.join();
  testing::WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return arrived.size() >= static_cast<std::size_t>(total - failures);
      },
      std::chrono::seconds(30));
  dispatcher.Signal(SIGTERM);
  dispatcher.Wait(std::chrono::seconds(30));

  std::vector<double> latency, answer;
  {
    std::lock_guard lock(mu);
    for (int n = 1; n <= total; ++n) {
      auto it = arrived.find(n);
      if (it == arrived.end()) continue;
      latency.push_back(
          std::chrono::duration<double, std::milli>(it->second - sent[static_cast<std::size_t>(n)])
              .count());
      answer.push_back(answered[static_cast<std::size_t>(n)].count() / 1000.0);
    }
  }
  auto pct = [](std::vector<double> v, double p) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf(
      "%slatency at %d events/s for %d s (%zu of %d received, %d POSTs failed): POST sent -> "
      "webhook received p50 %.1f ms, p99 %.1f ms, max %.1f ms (targets 20 / 100 ms); the POST's "
      "own answer time p50 %.1f ms, p99 %.1f ms\n",
      store && store->backend == StoreBackendKind::kPostgresql ? "[postgresql] " : "", rate,
      seconds, latency.size(), total, failures.load(), pct(latency, 0.5), pct(latency, 0.99),
      pct(latency, 1.0), pct(answer, 0.5), pct(answer, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  std::string binary, pg_url;
  std::vector<std::string> backends = {"sqlite"};
  int events = 200000, warehouses = 50, rate = 500, latency_seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dispatcher")
      binary = argv[i + 1];
    else if (flag == "--events")
      events = std::stoi(argv[i + 1]);
    else if (flag == "--warehouses")
      warehouses = std::stoi(argv[i + 1]);
    else if (flag == "--rate")
      rate = std::stoi(argv[i + 1]);
    else if (flag == "--latency-seconds")
      latency_seconds = std::stoi(argv[i + 1]);
    else if (flag == "--send-thread-nice")
      g_dispatcher_keys = ", send_thread_nice: " + std::to_string(std::stoi(argv[i + 1]));
    else if (flag == "--backend") {
      backends.clear();
      std::istringstream list(argv[i + 1]);
      for (std::string item; std::getline(list, item, ',');) backends.push_back(item);
    } else if (flag == "--pg-url")
      pg_url = argv[i + 1];
  }
  bool bad_backend = backends.empty();
  for (const std::string& b : backends) {
    if (b != "sqlite" && b != "postgresql") bad_backend = true;
    if (b == "postgresql" && pg_url.empty()) bad_backend = true;
  }
  if (binary.empty() || bad_backend) {
    std::fprintf(stderr,
                 "usage: dispatch_bench --dispatcher <allocation-dispatcherd> "
                 "[--events N] [--warehouses W] [--rate R] [--latency-seconds S (0: skip)] "
                 "[--send-thread-nice N] [--backend sqlite|postgresql|sqlite,postgresql "
                 "--pg-url <admin URL>]\n");
    return 2;
  }
  testing::TempDir dir;
  CountingReceiver receiver;
  std::printf("draining %d pre-filled events over %d warehouses to a local receiver%s\n", events,
              warehouses,
              g_dispatcher_keys.empty() ? " (send_thread_nice: default)"
                                        : (" (" + g_dispatcher_keys.substr(2) + ")").c_str());
  if (!pg_url.empty()) {
    std::printf("PostgreSQL settings: %s\n", testing::PgDurability(pg_url).c_str());
  }
  std::printf("\n");

  // The same single-event bodies (the size of one standard-webhooks event) from a plain loop,
  // before and after each backend's drains; each backend's ratio uses the faster of the two
  // measured around its drains.
  std::string body =
      R"({"events":[{"type":"allocation_request","action":"create","date":"2026-11-26 19:00:00.000000","id":1,"data":{"status":"allocated","warehouseId":1,"expirationDate":{"date":"2026-11-26 20:00:00.000000","timezone_type":3,"timezone":"Europe/Stockholm"},"order":{"id":"ab12","number":1},"lines":{"73":{"lineId":73,"quantity":5,"stockItemId":1}}}}]})";
  std::vector<std::string> bodies(static_cast<std::size_t>(events), body);
  receiver.Reset();
  double baseline_before = testing::PlainCurlLoop(receiver.Url(), bodies, warehouses);

  for (const std::string& backend : backends) {
    const bool pg = backend == "postgresql";
    const std::string admin = pg ? pg_url : "";
    const std::string prefix = backends.size() > 1 || pg ? "[" + backend + "] " : "";
    Drain batched = RunDispatcher(binary, dir, receiver, events, warehouses, 100, admin);
    PrintDrain(prefix + "batched (100 per call):", events, batched);
    Drain single = RunDispatcher(binary, dir, receiver, events, warehouses, 1, admin);
    PrintDrain(prefix + "unbatched (1 per call):", events, single);
    Drain batched2, single2;
    if (pg) {
      // Two dispatchers on the same database: they divide the warehouses with leases.
      batched2 = RunDispatcher(binary, dir, receiver, events, warehouses, 100, admin, 2);
      PrintDrain(prefix + "batched, two dispatchers:", events, batched2);
      single2 = RunDispatcher(binary, dir, receiver, events, warehouses, 1, admin, 2);
      PrintDrain(prefix + "unbatched, two dispatchers:", events, single2);
    }
    receiver.Reset();
    double baseline_after = testing::PlainCurlLoop(receiver.Url(), bodies, warehouses);
    double baseline = std::max(baseline_before, baseline_after);
    std::printf(
        "  baseline: plain libcurl multi loop, %d in flight: %8.0f events/s before, %8.0f "
        "after\n",
        warehouses, baseline_before, baseline_after);
    std::printf(
        "  %sunbatched ratio %.2f of the faster baseline (target >= %s); batched target >= "
        "20000 events/s\n",
        prefix.c_str(), (events / single.seconds) / baseline, pg ? "0.3" : "0.5");
    if (pg) {
      std::printf("  %sunbatched ratio, two dispatchers: %.2f\n", prefix.c_str(),
                  (events / single2.seconds) / baseline);
    }
    std::printf("\n");
    std::fflush(stdout);
    baseline_before = baseline_after;
  }
  if (latency_seconds > 0) {
    for (const std::string& backend : backends) {
      if (backend == "postgresql") {
        testing::PgBenchDatabase db(pg_url, "dispatch_latency");
        MeasureLatency(binary, rate, latency_seconds, db.Options(8));
      } else {
        MeasureLatency(binary, rate, latency_seconds);
      }
    }
  }
  return 0;
}
