// The dispatcher's pruning (SPEC section 9) over a real SQLite file: what a pass deletes and
// keeps, dry runs, the counters and /metrics lines, the prune command's output, and the thread
// (interval, reload, a prompt Stop in the middle of a pass).
#include "pruner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <span>
#include <sstream>
#include <thread>

#include "delivery_loop.h"
#include "operator_commands.h"
#include "status_server.h"
#include "support/process.h"
#include "support/raw_http.h"
#include "support/store_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::StoreTest;

constexpr std::chrono::days kDays91{91};

class PrunerTest : public StoreTest {
 protected:
  static RetentionConfig Retention(std::chrono::milliseconds finished,
                                   std::chrono::milliseconds attempts,
                                   std::chrono::milliseconds interval = 10min) {
    RetentionConfig r;
    r.finished = finished;
    r.attempts = attempts;
    r.interval = interval;
    return r;
  }

  // Sends warehouse `w`'s unbatched events (up to `max_events`) in one delivery and records
  // its first attempt as a 200, as the dispatcher would.
  void Deliver(std::int64_t w, int max_events = 1000) {
    auto render = [](std::span<const OutboxEvent>, std::span<const AllocationRequest>,
                     std::span<const CheckEventSubject>) { return std::string("{}"); };
    Store::DeliveryWant want{w, 1, max_events, true, clock_.Now() + 30s, {}, false, 0};
    auto taken = store_->RecordAndTake({}, {}, std::span(&want, 1), clock_.Now(), render);
    ASSERT_TRUE(taken.has_value()) << taken.error().what();
    ASSERT_EQ(taken->at(0).claimed.size(), 1u);
    const Delivery d = taken->at(0).claimed[0];
    DeliveryAttempt a;
    a.attempt = 1;
    a.started_at = clock_.Now();
    a.duration = 1ms;
    a.http_status = 200;
    Store::AttemptRecord record{a, AttemptOutcome::kSucceeded, clock_.Now(), d.request_ids, d};
    auto recorded = store_->RecordAndTake(std::span(&record, 1), {}, {}, clock_.Now(), render);
    ASSERT_TRUE(recorded.has_value()) << recorded.error().what();
  }

  bool Exists(std::int64_t number) {
    auto a = store_->GetAllocationByOrder(number);
    EXPECT_TRUE(a.has_value());
    return a && a->has_value();
  }

  // Order 15 confirmed with its event delivered; order 17 (warehouse 4) confirmed with its
  // event never sent; 91 days later order 16, open, with its event delivered. 16 and its
  // delivery are the newest, which are never pruned (SQLite would hand their ids out again).
  void OldAndNew() {
    Create(15, {{3}});
    Deliver(3);
    Create(17, {{4}});
    Confirm(RequestOf(15, 3).id);
    Confirm(RequestOf(17, 4).id);
    clock_.Advance(kDays91);
    Create(16, {{3}});
    Deliver(3);
  }
};

TEST_F(PrunerTest, DeletesAnOldFinishedAllocationWithEverythingOfItAndKeepsTheRest) {
  OldAndNew();
  Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30)));
  Pruner::PassResult r = pruner.RunPass(false);
  ASSERT_FALSE(r.error) << r.error->what();
  EXPECT_FALSE(r.stopped);
  EXPECT_GE(r.steps, 1);
  EXPECT_EQ(r.counts.allocations, 1);
  EXPECT_EQ(r.counts.requests, 1);
  EXPECT_EQ(r.counts.events, 1);
  EXPECT_EQ(r.counts.deliveries, 1);
  EXPECT_EQ(r.counts.attempts, 1);

  EXPECT_FALSE(Exists(15));
  EXPECT_TRUE(Exists(17));  // its event still waits for delivery
  EXPECT_TRUE(Exists(16));  // open
  EXPECT_EQ(Get(16).state, AllocationState::kOpen);
  EXPECT_EQ(store_->ListDeliveries(std::nullopt, std::nullopt, 10)->size(), 1u);  // 16's

  Pruner::Counters c = pruner.counters();
  EXPECT_EQ(c.pruned.allocations, 1);
  EXPECT_EQ(c.pruned.requests, 1);
  EXPECT_EQ(c.pruned.events, 1);
  EXPECT_EQ(c.pruned.deliveries, 1);
  EXPECT_EQ(c.pruned.attempts, 1);
  // Order 17, last changed when it was confirmed, 91 days ago.
  ASSERT_TRUE(c.oldest_finished);
  EXPECT_EQ(*c.oldest_finished, clock_.Now() - kDays91);
  EXPECT_DOUBLE_EQ(c.oldest_finished_age_seconds, 91 * 86400.0);
  clock_.Advance(1h);  // the age grows between passes
  EXPECT_DOUBLE_EQ(pruner.counters().oldest_finished_age_seconds, 91 * 86400.0 + 3600);

  // A second pass finds nothing more; the counters keep what the first deleted.
  Pruner::PassResult again = pruner.RunPass(false);
  ASSERT_FALSE(again.error);
  EXPECT_EQ(again.counts.Total(), 0);
  EXPECT_EQ(pruner.counters().pruned.Total(), 5);
}

TEST_F(PrunerTest, ADryRunDeletesNothingAndCountsWhatWouldGo) {
  OldAndNew();
  Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30)));
  Pruner::PassResult dry = pruner.RunPass(true);
  ASSERT_FALSE(dry.error) << dry.error->what();
  EXPECT_EQ(dry.counts.allocations, 1);
  EXPECT_EQ(dry.counts.requests, 1);
  EXPECT_EQ(dry.counts.events, 1);
  EXPECT_EQ(dry.counts.deliveries, 1);
  EXPECT_EQ(dry.counts.attempts, 1);
  EXPECT_TRUE(Exists(15));
  EXPECT_EQ(store_->ListDeliveries(std::nullopt, std::nullopt, 10)->size(), 2u);
  EXPECT_EQ(pruner.counters().pruned.Total(), 0);  // only deleted rows count

  EXPECT_EQ(pruner.RunPass(false).counts.allocations, 1);
  EXPECT_FALSE(Exists(15));
}

TEST_F(PrunerTest, NothingIsDeletedBeforeItsTimeOrWhenKeptForever) {
  OldAndNew();
  Pruner keep(Options(), clock_, Retention(0ms, 0ms));
  Pruner::PassResult r = keep.RunPass(false);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.counts.Total(), 0);
  EXPECT_EQ(r.steps, 0);  // nothing to walk
  Pruner young(Options(), clock_, Retention(std::chrono::days(92), std::chrono::days(92)));
  EXPECT_EQ(young.RunPass(false).counts.Total(), 0);
  EXPECT_TRUE(Exists(15));
}

TEST_F(PrunerTest, OldAttemptsGoWhileTheirDeliveryStays) {
  Create(15, {{3}});
  Deliver(3);
  Confirm(RequestOf(15, 3).id);
  clock_.Advance(std::chrono::days(31));
  Create(16, {{3}});
  Pruner pruner(Options(), clock_, Retention(0ms, std::chrono::days(30)));
  Pruner::PassResult r = pruner.RunPass(false);
  ASSERT_FALSE(r.error) << r.error->what();
  EXPECT_EQ(r.counts.attempts, 1);
  EXPECT_EQ(r.counts.allocations + r.counts.requests + r.counts.events + r.counts.deliveries, 0);
  auto deliveries = *store_->ListDeliveries(std::nullopt, std::nullopt, 10);
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(deliveries[0].attempt_count, 1);  // the count stays
  EXPECT_TRUE(store_->ListAttempts(deliveries[0].id)->empty());
  EXPECT_TRUE(Exists(15));
}

TEST_F(PrunerTest, TheStatusPortShowsTheCounters) {
  OldAndNew();
  Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30)));
  ASSERT_FALSE(pruner.RunPass(false).error);
  auto config = std::make_shared<Config>();
  testing::UseDatabase(config->store, Options());
  DeliveryLoop delivery(Options(), clock_, config);  // not started: its counters are zero
  StatusServer status(Options(), ListenAddress{"127.0.0.1", 0}, 5s, delivery, pruner);
  status.Start();
  testing::RawConnection connection(status.port());
  testing::RawAnswer answer =
      connection.Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::seconds(5));
  status.Stop();
  ASSERT_EQ(answer.status, 200) << answer.Describe();
  EXPECT_THAT(answer.body, HasSubstr("# TYPE allocation_relay_pruned_total counter\n"));
  EXPECT_THAT(answer.body, HasSubstr("allocation_relay_pruned_total{kind=\"allocations\"} 1\n"));
  EXPECT_THAT(answer.body, HasSubstr("allocation_relay_pruned_total{kind=\"requests\"} 1\n"));
  EXPECT_THAT(answer.body, HasSubstr("allocation_relay_pruned_total{kind=\"events\"} 1\n"));
  EXPECT_THAT(answer.body, HasSubstr("allocation_relay_pruned_total{kind=\"deliveries\"} 1\n"));
  EXPECT_THAT(answer.body, HasSubstr("allocation_relay_pruned_total{kind=\"attempts\"} 1\n"));
  EXPECT_THAT(answer.body,
              HasSubstr("# TYPE allocation_relay_oldest_finished_allocation_age_seconds gauge\n"
                        "allocation_relay_oldest_finished_allocation_age_seconds 7862400\n"));
}

TEST_F(PrunerTest, WithNoFinishedAllocationKeptTheAgeIsZero) {
  Create(15, {{3}});
  Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30)));
  ASSERT_FALSE(pruner.RunPass(false).error);
  EXPECT_FALSE(pruner.counters().oldest_finished);
  EXPECT_EQ(pruner.counters().oldest_finished_age_seconds, 0);
}

// The prune command runs with the real clock: the fixture's dates (2024) are long past, so both
// attempts are older than the day kept.
TEST_F(PrunerTest, ThePruneCommandPrintsOneLinePerKind) {
  OldAndNew();
  Config config;
  testing::UseDatabase(config.store, Options());
  config.retention = Retention(std::chrono::days(1), std::chrono::days(1));
  std::ostringstream out, err;
  EXPECT_EQ(PruneCommand(config, true, out, err), 0) << err.str();
  EXPECT_EQ(out.str(),
            "dry run: nothing deleted; would delete:\n"
            "allocations 1\nrequests 1\nevents 1\ndeliveries 1\nattempts 2\n");
  EXPECT_TRUE(Exists(15));
  out.str("");
  EXPECT_EQ(PruneCommand(config, false, out, err), 0) << err.str();
  EXPECT_EQ(out.str(), "allocations 1\nrequests 1\nevents 1\ndeliveries 1\nattempts 2\n");
  EXPECT_EQ(err.str(), "");
  EXPECT_FALSE(Exists(15));
}

TEST(PruneCommandTest, AMissingDatabaseIsAnErrorAndIsNotCreated) {
  testing::TempDir dir;
  Config config;
  config.store.path = dir.File("missing.db");
  std::ostringstream out, err;
  EXPECT_EQ(PruneCommand(config, false, out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(), HasSubstr("prune: "));
  EXPECT_FALSE(std::filesystem::exists(config.store.path));
}

TEST_F(PrunerTest, TheThreadPrunesAtStartAndAfterAReloadThatTurnsItOn) {
  OldAndNew();
  {
    Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30)));
    pruner.Start();
    EXPECT_TRUE(testing::WaitFor([&] { return pruner.counters().pruned.allocations == 1; }, 10s));
    pruner.Stop();
  }
  EXPECT_FALSE(Exists(15));

  // interval 0: no pass until a reload sets one.
  clock_.Advance(kDays91);
  Create(18, {{3}});  // the newest now, so 16 may go once it is final
  Confirm(RequestOf(16, 3).id);
  Deliver(4);  // 17's event
  Deliver(3);  // 18's, the newest delivery
  clock_.Advance(kDays91);
  Create(19, {{3}});
  Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30), 0ms));
  pruner.Start();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(pruner.counters().pruned.Total(), 0);
  EXPECT_TRUE(Exists(16));
  pruner.SetConfig(Retention(std::chrono::days(90), std::chrono::days(30), 1h));
  EXPECT_TRUE(testing::WaitFor([&] { return pruner.counters().pruned.allocations == 2; }, 10s));
  pruner.Stop();
  EXPECT_FALSE(Exists(16));
  EXPECT_FALSE(Exists(17));
  EXPECT_TRUE(Exists(18));
}

// The console's activity older than a day goes at start and every few minutes, whether or not
// retention is configured; the last success stays.
TEST_F(PrunerTest, TheThreadDeletesConsoleActivityOlderThanADayWithoutRetention) {
  Create(15, {{3}});
  Deliver(3);
  const TimePoint first = clock_.Now();
  clock_.Advance(std::chrono::days(2));
  Create(16, {{4}});
  Deliver(4);
  Pruner pruner(Options(), clock_, Retention(0ms, 0ms, 0ms));
  pruner.Start();
  EXPECT_TRUE(testing::WaitFor([&] { return pruner.counters().activity_rows_pruned == 1; }, 10s));
  pruner.Stop();
  EXPECT_EQ(pruner.counters().pruned.Total(), 0);
  auto activity = store_->ReadActivity({}, {}, {});
  ASSERT_TRUE(activity.has_value()) << activity.error().what();
  ASSERT_EQ(activity->minutes.size(), 1u);
  EXPECT_EQ(activity->minutes[0].minute, std::chrono::floor<std::chrono::minutes>(clock_.Now()));
  ASSERT_EQ(activity->warehouses.size(), 2u);
  EXPECT_EQ(activity->warehouses[0].last_success_at, first);
}

// A long pass ends after its current step when the dispatcher stops, not at its end.
TEST_F(PrunerTest, StopEndsAPassInProgressPromptly) {
  constexpr int kAllocations = 300;
  for (int i = 0; i < kAllocations; ++i) Create(100 + i, {{3}});
  Deliver(3);
  for (int i = 0; i < kAllocations; ++i) Confirm(RequestOf(100 + i, 3).id);
  clock_.Advance(kDays91);
  Create(16, {{3}});
  Pruner::Options pacing;
  pacing.pause_between_steps = 3s;  // the pass would take minutes
  Pruner pruner(Options(), clock_, Retention(std::chrono::days(90), std::chrono::days(30)), pacing);
  pruner.Start();
  ASSERT_TRUE(testing::WaitFor([&] { return pruner.counters().pruned.allocations > 0; }, 10s));
  auto before = std::chrono::steady_clock::now();
  pruner.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);
  std::int64_t pruned = pruner.counters().pruned.allocations;
  EXPECT_LE(pruned, Pruner::kStartAllocations);  // one step
  EXPECT_TRUE(Exists(100 + kAllocations - 1));
}

}  // namespace
}  // namespace allocation_relay
