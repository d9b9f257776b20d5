// DeliveryStoreTest: StoreTest (support/store_fixture.h) with the dispatcher's side of the store
// at hand: rounds of RecordAndTake, deliveries formed, recorded and read back, attempts as the
// dispatcher makes them. For tests of deliveries and of what recording them writes.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_DELIVERY_FIXTURE_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_DELIVERY_FIXTURE_H_

#include <gtest/gtest.h>

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "allocation_relay/store.h"
#include "support/store_fixture.h"

namespace allocation_relay::testing {

class DeliveryStoreTest : public StoreTest {
 protected:
  // One round. The document lists "event id:order number;" per event.
  std::vector<Store::DeliveryTake> Take(std::vector<Store::DeliveryWant> wants,
                                        std::vector<Store::AttemptRecord> records = {},
                                        std::vector<Store::LeaseChange> leases = {}) {
    return TakeAs("dispatcher", std::move(wants), std::move(records), std::move(leases));
  }
  // The same for the dispatcher (claimant) `claimant`.
  std::vector<Store::DeliveryTake> TakeAs(const std::string& claimant,
                                          std::vector<Store::DeliveryWant> wants,
                                          std::vector<Store::AttemptRecord> records = {},
                                          std::vector<Store::LeaseChange> leases = {}) {
    auto render = [](std::span<const OutboxEvent> events,
                     std::span<const AllocationRequest> requests,
                     std::span<const CheckEventSubject>) {
      std::string doc;
      for (std::size_t i = 0; i < events.size(); ++i) {
        doc += std::to_string(events[i].id) + ":" + std::to_string(requests[i].order.number) + ";";
      }
      return doc;
    };
    auto taken = store_->RecordAndTake(records, leases, wants, clock_.Now(), render, claimant);
    EXPECT_TRUE(taken.has_value()) << taken.error().what();
    return taken ? *taken : std::vector<Store::DeliveryTake>{};
  }
  Store::DeliveryWant Want(std::int64_t w, int slots, int max_events, bool strict = true,
                           std::vector<std::int64_t> held = {}, std::int64_t after_event = 0) {
    return {w,
            slots,
            max_events,
            strict,
            clock_.Now() + std::chrono::seconds(30),
            std::move(held),
            false,
            after_event};
  }
  // Forms one new delivery (not stored) of up to 100 of warehouse `w`'s events.
  Delivery Form(std::int64_t w) {
    auto takes = Take({Want(w, 1, 100)});
    EXPECT_EQ(takes.at(0).claimed.size(), 1u);
    return takes.at(0).claimed.at(0);
  }
  // A finished call of `d`, as the dispatcher records it (a new one is stored with it).
  Store::AttemptRecord Rec(const Delivery& d, int status, AttemptOutcome outcome,
                           TimePoint next = {}) {
    Store::AttemptRecord r{Attempt(d, status), outcome, next, d.request_ids, {}};
    if (d.id == 0) r.formed = d;
    return r;
  }
  // Records a call of `d`; returns the delivery as stored.
  Delivery Record(const Delivery& d, int status, AttemptOutcome outcome, TimePoint next = {}) {
    Take({}, {Rec(d, status, outcome, next)});
    return Stored(d);
  }
  // `n` pending deliveries of one event each of warehouse `w`, stored (their first calls
  // failed) and due now; formed in one round, before any of them is pending.
  std::vector<Delivery> Pending(std::int64_t w, int n) {
    auto formed = Take({Want(w, n, 1, false)})[0].claimed;
    EXPECT_EQ(formed.size(), static_cast<std::size_t>(n));
    std::vector<Store::AttemptRecord> failed;
    for (const Delivery& d : formed)
      failed.push_back(Rec(d, 500, AttemptOutcome::kRetry, clock_.Now()));
    Take({}, failed);
    std::vector<Delivery> stored;
    for (const Delivery& d : formed) stored.push_back(Stored(d));
    return stored;
  }
  // The stored delivery with `d`'s uid.
  Delivery Stored(const Delivery& d) {
    auto all = store_->ListDeliveries(std::nullopt, d.warehouse_id, 1000);
    EXPECT_TRUE(all.has_value());
    for (const Delivery& s : *all) {
      if (s.uid == d.uid) return s;
    }
    ADD_FAILURE() << "delivery " << d.uid << " is not stored";
    return d;
  }
  Delivery Read(const Delivery& d) { return **store_->GetDelivery(d.id); }
  // The ids of warehouse `w`'s unbatched events.
  std::vector<std::int64_t> Unbatched(std::int64_t w) {
    std::vector<std::int64_t> ids;
    auto events = store_->ListUnbatchedEvents(w, 1000);
    EXPECT_TRUE(events.has_value());
    for (const OutboxEvent& e : *events) ids.push_back(e.id);
    return ids;
  }
  std::vector<std::int64_t> CountByState() {  // pending, succeeded, dead
    auto by_state = store_->CountDeliveriesByState();
    std::vector<std::int64_t> n;
    for (const auto& [state, count] : by_state.value()) n.push_back(count);
    return n;
  }

  DeliveryAttempt Attempt(const Delivery& d, int status) {
    DeliveryAttempt a;
    a.delivery_id = d.id;
    a.attempt = d.attempt_count + 1;
    a.started_at = clock_.Now();
    a.duration = std::chrono::microseconds(1500);
    a.http_status = status;
    a.error = status == 0 ? "connection refused" : "";
    a.response_head = std::string("ok\0bytes", 8);
    return a;
  }
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_DELIVERY_FIXTURE_H_
