// The store's webhook deliveries, all written by the dispatcher's round (RecordAndTake: record
// attempts, change leases, claim or form deliveries, in one write): batching the outbox in
// order, strict order, leases, held deliveries, attempts, dead and re-sent deliveries.
#include <gtest/gtest.h>

#include "support/store_fixture.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::StoreTest;

class StoreDeliveries : public StoreTest {
 protected:
  // One round. The document lists "event id:order number;" per event.
  std::vector<Store::DeliveryTake> Take(std::vector<Store::DeliveryWant> wants,
                                        std::vector<Store::AttemptRecord> records = {},
                                        std::vector<Store::LeaseChange> leases = {}) {
    auto render = [this](std::span<const OutboxEvent> events,
                         std::span<const AllocationRequest> requests) {
      std::string doc;
      for (std::size_t i = 0; i < events.size(); ++i) {
        doc += std::to_string(events[i].id) + ":" + std::to_string(requests[i].order.number) + ";";
      }
      return std::pair{"msg_" + std::to_string(++uids_), doc};
    };
    auto taken = store_->RecordAndTake(records, leases, wants, clock_.Now(), render);
    EXPECT_TRUE(taken.has_value());
    return taken ? *taken : std::vector<Store::DeliveryTake>{};
  }
  Store::DeliveryWant Want(std::int64_t w, int slots, int max_events, bool strict = true,
                           std::vector<std::int64_t> held = {}) {
    return {w, slots, max_events, strict, clock_.Now() + 30s, std::move(held)};
  }
  // Forms (and claims) one delivery of up to 100 of warehouse `w`'s events.
  Delivery Form(std::int64_t w) {
    auto takes = Take({Want(w, 1, 100)});
    EXPECT_EQ(takes.at(0).claimed.size(), 1u);
    return takes.at(0).claimed.at(0);
  }
  // A finished call of `d`, as the dispatcher records it.
  Store::AttemptRecord Rec(const Delivery& d, int status, AttemptOutcome outcome,
                           TimePoint next = {}) {
    return {Attempt(d, status), outcome, next, d.request_ids};
  }
  void Record(const Delivery& d, int status, AttemptOutcome outcome, TimePoint next = {}) {
    Take({}, {Rec(d, status, outcome, next)});
  }
  Delivery Read(const Delivery& d) { return **store_->GetDelivery(d.id); }
  // The ids of warehouse `w`'s unbatched events.
  std::vector<std::int64_t> Unbatched(std::int64_t w) {
    std::vector<std::int64_t> ids;
    auto events = store_->ListUnbatchedEvents(w, 1000);
    EXPECT_TRUE(events.has_value());
    for (const OutboxEvent& e : *events) ids.push_back(e.id);
    return ids;
  }

  DeliveryAttempt Attempt(const Delivery& d, int status) {
    DeliveryAttempt a;
    a.delivery_id = d.id;
    a.attempt = d.attempt_count + 1;
    a.started_at = clock_.Now();
    a.duration = 1500us;
    a.http_status = status;
    a.error = status == 0 ? "connection refused" : "";
    a.response_head = std::string("ok\0bytes", 8);
    return a;
  }
  int uids_ = 0;
};

TEST_F(StoreDeliveries, FormsAndClaimsBatchesRenderedFromTheirEventsAndRequests) {
  Create(15, {{3}});
  Create(16, {{3}});
  Create(17, {{3}});
  auto takes = Take({Want(3, 1, 2), Want(4, 1, 2)});
  ASSERT_EQ(takes.size(), 2u);
  ASSERT_EQ(takes[0].claimed.size(), 1u);
  const Delivery& d = takes[0].claimed[0];
  EXPECT_EQ(d.uid, "msg_1");
  EXPECT_EQ(d.document, "1:15;2:16;");
  EXPECT_EQ(d.state, DeliveryState::kPending);
  EXPECT_EQ(d.attempt_count, 0);
  EXPECT_EQ(d.request_ids, (std::vector<std::int64_t>{RequestOf(15, 3).id, RequestOf(16, 3).id}));
  EXPECT_EQ(d.lease_until, clock_.Now() + 30s);
  EXPECT_EQ(Read(d).lease_until, clock_.Now() + 30s);
  EXPECT_EQ(Unbatched(3), std::vector<std::int64_t>{3});
  EXPECT_TRUE(takes[1].claimed.empty());  // warehouse 4 has nothing
  // Strict order: the head is leased (in flight elsewhere), so nothing else goes.
  EXPECT_TRUE(Take({Want(3, 1, 2)})[0].claimed.empty());
  // Its success recorded in the same round lets the next batch form.
  Store::AttemptRecord ok = Rec(d, 200, AttemptOutcome::kSucceeded, clock_.Now());
  auto next = Take({Want(3, 1, 2)}, {ok});
  ASSERT_EQ(next[0].claimed.size(), 1u);
  EXPECT_EQ(next[0].claimed[0].document, "3:17;");
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(17, 3).status, RequestStatus::kAllocated);
  EXPECT_TRUE(Unbatched(3).empty());
}

TEST_F(StoreDeliveries, HeldDeliveriesAreSkippedSoSeveralAreClaimedAheadInOrder) {
  for (int n = 15; n < 20; ++n) Create(n, {{3}});
  auto first = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(first.size(), 2u);  // strict order, two claimed ahead: they go one after the other
  EXPECT_LT(first[0].id, first[1].id);
  // The caller holds both: the next round claims behind them instead of waiting.
  auto more = Take({Want(3, 2, 1, true, {first[0].id, first[1].id})})[0].claimed;
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].document, "3:17;");
  EXPECT_EQ(more[1].document, "4:18;");
  // Held by someone else (not in `held`), a leased delivery blocks everything after it.
  EXPECT_TRUE(Take({Want(3, 2, 1, true, {first[0].id})})[0].claimed.empty());
}

TEST_F(StoreDeliveries, PastHeldLooksOnlyAfterTheNewestHeldDeliveryAndAFullLookFindsOlderOnes) {
  Create(15, {{3}});
  Delivery old = Form(3);
  Record(old, 500, AttemptOutcome::kDead);
  for (int n = 16; n < 20; ++n) Create(n, {{3}});
  auto held = Take({Want(3, 2, 1)})[0].claimed;  // events 2 and 3
  ASSERT_EQ(held.size(), 2u);
  ASSERT_EQ(*store_->ResendDead(3, clock_.Now()), 1);  // older than the held ones, pending again
  Store::DeliveryWant past = Want(3, 2, 1, true, {held[0].id, held[1].id});
  past.past_held = true;
  auto ahead = Take({past})[0].claimed;
  ASSERT_EQ(ahead.size(), 2u);  // only what comes after the held ones
  EXPECT_EQ(ahead[0].document, "4:18;");
  EXPECT_EQ(ahead[1].document, "5:19;");
  // The periodic full look (not past_held) finds the re-sent one before them.
  auto full =
      Take({Want(3, 2, 1, true, {held[0].id, held[1].id, ahead[0].id, ahead[1].id})})[0].claimed;
  ASSERT_EQ(full.size(), 1u);
  EXPECT_EQ(full[0].id, old.id);
}

TEST_F(StoreDeliveries, ReleasedLeasesAreClaimedAgainAndRenewedOnesAreNot) {
  Create(15, {{3}});
  Create(16, {{3}});
  auto held = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(held.size(), 2u);
  // The first failed: recorded, and the second given back in the same round.
  std::vector<Store::LeaseChange> release{{held[1].id, std::nullopt}};
  auto takes = Take({Want(3, 2, 1)}, {Rec(held[0], 500, AttemptOutcome::kRetry, clock_.Now() + 5s)},
                    release);
  EXPECT_TRUE(takes[0].claimed.empty());  // both wait behind the retry
  EXPECT_EQ(takes[0].next_due, clock_.Now() + 5s);
  EXPECT_EQ(Read(held[1]).lease_until, std::nullopt);
  clock_.Advance(5s);
  auto again = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].id, held[0].id);
  EXPECT_EQ(again[1].id, held[1].id);
  // A renewed lease outlasts the first one: nobody else may claim it until then.
  std::vector<Store::LeaseChange> renew{{again[1].id, clock_.Now() + 60s}};
  Take({}, {}, renew);
  EXPECT_EQ(Read(again[1]).lease_until, clock_.Now() + 60s);
  clock_.Advance(31s);
  auto after = Take({Want(3, 2, 1, false)})[0].claimed;
  ASSERT_EQ(after.size(), 1u);  // the first one's lease ran out (its holder crashed)
  EXPECT_EQ(after[0].id, again[0].id);
}

TEST_F(StoreDeliveries, LeasesExcludeOthersUntilTheyRunOut) {
  Create(15, {{3}});
  Delivery d = Form(3);
  clock_.Advance(10s);
  EXPECT_TRUE(Take({Want(3, 1, 100)})[0].claimed.empty());
  EXPECT_TRUE(Take({Want(3, 1, 100, false)})[0].claimed.empty());
  // The claimer crashed: after its lease, another dispatcher may send it again.
  clock_.Advance(20s);
  auto again = Take({Want(3, 1, 100)})[0].claimed;
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, d.id);
  EXPECT_EQ(again[0].document, d.document);
  EXPECT_EQ(again[0].request_ids, d.request_ids);
}

TEST_F(StoreDeliveries, SuccessMarksItsRequestsSentButNeverOverwritesFinalStatuses) {
  Create(15, {{3}});
  Create(16, {{3}});
  Create(17, {{3}});
  std::vector<std::int64_t> failed{RequestOf(16, 3).id};
  store_->MarkFailed(failed, clock_.Now());
  Confirm(RequestOf(17, 3).id);
  Delivery d = Form(3);
  Record(d, 204, AttemptOutcome::kSucceeded);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(16, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(17, 3).status, RequestStatus::kConfirmed);
  auto done = store_->ListDeliveries(DeliveryState::kSucceeded, 3, 10);
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].attempt_count, 1);
  auto attempts = *store_->ListAttempts(d.id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].attempt, 1);
  EXPECT_EQ(attempts[0].http_status, 204);
  EXPECT_EQ(attempts[0].duration, 1500us);
  EXPECT_EQ(attempts[0].response_head, std::string("ok\0bytes", 8));
  // Nothing more is recorded for a finished delivery (a late duplicate of the same call).
  Record(d, 200, AttemptOutcome::kSucceeded);
  EXPECT_EQ(store_->ListAttempts(d.id)->size(), 1u);
}

TEST_F(StoreDeliveries, FailureMarksAllocatedRequestsFailedAndSchedulesTheRetry) {
  Create(15, {{3}});
  Delivery d = Form(3);
  Record(d, 0, AttemptOutcome::kRetry, clock_.Now() + 5s);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kFailed);
  Delivery head = Read(d);
  EXPECT_EQ(head.state, DeliveryState::kPending);
  EXPECT_EQ(head.attempt_count, 1);
  EXPECT_EQ(head.next_attempt_at, clock_.Now() + 5s);
  EXPECT_EQ(head.lease_until, std::nullopt);  // released for the retry
  clock_.Advance(5s);
  Record(d, 200, AttemptOutcome::kSucceeded);  // stale: says attempt 1 again, so ignored
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kFailed);
  Record(Read(d), 200, AttemptOutcome::kSucceeded);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);  // a later success: failed -> sent
  auto attempts = *store_->ListAttempts(d.id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 0);
  EXPECT_EQ(attempts[0].error, "connection refused");
  EXPECT_EQ(attempts[1].attempt, 2);
}

TEST_F(StoreDeliveries, DeadDeliveriesStopBlockingAndCanBeSentAgain) {
  Create(15, {{3}});
  Delivery a = Form(3);
  Create(16, {{4}});
  Delivery b = Form(4);
  Create(17, {{3}});
  Record(a, 500, AttemptOutcome::kDead);
  Record(b, 500, AttemptOutcome::kDead);
  EXPECT_EQ(store_->ListDeliveries(DeliveryState::kDead, 3, 10)->size(), 1u);
  // A dead delivery no longer holds the warehouse's next events back.
  auto next = Take({Want(3, 1, 100)})[0].claimed;
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].document, "3:17;");
  Record(next[0], 200, AttemptOutcome::kSucceeded);
  clock_.Advance(1h);
  EXPECT_EQ(*store_->ResendDead(3, clock_.Now()), 1);
  Delivery again = Read(a);
  EXPECT_EQ(again.state, DeliveryState::kPending);
  EXPECT_EQ(again.next_attempt_at, clock_.Now());
  EXPECT_EQ(again.attempt_count, 1);  // its history is kept
  auto resent = Take({Want(3, 1, 100)})[0].claimed;
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].id, a.id);
  EXPECT_EQ(store_->ListDeliveries(DeliveryState::kDead, std::nullopt, 10)->size(), 1u);
  EXPECT_EQ(*store_->ResendDead(std::nullopt, clock_.Now()), 1);
}

TEST_F(StoreDeliveries, DeliveriesAreCountedByState) {
  auto counts = [&] {
    auto by_state = store_->CountDeliveriesByState();
    std::vector<std::int64_t> n;
    for (const auto& [state, count] : by_state.value()) n.push_back(count);
    return n;
  };
  EXPECT_EQ(counts(), (std::vector<std::int64_t>{0, 0, 0}));  // pending, succeeded, dead
  for (int n = 15; n < 19; ++n) Create(n, {{3}});
  auto d = Take({Want(3, 4, 1, false)})[0].claimed;
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(counts(), (std::vector<std::int64_t>{4, 0, 0}));
  Take({}, {Rec(d[0], 200, AttemptOutcome::kSucceeded, clock_.Now()),
            Rec(d[1], 200, AttemptOutcome::kSucceeded, clock_.Now()),
            Rec(d[2], 500, AttemptOutcome::kDead, clock_.Now())});
  EXPECT_EQ(counts(), (std::vector<std::int64_t>{1, 2, 1}));
  EXPECT_EQ(*store_->ResendDead(3, clock_.Now()), 1);
  EXPECT_EQ(counts(), (std::vector<std::int64_t>{2, 2, 0}));
}

TEST_F(StoreDeliveries, SeveralAttemptsAreRecordedInOneWrite) {
  Create(15, {{3}});
  Delivery a = Form(3);
  Create(16, {{4}});
  Delivery b = Form(4);
  Take({}, {
               Rec(a, 200, AttemptOutcome::kSucceeded, clock_.Now()),
               Rec(b, 503, AttemptOutcome::kRetry, clock_.Now() + 5s),
               Rec(a, 200, AttemptOutcome::kSucceeded, clock_.Now()),  // done: ignored
           });
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(16, 4).status, RequestStatus::kFailed);
  EXPECT_EQ(store_->ListAttempts(a.id)->size(), 1u);
  EXPECT_EQ(Read(b).next_attempt_at, clock_.Now() + 5s);
}

TEST_F(StoreDeliveries, StrictOrderWaitsBehindARetryAndReportsWhenItIsDue) {
  Create(15, {{3}});
  Delivery d = Take({Want(3, 1, 1)})[0].claimed.at(0);
  Store::AttemptRecord retry = Rec(d, 500, AttemptOutcome::kRetry, clock_.Now() + 5s);
  Create(16, {{3}});
  auto takes = Take({Want(3, 1, 1)}, {retry});
  EXPECT_TRUE(takes[0].claimed.empty());  // request 16 waits behind the retry
  EXPECT_EQ(takes[0].next_due, clock_.Now() + 5s);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kFailed);
  clock_.Advance(5s);
  takes = Take({Want(3, 1, 1)});
  ASSERT_EQ(takes[0].claimed.size(), 1u);
  EXPECT_EQ(takes[0].claimed[0].id, d.id);  // the same batch again, as it was
  EXPECT_EQ(takes[0].claimed[0].attempt_count, 1);
}

TEST_F(StoreDeliveries, WithSeveralInFlightARetryNoLongerHoldsTheOthersBack) {
  for (int n = 15; n < 20; ++n) Create(n, {{3}});
  auto first = Take({Want(3, 3, 1, false)})[0].claimed;
  ASSERT_EQ(first.size(), 3u);  // three batches of one, in flight at once
  std::vector<Store::AttemptRecord> records{
      Rec(first[0], 500, AttemptOutcome::kRetry, clock_.Now() + 5s),
      Rec(first[1], 200, AttemptOutcome::kSucceeded, clock_.Now())};
  auto takes = Take({Want(3, 2, 1, false, {first[2].id})}, records);
  ASSERT_EQ(takes[0].claimed.size(), 2u);  // events 4 and 5 pass the one waiting for its retry
  EXPECT_EQ(takes[0].claimed[0].document, "4:18;");
  EXPECT_EQ(takes[0].claimed[1].document, "5:19;");
  EXPECT_EQ(takes[0].next_due, clock_.Now() + 5s);
}

TEST_F(StoreDeliveries, WebhooksAreDisabledUntilEnabledAndEventsAreCounted) {
  EXPECT_EQ(*store_->MaxEventId(), 0);
  Create(15, {{3, 4}});
  EXPECT_EQ(*store_->MaxEventId(), 2);
  EXPECT_TRUE(*store_->DisableWebhook(3, "410 Gone", clock_.Now()));
  EXPECT_FALSE(*store_->DisableWebhook(3, "410 Gone", clock_.Now()));  // already
  EXPECT_EQ(*store_->DisabledWebhooks(), std::vector<std::int64_t>{3});
  EXPECT_TRUE(*store_->EnableWebhook(3));
  EXPECT_FALSE(*store_->EnableWebhook(3));
  EXPECT_TRUE(store_->DisabledWebhooks()->empty());
  EXPECT_TRUE(*store_->DisableWebhook(3, "410 Gone", clock_.Now()));  // again after enabling
}

}  // namespace
}  // namespace allocation_relay
