// Retention (SPEC section 9) with the real binaries: allocation-api and allocation-dispatcherd on
// one database, webhooks to a receiver on loopback, pruning through `allocation-dispatcherd
// prune` and the dispatcher's own worker. Short retentions (1 s) are waited out by polling the
// clock against the rows' own timestamps; old rows are aged in the database directly (plain SQL
// through support/database_checks.h, the same on both backends). Every test ends with the
// database checked: nothing orphaned, and on SQLite integrity_check ok and no foreign key
// violation. Runs on both backends; only the soak's file size is SQLite's alone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/database_checks.h"
#include "support/form.h"
#include "support/receiver.h"
#include "support/services_test.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::CommandResult;
using testing::ExpectConsistent;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::NowMicros;
using testing::ParseCounts;
using testing::Process;
using testing::QueryInt;
using testing::TableCounts;

constexpr const char* kNotFound =
    R"({"status":"no","errorMessages":{"order":"Allocation not found"}})";
constexpr const char* kDispatcher =
    "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [200ms, 200ms]}";

struct PruneOutput {
  int exit_code = -1;
  std::string out, err;
  std::map<std::string, std::int64_t> counts;  // kind -> rows
  std::int64_t operator[](const std::string& kind) const {
    auto it = counts.find(kind);
    return it == counts.end() ? -1 : it->second;
  }
};

class Retention : public testing::ServicesTest {
 protected:
  // Warehouses 3 and 4 post to /w3 and /w4 of the receiver (calls of at most 10 events: the
  // test receiver refuses form bodies over 8 KB); `retention` is the inline YAML of the section.
  ApiProcessOptions Options(const std::string& retention,
                            const std::string& dispatcher = kDispatcher) {
    ApiProcessOptions o;
    for (int w : {3, 4}) {
      o.webhooks[w] = "{url: '" + receiver_.Url("/w" + std::to_string(w)) +
                      "', secret: s, max_events_per_call: 10}";
    }
    o.dispatcher = dispatcher;
    o.extra = "retention: " + retention + "\n";
    return o;
  }
  void Start(const std::string& retention, const std::string& dispatcher = kDispatcher) {
    StartServices(Options(retention, dispatcher));
  }

  CommandResult Run(std::vector<std::string> args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    args.insert(args.begin(), {DISPATCHER_BINARY, "--config", api_->ConfigPath()});
    return testing::RunCommand(args, api_->dir().path(), timeout);
  }
  PruneOutput Prune(bool dry_run = false) {
    CommandResult r = dry_run ? Run({"prune", "--dry-run"}) : Run({"prune"});
    PruneOutput p{r.exit_code, r.out, r.err, ParseCounts(r.out)};
    EXPECT_EQ(p.exit_code, 0) << p.out << p.err;
    EXPECT_EQ(p.counts.size(), 5u) << p.out << p.err;
    return p;
  }

  // Waits until the system clock is `retention` (and a margin) past the last change of every
  // allocation and the start of every attempt in the database, so a pass now sees all of them as
  // old.
  void WaitPastRetention(std::chrono::milliseconds retention) {
    const StoreOptions db = api_->store_options();
    const std::int64_t newest =
        std::max(QueryInt(db, "SELECT max(updated_at) FROM allocations"),
                 QueryInt(db, "SELECT max(started_at) FROM delivery_attempts"));
    const std::int64_t due =
        newest + std::chrono::duration_cast<std::chrono::microseconds>(retention + 100ms).count();
    ASSERT_TRUE(testing::WaitFor([&] { return NowMicros() > due; }, 30s));
  }

  // Every request GET /allocation-requests?status=all lists (all pages, by `after`).
  std::vector<std::int64_t> AllRequestIds() {
    std::vector<std::int64_t> ids;
    for (;;) {
      std::string path =
          "/allocation-requests?status=all&after=" + std::to_string(ids.empty() ? 0 : ids.back());
      json page = api_->Get(path).Json()["allocation_requests"];
      for (const auto& e : page) ids.push_back(e["id"].get<std::int64_t>());
      if (page.size() < 100) return ids;
    }
  }
  std::string StatusOf(std::int64_t request_id) {
    auto all = api_->Get("/allocation-requests?status=all&after=" + std::to_string(request_id - 1))
                   .Json()["allocation_requests"];
    for (const auto& e : all) {
      if (e["id"] == request_id) return e["status"];
    }
    return "";
  }
  bool WaitSent(std::int64_t request_id) {
    return testing::WaitFor([&] { return StatusOf(request_id) == "sent"; }, 15s);
  }
  std::int64_t FirstRequestId(const json& created) {
    return created["allocation"]["allocation_requests"][0]["id"].get<std::int64_t>();
  }
  std::string StateOf(std::int64_t order) {
    json a = api_->Get("/allocations/" + std::to_string(order)).Json();
    return a.contains("allocation") ? a["allocation"]["state"].get<std::string>() : "(none)";
  }
  // The delivery uids `history --order` names for an order.
  std::vector<std::string> DeliveryUidsOf(std::int64_t order) {
    CommandResult h = Run({"history", "--order", std::to_string(order)});
    EXPECT_EQ(h.exit_code, 0) << h.err;
    std::vector<std::string> uids;
    std::regex delivery(R"(: delivery (\S+) (succeeded|dead|pending) after)");
    for (std::sregex_iterator it(h.out.begin(), h.out.end(), delivery), end; it != end; ++it) {
      uids.push_back((*it)[1]);
    }
    return uids;
  }
  // (action, request id, status) of every event warehouse `w` was sent, answered or not.
  std::set<std::tuple<std::string, std::int64_t, std::string>> EventsSentTo(int w) {
    std::set<std::tuple<std::string, std::int64_t, std::string>> out;
    for (const auto& call : receiver_.Calls()) {
      if (call.path != "/w" + std::to_string(w)) continue;
      json doc = json::parse(testing::FormDecode(call.body.substr(8)));
      for (const auto& e : doc["events"]) {
        out.emplace(e["action"], e["id"].get<std::int64_t>(), e["data"]["status"]);
      }
    }
    return out;
  }
};

// 1. A pruned allocation is gone for every endpoint and command; its order number can be
// allocated again, and the new request's id is greater than any before, also when the newest
// request belonged to a final allocation old enough to go.
TEST_F(Retention, APrunedAllocationIsGoneEverywhereAndItsNumberCanBeUsedAgain) {
  Start("{finished: 1s, attempts: 0, interval: 0}");
  std::int64_t r15 = FirstRequestId(api_->CreateAllocation(15, "[[3]]"));
  ASSERT_TRUE(WaitSent(r15)) << dispatcher_->Stderr();
  ASSERT_EQ(api_->Update(r15, "confirmed")["success"], true);
  // A later allocation, open: it owns the newest request, event and delivery.
  std::int64_t r16 = FirstRequestId(api_->CreateAllocation(16, "[[3]]"));
  ASSERT_TRUE(WaitSent(r16)) << dispatcher_->Stderr();
  std::vector<std::string> uids = DeliveryUidsOf(15);
  ASSERT_EQ(uids.size(), 1u);
  ASSERT_THAT(Run({"deliveries"}).out, HasSubstr(uids[0]));
  ASSERT_EQ(AllRequestIds(), (std::vector<std::int64_t>{r15, r16}));

  WaitPastRetention(1s);
  PruneOutput p = Prune();
  EXPECT_EQ(p.out, "allocations 1\nrequests 1\nevents 1\ndeliveries 1\nattempts 1\n") << p.err;

  EXPECT_EQ(api_->Get("/allocations/15").body, kNotFound);
  EXPECT_EQ(StateOf(16), "open");
  EXPECT_EQ(AllRequestIds(), (std::vector<std::int64_t>{r16}));
  EXPECT_EQ(api_->Get("/allocation-requests?status=all&order=15").body,
            R"({"status":"ok","allocation_requests":[]})");
  json page = api_->Get("/allocation-requests?status=all&page=1").Json()["allocation_requests"];
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0]["id"], r16);
  CommandResult deliveries = Run({"deliveries"});
  EXPECT_EQ(deliveries.exit_code, 0) << deliveries.err;
  EXPECT_THAT(deliveries.out, Not(HasSubstr(uids[0])));
  EXPECT_THAT(deliveries.out, HasSubstr("\t3\tsucceeded\t1\t1\t-\tHTTP 200\n"));  // order 16's
  CommandResult history = Run({"history", "--order", "15"});
  EXPECT_EQ(history.exit_code, 1);
  EXPECT_THAT(history.err, HasSubstr("no allocation for order 15"));

  // Order 16 final too: it still owns the newest request and event, so it stays (SQLite would
  // hand out its ids again, and a client's after= cursor would skip the new request).
  ASSERT_EQ(api_->Update(r16, "confirmed")["success"], true);
  WaitPastRetention(1s);
  EXPECT_EQ(Prune().out, "allocations 0\nrequests 0\nevents 0\ndeliveries 0\nattempts 0\n");
  EXPECT_EQ(StateOf(16), "confirmed");

  // The number is free again; the new request's id was never used before.
  json again = api_->CreateAllocation(15, "[[3]]");
  EXPECT_EQ(again["status"], "ok");
  std::int64_t r15b = FirstRequestId(again);
  EXPECT_GT(r15b, r16);
  EXPECT_EQ(StateOf(15), "open");
  json after = api_->Get("/allocation-requests?status=all&after=" + std::to_string(r16)).Json();
  ASSERT_EQ(after["allocation_requests"].size(), 1u);
  EXPECT_EQ(after["allocation_requests"][0]["id"], r15b);
  ASSERT_TRUE(WaitSent(r15b)) << dispatcher_->Stderr();

  // Now order 16 is no longer the newest: it goes.
  WaitPastRetention(1s);
  EXPECT_EQ(Prune()["allocations"], 1);
  EXPECT_EQ(api_->Get("/allocations/16").body, kNotFound);
  EXPECT_EQ(AllRequestIds(), (std::vector<std::int64_t>{r15b}));
  ExpectConsistent(api_->store_options());
}

// A warehouse without a webhook polls: its events are never put into a delivery, so they hold
// nothing back, or its allocations would be kept forever.
TEST_F(Retention, TheEventsOfAWarehouseThatPollsHoldNothingBack) {
  Start("{finished: 1s, attempts: 0, interval: 0}");
  std::int64_t r15 = FirstRequestId(api_->CreateAllocation(15, "[[7]]"));  // 7: no webhook
  ASSERT_EQ(api_->Update(r15, "confirmed")["success"], true);
  std::int64_t r16 = FirstRequestId(api_->CreateAllocation(16, "[[3]]"));  // the newest, open
  ASSERT_TRUE(WaitSent(r16)) << dispatcher_->Stderr();
  WaitPastRetention(1s);
  PruneOutput p = Prune();
  EXPECT_EQ(p["allocations"], 1) << p.out;
  EXPECT_EQ(p["events"], 1) << p.out;
  EXPECT_EQ(api_->Get("/allocations/15").body, kNotFound);
  EXPECT_EQ(StateOf(16), "open");
  ExpectConsistent(api_->store_options());
}

// 2. With the warehouses' webhooks failing, nothing of an open allocation and nothing with an
// event still to deliver (in a pending delivery, or not yet in one) is pruned, however old; once
// the receiver answers again everything is delivered, and only then do the final ones go.
TEST_F(Retention, OpenAllocationsAndUndeliveredEventsSurviveAndAreDeliveredLater) {
  receiver_.SetDefault(500);
  Start("{finished: 1s, attempts: 0, interval: 0}",
        "{listen: '127.0.0.1:0', allow_private_networks: true, "
        "retry_schedule: [1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, "
        "1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]}");
  // Order 30 at 3 and 4; warehouse 4 confirms (through the API), 3's request is outdated.
  json created = api_->CreateAllocation(30, "[[3,4]]");
  std::int64_t r30_3 = created["allocation"]["allocation_requests"][0]["id"];
  std::int64_t r30_4 = created["allocation"]["allocation_requests"][1]["id"];
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kPending, std::nullopt, 10)->size() == 2; },
      15s))
      << dispatcher_->Stderr();
  ASSERT_EQ(api_->Update(r30_4, "confirmed")["success"], true);
  // Order 32 at 4, cancelled; order 31 at 3 stays open (and owns the newest rows).
  std::int64_t r32 = FirstRequestId(api_->CreateAllocation(32, "[[4]]"));
  ASSERT_EQ(api_->Post("/allocations/32/cancel", "").Json()["status"], "ok");
  std::int64_t r31 = FirstRequestId(api_->CreateAllocation(31, "[[3]]"));
  ASSERT_EQ(StateOf(30), "confirmed");
  ASSERT_EQ(StateOf(32), "cancelled");

  WaitPastRetention(1s);
  // Both kinds of waiting are there: events in pending deliveries and events in none yet.
  ASSERT_FALSE(store->ListDeliveries(DeliveryState::kPending, std::nullopt, 10)->empty());
  ASSERT_FALSE(store->ListUnbatchedEvents(std::nullopt, 100)->empty());
  // (Attempts go on being recorded meanwhile: the retries of the failing calls.)
  auto rows = [&] {
    auto t = TableCounts(api_->store_options());
    return std::vector<std::int64_t>{t["allocations"], t["allocation_requests"],
                                     t["outbox_events"]};
  };
  const auto before = rows();
  EXPECT_EQ(Prune().out, "allocations 0\nrequests 0\nevents 0\ndeliveries 0\nattempts 0\n");
  EXPECT_EQ(rows(), before);
  EXPECT_EQ(StateOf(30), "confirmed");
  EXPECT_EQ(StateOf(31), "open");
  EXPECT_EQ(StateOf(32), "cancelled");
  EXPECT_EQ(AllRequestIds(), (std::vector<std::int64_t>{r30_3, r30_4, r32, r31}));
  EXPECT_THAT(Run({"history", "--order", "30"}).out, HasSubstr("not sent yet"));

  // The warehouses are back: every event arrives.
  receiver_.SetDefault(200);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return store->ListUnbatchedEvents(std::nullopt, 100)->empty() &&
               store->ListDeliveries(DeliveryState::kPending, std::nullopt, 10)->empty();
      },
      30s))
      << dispatcher_->Stderr();
  using E = std::tuple<std::string, std::int64_t, std::string>;
  EXPECT_THAT(EventsSentTo(3), ::testing::IsSupersetOf({E{"create", r30_3, "allocated"},
                                                        E{"update", r30_3, "outdated"},
                                                        E{"create", r31, "allocated"}}));
  EXPECT_THAT(EventsSentTo(4), ::testing::IsSupersetOf({E{"create", r30_4, "allocated"},
                                                        E{"create", r32, "allocated"},
                                                        E{"update", r32, "outdated"}}));
  EXPECT_EQ(store->ListDeliveries(DeliveryState::kDead, std::nullopt, 10)->size(), 0u);

  // Delivered, the final ones go (3 requests, 5 events); the open one stays.
  WaitPastRetention(1s);
  PruneOutput p = Prune();
  EXPECT_EQ(p["allocations"], 2);
  EXPECT_EQ(p["requests"], 3);
  EXPECT_EQ(p["events"], 5);
  EXPECT_EQ(api_->Get("/allocations/30").body, kNotFound);
  EXPECT_EQ(api_->Get("/allocations/32").body, kNotFound);
  EXPECT_EQ(StateOf(31), "open");
  ExpectConsistent(api_->store_options());
}

// 3. One delivery carrying the events of two allocations: pruning the older allocation leaves
// the delivery (it still holds the other's event); pruning the other takes it.
TEST_F(Retention, ADeliveryOfAPrunedAndAKeptAllocationStaysUntilBothAreGone) {
  // Retention of an hour; the test ages the allocations it means to be old in the database.
  api_ = std::make_unique<ApiProcess>(Options("{finished: 1h, attempts: 0, interval: 0}"));
  std::int64_t r40 = FirstRequestId(api_->CreateAllocation(40, "[[3]]"));
  std::int64_t r41 = FirstRequestId(api_->CreateAllocation(41, "[[3]]"));
  StartDispatcher();  // both events queued already: one batch
  ASSERT_TRUE(WaitSent(r40) && WaitSent(r41)) << dispatcher_->Stderr();
  auto store = OpenStore();
  auto done = *store->ListDeliveries(DeliveryState::kSucceeded, 3, 10);
  ASSERT_EQ(done.size(), 1u);
  const Delivery shared = done[0];
  ASSERT_EQ(shared.request_ids, (std::vector<std::int64_t>{r40, r41}));
  // A later allocation owns the newest rows (never pruned: their ids would be handed out again).
  std::int64_t r42 = FirstRequestId(api_->CreateAllocation(42, "[[3]]"));
  ASSERT_TRUE(WaitSent(r42)) << dispatcher_->Stderr();
  ASSERT_EQ(api_->Update(r40, "confirmed")["success"], true);
  ASSERT_EQ(api_->Update(r41, "confirmed")["success"], true);

  auto age = [&](int order) {
    testing::ExecSql(api_->store_options(),
                     "UPDATE allocations SET updated_at = updated_at - 7200000000 WHERE "
                     "order_number = " +
                         std::to_string(order));
  };
  age(40);
  EXPECT_EQ(Prune().out, "allocations 1\nrequests 1\nevents 1\ndeliveries 0\nattempts 0\n");
  EXPECT_EQ(api_->Get("/allocations/40").body, kNotFound);
  EXPECT_EQ(StateOf(41), "confirmed");
  auto kept = store->GetDelivery(shared.id);
  ASSERT_TRUE(kept.has_value());
  ASSERT_TRUE(kept->has_value()) << "the delivery still holding order 41's event was deleted";
  EXPECT_EQ((*kept)->state, DeliveryState::kSucceeded);
  EXPECT_EQ(store->ListAttempts(shared.id)->size(), 1u);
  EXPECT_THAT(Run({"deliveries"}).out, HasSubstr(shared.uid));
  EXPECT_THAT(Run({"history", "--order", "41"}).out,
              HasSubstr("delivery " + shared.uid + " succeeded after 1 attempts"));
  ExpectConsistent(api_->store_options());

  age(41);
  EXPECT_EQ(Prune().out, "allocations 1\nrequests 1\nevents 1\ndeliveries 1\nattempts 1\n");
  EXPECT_EQ(api_->Get("/allocations/41").body, kNotFound);
  EXPECT_FALSE(store->GetDelivery(shared.id)->has_value());
  EXPECT_THAT(Run({"deliveries"}).out, Not(HasSubstr(shared.uid)));
  EXPECT_EQ(StateOf(42), "open");
  ExpectConsistent(api_->store_options());
}

// 4. Old attempt records go while their deliveries stay, dead or pending, with their counts; the
// dead one can still be re-sent, and its next attempt is numbered on from the count.
TEST_F(Retention, AttemptsArePrunedWhileTheirDeliveriesAndCountsStay) {
  receiver_.SetDefault(500);
  ApiProcessOptions options = Options("{finished: 0, attempts: 1s, interval: 0}");
  StartServices(options);
  std::int64_t r50 = FirstRequestId(api_->CreateAllocation(50, "[[3]]"));
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kDead, 3, 10)->size() == 1; }, 15s))
      << dispatcher_->Stderr();
  const Delivery dead = (*store->ListDeliveries(DeliveryState::kDead, 3, 10))[0];
  ASSERT_EQ(dead.attempt_count, 3);
  ASSERT_EQ(store->ListAttempts(dead.id)->size(), 3u);
  // A pending one too: retries an hour apart from now on (reloaded with SIGHUP).
  options.dispatcher =
      "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [1h]}";
  ASSERT_TRUE(ReloadDispatcher(options)) << dispatcher_->Stderr();
  api_->CreateAllocation(51, "[[4]]");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto p = *store->ListDeliveries(DeliveryState::kPending, 4, 10);
        return p.size() == 1 && p[0].attempt_count == 1;
      },
      15s))
      << dispatcher_->Stderr();
  const Delivery pending = (*store->ListDeliveries(DeliveryState::kPending, 4, 10))[0];

  WaitPastRetention(1s);
  EXPECT_EQ(Prune().out, "allocations 0\nrequests 0\nevents 0\ndeliveries 0\nattempts 4\n");
  EXPECT_TRUE(store->ListAttempts(dead.id)->empty());
  EXPECT_TRUE(store->ListAttempts(pending.id)->empty());
  auto d = *store->GetDelivery(dead.id);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->state, DeliveryState::kDead);
  EXPECT_EQ(d->attempt_count, 3);
  auto p = *store->GetDelivery(pending.id);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->state, DeliveryState::kPending);
  EXPECT_EQ(p->attempt_count, 1);
  CommandResult list = Run({"deliveries"});
  EXPECT_THAT(list.out, HasSubstr(dead.uid + "\t3\tdead\t3\t1\t-\t-\n"));
  EXPECT_THAT(list.out, HasSubstr(pending.uid + "\t4\tpending\t1\t1\t"));
  EXPECT_EQ(StateOf(50), "open");
  EXPECT_EQ(StateOf(51), "open");
  EXPECT_EQ(StatusOf(r50), "failed");

  // The dead delivery is still re-sendable; its next attempt is the 4th.
  receiver_.SetDefault(200);
  CommandResult resend = Run({"resend", "--warehouse", "3"});
  EXPECT_EQ(resend.out, "1 dead deliveries queued again for warehouse 3\n") << resend.err;
  ASSERT_TRUE(WaitSent(r50)) << dispatcher_->Stderr();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto x = *store->GetDelivery(dead.id);
        return x && x->state == DeliveryState::kSucceeded;
      },
      10s));
  EXPECT_EQ((*store->GetDelivery(dead.id))->attempt_count, 4);
  auto attempts = *store->ListAttempts(dead.id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].attempt, 4);
  EXPECT_EQ(attempts[0].http_status, 200);
  ExpectConsistent(api_->store_options());
}

// 5. `prune --dry-run` changes nothing and says what `prune` then deletes, row for row.
TEST_F(Retention, DryRunDeletesNothingAndCountsWhatPruneThenDeletes) {
  receiver_.Script({500});  // one failed attempt more
  Start("{finished: 1s, attempts: 1s, interval: 0}");
  std::vector<std::int64_t> ids;
  for (int n = 60; n < 65; ++n) ids.push_back(FirstRequestId(api_->CreateAllocation(n, "[[3]]")));
  for (std::int64_t id : ids) ASSERT_TRUE(WaitSent(id)) << dispatcher_->Stderr();
  for (std::int64_t id : ids) ASSERT_EQ(api_->Update(id, "confirmed")["success"], true);
  std::int64_t r65 = FirstRequestId(api_->CreateAllocation(65, "[[3]]"));  // open, the newest
  ASSERT_TRUE(WaitSent(r65)) << dispatcher_->Stderr();
  WaitPastRetention(1s);

  const auto before = TableCounts(api_->store_options());
  PruneOutput dry = Prune(true);
  ASSERT_TRUE(dry.out.starts_with("dry run: nothing deleted; would delete:\n")) << dry.out;
  EXPECT_EQ(dry["allocations"], 5);
  EXPECT_EQ(dry["requests"], 5);
  EXPECT_EQ(dry["events"], 5);
  EXPECT_GT(dry["deliveries"], 0);
  EXPECT_GT(dry["attempts"], dry["deliveries"]);  // the failed one and every success
  EXPECT_EQ(TableCounts(api_->store_options()), before);
  for (int n = 60; n < 65; ++n) EXPECT_EQ(StateOf(n), "confirmed");
  EXPECT_EQ(Prune(true).out, dry.out);  // and again: still all there

  PruneOutput real = Prune();
  EXPECT_EQ("dry run: nothing deleted; would delete:\n" + real.out, dry.out);
  const auto after = TableCounts(api_->store_options());
  EXPECT_EQ(before.at("allocations") - after.at("allocations"), dry["allocations"]);
  EXPECT_EQ(before.at("allocation_requests") - after.at("allocation_requests"), dry["requests"]);
  EXPECT_EQ(before.at("outbox_events") - after.at("outbox_events"), dry["events"]);
  EXPECT_EQ(before.at("deliveries") - after.at("deliveries"), dry["deliveries"]);
  EXPECT_EQ(before.at("delivery_attempts") - after.at("delivery_attempts"), dry["attempts"]);
  for (int n = 60; n < 65; ++n)
    EXPECT_EQ(api_->Get("/allocations/" + std::to_string(n)).body, kNotFound);
  EXPECT_EQ(StateOf(65), "open");
  ExpectConsistent(api_->store_options());
}

// 7. The dispatcher's own worker prunes on its interval and counts what it deleted in /metrics.
TEST_F(Retention, TheDispatcherPrunesByItselfAndCountsItInMetrics) {
  Start("{finished: 1s, attempts: 1s, interval: 1s}");
  std::int64_t r70 = FirstRequestId(api_->CreateAllocation(70, "[[3]]"));
  ASSERT_TRUE(WaitSent(r70)) << dispatcher_->Stderr();
  ASSERT_EQ(api_->Update(r70, "confirmed")["success"], true);
  std::int64_t r71 = FirstRequestId(api_->CreateAllocation(71, "[[3]]"));  // the newest, open
  ASSERT_TRUE(WaitSent(r71)) << dispatcher_->Stderr();
  ASSERT_TRUE(testing::WaitFor([&] { return api_->Get("/allocations/70").body == kNotFound; }, 30s))
      << dispatcher_->Stderr();
  EXPECT_EQ(StateOf(71), "open");
  // The pass logs after its commit: the deletion can be seen a moment before the line.
  const std::string logged = "prune: deleted 1 allocations, 1 requests, 1 events";
  EXPECT_TRUE(testing::WaitFor(
      [&] { return dispatcher_->Stderr().find(logged) != std::string::npos; }, 10s));
  std::smatch m;
  std::string err = dispatcher_->Stderr();
  ASSERT_TRUE(std::regex_search(err, m, std::regex(R"(dispatcher status on 127\.0\.0\.1:(\d+))")))
      << err;
  httplib::Client status("127.0.0.1", std::stoi(m[1]));
  auto metrics = status.Get("/metrics");
  ASSERT_TRUE(metrics);
  std::smatch pruned;
  ASSERT_TRUE(std::regex_search(
      metrics->body, pruned,
      std::regex(R"(\nallocation_relay_pruned_total\{kind="allocations"\} (\d+)\n)")))
      << metrics->body;
  EXPECT_GE(std::stoll(pruned[1]), 1);
  EXPECT_THAT(metrics->body, HasSubstr("allocation_relay_pruned_total{kind=\"requests\"} "));
  EXPECT_THAT(err, HasSubstr(logged));
  ExpectConsistent(api_->store_options());
}

// Soak: 12 rounds of 200 allocations delivered, confirmed, left past retention and pruned, each
// pass deleting exactly that round's. On SQLite freed pages are reused, so the file (after a
// checkpoint) stays the size it had after the third round. (PostgreSQL's space is reclaimed by
// its own VACUUM, on autovacuum's schedule, not by the prune: no file of the relay's to measure,
// so there the rounds' counts and the consistency are checked and the size is not.)
TEST_F(Retention, SoakKeepsTheFileSizeFlat) {
  Start("{finished: 1s, attempts: 1s, interval: 0}");
  constexpr int kRounds = 12, kPerRound = 200;
  const StoreOptions db = api_->store_options();
  const bool sqlite = !testing::TestOnPostgresql();
  std::vector<std::uintmax_t> sizes;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::int64_t> ids;
    for (int i = 0; i < kPerRound; ++i) {
      ids.push_back(FirstRequestId(api_->CreateAllocation(100000 * (round + 1) + i, "[[3]]")));
    }
    ASSERT_TRUE(testing::WaitFor(
        [&] {
          return QueryInt(db, "SELECT count(*) FROM allocation_requests WHERE status = 'sent'") ==
                 kPerRound;
        },
        30s))
        << "round " << round << "\n"
        << dispatcher_->Stderr();
    for (std::int64_t id : ids) ASSERT_EQ(api_->Update(id, "confirmed")["success"], true);
    WaitPastRetention(1s);
    PruneOutput p = Prune();
    // All but the newest (kept for its ids) of this round, and last round's newest.
    EXPECT_EQ(p["allocations"], round == 0 ? kPerRound - 1 : kPerRound) << "round " << round;
    if (sqlite) {  // SQLite only: the WAL and the file (see above)
      testing::ExecSql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
      sizes.push_back(std::filesystem::file_size(db.path));
    }
  }
  if (sqlite) {
    std::printf("database size after each round (bytes):");
    for (auto s : sizes) std::printf(" %ju", s);
    std::printf("\n");
    const double third = static_cast<double>(sizes[2]), last = static_cast<double>(sizes.back());
    EXPECT_LE(last, third * 1.2) << "the file grows under a steady load with retention";
    EXPECT_GE(last, third * 0.8);
  }
  EXPECT_EQ(TableCounts(db).at("allocations"), 1);
  ExpectConsistent(db);
}

}  // namespace
}  // namespace allocation_relay
