// connections_bench: the real allocation-api with many open connections (SPEC section 8), each
// figure beside its baseline measured in the same run:
//   - GET /allocation-requests?warehouse=W (default page: pending) with 16 keep-alive clients,
//     alone, then beside 500 idle keep-alive connections (as a ratio to the figure alone);
//   - peak RSS (VmHWM) of a fresh API, with no connection and with 512 idle ones;
//   - the time from SIGTERM to exit, with no connection open and with 512 idle ones.
// The database is seeded through the API (POST /allocations), a few hundred allocations over 10
// warehouses. No pass/fail: it prints a table.
//
// Usage: connections_bench --api <allocation-api binary> [--seconds S] [--clients C]
//                          [--idle N] [--rss-idle N] [--allocations N]
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "allocation_relay/signature.h"
#include "support/http_load.h"
#include "support/process.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;
using testing::LoadRequest;
using testing::LoadResult;
using testing::RunLoad;

namespace {

constexpr int kWarehouses = 10;

struct Options {
  std::string api;
  double seconds = 3;
  int clients = 16;
  int idle = 500;
  int rss_idle = 512;
  int allocations = 400;
};

// `clients` keep-alive clients each GET the default page of a random warehouse for `seconds`.
LoadResult LoadDefaultPages(int port, int clients, double seconds) {
  return RunLoad(
      port, clients, seconds,
      [](int, std::mt19937& rng) -> LoadRequest {
        return {"GET", "/allocation-requests?warehouse=" + std::to_string(1 + rng() % kWarehouses),
                ""};
      },
      "", std::chrono::seconds(10));
}

// A /proc/<pid>/status field in KiB (VmRSS, VmHWM); -1 if unknown.
long StatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

double MiB(long kb) { return static_cast<double>(kb) / 1024; }

// Starts allocation-api on dir's bench.yaml; returns its port (0 if it did not start).
int StartApi(std::unique_ptr<testing::Process>& api, const std::string& binary,
             const testing::TempDir& dir) {
  api = std::make_unique<testing::Process>(
      std::vector<std::string>{binary, "--config", dir.File("bench.yaml")}, dir.path());
  int port = 0;
  std::regex listening(R"(api listening on 127\.0\.0\.1:(\d+))");
  std::smatch match;
  testing::WaitFor(
      [&] {
        std::string err = api->Stderr();
        if (!std::regex_search(err, match, listening)) return false;
        port = std::stoi(match[1]);
        return err.find("api ready") != std::string::npos;
      },
      std::chrono::seconds(30));
  if (port == 0) std::fprintf(stderr, "allocation-api did not start: %s\n", api->Stderr().c_str());
  return port;
}

struct Exit {
  int status = -1;
  double seconds = 0;
};

Exit Terminate(testing::Process& api) {
  auto t0 = Steady::now();
  api.Signal(SIGTERM);
  std::optional<int> status = api.Wait(std::chrono::seconds(30));
  return {status.value_or(-1), std::chrono::duration<double>(Steady::now() - t0).count()};
}

void LoadRow(const std::string& what, const LoadResult& r) {
  std::printf("%-54s %10.0f pages/s  p50 %6.2f ms  p99 %6.2f ms  (%lld ok, %lld errors, %zu B)\n",
              what.c_str(), r.rate(), r.Percentile(0.5), r.Percentile(0.99),
              static_cast<long long>(r.count), static_cast<long long>(r.errors), r.bytes);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--api")
      o.api = value;
    else if (flag == "--seconds")
      o.seconds = std::stod(value);
    else if (flag == "--clients")
      o.clients = std::stoi(value);
    else if (flag == "--idle")
      o.idle = std::stoi(value);
    else if (flag == "--rss-idle")
      o.rss_idle = std::stoi(value);
    else if (flag == "--allocations")
      o.allocations = std::stoi(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (o.api.empty()) {
    std::fprintf(stderr,
                 "usage: connections_bench --api <allocation-api> [--seconds S] [--clients C] "
                 "[--idle N] [--rss-idle N] [--allocations N]\n");
    return 2;
  }
  testing::RaiseOpenFileLimit();
  testing::TempDir dir;
  // idle_timeout well past the run, so the idle connections stay open throughout it.
  std::string config =
      "timezone: Europe/Stockholm\nlog_level: info\n"
      "store: {path: bench.db, synchronous: normal}\n"
      "api:\n  listen: 127.0.0.1:0\n  idle_timeout: 120s\n"
      "  keys:\n    - {name: bench, sha256: " +
      Sha256Hex("bench-token") +
      ", endpoints: [GET /allocation-requests, POST /allocations]}\n"
      "warehouses:\n";
  for (int w = 1; w <= kWarehouses; ++w) {
    config += "  - {id: " + std::to_string(w) + ", name: Warehouse " + std::to_string(w) + "}\n";
  }
  dir.Write("bench.yaml", config);

  std::unique_ptr<testing::Process> api;
  int port = StartApi(api, o.api, dir);
  if (port == 0) return 1;

  // Seed through the API: allocation n asks warehouse n % 10 + 1 (one pending request each).
  {
    httplib::Client c("127.0.0.1", port);
    c.set_keep_alive(true);
    httplib::Headers headers{{"API-Authorization", "bench-token"}};
    for (int n = 1; n <= o.allocations; ++n) {
      std::string body = R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" +
                         std::to_string(n) +
                         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],)"
                         R"("warehouses":[[)" +
                         std::to_string(n % kWarehouses + 1) + "]]}";
      auto r = c.Post("/allocations", headers, body, "application/json");
      if (!r || r->status != 200 || r->body.find(R"("status":"ok")") == std::string::npos) {
        std::fprintf(stderr, "seeding failed at allocation %d: %s\n", n,
                     r ? r->body.c_str() : httplib::to_string(r.error()).c_str());
        return 1;
      }
    }
  }
  std::printf(
      "allocation-api pid %d on port %d; %d allocations over %d warehouses (%d pending "
      "requests each); load: %d keep-alive clients, %.1f s per figure (two rounds)\n\n",
      api->pid(), port, o.allocations, kWarehouses, o.allocations / kWarehouses, o.clients,
      o.seconds);

  // 1. Throughput alone, then beside idle keep-alive connections: after a warm-up, in two
  // alternating rounds (alone, beside, alone, beside) so a drift of the machine's load (other
  // work on a shared host) weighs on both figures alike.
  LoadDefaultPages(port, o.clients, 1);
  LoadResult alone, beside;
  int answered = o.idle, still_open = o.idle;
  for (int round = 0; round < 2; ++round) {
    alone.Add(LoadDefaultPages(port, o.clients, o.seconds / 2));
    int a = 0;
    auto idle = testing::OpenAnsweredConnections(port, o.idle,
                                                 testing::HttpRequestText("GET", "/health"), a);
    beside.Add(LoadDefaultPages(port, o.clients, o.seconds / 2));
    answered = std::min(answered, a);
    still_open = std::min(still_open,
                          testing::ExchangeOnAll(idle, testing::HttpRequestText("GET", "/health")));
    idle.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server sees the closes
  }
  LoadRow("GET ?warehouse=W (default page), no idle connections", alone);
  LoadRow("GET ?warehouse=W, beside " + std::to_string(o.idle) + " idle connections", beside);
  std::printf("  ratio with / without idle connections: %.2f\n",
              alone.rate() > 0 ? beside.rate() / alone.rate() : 0.0);
  std::printf(
      "  idle connections (each round): at least %d of %d answered their first request, at "
      "least %d still open after the load\n\n",
      answered, o.idle, still_open);
  long loaded_hwm = StatusKb(api->pid(), "VmHWM");
  Exit plain_exit = Terminate(*api);

  // 2. A fresh process: peak RSS and the SIGTERM exit with many idle connections.
  port = StartApi(api, o.api, dir);
  if (port == 0) return 1;
  {
    httplib::Client c("127.0.0.1", port);
    c.Get("/allocation-requests?warehouse=1", {{"API-Authorization", "bench-token"}});
  }
  long fresh_hwm = StatusKb(api->pid(), "VmHWM");
  auto many = testing::OpenAnsweredConnections(
      port, o.rss_idle, testing::HttpRequestText("GET", "/health"), answered);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  long many_hwm = StatusKb(api->pid(), "VmHWM");
  long many_rss = StatusKb(api->pid(), "VmRSS");
  Exit many_exit = Terminate(*api);

  std::printf("%-54s %8.1f MiB\n", "peak RSS (VmHWM), first process after the loads",
              MiB(loaded_hwm));
  std::printf("%-54s %8.1f MiB\n", "peak RSS, fresh process, one request", MiB(fresh_hwm));
  std::printf(
      "%-54s %8.1f MiB  (VmRSS %.1f MiB; %d of %d answered; target < 64 MiB)\n",
      ("peak RSS, fresh process, " + std::to_string(o.rss_idle) + " idle connections").c_str(),
      MiB(many_hwm), MiB(many_rss), answered, o.rss_idle);
  std::printf("%-54s %8.3f s    (exit status %d)\n", "SIGTERM to exit, no connection open",
              plain_exit.seconds, plain_exit.status);
  std::printf("%-54s %8.3f s    (exit status %d; target < 2 s)\n",
              ("SIGTERM to exit, " + std::to_string(o.rss_idle) + " idle connections open").c_str(),
              many_exit.seconds, many_exit.status);
  return 0;
}
