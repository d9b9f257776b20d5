#include "support/https_load.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace allocation_relay::testing {
namespace {

using Steady = std::chrono::steady_clock;

std::size_t Collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// A new easy handle that writes answers into *body and trusts only `ca_file` (empty: plain HTTP).
CURL* NewHandle(const std::string& ca_file, std::string* body) {
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
  if (!ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
    curl_easy_setopt(curl, CURLOPT_CAPATH, nullptr);
  }
  return curl;
}

}  // namespace

IdleCurlConnections::IdleCurlConnections(const std::string& url, const std::string& ca_file,
                                         int n) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::string ignored;
  for (int i = 0; i < n; ++i) {
    CURL* curl = NewHandle(ca_file, &ignored);
    handles_.push_back(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK &&
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200) {
      ++answered_;
    }
    ignored.clear();
  }
}

IdleCurlConnections::~IdleCurlConnections() {
  for (void* handle : handles_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

CurlLoadResult RunCurlLoad(const std::string& base_url, const std::string& ca_file, int clients,
                           double seconds, const NextLoadRequest& next, std::string_view expect) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::vector<std::vector<double>> latencies_by_client(static_cast<std::size_t>(clients));
  std::atomic<std::int64_t> errors{0}, connections{0};
  std::atomic<int> ran_out{0};
  std::atomic<std::size_t> bytes{0};
  auto start = Steady::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      std::string body;
      CURL* curl = NewHandle(ca_file, &body);
      curl_slist* headers = curl_slist_append(nullptr, "API-Authorization: bench-token");
      headers = curl_slist_append(headers, "Content-Type: application/json");
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
      std::mt19937 rng(static_cast<std::uint32_t>(client) * 7919u + 1u);
      auto& latencies = latencies_by_client[static_cast<std::size_t>(client)];
      while (Steady::now() < deadline) {
        LoadRequest request = next(client, rng);
        if (request.method.empty()) {
          ++ran_out;
          break;
        }
        std::string url = base_url + request.path;
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        if (request.method == "GET") {
          curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        } else {
          curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
          curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.c_str());
          curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
        }
        body.clear();
        auto sent = Steady::now();
        CURLcode code = curl_easy_perform(curl);
        double ms = std::chrono::duration<double, std::milli>(Steady::now() - sent).count();
        long status = 0, opened = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &opened);
        connections += opened;
        if (request.method != "GET") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, nullptr);
        if (code != CURLE_OK || status != 200 || body.find(expect) == std::string::npos) {
          if (errors++ == 0) {
            std::fprintf(stderr, "first error: %s %ld %s\n", curl_easy_strerror(code), status,
                         body.c_str());
          }
          continue;
        }
        bytes = body.size();
        latencies.push_back(ms);
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(curl);
    });
  }
  for (auto& thread : threads) thread.join();
  CurlLoadResult result;
  result.load =
      GatherLoad(latencies_by_client, std::chrono::duration<double>(Steady::now() - start).count(),
                 errors, ran_out, bytes);
  result.connections = connections;
  return result;
}

}  // namespace allocation_relay::testing
