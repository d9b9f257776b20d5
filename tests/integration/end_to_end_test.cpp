// End to end: both real binaries on one database file, warehouses with real webhook receivers on
// loopback, the whole "Direct, then confirm" flow driven through the API as a shop and its
// warehouses would: intake, webhook, confirm; reject; timeout and a late confirm; a shared
// priority race; exhausted; cancel; buy online, ship from store (check-first stores, then a
// warehouse); a warehouse that is down; restarts of either service.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "support/api_process.h"
#include "support/form.h"
#include "support/receiver.h"
#include "support/services_test.h"
#include "support/stores.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::Process;
using testing::Receiver;

class EndToEnd : public testing::ServicesTest {
 protected:
  // Warehouses 3, 4, 7 and 9 (confirm timeout 1 s) post to /w<id> of one receiver. With
  // `stores`, so do the check-first stores 11, 12, 13 and 14 (1 s to answer) of
  // support/stores.h, with their keys.
  void Start(std::map<int, std::string> webhooks = {}, bool stores = false) {
    ApiProcessOptions o;
    for (int w : {3, 4, 7, 9}) {
      if (!webhooks.contains(w)) {
        webhooks[w] = "{url: '" + receiver_.Url("/w" + std::to_string(w)) + "', secret: s}";
      }
    }
    o.webhooks = webhooks;
    if (stores) {
      std::map<int, std::string> store_hooks;
      for (int s : {11, 12, 13, 14}) {
        store_hooks[s] = "{url: '" + receiver_.Url("/w" + std::to_string(s)) + "', secret: s}";
      }
      o.more_warehouses = testing::StoresYaml(store_hooks);
      o.more_keys = testing::StoreKeysYaml();
    }
    o.dispatcher =
        "{listen: '127.0.0.1:0', allow_private_networks: true, "
        "retry_schedule: [200ms, 200ms, 200ms]}";
    StartServices(o);
  }
  // Debian's httplib (the test receiver) answers 413 to form bodies over 8 KB: ~15 events.
  std::string SmallBatches() {
    return "{url: '" + receiver_.Url("/w3") + "', secret: s, max_events_per_call: 5}";
  }

  // Every event warehouse `w` received so far, in arrival order.
  std::vector<json> EventsAt(int w) {
    std::vector<json> out;
    for (const auto& call : receiver_.Calls()) {
      if (call.path != "/w" + std::to_string(w)) continue;
      json doc = json::parse(testing::FormDecode(call.body.substr(8)));  // after "payload="
      for (const auto& e : doc["events"]) out.push_back(e);
    }
    return out;
  }
  // Waits until warehouse `w` received an event with `action` about request `id`.
  bool Received(int w, const std::string& action, std::int64_t id, const std::string& status) {
    return testing::WaitFor(
        [&] {
          for (const json& e : EventsAt(w)) {
            if (e["action"] == action && e["id"] == id && e["data"]["status"] == status) {
              return true;
            }
          }
          return false;
        },
        15s);
  }
  // The check_first events store `w` received so far as "<action> <order number>".
  std::vector<std::string> CheckEventsAt(int w) {
    std::vector<std::string> out;
    for (const json& e : EventsAt(w)) {
      EXPECT_EQ(e["type"], "check_first") << e;
      out.push_back(e["action"].get<std::string>() + " " + std::to_string(e["id"].get<int>()));
    }
    return out;
  }
  json Allocation(int number) {
    return api_->Get("/allocations/" + std::to_string(number)).Json()["allocation"];
  }
  std::string StatusOf(int number, std::size_t index) {
    json a = Allocation(number);
    return a["allocation_requests"].size() > index ? a["allocation_requests"][index]["status"] : "";
  }
};

TEST_F(EndToEnd, IntakeWebhookAndConfirmThroughTheApi) {
  Start();
  json created = api_->CreateAllocation(15, "[[3]]");
  ASSERT_EQ(created["status"], "ok");
  std::int64_t id = created["allocation"]["allocation_requests"][0]["id"];
  ASSERT_TRUE(Received(3, "create", id, "allocated")) << dispatcher_->Stderr();
  json event = EventsAt(3)[0];
  EXPECT_EQ(event["data"]["order"]["number"], 15);
  EXPECT_EQ(event["data"]["warehouseId"], 3);
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(15, 0) == "sent"; }, 10s));
  // The warehouse confirms with its own (scoped) key.
  EXPECT_EQ(api_->Update(id, "confirmed", "pos3-token")["success"], true);
  json a = Allocation(15);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 3);
  EXPECT_EQ(a["allocation_requests"][0]["status"], "confirmed");
}

TEST_F(EndToEnd, RejectMovesTheFlowToTheNextGroupWhichHearsOfIt) {
  Start();
  api_->CreateAllocation(16, "[[3],[7]]");
  ASSERT_TRUE(Received(3, "create", 1, "allocated"));
  EXPECT_EQ(api_->Update(1, "rejected", "pos3-token")["success"], true);
  ASSERT_TRUE(Received(7, "create", 2, "allocated")) << dispatcher_->Stderr();
  json a = Allocation(16);
  EXPECT_EQ(a["state"], "open");
  EXPECT_EQ(a["allocation_requests"][0]["status"], "rejected");
  EXPECT_EQ(api_->Update(2, "confirmed")["success"], true);
  EXPECT_EQ(Allocation(16)["confirmedWarehouseId"], 7);
  EXPECT_TRUE(EventsAt(4).empty());  // not in this allocation
}

TEST_F(EndToEnd, TimeoutMovesOnAndALateConfirmOfTheTimedOutRequestWins) {
  Start();
  api_->CreateAllocation(17, "[[9],[7]]");
  ASSERT_TRUE(Received(9, "create", 1, "allocated"));
  // Within about a second of its expiration: timed-out, and both warehouses hear of the change.
  ASSERT_TRUE(Received(9, "update", 1, "timed-out")) << dispatcher_->Stderr();
  ASSERT_TRUE(Received(7, "create", 2, "allocated")) << dispatcher_->Stderr();
  // The slow warehouse confirms after all: it still wins, and warehouse 7's request is outdated.
  EXPECT_EQ(api_->Update(1, "confirmed")["success"], true);
  EXPECT_EQ(Allocation(17)["confirmedWarehouseId"], 9);
  ASSERT_TRUE(Received(7, "update", 2, "outdated")) << dispatcher_->Stderr();
  EXPECT_EQ(
      api_->Put("/allocation-request", R"({"id":2,"status":"confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status outdated."]})");
}

TEST_F(EndToEnd, SharedPriorityRaceFirstConfirmWinsTheOtherIsOutdated) {
  Start();
  api_->CreateAllocation(18, "[[3,4]]");
  ASSERT_TRUE(Received(3, "create", 1, "allocated"));
  ASSERT_TRUE(Received(4, "create", 2, "allocated"));
  EXPECT_EQ(api_->Update(2, "confirmed")["success"], true);
  json late = api_->Update(1, "confirmed", "pos3-token");
  EXPECT_EQ(late["success"], false);
  EXPECT_EQ(late["errorMessages"][0],
            "You can't update allocation request, which is in status outdated.");
  ASSERT_TRUE(Received(3, "update", 1, "outdated")) << dispatcher_->Stderr();
  EXPECT_EQ(Allocation(18)["confirmedWarehouseId"], 4);
}

TEST_F(EndToEnd, EveryGroupRejectingExhaustsTheAllocation) {
  Start();
  api_->CreateAllocation(19, "[[3],[4]]");
  ASSERT_TRUE(Received(3, "create", 1, "allocated"));
  EXPECT_EQ(api_->Update(1, "rejected")["success"], true);
  ASSERT_TRUE(Received(4, "create", 2, "allocated"));
  EXPECT_EQ(api_->Update(2, "rejected")["success"], true);
  json a = Allocation(19);
  EXPECT_EQ(a["state"], "exhausted");
  EXPECT_EQ(a["confirmedWarehouseId"], nullptr);
}

TEST_F(EndToEnd, CancelOutdatesEveryOpenRequestAndTellsTheWarehouses) {
  Start();
  api_->CreateAllocation(20, "[[3,4],[7]]");
  ASSERT_TRUE(Received(3, "create", 1, "allocated"));
  ASSERT_TRUE(Received(4, "create", 2, "allocated"));
  EXPECT_EQ(api_->Post("/allocations/20/cancel", "").Json()["status"], "ok");
  ASSERT_TRUE(Received(3, "update", 1, "outdated")) << dispatcher_->Stderr();
  ASSERT_TRUE(Received(4, "update", 2, "outdated")) << dispatcher_->Stderr();
  EXPECT_EQ(Allocation(20)["state"], "cancelled");
  EXPECT_EQ(api_->Update(1, "confirmed")["success"], false);
  EXPECT_TRUE(EventsAt(7).empty());  // the flow never reached the second group
}

// Buy online, ship from store ("Check first, then allocate", SPEC section 12): the stores of the
// first group are asked first; store 11 says no, store 14 does not answer in time; then the
// group's warehouse 3 gets an allocation request, hears of it by webhook and confirms it. The
// stores heard of the question and of their outcome; the next group never heard of the order.
TEST_F(EndToEnd, BuyOnlineShipFromStoreFallsBackToTheWarehouseWhenNoStoreCanShip) {
  Start({}, /*stores=*/true);
  api_->CreateAllocation(23, "[[11,14,3],[7]]");
  ASSERT_TRUE(testing::WaitFor(
      [&] { return !CheckEventsAt(11).empty() && !CheckEventsAt(14).empty(); }, 15s))
      << dispatcher_->Stderr();
  json create = EventsAt(11)[0];
  EXPECT_EQ(create["action"], "create");
  EXPECT_EQ(create["id"], 23);  // the order number
  ASSERT_EQ(create["data"]["warehouses"].size(), 2u);
  EXPECT_EQ(create["data"]["warehouses"][0]["warehouseId"], 11);
  EXPECT_EQ(create["data"]["warehouses"][1]["warehouseId"], 14);
  EXPECT_EQ(EventsAt(14)[0], create);
  EXPECT_TRUE(Allocation(23)["allocation_requests"].empty());  // the warehouse waits for them

  // Store 11 says no with its own key; store 14 lets its second run out.
  EXPECT_EQ(
      api_->Post("/check-first", testing::CheckAnswerBody(23, 11, false), "shop11-token").body,
      R"({"status":"ok"})");
  ASSERT_TRUE(Received(3, "create", 1, "allocated")) << dispatcher_->Stderr();
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(23, 0) == "sent"; }, 10s));
  EXPECT_EQ(api_->Update(1, "confirmed", "pos3-token")["success"], true);

  json a = Allocation(23);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 3);
  EXPECT_EQ(a["allocation_requests"][0]["status"], "confirmed");
  ASSERT_EQ(a["checks"].size(), 2u);
  EXPECT_EQ(a["checks"][0]["warehouseId"], 11);
  EXPECT_EQ(a["checks"][0]["status"], "rejected");
  EXPECT_EQ(a["checks"][1]["warehouseId"], 14);
  EXPECT_EQ(a["checks"][1]["status"], "timed-out");
  ASSERT_TRUE(testing::WaitFor([&] { return CheckEventsAt(11).size() == 2; }, 10s));
  ASSERT_TRUE(testing::WaitFor([&] { return CheckEventsAt(14).size() == 2; }, 10s));
  EXPECT_EQ(CheckEventsAt(11), (std::vector<std::string>{"create 23", "rejected 23"}));
  EXPECT_EQ(CheckEventsAt(14), (std::vector<std::string>{"create 23", "timeout 23"}));
  EXPECT_EQ(EventsAt(11)[1]["data"].dump(), R"({"warehouseId":11})");
  EXPECT_EQ(EventsAt(14)[1]["data"].dump(), R"({"warehouseId":14})");
  // A decision on the order is no longer possible for the stores.
  EXPECT_EQ(api_->Post("/check-first", testing::CheckAnswerBody(23, 14, true), "shop-token").body,
            R"({"status":"no","msg":"failed to allocate stock"})");
  EXPECT_EQ(EventsAt(3).size(), 1u);  // its create; the confirm is its own doing
  EXPECT_TRUE(EventsAt(7).empty());
}

// Warehouse 3's webhook points at a port nobody listens on: every attempt fails, its request
// becomes `failed`, and the warehouse still finds and confirms it through the API alone.
TEST_F(EndToEnd, AWarehouseThatIsDownConfirmsThroughTheApiAlone) {
  int closed_port = 0;
  {
    Receiver gone;  // bound then closed: connection refused from now on
    closed_port = gone.port();
  }
  Start({{3, "{url: 'http://127.0.0.1:" + std::to_string(closed_port) + "/w3', secret: s}"}});
  api_->CreateAllocation(21, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(21, 0) == "failed"; }, 10s))
      << dispatcher_->Stderr();
  json pending = api_->Get("/allocation-requests", "pos3-token").Json();
  ASSERT_EQ(pending["allocation_requests"].size(), 1u);
  EXPECT_EQ(pending["allocation_requests"][0]["status"], "failed");
  EXPECT_EQ(api_->Update(1, "confirmed", "pos3-token")["success"], true);
  EXPECT_EQ(StatusOf(21, 0), "confirmed");
  EXPECT_EQ(Allocation(21)["state"], "confirmed");
}

// The API restarts while the dispatcher delivers: no event is lost, and confirms work after.
TEST_F(EndToEnd, TheApiRestartsWhileTheDispatcherWorks) {
  Start({{3, SmallBatches()}});
  for (int n = 100; n < 120; ++n) api_->CreateAllocation(n, "[[3]]");
  EXPECT_EQ(api_->Stop(SIGTERM), 0) << api_->process().Stderr();
  api_->Start();
  for (int n = 120; n < 140; ++n) api_->CreateAllocation(n, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return EventsAt(3).size() >= 40; }, 20s))
      << dispatcher_->Stderr();
  std::set<std::int64_t> ids;
  for (const json& e : EventsAt(3)) ids.insert(e["id"].get<std::int64_t>());
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_EQ(api_->Update(40, "confirmed", "pos3-token")["success"], true);
}

// The dispatcher restarts while the API takes allocations: events made while it was down are
// delivered once it is back, in order.
TEST_F(EndToEnd, TheDispatcherRestartsWhileTheApiWorks) {
  Start({{3, SmallBatches()}});
  for (int n = 200; n < 210; ++n) api_->CreateAllocation(n, "[[3]]");
  dispatcher_->Signal(SIGTERM);
  ASSERT_EQ(dispatcher_->Wait(20s), 0) << dispatcher_->Stderr();
  for (int n = 210; n < 230; ++n) api_->CreateAllocation(n, "[[3]]");
  StartDispatcher();
  ASSERT_TRUE(testing::WaitFor([&] { return EventsAt(3).size() >= 30; }, 20s))
      << dispatcher_->Stderr();
  std::vector<std::int64_t> ids;
  for (const json& e : EventsAt(3)) ids.push_back(e["id"].get<std::int64_t>());
  std::vector<std::int64_t> expected(30);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(ids, expected);  // each once, in order (strict order per warehouse)
  EXPECT_TRUE(testing::WaitFor([&] { return StatusOf(229, 0) == "sent"; }, 10s));
}

}  // namespace
}  // namespace allocation_relay
