// SeedOutbox: fills a new database with allocation requests and their queued `create` events,
// fast (raw SQL in one transaction, synchronous off): a benchmark's starting point.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_OUTBOX_SEED_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_OUTBOX_SEED_H_

#include <string>

namespace allocation_relay::testing {

// `requests` requests (one allocation each) spread over warehouses 1..`warehouses` by id, each
// `allocated` with one unbatched `create` event. Creates the file (latest schema) at `path`.
void SeedOutbox(const std::string& path, int requests, int warehouses);

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_OUTBOX_SEED_H_
