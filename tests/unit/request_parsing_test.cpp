#include "request_parsing.h"

#include <gtest/gtest.h>

#include "allocation_relay/signature.h"
#include "api_metrics.h"
#include "key_ring.h"

namespace allocation_relay {
namespace {

TEST(ParseQueryString, DecodesAndKeepsTheFirstOfRepeatedNames) {
  QueryParams p =
      ParseQueryString("/allocation-requests?status=%3F&order=1%2C2&x&status=sent&a+b=c+d");
  EXPECT_EQ(p.at("status"), "?");
  EXPECT_EQ(p.at("order"), "1,2");
  EXPECT_EQ(p.at("x"), "");
  EXPECT_EQ(p.at("a b"), "c d");
  EXPECT_TRUE(ParseQueryString("/allocation-requests").empty());
  EXPECT_EQ(ParseQueryString("/p?status=?").at("status"), "?");
  EXPECT_EQ(ParseQueryString("/p?v=%zz%4").at("v"), "%zz%4");
  EXPECT_EQ(ParseQueryString("/p?v=1#frag").at("v"), "1");
}

TEST(ParsePositiveInt, AcceptsOnlyPlainPositiveDecimals) {
  EXPECT_EQ(ParsePositiveInt("15"), 15);
  EXPECT_EQ(ParsePositiveInt("9223372036854775807"), 9223372036854775807LL);
  for (const char* bad : {"", "0", "-1", "+1", " 1", "1 ", "1.0", "0x10", "9223372036854775808",
                          "99999999999999999999", "1e3"}) {
    EXPECT_EQ(ParsePositiveInt(bad), std::nullopt) << bad;
  }
}

TEST(ParseRequestListQuery, DefaultsToPendingFirstPage) {
  auto q = std::get<RequestQuery>(ParseRequestListQuery({}));
  EXPECT_EQ(q.statuses, (std::vector<RequestStatus>{RequestStatus::kAllocated, RequestStatus::kSent,
                                                    RequestStatus::kFailed}));
  EXPECT_EQ(q.offset, 0);
  EXPECT_EQ(q.limit, 100);
  EXPECT_EQ(q.after_id, 0);
}

TEST(ParseRequestListQuery, AllClearsTheStatusFilterAndPageSetsTheOffset) {
  auto q = std::get<RequestQuery>(ParseRequestListQuery({{"status", "all"}, {"page", "3"}}));
  EXPECT_TRUE(q.statuses.empty());
  EXPECT_EQ(q.offset, 200);
}

TEST(ParseRequestListQuery, ReportsTheFirstInvalidToken) {
  auto e = std::get<FieldErrors>(ParseRequestListQuery({{"status", "sent,nope,bad"}}));
  EXPECT_EQ(e["status"],
            "Expected \"status\" to be a single or a comma-separated list of request statuses, or "
            "\"all\", got \"nope\"");
  auto w = std::get<FieldErrors>(ParseRequestListQuery({{"warehouse", "3,x,y"}}));
  EXPECT_EQ(w["warehouse"],
            "Expected \"warehouse\" to be a single or a comma-separated list of warehouse IDs, "
            "got \"x\"");
}

TEST(ParseRequestUpdate, ReadsConfirmAndReject) {
  auto c = std::get<RequestUpdate>(ParseRequestUpdate(R"({"id": 67, "status": "confirmed"})"));
  EXPECT_EQ(c.id, 67);
  EXPECT_TRUE(c.confirm);
  auto r = std::get<RequestUpdate>(ParseRequestUpdate(R"({"status": "rejected", "id": 5})"));
  EXPECT_FALSE(r.confirm);
}

TEST(ParseNewAllocation, ResolvesRules) {
  Config config = ParseConfig(
      "warehouses: [{id: 3, name: A}, {id: 4, name: B}]\n"
      "rules: {r: [[3], [4]]}\n",
      "t.yaml");
  auto a = std::get<NewAllocation>(ParseNewAllocation(
      R"({"order":{"id":"ABCdef01","number":7},"lines":[{"lineId":2,"quantity":3,"stockItemId":4}],"rule":"r"})",
      config));
  EXPECT_EQ(a.order.id, "ABCdef01");
  EXPECT_EQ(a.order.number, 7);
  EXPECT_EQ(a.groups, (PriorityGroups{{3}, {4}}));
  ASSERT_EQ(a.lines.size(), 1u);
  EXPECT_EQ(a.lines[0].stock_item_id, 4);
}

TEST(KeyRing, AuthenticatesByHashAndChecksEndpoints) {
  ApiKey key;
  key.name = "pos";
  key.sha256 = Sha256("secret-token");
  key.endpoints = {"GET /allocation-requests"};
  KeyRing ring({key});
  ASSERT_NE(ring.Authenticate("secret-token"), nullptr);
  EXPECT_EQ(ring.Authenticate("secret-token")->name, "pos");
  EXPECT_EQ(ring.Authenticate("secret-tokeN"), nullptr);
  EXPECT_EQ(ring.Authenticate(""), nullptr);
  EXPECT_TRUE(KeyRing::Allows(key, "GET /allocation-requests"));
  EXPECT_FALSE(KeyRing::Allows(key, "PUT /allocation-request"));
}

TEST(ApiMetrics, CountsAndBucketsRequests) {
  ApiMetrics m;
  m.Record("GET /health", 200, 0.0001);
  m.Record("GET /health", 200, 0.2);
  m.Record("GET /health", 503, 3.0);
  std::string text = m.Render(false, std::nullopt, std::nullopt);
  EXPECT_NE(text.find("allocation_relay_database_up 0"), std::string::npos);
  EXPECT_NE(text.find("{endpoint=\"GET /health\",code=\"200\"} 2"), std::string::npos);
  EXPECT_NE(text.find("{endpoint=\"GET /health\",code=\"503\"} 1"), std::string::npos);
  EXPECT_NE(text.find("_bucket{le=\"0.0005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("_bucket{le=\"0.25\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("_count 3\n"), std::string::npos);
}

}  // namespace
}  // namespace allocation_relay
