// GET /orders/<orderNumber>/allocation-requests (SPEC section 12, Centra's "Get allocation
// requests of an order") on the real allocation-api over loopback HTTP: every request of the
// order (any status by default), `status` as on GET /allocation-requests, `warehouse` by name,
// Centra's `msg` for an unknown order, its own grant, scoped keys. Runs on SQLite and, as
// `postgresql.ApiOrderRequests.*`, on PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "support/api_process.h"
#include "support/services_test.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::ordered_json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::HttpAnswer;

const std::regex kIsoDate(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2})");

std::string OrderPath(const std::string& number, const std::string& query = "") {
  return "/orders/" + number + "/allocation-requests" + (query.empty() ? "" : "?" + query);
}

std::vector<std::int64_t> Ids(const HttpAnswer& answer) {
  std::vector<std::int64_t> ids;
  ordered_json j = answer.Json();
  EXPECT_EQ(j["status"], "ok") << answer.body;
  for (const auto& e : j["allocation_requests"]) ids.push_back(e["id"].get<std::int64_t>());
  return ids;
}

// The dates of request `id` (createdAt, expirationDate) as GET /allocation-requests shows them:
// the only values of an entry a test of the real binary cannot know beforehand.
struct Dates {
  std::string created;
  std::string expires;
};
Dates DatesOf(ApiProcess& api, std::int64_t id) {
  ordered_json list =
      api.Get("/allocation-requests?status=all&after=" + std::to_string(id - 1)).Json();
  const ordered_json& e = list["allocation_requests"].at(0);
  EXPECT_EQ(e["id"], id);
  Dates d{e["createdAt"].get<std::string>(), e["expirationDate"].get<std::string>()};
  EXPECT_TRUE(std::regex_match(d.created, kIsoDate)) << d.created;
  EXPECT_TRUE(std::regex_match(d.expires, kIsoDate)) << d.expires;
  return d;
}

// One entry of order `number` (ApiProcess::CreateAllocation's order id and line), field for
// field in the documented order.
std::string Entry(std::int64_t id, const std::string& status, int warehouse,
                  const std::string& name, std::int64_t number, const Dates& dates) {
  return R"({"id":)" + std::to_string(id) + R"(,"status":")" + status + R"(","warehouseId":)" +
         std::to_string(warehouse) + R"(,"warehouseName":")" + name + R"(","expirationDate":")" +
         dates.expires + R"(","order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" +
         std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"createdAt":")" + dates.created +
         R"("})";
}

std::string OkBody(const std::vector<std::string>& entries) {
  std::string body = R"({"status":"ok","allocation_requests":[)";
  for (std::size_t i = 0; i < entries.size(); ++i) body += (i ? "," : "") + entries[i];
  return body + "]}";
}

const std::string kEmpty = R"({"status":"ok","allocation_requests":[]})";

std::string UnknownOrder(const std::string& number) {
  return R"({"status":"no","msg":"Unknown order id: )" + number + R"("})";
}

// With the dispatcher delivering the create webhooks: Centra's example, an order whose requests
// were sent, then one confirmed and the other outdated.
class ApiOrderRequests : public testing::ServicesTest {
 protected:
  void Start() {
    ApiProcessOptions o;
    for (int w : {3, 4, 7}) {
      o.webhooks[w] = "{url: '" + receiver_.Url("/w" + std::to_string(w)) + "', secret: s}";
    }
    StartServices(o);
  }
};

TEST_F(ApiOrderRequests, SentThenConfirmedAndOutdatedAsTheListEndpointWritesThem) {
  Start();
  api_->CreateAllocation(1103, "[[3,4],[7]]");  // 1 (3), 2 (4)
  api_->CreateAllocation(1104, "[[3]]");        // 3 (3): another order
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Ids(api_->Get("/allocation-requests?status=sent")) ==
               std::vector<std::int64_t>{1, 2, 3};
      },
      15s));
  Dates d1 = DatesOf(*api_, 1), d2 = DatesOf(*api_, 2);
  HttpAnswer sent = api_->Get(OrderPath("1103"));
  EXPECT_EQ(sent.status, 200);
  EXPECT_EQ(sent.content_type, "application/json");
  EXPECT_EQ(sent.body, OkBody({Entry(1, "sent", 3, "Amsterdam", 1103, d1),
                               Entry(2, "sent", 4, "Tokyo", 1103, d2)}));

  ASSERT_EQ(api_->Update(2, "confirmed")["success"], true);  // Tokyo wins, Amsterdam outdated
  HttpAnswer decided = api_->Get(OrderPath("1103"));
  EXPECT_EQ(decided.body, OkBody({Entry(1, "outdated", 3, "Amsterdam", 1103, d1),
                                  Entry(2, "confirmed", 4, "Tokyo", 1103, d2)}));
  // Byte for byte the list endpoint's answer for the same requests.
  EXPECT_EQ(decided.body, api_->Get("/allocation-requests?order=1103&status=all").body);
  EXPECT_EQ(api_->Get(OrderPath("1104")).body,
            OkBody({Entry(3, "sent", 3, "Amsterdam", 1104, DatesOf(*api_, 3))}));
}

TEST(ApiOrderRequestsStatus, DefaultIsAllAndStatusIsReadAsOnTheListEndpoint) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4],[7]]");                 // 1 (3), 2 (4)
  api.CreateAllocation(16, "[[3],[7]]");                   // 3 (3)
  ASSERT_EQ(api.Update(1, "confirmed")["success"], true);  // 1 confirmed, 2 outdated
  ASSERT_EQ(api.Update(3, "rejected")["success"], true);   // 3 rejected, 4 (7) allocated
  EXPECT_THAT(Ids(api.Get(OrderPath("15"))), ElementsAre(1, 2));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "status=all"))), ElementsAre(1, 2));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "status=confirmed"))), ElementsAre(1));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "status=outdated,confirmed"))), ElementsAre(1, 2));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "status=pending,outdated"))), ElementsAre(2));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "status=timed-out,all"))), ElementsAre(1, 2));
  EXPECT_EQ(api.Get(OrderPath("15", "status=pending")).body, kEmpty);  // known, nothing pending
  EXPECT_THAT(Ids(api.Get(OrderPath("16"))), ElementsAre(3, 4));
  EXPECT_THAT(Ids(api.Get(OrderPath("16", "status=pending"))), ElementsAre(4));
  EXPECT_THAT(Ids(api.Get(OrderPath("16", "status=allocated"))), ElementsAre(4));
  EXPECT_THAT(Ids(api.Get(OrderPath("16", "status=rejected,sent"))), ElementsAre(3));
  // `order`, `page` and `after` are not this endpoint's: ignored like any unknown parameter.
  EXPECT_THAT(Ids(api.Get(OrderPath("16", "order=15&page=9&after=3&foo=bar"))), ElementsAre(3, 4));

  // A bad value: the list endpoint's answer, word for word; checked before the order.
  const std::string bogus =
      R"({"status":"no","errorMessages":{"status":"Expected \"status\" to be a single or a )"
      R"(comma-separated list of request statuses, or \"all\", got \"bogus\""}})";
  for (const std::string number : {"15", "1095", "abc"}) {
    HttpAnswer bad = api.Get(OrderPath(number, "status=sent,bogus"));
    EXPECT_EQ(bad.status, 200);
    EXPECT_EQ(bad.body, bogus) << number;
  }
  EXPECT_EQ(api.Get("/allocation-requests?status=sent,bogus").body, bogus);
  for (const char* query : {"status=?", "status=", "status=Sent", "status=all,", "status=%3F"}) {
    EXPECT_EQ(api.Get(OrderPath("15", query)).body,
              api.Get(std::string("/allocation-requests?") + query).body)
        << query;
  }
}

TEST(ApiOrderRequestsWarehouse, FiltersByTheExactWarehouseName) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4],[7]]");                 // 1 (3), 2 (4)
  api.CreateAllocation(16, "[[4]]");                       // 3 (4)
  ASSERT_EQ(api.Update(2, "confirmed")["success"], true);  // 1 outdated
  Dates d2 = DatesOf(api, 2);
  EXPECT_EQ(api.Get(OrderPath("15", "warehouse=Tokyo")).body,
            OkBody({Entry(2, "confirmed", 4, "Tokyo", 15, d2)}));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "warehouse=Amsterdam"))), ElementsAre(1));
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "warehouse=%54okyo"))), ElementsAre(2));  // decoded
  EXPECT_THAT(Ids(api.Get(OrderPath("15", "warehouse=Amsterdam&status=outdated"))), ElementsAre(1));
  // The order exists; nothing of it matches: an empty list, not "unknown order".
  for (const char* query :
       {"warehouse=Central", "warehouse=tokyo", "warehouse=Tokyo+", "warehouse=4",
        "warehouse=", "warehouse=Tok%25", "warehouse=Tokyo'%20OR%20'1'='1",
        "warehouse=Amsterdam&status=confirmed"}) {
    EXPECT_EQ(api.Get(OrderPath("15", query)).body, kEmpty) << query;
  }
  EXPECT_EQ(api.Get(OrderPath("1095", "warehouse=Tokyo")).body, UnknownOrder("1095"));
  EXPECT_THAT(Ids(api.Get(OrderPath("16", "warehouse=Tokyo"))), ElementsAre(3));
}

TEST(ApiOrderRequestsUnknown, AnUnknownOrderOrABadNumberIsCentrasMessage) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3]]");
  HttpAnswer unknown = api.Get(OrderPath("1095"));
  EXPECT_EQ(unknown.status, 200);
  EXPECT_EQ(unknown.content_type, "application/json");
  EXPECT_EQ(unknown.body, R"({"status":"no","msg":"Unknown order id: 1095"})");
  EXPECT_EQ(api.Get(OrderPath("1095", "status=pending&warehouse=Amsterdam")).body,
            UnknownOrder("1095"));
  // Not a positive integer: no order has it (as GET /allocations/<n> answers "not found"); the
  // message repeats the segment as it was written.
  for (const std::string bad : {"abc", "0", "-5", "1.5", "+15", "15x", "99999999999999999999"}) {
    HttpAnswer a = api.Get(OrderPath(bad));
    EXPECT_EQ(a.status, 200) << bad;
    EXPECT_EQ(a.body, UnknownOrder(bad)) << bad;
  }
  EXPECT_THAT(Ids(api.Get(OrderPath("%31%35"))), ElementsAre(1));  // the path is decoded: 15
  HttpAnswer quoted = api.Get(OrderPath("a%22b"));                 // echoed: must stay valid JSON
  EXPECT_EQ(quoted.body, R"({"status":"no","msg":"Unknown order id: a\"b"})");
  HttpAnswer not_utf8 = api.Get(OrderPath("%97%FF"));
  EXPECT_EQ(not_utf8.status, 200);
  EXPECT_EQ(not_utf8.Json()["status"], "no");
  // Other shapes of the path are not this endpoint.
  for (const char* path : {"/orders", "/orders/", "/orders/15", "/orders//allocation-requests",
                           "/orders/allocation-requests", "/orders/15/allocation-requests/",
                           "/orders/15/16/allocation-requests", "/orders/15/allocation-request"}) {
    EXPECT_EQ(api.Get(path).status, 404) << path;
  }
}

TEST(ApiOrderRequestsAuth, NeedsItsOwnGrantAndTheWrongMethodIs405) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3]]");
  HttpAnswer no_grant = api.Get(OrderPath("15"), "reader-token");  // GET /allocation-requests only
  EXPECT_EQ(no_grant.status, 403);
  EXPECT_EQ(no_grant.body, R"({"status":"Not Allowed"})");
  EXPECT_EQ(api.Get(OrderPath("1095"), "reader-token").status, 403);
  for (const char* token : {"", "nope"}) {
    HttpAnswer a = api.Get(OrderPath("15"), token);
    EXPECT_EQ(a.status, 401) << token;
    EXPECT_EQ(a.body, R"({"status":"Unauthorized"})");
  }
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    HttpAnswer wrong = api.Send(method, OrderPath("15"), "{}", "oms-token");
    EXPECT_EQ(wrong.status, 405) << method;
    EXPECT_EQ(wrong.body, R"({"status":"no","errorMessages":["Method )" + std::string(method) +
                              R"( is not allowed on /orders/15/allocation-requests"]})");
  }
  EXPECT_EQ(api.Get(OrderPath("15")).status, 200);
  // Recorded in /metrics under its own endpoint name.
  std::string metrics = api.Get("/metrics", "").body;
  EXPECT_THAT(metrics, HasSubstr("allocation_relay_http_requests_total{endpoint=\"GET "
                                 "/orders/allocation-requests\",code=\"200\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("allocation_relay_http_requests_total{endpoint=\"GET "
                                 "/orders/allocation-requests\",code=\"403\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("allocation_relay_http_requests_total{endpoint=\"GET "
                                 "/orders/allocation-requests\",code=\"405\"} 4"));
}

// A key scoped to warehouse 3 sees only warehouse 3's requests; an order with none there does not
// exist for it, until the flow reaches warehouse 3.
TEST(ApiOrderRequestsScope, AScopedKeySeesOnlyItsWarehousesRequests) {
  ApiProcess api;
  api.CreateAllocation(15, "[[3,4]]");    // 1 (3), 2 (4)
  api.CreateAllocation(17, "[[4],[7]]");  // 3 (4)
  api.CreateAllocation(18, "[[4],[3]]");  // 4 (4)
  Dates d1 = DatesOf(api, 1);
  EXPECT_EQ(api.Get(OrderPath("15"), "pos3-token").body,
            OkBody({Entry(1, "allocated", 3, "Amsterdam", 15, d1)}));
  EXPECT_THAT(Ids(api.Get(OrderPath("15"))), ElementsAre(1, 2));  // the unscoped key: both
  // Visible order, filters matching nothing of what the key sees: an empty list.
  EXPECT_EQ(api.Get(OrderPath("15", "warehouse=Tokyo"), "pos3-token").body, kEmpty);
  EXPECT_EQ(api.Get(OrderPath("15", "status=confirmed"), "pos3-token").body, kEmpty);
  // No request at warehouse 3: unknown to the key, however it filters.
  EXPECT_EQ(api.Get(OrderPath("17"), "pos3-token").body, UnknownOrder("17"));
  EXPECT_EQ(api.Get(OrderPath("17", "warehouse=Tokyo"), "pos3-token").body, UnknownOrder("17"));
  EXPECT_THAT(Ids(api.Get(OrderPath("17"))), ElementsAre(3));
  EXPECT_EQ(api.Get(OrderPath("18"), "pos3-token").body, UnknownOrder("18"));
  ASSERT_EQ(api.Update(4, "rejected")["success"], true);  // 18 moves on to warehouse 3: 5
  EXPECT_THAT(Ids(api.Get(OrderPath("18"), "pos3-token")), ElementsAre(5));
  EXPECT_THAT(Ids(api.Get(OrderPath("18"))), ElementsAre(4, 5));
}

}  // namespace
}  // namespace allocation_relay
