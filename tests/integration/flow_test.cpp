// Both real binaries on one database file: the API takes allocations and confirms, the
// dispatcher expires requests and moves the flow on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "support/api_process.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::ordered_json;
using testing::ApiProcess;
using testing::Process;

class Flow : public ::testing::Test {
 protected:
  Flow() : dispatcher_({DISPATCHER_BINARY, "--config", api_.ConfigPath()}, api_.dir().path()) {
    EXPECT_TRUE(testing::WaitFor(
        [&] { return dispatcher_.Stderr().find("ready") != std::string::npos; }, 15s))
        << dispatcher_.Stderr();
  }
  ~Flow() override {
    dispatcher_.Signal(SIGTERM);
    EXPECT_EQ(dispatcher_.Wait(15s), 0) << dispatcher_.Stderr();
  }

  ordered_json Allocation(int number) {
    return api_.Get("/allocations/" + std::to_string(number)).Json()["allocation"];
  }

  ApiProcess api_;
  Process dispatcher_;
};

// SPEC: pending at the expiration date -> timed-out (within a second), the flow moves to the
// next group, and the timed-out request can still be confirmed while the allocation is open.
TEST_F(Flow, TimeoutMovesOnAndALateConfirmOfTheTimedOutRequestWins) {
  api_.CreateAllocation(15, "[[9],[3]]");
  ASSERT_TRUE(
      testing::WaitFor([&] { return Allocation(15)["allocation_requests"].size() == 2; }, 15s))
      << dispatcher_.Stderr();
  ordered_json a = Allocation(15);
  EXPECT_EQ(a["allocation_requests"][0]["status"], "timed-out");
  EXPECT_EQ(a["allocation_requests"][1]["status"], "allocated");
  EXPECT_EQ(a["allocation_requests"][1]["warehouseId"], 3);
  EXPECT_EQ(api_.Update(1, "confirmed")["success"], true);
  a = Allocation(15);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 9);
  EXPECT_EQ(a["allocation_requests"][1]["status"], "outdated");
}

TEST_F(Flow, TimeoutOfTheLastGroupExhaustsTheAllocation) {
  api_.CreateAllocation(16, "[[9]]");
  ASSERT_TRUE(testing::WaitFor([&] { return Allocation(16)["state"] == "exhausted"; }, 15s))
      << dispatcher_.Stderr();
  EXPECT_EQ(Allocation(16)["allocation_requests"][0]["status"], "outdated");
  EXPECT_EQ(
      api_.Put("/allocation-request", R"({"id":1,"status":"confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status outdated."]})");
}

}  // namespace
}  // namespace allocation_relay
