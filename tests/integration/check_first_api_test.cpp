// "Check first, then allocate" (SPEC section 12) at the API alone, over loopback HTTP on the
// real binary: POST /check-first answered byte for byte (every field error, bodies that are not
// JSON objects, unknown orders and warehouses, scoped keys, decisions no longer possible), 403
// without its grant; the flow (the first acceptance wins; rejections hand a group to its
// direct-then-confirm warehouses; groups of stores only; cancel rejects the open checks; no
// answer after a check's expiry); `checks` in GET /allocations/<n> and in /metrics. Runs on
// SQLite and, as `postgresql.<Suite>.*`, on PostgreSQL. With the dispatcher:
// check_first_services_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <tuple>

#include "support/api_process.h"
#include "support/check_first.h"
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
using ::testing::StartsWith;
using namespace testing;  // support/check_first.h

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

}  // namespace
}  // namespace allocation_relay
