#include "expiry_worker.h"

#include <gtest/gtest.h>

#include "support/process.h"
#include "support/store_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::StoreTest;

using ExpiryWorkerTest = StoreTest;

TEST_F(ExpiryWorkerTest, OnePassExpiresEverythingDueInBatches) {
  for (int i = 0; i < 1200; ++i) Create(1 + i, {{3}, {4}});
  ExpiryWorker worker(Options(), clock_, catalog_);
  clock_.Advance(59min);
  EXPECT_EQ(worker.RunOnceForTest(*store_)->timed_out, 0);
  clock_.Advance(1min);
  ExpiryResult r = *worker.RunOnceForTest(*store_);
  EXPECT_EQ(r.timed_out, 1200);  // more than one 500-row batch
  EXPECT_EQ(r.groups_advanced, 1200);
  EXPECT_EQ(RequestOf(1200, 4).status, RequestStatus::kAllocated);
}

TEST_F(ExpiryWorkerTest, UsesTheCatalogOfTheLastReload) {
  Create(15, {{3}, {4}});
  ExpiryWorker worker(Options(), clock_, catalog_);
  worker.SetCatalog(WarehouseCatalog({{3, "Amsterdam", 1h}}));  // 4 removed from the config
  clock_.Advance(1h);
  ExpiryResult r = *worker.RunOnceForTest(*store_);
  EXPECT_EQ(r.exhausted, 1);
  EXPECT_EQ(Get(15).state, AllocationState::kExhausted);
}

// The thread itself: with the real clock, a request that expires in 300 ms is timed out soon
// after without anyone calling RunOnce (generous deadline; this checks behaviour, not speed).
TEST(ExpiryWorkerThread, TimesOutRequestsByItself) {
  testing::TempDir dir;
  testing::TestDatabase database(dir);
  const StoreOptions options = database.options();
  SystemClock clock;
  WarehouseCatalog catalog({{3, "Amsterdam", 300ms}, {4, "Tokyo", 1h}});
  auto store = Store::Open(options);
  ASSERT_TRUE(store->CreateAllocation({{"ab", 15}, {{1, 1, 1}}, {{3}, {4}}}, clock.Now(), catalog));
  ExpiryWorker worker(options, clock, catalog);
  worker.Start();
  bool moved = testing::WaitFor(
      [&] {
        auto a = store->GetAllocationByOrder(15);
        return a && *a && (*a)->requests.size() == 2;
      },
      10s);
  worker.Stop();
  ASSERT_TRUE(moved);
  auto a = **store->GetAllocationByOrder(15);
  EXPECT_EQ(a.requests[0].status, RequestStatus::kTimedOut);
  EXPECT_EQ(a.requests[1].status, RequestStatus::kAllocated);
}

}  // namespace
}  // namespace allocation_relay
