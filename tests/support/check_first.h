// Helpers of the "Check first, then allocate" integration tests (check_first_api_test.cpp,
// check_first_services_test.cpp): Centra's answers to POST /check-first byte for byte, the
// expected GET /allocations/<n> answer with its real-clock dates replaced, and short reads of an
// allocation's checks and requests through the API.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_CHECK_FIRST_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_CHECK_FIRST_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "support/api_process.h"
#include "support/stores.h"

namespace allocation_relay::testing {

using Strings = std::vector<std::string>;
using SysTime = std::chrono::system_clock::time_point;

// Centra's answers to POST /check-first, byte for byte.
inline const std::string kOk = R"({"status":"ok"})";
inline const std::string kInvalidBody = R"({"status":"no","msg":"invalid request body"})";
inline const std::string kNoSuchOrder = R"({"status":"no","msg":"order does not exist"})";
inline const std::string kFailed = R"({"status":"no","msg":"failed to allocate stock"})";
// The field errors answer; `fields` as they must appear, e.g. "orderNumber":"required".
inline std::string FieldErrors(const std::string& fields) {
  return R"({"status":"no","msg":{)" + fields + "}}";
}

inline const std::regex kIsoDate(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2})");
inline const std::regex kLocalMicros(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})");

// The dates of a real clock are the only values a test cannot know beforehand: `text` with every
// ISO-8601 date replaced by <date>, and the dates themselves in order.
inline std::string WithoutDates(const std::string& text) {
  return std::regex_replace(text, kIsoDate, "<date>");
}
inline Strings DatesIn(const std::string& text) {
  Strings out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kIsoDate);
       it != std::sregex_iterator(); ++it) {
    out.push_back(it->str());
  }
  return out;
}

// An ISO-8601 date with offset as the API writes it ("2024-03-18T09:04:48+01:00").
inline SysTime ParseIsoDate(const std::string& text) {
  std::smatch m;
  static const std::regex parts(
      R"((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})([+-])(\d{2}):(\d{2}))");
  if (!std::regex_match(text, m, parts)) {
    ADD_FAILURE() << "not an ISO-8601 date: " << text;
    return {};
  }
  using namespace std::chrono;
  auto n = [&](int i) { return std::stoi(m[i].str()); };
  const sys_days date =
      year{n(1)} / month{static_cast<unsigned>(n(2))} / day{static_cast<unsigned>(n(3))};
  const minutes offset = (m[7] == "-" ? -1 : 1) * (hours{n(8)} + minutes{n(9)});
  return date + hours{n(4)} + minutes{n(5)} + seconds{n(6)} - offset;
}

// The config with the stores (support/stores.h: 11, 12, 13, 14) and their keys.
inline ApiProcessOptions WithStores(const std::map<int, std::string>& store_webhooks = {}) {
  ApiProcessOptions o;
  o.more_warehouses = testing::StoresYaml(store_webhooks);
  o.more_keys = testing::StoreKeysYaml();
  return o;
}

// The body ApiProcess::CreateAllocation posts, to read the intake's raw answer.
inline std::string AllocationBody(std::int64_t number, const std::string& groups) {
  return R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" + std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"warehouses":)" + groups + "}";
}

// GET /allocations/<n>'s answer for order `number` (ApiProcess::CreateAllocation's order id and
// line), its dates replaced by <date>: `requests` and `checks` are the entries as written.
inline std::string AllocationAnswer(std::int64_t number, const std::string& groups,
                                    const std::string& state, const std::string& confirmed_by,
                                    const std::string& requests, const std::string& checks) {
  return R"({"status":"ok","allocation":{"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" +
         std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"warehouses":)" + groups +
         R"(,"state":")" + state + R"(","confirmedWarehouseId":)" + confirmed_by +
         R"(,"allocation_requests":[)" + requests + "]" +
         (checks.empty() ? "" : R"(,"checks":[)" + checks + "]") + "}}";
}
// One entry of `checks`, its date replaced.
inline std::string CheckEntry(int warehouse, const std::string& status) {
  return R"({"warehouseId":)" + std::to_string(warehouse) + R"(,"status":")" + status +
         R"(","expirationAt":"<date>"})";
}
// One entry of `allocation_requests` of ApiProcess::CreateAllocation's order, dates replaced.
inline std::string RequestEntry(std::int64_t id, const std::string& status, int warehouse,
                                const std::string& name, std::int64_t number) {
  return R"({"id":)" + std::to_string(id) + R"(,"status":")" + status + R"(","warehouseId":)" +
         std::to_string(warehouse) + R"(,"warehouseName":")" + name +
         R"(","expirationDate":"<date>","order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" +
         std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"createdAt":"<date>"})";
}

inline HttpAnswer AnswerCheck(ApiProcess& api, std::int64_t order, std::int64_t warehouse,
                              bool accepted, const std::string& token = "shop-token") {
  return api.Post("/check-first", CheckAnswerBody(order, warehouse, accepted), token);
}

inline nlohmann::ordered_json AllocationOf(ApiProcess& api, std::int64_t number) {
  return api.Get("/allocations/" + std::to_string(number)).Json()["allocation"];
}

// The allocation's checks as "<warehouse>:<status>", in the order shown.
inline Strings Checks(ApiProcess& api, std::int64_t number) {
  Strings out;
  nlohmann::ordered_json a = AllocationOf(api, number);
  if (!a.contains("checks")) return out;
  for (const auto& c : a["checks"]) {
    out.push_back(std::to_string(c["warehouseId"].get<int>()) + ":" +
                  c["status"].get<std::string>());
  }
  return out;
}

// The allocation's requests as "<warehouse>:<status>", in id order.
inline Strings Requests(ApiProcess& api, std::int64_t number) {
  Strings out;
  const nlohmann::ordered_json a =
      AllocationOf(api, number);  // named: a temporary's element would dangle
  for (const auto& r : a["allocation_requests"]) {
    out.push_back(std::to_string(r["warehouseId"].get<int>()) + ":" +
                  r["status"].get<std::string>());
  }
  return out;
}

// Each check's expirationAt is its warehouse's time to answer after the intake (made between
// `before` and `after`), to the second the API shows.
inline void ExpectExpiresAfter(const nlohmann::ordered_json& check, std::chrono::seconds timeout,
                               SysTime before, SysTime after) {
  const SysTime expires = ParseIsoDate(check["expirationAt"].get<std::string>());
  EXPECT_GE(expires, before + timeout - std::chrono::seconds(1)) << check;
  EXPECT_LE(expires, after + timeout) << check;
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_CHECK_FIRST_H_
