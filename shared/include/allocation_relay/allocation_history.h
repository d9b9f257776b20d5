// AllocationHistory: everything recorded about one allocation, read for the operator's
// `history` command and the console's allocation page: the allocation with its requests and
// checks, the outbox events about them, the deliveries that carried those events and each
// delivery's attempts.
//
// A plain value; ReadAllocationHistory runs several reads on the caller's Store (so several
// snapshots: a delivery recorded between them may show one attempt more than its count).
#ifndef ALLOCATION_RELAY_ALLOCATION_HISTORY_H_
#define ALLOCATION_RELAY_ALLOCATION_HISTORY_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "allocation_relay/domain.h"
#include "allocation_relay/store.h"

namespace allocation_relay {

struct AllocationHistory {
  Allocation allocation;
  std::vector<OutboxEvent> events;  // about its requests and checks, oldest first
  struct CarriedBy {
    Delivery delivery;                      // without its document
    std::vector<DeliveryAttempt> attempts;  // oldest first; empty unless asked for
  };
  std::vector<CarriedBy> deliveries;  // those its events went into, by id
};

// nullopt for an unknown order. With `scope`, only the requests, checks and events of its
// warehouses are kept, and their deliveries; `with_attempts` reads each delivery's attempts.
StoreResult<std::optional<AllocationHistory>> ReadAllocationHistory(Store& store,
                                                                    std::int64_t order_number,
                                                                    const WarehouseScope& scope,
                                                                    bool with_attempts);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_ALLOCATION_HISTORY_H_
