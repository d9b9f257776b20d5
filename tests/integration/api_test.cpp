// allocation-api as a black box: the real binary, a real SQLite file, real HTTP on loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <regex>
#include <set>
#include <thread>

#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/raw_http.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::ordered_json;
using testing::ApiProcess;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::HttpAnswer;

std::vector<std::string> Keys(const ordered_json& object) {
  std::vector<std::string> keys;
  for (auto& [k, v] : object.items()) keys.push_back(k);
  return keys;
}

std::vector<std::int64_t> Ids(const HttpAnswer& answer) {
  std::vector<std::int64_t> ids;
  ordered_json j = answer.Json();
  EXPECT_EQ(j["status"], "ok") << answer.body;
  for (const auto& e : j["allocation_requests"]) ids.push_back(e["id"].get<std::int64_t>());
  return ids;
}

const std::regex kIsoDate(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2})");

// The seed page's response example, rebuilt from equivalent data: order 15 asked from
// Amsterdam (3) and Tokyo (4), both outdated.
TEST(ApiList, ReproducesTheSeedPageResponseFieldForField) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4]]");
  ASSERT_EQ(api.Post("/allocations/15/cancel", "").Json()["status"], "ok");
  HttpAnswer a = api.Get("/allocation-requests?status=all");
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.content_type, "application/json");
  ordered_json j = a.Json();
  EXPECT_EQ(Keys(j), (std::vector<std::string>{"status", "allocation_requests"}));
  EXPECT_EQ(j["status"], "ok");
  ASSERT_EQ(j["allocation_requests"].size(), 2u);
  const char* names[] = {"Amsterdam", "Tokyo"};
  for (int i = 0; i < 2; ++i) {
    ordered_json e = j["allocation_requests"][i];
    EXPECT_EQ(Keys(e), (std::vector<std::string>{"id", "status", "warehouseId", "warehouseName",
                                                 "expirationDate", "order", "lines", "createdAt"}));
    EXPECT_EQ(e["id"], i + 1);
    EXPECT_EQ(e["status"], "outdated");
    EXPECT_EQ(e["warehouseId"], i == 0 ? 3 : 4);
    EXPECT_EQ(e["warehouseName"], names[i]);
    EXPECT_TRUE(std::regex_match(e["expirationDate"].get<std::string>(), kIsoDate)) << e;
    EXPECT_TRUE(std::regex_match(e["createdAt"].get<std::string>(), kIsoDate)) << e;
    EXPECT_EQ(e["order"].dump(), R"({"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":15})");
    EXPECT_EQ(e["lines"].dump(), R"([{"lineId":73,"quantity":5,"stockItemId":1}])");
  }
}

TEST(ApiList, DefaultIsPendingAndStatusTakesListsPendingAndAll) {
  ApiProcess api;
  api.CreateAllocation(1, "[[3,4],[7]]");                  // ids 1 (3), 2 (4)
  api.CreateAllocation(2, "[[3],[7]]");                    // id 3 (3)
  api.CreateAllocation(3, "[[4]]");                        // id 4 (4)
  ASSERT_EQ(api.Update(1, "confirmed")["success"], true);  // 1 confirmed, 2 outdated
  ASSERT_EQ(api.Update(3, "rejected")["success"], true);   // 3 rejected, 5 (7) allocated
  EXPECT_THAT(Ids(api.Get("/allocation-requests")), ElementsAre(4, 5));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=pending")), ElementsAre(4, 5));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=all")), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=confirmed")), ElementsAre(1));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=outdated,rejected")), ElementsAre(2, 3));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=sent")), ElementsAre());
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=pending,confirmed")), ElementsAre(1, 4, 5));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=timed-out,all")),
              ElementsAre(1, 2, 3, 4, 5));
}

TEST(ApiList, FiltersByOrderAndWarehouseAndIgnoresUnknownParameters) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4]]");  // 1, 2
  api.CreateAllocation(16, "[[3]]");    // 3
  api.CreateAllocation(17, "[[7]]");    // 4
  EXPECT_THAT(Ids(api.Get("/allocation-requests?order=15")), ElementsAre(1, 2));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?order=15,17")), ElementsAre(1, 2, 4));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?order=99")), ElementsAre());
  EXPECT_THAT(Ids(api.Get("/allocation-requests?warehouse=3")), ElementsAre(1, 3));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?warehouse=4,7")), ElementsAre(2, 4));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?warehouse=3&order=15")), ElementsAre(1));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?foo=bar&limit=1")), ElementsAre(1, 2, 3, 4));
}

TEST(ApiList, EveryInvalidParameterIsReportedTogetherWithCentraWording) {
  ApiProcess api;
  HttpAnswer a =
      api.Get("/allocation-requests?status=sent,%3F,bogus&order=15,x&warehouse=,3&page=0&after=-1");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(
      a.body,
      R"({"status":"no","errorMessages":{)"
      R"("status":"Expected \"status\" to be a single or a comma-separated list of request statuses, or \"all\", got \"?\"",)"
      R"("order":"Expected \"order\" to be a single or a comma-separated list of order numbers, got \"x\"",)"
      R"("warehouse":"Expected \"warehouse\" to be a single or a comma-separated list of warehouse IDs, got \"\"",)"
      R"("page":"Expected \"page\" to be a positive integer, got \"0\"",)"
      R"("after":"Expected \"after\" to be a non-negative integer (an allocation request id), got \"-1\""}})");
}

TEST(ApiList, TheReferenceUnknownStatusExample) {
  ApiProcess api;
  EXPECT_EQ(api.Get("/allocation-requests?status=?").body,
            R"({"status":"no","errorMessages":{"status":"Expected \"status\" to be a single or a )"
            R"(comma-separated list of request statuses, or \"all\", got \"?\""}})");
  for (const char* bad : {"page=abc", "page=-2", "page=1.5", "page="}) {
    EXPECT_THAT(api.Get(std::string("/allocation-requests?") + bad).body,
                HasSubstr("Expected \\\"page\\\" to be a positive integer"))
        << bad;
  }
  EXPECT_THAT(api.Get("/allocation-requests?status=Sent").body, HasSubstr("got \\\"Sent\\\""));
}

TEST(ApiList, PagesHoldOneHundredInIdOrderAndEndWithAnEmptyArray) {
  ApiProcess api;
  for (int i = 0; i < 125; ++i) api.CreateAllocation(1000 + i, "[[3]]");
  auto p1 = Ids(api.Get("/allocation-requests"));
  auto p1b = Ids(api.Get("/allocation-requests?page=1"));
  auto p2 = Ids(api.Get("/allocation-requests?page=2"));
  auto p3 = Ids(api.Get("/allocation-requests?page=3"));
  ASSERT_EQ(p1.size(), 100u);
  EXPECT_EQ(p1, p1b);
  ASSERT_EQ(p2.size(), 25u);
  EXPECT_EQ(p1.front(), 1);
  EXPECT_EQ(p1.back(), 100);
  EXPECT_EQ(p2.front(), 101);
  EXPECT_TRUE(std::is_sorted(p2.begin(), p2.end()));
  EXPECT_TRUE(p3.empty());
  EXPECT_EQ(api.Get("/allocation-requests?page=99999999999999999").body,
            R"({"status":"ok","allocation_requests":[]})");
  EXPECT_THAT(Ids(api.Get("/allocation-requests?after=120")), ElementsAre(121, 122, 123, 124, 125));
  EXPECT_EQ(Ids(api.Get("/allocation-requests?after=100&page=1")), p2);
}

// Confirming while paging through pending requests shifts page-number pages (entries are
// skipped); `after` keyset paging sees every request that stayed pending.
TEST(ApiList, AfterPagingSkipsNothingWhileStatusesChange) {
  ApiProcess api;
  for (int i = 0; i < 250; ++i) api.CreateAllocation(1000 + i, "[[3]]");
  std::set<std::int64_t> seen;
  std::int64_t after = 0;
  std::set<std::int64_t> confirmed;
  for (int round = 0;; ++round) {
    auto ids = Ids(api.Get("/allocation-requests?after=" + std::to_string(after)));
    if (ids.empty()) break;
    seen.insert(ids.begin(), ids.end());
    after = ids.back();
    // Meanwhile the warehouse confirms the first ten of what it just read.
    for (int k = 0; k < 10; ++k) {
      ASSERT_EQ(api.Update(ids[static_cast<std::size_t>(k)], "confirmed")["success"], true);
      confirmed.insert(ids[static_cast<std::size_t>(k)]);
    }
    ASSERT_LT(round, 10);
  }
  EXPECT_EQ(seen.size(), 250u);
  // The same walk with page numbers misses entries because earlier pages shrink under it.
  std::set<std::int64_t> paged;
  for (int page = 1;; ++page) {
    auto ids = Ids(api.Get("/allocation-requests?page=" + std::to_string(page)));
    if (ids.empty()) break;
    paged.insert(ids.begin(), ids.end());
    for (int k = 0; k < 10 && k < static_cast<int>(ids.size()); ++k) {
      api.Update(ids[static_cast<std::size_t>(k)], "confirmed");
    }
  }
  EXPECT_LT(paged.size(), 250u - confirmed.size());
}

TEST(ApiUpdate, ConfirmAndRejectAnswerAsCentra) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4],[7]]");  // 1, 2
  EXPECT_EQ(api.Put("/allocation-request", R"({"id": 1, "status": "confirmed"})").body,
            R"({"success":true,"errorMessages":[]})");
  EXPECT_EQ(
      api.Put("/allocation-request", R"({"id": 1, "status": "confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status confirmed."]})");
  EXPECT_EQ(
      api.Put("/allocation-request", R"({"id": 2, "status": "rejected"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status outdated."]})");
  EXPECT_EQ(api.Put("/allocation-request", R"({"id": 99, "status": "confirmed"})").body,
            R"({"success":false,"errorMessages":["Allocation request not found"]})");
  api.CreateAllocation(16, "[[3],[4]]");  // 3
  EXPECT_EQ(api.Update(3, "rejected")["success"], true);
  EXPECT_EQ(
      api.Put("/allocation-request", R"({"id": 3, "status": "confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status rejected."]})");
  // 16 moved on to warehouse 4.
  EXPECT_THAT(Ids(api.Get("/allocation-requests?order=16")), ElementsAre(4));
}

TEST(ApiUpdate, MalformedBodiesGetFieldKeyedErrors) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3]]");
  const std::string kBadStatus =
      R"({"success":false,"errorMessages":{"status":"invalid value, expected 'confirmed' or 'rejected'"}})";
  EXPECT_EQ(api.Put("/allocation-request", R"({"id": 1, "status": "accepted"})").body, kBadStatus);
  EXPECT_EQ(api.Put("/allocation-request", R"({"id": 1})").body, kBadStatus);
  EXPECT_EQ(api.Put("/allocation-request", R"({"id": 1, "status": 1})").body, kBadStatus);
  for (const char* body :
       {R"({"status": "confirmed"})", R"({"id": "1", "status": "confirmed"})",
        R"({"id": 1.5, "status": "confirmed"})", R"({"id": null, "status": "confirmed"})",
        R"({"id": -1, "status": "confirmed"})",
        R"({"id": 99999999999999999999, "status": "confirmed"})"}) {
    ordered_json j = api.Put("/allocation-request", body).Json();
    EXPECT_EQ(j["success"], false) << body;
    EXPECT_EQ(Keys(j["errorMessages"]), std::vector<std::string>{"id"}) << body;
  }
  ordered_json both = api.Put("/allocation-request", R"({"id": "x", "status": "x"})").Json();
  EXPECT_EQ(Keys(both["errorMessages"]), (std::vector<std::string>{"id", "status"}));
  for (const char* body : {"", "not json", "[1,2]", "\"x\"", "{\"id\": 1,", "null", "42"}) {
    ordered_json j = api.Put("/allocation-request", body).Json();
    EXPECT_EQ(j["success"], false) << body;
    EXPECT_EQ(Keys(j["errorMessages"]), std::vector<std::string>{"body"}) << body;
  }
  EXPECT_THAT(Ids(api.Get("/allocation-requests")), ElementsAre(1));  // nothing changed
}

TEST(ApiAuth, MissingOrUnknownTokenIs401AndUngrantedEndpointIs403) {
  ApiProcess api;
  for (const char* token : {"", "nope", "oms-token2", "OMS-TOKEN"}) {
    HttpAnswer a = api.Get("/allocation-requests", token);
    EXPECT_EQ(a.status, 401) << token;
    EXPECT_EQ(a.body, R"({"status":"Unauthorized"})");
  }
  HttpAnswer put =
      api.Put("/allocation-request", R"({"id":1,"status":"confirmed"})", "reader-token");
  EXPECT_EQ(put.status, 403);
  EXPECT_EQ(put.body, R"({"status":"Not Allowed"})");
  EXPECT_EQ(api.Post("/allocations", "{}", "pos3-token").status, 403);
  EXPECT_EQ(api.Get("/allocations/1", "pos3-token").status, 403);
  EXPECT_EQ(api.Post("/allocations/1/cancel", "", "reader-token").status, 403);
  EXPECT_EQ(api.Get("/allocation-requests", "reader-token").status, 200);
}

TEST(ApiAuth, ScopedTokenSeesAndUpdatesOnlyItsWarehouses) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4]]");  // 1 (3), 2 (4)
  EXPECT_THAT(Ids(api.Get("/allocation-requests", "pos3-token")), ElementsAre(1));
  EXPECT_THAT(Ids(api.Get("/allocation-requests?status=all&warehouse=4", "pos3-token")),
              ElementsAre());
  EXPECT_EQ(api.Put("/allocation-request", R"({"id":2,"status":"confirmed"})", "pos3-token").body,
            R"({"success":false,"errorMessages":["Allocation request not found"]})");
  EXPECT_EQ(api.Update(1, "confirmed", "pos3-token")["success"], true);
}

TEST(ApiIntake, CreatesFromGroupsOrRuleAndAnswersWithTheAllocation) {
  ApiProcess api;
  ordered_json a = api.CreateAllocation(15, "[[3,4],[7]]");
  EXPECT_EQ(a["status"], "ok");
  EXPECT_EQ(Keys(a["allocation"]),
            (std::vector<std::string>{"order", "lines", "warehouses", "state",
                                      "confirmedWarehouseId", "allocation_requests"}));
  EXPECT_EQ(a["allocation"]["state"], "open");
  EXPECT_EQ(a["allocation"]["warehouses"].dump(), "[[3,4],[7]]");
  EXPECT_TRUE(a["allocation"]["confirmedWarehouseId"].is_null());
  EXPECT_EQ(a["allocation"]["allocation_requests"].size(), 2u);
  EXPECT_EQ(a["allocation"]["allocation_requests"][0]["status"], "allocated");

  HttpAnswer by_rule = api.Post(
      "/allocations",
      R"({"order":{"id":"ab12","number":16},"lines":[{"lineId":1,"quantity":2,"stockItemId":3}],"rule":"nordics"})");
  EXPECT_EQ(by_rule.Json()["allocation"]["warehouses"].dump(), "[[3,4],[7]]");

  api.Update(1, "confirmed");
  ordered_json got = api.Get("/allocations/15").Json();
  EXPECT_EQ(got["allocation"]["state"], "confirmed");
  EXPECT_EQ(got["allocation"]["confirmedWarehouseId"], 3);
  EXPECT_EQ(got["allocation"]["allocation_requests"][1]["status"], "outdated");
  EXPECT_EQ(api.Get("/allocations/404").body,
            R"({"status":"no","errorMessages":{"order":"Allocation not found"}})");
  EXPECT_EQ(api.Get("/allocations/abc").body,
            R"({"status":"no","errorMessages":{"order":"Allocation not found"}})");
}

// The intake answer is built from what the write stored, without reading it back: byte for byte
// the GET /allocations/<n> answer right after it (lines in line id order, the group started).
TEST(ApiIntake, TheAnswerIsExactlyWhatGetAnswersRightAfter) {
  ApiProcess api;
  const std::vector<std::pair<std::int64_t, std::string>> bodies = {
      {15,
       R"({"order":{"id":"ab12","number":15},"lines":[{"lineId":9,"quantity":2,"stockItemId":3},)"
       R"({"lineId":1,"quantity":1,"stockItemId":7}],"warehouses":[[3,4],[7]]})"},
      {16,
       R"({"order":{"id":"CD34","number":16},"lines":[{"lineId":5,"quantity":1,"stockItemId":1}],)"
       R"("rule":"nordics"})"},
      {17,
       R"({"order":{"id":"ef","number":17},"lines":[{"lineId":5,"quantity":1,"stockItemId":1}],)"
       R"("warehouses":[[4],[3]]})"}};
  for (const auto& [number, body] : bodies) {
    HttpAnswer created = api.Post("/allocations", body);
    ASSERT_EQ(created.status, 200) << created.body;
    EXPECT_EQ(created.body, api.Get("/allocations/" + std::to_string(number)).body);
  }
}

TEST(ApiIntake, ValidationErrorsAreKeyedByTopLevelField) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3]]");
  struct Case {
    std::string body;
    std::vector<std::string> keys;
  };
  const std::string lines = R"("lines":[{"lineId":1,"quantity":1,"stockItemId":1}])";
  const std::string order = R"("order":{"id":"ab","number":20})";
  std::vector<Case> cases = {
      {"[]", {"body"}},
      {"nonsense", {"body"}},
      {R"({"order":{"id":"ab","number":15},)" + lines + R"(,"warehouses":[[3]]})", {"order"}},
      {R"({"order":{"id":"xyz!","number":21},)" + lines + R"(,"warehouses":[[3]]})", {"order"}},
      {R"({"order":{"id":"ab","number":"21"},)" + lines + R"(,"warehouses":[[3]]})", {"order"}},
      {R"({"order":"ab",)" + lines + R"(,"warehouses":[[3]]})", {"order"}},
      {"{" + order + R"(,"warehouses":[[3]]})", {"lines"}},
      {"{" + order + R"(,"lines":[],"warehouses":[[3]]})", {"lines"}},
      {"{" + order + R"(,"lines":[{"lineId":1,"quantity":0,"stockItemId":1}],"warehouses":[[3]]})",
       {"lines"}},
      {"{" + order + R"(,"lines":[{"lineId":1,"quantity":-2,"stockItemId":1}],"warehouses":[[3]]})",
       {"lines"}},
      {"{" + order +
           R"(,"lines":[{"lineId":1,"quantity":"1","stockItemId":1}],"warehouses":[[3]]})",
       {"lines"}},
      {"{" + order +
           R"(,"lines":[{"lineId":1,"quantity":1,"stockItemId":1},{"lineId":1,"quantity":1,"stockItemId":1}],"warehouses":[[3]]})",
       {"lines"}},
      {"{" + order + "," + lines + R"(,"warehouses":[[3],[99]]})", {"warehouses"}},
      {"{" + order + "," + lines + R"(,"warehouses":[[3],[]]})", {"warehouses"}},
      {"{" + order + "," + lines + R"(,"warehouses":[]})", {"warehouses"}},
      {"{" + order + "," + lines + R"(,"warehouses":[3]})", {"warehouses"}},
      {"{" + order + "," + lines + R"(,"warehouses":[[3],[3]]})", {"warehouses"}},
      {"{" + order + "," + lines + "}", {"warehouses"}},
      {"{" + order + "," + lines + R"(,"rule":"southern"})", {"rule"}},
      {"{" + order + "," + lines + R"(,"rule":5})", {"rule"}},
      {R"({"order":5,"lines":5,"warehouses":5})", {"order", "lines", "warehouses"}},
  };
  for (const Case& c : cases) {
    HttpAnswer a = api.Post("/allocations", c.body);
    EXPECT_EQ(a.status, 200) << c.body;
    ordered_json j = a.Json();
    EXPECT_EQ(j["status"], "no") << c.body;
    EXPECT_EQ(Keys(j["errorMessages"]), c.keys) << c.body << " -> " << a.body;
  }
  EXPECT_EQ(api.Post("/allocations", "{" + order + "," + lines + R"(,"warehouses":[[3]]})")
                .Json()["status"],
            "ok");
  EXPECT_EQ(api.Post("/allocations",
                     R"({"order":{"id":"ab","number":15},)" + lines + R"(,"warehouses":[[3]]})")
                .body,
            R"({"status":"no","errorMessages":{"order":"Order 15 is already allocated"}})");
}

TEST(ApiIntake, CancelOutdatesOpenRequestsOnce) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4]]");
  ordered_json c = api.Post("/allocations/15/cancel", "").Json();
  EXPECT_EQ(c["status"], "ok");
  EXPECT_EQ(c["allocation"]["state"], "cancelled");
  EXPECT_EQ(c["allocation"]["allocation_requests"][0]["status"], "outdated");
  EXPECT_EQ(
      api.Post("/allocations/15/cancel", "").body,
      R"({"status":"no","errorMessages":{"order":"Allocation is cancelled and can no longer be cancelled"}})");
  EXPECT_EQ(api.Post("/allocations/16/cancel", "").body,
            R"({"status":"no","errorMessages":{"order":"Allocation not found"}})");
  EXPECT_EQ(
      api.Put("/allocation-request", R"({"id":1,"status":"confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status outdated."]})");
}

TEST(ApiHttp, UnknownPathsWrongMethodsAndHugeBodies) {
  ApiProcess api;
  HttpAnswer unknown = api.Get("/orders");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.content_type, "application/json");
  EXPECT_EQ(api.Get("/allocation-requests/").status, 404);
  HttpAnswer not_utf8 = api.Get("/%97%FF");  // echoed in the message: must stay valid JSON
  EXPECT_EQ(not_utf8.status, 404);
  EXPECT_EQ(not_utf8.Json()["status"], "no");
  EXPECT_EQ(api.Get("/allocations/15/cancel/x").status, 404);
  HttpAnswer wrong = api.Post("/allocation-requests", "{}");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.Json()["status"], "no");
  EXPECT_EQ(api.Send("DELETE", "/allocation-request", "", "oms-token").status, 405);
  EXPECT_EQ(api.Get("/allocation-request").status, 405);
  EXPECT_EQ(api.Send("PATCH", "/allocations", "{}", "oms-token").status, 405);
  HttpAnswer big = api.Post("/allocations", std::string(70000, ' '));  // max_body is 65536
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.Json()["status"], "no");
  EXPECT_EQ(api.Get("/health").status, 200);  // still serving
}

// Answers are whole: a Range header gets the full body with 200 (never a slice marked 200), and
// a JSON body sent as form-urlencoded (curl -d's default) is not cut off at httplib's 8 KiB.
TEST(ApiHttp, RangesAreIgnoredAndFormEncodedBodiesUpToMaxBodyAreRead) {
  ApiProcess api;
  testing::RawConnection c(api.port());
  ASSERT_TRUE(c.connected());
  const std::string health = R"({"status":"ok"})";
  testing::RawAnswer ranged = c.Exchange(
      "GET /health HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\nIf-Range: \"x\"\r\n\r\n", 5s);
  EXPECT_EQ(ranged.status, 200) << ranged.Describe();
  EXPECT_EQ(ranged.body, health);
  EXPECT_EQ(ranged.Header("Content-Range"), "");
  EXPECT_EQ(ranged.Header("Vary"), "Accept-Encoding");

  const std::string body =
      R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":15},)"
      R"("lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"warehouses":[[3]]})" +
      std::string(15000, ' ');
  testing::RawAnswer posted = c.Exchange(
      "POST /allocations HTTP/1.1\r\nHost: x\r\nAPI-Authorization: oms-token\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body,
      5s);
  EXPECT_EQ(posted.status, 200) << posted.Describe();
  EXPECT_THAT(posted.body, HasSubstr(R"("status":"ok")"));
  EXPECT_EQ(api.Get("/allocations/15").status, 200);
}

TEST(ApiHttp, HealthAndMetricsNeedNoToken) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4]]");
  api.Get("/allocation-requests", "nope");
  HttpAnswer health = api.Get("/health", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  HttpAnswer metrics = api.Get("/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.content_type, HasSubstr("text/plain"));
  EXPECT_THAT(metrics.body,
              HasSubstr("allocation_relay_allocation_requests{status=\"allocated\"} 2"));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_allocations{state=\"open\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_http_requests_total{endpoint=\"POST "
                                      "/allocations\",code=\"200\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_http_requests_total{endpoint=\"GET "
                                      "/allocation-requests\",code=\"401\"} 1"));
  EXPECT_THAT(metrics.body,
              HasSubstr("allocation_relay_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_http_request_duration_seconds_count"));
}

// Another process holding the write lock past busy_timeout: 503 with a JSON body, nothing
// lost, and the API recovers by itself when the lock goes.
TEST(ApiRobustness, LockedDatabaseIs503AndRecovers) {
  ApiProcess api("", "200ms");
  api.CreateAllocation(15, "[[3]]");
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(api.DatabasePath().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  HttpAnswer locked = api.Put("/allocation-request", R"({"id":1,"status":"confirmed"})");
  EXPECT_EQ(locked.status, 503);
  EXPECT_EQ(locked.Json()["status"], "no");
  EXPECT_TRUE(locked.Json()["errorMessages"].is_array());
  EXPECT_EQ(
      api.Post(
             "/allocations",
             R"({"order":{"id":"ab","number":16},"lines":[{"lineId":1,"quantity":1,"stockItemId":1}],"warehouses":[[3]]})")
          .status,
      503);
  EXPECT_EQ(api.Get("/allocation-requests").status, 200);  // readers are not blocked in WAL
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_EQ(api.Update(1, "confirmed")["success"], true);
  EXPECT_EQ(api.CreateAllocation(16, "[[3]]")["status"], "ok");
}

TEST(ApiRobustness, HealthIs503WhileTheDatabaseFileIsGoneAndRecovers) {
  ApiProcess api;
  ASSERT_EQ(api.Get("/health", "").status, 200);
  std::string moved = api.DatabasePath() + ".moved";
  ASSERT_EQ(std::rename(api.DatabasePath().c_str(), moved.c_str()), 0);
  HttpAnswer gone = api.Get("/health", "");
  EXPECT_EQ(gone.status, 503);
  EXPECT_EQ(gone.Json()["status"], "no");
  EXPECT_THAT(api.Get("/metrics", "").body, HasSubstr("allocation_relay_database_up 0"));
  ASSERT_EQ(std::rename(moved.c_str(), api.DatabasePath().c_str()), 0);
  EXPECT_EQ(api.Get("/health", "").status, 200);
  EXPECT_THAT(api.Get("/metrics", "").body, HasSubstr("allocation_relay_database_up 1"));
}

TEST(ApiRobustness, SighupReloadsKeysAndKeepsServing) {
  ApiProcess api;
  EXPECT_EQ(api.Get("/allocation-requests", "new-token").status, 401);
  api.dir().Write("relay.yaml", ApiProcess::Config(api.options()) + "bogus_key: 1\n");
  api.process().Signal(SIGHUP);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return api.process().Stderr().find("reload failed") != std::string::npos; }, 10s));
  EXPECT_EQ(api.Get("/allocation-requests").status, 200);
  std::string config = ApiProcess::Config(api.options());
  std::string key = "    - {name: new, sha256: " + Sha256Hex("new-token") +
                    ", endpoints: [GET /allocation-requests]}\n";
  config.insert(config.find("\ndispatcher:") + 1, key);
  api.dir().Write("relay.yaml", config);
  api.process().Signal(SIGHUP);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return api.process().Stderr().find("configuration reloaded") != std::string::npos; },
      10s));
  EXPECT_EQ(api.Get("/allocation-requests", "new-token").status, 200);
}

// SPEC section 13: a key with `rate` is answered 429 with Retry-After past its burst, and goes
// through again once real time has refilled a token (2 a second: half a second).
TEST(ApiRateLimit, PastTheBurstIs429WithRetryAfterAndRecovers) {
  testing::ApiProcessOptions options;
  options.more_keys = "    - {name: limited, sha256: " + Sha256Hex("limited-token") +
                      ", endpoints: [GET /allocation-requests], "
                      "rate: {per_second: 2, burst: 2}}\n";
  ApiProcess api(options);
  // A slow machine's calls may straddle a refill; six calls are far more than enough.
  int ok = 0;
  HttpAnswer refused;
  while (refused.status != 429 && ok < 6) {
    HttpAnswer a = api.Get("/allocation-requests", "limited-token");
    if (a.status == 200) {
      ++ok;
    } else {
      refused = a;
    }
  }
  ASSERT_EQ(refused.status, 429) << ok << " calls went through";
  EXPECT_GE(ok, 2);
  EXPECT_EQ(refused.body, R"({"status":"no","errorMessages":["Too many requests"]})");
  EXPECT_EQ(refused.content_type, "application/json");
  ASSERT_TRUE(refused.headers.contains("Retry-After"));
  EXPECT_EQ(refused.headers.find("Retry-After")->second, "1");
  EXPECT_EQ(api.Get("/allocation-requests").status, 200) << "other keys are not limited";
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(api.Get("/allocation-requests", "limited-token").status, 200);
  EXPECT_THAT(api.Get("/metrics", "").body,
              HasSubstr("allocation_relay_rate_limited_total{key=\"limited\"} 1\n"));
}

TEST(ApiRobustness, SigtermUnderLoadAnswersEveryAcceptedRequestAndExitsZero) {
  ApiProcess api;
  for (int i = 0; i < 20; ++i) api.CreateAllocation(100 + i, "[[3,4]]");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0}, bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", api.port());
      c.set_read_timeout(std::chrono::seconds(10));
      while (!stop) {
        auto r = c.Get("/allocation-requests", {{"API-Authorization", "oms-token"}});
        if (!r) {
          // Not answered: refused after the listener closed, or a keep-alive connection the
          // server closed before reading the next request (a GET the client may retry).
          ++refused;
          std::this_thread::sleep_for(1ms);
        } else if (r->status == 200 && r->body.ends_with("]}")) {
          ++ok;
        } else {
          ++bad;
        }
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  api.process().Signal(SIGTERM);
  EXPECT_EQ(api.process().Wait(15s), 0) << api.process().Stderr();
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(bad.load(), 0);  // every answer was a complete 200
  std::printf("answered %d, not answered %d\n", ok.load(), refused.load());
  EXPECT_THAT(api.process().Stderr(), HasSubstr("api stopped"));
}

TEST(ApiKeygen, PrintsATokenAndTheConfigEntryOfItsHash) {
  testing::TempDir dir;
  testing::CommandResult r =
      testing::RunCommand({API_BINARY, "keygen", "--name", "pos-oslo"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("token: ([0-9a-f]{64})\n"))) << r.out;
  std::string token = m[1];
  EXPECT_THAT(r.out, HasSubstr("- name: pos-oslo"));
  EXPECT_THAT(r.out, HasSubstr("sha256: " + Sha256Hex(token)));
  testing::CommandResult again =
      testing::RunCommand({API_BINARY, "keygen", "--name", "x"}, dir.path());
  EXPECT_EQ(again.out.find(token), std::string::npos);  // a new token every time
  // The printed entry is valid config.
  std::string entry = r.out.substr(r.out.find("    - name:"));
  dir.Write("c.yaml", "api:\n  keys:\n" + entry);
  testing::CommandResult check = testing::RunCommand(
      {API_BINARY, "--check-config", "--config", dir.File("c.yaml")}, dir.path());
  EXPECT_EQ(check.exit_code, 0) << check.err;
}

}  // namespace
}  // namespace allocation_relay
