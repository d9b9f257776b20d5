// The transitions of SPEC section 2 and the Order API's queries, each through the Store on a real
// database (a SQLite file; a PostgreSQL database in the postgresql. run).
#include "allocation_relay/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "allocation_relay/render.h"
#include "support/query_plan.h"
#include "support/store_fixture.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using testing::Join;
using testing::PlanUses;
using testing::StoreTest;
using Outcome = UpdateResult::Outcome;

using StoreTransitions = StoreTest;

TEST_F(StoreTransitions, CreateMakesFirstGroupRequestsAllocatedWithCreateEvents) {
  Create(15, {{3, 4}, {7}});
  Allocation a = Get(15);
  EXPECT_EQ(a.state, AllocationState::kOpen);
  EXPECT_EQ(a.current_group, 0);
  EXPECT_EQ(a.groups, (PriorityGroups{{3, 4}, {7}}));
  EXPECT_EQ(a.order.id, "486e13eaaa65d5ff1e87c997b5dce54e");
  ASSERT_EQ(a.lines.size(), 2u);
  EXPECT_EQ(a.lines[0].line_id, 73);
  EXPECT_EQ(a.lines[0].quantity, 5);
  EXPECT_EQ(a.lines[0].stock_item_id, 1);
  ASSERT_EQ(a.requests.size(), 2u);
  for (const AllocationRequest& r : a.requests) {
    EXPECT_EQ(r.status, RequestStatus::kAllocated);
    EXPECT_EQ(r.created_at, clock_.Now());
    EXPECT_EQ(r.expires_at, clock_.Now() + 1h);
    EXPECT_EQ(ParseLinesJson(r.lines_json).size(), 2u);
    EXPECT_EQ(r.order.number, 15);
  }
  EXPECT_EQ(a.requests[0].warehouse_name, "Amsterdam");
  auto events = store_->ListUnbatchedEvents(std::nullopt, 100);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].action, EventAction::kCreate);
  EXPECT_EQ((*events)[0].status, RequestStatus::kAllocated);
  EXPECT_EQ((*events)[0].request_id, a.requests[0].id);
  EXPECT_EQ((*events)[1].warehouse_id, 4);
}

TEST_F(StoreTransitions, DuplicateOrderNumberChangesNothing) {
  Create(15, {{3}});
  NewAllocation again{{"ffff", 15}, {{1, 1, 1}}, {{4}}};
  auto r = store_->CreateAllocation(again, clock_.Now(), catalog_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, CreateResult::Outcome::kDuplicateOrder);
  EXPECT_EQ(Get(15).requests.size(), 1u);
  EXPECT_EQ(store_->ListUnbatchedEvents(std::nullopt, 100)->size(), 1u);
}

TEST_F(StoreTransitions, UnknownWarehousesAreSkippedAndAnEmptyGroupMovesOn) {
  Create(15, {{99}, {3, 98}});
  Allocation a = Get(15);
  EXPECT_EQ(a.current_group, 1);
  ASSERT_EQ(a.requests.size(), 1u);
  EXPECT_EQ(a.requests[0].warehouse_id, 3);
  EXPECT_EQ(a.requests[0].group_index, 1);
}

TEST_F(StoreTransitions, AllocationWithNoKnownWarehouseIsExhausted) {
  Create(15, {{99}});
  EXPECT_EQ(Get(15).state, AllocationState::kExhausted);
}

// The allocation a create returns (the API answers with it, reading nothing after the write) is
// the one GetAllocationByOrder reads afterwards, field by field: lines in line id order, the
// group actually started, the state, and every request as stored.
TEST_F(StoreTransitions, CreateReturnsTheAllocationExactlyAsStored) {
  clock_.Advance(std::chrono::microseconds(1234567));  // not a whole second
  const std::vector<std::pair<std::int64_t, PriorityGroups>> cases = {
      {15, {{3, 4}, {7}}}, {16, {{99}, {7, 98}, {3}}}, {17, {{99}, {98}}}, {18, {{4, 4}}}};
  for (const auto& [number, groups] : cases) {
    NewAllocation a{{"486e13eaaa65d5ff1e87c997b5dce54e", number},
                    {{74, 1, 2}, {73, 5, 1}, {80, 2, 9}},  // not in line id order
                    groups};
    auto created = store_->CreateAllocation(a, clock_.Now(), catalog_);
    ASSERT_TRUE(created);
    ASSERT_EQ(created->outcome, CreateResult::Outcome::kCreated);
    const Allocation& made = created->allocation;
    const Allocation stored = Get(number);
    SCOPED_TRACE("order " + std::to_string(number));
    EXPECT_EQ(made.id, stored.id);
    EXPECT_EQ(made.id, created->allocation_id);
    EXPECT_EQ(made.order.id, stored.order.id);
    EXPECT_EQ(made.order.number, stored.order.number);
    ASSERT_EQ(made.lines.size(), stored.lines.size());
    for (std::size_t i = 0; i < made.lines.size(); ++i) {
      EXPECT_EQ(made.lines[i].line_id, stored.lines[i].line_id);
      EXPECT_EQ(made.lines[i].quantity, stored.lines[i].quantity);
      EXPECT_EQ(made.lines[i].stock_item_id, stored.lines[i].stock_item_id);
    }
    EXPECT_EQ(made.groups, stored.groups);
    EXPECT_EQ(made.current_group, stored.current_group);
    EXPECT_EQ(made.state, stored.state);
    EXPECT_EQ(made.confirmed_warehouse_id, stored.confirmed_warehouse_id);
    EXPECT_EQ(made.created_at, stored.created_at);
    EXPECT_EQ(made.updated_at, stored.updated_at);
    ASSERT_EQ(made.requests.size(), stored.requests.size());
    for (std::size_t i = 0; i < made.requests.size(); ++i) {
      const AllocationRequest &m = made.requests[i], &r = stored.requests[i];
      EXPECT_EQ(m.id, r.id);
      EXPECT_EQ(m.allocation_id, r.allocation_id);
      EXPECT_EQ(m.status, r.status);
      EXPECT_EQ(m.warehouse_id, r.warehouse_id);
      EXPECT_EQ(m.warehouse_name, r.warehouse_name);
      EXPECT_EQ(m.group_index, r.group_index);
      EXPECT_EQ(m.created_at, r.created_at);
      EXPECT_EQ(m.expires_at, r.expires_at);
      EXPECT_EQ(m.updated_at, r.updated_at);
      EXPECT_EQ(m.order.id, r.order.id);
      EXPECT_EQ(m.order.number, r.order.number);
      EXPECT_EQ(m.lines_json, r.lines_json);
    }
  }
  EXPECT_EQ(Get(16).current_group, 1);
  EXPECT_EQ(Get(17).state, AllocationState::kExhausted);
  EXPECT_EQ(Get(18).requests.size(), 1u);
}

// allocated -> sent, allocated -> failed, failed -> sent (SPEC: a later success makes it sent).
TEST_F(StoreTransitions, DeliveryOutcomesMoveAllocatedAndFailed) {
  Create(15, {{3, 4, 7}});
  std::int64_t r3 = RequestOf(15, 3).id, r4 = RequestOf(15, 4).id, r7 = RequestOf(15, 7).id;
  std::vector<std::int64_t> sent{r3};
  EXPECT_EQ(*store_->MarkSent(sent, clock_.Now()), 1);
  std::vector<std::int64_t> failed{r3, r4};
  EXPECT_EQ(*store_->MarkFailed(failed, clock_.Now()), 1);  // r3 is sent: untouched
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kFailed);
  std::vector<std::int64_t> retry{r4, r7};
  EXPECT_EQ(*store_->MarkSent(retry, clock_.Now()), 2);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(15, 7).status, RequestStatus::kSent);
}

TEST_F(StoreTransitions, LateDeliveryOutcomesNeverOverwriteFinalOrTimedOutStatuses) {
  Create(15, {{3, 4}, {7}});
  Create(16, {{3}, {4}});
  std::int64_t r3 = RequestOf(15, 3).id, r4 = RequestOf(15, 4).id;
  ASSERT_EQ(Confirm(r3).outcome, Outcome::kUpdated);  // r4 becomes outdated
  Create(17, {{3}, {4}});
  ASSERT_EQ(Reject(RequestOf(17, 3).id).outcome, Outcome::kUpdated);
  clock_.Advance(2h);
  ASSERT_EQ(store_->ExpireDue(clock_.Now(), catalog_)->timed_out, 2);  // 16/3 and 17/4
  std::vector<std::int64_t> ids{r3, r4, RequestOf(16, 3).id, RequestOf(17, 3).id};
  EXPECT_EQ(*store_->MarkSent(ids, clock_.Now()), 0);
  EXPECT_EQ(*store_->MarkFailed(ids, clock_.Now()), 0);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kConfirmed);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kOutdated);
  EXPECT_EQ(RequestOf(16, 3).status, RequestStatus::kTimedOut);
  EXPECT_EQ(RequestOf(17, 3).status, RequestStatus::kRejected);
}

TEST_F(StoreTransitions, ConfirmWinsAndOutdatesTheRestWithUpdateEvents) {
  Create(15, {{3, 4}, {7}});
  std::int64_t r3 = RequestOf(15, 3).id, r4 = RequestOf(15, 4).id;
  std::vector<std::int64_t> sent{r4};
  store_->MarkSent(sent, clock_.Now());
  UpdateResult result = Confirm(r3);
  EXPECT_EQ(result.outcome, Outcome::kUpdated);
  Allocation a = Get(15);
  EXPECT_EQ(a.state, AllocationState::kConfirmed);
  EXPECT_EQ(a.confirmed_warehouse_id, 3);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kConfirmed);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kOutdated);
  EXPECT_FALSE(HasRequest(15, 7));
  auto events = *store_->ListUnbatchedEvents(4, 100);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].action, EventAction::kUpdate);
  EXPECT_EQ(events[1].status, RequestStatus::kOutdated);
  EXPECT_EQ(events[1].request_id, r4);
  EXPECT_EQ(store_->ListUnbatchedEvents(3, 100)->size(), 1u);  // no event for the confirmer
}

TEST_F(StoreTransitions, ConfirmFromEveryPendingStatusSucceeds) {
  Create(1, {{3}});
  Create(2, {{3}});
  Create(3, {{3}});
  std::vector<std::int64_t> sent{RequestOf(2, 3).id};
  store_->MarkSent(sent, clock_.Now());
  std::vector<std::int64_t> failed{RequestOf(3, 3).id};
  store_->MarkFailed(failed, clock_.Now());
  for (std::int64_t order : {1, 2, 3}) {
    EXPECT_EQ(Confirm(RequestOf(order, 3).id).outcome, Outcome::kUpdated) << order;
    EXPECT_EQ(Get(order).state, AllocationState::kConfirmed);
  }
}

TEST_F(StoreTransitions, FinalStatusesCannotBeUpdatedWithTheExactCentraMessage) {
  Create(15, {{3, 4}, {7}});
  std::int64_t r3 = RequestOf(15, 3).id, r4 = RequestOf(15, 4).id;
  Create(16, {{3}, {4}});
  std::int64_t r16 = RequestOf(16, 3).id;
  ASSERT_EQ(Confirm(r3).outcome, Outcome::kUpdated);
  ASSERT_EQ(Reject(r16).outcome, Outcome::kUpdated);

  struct Case {
    std::int64_t id;
    bool confirm;
    const char* message;
  };
  for (const Case& c : {Case{r3, true,
                             "You can't update allocation request, which is in status "
                             "confirmed."},
                        Case{r3, false,
                             "You can't update allocation request, which is in status "
                             "confirmed."},
                        Case{r4, true,
                             "You can't update allocation request, which is in status "
                             "outdated."},
                        Case{r4, false,
                             "You can't update allocation request, which is in status "
                             "outdated."},
                        Case{r16, true,
                             "You can't update allocation request, which is in status "
                             "rejected."},
                        Case{r16, false,
                             "You can't update allocation request, which is in status "
                             "rejected."}}) {
    UpdateResult r = c.confirm ? Confirm(c.id) : Reject(c.id);
    ASSERT_EQ(r.outcome, Outcome::kWrongStatus);
    EXPECT_EQ(CannotUpdateMessage(r.status), c.message);
  }
}

TEST_F(StoreTransitions, UnknownOrOutOfScopeRequestIsNotFound) {
  Create(15, {{3, 4}});
  std::int64_t r4 = RequestOf(15, 4).id;
  EXPECT_EQ(Confirm(999999).outcome, Outcome::kNotFound);
  EXPECT_EQ(Reject(999999).outcome, Outcome::kNotFound);
  WarehouseScope only3{std::vector<std::int64_t>{3}};
  EXPECT_EQ(Confirm(r4, only3).outcome, Outcome::kNotFound);
  EXPECT_EQ(Reject(r4, only3).outcome, Outcome::kNotFound);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kAllocated);
  EXPECT_STREQ(kRequestNotFoundMessage, "Allocation request not found");
  EXPECT_EQ(Confirm(RequestOf(15, 3).id, only3).outcome, Outcome::kUpdated);
}

TEST_F(StoreTransitions, RejectWaitsForTheWholeGroupThenMovesOn) {
  Create(15, {{3, 4}, {7}});
  ASSERT_EQ(Reject(RequestOf(15, 3).id).outcome, Outcome::kUpdated);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kRejected);
  EXPECT_FALSE(HasRequest(15, 7));
  EXPECT_EQ(Get(15).current_group, 0);
  clock_.Advance(1min);
  ASSERT_EQ(Reject(RequestOf(15, 4).id).outcome, Outcome::kUpdated);
  Allocation a = Get(15);
  EXPECT_EQ(a.current_group, 1);
  EXPECT_EQ(a.state, AllocationState::kOpen);
  AllocationRequest r7 = RequestOf(15, 7);
  EXPECT_EQ(r7.status, RequestStatus::kAllocated);
  EXPECT_EQ(r7.group_index, 1);
  EXPECT_EQ(r7.expires_at, clock_.Now() + 2h);
  auto events = *store_->ListUnbatchedEvents(7, 100);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, EventAction::kCreate);
}

TEST_F(StoreTransitions, RejectingEveryGroupExhaustsTheAllocation) {
  Create(15, {{3}, {4}});
  ASSERT_EQ(Reject(RequestOf(15, 3).id).outcome, Outcome::kUpdated);
  ASSERT_EQ(Reject(RequestOf(15, 4).id).outcome, Outcome::kUpdated);
  Allocation a = Get(15);
  EXPECT_EQ(a.state, AllocationState::kExhausted);
  EXPECT_EQ(a.confirmed_warehouse_id, std::nullopt);
}

TEST_F(StoreTransitions, ExpiryTimesOutAndMovesTheFlowOn) {
  Create(15, {{3, 4}, {7}});
  clock_.Advance(59min);
  EXPECT_EQ(store_->ExpireDue(clock_.Now(), catalog_)->timed_out, 0);
  clock_.Advance(1min);  // exactly at the expiration date
  ExpiryResult e = *store_->ExpireDue(clock_.Now(), catalog_);
  EXPECT_EQ(e.timed_out, 2);
  EXPECT_EQ(e.groups_advanced, 1);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kTimedOut);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kTimedOut);
  EXPECT_EQ(RequestOf(15, 7).status, RequestStatus::kAllocated);
  EXPECT_EQ(Get(15).current_group, 1);
  auto events = *store_->ListUnbatchedEvents(3, 100);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].action, EventAction::kUpdate);
  EXPECT_EQ(events[1].status, RequestStatus::kTimedOut);
}

TEST_F(StoreTransitions, ExpiryWaitsWhileAnotherGroupMemberIsPending) {
  Create(15, {{3, 7}, {4}});  // 3 expires after 1h, 7 after 2h
  clock_.Advance(1h);
  ExpiryResult e = *store_->ExpireDue(clock_.Now(), catalog_);
  EXPECT_EQ(e.timed_out, 1);
  EXPECT_EQ(e.groups_advanced, 0);
  EXPECT_FALSE(HasRequest(15, 4));
  clock_.Advance(1h);
  EXPECT_EQ(store_->ExpireDue(clock_.Now(), catalog_)->groups_advanced, 1);
  EXPECT_TRUE(HasRequest(15, 4));
}

// SPEC: a timed-out request can still be confirmed while the allocation is open; it wins and
// the later request of the next group is outdated.
TEST_F(StoreTransitions, LateConfirmOfTimedOutRequestWinsAndOutdatesTheLaterRequest) {
  Create(15, {{3}, {7}});
  clock_.Advance(1h);
  store_->ExpireDue(clock_.Now(), catalog_);
  ASSERT_EQ(RequestOf(15, 7).status, RequestStatus::kAllocated);
  clock_.Advance(5min);
  UpdateResult r = Confirm(RequestOf(15, 3).id);
  EXPECT_EQ(r.outcome, Outcome::kUpdated);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kConfirmed);
  EXPECT_EQ(RequestOf(15, 7).status, RequestStatus::kOutdated);
  EXPECT_EQ(Get(15).confirmed_warehouse_id, 3);
  EXPECT_EQ(store_->ListUnbatchedEvents(7, 100)->back().status, RequestStatus::kOutdated);
}

TEST_F(StoreTransitions, RejectOfTimedOutRequestOfAnEarlierGroupDoesNotMoveTheFlow) {
  Create(15, {{3}, {7}, {4}});
  clock_.Advance(1h);
  store_->ExpireDue(clock_.Now(), catalog_);
  ASSERT_EQ(Reject(RequestOf(15, 3).id).outcome, Outcome::kUpdated);
  EXPECT_EQ(Get(15).current_group, 1);
  EXPECT_EQ(RequestOf(15, 7).status, RequestStatus::kAllocated);
  EXPECT_FALSE(HasRequest(15, 4));
}

TEST_F(StoreTransitions, ExhaustionOutdatesTimedOutRequestsAndConfirmThenFails) {
  Create(15, {{3}, {4}});
  clock_.Advance(1h);
  store_->ExpireDue(clock_.Now(), catalog_);  // 3 timed out, 4 asked
  clock_.Advance(1h);
  ExpiryResult e = *store_->ExpireDue(clock_.Now(), catalog_);
  EXPECT_EQ(e.exhausted, 1);
  EXPECT_EQ(Get(15).state, AllocationState::kExhausted);
  for (std::int64_t w : {3, 4}) {
    AllocationRequest r = RequestOf(15, w);
    EXPECT_EQ(r.status, RequestStatus::kOutdated);
    UpdateResult c = Confirm(r.id);
    ASSERT_EQ(c.outcome, Outcome::kWrongStatus);
    EXPECT_EQ(CannotUpdateMessage(c.status),
              "You can't update allocation request, which is in status outdated.");
  }
  auto events = *store_->ListUnbatchedEvents(3, 100);
  EXPECT_EQ(events.back().status, RequestStatus::kOutdated);
}

TEST_F(StoreTransitions, CancelOutdatesEveryNonFinalRequest) {
  Create(15, {{3, 4}, {7}});
  ASSERT_EQ(Reject(RequestOf(15, 3).id).outcome, Outcome::kUpdated);
  auto c = *store_->CancelAllocation(15, clock_.Now());
  EXPECT_EQ(c.outcome, CancelResult::Outcome::kCancelled);
  EXPECT_EQ(Get(15).state, AllocationState::kCancelled);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kRejected);
  EXPECT_EQ(RequestOf(15, 4).status, RequestStatus::kOutdated);
  EXPECT_EQ(Confirm(RequestOf(15, 4).id).status, RequestStatus::kOutdated);
  auto again = *store_->CancelAllocation(15, clock_.Now());
  EXPECT_EQ(again.outcome, CancelResult::Outcome::kNotOpen);
  EXPECT_EQ(again.state, AllocationState::kCancelled);
  EXPECT_EQ(store_->CancelAllocation(404, clock_.Now())->outcome, CancelResult::Outcome::kNotFound);
}

TEST_F(StoreTransitions, ConfirmedAllocationCannotBeCancelled) {
  Create(15, {{3}});
  Confirm(RequestOf(15, 3).id);
  auto c = *store_->CancelAllocation(15, clock_.Now());
  EXPECT_EQ(c.outcome, CancelResult::Outcome::kNotOpen);
  EXPECT_EQ(c.state, AllocationState::kConfirmed);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kConfirmed);
}

TEST_F(StoreTransitions, NextExpirationIsTheEarliestPendingOne) {
  EXPECT_EQ(*store_->NextExpiration(), std::nullopt);
  Create(15, {{7}});
  clock_.Advance(1min);
  Create(16, {{3}});
  EXPECT_EQ(*store_->NextExpiration(), clock_.Now() + 1h);
}

using StoreQueries = StoreTest;

TEST_F(StoreQueries, ListRequestsFiltersByStatusOrderAndWarehouseInIdOrder) {
  Create(15, {{3, 4}});
  Create(16, {{3}, {7}});
  Create(17, {{4}});
  Reject(RequestOf(16, 3).id);  // 16 moves to 7
  auto ids = [&](RequestQuery q) {
    std::vector<std::int64_t> out;
    auto list = store_->ListRequests(q);
    EXPECT_TRUE(list.has_value());
    for (const AllocationRequest& r : *list) out.push_back(r.id);
    return out;
  };
  RequestQuery pending;
  pending.statuses = {RequestStatus::kAllocated, RequestStatus::kSent, RequestStatus::kFailed};
  EXPECT_THAT(ids(pending), ElementsAre(1, 2, 4, 5));
  RequestQuery w3 = pending;
  w3.warehouse_ids = {3};
  EXPECT_THAT(ids(w3), ElementsAre(1));
  RequestQuery all;
  EXPECT_THAT(ids(all), ElementsAre(1, 2, 3, 4, 5));
  RequestQuery rejected;
  rejected.statuses = {RequestStatus::kRejected};
  EXPECT_THAT(ids(rejected), ElementsAre(3));
  RequestQuery by_order;
  by_order.order_numbers = {16, 17};
  EXPECT_THAT(ids(by_order), ElementsAre(3, 4, 5));
  RequestQuery scoped;
  scoped.scope.only = std::vector<std::int64_t>{4, 7};
  scoped.warehouse_ids = {3, 4};
  EXPECT_THAT(ids(scoped), ElementsAre(2, 4));
  RequestQuery paged;
  paged.limit = 2;
  paged.offset = 2;
  EXPECT_THAT(ids(paged), ElementsAre(3, 4));
  RequestQuery after;
  after.after_id = 3;
  EXPECT_THAT(ids(after), ElementsAre(4, 5));
  auto list = *store_->ListRequests(all);
  EXPECT_EQ(list[4].order.number, 16);
  EXPECT_EQ(ParseLinesJson(list[4].lines_json).size(), 2u);
  EXPECT_EQ(list[4].warehouse_name, "Central");
}

// The warehouse name is matched exactly, as a bound value: quotes and patterns are only text.
// It is a filter like the others, so deep pages never take the unfiltered id-range shortcut.
TEST_F(StoreQueries, ListRequestsFiltersByTheExactWarehouseName) {
  for (int i = 0; i < 10; ++i) Create(100 + i, {{3, 4}});  // odd ids at 3, even ids at 4
  Reject(RequestOf(100, 3).id);                            // 1 rejected
  auto ids = [&](RequestQuery q) {
    std::vector<std::int64_t> out;
    auto list = store_->ListRequests(q);
    EXPECT_TRUE(list.has_value()) << (list ? "" : list.error().what());
    if (list) {
      for (const AllocationRequest& r : *list) out.push_back(r.id);
    }
    return out;
  };
  RequestQuery tokyo;
  tokyo.warehouse_name = "Tokyo";
  tokyo.limit = 3;
  EXPECT_THAT(ids(tokyo), ElementsAre(2, 4, 6));
  tokyo.offset = 3;
  EXPECT_THAT(ids(tokyo), ElementsAre(8, 10, 12));
  RequestQuery amsterdam_pending;
  amsterdam_pending.warehouse_name = "Amsterdam";
  amsterdam_pending.statuses = {RequestStatus::kAllocated, RequestStatus::kSent,
                                RequestStatus::kFailed};
  amsterdam_pending.order_numbers = {100, 101};
  EXPECT_THAT(ids(amsterdam_pending), ElementsAre(3));
  amsterdam_pending.scope.only = std::vector<std::int64_t>{4};
  EXPECT_THAT(ids(amsterdam_pending), ElementsAre());
  for (const char* other : {"tokyo", "Tokyo ", "Toky", "%", "Tokyo' OR '1'='1", ""}) {
    RequestQuery q;
    q.warehouse_name = other;
    EXPECT_THAT(ids(q), ElementsAre()) << other;
  }
}

// GET /orders/<n>/allocation-requests: the order's requests with its filters, and whether the
// order exists for the caller's scope, in one read.
TEST_F(StoreQueries, ListOrderRequestsFiltersTheOrdersRequestsAndTellsAnUnknownOrder) {
  Create(15, {{3, 4}, {7}});     // 1 (3), 2 (4)
  Create(16, {{7}});             // 3 (7)
  Confirm(RequestOf(15, 3).id);  // 1 confirmed, 2 outdated
  auto ids = [&](std::int64_t number, RequestQuery filters) {
    std::optional<std::vector<std::int64_t>> out;
    auto list = store_->ListOrderRequests(number, filters);
    EXPECT_TRUE(list.has_value()) << (list ? "" : list.error().what());
    if (list && *list) {
      out.emplace();
      for (const AllocationRequest& r : **list) out->push_back(r.id);
    }
    return out;
  };
  auto known = [](std::vector<std::int64_t> v) { return std::optional(std::move(v)); };
  EXPECT_EQ(ids(15, {}), known({1, 2}));
  RequestQuery confirmed;
  confirmed.statuses = {RequestStatus::kConfirmed};
  EXPECT_EQ(ids(15, confirmed), known({1}));
  RequestQuery pending;
  pending.statuses = {RequestStatus::kAllocated, RequestStatus::kSent, RequestStatus::kFailed};
  EXPECT_EQ(ids(15, pending), known({}));  // known, nothing matches
  RequestQuery tokyo;
  tokyo.warehouse_name = "Tokyo";
  EXPECT_EQ(ids(15, tokyo), known({2}));
  RequestQuery central;
  central.warehouse_name = "Central";
  EXPECT_EQ(ids(15, central), known({}));
  EXPECT_EQ(ids(99, {}), std::nullopt);
  EXPECT_EQ(ids(99, tokyo), std::nullopt);

  // Scoped: the order exists only with a request at one of the scope's warehouses.
  RequestQuery at3;
  at3.scope.only = std::vector<std::int64_t>{3};
  EXPECT_EQ(ids(15, at3), known({1}));
  EXPECT_EQ(ids(16, at3), std::nullopt);
  at3.warehouse_name = "Tokyo";
  EXPECT_EQ(ids(15, at3), known({}));
  RequestQuery at7;
  at7.scope.only = std::vector<std::int64_t>{7};
  EXPECT_EQ(ids(15, at7), std::nullopt);
  EXPECT_EQ(ids(16, at7), known({3}));
  RequestQuery nowhere;
  nowhere.scope.only = std::vector<std::int64_t>{};
  EXPECT_EQ(ids(15, nowhere), std::nullopt);
  EXPECT_TRUE(store_->ListRequests(nowhere)->empty());

  // The filters' order, warehouse id and paging fields play no part.
  RequestQuery ignored;
  ignored.order_numbers = {16};
  ignored.warehouse_ids = {7};
  ignored.after_id = 1;
  ignored.offset = 1;
  ignored.limit = 1;
  EXPECT_EQ(ids(15, ignored), known({1, 2}));

  // The rows are the requests as stored, field for field.
  auto list = *store_->ListOrderRequests(15, {});
  Allocation a = Get(15);
  ASSERT_EQ(list->size(), a.requests.size());
  TimeZone utc = *TimeZone::Find("UTC");
  for (std::size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(RenderRequestEntry((*list)[i], utc).dump(),
              RenderRequestEntry(a.requests[i], utc).dump());
    EXPECT_EQ((*list)[i].allocation_id, a.requests[i].allocation_id);
    EXPECT_EQ((*list)[i].group_index, a.requests[i].group_index);
  }
}

// An allocation none of whose warehouses was known has no requests: the order exists (an empty
// list) for an unscoped caller and not for a scoped one.
TEST_F(StoreQueries, AnOrderWithoutRequestsExistsOnlyForUnscopedCallers) {
  Create(15, {{99}});
  auto unscoped = store_->ListOrderRequests(15, {});
  ASSERT_TRUE(unscoped.has_value());
  ASSERT_TRUE(unscoped->has_value());
  EXPECT_TRUE((*unscoped)->empty());
  RequestQuery scoped;
  scoped.scope.only = std::vector<std::int64_t>{3, 4, 7, 99};
  auto hidden = store_->ListOrderRequests(15, scoped);
  ASSERT_TRUE(hidden.has_value());
  EXPECT_FALSE(hidden->has_value());
}

// No page: every request of an order comes back, however many warehouses it was sent to.
TEST_F(StoreQueries, ListOrderRequestsIsNotPaged) {
  std::vector<WarehouseInfo> warehouses;
  std::vector<std::int64_t> group;
  for (std::int64_t id = 1000; id < 1150; ++id) {
    warehouses.push_back({id, "W" + std::to_string(id), std::chrono::hours(1)});
    group.push_back(id);
  }
  WarehouseCatalog many(warehouses);
  NewAllocation a{{"ab", 15}, {{1, 1, 1}}, {group}};
  ASSERT_TRUE(store_->CreateAllocation(a, clock_.Now(), many).has_value());
  auto list = store_->ListOrderRequests(15, {});
  ASSERT_TRUE(list.has_value() && list->has_value());
  ASSERT_EQ((*list)->size(), 150u);
  for (std::size_t i = 1; i < (*list)->size(); ++i) {
    EXPECT_LT((**list)[i - 1].id, (**list)[i].id);
  }
  RequestQuery one;
  one.warehouse_name = "W1149";
  list = store_->ListOrderRequests(15, one);
  ASSERT_TRUE(list.has_value() && list->has_value());
  ASSERT_EQ((*list)->size(), 1u);
  EXPECT_EQ((**list)[0].warehouse_id, 1149);
}

// Unfiltered pages use the id range when ids are dense and OFFSET when they are not; both give
// exactly OFFSET's answer.
TEST_F(StoreQueries, UnfilteredPagesMatchOffsetSemanticsWithOrWithoutGaps) {
  for (int i = 0; i < 25; ++i) Create(100 + i, {{3}});
  auto ids = [&](std::int64_t offset, std::int64_t after) {
    RequestQuery q;
    q.limit = 10;
    q.offset = offset;
    q.after_id = after;
    auto list = store_->ListRequests(q);
    EXPECT_TRUE(list.has_value());
    std::vector<std::int64_t> out;
    for (const AllocationRequest& r : *list) out.push_back(r.id);
    return out;
  };
  EXPECT_THAT(ids(10, 0), ElementsAre(11, 12, 13, 14, 15, 16, 17, 18, 19, 20));
  EXPECT_THAT(ids(20, 0), ElementsAre(21, 22, 23, 24, 25));
  EXPECT_THAT(ids(30, 0), ElementsAre());
  EXPECT_THAT(ids(10, 3), ElementsAre(14, 15, 16, 17, 18, 19, 20, 21, 22, 23));
  EXPECT_THAT(ids(std::numeric_limits<std::int64_t>::max(), 5), ElementsAre());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("relay.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(raw, "DELETE FROM allocation_requests WHERE id = 5", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_THAT(ids(10, 0), ElementsAre(12, 13, 14, 15, 16, 17, 18, 19, 20, 21));
  EXPECT_THAT(ids(0, 0).front(), 1);
}

TEST_F(StoreQueries, GetRequestCarriesOrderAndLines) {
  Create(15, {{3}});
  auto r = *store_->GetRequest(1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->order.number, 15);
  EXPECT_EQ(
      r->lines_json,
      R"([{"lineId":73,"quantity":5,"stockItemId":1},{"lineId":74,"quantity":1,"stockItemId":2}])");
  EXPECT_EQ(*store_->GetRequest(2), std::nullopt);
  EXPECT_EQ(*store_->GetAllocationByOrder(99), std::nullopt);
}

// The page is chosen in index order (no sort of the candidates); with an OFFSET only the final
// page of at most 100 rows may be sorted, after "SCAN page".
bool PageSelectionSorts(const std::vector<std::string>& plan) {
  for (const std::string& step : plan) {
    if (step.starts_with("SCAN page")) return false;
    if (step.find("TEMP B-TREE") != std::string::npos) return true;
  }
  return false;
}

TEST_F(StoreQueries, DefaultPendingQueryByWarehouseUsesThePendingIndex) {
  RequestQuery q;
  q.statuses = {RequestStatus::kFailed, RequestStatus::kAllocated, RequestStatus::kSent};
  q.warehouse_ids = {3};
  auto plan = *store_->ExplainListRequestsForTest(q);
  EXPECT_TRUE(PlanUses(plan, "COVERING INDEX requests_pending_by_warehouse")) << Join(plan);
  EXPECT_FALSE(PageSelectionSorts(plan)) << Join(plan);
}

TEST_F(StoreQueries, DefaultPendingQueryWithoutWarehouseUsesThePendingIndex) {
  RequestQuery q;
  q.statuses = {RequestStatus::kAllocated, RequestStatus::kSent, RequestStatus::kFailed};
  auto plan = *store_->ExplainListRequestsForTest(q);
  EXPECT_TRUE(PlanUses(plan, "requests_pending ")) << Join(plan);
  EXPECT_FALSE(PageSelectionSorts(plan)) << Join(plan);
  q.scope.only = std::vector<std::int64_t>{3, 4};  // a scoped key: by warehouse again
  plan = *store_->ExplainListRequestsForTest(q);
  EXPECT_TRUE(PlanUses(plan, "requests_pending_by_warehouse")) << Join(plan);
}

TEST_F(StoreQueries, DeepPagesStepOverIdsInAnIndexWithoutSorting) {
  RequestQuery q;
  q.statuses = {RequestStatus::kConfirmed};
  q.offset = 5000;
  auto plan = *store_->ExplainListRequestsForTest(q);
  EXPECT_TRUE(PlanUses(plan, "MATERIALIZE page")) << Join(plan);
  EXPECT_TRUE(PlanUses(plan, "COVERING INDEX requests_by_status")) << Join(plan);
  EXPECT_FALSE(PageSelectionSorts(plan)) << Join(plan);
}

TEST_F(StoreQueries, QueryByWarehouseAndStatusAvoidsFullScans) {
  RequestQuery by_warehouse;
  by_warehouse.warehouse_ids = {3};
  auto plan = *store_->ExplainListRequestsForTest(by_warehouse);
  EXPECT_TRUE(PlanUses(plan, "requests_by_warehouse")) << Join(plan);
  RequestQuery by_status;
  by_status.statuses = {RequestStatus::kConfirmed};
  plan = *store_->ExplainListRequestsForTest(by_status);
  EXPECT_TRUE(PlanUses(plan, "requests_by_status")) << Join(plan);
  RequestQuery by_order;
  by_order.order_numbers = {15};
  plan = *store_->ExplainListRequestsForTest(by_order);
  EXPECT_FALSE(PlanUses(plan, "SCAN r")) << Join(plan);
}

// An order filter reads the order's few rows in requests_by_order, also when a status and a
// scope would let the planner (without statistics) walk a warehouse's pending index instead.
using StoreQueriesSqlite = StoreTest;
TEST_F(StoreQueriesSqlite, AnOrderFilterReadsTheOrderIndex) {
  RequestQuery q;
  q.order_numbers = {15};
  q.statuses = {RequestStatus::kAllocated, RequestStatus::kSent, RequestStatus::kFailed};
  q.scope.only = std::vector<std::int64_t>{3};
  auto plan = *store_->ExplainListRequestsForTest(q);
  EXPECT_TRUE(PlanUses(plan, "requests_by_order")) << Join(plan);
  EXPECT_FALSE(PlanUses(plan, "requests_pending_by_warehouse")) << Join(plan);
  q.order_numbers = {15, 16};
  q.statuses = {RequestStatus::kConfirmed};
  q.warehouse_name = "Amsterdam";
  q.offset = 100;
  plan = *store_->ExplainListRequestsForTest(q);
  EXPECT_TRUE(PlanUses(plan, "requests_by_order")) << Join(plan);
}

TEST_F(StoreQueries, ExpiryScanReadsOnlyThePendingExpiryIndex) {
  auto plan = *store_->ExplainExpiryScanForTest();
  EXPECT_TRUE(PlanUses(plan, "requests_pending_by_expiry")) << Join(plan);
  EXPECT_FALSE(PlanUses(plan, "TEMP B-TREE")) << Join(plan);
}

// The expiry worker asks for the next expiration every poll: one step into the pending expiry
// index, not a walk over every pending row (what the planner picks for min() on its own).
TEST_F(StoreQueries, NextExpirationReadsOnlyThePendingExpiryIndex) {
  auto plan = *store_->ExplainNextExpirationForTest();
  EXPECT_TRUE(PlanUses(plan, "requests_pending_by_expiry")) << Join(plan);
  EXPECT_FALSE(PlanUses(plan, "requests_by_status")) << Join(plan);
}

TEST_F(StoreQueries, ExpiryIgnoresManyUnexpiredRequests) {
  for (int i = 0; i < 300; ++i) Create(1000 + i, {{3, 4}});
  clock_.Advance(30min);
  Create(5000, {{3}});
  clock_.Advance(31min);
  ExpiryResult e = *store_->ExpireDue(clock_.Now(), catalog_, 1000);
  EXPECT_EQ(e.timed_out, 600);
  EXPECT_EQ(RequestOf(5000, 3).status, RequestStatus::kAllocated);
  EXPECT_EQ(store_->ExpireDue(clock_.Now(), catalog_)->timed_out, 0);
}

TEST_F(StoreQueries, ExpiryHonoursItsLimit) {
  for (int i = 0; i < 10; ++i) Create(100 + i, {{3}});
  clock_.Advance(2h);
  EXPECT_EQ(store_->ExpireDue(clock_.Now(), catalog_, 4)->timed_out, 4);
  EXPECT_EQ(store_->ExpireDue(clock_.Now(), catalog_, 100)->timed_out, 6);
}

}  // namespace
}  // namespace allocation_relay
