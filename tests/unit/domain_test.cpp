#include "allocation_relay/domain.h"

#include <gtest/gtest.h>

namespace allocation_relay {
namespace {

TEST(RequestStatus, SpellsEveryStatusAsCentraDoes) {
  EXPECT_EQ(ToString(RequestStatus::kAllocated), "allocated");
  EXPECT_EQ(ToString(RequestStatus::kSent), "sent");
  EXPECT_EQ(ToString(RequestStatus::kFailed), "failed");
  EXPECT_EQ(ToString(RequestStatus::kConfirmed), "confirmed");
  EXPECT_EQ(ToString(RequestStatus::kRejected), "rejected");
  EXPECT_EQ(ToString(RequestStatus::kTimedOut), "timed-out");
  EXPECT_EQ(ToString(RequestStatus::kOutdated), "outdated");
  for (RequestStatus s : kAllRequestStatuses) EXPECT_EQ(ParseRequestStatus(ToString(s)), s);
  EXPECT_EQ(ParseRequestStatus("pending"), std::nullopt);
  EXPECT_EQ(ParseRequestStatus("Sent"), std::nullopt);
  EXPECT_EQ(ParseRequestStatus("timed_out"), std::nullopt);
}

// The status table of SPEC section 2, row by row: pending, confirmable and final.
TEST(RequestStatus, ClassifiesEveryRowOfTheStatusTable) {
  struct Row {
    RequestStatus status;
    bool pending, confirmable, final;
  };
  const Row rows[] = {
      {RequestStatus::kAllocated, true, true, false},
      {RequestStatus::kSent, true, true, false},
      {RequestStatus::kFailed, true, true, false},
      {RequestStatus::kConfirmed, false, false, true},
      {RequestStatus::kRejected, false, false, true},
      {RequestStatus::kTimedOut, false, true, false},
      {RequestStatus::kOutdated, false, false, true},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(IsPending(r.status), r.pending) << ToString(r.status);
    EXPECT_EQ(IsConfirmable(r.status), r.confirmable) << ToString(r.status);
    EXPECT_EQ(IsFinal(r.status), r.final) << ToString(r.status);
  }
}

TEST(AllocationState, RoundTrips) {
  for (auto s : {AllocationState::kOpen, AllocationState::kConfirmed, AllocationState::kExhausted,
                 AllocationState::kCancelled}) {
    EXPECT_EQ(ParseAllocationState(ToString(s)), s);
  }
  EXPECT_EQ(ToString(AllocationState::kExhausted), "exhausted");
  EXPECT_EQ(ParseAllocationState("closed"), std::nullopt);
}

TEST(DecideFlowStep, WaitsWhileTheGroupHasPendingRequests) {
  EXPECT_EQ(DecideFlowStep(0, 2, 1), FlowStep::kWait);
  EXPECT_EQ(DecideFlowStep(0, 2, 0), FlowStep::kNextGroup);
  EXPECT_EQ(DecideFlowStep(1, 2, 0), FlowStep::kExhausted);
  EXPECT_EQ(DecideFlowStep(0, 1, 0), FlowStep::kExhausted);
}

TEST(WarehouseScope, AllowsOnlyListedWarehouses) {
  WarehouseScope all;
  EXPECT_TRUE(all.Allows(42));
  WarehouseScope some{std::vector<std::int64_t>{3, 4}};
  EXPECT_TRUE(some.Allows(3));
  EXPECT_FALSE(some.Allows(7));
  WarehouseScope none{std::vector<std::int64_t>{}};
  EXPECT_FALSE(none.Allows(3));
}

TEST(WarehouseCatalog, FindsById) {
  WarehouseCatalog catalog({{3, "Amsterdam", std::chrono::hours(1)}});
  ASSERT_NE(catalog.Find(3), nullptr);
  EXPECT_EQ(catalog.Find(3)->name, "Amsterdam");
  EXPECT_EQ(catalog.Find(4), nullptr);
}

}  // namespace
}  // namespace allocation_relay
