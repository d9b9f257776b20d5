#include "support/curl_loop.h"

#include <curl/curl.h>  // the benchmarks' baseline; the product's one curl user is webhook_sender

#include <chrono>

namespace allocation_relay::testing {

using Steady = std::chrono::steady_clock;

double PlainCurlLoop(const std::string& url, const std::vector<std::string>& bodies,
                     int concurrency) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  std::size_t next = 0, done = 0;
  auto start = Steady::now();
  auto add = [&](CURL* e) {
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, bodies[next].c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(bodies[next].size()));
    curl_easy_setopt(
        e, CURLOPT_WRITEFUNCTION,
        +[](char*, size_t s, size_t n, void*) -> size_t { return s * n; });
    ++next;
    curl_multi_add_handle(multi, e);
  };
  for (int i = 0; i < concurrency && next < bodies.size(); ++i) add(curl_easy_init());
  while (done < bodies.size()) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* e = m->easy_handle;
      curl_multi_remove_handle(multi, e);
      ++done;
      if (next < bodies.size()) {
        add(e);  // reuse the handle: keeps its connection
      } else {
        curl_easy_cleanup(e);
      }
    }
    curl_multi_poll(multi, nullptr, 0, 10, nullptr);
  }
  double seconds = std::chrono::duration<double>(Steady::now() - start).count();
  curl_slist_free_all(headers);
  curl_multi_cleanup(multi);
  return static_cast<double>(bodies.size()) / seconds;
}

}  // namespace allocation_relay::testing
