// PgEventSignal: EventSignal over LISTEN allocation_relay_events on a connection of its own
// (PgBackend::Write notifies that channel when a write queued outbox events). Not thread-safe.
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_EVENT_SIGNAL_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_EVENT_SIGNAL_H_

#include "allocation_relay/store.h"
#include "pg_connection.h"

namespace allocation_relay::postgresql {

inline constexpr const char* kEventChannel = "allocation_relay_events";

class PgEventSignal final : public EventSignal {
 public:
  // Connects and listens. Throws StoreError.
  explicit PgEventSignal(const StoreOptions& options);
  bool Wait(std::chrono::milliseconds timeout) override;

 private:
  Connection c_;
};

}  // namespace allocation_relay::postgresql

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_EVENT_SIGNAL_H_
