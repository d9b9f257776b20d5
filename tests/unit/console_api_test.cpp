// The operator console's endpoints (docs/console.md) driven in-process through
// ApiService::Handle(): a real test database (SQLite file or PostgreSQL), a ManualClock, and
// deliveries recorded through the store as the dispatcher records them. The page itself is
// tested in a real browser (tests/browser/console_test.mjs).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "api_service.h"
#include "support/api_request.h"
#include "support/log_capture.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;

// 2024-03-18 08:00:30 UTC.
constexpr std::int64_t kStartMicros = 1710748830'000000;

// Keys: "ops-token" (console, console actions, POST /allocations), "viewer-token" (console,
// warehouse 3 only), "actor3-token" (console and actions, warehouse 3 only), "oms-token" (no
// console). Warehouses: 3 Amsterdam and 4 Tokyo with webhooks, 7 Central without (it polls).
std::string ConfigYaml(const StoreOptions& database) {
  auto key = [](const std::string& name, const std::string& endpoints, const std::string& extra) {
    return "    - {name: " + name + ", sha256: " + Sha256Hex(name + "-token") + ", endpoints: [" +
           endpoints + "]" + extra + "}\n";
  };
  return "store: " + testing::StoreYaml(database) + "\napi:\n  keys:\n" +
         key("ops", "console, console actions, POST /allocations", "") +
         key("viewer", "console", ", warehouses: [3]") +
         key("actor3", "console, console actions", ", warehouses: [3]") +
         key("oms", "POST /allocations, GET /allocations", "") +
         "warehouses:\n"
         "  - {id: 3, name: Amsterdam, webhook: {url: 'http://127.0.0.1:9/a', secret: s}}\n"
         "  - {id: 4, name: Tokyo, webhook: {url: 'http://127.0.0.1:9/t', secret: s}}\n"
         "  - {id: 7, name: Central}\n";
}

class ConsoleApi : public ::testing::Test {
 protected:
  ConsoleApi()
      : clock_(FromUnixMicros(kStartMicros)),
        config_(std::make_shared<const Config>(
            ParseConfig(ConfigYaml(database_.options()), "test.yaml"))),
        store_(Store::Open(StoreOptionsFrom(config_->store))),
        service_(config_, clock_) {}

  ApiResponse Send(const std::string& method, const std::string& target,
                   const std::string& token = "ops-token", const std::string& body = "") {
    return service_.Handle(testing::ApiCall(method, target, token, body));
  }
  // The JSON of a 200 answer.
  json GetJson(const std::string& target, const std::string& token = "ops-token") {
    ApiResponse res = Send("GET", target, token);
    EXPECT_EQ(res.status, 200) << target << ": " << res.body;
    return json::parse(res.body);
  }
  void Create(std::int64_t number, const std::string& groups) {
    ApiResponse res = Send("POST", "/allocations", "ops-token",
                           R"({"order":{"id":"abc","number":)" + std::to_string(number) +
                               R"(},"lines":[{"lineId":1,"quantity":1,"stockItemId":1}],)"
                               R"("warehouses":)" +
                               groups + "}");
    ASSERT_EQ(res.status, 200) << res.body;
    ASSERT_THAT(res.body, HasSubstr(R"("status":"ok")"));
  }
  // One dispatcher round for warehouse `w`: forms a delivery of its queued events and records
  // one call of it that answered `status` (0: no answer) taking `took`, with `outcome`.
  Delivery Deliver(std::int64_t w, int status, AttemptOutcome outcome, Micros took = 3ms,
                   const Delivery* again = nullptr) {
    auto render = [](std::span<const OutboxEvent>, std::span<const AllocationRequest>,
                     std::span<const CheckEventSubject>) { return std::string("[]"); };
    Delivery d;
    if (again) {
      d = *again;
    } else {
      Store::DeliveryWant want{w, 1, 100, true, clock_.Now() + 30s, {}, false, 0};
      auto taken = store_->RecordAndTake({}, {}, {&want, 1}, clock_.Now(), render);
      EXPECT_TRUE(taken.has_value());
      d = taken->at(0).claimed.at(0);
    }
    DeliveryAttempt attempt{d.id,
                            d.attempt_count + 1,
                            clock_.Now(),
                            took,
                            status,
                            status ? "HTTP " + std::to_string(status) : "connection refused",
                            status ? "<b>body " + std::to_string(status) + "</b>" : ""};
    Store::AttemptRecord record{attempt, outcome, clock_.Now() + 1s, d.request_ids, {}};
    if (d.id == 0) record.formed = d;
    EXPECT_TRUE(store_->RecordAndTake({&record, 1}, {}, {}, clock_.Now(), render).has_value());
    auto stored = store_->ListDeliveries(std::nullopt, w, 1000);
    EXPECT_TRUE(stored.has_value());
    for (const Delivery& s : *stored) {
      if (s.uid == d.uid) return s;
    }
    ADD_FAILURE() << "delivery " << d.uid << " not stored";
    return d;
  }

  testing::TempDir dir_;
  testing::TestDatabase database_{dir_};
  ManualClock clock_;
  std::shared_ptr<const Config> config_;
  std::unique_ptr<Store> store_;
  ApiService service_;
};

std::string Header(const ApiResponse& res, const std::string& name) {
  for (const auto& [key, value] : res.headers) {
    if (key == name) return value;
  }
  return "";
}

TEST_F(ConsoleApi, PageAndAssetsLoadWithoutAKeyWithTheSecurityHeaders) {
  ApiResponse page = Send("GET", "/console/", "");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("<!doctype html>"));
  EXPECT_THAT(Header(page, "Content-Security-Policy"), HasSubstr("script-src 'self'"));
  EXPECT_THAT(Header(page, "Content-Security-Policy"), HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(Header(page, "X-Frame-Options"), "DENY");
  EXPECT_EQ(Header(page, "X-Content-Type-Options"), "nosniff");

  ApiResponse chart = Send("GET", "/console/chart.min.js", "");
  EXPECT_EQ(chart.status, 200);
  EXPECT_EQ(chart.content_type, "text/javascript; charset=utf-8");
  EXPECT_THAT(chart.body, HasSubstr("Chart.js v3.9.1"));  // Debian's libjs-chart.js, whole
  EXPECT_GT(chart.body.size(), 100000u);
  for (const char* asset : {"/console/app.js", "/console/app.css", "/console/favicon.svg"}) {
    ApiResponse res = Send("GET", asset, "");
    EXPECT_EQ(res.status, 200) << asset;
    EXPECT_FALSE(res.body.empty()) << asset;
    EXPECT_EQ(Header(res, "X-Frame-Options"), "DENY") << asset;
  }

  ApiResponse bare = Send("GET", "/console", "");
  EXPECT_EQ(bare.status, 301);
  EXPECT_EQ(Header(bare, "Location"), "/console/");
  EXPECT_EQ(Send("GET", "/console/missing.js", "").status, 404);
  ApiResponse post = Send("POST", "/console/", "");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.allow, "GET, HEAD");
}

TEST_F(ConsoleApi, JsonEndpointsAnswer401WithoutAKeyAnd403WithoutTheGrant) {
  const char* reads[] = {"/console/api/session", "/console/api/overview",
                         "/console/api/allocations/1", "/console/api/deliveries"};
  const char* actions[] = {"/console/api/deliveries/1/resend",
                           "/console/api/warehouses/3/resend-dead",
                           "/console/api/warehouses/3/enable-webhook"};
  for (const char* path : reads) {
    ApiResponse none = Send("GET", path, "");
    EXPECT_EQ(none.status, 401) << path;
    EXPECT_EQ(none.body, R"({"status":"Unauthorized"})");
    EXPECT_EQ(Header(none, "Cache-Control"), "no-store");
    EXPECT_EQ(Send("GET", path, "wrong-token").status, 401) << path;
    ApiResponse oms = Send("GET", path, "oms-token");
    EXPECT_EQ(oms.status, 403) << path;
    EXPECT_EQ(oms.body, R"({"status":"Not Allowed"})");
  }
  for (const char* path : actions) {
    EXPECT_EQ(Send("POST", path, "").status, 401) << path;
    EXPECT_EQ(Send("POST", path, "oms-token").status, 403) << path;
    // `console` alone opens the pages, not the buttons.
    EXPECT_EQ(Send("POST", path, "viewer-token").status, 403) << path;
    ApiResponse get = Send("GET", path, "ops-token");
    EXPECT_EQ(get.status, 405) << path;
    EXPECT_EQ(get.allow, "POST");
  }
  EXPECT_EQ(Send("POST", "/console/api/overview").status, 405);
  ApiResponse unknown = Send("GET", "/console/api/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body,
            R"({"status":"no","errorMessages":["Unknown path /console/api/nothing"]})");
}

TEST_F(ConsoleApi, SessionSaysWhoTheKeyIs) {
  EXPECT_EQ(Send("GET", "/console/api/session").body,
            R"({"key":"ops","actions":true,"warehouses":null})");
  EXPECT_EQ(Send("GET", "/console/api/session", "viewer-token").body,
            R"({"key":"viewer","actions":false,"warehouses":[3]})");
}

TEST_F(ConsoleApi, OverviewShowsEveryConfiguredWarehouseWithItsOpenWorkAndActivity) {
  Create(1001, "[[3, 4], [7]]");
  Create(1002, "[[3]]");
  // Amsterdam: a delivery that succeeded in 3 ms; Tokyo: one that died after a 500 taking 40 ms
  // and its webhook disabled by a 410.
  Deliver(3, 200, AttemptOutcome::kSucceeded, 3ms);
  clock_.Advance(2min);
  Deliver(4, 500, AttemptOutcome::kDead, 40ms);
  ASSERT_TRUE(store_->DisableWebhook(4, "410 Gone", clock_.Now()).has_value());
  Create(1003, "[[3]]");  // a queued event for Amsterdam

  json overview = GetJson("/console/api/overview");
  EXPECT_EQ(overview["now"], "2024-03-18T08:02:30.000Z");
  EXPECT_EQ(overview["latencyWindowMinutes"], 60);
  ASSERT_EQ(overview["warehouses"].size(), 3u);
  const json& amsterdam = overview["warehouses"][0];
  EXPECT_EQ(amsterdam["id"], 3);
  EXPECT_EQ(amsterdam["name"], "Amsterdam");
  EXPECT_EQ(amsterdam["policy"], "direct-then-confirm");
  EXPECT_EQ(amsterdam["webhook"], "enabled");
  EXPECT_EQ(amsterdam["pendingRequests"], 3);
  EXPECT_EQ(amsterdam["queuedEvents"], 1);
  EXPECT_EQ(amsterdam["pendingDeliveries"], 0);
  EXPECT_EQ(amsterdam["deadDeliveries"], 0);
  EXPECT_EQ(amsterdam["lastSuccessAt"], "2024-03-18T08:00:30.000Z");
  EXPECT_EQ(amsterdam["latency"], json::parse(R"({"calls":1,"p50Ms":5,"p99Ms":5})"));

  const json& tokyo = overview["warehouses"][1];
  EXPECT_EQ(tokyo["webhook"], "disabled");
  EXPECT_EQ(tokyo["disabledAt"], "2024-03-18T08:02:30.000Z");
  EXPECT_EQ(tokyo["disabledReason"], "410 Gone");
  EXPECT_EQ(tokyo["pendingRequests"], 1);
  EXPECT_EQ(tokyo["deadDeliveries"], 1);
  EXPECT_EQ(tokyo["lastSuccessAt"], nullptr);
  EXPECT_EQ(tokyo["latency"], json::parse(R"({"calls":1,"p50Ms":50,"p99Ms":50})"));

  const json& central = overview["warehouses"][2];
  EXPECT_EQ(central["webhook"], "none");
  EXPECT_EQ(central["pendingRequests"], 0);  // group 2 not reached
  EXPECT_EQ(central["latency"], json::parse(R"({"calls":0,"p50Ms":null,"p99Ms":null})"));

  // 180 minutes, oldest first, ending with the current one.
  const json& minutes = overview["perMinute"];
  ASSERT_EQ(minutes.size(), 180u);
  EXPECT_EQ(minutes[179]["minute"], "2024-03-18T08:02:00.000Z");
  EXPECT_EQ(minutes[0]["minute"], "2024-03-18T05:03:00.000Z");
  EXPECT_EQ(minutes[177], json::parse(R"({"minute":"2024-03-18T08:00:00.000Z","delivered":1,)"
                                      R"("failedAttempts":0,"dead":0})"));
  EXPECT_EQ(minutes[179], json::parse(R"({"minute":"2024-03-18T08:02:00.000Z","delivered":0,)"
                                      R"("failedAttempts":1,"dead":1})"));
  int total = 0;
  for (const json& m : minutes) total += m["delivered"].get<int>() + m["failedAttempts"].get<int>();
  EXPECT_EQ(total, 2);

  // An hour on, the latency window holds no calls; the chart still shows them.
  clock_.Advance(61min);
  overview = GetJson("/console/api/overview");
  EXPECT_EQ(overview["warehouses"][0]["latency"]["calls"], 0);
  EXPECT_EQ(overview["warehouses"][0]["lastSuccessAt"], "2024-03-18T08:00:30.000Z");
  EXPECT_EQ(overview["perMinute"][179 - 61 - 2]["delivered"], 1);
}

TEST_F(ConsoleApi, ScopedKeySeesOnlyItsWarehousesInTheOverview) {
  Create(1001, "[[3, 4]]");
  Deliver(3, 200, AttemptOutcome::kSucceeded);
  Deliver(4, 500, AttemptOutcome::kRetry);
  json overview = GetJson("/console/api/overview", "viewer-token");
  ASSERT_EQ(overview["warehouses"].size(), 1u);
  EXPECT_EQ(overview["warehouses"][0]["id"], 3);
  int delivered = 0, failed = 0;
  for (const json& m : overview["perMinute"]) {
    delivered += m["delivered"].get<int>();
    failed += m["failedAttempts"].get<int>();
  }
  EXPECT_EQ(delivered, 1);
  EXPECT_EQ(failed, 0);  // Tokyo's failure is not the viewer's
}

TEST_F(ConsoleApi, AllocationPageHasGroupsRequestsEventsDeliveriesAndAttempts) {
  Create(1001, "[[3, 4], [7]]");
  Delivery failed = Deliver(3, 0, AttemptOutcome::kRetry, 12500us);
  clock_.Advance(5s);
  Deliver(3, 500, AttemptOutcome::kDead, 3ms, &failed);

  json page = GetJson("/console/api/allocations/1001");
  const json& a = page["allocation"];
  EXPECT_EQ(a["orderNumber"], 1001);
  EXPECT_EQ(a["orderId"], "abc");
  EXPECT_EQ(a["state"], "open");
  EXPECT_EQ(a["currentGroup"], 1);
  EXPECT_EQ(a["groups"], json::parse(R"([
    {"group":1,"current":true,"warehouses":[{"id":3,"name":"Amsterdam"},{"id":4,"name":"Tokyo"}]},
    {"group":2,"current":false,"warehouses":[{"id":7,"name":"Central"}]}])"));
  ASSERT_EQ(page["requests"].size(), 2u);
  EXPECT_EQ(page["requests"][0]["warehouseId"], 3);
  EXPECT_EQ(page["requests"][0]["status"], "failed");
  EXPECT_EQ(page["requests"][0]["group"], 1);
  EXPECT_EQ(page["requests"][0]["expiresAt"], "2024-03-18T09:00:30.000Z");
  EXPECT_EQ(page["checks"], json::array());

  ASSERT_EQ(page["events"].size(), 2u);
  const json& event = page["events"][0];
  EXPECT_EQ(event["type"], "allocation_request");
  EXPECT_EQ(event["action"], "create");
  EXPECT_EQ(event["status"], "allocated");
  EXPECT_EQ(event["warehouseId"], 3);
  EXPECT_EQ(event["deliveryId"], failed.id);
  EXPECT_EQ(page["events"][1]["deliveryId"], nullptr);  // Tokyo's, not sent yet

  ASSERT_EQ(page["deliveries"].size(), 1u);
  const json& d = page["deliveries"][0];
  EXPECT_EQ(d["id"], failed.id);
  EXPECT_EQ(d["uid"], failed.uid);
  EXPECT_EQ(d["state"], "dead");
  EXPECT_EQ(d["attemptCount"], 2);
  EXPECT_EQ(d["nextAttemptAt"], nullptr);
  EXPECT_EQ(d["attempts"], json::parse(R"([
    {"attempt":1,"startedAt":"2024-03-18T08:00:30.000Z","durationMs":12.5,"httpStatus":null,
     "error":"connection refused","responseHead":""},
    {"attempt":2,"startedAt":"2024-03-18T08:00:35.000Z","durationMs":3.0,"httpStatus":500,
     "error":"HTTP 500","responseHead":"<b>body 500</b>"}])"));

  ApiResponse missing = Send("GET", "/console/api/allocations/999");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, R"({"status":"no","errorMessages":["No allocation for order 999"]})");
  EXPECT_EQ(Send("GET", "/console/api/allocations/x1").status, 404);
}

TEST_F(ConsoleApi, ScopedKeySeesOnlyItsPartOfAnAllocation) {
  Create(1001, "[[3, 4]]");
  Create(1002, "[[4]]");
  Deliver(3, 200, AttemptOutcome::kSucceeded);
  Deliver(4, 200, AttemptOutcome::kSucceeded);
  json page = GetJson("/console/api/allocations/1001", "viewer-token");
  ASSERT_EQ(page["requests"].size(), 1u);
  EXPECT_EQ(page["requests"][0]["warehouseId"], 3);
  EXPECT_EQ(page["allocation"]["groups"][0]["warehouses"],
            json::parse(R"([{"id":3,"name":"Amsterdam"}])"));
  ASSERT_EQ(page["events"].size(), 1u);
  ASSERT_EQ(page["deliveries"].size(), 1u);
  EXPECT_EQ(page["deliveries"][0]["warehouseId"], 3);
  // Nothing of order 1002 is Amsterdam's.
  EXPECT_EQ(Send("GET", "/console/api/allocations/1002", "viewer-token").status, 404);
}

TEST_F(ConsoleApi, DeliveriesAreListedNewestFirstByStateAndWarehouseInKeysetPages) {
  std::vector<Delivery> amsterdam;
  for (int i = 0; i < 5; ++i) {
    Create(2000 + i, "[[3]]");
    amsterdam.push_back(
        Deliver(3, i % 2 ? 500 : 200, i % 2 ? AttemptOutcome::kDead : AttemptOutcome::kSucceeded));
  }
  Create(3000, "[[4]]");
  Delivery tokyo = Deliver(4, 500, AttemptOutcome::kRetry);

  json first = GetJson("/console/api/deliveries?limit=2");
  ASSERT_EQ(first["deliveries"].size(), 2u);
  EXPECT_EQ(first["deliveries"][0]["id"], tokyo.id);
  EXPECT_EQ(first["deliveries"][0]["state"], "pending");
  EXPECT_EQ(first["deliveries"][0]["warehouseName"], "Tokyo");
  EXPECT_NE(first["deliveries"][0]["nextAttemptAt"], nullptr);
  EXPECT_EQ(first["deliveries"][0]["lastAttempt"]["httpStatus"], 500);
  EXPECT_EQ(first["deliveries"][1]["id"], amsterdam[4].id);
  EXPECT_EQ(first["next"], amsterdam[4].id);
  json second = GetJson("/console/api/deliveries?limit=2&before=" + first["next"].dump());
  EXPECT_EQ(second["deliveries"][0]["id"], amsterdam[3].id);
  EXPECT_EQ(second["deliveries"][1]["id"], amsterdam[2].id);
  json last = GetJson("/console/api/deliveries?limit=2&before=" + second["next"].dump());
  EXPECT_EQ(last["deliveries"].size(), 2u);
  EXPECT_EQ(last["next"], nullptr);

  json dead = GetJson("/console/api/deliveries?state=dead&warehouse=3");
  ASSERT_EQ(dead["deliveries"].size(), 2u);
  EXPECT_EQ(dead["deliveries"][0]["id"], amsterdam[3].id);
  EXPECT_EQ(dead["deliveries"][1]["id"], amsterdam[1].id);
  EXPECT_EQ(dead["deliveries"][0]["requestIds"].size(), 1u);
  EXPECT_EQ(GetJson("/console/api/deliveries?state=pending&warehouse=3")["deliveries"].size(), 0u);
  // The viewer sees Amsterdam's only.
  EXPECT_EQ(GetJson("/console/api/deliveries", "viewer-token")["deliveries"].size(), 5u);
  EXPECT_EQ(GetJson("/console/api/deliveries?warehouse=4", "viewer-token")["deliveries"].size(),
            0u);

  EXPECT_EQ(Send("GET", "/console/api/deliveries?state=lost").body,
            R"({"status":"no","errorMessages":["state: must be pending, succeeded or dead"]})");
  EXPECT_EQ(Send("GET", "/console/api/deliveries?warehouse=x").status, 400);
  EXPECT_EQ(Send("GET", "/console/api/deliveries?before=-1").status, 400);
  EXPECT_EQ(Send("GET", "/console/api/deliveries?limit=201").status, 400);
  EXPECT_EQ(Send("GET", "/console/api/deliveries?limit=0").status, 400);
}

TEST_F(ConsoleApi, ResendingOneDeadDeliveryMakesItPendingOnceAndIsLogged) {
  Create(1001, "[[3, 4]]");
  Delivery dead = Deliver(3, 500, AttemptOutcome::kDead);
  Delivery tokyo = Deliver(4, 500, AttemptOutcome::kDead);
  testing::LogCapture log;
  const std::string path = "/console/api/deliveries/" + std::to_string(dead.id) + "/resend";
  ApiResponse res = Send("POST", path);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, R"({"status":"ok","resent":1})");
  EXPECT_THAT(log.text(),
              HasSubstr("console: key ops re-sent dead delivery " + std::to_string(dead.id)));
  auto stored = store_->GetDelivery(dead.id);
  ASSERT_TRUE(stored.has_value() && stored->has_value());
  EXPECT_EQ((*stored)->state, DeliveryState::kPending);

  ApiResponse again = Send("POST", path);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body, R"({"status":"no","errorMessages":["Delivery )" + std::to_string(dead.id) +
                            R"( is not dead"]})");
  EXPECT_EQ(Send("POST", "/console/api/deliveries/999999/resend").status, 404);
  EXPECT_EQ(Send("POST", "/console/api/deliveries/abc/resend").status, 404);
  // A scoped key cannot reach another warehouse's delivery.
  ApiResponse other = Send(
      "POST", "/console/api/deliveries/" + std::to_string(tokyo.id) + "/resend", "actor3-token");
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ((*store_->GetDelivery(tokyo.id))->state, DeliveryState::kDead);
}

TEST_F(ConsoleApi, ResendingAWarehousesDeadDeliveriesAndEnablingItsWebhook) {
  for (int i = 0; i < 3; ++i) {
    Create(1001 + i, "[[4]]");
    Deliver(4, 500, AttemptOutcome::kDead);
  }
  ASSERT_TRUE(store_->DisableWebhook(4, "410 Gone", clock_.Now()).has_value());
  testing::LogCapture log;
  EXPECT_EQ(Send("POST", "/console/api/warehouses/4/resend-dead").body,
            R"({"status":"ok","resent":3})");
  EXPECT_EQ(Send("POST", "/console/api/warehouses/4/resend-dead").body,
            R"({"status":"ok","resent":0})");
  EXPECT_EQ(Send("POST", "/console/api/warehouses/4/enable-webhook").body,
            R"({"status":"ok","enabled":true})");
  EXPECT_EQ(Send("POST", "/console/api/warehouses/4/enable-webhook").body,
            R"({"status":"ok","enabled":false})");
  EXPECT_THAT(log.text(), HasSubstr("console: key ops re-sent 3 dead deliveries of warehouse 4"));
  EXPECT_THAT(log.text(), HasSubstr("console: key ops enabled the webhook of warehouse 4"));
  auto disabled = store_->DisabledWebhooks();
  ASSERT_TRUE(disabled.has_value());
  EXPECT_TRUE(disabled->empty());

  EXPECT_EQ(Send("POST", "/console/api/warehouses/99/resend-dead").body,
            R"({"status":"no","errorMessages":["Unknown warehouse 99"]})");
  EXPECT_EQ(Send("POST", "/console/api/warehouses/99/enable-webhook").status, 404);
  EXPECT_EQ(Send("POST", "/console/api/warehouses/4/enable-webhook", "actor3-token").status, 404);
  EXPECT_EQ(Send("POST", "/console/api/warehouses/3/enable-webhook", "actor3-token").status, 200);
}

}  // namespace
}  // namespace allocation_relay
