#include "support/http_load.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

namespace allocation_relay::testing {

using Steady = std::chrono::steady_clock;

double LoadResult::rate() const { return seconds > 0 ? static_cast<double>(count) / seconds : 0; }

double LoadResult::Percentile(double q) const {
  if (latencies_ms.empty()) return 0;
  auto index = static_cast<std::size_t>(q * static_cast<double>(latencies_ms.size()));
  return latencies_ms[std::min(latencies_ms.size() - 1, index)];
}

void LoadResult::Add(const LoadResult& other) {
  count += other.count;
  errors += other.errors;
  ran_out += other.ran_out;
  seconds += other.seconds;
  bytes = other.bytes;
  auto middle = static_cast<std::ptrdiff_t>(latencies_ms.size());
  latencies_ms.insert(latencies_ms.end(), other.latencies_ms.begin(), other.latencies_ms.end());
  std::inplace_merge(latencies_ms.begin(), latencies_ms.begin() + middle, latencies_ms.end());
}

LoadResult GatherLoad(const std::vector<std::vector<double>>& latencies_by_client, double seconds,
                      std::int64_t errors, int ran_out, std::size_t bytes) {
  LoadResult result;
  result.seconds = seconds;
  for (const auto& latencies : latencies_by_client) {
    result.latencies_ms.insert(result.latencies_ms.end(), latencies.begin(), latencies.end());
  }
  std::sort(result.latencies_ms.begin(), result.latencies_ms.end());
  result.count = static_cast<std::int64_t>(result.latencies_ms.size());
  result.errors = errors;
  result.ran_out = ran_out;
  result.bytes = bytes;
  return result;
}

LoadResult RunLoad(int port, int clients, double seconds, const NextLoadRequest& next,
                   std::string_view expect, std::chrono::seconds read_timeout) {
  std::vector<std::vector<double>> latencies_by_client(static_cast<std::size_t>(clients));
  std::atomic<std::int64_t> errors{0};
  std::atomic<int> ran_out{0};
  std::atomic<std::size_t> bytes{0};
  auto start = Steady::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      httplib::Client http("127.0.0.1", port);
      http.set_tcp_nodelay(true);
      http.set_keep_alive(true);
      http.set_read_timeout(read_timeout);
      std::mt19937 rng(static_cast<std::uint32_t>(client) * 7919u + 1u);
      auto& latencies = latencies_by_client[static_cast<std::size_t>(client)];
      const httplib::Headers headers{{"API-Authorization", "bench-token"}};
      while (Steady::now() < deadline) {
        LoadRequest request = next(client, rng);
        if (request.method.empty()) {
          ++ran_out;
          break;
        }
        auto sent = Steady::now();
        auto answer = request.method == "GET" ? http.Get(request.path, headers)
                      : request.method == "POST"
                          ? http.Post(request.path, headers, request.body, "application/json")
                          : http.Put(request.path, headers, request.body, "application/json");
        double ms = std::chrono::duration<double, std::milli>(Steady::now() - sent).count();
        if (!answer || answer->status != 200 || answer->body.find(expect) == std::string::npos) {
          if (errors++ == 0) {
            std::fprintf(stderr, "first error: %s\n",
                         answer ? (std::to_string(answer->status) + " " + answer->body).c_str()
                                : httplib::to_string(answer.error()).c_str());
          }
          continue;
        }
        bytes = answer->body.size();
        latencies.push_back(ms);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return GatherLoad(latencies_by_client,
                    std::chrono::duration<double>(Steady::now() - start).count(), errors, ran_out,
                    bytes);
}

}  // namespace allocation_relay::testing
