// RunCurlLoad: RunLoad (support/http_load.h) with libcurl clients, for HTTPS. `clients` threads,
// each with one libcurl easy handle kept for the whole run (so its connection is kept alive
// and its TLS session set up once), send the requests made by `next` to `base_url`
// ("https://127.0.0.1:PORT" or "http://..."), header "API-Authorization: bench-token", one at
// a time, until `seconds` have passed or `next` runs out of work.
//
// HTTPS: the server's certificate is verified against `ca_file` only (empty: plain HTTP).
// Thread-safety: as RunLoad.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_HTTPS_LOAD_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_HTTPS_LOAD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "support/http_load.h"

namespace allocation_relay::testing {

struct CurlLoadResult {
  LoadResult load;
  std::int64_t connections = 0;  // opened over the run, all clients together (keep-alive: one each)
};

CurlLoadResult RunCurlLoad(const std::string& base_url, const std::string& ca_file, int clients,
                           double seconds, const NextLoadRequest& next,
                           std::string_view expect = "");

// `n` connections to `url` ("https://..." or "http://..."; verified against `ca_file` as
// above), each made by its own libcurl easy handle with one GET and then left open and idle
// until this object is destroyed. For measuring what idle connections cost the server.
class IdleCurlConnections {
 public:
  IdleCurlConnections(const std::string& url, const std::string& ca_file, int n);
  ~IdleCurlConnections();
  IdleCurlConnections(const IdleCurlConnections&) = delete;
  IdleCurlConnections& operator=(const IdleCurlConnections&) = delete;

  int answered() const { return answered_; }  // how many got a 200

 private:
  std::vector<void*> handles_;  // CURL*, kept so that each keeps its connection
  int answered_ = 0;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_HTTPS_LOAD_H_
