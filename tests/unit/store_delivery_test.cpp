// The store's webhook delivery primitives: batching the outbox, leases, attempts, dead and
// re-sent deliveries.
#include <gtest/gtest.h>

#include "support/store_fixture.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::StoreTest;

class StoreDeliveries : public StoreTest {
 protected:
  // The ids of warehouse `w`'s unbatched events.
  std::vector<std::int64_t> Unbatched(std::int64_t w) {
    std::vector<std::int64_t> ids;
    auto events = store_->ListUnbatchedEvents(w, 1000);
    EXPECT_TRUE(events.has_value());
    for (const OutboxEvent& e : *events) ids.push_back(e.id);
    return ids;
  }

  Delivery Form(std::int64_t w, const std::string& uid) {
    std::vector<std::int64_t> ids = Unbatched(w);
    auto d = store_->CreateDelivery(w, ids, uid, "{\"events\":[]}", clock_.Now());
    EXPECT_TRUE(d.has_value() && d->has_value());
    return **d;
  }

  DeliveryAttempt Attempt(const Delivery& d, int status) {
    DeliveryAttempt a;
    a.delivery_id = d.id;
    a.started_at = clock_.Now();
    a.duration = 1500us;
    a.http_status = status;
    a.error = status == 0 ? "connection refused" : "";
    a.response_head = std::string("ok\0bytes", 8);
    return a;
  }
};

TEST_F(StoreDeliveries, FormingABatchTakesTheEventsOnceInOrder) {
  Create(15, {{3}});
  Create(16, {{3}});
  Delivery d = Form(3, "msg_1");
  EXPECT_EQ(d.state, DeliveryState::kPending);
  EXPECT_EQ(d.uid, "msg_1");
  EXPECT_EQ(d.attempt_count, 0);
  EXPECT_EQ(d.request_ids, (std::vector<std::int64_t>{RequestOf(15, 3).id, RequestOf(16, 3).id}));
  EXPECT_TRUE(Unbatched(3).empty());
  // The same events again (a second dispatcher): refused, and no delivery is left behind.
  std::vector<std::int64_t> taken{1, 2};
  auto again = store_->CreateDelivery(3, taken, "msg_2", "{}", clock_.Now());
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->has_value());
  EXPECT_EQ(store_->ListDeliveries(std::nullopt, std::nullopt, 10)->size(), 1u);
  // Another warehouse's events are not this warehouse's to take.
  Create(17, {{4}});
  std::vector<std::int64_t> other = Unbatched(4);
  EXPECT_FALSE(store_->CreateDelivery(3, other, "msg_3", "{}", clock_.Now())->has_value());
}

TEST_F(StoreDeliveries, TheOldestPendingDeliveryIsTheHeadAndDeadOnesStopBlocking) {
  Create(15, {{3}});
  Delivery first = Form(3, "a");
  Create(16, {{3}});
  Delivery second = Form(3, "b");
  EXPECT_EQ((*store_->HeadDelivery(3))->id, first.id);
  EXPECT_EQ(*store_->HeadDelivery(4), std::nullopt);
  ASSERT_TRUE(*store_->RecordAttempt(Attempt(first, 500), AttemptOutcome::kDead, clock_.Now(),
                                     clock_.Now()));
  EXPECT_EQ((*store_->HeadDelivery(3))->id, second.id);
  EXPECT_EQ(store_->ListDeliveries(DeliveryState::kDead, 3, 10)->size(), 1u);
}

TEST_F(StoreDeliveries, LeasesExcludeOthersUntilTheyRunOut) {
  Create(15, {{3}});
  Delivery d = Form(3, "a");
  EXPECT_TRUE(*store_->ClaimDelivery(d.id, clock_.Now(), clock_.Now() + 30s));
  EXPECT_FALSE(*store_->ClaimDelivery(d.id, clock_.Now() + 10s, clock_.Now() + 40s));
  // The claimer crashed: after its lease, another dispatcher may send it again.
  EXPECT_TRUE(*store_->ClaimDelivery(d.id, clock_.Now() + 30s, clock_.Now() + 60s));
}

TEST_F(StoreDeliveries, SuccessMarksItsRequestsSentButNeverOverwritesFinalStatuses) {
  Create(15, {{3}});
  Create(16, {{3}});
  Create(17, {{3}});
  std::vector<std::int64_t> failed{RequestOf(16, 3).id};
  store_->MarkFailed(failed, clock_.Now());
  Confirm(RequestOf(17, 3).id);
  Delivery d = Form(3, "a");
  ASSERT_TRUE(*store_->RecordAttempt(Attempt(d, 204), AttemptOutcome::kSucceeded, clock_.Now(),
                                     clock_.Now()));
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
  // Nothing more can be recorded for a finished delivery.
  EXPECT_FALSE(*store_->RecordAttempt(Attempt(d, 200), AttemptOutcome::kSucceeded, clock_.Now(),
                                      clock_.Now()));
}

TEST_F(StoreDeliveries, FailureMarksAllocatedRequestsFailedAndSchedulesTheRetry) {
  Create(15, {{3}});
  Delivery d = Form(3, "a");
  ASSERT_TRUE(*store_->ClaimDelivery(d.id, clock_.Now(), clock_.Now() + 30s));
  ASSERT_TRUE(*store_->RecordAttempt(Attempt(d, 0), AttemptOutcome::kRetry, clock_.Now() + 5s,
                                     clock_.Now()));
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kFailed);
  Delivery head = **store_->HeadDelivery(3);
  EXPECT_EQ(head.state, DeliveryState::kPending);
  EXPECT_EQ(head.attempt_count, 1);
  EXPECT_EQ(head.next_attempt_at, clock_.Now() + 5s);
  EXPECT_EQ(head.lease_until, std::nullopt);  // released for the retry
  clock_.Advance(5s);
  ASSERT_TRUE(*store_->RecordAttempt(Attempt(d, 200), AttemptOutcome::kSucceeded, clock_.Now(),
                                     clock_.Now()));
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);  // a later success: failed -> sent
  auto attempts = *store_->ListAttempts(d.id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 0);
  EXPECT_EQ(attempts[0].error, "connection refused");
  EXPECT_EQ(attempts[1].attempt, 2);
}

TEST_F(StoreDeliveries, DeadDeliveriesCanBeSentAgain) {
  Create(15, {{3}});
  Create(16, {{4}});
  Delivery a = Form(3, "a");
  Delivery b = Form(4, "b");
  store_->RecordAttempt(Attempt(a, 500), AttemptOutcome::kDead, clock_.Now(), clock_.Now());
  store_->RecordAttempt(Attempt(b, 500), AttemptOutcome::kDead, clock_.Now(), clock_.Now());
  EXPECT_EQ(*store_->HeadDelivery(3), std::nullopt);
  clock_.Advance(1h);
  EXPECT_EQ(*store_->ResendDead(3, clock_.Now()), 1);
  Delivery again = **store_->HeadDelivery(3);
  EXPECT_EQ(again.id, a.id);
  EXPECT_EQ(again.next_attempt_at, clock_.Now());
  EXPECT_EQ(again.attempt_count, 1);  // its history is kept
  EXPECT_EQ(store_->ListDeliveries(DeliveryState::kDead, std::nullopt, 10)->size(), 1u);
  EXPECT_EQ(*store_->ResendDead(std::nullopt, clock_.Now()), 1);
}

TEST_F(StoreDeliveries, ANewDeliveryCanBeClaimedInTheWriteThatFormsIt) {
  Create(15, {{3}});
  std::vector<std::int64_t> ids = Unbatched(3);
  auto d = store_->CreateDelivery(3, ids, "a", "{}", clock_.Now(), clock_.Now() + 30s);
  ASSERT_TRUE(d && *d);
  EXPECT_EQ((*d)->lease_until, clock_.Now() + 30s);
  EXPECT_FALSE(*store_->ClaimDelivery((*d)->id, clock_.Now(), clock_.Now() + 30s));
}

TEST_F(StoreDeliveries, SeveralAttemptsAreRecordedInOneWrite) {
  Create(15, {{3}});
  Delivery a = Form(3, "a");
  Create(16, {{4}});
  Delivery b = Form(4, "b");
  std::vector<Store::AttemptRecord> records = {
      {Attempt(a, 200), AttemptOutcome::kSucceeded, clock_.Now()},
      {Attempt(b, 503), AttemptOutcome::kRetry, clock_.Now() + 5s},
      {Attempt(a, 200), AttemptOutcome::kSucceeded, clock_.Now()},  // a is done: not recorded
  };
  EXPECT_EQ(*store_->RecordAttempts(records, clock_.Now()), 2);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(16, 4).status, RequestStatus::kFailed);
  EXPECT_EQ(store_->ListAttempts(a.id)->size(), 1u);
  EXPECT_EQ((*store_->HeadDelivery(4))->next_attempt_at, clock_.Now() + 5s);
}

// RecordAndTake: the dispatcher's round (records, then claims or forms) in one write.
class StoreRounds : public StoreDeliveries {
 protected:
  std::vector<Store::DeliveryTake> Take(std::vector<Store::DeliveryWant> wants,
                                        std::vector<Store::AttemptRecord> records = {}) {
    auto render = [this](std::span<const OutboxEvent> events,
                         std::span<const AllocationRequest> requests) {
      std::string doc;
      for (std::size_t i = 0; i < events.size(); ++i) {
        doc += std::to_string(events[i].id) + ":" + std::to_string(requests[i].order.number) + ";";
      }
      return std::pair{"msg_" + std::to_string(++uids_), doc};
    };
    auto taken = store_->RecordAndTake(records, wants, clock_.Now(), render);
    EXPECT_TRUE(taken.has_value());
    return taken ? *taken : std::vector<Store::DeliveryTake>{};
  }
  Store::DeliveryWant Want(std::int64_t w, int slots, int max_events) {
    return {w, slots, max_events, slots == 1, clock_.Now() + 30s};
  }
  int uids_ = 0;
};

TEST_F(StoreRounds, FormsAndClaimsBatchesRenderedFromTheirEventsAndRequests) {
  Create(15, {{3}});
  Create(16, {{3}});
  Create(17, {{3}});
  auto takes = Take({Want(3, 1, 2), Want(4, 1, 2)});
  ASSERT_EQ(takes.size(), 2u);
  ASSERT_EQ(takes[0].claimed.size(), 1u);
  const Delivery& d = takes[0].claimed[0];
  EXPECT_EQ(d.uid, "msg_1");
  EXPECT_EQ(d.document, "1:15;2:16;");
  EXPECT_EQ(d.request_ids, (std::vector<std::int64_t>{RequestOf(15, 3).id, RequestOf(16, 3).id}));
  EXPECT_EQ(d.lease_until, clock_.Now() + 30s);
  EXPECT_TRUE(takes[1].claimed.empty());  // warehouse 4 has nothing
  // Strict order: the head is leased (in flight), so nothing else goes, not even a new batch.
  EXPECT_TRUE(Take({Want(3, 1, 2)})[0].claimed.empty());
  // Its success recorded in the same round lets the next batch form.
  Store::AttemptRecord ok{Attempt(d, 200), AttemptOutcome::kSucceeded, clock_.Now()};
  auto next = Take({Want(3, 1, 2)}, {ok});
  ASSERT_EQ(next[0].claimed.size(), 1u);
  EXPECT_EQ(next[0].claimed[0].document, "3:17;");
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(17, 3).status, RequestStatus::kAllocated);
}

TEST_F(StoreRounds, StrictOrderWaitsBehindARetryAndReportsWhenItIsDue) {
  Create(15, {{3}});
  Delivery d = Take({Want(3, 1, 1)})[0].claimed.at(0);
  Store::AttemptRecord retry{Attempt(d, 500), AttemptOutcome::kRetry, clock_.Now() + 5s};
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

TEST_F(StoreRounds, WithSeveralInFlightARetryNoLongerHoldsTheOthersBack) {
  for (int n = 15; n < 20; ++n) Create(n, {{3}});
  auto first = Take({Want(3, 3, 1)})[0].claimed;
  ASSERT_EQ(first.size(), 3u);  // three batches of one, in flight at once
  std::vector<Store::AttemptRecord> records{
      {Attempt(first[0], 500), AttemptOutcome::kRetry, clock_.Now() + 5s},
      {Attempt(first[1], 200), AttemptOutcome::kSucceeded, clock_.Now()}};
  auto takes = Take({Want(3, 2, 1)}, records);
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
