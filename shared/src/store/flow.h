// The allocation flow's rules (SPEC sections 2 and 12), written once over StoreTransaction:
// intake, confirm, reject, check answers, expiry and cancel, each the body of one write. Every
// function fills its result and returns whether the write is kept (StoreBackend::Write's contract);
// a race lost to another process shows as a conditional move that changed nothing, and is undone.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_FLOW_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_FLOW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "allocation_relay/store.h"
#include "transaction.h"

namespace allocation_relay::flow {

// What an intake needs that does not need the database, prepared before the write (outside
// the group commit's serial part).
struct Intake {
  explicit Intake(const NewAllocation& allocation);
  const NewAllocation& allocation;
  std::string groups_json;
  std::string lines_json;
  std::vector<OrderLine> lines;  // as stored: in line id order
};

// Creates the allocation and its first group's requests; a duplicate order changes nothing.
bool CreateAllocation(StoreTransaction& t, const Intake& intake, TimePoint now,
                      const WarehouseCatalog& catalog, CreateResult& result);
// Confirms a confirmable request of an open allocation and outdates the others.
bool ConfirmRequest(StoreTransaction& t, std::int64_t request_id, const WarehouseScope& scope,
                    TimePoint now, UpdateResult& result);
// Rejects a confirmable request; the flow moves on if its group has nothing pending left.
bool RejectRequest(StoreTransaction& t, std::int64_t request_id, const WarehouseScope& scope,
                   TimePoint now, const WarehouseCatalog& catalog, UpdateResult& result);
// Times out up to `limit` expired pending requests and moves their allocations on.
bool ExpireDue(StoreTransaction& t, TimePoint now, const WarehouseCatalog& catalog, int limit,
               ExpiryResult& result);
// Cancels an open allocation, outdates its non-final requests and rejects its asked checks.
bool CancelAllocation(StoreTransaction& t, std::int64_t order_number, TimePoint now,
                      CancelResult& result);
// A check-first warehouse's answer (POST /check-first). Accepting confirms the allocation by
// that warehouse and closes everything else of it; rejecting moves the flow on once its group
// has no check asked.
bool AnswerCheck(StoreTransaction& t, const CheckAnswer& answer, const WarehouseScope& scope,
                 TimePoint now, const WarehouseCatalog& catalog, CheckResult& result);

}  // namespace allocation_relay::flow

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_FLOW_H_
