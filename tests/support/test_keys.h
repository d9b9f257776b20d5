// The API keys every test configuration uses, as the lines of a YAML `keys:` list (indented for
// `api.keys`): "oms-token" (every endpoint), "pos3-token" (the warehouse endpoints, GET
// /orders/allocation-requests among them, warehouse 3 only), "reader-token" (GET
// /allocation-requests only).
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_TEST_KEYS_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_TEST_KEYS_H_

#include <string>

#include "allocation_relay/signature.h"

namespace allocation_relay::testing {

inline std::string TestKeysYaml() {
  auto key = [](const std::string& name, const std::string& token, const std::string& endpoints,
                const std::string& scope) {
    return "    - {name: " + name + ", sha256: " + Sha256Hex(token) + ", endpoints: [" + endpoints +
           "]" + scope + "}\n";
  };
  return key("oms", "oms-token",
             "GET /allocation-requests, PUT /allocation-request, POST /allocations, "
             "GET /allocations, POST /allocations/cancel, GET /orders/allocation-requests",
             "") +
         key("pos3", "pos3-token",
             "GET /allocation-requests, PUT /allocation-request, GET /orders/allocation-requests",
             ", warehouses: [3]") +
         key("reader", "reader-token", "GET /allocation-requests", "");
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_TEST_KEYS_H_
