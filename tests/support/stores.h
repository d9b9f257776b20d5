// Configuration pieces for tests of "Check first, then allocate" (SPEC section 12) on the real
// binaries: check-first warehouses ("stores") and keys granted POST /check-first, as entries for
// ApiProcessOptions::more_warehouses and more_keys; and the body of POST /check-first.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_STORES_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_STORES_H_

#include <cstdint>
#include <map>
#include <string>

#include "allocation_relay/signature.h"

namespace allocation_relay::testing {

// The stores every check-first test configures: 11 "Shop A" and 12 "Shop B" (1 h to answer),
// 13 "Shop C" (30 min) and 14 "Shop Quick" (1 s, for timeouts), all `policy: check-first`.
// `webhooks` maps a store's id to the inline YAML of its `webhook:` (none if absent).
inline std::string StoresYaml(const std::map<int, std::string>& webhooks = {}) {
  auto store = [&](int id, const std::string& name, const std::string& timeout) {
    auto hook = webhooks.find(id);
    return "  - {id: " + std::to_string(id) + ", name: " + name +
           ", policy: check-first, confirm_timeout: " + timeout +
           (hook == webhooks.end() ? std::string() : ", webhook: " + hook->second) + "}\n";
  };
  return store(11, "Shop A", "1h") + store(12, "Shop B", "1h") + store(13, "Shop C", "30m") +
         store(14, "Shop Quick", "1s");
}

// Keys for the stores: "shop-token" (POST /check-first and GET /allocations, every warehouse)
// and "shop11-token" (the same endpoints, warehouse 11 only). The test keys' "oms-token" is
// not granted POST /check-first.
inline std::string StoreKeysYaml() {
  auto key = [](const std::string& name, const std::string& token, const std::string& scope) {
    return "    - {name: " + name + ", sha256: " + Sha256Hex(token) +
           ", endpoints: [POST /check-first, GET /allocations]" + scope + "}\n";
  };
  return key("shop", "shop-token", "") + key("shop11", "shop11-token", ", warehouses: [11]");
}

// {"orderNumber":<order>,"warehouseId":<warehouse>,"accepted":<accepted>}
inline std::string CheckAnswerBody(std::int64_t order, std::int64_t warehouse, bool accepted) {
  return R"({"orderNumber":)" + std::to_string(order) + R"(,"warehouseId":)" +
         std::to_string(warehouse) + R"(,"accepted":)" + (accepted ? "true" : "false") + "}";
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_STORES_H_
