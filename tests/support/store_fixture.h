// StoreTest: a fresh test database (support/test_database.h: a file in a temp directory, or a
// database of its own on the PostgreSQL test cluster), a ManualClock and three warehouses
// (3 Amsterdam 1h, 4 Tokyo 1h, 7 Central 2h), for tests of the store's transitions.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_STORE_FIXTURE_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_STORE_FIXTURE_H_

#include <gtest/gtest.h>

#include "allocation_relay/clock.h"
#include "allocation_relay/store.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay::testing {

// 2024-03-18 08:00:00 UTC.
inline constexpr std::int64_t kStartMicros = 1710748800'000000;

class StoreTest : public ::testing::Test {
 protected:
  StoreTest()
      : clock_(FromUnixMicros(kStartMicros)),
        catalog_({{3, "Amsterdam", std::chrono::hours(1)},
                  {4, "Tokyo", std::chrono::hours(1)},
                  {7, "Central", std::chrono::hours(2)}}) {
    store_ = Store::Open(Options());
  }

  // SQLite: relay.db in dir_, synchronous normal, busy_timeout 5 s.
  StoreOptions Options() const { return database_.options(); }

  // Creates an allocation for order `number` and returns its requests by warehouse id.
  std::int64_t Create(std::int64_t number, PriorityGroups groups) {
    NewAllocation a{
        {"486e13eaaa65d5ff1e87c997b5dce54e", number}, {{73, 5, 1}, {74, 1, 2}}, std::move(groups)};
    auto r = store_->CreateAllocation(a, clock_.Now(), catalog_);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what());
    EXPECT_EQ(r->outcome, CreateResult::Outcome::kCreated);
    return r->allocation_id;
  }

  Allocation Get(std::int64_t number) {
    auto a = store_->GetAllocationByOrder(number);
    EXPECT_TRUE(a.has_value() && a->has_value());
    return **a;
  }

  // The request of `number` for `warehouse`; fails the test if there is none.
  AllocationRequest RequestOf(std::int64_t number, std::int64_t warehouse) {
    Allocation a = Get(number);
    for (const AllocationRequest& r : a.requests) {
      if (r.warehouse_id == warehouse) return r;
    }
    ADD_FAILURE() << "no request for warehouse " << warehouse;
    return {};
  }

  bool HasRequest(std::int64_t number, std::int64_t warehouse) {
    Allocation a = Get(number);
    for (const AllocationRequest& r : a.requests) {
      if (r.warehouse_id == warehouse) return true;
    }
    return false;
  }

  UpdateResult Confirm(std::int64_t request_id, WarehouseScope scope = {}) {
    auto r = store_->ConfirmRequest(request_id, scope, clock_.Now());
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what());
    return *r;
  }

  UpdateResult Reject(std::int64_t request_id, WarehouseScope scope = {}) {
    auto r = store_->RejectRequest(request_id, scope, clock_.Now(), catalog_);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().what());
    return *r;
  }

  TempDir dir_;
  TestDatabase database_{dir_};  // before store_: outlives it
  ManualClock clock_;
  WarehouseCatalog catalog_;
  std::unique_ptr<Store> store_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_STORE_FIXTURE_H_
