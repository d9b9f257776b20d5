// The retention rules (SPEC section 9), written once over StoreTransaction: what one step of a
// prune pass deletes, and what it never touches.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_RETENTION_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_RETENTION_H_

#include "allocation_relay/store.h"
#include "transaction.h"

namespace allocation_relay::retention {

// Store::PruneStep's body: fills `counts` and `next` (the cursor after this step); returns
// whether the write is kept (false for a dry run).
bool PruneStep(StoreTransaction& t, const RetentionCutoffs& cutoffs, const PruneCursor& cursor,
               int max_allocations, int max_attempts, bool dry_run, PruneCounts& counts,
               PruneCursor& next);

}  // namespace allocation_relay::retention

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_RETENTION_H_
