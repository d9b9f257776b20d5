// PlainCurlLoop: the benchmarks' baseline, a plain libcurl-multi loop with nothing of the product
// in it: POSTs each of `bodies` (Content-Type: application/json) to `url`, `concurrency` at a
// time through one multi handle, reusing each easy handle (and so its connection) for the next.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_CURL_LOOP_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_CURL_LOOP_H_

#include <string>
#include <vector>

namespace allocation_relay::testing {

// Returns calls per second.
double PlainCurlLoop(const std::string& url, const std::vector<std::string>& bodies,
                     int concurrency);

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_CURL_LOOP_H_
