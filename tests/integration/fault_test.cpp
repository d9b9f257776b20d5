// Fault injection against both real binaries on one database file: kill -9 of either process
// under load, a write lock held by a third process, a database at its size limit, a database
// the services may not write. Each test prints what it injected and what it checked; afterwards
// an invariant checker reads the whole database.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/form.h"
#include "support/receiver.h"
#include "support/services_test.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::Process;
using testing::Receiver;

class Faults : public testing::ServicesTest {
 protected:
  void Start() {
    for (int w : {3, 4, 7}) {
      options_.webhooks[w] = "{url: '" + receiver_.Url("/w" + std::to_string(w)) +
                             "', secret: s, max_events_per_call: 5}";
    }
    options_.dispatcher =
        "{listen: '127.0.0.1:0', allow_private_networks: true, "
        "retry_schedule: [100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s, 1s]}";
    options_.busy_timeout = "1s";
    StartServices(options_);
  }
  // Stops both services, rewrites the config with `busy_timeout` (the store's last key, so
  // more store keys can ride along), starts both again.
  void RestartBoth(const std::string& busy_timeout) {
    dispatcher_->Signal(SIGTERM);
    ASSERT_EQ(dispatcher_->Wait(20s), 0) << dispatcher_->Stderr();
    ASSERT_EQ(api_->Stop(SIGTERM), 0) << api_->process().Stderr();
    options_.busy_timeout = busy_timeout;
    options_.store = api_->options().store;  // the same database (PostgreSQL: the API's own)
    api_->dir().Write("relay.yaml", ApiProcess::Config(options_));
    api_->Start();
    StartDispatcher();
  }
  // Every event id the receiver got, and how many arrived more than once.
  std::set<std::int64_t> ReceivedEventIds(int* duplicates = nullptr) {
    std::set<std::int64_t> ids;
    int dups = 0;
    for (const auto& call : receiver_.Calls()) {
      json doc = json::parse(testing::FormDecode(call.body.substr(8)));
      for (const auto& e : doc["events"]) {
        // An event is identified by its request and action (update events share the request).
        std::int64_t key = e["id"].get<std::int64_t>() * 10 + (e["action"] == "create" ? 0 : 1);
        if (!ids.insert(key).second) ++dups;
      }
    }
    if (duplicates) *duplicates = dups;
    return ids;
  }

  // The invariants after any fault, once the services had time to finish: every allocation in
  // one consistent state, no request stuck in `allocated`, every event batched into a delivery
  // that succeeded, every event received, and SQLite's integrity check.
  void CheckInvariants(const std::set<std::int64_t>& accepted_orders) {
    auto store = OpenStore();
    // A call's record (its delivery stored, its events batched, its requests `sent`) follows
    // the receiver's answer by a round: wait for it, then check everything.
    testing::WaitFor([&] { return store->ListUnbatchedEvents(std::nullopt, 10)->empty(); }, 10s);
    EXPECT_TRUE(*store->IntegrityCheck());
    int checked = 0;
    for (std::int64_t number : accepted_orders) {
      auto a = *store->GetAllocationByOrder(number);
      ASSERT_TRUE(a.has_value()) << "order " << number << " was accepted (200) but is missing";
      int confirmed = 0, pending = 0;
      for (const AllocationRequest& r : a->requests) {
        confirmed += r.status == RequestStatus::kConfirmed;
        pending += IsPending(r.status);
        EXPECT_NE(r.status, RequestStatus::kAllocated)
            << "order " << number << " request " << r.id << " stuck in allocated";
      }
      switch (a->state) {
        case AllocationState::kConfirmed:
          EXPECT_EQ(confirmed, 1) << "order " << number;
          EXPECT_EQ(pending, 0) << "order " << number;
          break;
        case AllocationState::kOpen:
          EXPECT_EQ(confirmed, 0) << "order " << number;
          EXPECT_GE(pending, 1) << "order " << number << " is open with nothing pending";
          break;
        case AllocationState::kExhausted:
        case AllocationState::kCancelled:
          EXPECT_EQ(confirmed, 0) << "order " << number;
          EXPECT_EQ(pending, 0) << "order " << number;
          break;
      }
      ++checked;
    }
    EXPECT_TRUE(store->ListUnbatchedEvents(std::nullopt, 10)->empty()) << "events never batched";
    EXPECT_TRUE(store->ListDeliveries(DeliveryState::kPending, std::nullopt, 10)->empty())
        << "deliveries still pending";
    EXPECT_TRUE(store->ListDeliveries(DeliveryState::kDead, std::nullopt, 10)->empty())
        << "dead deliveries (the receiver was up the whole time)";
    std::printf(
        "  checked: %d allocations consistent, integrity ok, no request in allocated, "
        "every event delivered\n",
        checked);
  }

  ApiProcessOptions options_;
};

// Load: allocations created, some confirmed or rejected, from a client that retries on errors
// (the API may be down). kill -9 hits the dispatcher twice and the API twice at random moments;
// each is restarted. Afterwards every accepted allocation is consistent and every event arrived.
TEST_F(Faults, KillNineOfEitherServiceUnderLoadKeepsEveryInvariant) {
  Start();
  std::mt19937 random(std::random_device{}());
  std::set<std::int64_t> accepted;
  int failed_calls = 0;
  auto load = [&](int from, int to) {
    for (int n = from; n < to; ++n) {
      auto a =
          api_->Post("/allocations", R"({"order":{"id":"ab12","number":)" + std::to_string(n) +
                                         R"(},"lines":[{"lineId":1,"quantity":1,"stockItemId":1}],)"
                                         R"("warehouses":[[3,4],[7]]})");
      if (a.status != 200) {
        ++failed_calls;
        continue;
      }
      json answer = json::parse(a.body, nullptr, false);
      if (answer.is_discarded() || answer["status"] != "ok") continue;
      accepted.insert(n);
      if (n % 3 == 0) {
        auto id = answer["allocation"]["allocation_requests"][0]["id"].get<std::int64_t>();
        auto u =
            api_->Put("/allocation-request", R"({"id":)" + std::to_string(id) + R"(,"status":")" +
                                                 (n % 2 ? "confirmed" : "rejected") + "\"}");
        if (u.status != 200) ++failed_calls;
      }
    }
  };
  for (int round = 0; round < 4; ++round) {
    int base = 1000 + round * 100;
    std::thread client([&] { load(base, base + 100); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + random() % 150));
    if (round % 2 == 0) {
      dispatcher_->Signal(SIGKILL);
      dispatcher_->Wait(10s);
      std::printf("  injected: kill -9 of the dispatcher (round %d)\n", round);
      client.join();
      StartDispatcher();
    } else {
      client.join();  // the client shares the API's connection: kill between its calls
      api_->Stop(SIGKILL);
      std::printf("  injected: kill -9 of the API (round %d)\n", round);
      api_->Start();
    }
  }
  load(2000, 2020);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto store = OpenStore();
        return store->ListUnbatchedEvents(std::nullopt, 1)->empty() &&
               store->ListDeliveries(DeliveryState::kPending, std::nullopt, 1)->empty();
      },
      60s))
      << dispatcher_->Stderr();
  std::printf("  %zu allocations accepted, %d calls failed while the API was down\n",
              accepted.size(), failed_calls);
  EXPECT_GE(accepted.size(), 300u);
  CheckInvariants(accepted);
  int duplicates = 0;
  auto received = ReceivedEventIds(&duplicates);
  auto store = OpenStore();
  std::vector<std::int64_t> request_ids;
  for (std::int64_t n : accepted) {
    auto allocation = *store->GetAllocationByOrder(n);
    for (const auto& r : allocation->requests) request_ids.push_back(r.id);
  }
  int missing = 0;
  auto events = *store->EventsOfRequests(request_ids);
  for (const OutboxEvent& e : events) {
    std::int64_t key = e.request_id * 10 + (e.action == EventAction::kCreate ? 0 : 1);
    missing += !received.contains(key);
  }
  EXPECT_EQ(missing, 0);
  std::printf("  every event received at least once; %d duplicates (at least once)\n", duplicates);
}

// A third process holds the write lock for 3 s (busy_timeout is 1 s): the API answers 503 with a
// clear message for writes meanwhile and serves reads; nothing accepted is lost, both services
// carry on once the lock is gone.
TEST_F(Faults, AWriteLockHeldByAThirdProcessIsWaitedOutAndNothingIsLost) {
  Start();
  api_->CreateAllocation(1, "[[3]]");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t holder = fork();
  if (holder == 0) {
    sqlite3* db = nullptr;
    sqlite3_open(api_->DatabasePath().c_str(), &db);
    sqlite3_busy_timeout(db, 5000);
    char ok = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    sleep(3);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    _exit(0);
  }
  char locked = 0;
  ASSERT_EQ(read(ready[0], &locked, 1), 1);
  ASSERT_TRUE(locked) << "the third process could not take the write lock";
  close(ready[0]);
  close(ready[1]);
  std::printf("  injected: a process holding BEGIN IMMEDIATE for 3 s\n");
  auto during = api_->Post("/allocations", R"({"order":{"id":"ab12","number":2},)"
                                           R"("lines":[{"lineId":1,"quantity":1,"stockItemId":1}],)"
                                           R"("warehouses":[[3]]})");
  EXPECT_EQ(during.status, 503) << during.body;
  EXPECT_THAT(during.body, ::testing::HasSubstr("busy")) << during.body;
  EXPECT_EQ(api_->Get("/allocation-requests?status=all").status, 200);  // reads go on
  waitpid(holder, nullptr, 0);
  api_->CreateAllocation(2, "[[3]]");  // the same order again, now accepted
  api_->CreateAllocation(3, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return ReceivedEventIds().size() == 3; }, 15s))
      << dispatcher_->Stderr();
  std::printf("  checked: 503 while locked, reads served, then all 3 allocations delivered\n");
  CheckInvariants({1, 2, 3});
}

// store.max_size caps the file (a full disk, as far as SQLite is concerned): writes fail with a
// 503 that says so, reads go on, nothing half-written; raising the limit and restarting
// recovers, and every accepted allocation is there and delivered.
TEST_F(Faults, ADatabaseAtItsSizeLimitRefusesWritesCleanlyAndRecovers) {
  Start();
  api_->CreateAllocation(1, "[[3]]");
  RestartBoth("1s, max_size: 409600");  // a limit a little above the current size
  std::printf("  injected: store.max_size 400 KiB (SQLITE_FULL at the limit)\n");
  std::set<std::int64_t> accepted{1};
  std::string refusal;
  for (int n = 2; n < 3000 && refusal.empty(); ++n) {
    std::string lines;
    for (int l = 1; l <= 10; ++l) {
      lines += (l > 1 ? "," : "") + std::string(R"({"lineId":)") + std::to_string(l) +
               R"(,"quantity":1,"stockItemId":)" + std::to_string(1000 + l) + "}";
    }
    auto a = api_->Post("/allocations", R"({"order":{"id":"ab12","number":)" + std::to_string(n) +
                                            R"(},"lines":[)" + lines + R"(],"warehouses":[[3]]})");
    if (a.status == 200) {
      accepted.insert(n);
    } else {
      refusal = std::to_string(a.status) + " " + a.body;
    }
  }
  EXPECT_THAT(refusal, ::testing::StartsWith("503 ")) << refusal;
  EXPECT_THAT(refusal, ::testing::HasSubstr("full")) << refusal;
  EXPECT_EQ(api_->Get("/allocation-requests?status=all").status, 200);  // reads go on
  std::printf("  refused after %zu allocations: %s\n", accepted.size(), refusal.c_str());
  // The cause goes away: no limit, both restarted.
  RestartBoth("1s");
  api_->CreateAllocation(5000, "[[3]]");
  accepted.insert(5000);
  ASSERT_TRUE(testing::WaitFor([&] { return ReceivedEventIds().size() == accepted.size(); }, 30s))
      << dispatcher_->Stderr();
  CheckInvariants(accepted);
}

// The WAL file is made immutable (chattr +i: even root may not write it) while both services
// run: writes fail with a 503, reads go on; once writable again everything proceeds and nothing
// accepted is lost.
TEST_F(Faults, ADatabaseTheServicesMayNotWriteAnswers503AndRecovers) {
  Start();
  api_->CreateAllocation(1, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return ReceivedEventIds().size() == 1; }, 15s));
  std::string wal = api_->DatabasePath() + "-wal";
  auto chattr = [&](const char* flag) {
    return testing::RunCommand({"/usr/bin/chattr", flag, wal}, api_->dir().path());
  };
  auto locked = chattr("+i");
  ASSERT_EQ(locked.exit_code, 0) << "this machine cannot make a file immutable: " << locked.err;
  std::printf("  injected: chattr +i on the WAL file\n");
  auto during = api_->Post("/allocations", R"({"order":{"id":"ab12","number":2},)"
                                           R"("lines":[{"lineId":1,"quantity":1,"stockItemId":1}],)"
                                           R"("warehouses":[[3]]})");
  auto read = api_->Get("/allocation-requests?status=all");
  ASSERT_EQ(chattr("-i").exit_code, 0);
  EXPECT_EQ(during.status, 503) << during.body;
  EXPECT_EQ(read.status, 200) << read.body;
  std::printf("  checked: write answered %d (%s), read answered %d\n", during.status,
              during.body.c_str(), read.status);
  api_->CreateAllocation(2, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return ReceivedEventIds().size() == 2; }, 15s))
      << dispatcher_->Stderr();
  CheckInvariants({1, 2});
}

}  // namespace
}  // namespace allocation_relay
