// kill -9 of the dispatcher at random moments while allocations come in: afterwards every
// create event reached the receiver at least once and no request is stuck in `allocated`.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <random>

#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/form.h"
#include "support/receiver.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FormDecode;

TEST(DispatcherCrash, KillNineAtRandomMomentsLosesNoEvent) {
  testing::Receiver receiver;
  testing::ApiProcessOptions options;
  std::string hook =
      "{url: '" + receiver.Url() + "', secret: s, timeout: 500ms, " + "max_events_per_call: 5}";
  options.webhooks = {{3, hook}, {4, hook}};
  testing::ApiProcess api(options);
  std::vector<std::string> argv = {DISPATCHER_BINARY, "--config", api.ConfigPath()};
  auto dispatcher = std::make_unique<testing::Process>(argv, api.dir().path());

  std::mt19937 rng(std::random_device{}());
  constexpr int kAllocations = 1000, kKills = 8;
  int kills = 0, next_kill = 30;
  for (int i = 0; i < kAllocations; ++i) {
    api.CreateAllocation(1000 + i, "[[3,4]]");
    if (i == next_kill && kills < kKills) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
      dispatcher->Signal(SIGKILL);
      dispatcher->Wait(10s);
      ++kills;
      dispatcher = std::make_unique<testing::Process>(argv, api.dir().path());
      next_kill += 60 + static_cast<int>(rng() % 80);
    }
  }
  StoreOptions further = api.store_options();
  further.create_and_migrate = false;
  auto store = Store::Open(further);
  auto count = [&](RequestStatus s) {
    auto counts = store->CountRequestsByStatus();
    if (!counts) return std::int64_t{-1};
    for (auto [status, n] : *counts) {
      if (status == s) return n;
    }
    return std::int64_t{-1};
  };
  ASSERT_TRUE(
      testing::WaitFor([&] { return count(RequestStatus::kSent) == 2 * kAllocations; }, 60s))
      << "sent " << count(RequestStatus::kSent) << " allocated " << count(RequestStatus::kAllocated)
      << "\n"
      << dispatcher->Stderr();
  EXPECT_EQ(count(RequestStatus::kAllocated), 0);

  std::map<std::int64_t, int> received;  // request id -> create events received
  for (const auto& call : receiver.Calls()) {
    json doc = json::parse(FormDecode(call.body.substr(8)));
    for (const auto& e : doc["events"]) {
      if (e["action"] == "create") ++received[e["id"].get<std::int64_t>()];
    }
  }
  int duplicates = 0;
  for (std::int64_t id = 1; id <= 2 * kAllocations; ++id) {
    EXPECT_GE(received[id], 1) << "request " << id << " never reached the receiver";
    duplicates += std::max(0, received[id] - 1);
  }
  std::printf("%d kill -9, %d events, %zu calls, %d duplicate deliveries of events\n", kills,
              2 * kAllocations, receiver.Calls().size(), duplicates);
  dispatcher->Signal(SIGTERM);
  EXPECT_EQ(dispatcher->Wait(20s), 0);
}

}  // namespace
}  // namespace allocation_relay
