// "Check first, then allocate" (SPEC section 12) at the store: checks asked before requests,
// answers, timeouts, cancel, and the check_first events each transition queues. Runs on both
// backends.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "allocation_relay/store.h"
#include "support/store_fixture.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using Outcome = CheckResult::Outcome;

class StoreChecks : public testing::StoreTest {
 protected:
  StoreChecks() {
    catalog_ = WarehouseCatalog({{3, "Amsterdam", 1h},
                                 {4, "Tokyo", 1h},
                                 {11, "Shop A", 30min, WarehousePolicy::kCheckFirst},
                                 {12, "Shop B", 10min, WarehousePolicy::kCheckFirst},
                                 {13, "Shop C", 1h, WarehousePolicy::kCheckFirst}});
  }

  CheckResult Answer(std::int64_t order, std::int64_t warehouse, bool accepted,
                     WarehouseScope scope = {}) {
    auto r = store_->AnswerCheck({order, warehouse, accepted}, scope, clock_.Now(), catalog_);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what());
    return r.value_or(CheckResult{});
  }

  ExpiryResult Expire() {
    auto r = store_->ExpireDue(clock_.Now(), catalog_);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what());
    return r.value_or(ExpiryResult{});
  }

  // The allocation's checks as "warehouse:status", in id order.
  std::vector<std::string> Checks(std::int64_t order) {
    std::vector<std::string> out;
    for (const Check& c : Get(order).checks) {
      out.push_back(std::to_string(c.warehouse_id) + ":" + std::string(ToString(c.status)));
    }
    return out;
  }

  // The unbatched check_first events as "warehouse:action", oldest first; request events as
  // "warehouse:request:action:status".
  std::vector<std::string> Events() {
    std::vector<std::string> out;
    auto events = store_->ListUnbatchedEvents(std::nullopt, 1000);
    EXPECT_TRUE(events.has_value());
    if (!events) return out;
    for (const OutboxEvent& e : *events) {
      if (e.check_id != 0) {
        out.push_back(std::to_string(e.warehouse_id) + ":" + std::string(ToString(e.action)));
      } else {
        out.push_back(std::to_string(e.warehouse_id) + ":request:" +
                      std::string(ToString(e.action)) + ":" + std::string(ToString(e.status)));
      }
    }
    return out;
  }

  using Strings = std::vector<std::string>;
};

TEST_F(StoreChecks, AGroupAsksItsCheckFirstWarehousesFirstEachWithItsOwnExpiry) {
  Create(100, {{11, 3, 12}, {4}});
  Allocation a = Get(100);
  EXPECT_EQ(a.state, AllocationState::kOpen);
  EXPECT_TRUE(a.requests.empty());
  ASSERT_EQ(a.checks.size(), 2u);
  EXPECT_EQ(a.checks[0].warehouse_id, 11);
  EXPECT_EQ(a.checks[0].status, CheckStatus::kAsked);
  EXPECT_EQ(a.checks[0].expires_at, clock_.Now() + 30min);
  EXPECT_EQ(a.checks[1].warehouse_id, 12);
  EXPECT_EQ(a.checks[1].expires_at, clock_.Now() + 10min);
  EXPECT_EQ(Events(), (Strings{"11:create", "12:create"}));
  auto next = store_->NextExpiration();
  ASSERT_TRUE(next.has_value() && next->has_value());
  EXPECT_EQ(**next, clock_.Now() + 10min);
}

TEST_F(StoreChecks, TheFirstAcceptanceWinsConfirmsTheAllocationAndRejectsTheOthers) {
  Create(101, {{11, 12, 13}, {4}});
  EXPECT_EQ(Answer(101, 12, true).outcome, Outcome::kAnswered);
  Allocation a = Get(101);
  EXPECT_EQ(a.state, AllocationState::kConfirmed);
  EXPECT_EQ(a.confirmed_warehouse_id, 12);
  EXPECT_TRUE(a.requests.empty());
  EXPECT_EQ(Checks(101), (Strings{"11:rejected", "12:accepted", "13:rejected"}));
  EXPECT_EQ(Events(), (Strings{"11:create", "12:create", "13:create", "12:accepted", "11:rejected",
                               "13:rejected"}));
  // Decisions are final, and nothing else can be taken.
  EXPECT_EQ(Answer(101, 12, true).outcome, Outcome::kFailed);
  EXPECT_EQ(Answer(101, 11, true).outcome, Outcome::kFailed);
  EXPECT_EQ(Answer(101, 13, false).outcome, Outcome::kFailed);
  EXPECT_EQ(Events().size(), 6u);
}

TEST_F(StoreChecks, WhenEveryCheckIsRejectedTheGroupsDirectWarehousesGetRequests) {
  Create(102, {{11, 3, 12}, {4}});
  EXPECT_EQ(Answer(102, 11, false).outcome, Outcome::kAnswered);
  EXPECT_TRUE(Get(102).requests.empty());  // 12 is still asked
  EXPECT_EQ(Answer(102, 12, false).outcome, Outcome::kAnswered);
  Allocation a = Get(102);
  EXPECT_EQ(a.state, AllocationState::kOpen);
  EXPECT_EQ(a.current_group, 0);
  ASSERT_EQ(a.requests.size(), 1u);
  EXPECT_EQ(a.requests[0].warehouse_id, 3);
  EXPECT_EQ(a.requests[0].group_index, 0);
  EXPECT_EQ(Events(), (Strings{"11:create", "12:create", "11:rejected", "12:rejected",
                               "3:request:create:allocated"}));
  // The direct request then runs the usual flow: rejected, the next group is asked.
  EXPECT_EQ(Reject(a.requests[0].id).outcome, UpdateResult::Outcome::kUpdated);
  EXPECT_TRUE(HasRequest(102, 4));
}

TEST_F(StoreChecks, AGroupOfCheckFirstWarehousesOnlyMovesOnToTheNextGroupOrEnds) {
  Create(103, {{11}, {13, 4}});
  EXPECT_EQ(Answer(103, 11, false).outcome, Outcome::kAnswered);
  Allocation a = Get(103);
  EXPECT_EQ(a.current_group, 1);
  EXPECT_EQ(Checks(103), (Strings{"11:rejected", "13:asked"}));
  EXPECT_TRUE(a.requests.empty());  // group 1 asks 13 first

  Create(104, {{11}});
  EXPECT_EQ(Answer(104, 11, false).outcome, Outcome::kAnswered);
  EXPECT_EQ(Get(104).state, AllocationState::kExhausted);
}

TEST_F(StoreChecks, AnUnansweredCheckTimesOutAtItsExpiryAndCanNoLongerAccept) {
  Create(105, {{11, 12, 3}});
  clock_.Advance(10min);
  ExpiryResult first = Expire();
  EXPECT_EQ(first.checks_timed_out, 1);
  EXPECT_EQ(Checks(105), (Strings{"11:asked", "12:timed-out"}));
  EXPECT_EQ(Answer(105, 12, true).outcome, Outcome::kFailed);
  EXPECT_TRUE(Get(105).requests.empty());
  clock_.Advance(20min);
  ExpiryResult second = Expire();
  EXPECT_EQ(second.checks_timed_out, 1);
  EXPECT_EQ(second.groups_advanced, 1);
  EXPECT_EQ(Checks(105), (Strings{"11:timed-out", "12:timed-out"}));
  ASSERT_TRUE(HasRequest(105, 3));
  EXPECT_EQ(Events(), (Strings{"11:create", "12:create", "12:timeout", "11:timeout",
                               "3:request:create:allocated"}));
  EXPECT_EQ(Answer(105, 11, true).outcome, Outcome::kFailed);
}

// The expiry alone decides: an answer at or after it fails even while the check is still
// `asked` (the expiry worker has not run), and changes nothing; a microsecond before, it is taken.
TEST_F(StoreChecks, NoAnswerIsTakenFromTheExpiryOnEvenBeforeTheExpiryRan) {
  Create(112, {{12, 3}});
  Create(113, {{12}});
  clock_.Advance(10min - Micros(1));
  EXPECT_EQ(Answer(113, 12, true).outcome, Outcome::kAnswered);
  clock_.Advance(Micros(1));
  EXPECT_EQ(Answer(112, 12, true).outcome, Outcome::kFailed);
  EXPECT_EQ(Answer(112, 12, false).outcome, Outcome::kFailed);
  EXPECT_EQ(Checks(112), Strings{"12:asked"});
  EXPECT_EQ(Get(112).state, AllocationState::kOpen);
  EXPECT_TRUE(Get(112).requests.empty());
  EXPECT_EQ(Expire().checks_timed_out, 1);
  EXPECT_EQ(Checks(112), Strings{"12:timed-out"});
  EXPECT_TRUE(HasRequest(112, 3));
}

TEST_F(StoreChecks, CancellingRejectsTheOpenChecks) {
  Create(106, {{11, 12}});
  EXPECT_EQ(Answer(106, 11, false).outcome, Outcome::kAnswered);
  auto cancelled = store_->CancelAllocation(106, clock_.Now());
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->outcome, CancelResult::Outcome::kCancelled);
  EXPECT_EQ(Checks(106), (Strings{"11:rejected", "12:rejected"}));
  EXPECT_EQ(Events(), (Strings{"11:create", "12:create", "11:rejected", "12:rejected"}));
  EXPECT_EQ(Answer(106, 12, true).outcome, Outcome::kFailed);
}

TEST_F(StoreChecks, ALateConfirmOfATimedOutRequestRejectsTheOpenChecks) {
  Create(107, {{3}, {11}});
  clock_.Advance(1h);
  Expire();  // 3 times out; group 1 asks 11
  EXPECT_EQ(Checks(107), (Strings{"11:asked"}));
  EXPECT_EQ(Confirm(RequestOf(107, 3).id).outcome, UpdateResult::Outcome::kUpdated);
  EXPECT_EQ(Get(107).state, AllocationState::kConfirmed);
  EXPECT_EQ(Checks(107), (Strings{"11:rejected"}));
  Strings events = Events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "11:rejected");
}

TEST_F(StoreChecks, AnAcceptanceOutdatesTheRequestsOfEarlierGroups) {
  Create(108, {{3}, {11}});
  clock_.Advance(1h);
  Expire();
  EXPECT_EQ(Answer(108, 11, true).outcome, Outcome::kAnswered);
  EXPECT_EQ(RequestOf(108, 3).status, RequestStatus::kOutdated);
  EXPECT_EQ(Get(108).confirmed_warehouse_id, 11);
}

TEST_F(StoreChecks, UnknownOrdersWarehousesNotAskedAndOtherScopesAreUnknown) {
  Create(109, {{11, 3}});
  EXPECT_EQ(Answer(999, 11, true).outcome, Outcome::kUnknown);
  EXPECT_EQ(Answer(109, 3, true).outcome, Outcome::kUnknown);   // asked by request, not check
  EXPECT_EQ(Answer(109, 12, true).outcome, Outcome::kUnknown);  // not in the rule
  EXPECT_EQ(Answer(109, 11, true, WarehouseScope{std::vector<std::int64_t>{3}}).outcome,
            Outcome::kUnknown);
  EXPECT_EQ(Answer(109, 11, true, WarehouseScope{std::vector<std::int64_t>{11}}).outcome,
            Outcome::kAnswered);
}

TEST_F(StoreChecks, ChecksAreCountedByStatus) {
  Create(110, {{11, 12}});
  Create(111, {{13}});
  Answer(110, 11, true);
  auto counts = store_->CountChecksByStatus();
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(*counts,
            (std::vector<std::pair<CheckStatus, std::int64_t>>{{CheckStatus::kAsked, 1},
                                                               {CheckStatus::kAccepted, 1},
                                                               {CheckStatus::kRejected, 1},
                                                               {CheckStatus::kTimedOut, 0}}));
}

// Two stores (two connections) accept different checks of the same allocations at once: one
// acceptance wins each time, the other fails and changes nothing.
TEST_F(StoreChecks, RacingAcceptancesHaveExactlyOneWinner) {
  constexpr int kOrders = 40;
  for (int i = 0; i < kOrders; ++i) Create(200 + i, {{11, 12}});
  std::atomic<int> wins[2] = {0, 0};
  std::atomic<int> errors = 0;
  auto run = [&](int side) {
    std::unique_ptr<Store> store = Store::Open(Options());
    const std::int64_t warehouse = side == 0 ? 11 : 12;
    for (int i = 0; i < kOrders; ++i) {
      auto r = store->AnswerCheck({200 + i, warehouse, true}, {}, clock_.Now(), catalog_);
      if (!r) {
        ++errors;
      } else if (r->outcome == Outcome::kAnswered) {
        ++wins[side];
      }
    }
  };
  std::thread first(run, 0), second(run, 1);
  first.join();
  second.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wins[0].load() + wins[1].load(), kOrders);
  for (int i = 0; i < kOrders; ++i) {
    Allocation a = Get(200 + i);
    ASSERT_EQ(a.state, AllocationState::kConfirmed);
    int accepted = 0;
    for (const Check& c : a.checks) accepted += c.status == CheckStatus::kAccepted;
    EXPECT_EQ(accepted, 1) << "order " << 200 + i;
  }
}

}  // namespace
}  // namespace allocation_relay
