// The store's operations for the operator console (docs/console.md) on both backends: the
// activity RecordAndTake keeps per minute and warehouse and the last successes, PruneActivity,
// ReadActivity's counts of open work and scope, the deliveries page, and re-sending one dead
// delivery.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "support/delivery_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kOver10s = kCallDurationBuckets - 1;

class StoreConsole : public testing::DeliveryStoreTest {
 protected:
  StoreConsole() {
    catalog_ = WarehouseCatalog({{3, "Amsterdam", 1h},
                                 {4, "Tokyo", 1h},
                                 {7, "Central", 2h},
                                 {11, "Shop A", 30min, WarehousePolicy::kCheckFirst}});
  }

  static TimePoint Start() { return FromUnixMicros(testing::kStartMicros); }  // on a minute

  ActivityOverview Overview(WarehouseScope scope = {}, TimePoint chart_since = {},
                            TimePoint latency_since = {}) {
    auto read = store_->ReadActivity(scope, chart_since, latency_since);
    EXPECT_TRUE(read.has_value()) << read.error().what();
    return read ? *read : ActivityOverview{};
  }
  static std::vector<std::int64_t> Ids(const ActivityOverview& o) {
    std::vector<std::int64_t> ids;
    for (const WarehouseActivity& w : o.warehouses) ids.push_back(w.warehouse_id);
    return ids;
  }
  static WarehouseActivity Of(const ActivityOverview& o, std::int64_t id) {
    for (const WarehouseActivity& w : o.warehouses) {
      if (w.warehouse_id == id) return w;
    }
    ADD_FAILURE() << "no row for warehouse " << id;
    return {};
  }
  // A call histogram with `n` calls in each of `buckets`.
  static std::array<std::int64_t, kCallDurationBuckets> Calls(
      std::initializer_list<std::pair<std::size_t, std::int64_t>> buckets) {
    std::array<std::int64_t, kCallDurationBuckets> calls{};
    for (auto [bucket, n] : buckets) calls[bucket] = n;
    return calls;
  }
  // A call of `d` that took `duration`.
  Store::AttemptRecord Call(const Delivery& d, int status, AttemptOutcome outcome,
                            Micros duration) {
    Store::AttemptRecord r = Rec(d, status, outcome, clock_.Now() + 1min);
    r.attempt.duration = duration;
    return r;
  }

  std::vector<DeliverySummary> Page(DeliveryQuery query) {
    auto page = store_->ListDeliveryPage(query);
    EXPECT_TRUE(page.has_value()) << page.error().what();
    return page ? *page : std::vector<DeliverySummary>{};
  }
  static std::vector<std::int64_t> Ids(const std::vector<DeliverySummary>& page) {
    std::vector<std::int64_t> ids;
    for (const DeliverySummary& s : page) ids.push_back(s.delivery.id);
    return ids;
  }

  ResendOutcome Resend(std::int64_t id, WarehouseScope scope = {}) {
    auto r = store_->ResendDeadDelivery(id, scope, clock_.Now());
    EXPECT_TRUE(r.has_value()) << r.error().what();
    return r ? *r : ResendOutcome::kNotFound;
  }
};

TEST(CallDurationBuckets, AreTheContractsBoundsAndOneForLongerCalls) {
  EXPECT_EQ(kCallDurationBuckets, 14u);
  EXPECT_EQ(kCallDurationBoundsMs[0], 1);
  EXPECT_EQ(kCallDurationBoundsMs[12], 10000);
}

// Each recorded call counts in the minute it started, with its warehouse: a success as a
// delivery, a retry as a failed attempt, a dead end as both a failed attempt and a dead
// delivery; its duration in its bucket (upper bounds in ms, a bound itself included).
TEST_F(StoreConsole, RecordedCallsAreCountedPerMinuteOfTheirStartAndWarehouse) {
  Create(15, {{3}});
  Create(16, {{4}});
  clock_.Advance(10s);
  const Delivery d3 = Form(3), d4 = Form(4);
  const TimePoint first_call = clock_.Now();
  Take({}, {Call(d3, 500, AttemptOutcome::kRetry, 1500us),
            Call(d4, 200, AttemptOutcome::kSucceeded, 50ms)});
  clock_.Advance(60s);  // the next minute
  Take({}, {Call(Stored(d3), 0, AttemptOutcome::kDead, 12s)});

  ActivityOverview o = Overview();
  ASSERT_EQ(o.minutes.size(), 2u);
  EXPECT_EQ(o.minutes[0].minute, Start());
  EXPECT_EQ(o.minutes[0].delivered, 1);
  EXPECT_EQ(o.minutes[0].failed_attempts, 1);
  EXPECT_EQ(o.minutes[0].dead, 0);
  EXPECT_EQ(o.minutes[1].minute, Start() + 1min);
  EXPECT_EQ(o.minutes[1].delivered, 0);
  EXPECT_EQ(o.minutes[1].failed_attempts, 1);
  EXPECT_EQ(o.minutes[1].dead, 1);

  EXPECT_EQ(Ids(o), (std::vector<std::int64_t>{3, 4}));
  WarehouseActivity w3 = Of(o, 3), w4 = Of(o, 4);
  EXPECT_EQ(w3.call_durations, Calls({{1, 1}, {kOver10s, 1}}));  // 1.5 ms: up to 2 ms
  EXPECT_EQ(w3.last_success_at, std::nullopt);
  EXPECT_EQ(w3.dead_deliveries, 1);
  EXPECT_EQ(w4.call_durations, Calls({{5, 1}}));  // 50 ms: up to 50 ms
  EXPECT_EQ(w4.last_success_at, first_call);
}

// A late duplicate of a recorded call (the delivery has moved on) is not recorded, so it
// counts nowhere either.
TEST_F(StoreConsole, ALateDuplicateOfARecordedCallCountsNothing) {
  Create(15, {{3}});
  const Delivery stored = Record(Form(3), 500, AttemptOutcome::kRetry, clock_.Now());
  const Store::AttemptRecord second = Call(stored, 500, AttemptOutcome::kRetry, 3ms);
  Take({}, {second});
  Take({}, {second});  // again: attempt 2 is recorded already
  EXPECT_EQ(Read(stored).attempt_count, 2);
  ActivityOverview o = Overview();
  ASSERT_EQ(o.minutes.size(), 1u);
  EXPECT_EQ(o.minutes[0].failed_attempts, 2);
  EXPECT_EQ(Of(o, 3).call_durations, Calls({{1, 1}, {2, 1}}));  // 1.5 ms and 3 ms
}

TEST_F(StoreConsole, TheLastSuccessIsTheNewestAndOutlivesPrunedActivity) {
  Create(15, {{3}});
  Record(Form(3), 200, AttemptOutcome::kSucceeded);
  clock_.Advance(5min);
  const TimePoint newest = clock_.Now();
  Create(16, {{3}});
  Record(Form(3), 200, AttemptOutcome::kSucceeded);
  EXPECT_EQ(Of(Overview(), 3).last_success_at, newest);

  clock_.Advance(std::chrono::days(2));
  auto pruned = store_->PruneActivity(clock_.Now() - 24h);
  ASSERT_TRUE(pruned.has_value()) << pruned.error().what();
  EXPECT_EQ(*pruned, 2);  // the two minutes
  EXPECT_EQ(*store_->PruneActivity(clock_.Now() - 24h), 0);
  ActivityOverview o = Overview();
  EXPECT_TRUE(o.minutes.empty());
  ASSERT_EQ(Ids(o), std::vector<std::int64_t>{3});
  EXPECT_EQ(Of(o, 3).last_success_at, newest);
  EXPECT_EQ(Of(o, 3).call_durations, Calls({}));
}

// PruneActivity deletes minutes before its bound only.
TEST_F(StoreConsole, PruneActivityKeepsTheMinutesFromItsBoundOn) {
  Create(15, {{3}});
  Record(Form(3), 500, AttemptOutcome::kRetry, clock_.Now());  // minute 0
  clock_.Advance(2min);
  Create(16, {{4}});
  Record(Form(4), 500, AttemptOutcome::kRetry, clock_.Now());  // minute 2
  EXPECT_EQ(*store_->PruneActivity(Start() + 2min), 1);
  ActivityOverview o = Overview();
  ASSERT_EQ(o.minutes.size(), 1u);
  EXPECT_EQ(o.minutes[0].minute, Start() + 2min);
}

// Open work by warehouse: pending requests (allocated, sent or failed), asked checks, events
// not in a delivery, pending and dead deliveries; and disabled webhooks. A scope shows its
// warehouses only, in the counts and in the minutes; an empty one shows nothing.
TEST_F(StoreConsole, CountsOpenWorkByWarehouseWithinTheScope) {
  Create(15, {{3, 4}});
  Create(16, {{3}});
  Create(17, {{11}});  // a check asked at 11, with its event
  Record(Form(4), 500, AttemptOutcome::kRetry, clock_.Now() + 1min);  // 15's event at 4
  auto first = Take({Want(3, 1, 1)})[0].claimed;                      // 15's event at 3 alone
  ASSERT_EQ(first.size(), 1u);
  Record(first[0], 500, AttemptOutcome::kDead);
  Confirm(RequestOf(16, 3).id);  // no longer pending
  ASSERT_TRUE(store_->DisableWebhook(7, "410 Gone", clock_.Now()).value());

  ActivityOverview o = Overview();
  EXPECT_EQ(Ids(o), (std::vector<std::int64_t>{3, 4, 7, 11}));
  WarehouseActivity w3 = Of(o, 3), w4 = Of(o, 4), w7 = Of(o, 7), w11 = Of(o, 11);
  EXPECT_EQ(w3.pending_requests, 1);  // 15's (failed)
  EXPECT_EQ(w3.queued_events, 1);     // 16's create
  EXPECT_EQ(w3.pending_deliveries, 0);
  EXPECT_EQ(w3.dead_deliveries, 1);
  EXPECT_EQ(w4.pending_requests, 1);
  EXPECT_EQ(w4.queued_events, 0);
  EXPECT_EQ(w4.pending_deliveries, 1);
  EXPECT_EQ(w4.dead_deliveries, 0);
  EXPECT_EQ(w4.disabled_at, std::nullopt);
  EXPECT_EQ(w7.disabled_at, clock_.Now());
  EXPECT_EQ(w7.disabled_reason, "410 Gone");
  EXPECT_EQ(w7.pending_requests + w7.queued_events + w7.pending_deliveries, 0);
  EXPECT_EQ(w11.asked_checks, 1);
  EXPECT_EQ(w11.queued_events, 1);
  EXPECT_EQ(w11.pending_requests, 0);
  ASSERT_EQ(o.minutes.size(), 1u);
  EXPECT_EQ(o.minutes[0].failed_attempts, 2);
  EXPECT_EQ(o.minutes[0].dead, 1);

  ActivityOverview scoped = Overview(WarehouseScope{std::vector<std::int64_t>{4, 11}});
  EXPECT_EQ(Ids(scoped), (std::vector<std::int64_t>{4, 11}));
  EXPECT_EQ(Of(scoped, 4).pending_deliveries, 1);
  EXPECT_EQ(Of(scoped, 11).asked_checks, 1);
  ASSERT_EQ(scoped.minutes.size(), 1u);
  EXPECT_EQ(scoped.minutes[0].failed_attempts, 1);  // warehouse 4's
  EXPECT_EQ(scoped.minutes[0].dead, 0);

  ActivityOverview none = Overview(WarehouseScope{std::vector<std::int64_t>{}});
  EXPECT_TRUE(none.warehouses.empty());
  EXPECT_TRUE(none.minutes.empty());
}

// The chart reads the minutes from chart_since on; the latency the calls of the minutes from
// latency_since on (a minute that starts before it is left out).
TEST_F(StoreConsole, ChartAndLatencyReadTheMinutesFromTheirOwnBounds) {
  Create(15, {{3}});
  Record(Form(3), 500, AttemptOutcome::kRetry, clock_.Now());  // minute 0, 1.5 ms
  clock_.Advance(2min);
  Create(16, {{3}});
  Take({}, {Call(Form(3), 200, AttemptOutcome::kSucceeded, 7ms)});  // minute 2

  ActivityOverview o = Overview({}, Start() + 1min, Start());
  ASSERT_EQ(o.minutes.size(), 1u);
  EXPECT_EQ(o.minutes[0].minute, Start() + 2min);
  EXPECT_EQ(Of(o, 3).call_durations, Calls({{1, 1}, {3, 1}}));

  o = Overview({}, Start(), Start() + 2min);
  EXPECT_EQ(o.minutes.size(), 2u);
  EXPECT_EQ(Of(o, 3).call_durations, Calls({{3, 1}}));

  o = Overview({}, Start(), Start() + 2min + 30s);
  EXPECT_EQ(o.minutes.size(), 2u);
  EXPECT_EQ(Of(o, 3).call_durations, Calls({}));
}

// Newest first, by state and warehouse, paged by id, within the scope; each delivery with its
// last attempt and without its document.
TEST_F(StoreConsole, TheDeliveryPageIsNewestFirstFilteredAndKeyset) {
  Create(15, {{3}});
  const Delivery succeeded = Record(Form(3), 200, AttemptOutcome::kSucceeded);
  Create(16, {{3}});
  Delivery dead = Record(Form(3), 500, AttemptOutcome::kRetry, clock_.Now());
  dead = Record(dead, 503, AttemptOutcome::kDead);
  Create(17, {{3}});
  const Delivery pending = Record(Form(3), 500, AttemptOutcome::kRetry, clock_.Now() + 1h);
  Create(18, {{4}});
  const Delivery other = Record(Form(4), 200, AttemptOutcome::kSucceeded);
  using Ids = std::vector<std::int64_t>;

  std::vector<DeliverySummary> all = Page({});
  EXPECT_EQ(StoreConsole::Ids(all), (Ids{other.id, pending.id, dead.id, succeeded.id}));
  const DeliverySummary& d = all[2];
  EXPECT_EQ(d.delivery.uid, dead.uid);
  EXPECT_EQ(d.delivery.state, DeliveryState::kDead);
  EXPECT_EQ(d.delivery.attempt_count, 2);
  EXPECT_EQ(d.delivery.document, "");
  EXPECT_EQ(d.delivery.request_ids, dead.request_ids);
  ASSERT_TRUE(d.last_attempt.has_value());
  EXPECT_EQ(d.last_attempt->attempt, 2);
  EXPECT_EQ(d.last_attempt->http_status, 503);
  EXPECT_EQ(d.last_attempt->duration, 1500us);
  EXPECT_EQ(d.last_attempt->started_at, clock_.Now());

  auto page = [&](std::optional<DeliveryState> state, std::optional<std::int64_t> warehouse,
                  WarehouseScope scope = {}, std::int64_t before = 0, int limit = 50) {
    return StoreConsole::Ids(Page({state, warehouse, std::move(scope), before, limit}));
  };
  EXPECT_EQ(page(DeliveryState::kDead, std::nullopt), Ids{dead.id});
  EXPECT_EQ(page(DeliveryState::kPending, 3), Ids{pending.id});
  EXPECT_EQ(page(DeliveryState::kSucceeded, 3), Ids{succeeded.id});
  EXPECT_EQ(page(DeliveryState::kSucceeded, std::nullopt), (Ids{other.id, succeeded.id}));
  EXPECT_EQ(page(std::nullopt, 3), (Ids{pending.id, dead.id, succeeded.id}));
  EXPECT_EQ(page(std::nullopt, 4), Ids{other.id});
  // Keyset pages: the next one starts below the last id of the one before.
  EXPECT_EQ(page(std::nullopt, std::nullopt, {}, 0, 2), (Ids{other.id, pending.id}));
  EXPECT_EQ(page(std::nullopt, std::nullopt, {}, pending.id, 2), (Ids{dead.id, succeeded.id}));
  EXPECT_EQ(page(std::nullopt, 3, {}, dead.id, 2), Ids{succeeded.id});
  EXPECT_EQ(page(std::nullopt, std::nullopt, {}, succeeded.id, 2), Ids{});
  // Scope: its warehouses only, everywhere.
  const WarehouseScope only3{std::vector<std::int64_t>{3}};
  EXPECT_EQ(page(std::nullopt, std::nullopt, only3), (Ids{pending.id, dead.id, succeeded.id}));
  EXPECT_EQ(page(std::nullopt, std::nullopt, only3, 0, 1), Ids{pending.id});
  EXPECT_EQ(page(std::nullopt, 4, only3), Ids{});
  EXPECT_EQ(page(DeliveryState::kSucceeded, std::nullopt,
                 WarehouseScope{std::vector<std::int64_t>{3, 4}}),
            (Ids{other.id, succeeded.id}));
  EXPECT_EQ(page(std::nullopt, std::nullopt, WarehouseScope{std::vector<std::int64_t>{}}), Ids{});
}

TEST_F(StoreConsole, ResendingOneDeadDeliveryMakesItPendingAndDueNow) {
  Create(15, {{3}});
  const Delivery dead = Record(Form(3), 500, AttemptOutcome::kDead);
  Create(16, {{4}});
  const Delivery pending = Record(Form(4), 500, AttemptOutcome::kRetry, clock_.Now() + 1h);
  clock_.Advance(1h);

  EXPECT_EQ(Resend(dead.id + pending.id + 100), ResendOutcome::kNotFound);
  EXPECT_EQ(Resend(dead.id, WarehouseScope{std::vector<std::int64_t>{4}}),
            ResendOutcome::kNotFound);
  EXPECT_EQ(Read(dead).state, DeliveryState::kDead);
  EXPECT_EQ(Resend(pending.id), ResendOutcome::kNotDead);

  EXPECT_EQ(Resend(dead.id, WarehouseScope{std::vector<std::int64_t>{3}}), ResendOutcome::kResent);
  const Delivery again = Read(dead);
  EXPECT_EQ(again.state, DeliveryState::kPending);
  EXPECT_EQ(again.next_attempt_at, clock_.Now());
  EXPECT_EQ(again.attempt_count, 1);
  EXPECT_EQ(Resend(dead.id), ResendOutcome::kNotDead);
  // It is claimed again at once.
  auto takes = Take({Want(3, 1, 100)});
  ASSERT_EQ(takes.at(0).claimed.size(), 1u);
  EXPECT_EQ(takes[0].claimed[0].id, dead.id);
}

// Two processes re-sending the same dead delivery at once: one re-sends it, the other finds it
// no longer dead.
TEST_F(StoreConsole, OfTwoRacingResendsOneWins) {
  Create(15, {{3}});
  const Delivery dead = Record(Form(3), 500, AttemptOutcome::kDead);
  std::vector<ResendOutcome> outcomes(2, ResendOutcome::kNotFound);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    threads.emplace_back([&, i] {
      auto store = Store::Open(Options());
      auto r = store->ResendDeadDelivery(dead.id, {}, clock_.Now());
      if (r) outcomes[i] = *r;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(outcomes,
              ::testing::UnorderedElementsAre(ResendOutcome::kResent, ResendOutcome::kNotDead));
}

}  // namespace
}  // namespace allocation_relay
