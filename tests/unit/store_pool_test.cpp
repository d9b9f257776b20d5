// StorePool: the cap on open Stores (what the API sets for PostgreSQL from store.pool), the wait
// at the cap and its kBusy, and the places freed by discarded or failed connections. The Stores
// are SQLite files in a temp directory; the cap logic does not depend on the backend.
#include "store_pool.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "allocation_relay/store.h"
#include "support/temp_dir.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;

class StorePoolTest : public ::testing::Test {
 protected:
  StorePoolTest() { Store::Open(Options()); }  // creates and migrates the file

  StoreOptions Options() const {
    StoreOptions options;
    options.path = dir_.File("relay.db");
    options.synchronous = SynchronousMode::kNormal;
    return options;
  }

  // Spins (without sleeping) until `pool` has `n` requests waiting at its cap.
  static void AwaitWaiting(const StorePool& pool, int n) {
    auto give_up = std::chrono::steady_clock::now() + 30s;
    while (pool.Waiting() != n) {
      ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no request started waiting";
      std::this_thread::yield();
    }
  }

  testing::TempDir dir_;
};

TEST_F(StorePoolTest, TheApiCapsPostgresqlAtStorePoolAndLeavesSqliteUncapped) {
  StoreOptions sqlite = Options();
  sqlite.pool = 3;
  EXPECT_EQ(StorePool::MaxOpenFor(sqlite), 0);
  StoreOptions postgresql;
  postgresql.backend = StoreBackendKind::kPostgresql;
  postgresql.url = "postgresql://relay@db1/relay";
  postgresql.pool = 3;
  EXPECT_EQ(StorePool::MaxOpenFor(postgresql), 3);
  EXPECT_EQ(StorePool::kDefaultWait, 5s);
}

TEST_F(StorePoolTest, WithoutACapOpensAStoreForEveryRequest) {
  StorePool pool(Options());  // SQLite: no cap
  std::vector<StorePool::Lease> leases;
  for (int i = 0; i < 20; ++i) {
    StoreResult<StorePool::Lease> lease = pool.Acquire();
    ASSERT_TRUE(lease) << lease.error().what();
    leases.push_back(std::move(*lease));
  }
  EXPECT_EQ(pool.Waiting(), 0);
}

TEST_F(StorePoolTest, AReturnedStoreIsLentAgain) {
  StorePool pool(Options(), 1, 0ms);
  Store* first = nullptr;
  {
    StoreResult<StorePool::Lease> lease = pool.Acquire();
    ASSERT_TRUE(lease);
    first = &**lease;
    EXPECT_TRUE((*lease)->SchemaVersion());
  }
  StoreResult<StorePool::Lease> again = pool.Acquire();
  ASSERT_TRUE(again) << again.error().what();
  EXPECT_EQ(&**again, first);
}

TEST_F(StorePoolTest, AtTheCapARequestGetsBusyAfterWaiting) {
  StorePool pool(Options(), 2, 50ms);
  StoreResult<StorePool::Lease> a = pool.Acquire();
  StoreResult<StorePool::Lease> b = pool.Acquire();
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  auto started = std::chrono::steady_clock::now();
  StoreResult<StorePool::Lease> c = pool.Acquire();
  auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind(), StoreError::Kind::kBusy);
  EXPECT_STREQ(c.error().what(), "all 2 database connections are busy");
  EXPECT_GE(waited, 50ms);
  EXPECT_EQ(pool.Waiting(), 0);
}

TEST_F(StorePoolTest, AWaitingRequestGetsTheStoreThatComesBack) {
  StorePool pool(Options(), 1, 60s);
  std::optional<StorePool::Lease> held;
  {
    StoreResult<StorePool::Lease> lease = pool.Acquire();
    ASSERT_TRUE(lease);
    held.emplace(std::move(*lease));
  }
  Store* store = &**held;
  auto waiter = std::async(std::launch::async, [&pool] {
    StoreResult<StorePool::Lease> lease = pool.Acquire();
    return lease ? &**lease : nullptr;
  });
  AwaitWaiting(pool, 1);
  held.reset();  // returns the Store
  EXPECT_EQ(waiter.get(), store);
}

TEST_F(StorePoolTest, ADiscardedStoreFreesItsPlace) {
  StorePool pool(Options(), 1, 0ms);
  StoreResult<StorePool::Lease> broken = pool.Acquire();
  ASSERT_TRUE(broken);
  broken->Discard();
  // The discarded lease is still in scope; its place is free all the same.
  StoreResult<StorePool::Lease> fresh = pool.Acquire();
  ASSERT_TRUE(fresh) << fresh.error().what();
  StoreResult<StorePool::Lease> third = pool.Acquire();
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().kind(), StoreError::Kind::kBusy);
}

TEST_F(StorePoolTest, ADiscardWakesAWaitingRequest) {
  StorePool pool(Options(), 1, 60s);
  std::optional<StorePool::Lease> held;
  {
    StoreResult<StorePool::Lease> lease = pool.Acquire();
    ASSERT_TRUE(lease);
    held.emplace(std::move(*lease));
  }
  auto waiter = std::async(std::launch::async, [&pool] { return pool.Acquire().has_value(); });
  AwaitWaiting(pool, 1);
  held->Discard();
  EXPECT_TRUE(waiter.get());
}

TEST_F(StorePoolTest, AFailedOpenFreesItsPlace) {
  StoreOptions missing = Options();
  missing.path = dir_.File("missing.db");  // the pool never creates a database
  StorePool pool(missing, 1, 0ms);
  for (int i = 0; i < 3; ++i) {
    StoreResult<StorePool::Lease> lease = pool.Acquire();
    ASSERT_FALSE(lease);
    EXPECT_NE(lease.error().kind(), StoreError::Kind::kBusy) << lease.error().what();
  }
}

}  // namespace
}  // namespace allocation_relay
