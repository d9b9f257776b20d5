// The store's webhook deliveries, all written by the dispatcher's round (RecordAndTake: record
// attempts, change leases, claim or form deliveries, in one write): batching the outbox in
// order, new batches stored with their first attempt, strict order, leases, held deliveries,
// attempts, dead and re-sent deliveries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "support/delivery_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;

class StoreDeliveries : public testing::DeliveryStoreTest {};

TEST_F(StoreDeliveries, FormsBatchesRenderedFromTheirEventsAndStoresThemWithTheirFirstAttempt) {
  Create(15, {{3}});
  Create(16, {{3}});
  Create(17, {{3}});
  auto takes = Take({Want(3, 1, 2), Want(4, 1, 2)});
  ASSERT_EQ(takes.size(), 2u);
  ASSERT_EQ(takes[0].claimed.size(), 1u);
  const Delivery d = takes[0].claimed[0];
  EXPECT_EQ(d.id, 0);  // not stored
  EXPECT_THAT(d.uid, ::testing::MatchesRegex("msg_[0-9a-f]{24}"));
  EXPECT_EQ(d.document, "1:15;2:16;");
  EXPECT_EQ(d.warehouse_id, 3);
  EXPECT_EQ(d.state, DeliveryState::kPending);
  EXPECT_EQ(d.attempt_count, 0);
  EXPECT_EQ(d.request_ids, (std::vector<std::int64_t>{RequestOf(15, 3).id, RequestOf(16, 3).id}));
  EXPECT_EQ(d.event_ids, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(d.lease_until, std::nullopt);
  EXPECT_TRUE(takes[1].claimed.empty());  // warehouse 4 has nothing
  // Nothing written: the events stay unbatched, and formed again they are the same batch.
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{0, 0, 0}));
  EXPECT_EQ(Unbatched(3), (std::vector<std::int64_t>{1, 2, 3}));
  auto again = Take({Want(3, 1, 2)})[0].claimed;
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].uid, d.uid);
  EXPECT_EQ(again[0].document, d.document);
  // The caller holds it: the next batch forms after its events.
  auto next = Take({Want(3, 1, 2, true, {}, 2)})[0].claimed;
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].document, "3:17;");
  EXPECT_NE(next[0].uid, d.uid);
  // Its success recorded stores it, with its events and the attempt, and moves its requests.
  Take({}, {Rec(d, 200, AttemptOutcome::kSucceeded, clock_.Now())});
  Delivery stored = Stored(d);
  EXPECT_GT(stored.id, 0);
  EXPECT_EQ(stored.state, DeliveryState::kSucceeded);
  EXPECT_EQ(stored.attempt_count, 1);
  EXPECT_EQ(stored.document, "");  // succeeded: never sent again, so not kept
  EXPECT_EQ(stored.request_ids, d.request_ids);
  EXPECT_EQ(store_->ListAttempts(stored.id)->size(), 1u);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(17, 3).status, RequestStatus::kAllocated);
  EXPECT_EQ(Unbatched(3), std::vector<std::int64_t>{3});
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{0, 1, 0}));
}

TEST_F(StoreDeliveries, HeldDeliveriesAreSkippedSoSeveralAreClaimedAheadInOrder) {
  Create(15, {{3}});
  Create(16, {{3}});
  auto pending = Pending(3, 2);
  const Delivery& p1 = pending.at(0);
  const Delivery& p2 = pending.at(1);
  for (int n = 17; n < 20; ++n) Create(n, {{3}});
  auto first = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(first.size(), 2u);  // strict order, two claimed ahead: they go one after the other
  EXPECT_EQ(first[0].id, p1.id);
  EXPECT_EQ(first[1].id, p2.id);
  EXPECT_EQ(Read(p1).lease_until, clock_.Now() + 30s);
  // The caller holds both: the next round claims behind them instead of waiting.
  auto more = Take({Want(3, 2, 1, true, {p1.id, p2.id})})[0].claimed;
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].document, "3:17;");
  EXPECT_EQ(more[1].document, "4:18;");
  // Held by someone else (not in `held`), a leased delivery blocks everything after it.
  EXPECT_TRUE(Take({Want(3, 2, 1, true, {p1.id})})[0].claimed.empty());
}

TEST_F(StoreDeliveries, PastHeldLooksOnlyAfterTheNewestHeldDeliveryAndAFullLookFindsOlderOnes) {
  Create(15, {{3}});
  Delivery old = Record(Form(3), 500, AttemptOutcome::kDead);
  Create(16, {{3}});
  Create(17, {{3}});
  auto pending = Pending(3, 2);
  const Delivery& p1 = pending.at(0);
  const Delivery& p2 = pending.at(1);
  for (int n = 18; n < 20; ++n) Create(n, {{3}});
  auto held = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(held.size(), 2u);
  ASSERT_EQ(*store_->ResendDead(3, clock_.Now()), 1);  // older than the held ones, pending again
  Store::DeliveryWant past = Want(3, 2, 1, true, {p1.id, p2.id});
  past.past_held = true;
  auto ahead = Take({past})[0].claimed;
  ASSERT_EQ(ahead.size(), 2u);  // only what comes after the held ones
  EXPECT_EQ(ahead[0].document, "4:18;");
  EXPECT_EQ(ahead[1].document, "5:19;");
  // The periodic full look (not past_held) finds the re-sent one before them.
  auto full = Take({Want(3, 2, 1, true, {p1.id, p2.id}, 5)})[0].claimed;
  ASSERT_EQ(full.size(), 1u);
  EXPECT_EQ(full[0].id, old.id);
}

TEST_F(StoreDeliveries, ReleasedLeasesAreClaimedAgainAndRenewedOnesAreNot) {
  Create(15, {{3}});
  Create(16, {{3}});
  auto pending = Pending(3, 2);
  const Delivery& p1 = pending.at(0);
  const Delivery& p2 = pending.at(1);
  auto held = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(held.size(), 2u);
  // The first failed: recorded, and the second given back in the same round.
  std::vector<Store::LeaseChange> release{{held[1].id, std::nullopt}};
  auto takes = Take({Want(3, 2, 1)}, {Rec(held[0], 500, AttemptOutcome::kRetry, clock_.Now() + 5s)},
                    release);
  EXPECT_TRUE(takes[0].claimed.empty());  // both wait behind the retry
  EXPECT_EQ(takes[0].next_due, clock_.Now() + 5s);
  EXPECT_EQ(Read(p2).lease_until, std::nullopt);
  clock_.Advance(5s);
  auto again = Take({Want(3, 2, 1)})[0].claimed;
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].id, p1.id);
  EXPECT_EQ(again[1].id, p2.id);
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
  Delivery d = Pending(3, 1).at(0);
  ASSERT_EQ(Take({Want(3, 1, 100)})[0].claimed.size(), 1u);
  clock_.Advance(10s);
  EXPECT_TRUE(Take({Want(3, 1, 100)})[0].claimed.empty());
  EXPECT_TRUE(Take({Want(3, 1, 100, false)})[0].claimed.empty());
  // The claimer crashed: after its lease, another dispatcher may send it again.
  clock_.Advance(20s);
  auto again = Take({Want(3, 1, 100)})[0].claimed;
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, d.id);
  EXPECT_EQ(again[0].uid, d.uid);
  EXPECT_EQ(again[0].document, d.document);
  EXPECT_EQ(again[0].request_ids, d.request_ids);
}

// Dispatchers divide the warehouses with leases owned by a claimant (SPEC section 10): while one
// holds a warehouse, another is refused it (and claims and forms nothing for it) until the lease
// is released or runs out.
TEST_F(StoreDeliveries, AnotherClaimantIsRefusedTheWarehouseUntilItIsReleased) {
  Create(15, {{3}});
  auto a = TakeAs("a", {Want(3, 1, 100)});
  ASSERT_FALSE(a[0].refused);
  ASSERT_EQ(a[0].claimed.size(), 1u);
  auto b = TakeAs("b", {Want(3, 1, 100)});
  EXPECT_TRUE(b[0].refused);
  EXPECT_TRUE(b[0].claimed.empty());
  Store::DeliveryWant renew = Want(3, 0, 100);  // slots 0: a renewal only
  EXPECT_FALSE(TakeAs("a", {renew})[0].refused);
  EXPECT_TRUE(TakeAs("b", {renew})[0].refused);
  Store::DeliveryWant release = Want(3, 0, 100);
  release.release = true;
  TakeAs("b", {release});  // not b's to give up: nothing changes
  EXPECT_TRUE(TakeAs("b", {Want(3, 1, 100)})[0].refused);
  TakeAs("a", {release});
  b = TakeAs("b", {Want(3, 1, 100)});
  ASSERT_FALSE(b[0].refused);
  ASSERT_EQ(b[0].claimed.size(), 1u);
  EXPECT_EQ(b[0].claimed[0].uid, a[0].claimed[0].uid);  // the same batch, the same id
  EXPECT_TRUE(TakeAs("a", {Want(3, 1, 100)})[0].refused);
}

// Renewing or releasing a delivery's lease checks its owner.
TEST_F(StoreDeliveries, OnlyTheClaimantRenewsOrReleasesADeliveryLease) {
  Create(15, {{3}});
  Delivery d = Pending(3, 1).at(0);  // by "dispatcher", as every Take here
  ASSERT_EQ(TakeAs("dispatcher", {Want(3, 1, 100)})[0].claimed.size(), 1u);
  const std::optional<TimePoint> leased = Read(d).lease_until;
  ASSERT_TRUE(leased.has_value());
  Store::DeliveryWant release = Want(3, 0, 100);
  release.release = true;
  TakeAs("dispatcher", {release});  // the warehouse free for b; the delivery's lease still a's
  std::vector<Store::LeaseChange> drop{{d.id, std::nullopt}};
  TakeAs("b", {}, {}, drop);
  EXPECT_EQ(Read(d).lease_until, leased);
  EXPECT_TRUE(TakeAs("b", {Want(3, 1, 100, false)})[0].claimed.empty());
  TakeAs("dispatcher", {}, {}, drop);
  EXPECT_EQ(Read(d).lease_until, std::nullopt);
  EXPECT_EQ(TakeAs("b", {Want(3, 1, 100, false)})[0].claimed.size(), 1u);
}

class StoreDeliveriesPostgresql : public StoreDeliveries {};

// PostgreSQL judges leases by the database's clock, never a host's: a dispatcher whose clock
// runs a year ahead does not see another one's lease as run out; the lease it is given back is
// on its own clock.
TEST_F(StoreDeliveriesPostgresql, LeasesAreJudgedByTheDatabaseClockNotTheCallers) {
  ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  Create(15, {{3}});
  Create(16, {{3}});
  Delivery d = Pending(3, 1).at(0);
  auto a = TakeAs("dispatcher", {Want(3, 1, 1)});
  ASSERT_FALSE(a[0].refused);
  ASSERT_EQ(a[0].claimed.size(), 1u);
  EXPECT_EQ(a[0].claimed[0].id, d.id);
  EXPECT_EQ(a[0].claimed[0].lease_until, clock_.Now() + 30s);
  clock_.Advance(std::chrono::hours(24 * 365));
  auto b = TakeAs("b", {Want(3, 1, 1)});
  EXPECT_TRUE(b[0].refused);
  EXPECT_TRUE(b[0].claimed.empty());
}

TEST_F(StoreDeliveries, SuccessMarksItsRequestsSentButNeverOverwritesFinalStatuses) {
  Create(15, {{3}});
  Create(16, {{3}});
  Create(17, {{3}});
  std::vector<std::int64_t> failed{RequestOf(16, 3).id};
  store_->MarkFailed(failed, clock_.Now());
  Confirm(RequestOf(17, 3).id);
  Delivery d = Record(Form(3), 204, AttemptOutcome::kSucceeded);
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
  // Kept as text: the NUL became U+FFFD (SPEC section 10).
  EXPECT_EQ(attempts[0].response_head,
            "ok\xEF\xBF\xBD"
            "bytes");
  // Nothing more is recorded for a finished delivery.
  Record(d, 200, AttemptOutcome::kSucceeded);
  EXPECT_EQ(store_->ListAttempts(d.id)->size(), 1u);
}

TEST_F(StoreDeliveries, FailureMarksAllocatedRequestsFailedAndSchedulesTheRetry) {
  Create(15, {{3}});
  Delivery d = Record(Form(3), 0, AttemptOutcome::kRetry, clock_.Now() + 5s);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kFailed);
  EXPECT_EQ(d.state, DeliveryState::kPending);
  EXPECT_EQ(d.attempt_count, 1);
  EXPECT_EQ(d.next_attempt_at, clock_.Now() + 5s);
  EXPECT_EQ(d.lease_until, std::nullopt);
  EXPECT_EQ(d.document, "1:15;");  // kept for the retry
  EXPECT_TRUE(Unbatched(3).empty());
  clock_.Advance(5s);
  Delivery stale = d;
  stale.attempt_count = 0;
  Record(stale, 200, AttemptOutcome::kSucceeded);  // stale: says attempt 1 again, so ignored
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kFailed);
  Record(Read(d), 200, AttemptOutcome::kSucceeded);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);  // a later success: failed -> sent
  EXPECT_EQ(Read(d).document, "");                           // no longer kept
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
  a = Record(a, 500, AttemptOutcome::kDead);
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
  EXPECT_EQ(resent[0].document, "1:15;");
  EXPECT_EQ(store_->ListDeliveries(DeliveryState::kDead, std::nullopt, 10)->size(), 1u);
  EXPECT_EQ(*store_->ResendDead(std::nullopt, clock_.Now()), 1);
}

TEST_F(StoreDeliveries, DeliveriesAreCountedByState) {
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{0, 0, 0}));  // pending, succeeded, dead
  for (int n = 15; n < 19; ++n) Create(n, {{3}});
  auto d = Take({Want(3, 4, 1, false)})[0].claimed;
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{0, 0, 0}));  // formed, not stored
  Take({}, {Rec(d[0], 200, AttemptOutcome::kSucceeded, clock_.Now()),
            Rec(d[1], 200, AttemptOutcome::kSucceeded, clock_.Now()),
            Rec(d[2], 500, AttemptOutcome::kDead, clock_.Now()),
            Rec(d[3], 500, AttemptOutcome::kRetry, clock_.Now() + 5s)});
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{1, 2, 1}));
  EXPECT_EQ(*store_->ResendDead(3, clock_.Now()), 1);
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{2, 2, 0}));
}

// A round's new deliveries are stored together (one statement each for the rows, their events
// and their attempts on PostgreSQL): ids in the order of the records, each with its own events,
// its document and attempt byte for byte (text with quotes, backslashes, braces, commas and
// non-ASCII), and an event already in another delivery left there.
TEST_F(StoreDeliveries, ARoundsNewDeliveriesAreStoredTogetherEachWithItsOwnEvents) {
  for (int n = 15; n < 19; ++n) Create(n, {{3}});
  Create(19, {{4}});
  auto formed = Take({Want(3, 3, 1, false), Want(4, 1, 1, false)});
  std::vector<Delivery> d = formed[0].claimed;
  ASSERT_EQ(d.size(), 3u);
  d.push_back(formed[1].claimed.at(0));
  const std::string tricky = "{\"a\": \"b,\\\\c\", \"d\": [NULL, \"}\"]} caf\xc3\xa9 ,{}";
  d[1].document = tricky;
  d[3].document = tricky + " 4";
  Delivery duplicate = d[2];  // the same event again, in a delivery of its own
  duplicate.uid = "msg_duplicate";
  Store::AttemptRecord dead = Rec(d[1], 410, AttemptOutcome::kDead, clock_.Now());
  dead.attempt.error = "said \"no\", \\ twice";
  dead.attempt.response_head = "HTTP/1.1 410 Gone\r\nX: \"{,}\"\r\n";
  Take({}, {Rec(d[0], 200, AttemptOutcome::kSucceeded, clock_.Now()), dead,
            Rec(d[2], 500, AttemptOutcome::kRetry, clock_.Now() + 5s),
            Rec(d[3], 500, AttemptOutcome::kRetry, clock_.Now() + 7s),
            Rec(duplicate, 200, AttemptOutcome::kSucceeded, clock_.Now())});
  std::vector<Delivery> stored;
  for (const Delivery& x : d) stored.push_back(Stored(x));
  const Delivery dup = Stored(duplicate);
  for (std::size_t i = 1; i < stored.size(); ++i) EXPECT_GT(stored[i].id, stored[i - 1].id);
  EXPECT_GT(dup.id, stored[3].id);
  EXPECT_EQ(stored[0].state, DeliveryState::kSucceeded);
  EXPECT_EQ(stored[0].document, "");
  EXPECT_EQ(stored[1].state, DeliveryState::kDead);
  EXPECT_EQ(stored[1].document, tricky);
  EXPECT_EQ(stored[2].state, DeliveryState::kPending);
  EXPECT_EQ(stored[2].next_attempt_at, clock_.Now() + 5s);
  EXPECT_EQ(stored[3].document, tricky + " 4");
  EXPECT_EQ(stored[3].warehouse_id, 4);
  EXPECT_EQ(stored[3].next_attempt_at, clock_.Now() + 7s);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].attempt_count, 1) << i;
    EXPECT_EQ(stored[i].request_ids, d[i].request_ids) << i;
    auto events = store_->EventsOfRequests(d[i].request_ids);
    ASSERT_TRUE(events.has_value());
    ASSERT_EQ(events->size(), 1u) << i;
    EXPECT_EQ(events->at(0).id, d[i].event_ids.at(0)) << i;
    EXPECT_EQ(events->at(0).delivery_id, stored[i].id) << i;  // the duplicate did not take it
  }
  auto attempts = store_->ListAttempts(stored[1].id);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->at(0).http_status, 410);
  EXPECT_EQ(attempts->at(0).error, dead.attempt.error);
  EXPECT_EQ(attempts->at(0).response_head, dead.attempt.response_head);
  EXPECT_EQ(attempts->at(0).duration, 1500us);
  EXPECT_EQ(Unbatched(3), std::vector<std::int64_t>{4});
  EXPECT_TRUE(Unbatched(4).empty());
  EXPECT_EQ(CountByState(), (std::vector<std::int64_t>{2, 2, 1}));
}

// The live dispatchers: each one marks itself live for a while and reads the others; one that
// stops renewing drops out once its time is up, and one stopping takes itself out at once.
TEST_F(StoreDeliveries, LiveDispatchersAreThoseThatRenewedAndNotTakenOut) {
  auto live = [&](const std::string& who, Micros ttl) {
    auto r = store_->LiveDispatchers(who, clock_.Now(), ttl);
    EXPECT_TRUE(r.has_value()) << r.error().what();
    return r ? *r : std::vector<std::string>{};
  };
  EXPECT_EQ(live("b", 30s), std::vector<std::string>{"b"});
  EXPECT_EQ(live("a", 30s), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(live("c", 1ms), (std::vector<std::string>{"a", "b", "c"}));
  // c's time runs out (SQLite judges by the caller's clock, PostgreSQL by its own).
  clock_.Advance(50ms);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(live("a", 30s), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(live("b", 0s), std::vector<std::string>{"a"});  // b stops
  EXPECT_EQ(live("a", 30s), std::vector<std::string>{"a"});
}

TEST_F(StoreDeliveries, SeveralAttemptsAreRecordedInOneWrite) {
  Create(14, {{7}});
  Delivery c = Pending(7, 1).at(0);
  Create(15, {{3}});
  Delivery a = Form(3);
  Create(16, {{4}});
  Delivery b = Form(4);
  Delivery stale = c;
  stale.attempt_count = 0;
  Take({}, {
               Rec(a, 200, AttemptOutcome::kSucceeded, clock_.Now()),
               Rec(b, 503, AttemptOutcome::kRetry, clock_.Now() + 5s),
               Rec(c, 200, AttemptOutcome::kSucceeded, clock_.Now()),
               Rec(stale, 200, AttemptOutcome::kSucceeded, clock_.Now()),  // a duplicate: ignored
           });
  EXPECT_EQ(RequestOf(14, 7).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(15, 3).status, RequestStatus::kSent);
  EXPECT_EQ(RequestOf(16, 4).status, RequestStatus::kFailed);
  EXPECT_EQ(store_->ListAttempts(Stored(a).id)->size(), 1u);
  EXPECT_EQ(store_->ListAttempts(c.id)->size(), 2u);
  EXPECT_EQ(Stored(b).next_attempt_at, clock_.Now() + 5s);
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
  EXPECT_EQ(takes[0].claimed[0].id, Stored(d).id);  // the same batch again, as it was
  EXPECT_EQ(takes[0].claimed[0].uid, d.uid);
  EXPECT_EQ(takes[0].claimed[0].document, d.document);
  EXPECT_EQ(takes[0].claimed[0].attempt_count, 1);
}

TEST_F(StoreDeliveries, WithSeveralInFlightARetryNoLongerHoldsTheOthersBack) {
  for (int n = 15; n < 20; ++n) Create(n, {{3}});
  auto first = Take({Want(3, 3, 1, false)})[0].claimed;
  ASSERT_EQ(first.size(), 3u);  // three batches of one, in flight at once
  std::vector<Store::AttemptRecord> records{
      Rec(first[0], 500, AttemptOutcome::kRetry, clock_.Now() + 5s),
      Rec(first[1], 200, AttemptOutcome::kSucceeded, clock_.Now())};
  auto takes = Take({Want(3, 2, 1, false, {}, first[2].event_ids.back())}, records);
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
