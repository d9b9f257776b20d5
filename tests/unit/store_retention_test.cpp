// Retention in the store (SPEC section 9): what a prune step deletes, what it never touches, and
// that paging, counts and ids stay right after it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/store_fixture.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::StoreTest;

class StoreRetention : public StoreTest {
 protected:
  // Forms and records one delivery of warehouse `w`'s unbatched events with `outcome`.
  void Deliver(std::int64_t w, AttemptOutcome outcome) {
    auto render = [](std::span<const OutboxEvent>, std::span<const AllocationRequest>,
                     std::span<const CheckEventSubject>) { return std::string("doc"); };
    const std::vector<Store::AttemptRecord> no_records;
    const std::vector<Store::LeaseChange> no_leases;
    const std::vector<Store::DeliveryWant> wants{
        {w, 1, 100, true, clock_.Now() + 30s, {}, false, 0}};
    auto takes = store_->RecordAndTake(no_records, no_leases, wants, clock_.Now(), render);
    ASSERT_TRUE(takes.has_value());
    ASSERT_EQ(takes->at(0).claimed.size(), 1u);
    const Delivery d = takes->at(0).claimed[0];
    DeliveryAttempt a;
    a.attempt = 1;
    a.started_at = clock_.Now();
    a.http_status = outcome == AttemptOutcome::kSucceeded ? 200 : 500;
    const std::vector<Store::AttemptRecord> records{
        {a, outcome, clock_.Now() + 1h, d.request_ids, d}};
    const std::vector<Store::DeliveryWant> no_wants;
    ASSERT_TRUE(store_->RecordAndTake(records, no_leases, no_wants, clock_.Now(), render));
  }
  // An allocation of order `number` at warehouse `w` alone, delivered and confirmed.
  void Finished(std::int64_t number, std::int64_t w = 3) {
    PriorityGroups groups(1, std::vector<std::int64_t>(1, w));
    Create(number, std::move(groups));
    Deliver(w, AttemptOutcome::kSucceeded);
    EXPECT_EQ(Confirm(RequestOf(number, w).id).outcome, UpdateResult::Outcome::kUpdated);
  }
  // A whole pass with the given cutoff ages (nullopt: keep), `batch` allocations per step.
  PruneCounts Prune(std::optional<std::chrono::hours> finished,
                    std::optional<std::chrono::hours> attempts = std::nullopt, int batch = 100,
                    bool dry_run = false) {
    RetentionCutoffs cutoffs;
    if (finished) cutoffs.finished = clock_.Now() - *finished;
    if (attempts) cutoffs.attempts = clock_.Now() - *attempts;
    PruneCursor cursor;
    PruneCounts total;
    for (int steps = 0; !cursor.done(); ++steps) {
      auto step = store_->PruneStep(cutoffs, cursor, batch, 1000, dry_run);
      EXPECT_TRUE(step.has_value()) << (step ? "" : step.error().what());
      if (!step || steps > 10000) break;
      total.Add(*step);
    }
    return total;
  }
  bool Exists(std::int64_t number) { return store_->GetAllocationByOrder(number)->has_value(); }
  std::int64_t Deliveries() {
    std::int64_t n = 0;
    const auto by_state = store_->CountDeliveriesByState();
    EXPECT_TRUE(by_state.has_value());
    for (auto [state, count] : by_state.value()) n += count;
    return n;
  }
};

TEST_F(StoreRetention, AnOldFinishedAllocationGoesWithItsRequestsEventsDeliveryAndAttempts) {
  Finished(15);
  clock_.Advance(100 * 24h);
  // Newer and open: the newest request, event and delivery are never pruned.
  Create(16, {{4}});
  Deliver(4, AttemptOutcome::kSucceeded);
  ASSERT_EQ(Deliveries(), 2);
  PruneCounts c = Prune(90 * 24h);
  EXPECT_EQ(c.allocations, 1);
  EXPECT_EQ(c.requests, 1);
  EXPECT_EQ(c.events, 1);
  EXPECT_EQ(c.deliveries, 1);
  EXPECT_EQ(c.attempts, 1);
  EXPECT_FALSE(Exists(15));
  EXPECT_TRUE(Exists(16));
  EXPECT_EQ(Deliveries(), 1);
  EXPECT_EQ(store_->ListDeliveries(std::nullopt, 3, 100)->size(), 0u);
  EXPECT_EQ(store_->ListDeliveries(std::nullopt, 4, 100)->size(), 1u);
  EXPECT_EQ(*store_->IntegrityCheck(), true);
}

// Checks (SPEC section 12) go with their allocation, with their check_first events; a delivery
// that still holds another allocation's check event stays until that one goes too.
TEST_F(StoreRetention, ChecksAndTheirEventsGoWithTheirAllocation) {
  // A shop with 80 days to answer: 16 is accepted 50 days after it was asked.
  catalog_ = WarehouseCatalog({{3, "Amsterdam", 1h},
                               {4, "Tokyo", 1h},
                               {11, "Shop A", 80 * 24h, WarehousePolicy::kCheckFirst}});
  auto accept = [&](std::int64_t order) {
    auto r = store_->AnswerCheck({order, 11, true}, {}, clock_.Now(), catalog_);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->outcome, CheckResult::Outcome::kAnswered);
  };
  Create(15, {{11}});
  Create(16, {{11}});
  Deliver(11, AttemptOutcome::kSucceeded);  // A: both creates
  accept(15);
  Deliver(11, AttemptOutcome::kSucceeded);  // B: 15's accepted
  clock_.Advance(50 * 24h);
  accept(16);
  Deliver(11, AttemptOutcome::kSucceeded);  // C: 16's accepted
  Create(17, {{11}});
  clock_.Advance(50 * 24h);
  PruneCounts first = Prune(90 * 24h);
  EXPECT_EQ(first.allocations, 1);  // 15
  EXPECT_EQ(first.events, 2);
  EXPECT_EQ(first.deliveries, 1);  // B; A still holds 16's create
  EXPECT_FALSE(Exists(15));
  ASSERT_TRUE(Exists(16));
  EXPECT_EQ(Get(16).checks.size(), 1u);
  EXPECT_EQ(Deliveries(), 2);
  Deliver(11, AttemptOutcome::kSucceeded);  // D: 17's create, now the newest delivery
  clock_.Advance(50 * 24h);
  PruneCounts second = Prune(90 * 24h);
  EXPECT_EQ(second.allocations, 1);  // 16; 17 is open
  EXPECT_EQ(second.events, 2);
  EXPECT_EQ(second.deliveries, 2);  // A and C
  EXPECT_FALSE(Exists(16));
  ASSERT_TRUE(Exists(17));
  EXPECT_EQ(Deliveries(), 1);
  auto counts = store_->CountChecksByStatus();
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ((*counts)[static_cast<std::size_t>(CheckStatus::kAccepted)].second, 0);
  EXPECT_EQ((*counts)[static_cast<std::size_t>(CheckStatus::kAsked)].second, 1);
  EXPECT_EQ(*store_->IntegrityCheck(), true);
}

TEST_F(StoreRetention, AnAllocationWhoseCheckEventIsNotDeliveredStays) {
  catalog_ =
      WarehouseCatalog({{3, "Amsterdam", 1h}, {11, "Shop A", 30min, WarehousePolicy::kCheckFirst}});
  Create(15, {{11}});
  ASSERT_TRUE(store_->AnswerCheck({15, 11, true}, {}, clock_.Now(), catalog_).has_value());
  Finished(16);  // newer than 15
  clock_.Advance(100 * 24h);
  Create(17, {{3}});
  EXPECT_EQ(Prune(90 * 24h).allocations, 1);  // 16 only: 15's events are not delivered
  EXPECT_TRUE(Exists(15));
  EXPECT_FALSE(Exists(16));
  Deliver(11, AttemptOutcome::kSucceeded);
  EXPECT_EQ(Prune(90 * 24h).allocations, 1);
  EXPECT_FALSE(Exists(15));
}

TEST_F(StoreRetention, YoungerFinishedAndAnyOpenAllocationStay) {
  Finished(15);
  Create(16, {{4}});  // open, and as old as 15
  clock_.Advance(80 * 24h);
  Finished(17, 7);
  Create(18, {{3}});
  EXPECT_EQ(Prune(90 * 24h).Total(), 0);
  clock_.Advance(20 * 24h);
  PruneCounts c = Prune(90 * 24h);
  EXPECT_EQ(c.allocations, 1);
  EXPECT_FALSE(Exists(15));
  EXPECT_TRUE(Exists(16));  // open: never, however old
  EXPECT_TRUE(Exists(17));
  // A cutoff in the future still never takes an open one.
  Prune(std::chrono::hours(-1));
  EXPECT_TRUE(Exists(16));
  EXPECT_TRUE(Exists(18));
}

TEST_F(StoreRetention, AnAllocationWithAnEventWaitingForDeliveryStays) {
  Create(15, {{3}});  // its create event will be unbatched
  EXPECT_EQ(Confirm(RequestOf(15, 3).id).outcome, UpdateResult::Outcome::kUpdated);
  Create(16, {{4}});
  Deliver(4, AttemptOutcome::kRetry);  // in a pending delivery
  EXPECT_EQ(Confirm(RequestOf(16, 4).id).outcome, UpdateResult::Outcome::kUpdated);
  clock_.Advance(100 * 24h);
  Create(17, {{7}});
  EXPECT_EQ(Prune(90 * 24h).allocations, 0);
  EXPECT_TRUE(Exists(15));
  EXPECT_TRUE(Exists(16));
  // Once delivered they go.
  Deliver(3, AttemptOutcome::kSucceeded);
  EXPECT_EQ(Prune(90 * 24h).allocations, 1);
  EXPECT_FALSE(Exists(15));
  EXPECT_TRUE(Exists(16));
}

TEST_F(StoreRetention, AnUnsentEventOfAWarehouseWithoutAWebhookHoldsNothingBack) {
  Create(15, {{3}});  // warehouse 3 has a webhook: its unbatched event holds 15 back
  Create(16, {{4}});  // warehouse 4 polls: its event is never sent
  EXPECT_EQ(Confirm(RequestOf(15, 3).id).outcome, UpdateResult::Outcome::kUpdated);
  EXPECT_EQ(Confirm(RequestOf(16, 4).id).outcome, UpdateResult::Outcome::kUpdated);
  clock_.Advance(100 * 24h);
  Create(17, {{7}});
  RetentionCutoffs cutoffs;
  cutoffs.finished = clock_.Now() - 90 * 24h;
  cutoffs.webhook_warehouses = std::vector<std::int64_t>{3, 7};
  PruneCursor cursor;
  PruneCounts total;
  while (!cursor.done()) {
    auto step = store_->PruneStep(cutoffs, cursor, 100, 100, false);
    ASSERT_TRUE(step.has_value());
    total.Add(*step);
  }
  EXPECT_EQ(total.allocations, 1);
  EXPECT_EQ(total.events, 1);
  EXPECT_TRUE(Exists(15));
  EXPECT_FALSE(Exists(16));
}

TEST_F(StoreRetention, ADeadDeliveryDoesNotHoldItsAllocationsBackAndStaysWhileItHasEvents) {
  // 15 and 16 at warehouse 3, both events in one dead delivery; 15 finishes 60 days before 16.
  Create(15, {{3}});
  Create(16, {{3}});
  Deliver(3, AttemptOutcome::kDead);
  EXPECT_EQ(Confirm(RequestOf(15, 3).id).outcome, UpdateResult::Outcome::kUpdated);
  clock_.Advance(60 * 24h);
  EXPECT_EQ(Confirm(RequestOf(16, 3).id).outcome, UpdateResult::Outcome::kUpdated);
  clock_.Advance(60 * 24h);
  Create(17, {{7}});  // the newest request, event and delivery
  Deliver(7, AttemptOutcome::kSucceeded);
  PruneCounts c = Prune(90 * 24h);
  EXPECT_EQ(c.allocations, 1);
  EXPECT_FALSE(Exists(15));
  EXPECT_TRUE(Exists(16));
  EXPECT_EQ(c.deliveries, 0);  // it still holds 16's event
  ASSERT_EQ(store_->ListDeliveries(DeliveryState::kDead, 3, 10)->size(), 1u);
  // When the last allocation of its events goes, so does it.
  c = Prune(10 * 24h);
  EXPECT_EQ(c.allocations, 1);
  EXPECT_EQ(c.deliveries, 1);
  EXPECT_EQ(store_->ListDeliveries(DeliveryState::kDead, 3, 10)->size(), 0u);
  EXPECT_TRUE(Exists(17));
}

TEST_F(StoreRetention, OldAttemptsGoWhileTheirDeliveryStays) {
  Create(15, {{3}});
  Deliver(3, AttemptOutcome::kRetry);
  clock_.Advance(40 * 24h);
  Create(16, {{4}});
  auto pending = store_->ListDeliveries(DeliveryState::kPending, 3, 10);
  ASSERT_EQ(pending->size(), 1u);
  const std::int64_t id = pending->at(0).id;
  ASSERT_EQ(store_->ListAttempts(id)->size(), 1u);
  PruneCounts c = Prune(std::nullopt, 30 * 24h);
  EXPECT_EQ(c.attempts, 1);
  EXPECT_EQ(c.allocations, 0);
  EXPECT_EQ(store_->ListAttempts(id)->size(), 0u);
  auto kept = store_->GetDelivery(id);
  ASSERT_TRUE(kept->has_value());
  EXPECT_EQ((*kept)->attempt_count, 1);  // the delivery keeps its count
  EXPECT_TRUE(Exists(15));
}

TEST_F(StoreRetention, ADryRunDeletesNothingAndCountsWhatItWould) {
  for (int n = 1; n <= 5; ++n) Finished(n);
  clock_.Advance(100 * 24h);
  Create(99, {{4}});
  Deliver(4, AttemptOutcome::kSucceeded);
  PruneCounts would = Prune(90 * 24h, 30 * 24h, 2, /*dry_run=*/true);
  EXPECT_EQ(would.allocations, 5);
  EXPECT_EQ(would.requests, 5);
  EXPECT_EQ(would.events, 5);
  EXPECT_EQ(would.attempts, 5);
  for (int n = 1; n <= 5; ++n) EXPECT_TRUE(Exists(n));
  EXPECT_EQ(Deliveries(), 6);
  PruneCounts did = Prune(90 * 24h, 30 * 24h, 2);
  EXPECT_EQ(did.allocations, 5);
  EXPECT_EQ(did.deliveries, 5);
  EXPECT_EQ(did.attempts, 5);  // with their deliveries
  EXPECT_EQ(Deliveries(), 1);
}

TEST_F(StoreRetention, SmallStepsCoverEverythingAndSkipWhatIsKept) {
  for (int n = 1; n <= 7; ++n) Finished(n);
  Create(8, {{4}});
  EXPECT_EQ(Confirm(RequestOf(8, 4).id).outcome, UpdateResult::Outcome::kUpdated);  // unbatched
  for (int n = 9; n <= 12; ++n) Finished(n);
  clock_.Advance(100 * 24h);
  Create(100, {{7}});
  PruneCounts c = Prune(90 * 24h, std::nullopt, 3);
  EXPECT_EQ(c.allocations, 11);
  EXPECT_TRUE(Exists(8));
  EXPECT_TRUE(Exists(100));
}

TEST_F(StoreRetention, TheNewestRequestIsKeptSoIdsAreNeverHandedOutAgain) {
  Finished(15);
  Finished(16);
  const std::int64_t newest = RequestOf(16, 3).id;
  clock_.Advance(100 * 24h);
  EXPECT_EQ(Prune(90 * 24h).allocations, 1);  // 15 only
  EXPECT_TRUE(Exists(16));
  Create(17, {{4}});
  EXPECT_GT(RequestOf(17, 4).id, newest);
}

TEST_F(StoreRetention, PagesAndOrderNumbersAreRightAfterPruning) {
  for (int n = 1; n <= 150; ++n) {
    if (n % 3 == 0) {
      Finished(n);
    } else {
      Create(n, {{4}});
    }
  }
  clock_.Advance(100 * 24h);
  Create(1000, {{7}});
  EXPECT_EQ(Prune(90 * 24h).allocations, 50);
  // Every request left, in id order, page by page (offsets) and by cursor (after).
  std::vector<std::int64_t> by_cursor, by_page;
  for (std::int64_t after = 0;;) {
    RequestQuery q;
    q.after_id = after;
    auto page = *store_->ListRequests(q);
    if (page.empty()) break;
    for (const auto& r : page) by_cursor.push_back(r.id);
    after = page.back().id;
  }
  for (std::int64_t offset = 0;; offset += 100) {
    RequestQuery q;
    q.offset = offset;
    auto page = *store_->ListRequests(q);
    if (page.empty()) break;
    for (const auto& r : page) by_page.push_back(r.id);
  }
  EXPECT_EQ(by_cursor.size(), 101u);
  EXPECT_EQ(by_page, by_cursor);
  // A pruned order number may be used again.
  NewAllocation again{{"ab", 3}, {{1, 1, 1}}, {{3}}};
  auto created = store_->CreateAllocation(again, clock_.Now(), catalog_);
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->outcome, CreateResult::Outcome::kCreated);
}

}  // namespace
}  // namespace allocation_relay
