// tls_bench: the Order API's default page (GET /allocation-requests?warehouse=W, random W) over
// HTTPS (api.tls), beside the same API over plain HTTP and beside static cpp-httplib servers
// (plain and HTTPS, same certificate, same threads, same body size) measured in the same run.
// Every figure uses the same load generator: libcurl, one easy handle per client thread,
// keep-alive (a connection and a TLS handshake per client for the whole figure).
//
// The database is seeded with --requests allocation requests (default 100,000) over 50
// warehouses, 2 % of them pending; two allocation-api processes (one plain, one HTTPS) read it.
// The certificate is a self-signed P-256 one made with the openssl command line.
//
// Then the cost of idle connections: peak RSS (VmHWM) of a fresh HTTPS API and of a fresh plain
// one, each after one request and after --idle N more keep-alive connections (default 512) that
// made one request each and stay open.
//
// Usage: tls_bench --api <allocation-api binary> [--requests N] [--seconds S]
//                  [--connections C] [--threads T] [--idle N]
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "allocation_relay/signature.h"
#include "support/https_load.h"
#include "support/process.h"
#include "support/request_seed.h"
#include "support/temp_dir.h"

using namespace allocation_relay;
using testing::CurlLoadResult;
using testing::LoadRequest;
using testing::RunCurlLoad;

namespace {

struct Options {
  std::string api;
  std::int64_t requests = 100000;
  double seconds = 3;
  int connections = 16;
  int threads = 16;
  int idle = 512;
};

// A static cpp-httplib server, plain or HTTPS: same library, same threads, TCP_NODELAY and
// keep-alive limit as api_bench's baseline, fixed body.
class StaticServer {
 public:
  StaticServer(std::size_t body_size, int threads, const std::string& cert = "",
               const std::string& key = "")
      : body_(body_size, 'x') {
    if (cert.empty()) {
      server_ = std::make_unique<httplib::Server>();
    } else {
      server_ = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
    }
    server_->new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    server_->set_tcp_nodelay(true);
    server_->set_keep_alive_max_count(10000);
    server_->Get(R"(/.*)", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(body_, "application/json");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~StaticServer() {
    server_->stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::string body_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

std::unique_ptr<testing::Process> StartApi(const Options& o, const testing::TempDir& dir,
                                           const std::string& name, const std::string& tls,
                                           int* port) {
  std::string config =
      "timezone: Europe/Stockholm\nlog_level: info\nstore: {path: bench.db}\n"
      "api:\n  listen: 127.0.0.1:0\n  idle_timeout: 120s\n  threads: " +
      std::to_string(o.threads) + "\n" + tls +
      "  keys:\n    - {name: bench, sha256: " + Sha256Hex("bench-token") +
      ", endpoints: [GET /allocation-requests]}\nwarehouses:\n";
  for (int w = 1; w <= 50; ++w) {
    config += "  - {id: " + std::to_string(w) + ", name: Warehouse " + std::to_string(w) + "}\n";
  }
  dir.Write(name + ".yaml", config);
  auto api = std::make_unique<testing::Process>(
      std::vector<std::string>{o.api, "--config", dir.File(name + ".yaml")}, dir.path());
  std::regex listening(R"(api listening on 127\.0\.0\.1:(\d+))");
  std::smatch match;
  testing::WaitFor(
      [&] {
        std::string err = api->Stderr();
        if (!std::regex_search(err, match, listening)) return false;
        *port = std::stoi(match[1]);
        return err.find("api ready") != std::string::npos;
      },
      std::chrono::seconds(30));
  if (*port == 0) {
    std::fprintf(stderr, "allocation-api (%s) did not start: %s\n", name.c_str(),
                 api->Stderr().c_str());
    std::exit(1);
  }
  return api;
}

void Row(const char* what, const CurlLoadResult& r) {
  std::printf(
      "%-44s %8.0f pages/s  p50 %6.2f ms  p99 %6.2f ms  (%lld ok, %lld errors, %zu B, %lld "
      "connections)\n",
      what, r.load.rate(), r.load.Percentile(0.5), r.load.Percentile(0.99),
      static_cast<long long>(r.load.count), static_cast<long long>(r.load.errors), r.load.bytes,
      static_cast<long long>(r.connections));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--api") {
      o.api = value;
    } else if (flag == "--requests") {
      o.requests = std::stoll(value);
    } else if (flag == "--seconds") {
      o.seconds = std::stod(value);
    } else if (flag == "--connections") {
      o.connections = std::stoi(value);
    } else if (flag == "--threads") {
      o.threads = std::stoi(value);
    } else if (flag == "--idle") {
      o.idle = std::stoi(value);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (o.api.empty()) {
    std::fprintf(stderr,
                 "usage: tls_bench --api <allocation-api> [--requests N] [--seconds S] "
                 "[--connections C] [--threads T] [--idle N]\n");
    return 2;
  }
  testing::TempDir dir;
  std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
      dir.File("server.key") + " -out " + dir.File("server.crt") + " 2>/dev/null";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "openssl failed\n");
    return 1;
  }
  std::vector<std::int64_t> pending;
  testing::Seed(dir.File("bench.db"), o.requests, pending);
  std::printf("seeded %lld requests over 50 warehouses (%zu pending)\n",
              static_cast<long long>(o.requests), pending.size());

  int plain_port = 0, tls_port = 0;
  auto plain = StartApi(o, dir, "plain", "", &plain_port);
  auto tls = StartApi(o, dir, "tls", "  tls: {cert: server.crt, key: server.key}\n", &tls_port);
  std::printf(
      "allocation-api plain on %d, HTTPS on %d, %d worker threads; load: %d keep-alive libcurl "
      "clients, %.0f s per figure\n\n",
      plain_port, tls_port, o.threads, o.connections, o.seconds);

  auto by_warehouse = [](int, std::mt19937& rng) -> LoadRequest {
    return {"GET", "/allocation-requests?warehouse=" + std::to_string(1 + rng() % 50), ""};
  };
  const std::string ca = dir.File("server.crt");
  auto url = [](const char* scheme, int port) {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port);
  };
  CurlLoadResult api_http =
      RunCurlLoad(url("http", plain_port), "", o.connections, o.seconds, by_warehouse);
  CurlLoadResult api_https =
      RunCurlLoad(url("https", tls_port), ca, o.connections, o.seconds, by_warehouse);
  CurlLoadResult static_http, static_https;
  {
    StaticServer server(api_https.load.bytes, o.threads);
    static_http = RunCurlLoad(url("http", server.port()), "", o.connections, o.seconds,
                              [](int, std::mt19937&) -> LoadRequest {
                                return {"GET", "/", ""};
                              });
  }
  {
    StaticServer server(api_https.load.bytes, o.threads, ca, dir.File("server.key"));
    static_https = RunCurlLoad(url("https", server.port()), ca, o.connections, o.seconds,
                               [](int, std::mt19937&) -> LoadRequest {
                                 return {"GET", "/", ""};
                               });
  }
  Row("GET ?warehouse=W, HTTPS (api.tls)", api_https);
  Row("  baseline: static httplib SSLServer", static_https);
  std::printf("  ratio %.2f (target >= 0.25)\n", api_https.load.rate() / static_https.load.rate());
  Row("GET ?warehouse=W, plain HTTP", api_http);
  Row("  baseline: static httplib, plain", static_http);
  std::printf("  ratio %.2f; HTTPS / plain HTTP on the API: %.2f\n",
              api_http.load.rate() / static_http.load.rate(),
              api_https.load.rate() / api_http.load.rate());
  for (auto* api : {plain.get(), tls.get()}) {
    api->Signal(SIGTERM);
    api->Wait(std::chrono::seconds(20));
  }

  std::printf(
      "\npeak RSS (VmHWM) of a fresh API: after one request, after %d more idle "
      "keep-alive connections\n",
      o.idle);
  for (bool https : {true, false}) {
    int port = 0;
    auto api = StartApi(o, dir, https ? "tls-idle" : "plain-idle",
                        https ? "  tls: {cert: server.crt, key: server.key}\n" : "", &port);
    const std::string health = url(https ? "https" : "http", port) + "/health";
    testing::IdleCurlConnections first(health, https ? ca : "", 1);
    long one = testing::PeakRssKb(api->pid());
    testing::IdleCurlConnections idle(health, https ? ca : "", o.idle);
    long many = testing::PeakRssKb(api->pid());
    std::printf("  %-6s %5.1f MiB after one, %5.1f MiB with %d idle (%d answered): %.1f KiB each\n",
                https ? "HTTPS" : "plain", one / 1024.0, many / 1024.0, o.idle, idle.answered(),
                static_cast<double>(many - one) / o.idle);
    api->Signal(SIGTERM);
    api->Wait(std::chrono::seconds(20));
  }
  return 0;
}
