// "Check first, then allocate" (SPEC section 12) on the real binaries over loopback HTTP:
// POST /check-first answered byte for byte (every field error, bodies that are not JSON objects,
// unknown orders and warehouses, scoped keys, decisions no longer possible), 403 without its
// grant; the flow (the first acceptance wins; rejections and timeouts hand a group to its
// direct-then-confirm warehouses; groups of stores only; cancel and a late confirm reject the
// open checks); `checks` in GET /allocations/<n> and in /metrics; the check_first webhook events
// through the real dispatcher to real receivers in both signature formats; and two APIs on one
// database taking acceptances of the same orders at the same instant. Runs on SQLite and, as
// `postgresql.<Suite>.*`, on PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <thread>
#include <tuple>

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "support/api_process.h"
#include "support/form.h"
#include "support/receiver.h"
#include "support/services_test.h"
#include "support/stores.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::ordered_json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::CheckAnswerBody;
using ::testing::HasSubstr;
using testing::HttpAnswer;
using testing::Receiver;
using ::testing::StartsWith;
using Strings = std::vector<std::string>;
using SysTime = std::chrono::system_clock::time_point;

// Centra's answers to POST /check-first, byte for byte.
const std::string kOk = R"({"status":"ok"})";
const std::string kInvalidBody = R"({"status":"no","msg":"invalid request body"})";
const std::string kNoSuchOrder = R"({"status":"no","msg":"order does not exist"})";
const std::string kFailed = R"({"status":"no","msg":"failed to allocate stock"})";
// The field errors answer; `fields` as they must appear, e.g. "orderNumber":"required".
std::string FieldErrors(const std::string& fields) {
  return R"({"status":"no","msg":{)" + fields + "}}";
}

const std::regex kIsoDate(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2})");
const std::regex kLocalMicros(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})");

// The dates of a real clock are the only values a test cannot know beforehand: `text` with every
// ISO-8601 date replaced by <date>, and the dates themselves in order.
std::string WithoutDates(const std::string& text) {
  return std::regex_replace(text, kIsoDate, "<date>");
}
Strings DatesIn(const std::string& text) {
  Strings out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kIsoDate);
       it != std::sregex_iterator(); ++it) {
    out.push_back(it->str());
  }
  return out;
}

// An ISO-8601 date with offset as the API writes it ("2024-03-18T09:04:48+01:00").
SysTime ParseIsoDate(const std::string& text) {
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
ApiProcessOptions WithStores(const std::map<int, std::string>& store_webhooks = {}) {
  ApiProcessOptions o;
  o.more_warehouses = testing::StoresYaml(store_webhooks);
  o.more_keys = testing::StoreKeysYaml();
  return o;
}

// The body ApiProcess::CreateAllocation posts, to read the intake's raw answer.
std::string AllocationBody(std::int64_t number, const std::string& groups) {
  return R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" + std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"warehouses":)" + groups + "}";
}

// GET /allocations/<n>'s answer for order `number` (ApiProcess::CreateAllocation's order id and
// line), its dates replaced by <date>: `requests` and `checks` are the entries as written.
std::string AllocationAnswer(std::int64_t number, const std::string& groups,
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
std::string CheckEntry(int warehouse, const std::string& status) {
  return R"({"warehouseId":)" + std::to_string(warehouse) + R"(,"status":")" + status +
         R"(","expirationAt":"<date>"})";
}
// One entry of `allocation_requests` of ApiProcess::CreateAllocation's order, dates replaced.
std::string RequestEntry(std::int64_t id, const std::string& status, int warehouse,
                         const std::string& name, std::int64_t number) {
  return R"({"id":)" + std::to_string(id) + R"(,"status":")" + status + R"(","warehouseId":)" +
         std::to_string(warehouse) + R"(,"warehouseName":")" + name +
         R"(","expirationDate":"<date>","order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" +
         std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"createdAt":"<date>"})";
}

HttpAnswer AnswerCheck(ApiProcess& api, std::int64_t order, std::int64_t warehouse, bool accepted,
                       const std::string& token = "shop-token") {
  return api.Post("/check-first", CheckAnswerBody(order, warehouse, accepted), token);
}

ordered_json AllocationOf(ApiProcess& api, std::int64_t number) {
  return api.Get("/allocations/" + std::to_string(number)).Json()["allocation"];
}

// The allocation's checks as "<warehouse>:<status>", in the order shown.
Strings Checks(ApiProcess& api, std::int64_t number) {
  Strings out;
  ordered_json a = AllocationOf(api, number);
  if (!a.contains("checks")) return out;
  for (const auto& c : a["checks"]) {
    out.push_back(std::to_string(c["warehouseId"].get<int>()) + ":" +
                  c["status"].get<std::string>());
  }
  return out;
}

// The allocation's requests as "<warehouse>:<status>", in id order.
Strings Requests(ApiProcess& api, std::int64_t number) {
  Strings out;
  const ordered_json a = AllocationOf(api, number);  // named: a temporary's element would dangle
  for (const auto& r : a["allocation_requests"]) {
    out.push_back(std::to_string(r["warehouseId"].get<int>()) + ":" +
                  r["status"].get<std::string>());
  }
  return out;
}

// Each check's expirationAt is its warehouse's time to answer after the intake (made between
// `before` and `after`), to the second the API shows.
void ExpectExpiresAfter(const ordered_json& check, std::chrono::seconds timeout, SysTime before,
                        SysTime after) {
  const SysTime expires = ParseIsoDate(check["expirationAt"].get<std::string>());
  EXPECT_GE(expires, before + timeout - 1s) << check;
  EXPECT_LE(expires, after + timeout) << check;
}

// The API alone (no dispatcher): nothing times out by itself here.
class ApiCheckFirst : public ::testing::Test {
 protected:
  ApiProcess api_{WithStores()};
};

TEST_F(ApiCheckFirst, EveryFieldInErrorIsNamedInOrderAndANullOneIsRequired) {
  api_.CreateAllocation(15, "[[11,12],[3]]");
  const std::string all_required =
      FieldErrors(R"("orderNumber":"required","warehouseId":"required","accepted":"required")");
  const std::string bad_order = FieldErrors(R"("orderNumber":"invalid value")");
  const std::string bad_warehouse = FieldErrors(R"("warehouseId":"invalid value")");
  const std::string bad_accepted = FieldErrors(R"("accepted":"invalid value")");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{}", all_required},
      {R"({"orderNumber":null,"warehouseId":null,"accepted":null})", all_required},
      // Names are case-sensitive: these are unknown fields, the real ones are missing.
      {R"({"OrderNumber":15,"warehouseID":11,"Accepted":true})", all_required},
      {R"({"warehouseId":11,"accepted":true})", FieldErrors(R"("orderNumber":"required")")},
      {R"({"orderNumber":15,"accepted":true})", FieldErrors(R"("warehouseId":"required")")},
      {R"({"orderNumber":15,"warehouseId":11})", FieldErrors(R"("accepted":"required")")},
      {R"({"orderNumber":15,"warehouseId":null,"accepted":true})",
       FieldErrors(R"("warehouseId":"required")")},
      {R"({"orderNumber":15,"warehouseId":11,"accepted":null})",
       FieldErrors(R"("accepted":"required")")},
      // orderNumber: a positive integer, nothing else.
      {R"({"orderNumber":"15","warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":0,"warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":-15,"warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":15.5,"warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":99999999999999999999,"warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":true,"warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":[15],"warehouseId":11,"accepted":true})", bad_order},
      {R"({"orderNumber":{"number":15},"warehouseId":11,"accepted":true})", bad_order},
      // warehouseId: the same.
      {R"({"orderNumber":15,"warehouseId":"11","accepted":true})", bad_warehouse},
      {R"({"orderNumber":15,"warehouseId":0,"accepted":true})", bad_warehouse},
      {R"({"orderNumber":15,"warehouseId":-11,"accepted":true})", bad_warehouse},
      {R"({"orderNumber":15,"warehouseId":11.5,"accepted":true})", bad_warehouse},
      {R"({"orderNumber":15,"warehouseId":false,"accepted":true})", bad_warehouse},
      {R"({"orderNumber":15,"warehouseId":[11],"accepted":true})", bad_warehouse},
      // accepted: a JSON boolean, not a number or a string.
      {R"({"orderNumber":15,"warehouseId":11,"accepted":1})", bad_accepted},
      {R"({"orderNumber":15,"warehouseId":11,"accepted":0})", bad_accepted},
      {R"({"orderNumber":15,"warehouseId":11,"accepted":"true"})", bad_accepted},
      {R"({"orderNumber":15,"warehouseId":11,"accepted":"yes"})", bad_accepted},
      {R"({"orderNumber":15,"warehouseId":11,"accepted":[]})", bad_accepted},
      {R"({"orderNumber":15,"warehouseId":11,"accepted":{}})", bad_accepted},
      // Several at once: each named once, in the order orderNumber, warehouseId, accepted,
      // whatever the order of the body.
      {R"({"orderNumber":"x","accepted":false})",
       FieldErrors(R"("orderNumber":"invalid value","warehouseId":"required")")},
      {R"({"accepted":"yes","warehouseId":null,"orderNumber":-1})",
       FieldErrors(
           R"("orderNumber":"invalid value","warehouseId":"required","accepted":"invalid value")")},
      {R"({"orderNumber":0,"warehouseId":0,"accepted":0})",
       FieldErrors(
           R"("orderNumber":"invalid value","warehouseId":"invalid value","accepted":"invalid value")")},
      {R"({"orderNumber":null,"warehouseId":-3,"accepted":true})",
       FieldErrors(R"("orderNumber":"required","warehouseId":"invalid value")")},
      {R"({"orderNumber":15,"warehouseId":"11","accepted":1})",
       FieldErrors(R"("warehouseId":"invalid value","accepted":"invalid value")")},
      {R"({"warehouseId":11})", FieldErrors(R"("orderNumber":"required","accepted":"required")")},
  };
  for (const auto& [body, expected] : cases) {
    HttpAnswer a = api_.Post("/check-first", body, "shop-token");
    EXPECT_EQ(a.status, 200) << body;
    EXPECT_EQ(a.content_type, "application/json") << body;
    EXPECT_EQ(a.body, expected) << body;
  }
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:asked", "12:asked"}));  // nothing was taken
}

TEST_F(ApiCheckFirst, ABodyThatIsNotAJsonObjectIsAnInvalidRequestBody) {
  api_.CreateAllocation(15, "[[11,12]]");
  for (const std::string body :
       {"", "not json", "[]", "[1,2]", R"([{"orderNumber":15,"warehouseId":11,"accepted":true}])",
        R"("x")", "42", "null", "true", "{", R"({"orderNumber": 15,)",
        R"({'orderNumber':15,'warehouseId':11,'accepted':true})",
        R"({"orderNumber":15,"warehouseId":11,"accepted":true}x)",
        R"({"orderNumber":15,"warehouseId":11,"accepted":true}})"}) {
    HttpAnswer a = api_.Post("/check-first", body, "shop-token");
    EXPECT_EQ(a.status, 200) << body;
    EXPECT_EQ(a.content_type, "application/json") << body;
    EXPECT_EQ(a.body, kInvalidBody) << body;
  }
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:asked", "12:asked"}));
}

// Only a warehouse asked on the order may answer: an unknown order, a warehouse of the rule that
// was not asked (a direct-then-confirm one, a store of a later group), one outside the rule or
// unknown altogether: "order does not exist".
TEST_F(ApiCheckFirst, UnknownOrdersAndWarehousesNotAskedAreOrdersThatDoNotExist) {
  api_.CreateAllocation(15, "[[11,3],[12,4]]");
  api_.CreateAllocation(17, "[[3]]");  // no store at all
  const std::vector<std::tuple<std::int64_t, std::int64_t, bool>> unknown = {
      {16, 11, true}, {16, 11, false},  // no such order
      {15, 3, true},  {15, 3, false},   // asked by an allocation request, not a check
      {15, 12, true}, {15, 12, false},  // a store of the next group, not asked yet
      {15, 4, true},                    // a warehouse of the next group
      {15, 13, true},                   // a store outside the rule
      {15, 99, true},                   // no such warehouse
      {17, 3, true},  {17, 11, true},   // an allocation without checks
  };
  for (const auto& [order, warehouse, accepted] : unknown) {
    HttpAnswer a = AnswerCheck(api_, order, warehouse, accepted);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, kNoSuchOrder) << order << " " << warehouse << " " << accepted;
  }
  EXPECT_EQ(Checks(api_, 15), Strings{"11:asked"});
  EXPECT_EQ(Requests(api_, 17), Strings{"3:allocated"});
  EXPECT_EQ(AllocationOf(api_, 17).contains("checks"), false);
}

TEST_F(ApiCheckFirst, TheFirstAcceptanceWinsAndEveryLaterDecisionFails) {
  const SysTime before = std::chrono::system_clock::now();
  HttpAnswer created = api_.Post("/allocations", AllocationBody(15, "[[11,12,3],[4]]"));
  const SysTime after = std::chrono::system_clock::now();
  ASSERT_EQ(created.status, 200) << created.body;
  // The stores are asked; the direct-then-confirm warehouse 3 waits for their answers. The
  // intake answers exactly what GET answers right after.
  EXPECT_EQ(WithoutDates(created.body),
            AllocationAnswer(15, "[[11,12,3],[4]]", "open", "null", "",
                             CheckEntry(11, "asked") + "," + CheckEntry(12, "asked")));
  EXPECT_EQ(created.body, api_.Get("/allocations/15").body);
  ordered_json asked = AllocationOf(api_, 15);
  ExpectExpiresAfter(asked["checks"][0], 1h, before, after);
  ExpectExpiresAfter(asked["checks"][1], 1h, before, after);
  EXPECT_EQ(api_.Get("/allocation-requests?status=all").body,
            R"({"status":"ok","allocation_requests":[]})");
  // A known order without requests (yet): an empty list, not an unknown order.
  EXPECT_EQ(api_.Get("/orders/15/allocation-requests").body,
            R"({"status":"ok","allocation_requests":[]})");

  HttpAnswer accepted = AnswerCheck(api_, 15, 12, true);
  EXPECT_EQ(accepted.status, 200);
  EXPECT_EQ(accepted.content_type, "application/json");
  EXPECT_EQ(accepted.body, kOk);
  // Confirmed by 12; the other store asked is rejected; no allocation request was ever made.
  HttpAnswer confirmed = api_.Get("/allocations/15");
  EXPECT_EQ(WithoutDates(confirmed.body),
            AllocationAnswer(15, "[[11,12,3],[4]]", "confirmed", "12", "",
                             CheckEntry(11, "rejected") + "," + CheckEntry(12, "accepted")));
  EXPECT_EQ(DatesIn(confirmed.body), DatesIn(created.body));  // expirations as asked
  EXPECT_EQ(api_.Get("/allocation-requests?status=all").body,
            R"({"status":"ok","allocation_requests":[]})");

  // Decisions are final; after an acceptance nothing else can be decided.
  for (const auto& [warehouse, answer] :
       {std::pair{12, true}, std::pair{12, false}, std::pair{11, true}, std::pair{11, false}}) {
    HttpAnswer late = AnswerCheck(api_, 15, warehouse, answer);
    EXPECT_EQ(late.status, 200);
    EXPECT_EQ(late.body, kFailed) << warehouse << " " << answer;
  }
  EXPECT_EQ(api_.Get("/allocations/15").body, confirmed.body);
}

// Each store gets its own time to answer (11: 1 h, 13: 30 min); the checks are listed in the
// group's order, not by warehouse id.
TEST_F(ApiCheckFirst, EachStoreIsAskedWithItsOwnTimeToAnswerInTheGroupsOrder) {
  const SysTime before = std::chrono::system_clock::now();
  api_.CreateAllocation(15, "[[13,4,11]]");
  const SysTime after = std::chrono::system_clock::now();
  HttpAnswer got = api_.Get("/allocations/15");
  EXPECT_EQ(WithoutDates(got.body),
            AllocationAnswer(15, "[[13,4,11]]", "open", "null", "",
                             CheckEntry(13, "asked") + "," + CheckEntry(11, "asked")));
  ordered_json a = got.Json()["allocation"];
  std::vector<std::string> keys;
  for (auto& [k, v] : a["checks"][0].items()) keys.push_back(k);
  EXPECT_EQ(keys, (Strings{"warehouseId", "status", "expirationAt"}));
  ExpectExpiresAfter(a["checks"][0], 30min, before, after);
  ExpectExpiresAfter(a["checks"][1], 1h, before, after);
}

TEST_F(ApiCheckFirst, ARejectionIsFinalAndAnotherStoreMayStillAccept) {
  api_.CreateAllocation(15, "[[11,12]]");
  EXPECT_EQ(AnswerCheck(api_, 15, 11, false).body, kOk);
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:rejected", "12:asked"}));
  EXPECT_EQ(AllocationOf(api_, 15)["state"], "open");
  EXPECT_EQ(AnswerCheck(api_, 15, 11, true).body, kFailed);
  EXPECT_EQ(AnswerCheck(api_, 15, 11, false).body, kFailed);
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:rejected", "12:asked"}));
  EXPECT_EQ(AnswerCheck(api_, 15, 12, true).body, kOk);
  ordered_json a = AllocationOf(api_, 15);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 12);
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:rejected", "12:accepted"}));
}

// When every store of the group said no, the group's direct-then-confirm warehouses get
// allocation requests (in the group's order) and the usual flow runs on.
TEST_F(ApiCheckFirst, WhenTheStoresRejectTheGroupsDirectWarehousesGetRequests) {
  api_.CreateAllocation(15, "[[11,3],[4]]");
  EXPECT_EQ(AnswerCheck(api_, 15, 11, false).body, kOk);
  // Visible to the warehouse as any request is: GET /allocation-requests and GET /allocations.
  EXPECT_EQ(WithoutDates(api_.Get("/allocation-requests", "pos3-token").body),
            R"({"status":"ok","allocation_requests":[)" +
                RequestEntry(1, "allocated", 3, "Amsterdam", 15) + "]}");
  EXPECT_EQ(WithoutDates(api_.Get("/allocations/15").body),
            AllocationAnswer(15, "[[11,3],[4]]", "open", "null",
                             RequestEntry(1, "allocated", 3, "Amsterdam", 15),
                             CheckEntry(11, "rejected")));
  EXPECT_EQ(api_.Update(1, "confirmed", "pos3-token")["success"], true);
  ordered_json a = AllocationOf(api_, 15);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 3);
  EXPECT_EQ(Checks(api_, 15), Strings{"11:rejected"});

  // Two stores: nothing until both said no, then requests to 3 and 4; 7 (next group) waits.
  api_.CreateAllocation(16, "[[11,12,3,4],[7]]");
  EXPECT_EQ(AnswerCheck(api_, 16, 12, false).body, kOk);
  EXPECT_EQ(Requests(api_, 16), Strings{});
  EXPECT_EQ(AnswerCheck(api_, 16, 11, false).body, kOk);
  EXPECT_EQ(Requests(api_, 16), (Strings{"3:allocated", "4:allocated"}));
  EXPECT_EQ(Checks(api_, 16), (Strings{"11:rejected", "12:rejected"}));
  EXPECT_EQ(WithoutDates(api_.Get("/allocation-requests?order=16").body),
            R"({"status":"ok","allocation_requests":[)" +
                RequestEntry(2, "allocated", 3, "Amsterdam", 16) + "," +
                RequestEntry(3, "allocated", 4, "Tokyo", 16) + "]}");
  EXPECT_EQ(api_.Update(2, "rejected")["success"], true);
  EXPECT_EQ(api_.Update(3, "rejected")["success"], true);
  EXPECT_EQ(Requests(api_, 16), (Strings{"3:rejected", "4:rejected", "7:allocated"}));
}

// Each group asks its own stores first, then its own warehouses; a group of stores only moves
// on to the next group, and past the last one the allocation is exhausted.
TEST_F(ApiCheckFirst, EveryGroupAsksItsStoresBeforeItsWarehouses) {
  api_.CreateAllocation(15, "[[11,3],[12,4]]");
  EXPECT_EQ(AnswerCheck(api_, 15, 11, false).body, kOk);
  EXPECT_EQ(Requests(api_, 15), Strings{"3:allocated"});
  EXPECT_EQ(api_.Update(1, "rejected", "pos3-token")["success"], true);
  // Group 2: store 12 is asked; warehouse 4 waits for it.
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:rejected", "12:asked"}));
  EXPECT_EQ(Requests(api_, 15), Strings{"3:rejected"});
  EXPECT_EQ(AnswerCheck(api_, 15, 12, false).body, kOk);
  EXPECT_EQ(Requests(api_, 15), (Strings{"3:rejected", "4:allocated"}));
  EXPECT_EQ(api_.Update(2, "confirmed")["success"], true);
  EXPECT_EQ(WithoutDates(api_.Get("/allocations/15").body),
            AllocationAnswer(15, "[[11,3],[12,4]]", "confirmed", "4",
                             RequestEntry(1, "rejected", 3, "Amsterdam", 15) + "," +
                                 RequestEntry(2, "confirmed", 4, "Tokyo", 15),
                             CheckEntry(11, "rejected") + "," + CheckEntry(12, "rejected")));

  api_.CreateAllocation(16, "[[11],[12],[3]]");
  EXPECT_EQ(AnswerCheck(api_, 16, 11, false).body, kOk);
  EXPECT_EQ(Checks(api_, 16), (Strings{"11:rejected", "12:asked"}));
  EXPECT_EQ(AnswerCheck(api_, 16, 12, false).body, kOk);
  EXPECT_EQ(Requests(api_, 16), Strings{"3:allocated"});

  api_.CreateAllocation(17, "[[11]]");
  EXPECT_EQ(AnswerCheck(api_, 17, 11, false).body, kOk);
  EXPECT_EQ(WithoutDates(api_.Get("/allocations/17").body),
            AllocationAnswer(17, "[[11]]", "exhausted", "null", "", CheckEntry(11, "rejected")));
  EXPECT_EQ(AnswerCheck(api_, 17, 11, true).body, kFailed);

  // A store in a later group, reached when the first group's warehouse rejects: its acceptance
  // confirms the allocation; the rejected request stays rejected.
  api_.CreateAllocation(18, "[[3],[11,4]]");
  EXPECT_EQ(AllocationOf(api_, 18).contains("checks"), false);
  EXPECT_EQ(api_.Update(4, "rejected")["success"], true);
  EXPECT_EQ(Checks(api_, 18), Strings{"11:asked"});
  EXPECT_EQ(Requests(api_, 18), Strings{"3:rejected"});
  EXPECT_EQ(AnswerCheck(api_, 18, 11, true).body, kOk);
  ordered_json a = AllocationOf(api_, 18);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 11);
  EXPECT_EQ(Requests(api_, 18), Strings{"3:rejected"});
}

TEST_F(ApiCheckFirst, CancellingRejectsTheOpenChecks) {
  api_.CreateAllocation(15, "[[11,12],[3]]");
  EXPECT_EQ(AnswerCheck(api_, 15, 11, false).body, kOk);
  HttpAnswer cancelled = api_.Post("/allocations/15/cancel", "");
  EXPECT_EQ(WithoutDates(cancelled.body),
            AllocationAnswer(15, "[[11,12],[3]]", "cancelled", "null", "",
                             CheckEntry(11, "rejected") + "," + CheckEntry(12, "rejected")));
  EXPECT_EQ(AnswerCheck(api_, 15, 12, true).body, kFailed);
  EXPECT_EQ(AnswerCheck(api_, 15, 12, false).body, kFailed);
  EXPECT_EQ(api_.Get("/allocations/15").body, cancelled.body);

  // With a request made after the stores said no: the request is outdated as usual.
  api_.CreateAllocation(16, "[[11,3]]");
  EXPECT_EQ(AnswerCheck(api_, 16, 11, false).body, kOk);
  EXPECT_EQ(api_.Post("/allocations/16/cancel", "").Json()["status"], "ok");
  EXPECT_EQ(Requests(api_, 16), Strings{"3:outdated"});
  EXPECT_EQ(Checks(api_, 16), Strings{"11:rejected"});
}

// A key scoped to store 11 answers only for 11: store 12's check does not exist for it, and GET
// /allocations shows it only 11's check.
TEST_F(ApiCheckFirst, AScopedKeyAnswersOnlyForItsOwnWarehouses) {
  api_.CreateAllocation(15, "[[11,12]]");
  EXPECT_EQ(AnswerCheck(api_, 15, 12, true, "shop11-token").body, kNoSuchOrder);
  EXPECT_EQ(AnswerCheck(api_, 15, 12, false, "shop11-token").body, kNoSuchOrder);
  EXPECT_EQ(AnswerCheck(api_, 16, 11, true, "shop11-token").body, kNoSuchOrder);
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:asked", "12:asked"}));
  EXPECT_EQ(WithoutDates(api_.Get("/allocations/15", "shop11-token").body),
            AllocationAnswer(15, "[[11,12]]", "open", "null", "", CheckEntry(11, "asked")));
  EXPECT_EQ(AnswerCheck(api_, 15, 11, true, "shop11-token").body, kOk);
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:accepted", "12:rejected"}));
  EXPECT_EQ(AllocationOf(api_, 15)["confirmedWarehouseId"], 11);
}

TEST_F(ApiCheckFirst, WithoutItsGrantIs403AndWithoutAKey401) {
  api_.CreateAllocation(15, "[[11,12]]");
  // oms-token holds every other endpoint, not POST /check-first.
  for (const char* token : {"oms-token", "pos3-token", "reader-token"}) {
    HttpAnswer a = AnswerCheck(api_, 15, 11, true, token);
    EXPECT_EQ(a.status, 403) << token;
    EXPECT_EQ(a.content_type, "application/json") << token;
    EXPECT_EQ(a.body, R"({"status":"Not Allowed"})") << token;
  }
  EXPECT_EQ(api_.Post("/check-first", "not json", "oms-token").status, 403);
  for (const char* token : {"", "nope"}) {
    HttpAnswer a = AnswerCheck(api_, 15, 11, true, token);
    EXPECT_EQ(a.status, 401) << token;
    EXPECT_EQ(a.body, R"({"status":"Unauthorized"})") << token;
  }
  for (const char* method : {"GET", "PUT", "DELETE", "PATCH"}) {
    HttpAnswer wrong =
        api_.Send(method, "/check-first", CheckAnswerBody(15, 11, true), "shop-token");
    EXPECT_EQ(wrong.status, 405) << method;
    EXPECT_EQ(wrong.body, R"({"status":"no","errorMessages":["Method )" + std::string(method) +
                              R"( is not allowed on /check-first"]})");
  }
  EXPECT_EQ(Checks(api_, 15), (Strings{"11:asked", "12:asked"}));
  EXPECT_EQ(AnswerCheck(api_, 15, 11, true).body, kOk);
  std::string metrics = api_.Get("/metrics", "").body;
  EXPECT_THAT(metrics, HasSubstr("allocation_relay_http_requests_total{endpoint=\"POST "
                                 "/check-first\",code=\"403\"} 4"));
  EXPECT_THAT(metrics, HasSubstr("allocation_relay_http_requests_total{endpoint=\"POST "
                                 "/check-first\",code=\"401\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("allocation_relay_http_requests_total{endpoint=\"POST "
                                 "/check-first\",code=\"200\"} 1"));
}

TEST_F(ApiCheckFirst, MetricsCountTheChecksByStatus) {
  const auto gauges = [](int asked, int accepted, int rejected, int timed_out) {
    return "# TYPE allocation_relay_checks gauge\n"
           "allocation_relay_checks{status=\"asked\"} " +
           std::to_string(asked) +
           "\n"
           "allocation_relay_checks{status=\"accepted\"} " +
           std::to_string(accepted) +
           "\n"
           "allocation_relay_checks{status=\"rejected\"} " +
           std::to_string(rejected) +
           "\n"
           "allocation_relay_checks{status=\"timed-out\"} " +
           std::to_string(timed_out) + "\n";
  };
  EXPECT_THAT(api_.Get("/metrics", "").body, HasSubstr(gauges(0, 0, 0, 0)));
  api_.CreateAllocation(15, "[[11,12]]");
  api_.CreateAllocation(16, "[[11,12,13]]");
  api_.CreateAllocation(17, "[[3],[11]]");  // no check yet
  EXPECT_THAT(api_.Get("/metrics", "").body, HasSubstr(gauges(5, 0, 0, 0)));
  ASSERT_EQ(AnswerCheck(api_, 15, 11, true).body, kOk);   // 12 rejected with it
  ASSERT_EQ(AnswerCheck(api_, 16, 13, false).body, kOk);  // 11 and 12 still asked
  HttpAnswer metrics = api_.Get("/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("# HELP allocation_relay_checks "));
  EXPECT_THAT(metrics.body, HasSubstr(gauges(2, 1, 2, 0)));
}

// SPEC 12: "at its expiry an unanswered warehouse ... can no longer accept". No dispatcher runs
// here, so nothing has marked the check timed-out yet: its expiry alone must decide.
TEST_F(ApiCheckFirst, NoAcceptanceIsTakenAfterTheExpiryEvenBeforeTheCheckIsMarkedTimedOut) {
  api_.CreateAllocation(15, "[[14,3]]");  // store 14 has 1 s to answer
  const SysTime expired = std::chrono::system_clock::now() + 1s + 100ms;
  ASSERT_TRUE(testing::WaitFor([&] { return std::chrono::system_clock::now() > expired; }, 5s));
  EXPECT_EQ(AnswerCheck(api_, 15, 14, true).body, kFailed);
  ordered_json a = AllocationOf(api_, 15);
  EXPECT_EQ(a["state"], "open");
  EXPECT_EQ(a["confirmedWarehouseId"], nullptr);
}

// With the dispatcher, which times checks out at their expiry (store 14: 1 s; warehouse 9's
// requests: 1 s).
class CheckFirstTimeouts : public testing::ServicesTest {
 protected:
  void SetUp() override { StartServices(WithStores()); }
};

TEST_F(CheckFirstTimeouts, AnUnansweredCheckTimesOutAndTheGroupMovesOn) {
  api_->CreateAllocation(15, "[[14,3]]");       // then warehouse 3
  api_->CreateAllocation(16, "[[14],[11,4]]");  // then the next group's store
  api_->CreateAllocation(17, "[[14]]");         // then nothing: exhausted
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Requests(*api_, 15) == Strings{"3:allocated"} &&
               Checks(*api_, 16) == Strings{"14:timed-out", "11:asked"} &&
               AllocationOf(*api_, 17)["state"] == "exhausted";
      },
      15s))
      << dispatcher_->Stderr();
  EXPECT_EQ(WithoutDates(api_->Get("/allocations/15").body),
            AllocationAnswer(15, "[[14,3]]", "open", "null",
                             RequestEntry(1, "allocated", 3, "Amsterdam", 15),
                             CheckEntry(14, "timed-out")));
  EXPECT_EQ(WithoutDates(api_->Get("/allocation-requests").body),
            R"({"status":"ok","allocation_requests":[)" +
                RequestEntry(1, "allocated", 3, "Amsterdam", 15) + "]}");
  // Timed out: no decision of it is taken any more.
  EXPECT_EQ(AnswerCheck(*api_, 15, 14, true).body, kFailed);
  EXPECT_EQ(AnswerCheck(*api_, 15, 14, false).body, kFailed);
  EXPECT_EQ(AnswerCheck(*api_, 17, 14, true).body, kFailed);
  EXPECT_EQ(Requests(*api_, 16), Strings{});  // 11 is asked before 4
  EXPECT_EQ(WithoutDates(api_->Get("/allocations/17").body),
            AllocationAnswer(17, "[[14]]", "exhausted", "null", "", CheckEntry(14, "timed-out")));
  EXPECT_THAT(api_->Get("/metrics", "").body,
              HasSubstr("allocation_relay_checks{status=\"asked\"} 1\n"
                        "allocation_relay_checks{status=\"accepted\"} 0\n"
                        "allocation_relay_checks{status=\"rejected\"} 0\n"
                        "allocation_relay_checks{status=\"timed-out\"} 3\n"));
  // The flow runs on: 3 confirms order 15.
  EXPECT_EQ(api_->Update(1, "confirmed", "pos3-token")["success"], true);
  EXPECT_EQ(AllocationOf(*api_, 15)["confirmedWarehouseId"], 3);
}

// Warehouse 9's request times out and store 11 of the next group is asked. On order 15 the late
// confirm of the timed-out request wins and rejects 11's open check; on order 16 store 11
// accepts and the timed-out request is outdated.
TEST_F(CheckFirstTimeouts, ALateConfirmRejectsTheOpenCheckAndAnAcceptanceOutdatesTheRequest) {
  api_->CreateAllocation(15, "[[9],[11]]");  // request 1
  api_->CreateAllocation(16, "[[9],[11]]");  // request 2
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Checks(*api_, 15) == Strings{"11:asked"} && Checks(*api_, 16) == Strings{"11:asked"};
      },
      15s))
      << dispatcher_->Stderr();
  EXPECT_EQ(Requests(*api_, 15), Strings{"9:timed-out"});

  EXPECT_EQ(api_->Update(1, "confirmed")["success"], true);
  ordered_json a = AllocationOf(*api_, 15);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 9);
  EXPECT_EQ(Checks(*api_, 15), Strings{"11:rejected"});
  EXPECT_EQ(AnswerCheck(*api_, 15, 11, true).body, kFailed);

  EXPECT_EQ(AnswerCheck(*api_, 16, 11, true).body, kOk);
  a = AllocationOf(*api_, 16);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 11);
  EXPECT_EQ(Requests(*api_, 16), Strings{"9:outdated"});
  EXPECT_EQ(
      api_->Put("/allocation-request", R"({"id":2,"status":"confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status outdated."]})");
}

// The check_first events through the real dispatcher, each to its own store's webhook, in either
// signature format: exact bytes (key order, `id` the order number, `data`), and the signature.
class CheckFirstWebhooks : public testing::ServicesTest {
 protected:
  enum class Format { kCentra, kStandardWebhooks };

  void Start(Format format) {
    format_ = format;
    auto hook = [&](int w) {
      const std::string url = "url: '" + receiver_.Url("/w" + std::to_string(w)) + "'";
      return format == Format::kCentra
                 ? "{" + url + ", secret: " + kCentraSecret + "}"
                 : "{" + url + ", secret: '" + kStandardSecret + "', signature: standard-webhooks}";
    };
    ApiProcessOptions o =
        WithStores({{11, hook(11)}, {12, hook(12)}, {13, hook(13)}, {14, hook(14)}});
    o.webhooks[3] = hook(3);
    StartServices(o);
  }

  // The JSON document of a call (the decoded payload= of Centra's format).
  std::string Document(const Receiver::Call& call) const {
    return format_ == Format::kCentra ? testing::FormDecode(call.body.substr(8)) : call.body;
  }

  // Every event warehouse `w` received so far, in arrival order, as written (the documents are
  // compact, so an event's dump() is its bytes; checked in ExpectSigned) with its date, once
  // checked, replaced by <date>.
  Strings EventsAt(int w) {
    Strings out;
    for (const Receiver::Call& call : receiver_.Calls()) {
      if (call.path != "/w" + std::to_string(w)) continue;
      ordered_json doc = ordered_json::parse(Document(call), nullptr, false);
      if (!doc.is_object()) {
        out.push_back("not JSON: " + call.body);
        continue;
      }
      for (const ordered_json& e : doc["events"]) {
        const std::string date = e.value("date", "");
        EXPECT_TRUE(std::regex_match(date, kLocalMicros)) << e;
        out.push_back(std::regex_replace(e.dump(), kLocalMicros, "<date>"));
      }
    }
    return out;
  }
  bool WaitForEvents(int w, std::size_t n) {
    return testing::WaitFor([&] { return EventsAt(w).size() >= n; }, 15s);
  }

  // Every call: the format's content type and signature, the document byte-exact.
  void ExpectSigned() {
    const std::string verifier = std::string(STANDARDWEBHOOKS_DIR) + "/verify.mjs";
    if (format_ == Format::kStandardWebhooks) {
      ASSERT_TRUE(std::filesystem::exists(std::string(STANDARDWEBHOOKS_DIR) +
                                          "/node_modules/standardwebhooks"))
          << "run: npm ci --prefix " << STANDARDWEBHOOKS_DIR << " (tests/run.sh does)";
    }
    for (const Receiver::Call& call : receiver_.Calls()) {
      SCOPED_TRACE(call.path + " " + call.body);
      EXPECT_THAT(call.Header("User-Agent"), StartsWith("allocation-relay/"));
      const std::string document = Document(call);
      // Compact, in the renderer's key order: a re-dump gives the same bytes.
      EXPECT_EQ(ordered_json::parse(document).dump(), document);
      if (format_ == Format::kCentra) {
        EXPECT_EQ(call.Header("Content-Type"), "application/x-www-form-urlencoded");
        EXPECT_EQ(call.body, "payload=" + FormUrlEncode(document));
        std::smatch m;
        const std::string signature = call.Header("X-Centra-Signature");
        ASSERT_TRUE(std::regex_match(signature, m, std::regex(R"(t=(\d+),v1=([0-9a-f]{64}))")))
            << signature;
        EXPECT_EQ(signature, CentraSignatureHeader(kCentraSecret, std::stoll(m[1]), call.body));
        continue;
      }
      EXPECT_EQ(call.Header("Content-Type"), "application/json");
      EXPECT_THAT(call.Header("webhook-id"), StartsWith("msg_"));
      const std::string ts = call.Header("webhook-timestamp");
      ASSERT_FALSE(ts.empty());
      EXPECT_EQ(call.Header("webhook-signature"),
                *StandardWebhooksSignature(kStandardSecret, call.Header("webhook-id"),
                                           std::stoll(ts), call.body));
      // And the reference library verifies it.
      ordered_json headers = {{"webhook-id", call.Header("webhook-id")},
                              {"webhook-timestamp", ts},
                              {"webhook-signature", call.Header("webhook-signature")}};
      const std::string headers_file = api_->dir().Write("headers.json", headers.dump());
      const std::string body_file = api_->dir().Write("body.json", call.body);
      testing::CommandResult verified = testing::RunCommand(
          {"/usr/bin/env", "node", verifier, kStandardSecret, headers_file, body_file},
          api_->dir().path());
      EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
      EXPECT_THAT(verified.out, HasSubstr("verified:"));
    }
  }

  // Store 14 times out, 12 rejects, 11 accepts order 19; then on order 20 store 11 rejects, the
  // next group's stores 12 and 13 are asked and 12 accepts. Each store gets exactly its events.
  void RunTheScenario() {
    api_->CreateAllocation(19, "[[11,12,14,3]]");
    const Strings asked19 = DatesIn(api_->Get("/allocations/19").body);
    ASSERT_EQ(asked19.size(), 3u);
    const std::string create19 =
        Event("create", 19,
              R"({"warehouses":[{"warehouseId":11,"expirationAt":")" + asked19[0] +
                  R"("},{"warehouseId":12,"expirationAt":")" + asked19[1] +
                  R"("},{"warehouseId":14,"expirationAt":")" + asked19[2] + R"("}]})");
    ASSERT_TRUE(WaitForEvents(11, 1) && WaitForEvents(12, 1)) << dispatcher_->Stderr();
    EXPECT_EQ(EventsAt(11), Strings{create19});
    EXPECT_EQ(EventsAt(12), Strings{create19});
    // 14 does not answer: within about a second of its expiry it hears it timed out.
    ASSERT_TRUE(WaitForEvents(14, 2)) << dispatcher_->Stderr();
    EXPECT_EQ(EventsAt(14), (Strings{create19, Event("timeout", 19, R"({"warehouseId":14})")}));
    ASSERT_EQ(AnswerCheck(*api_, 19, 12, false).body, kOk);
    ASSERT_TRUE(WaitForEvents(12, 2)) << dispatcher_->Stderr();
    ASSERT_EQ(AnswerCheck(*api_, 19, 11, true).body, kOk);
    ASSERT_TRUE(WaitForEvents(11, 2)) << dispatcher_->Stderr();
    EXPECT_EQ(AllocationOf(*api_, 19)["confirmedWarehouseId"], 11);

    api_->CreateAllocation(20, "[[11],[12,13]]");
    const std::string create20 =
        Event("create", 20,
              R"({"warehouses":[{"warehouseId":11,"expirationAt":")" +
                  DatesIn(api_->Get("/allocations/20").body).at(0) + R"("}]})");
    ASSERT_TRUE(WaitForEvents(11, 3)) << dispatcher_->Stderr();
    ASSERT_EQ(AnswerCheck(*api_, 20, 11, false).body, kOk);
    const Strings asked20 = DatesIn(api_->Get("/allocations/20").body);
    ASSERT_EQ(asked20.size(), 3u);
    // The next group's create names only that group's stores.
    const std::string create20b =
        Event("create", 20,
              R"({"warehouses":[{"warehouseId":12,"expirationAt":")" + asked20[1] +
                  R"("},{"warehouseId":13,"expirationAt":")" + asked20[2] + R"("}]})");
    ASSERT_TRUE(WaitForEvents(12, 3) && WaitForEvents(13, 1)) << dispatcher_->Stderr();
    ASSERT_EQ(AnswerCheck(*api_, 20, 12, true).body, kOk);
    ASSERT_TRUE(WaitForEvents(11, 4) && WaitForEvents(12, 4) && WaitForEvents(13, 2))
        << dispatcher_->Stderr();

    EXPECT_EQ(EventsAt(11), (Strings{create19, Event("accepted", 19, R"({"warehouseId":11})"),
                                     create20, Event("rejected", 20, R"({"warehouseId":11})")}));
    EXPECT_EQ(EventsAt(12), (Strings{create19, Event("rejected", 19, R"({"warehouseId":12})"),
                                     create20b, Event("accepted", 20, R"({"warehouseId":12})")}));
    EXPECT_EQ(EventsAt(13), (Strings{create20b, Event("rejected", 20, R"({"warehouseId":13})")}));
    EXPECT_EQ(EventsAt(14), (Strings{create19, Event("timeout", 19, R"({"warehouseId":14})")}));
    EXPECT_EQ(EventsAt(3), Strings{});  // never asked: the stores decided
    ExpectSigned();
  }

  // A check_first event with its date replaced (checked apart), `id` the order number.
  static std::string Event(const std::string& action, std::int64_t order, const std::string& data) {
    return R"({"type":"check_first","action":")" + action + R"(","date":"<date>","id":)" +
           std::to_string(order) + R"(,"data":)" + data + "}";
  }

  static constexpr const char* kCentraSecret = "test123";
  static constexpr const char* kStandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  Format format_ = Format::kCentra;
};

TEST_F(CheckFirstWebhooks, CentraFormatEventsAreByteExactAndSigned) {
  Start(Format::kCentra);
  RunTheScenario();
}

TEST_F(CheckFirstWebhooks, StandardWebhooksEventsVerifyWithTheReferenceLibrary) {
  Start(Format::kStandardWebhooks);
  RunTheScenario();
}

// Two APIs on one database (the SQLite file or the PostgreSQL database): stores 11 and 12 answer
// the same orders at the same instant, 11 through one API and 12 through the other (even orders
// 11 through API 1, odd ones through API 2), four pairs of threads, each pair released together
// per order.
class CheckFirstRace : public ::testing::Test {
 protected:
  CheckFirstRace() : api1_(WithStores()), api2_(SharingTheDatabase(api1_)) {}

  static ApiProcessOptions SharingTheDatabase(const ApiProcess& api) {
    ApiProcessOptions o = api.options();
    o.store = api.store_options();
    return o;
  }

  // Orders first .. first + n - 1 with `groups`, created through both APIs.
  void Create(std::int64_t first, int n, const std::string& groups) {
    for (int i = 0; i < n; ++i) (i % 2 ? api2_ : api1_).CreateAllocation(first + i, groups);
  }

  // "<HTTP status> <body>" of each order's answer by 11 (`by11`) and by 12 (`by12`); store
  // 11 answers order first + i with accepted11(i), 12 with accepted12(i).
  struct Answers {
    std::vector<std::string> by11, by12;
  };
  Answers Race(std::int64_t first, int n, const std::function<bool(int)>& accepted11,
               const std::function<bool(int)>& accepted12) {
    constexpr int kPairs = 4;
    Answers answers{std::vector<std::string>(static_cast<std::size_t>(n)),
                    std::vector<std::string>(static_cast<std::size_t>(n))};
    std::vector<std::unique_ptr<std::barrier<>>> sync;
    for (int p = 0; p < kPairs; ++p) sync.push_back(std::make_unique<std::barrier<>>(2));
    auto racer = [&](int pair, std::int64_t warehouse) {
      httplib::Client c1("127.0.0.1", api1_.port()), c2("127.0.0.1", api2_.port());
      for (httplib::Client* c : {&c1, &c2}) {
        c->set_connection_timeout(5s);
        c->set_read_timeout(30s);
      }
      const httplib::Headers key{{"API-Authorization", "shop-token"}};
      for (int i = pair; i < n; i += kPairs) {
        httplib::Client& c = (warehouse == 11) == (i % 2 == 0) ? c1 : c2;
        const bool accepted = warehouse == 11 ? accepted11(i) : accepted12(i);
        sync[static_cast<std::size_t>(pair)]->arrive_and_wait();
        auto r = c.Post("/check-first", key, CheckAnswerBody(first + i, warehouse, accepted),
                        "application/json");
        (warehouse == 11 ? answers.by11 : answers.by12)[static_cast<std::size_t>(i)] =
            r ? std::to_string(r->status) + " " + r->body : "no answer";
      }
    };
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int p = 0; p < kPairs; ++p) {
      threads.emplace_back(racer, p, 11);
      threads.emplace_back(racer, p, 12);
    }
    for (std::thread& t : threads) t.join();
    std::printf("[ check-first race ] %d orders answered in %.2f s\n", n,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return answers;
  }

  // The API order first + i was not created through.
  ApiProcess& OtherApi(int i) { return i % 2 ? api1_ : api2_; }

  ApiProcess api1_;
  ApiProcess api2_;
};

// 200 orders asked of stores 11 and 12, each accepted by both at once: exactly one acceptance
// wins each order; the other is told "failed to allocate stock".
TEST_F(CheckFirstRace, TwoApisAcceptingOneOrderAtOnceHaveExactlyOneWinner) {
  constexpr int kOrders = 200;
  constexpr std::int64_t kFirst = 1000;
  Create(kFirst, kOrders, "[[11,12]]");
  const auto yes = [](int) { return true; };
  Answers answers = Race(kFirst, kOrders, yes, yes);

  const std::string ok = "200 " + kOk, failed = "200 " + kFailed;
  int wins11 = 0, wins12 = 0;
  for (int i = 0; i < kOrders; ++i) {
    const std::int64_t order = kFirst + i;
    const std::string& by11 = answers.by11[static_cast<std::size_t>(i)];
    const std::string& by12 = answers.by12[static_cast<std::size_t>(i)];
    const bool won11 = by11 == ok, won12 = by12 == ok;
    ASSERT_NE(won11, won12) << "order " << order << ": 11 got " << by11 << ", 12 got " << by12;
    EXPECT_EQ(won11 ? by12 : by11, failed) << "order " << order;
    (won11 ? wins11 : wins12)++;
    ordered_json a = AllocationOf(OtherApi(i), order);
    EXPECT_EQ(a["state"], "confirmed") << order;
    EXPECT_EQ(a["confirmedWarehouseId"], won11 ? 11 : 12) << order;
    EXPECT_EQ(Checks(OtherApi(i), order), won11 ? (Strings{"11:accepted", "12:rejected"})
                                                : (Strings{"11:rejected", "12:accepted"}))
        << order;
  }
  std::printf("[ check-first race ] store 11 won %d, store 12 won %d\n", wins11, wins12);
  // One accepted event to each winner, one rejected event to each loser, none twice.
  const StoreOptions db = api1_.store_options();
  const std::string per_check =
      "SELECT count(*) FROM outbox_events e JOIN checks c ON c.id = e.check_id WHERE ";
  EXPECT_EQ(testing::QueryOne(db, per_check + "e.action = 'accepted' AND c.status = 'accepted' "
                                              "AND e.warehouse_id = c.warehouse_id"),
            std::to_string(kOrders));
  EXPECT_EQ(testing::QueryOne(db, per_check + "e.action = 'rejected' AND c.status = 'rejected' "
                                              "AND e.warehouse_id = c.warehouse_id"),
            std::to_string(kOrders));
  EXPECT_EQ(testing::QueryOne(db,
                              "SELECT count(*) FROM outbox_events WHERE action IN "
                              "('accepted', 'rejected', 'timeout')"),
            std::to_string(2 * kOrders));
  EXPECT_THAT(api2_.Get("/metrics", "").body,
              HasSubstr("allocation_relay_checks{status=\"asked\"} 0\n"
                        "allocation_relay_checks{status=\"accepted\"} 200\n"
                        "allocation_relay_checks{status=\"rejected\"} 200\n"));
}

// 100 orders asked of stores 11 and 12 before warehouse 3. On even orders both reject at once:
// the group is handed to warehouse 3 exactly once (one request, never none). On odd orders 11
// accepts while 12 rejects: 11 wins whichever comes first, and 3 is never asked.
TEST_F(CheckFirstRace, AnswersAtOnceHandTheGroupOnOnceAndOnlyWhenEveryStoreSaidNo) {
  constexpr int kOrders = 100;
  constexpr std::int64_t kFirst = 2000;
  Create(kFirst, kOrders, "[[11,12,3]]");
  Answers answers = Race(
      kFirst, kOrders, [](int i) { return i % 2 == 1; }, [](int) { return false; });
  for (int i = 0; i < kOrders; ++i) {
    const std::int64_t order = kFirst + i;
    const std::string& by11 = answers.by11[static_cast<std::size_t>(i)];
    const std::string& by12 = answers.by12[static_cast<std::size_t>(i)];
    EXPECT_EQ(by11, "200 " + kOk) << order;
    ordered_json a = AllocationOf(OtherApi(i), order);
    if (i % 2 == 0) {
      EXPECT_EQ(by12, "200 " + kOk) << order;
      EXPECT_EQ(a["state"], "open") << order;
      EXPECT_EQ(Checks(OtherApi(i), order), (Strings{"11:rejected", "12:rejected"})) << order;
      EXPECT_EQ(Requests(OtherApi(i), order), Strings{"3:allocated"}) << order;
    } else {
      // 12's rejection either came first (taken, 11 still asked) or after the acceptance.
      EXPECT_TRUE(by12 == "200 " + kOk || by12 == "200 " + kFailed) << order << ": " << by12;
      EXPECT_EQ(a["confirmedWarehouseId"], 11) << order;
      EXPECT_EQ(Checks(OtherApi(i), order), (Strings{"11:accepted", "12:rejected"})) << order;
      EXPECT_EQ(Requests(OtherApi(i), order), Strings{}) << order;
    }
  }
  EXPECT_EQ(testing::QueryOne(api1_.store_options(),
                              "SELECT count(*) FROM outbox_events WHERE warehouse_id = 3"),
            std::to_string(kOrders / 2));
}

}  // namespace
}  // namespace allocation_relay
