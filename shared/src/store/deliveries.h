// The rules of webhook deliveries in the store (SPEC section 4), written once over
// StoreTransaction: recording a finished call, and claiming or forming a warehouse's next
// deliveries (strict order, leases, batches). Store::RecordAndTake runs them in one write.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_DELIVERIES_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_DELIVERIES_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "allocation_relay/store.h"
#include "transaction.h"

namespace allocation_relay::deliveries {

// Records `records`, applies `leases`, then claims or forms deliveries for each of `wants`
// (Store::RecordAndTake). Always keeps the write.
bool RecordAndTake(StoreTransaction& t, std::span<const Store::AttemptRecord> records,
                   std::span<const Store::LeaseChange> leases,
                   std::span<const Store::DeliveryWant> wants, TimePoint now,
                   const Store::DocumentRenderer& render, const std::string& claimant,
                   std::vector<Store::DeliveryTake>& takes);

// One dead delivery in `scope` becomes pending, due at `now` (Store::ResendDeadDelivery).
ResendOutcome ResendDeadDelivery(StoreTransaction& t, std::int64_t delivery_id,
                                 const WarehouseScope& scope, TimePoint now);

// Marks `claimant` live for `ttl` from `now` (the lease clock's translation of it) and returns
// the live dispatchers (Store::LiveDispatchers). A `ttl` of zero takes `claimant` out.
std::vector<std::string> LiveDispatchers(StoreTransaction& t, const std::string& claimant,
                                         TimePoint now, Micros ttl);

// A response head as the store keeps it, text on both backends (SPEC section 10): valid UTF-8
// with every NUL byte and every invalid sequence replaced by U+FFFD.
std::string ResponseHeadText(std::string_view bytes);

}  // namespace allocation_relay::deliveries

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_DELIVERIES_H_
