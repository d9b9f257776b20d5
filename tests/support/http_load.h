// RunLoad: the benchmarks' HTTP load generator. `clients` threads, each with its own keep-alive
// cpp-httplib client (TCP_NODELAY, header "API-Authorization: bench-token"), send the requests
// made by `next` to 127.0.0.1:port, one at a time, until `seconds` have passed or `next` runs
// out of work; LoadResult holds the count, latencies and errors of the answers.
//
// Thread-safety: RunLoad may be called from any thread; it calls `next` concurrently from all of
// its client threads (each with its own client index and random generator), so `next` must be
// safe to call that way: state shared between clients needs atomics or a lock, per-client state
// indexed by the client index does not. A LoadResult is a plain value (no synchronisation).
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_HTTP_LOAD_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_HTTP_LOAD_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace allocation_relay::testing {

// One request of the load: "GET", "POST" or "PUT" (a body is sent as application/json); an
// empty method means the client has run out of work and stops.
struct LoadRequest {
  std::string method;
  std::string path;
  std::string body;
};

// The answers of one load run, or of several combined with Add.
struct LoadResult {
  std::int64_t count = 0;            // answers that counted as ok
  std::int64_t errors = 0;           // the other answers, and calls that got none
  int ran_out = 0;                   // clients whose `next` ran out of work before the deadline
  double seconds = 0;                // wall time of the run(s)
  std::size_t bytes = 0;             // body size of the last ok answer
  std::vector<double> latencies_ms;  // of the ok answers, ascending

  // Ok answers per second (0 before any run).
  double rate() const;
  // The latency at fraction q (0.5: median, 0.99) of the sorted latencies; 0 if there are none.
  double Percentile(double q) const;
  // Combines `other`'s run into this one: counts, errors, ran_out and seconds add up, the
  // latencies merge (still sorted), bytes becomes other's.
  void Add(const LoadResult& other);
};

// The result of a run that took `seconds`, from each client's latencies of its ok answers (in
// any order) and the run's counters. For load generators built like RunLoad (https_load.h).
LoadResult GatherLoad(const std::vector<std::vector<double>>& latencies_by_client, double seconds,
                      std::int64_t errors, int ran_out, std::size_t bytes);

// Makes the next request of client `client` (0 .. clients-1), drawing randomness from `rng`
// (the client's own, seeded from its index).
using NextLoadRequest = std::function<LoadRequest(int client, std::mt19937& rng)>;

// Runs the load for `seconds`; an answer counts as ok if its status is 200 and its body contains
// `expect` (empty: any body). The first error is printed to stderr. `read_timeout` is each
// client's (cpp-httplib's own default, 5 s, unless given).
LoadResult RunLoad(int port, int clients, double seconds, const NextLoadRequest& next,
                   std::string_view expect = "",
                   std::chrono::seconds read_timeout = std::chrono::seconds(5));

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_HTTP_LOAD_H_
