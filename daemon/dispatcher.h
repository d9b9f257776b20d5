// Dispatcher: the allocation-dispatcherd service object.
//
// Delivers the webhook outbox to warehouses (DeliveryLoop) and expires requests (ExpiryWorker),
// SPEC section 4; deletes what retention no longer keeps (Pruner, SPEC section 9).
// Start/Reload/Stop are called from the main thread only.
#ifndef ALLOCATION_RELAY_DAEMON_DISPATCHER_H_
#define ALLOCATION_RELAY_DAEMON_DISPATCHER_H_

#include <memory>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/service.h"
#include "allocation_relay/store.h"
#include "delivery_loop.h"
#include "expiry_worker.h"
#include "pruner.h"
#include "status_server.h"

namespace allocation_relay {

class Dispatcher final : public ServiceRunner {
 public:
  // `clock` must outlive the Dispatcher.
  Dispatcher(std::shared_ptr<const Config> config, const Clock& clock);
  ~Dispatcher() override;

  // Opens (and migrates) the database and starts the workers. Throws StoreError.
  void Start() override;
  // Takes new warehouses, rules, keys and retention; the store path is fixed until restart.
  void Reload(std::shared_ptr<const Config> config) override;
  // Stops work in flight and releases the database. Idempotent.
  void Stop() override;

 private:
  std::shared_ptr<const Config> config_;
  const Clock& clock_;
  std::unique_ptr<ExpiryWorker> expiry_;
  std::unique_ptr<DeliveryLoop> delivery_;
  std::unique_ptr<Pruner> pruner_;  // outlives status_, which reads its counters
  std::unique_ptr<StatusServer> status_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_DISPATCHER_H_
