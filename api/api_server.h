// ApiServer: the allocation-api service object.
//
// Serves the Order-API-compatible endpoints (SPEC section 3). For now it opens the shared
// database (running migrations) and idles; the HTTP endpoints come with the API issue.
// Start/Reload/Stop are called from the main thread only.
#ifndef ALLOCATION_RELAY_API_API_SERVER_H_
#define ALLOCATION_RELAY_API_API_SERVER_H_

#include <memory>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/store.h"

namespace allocation_relay {

class ApiServer {
 public:
  // `clock` must outlive the server.
  ApiServer(std::shared_ptr<const Config> config, const Clock& clock);
  ~ApiServer();

  // Opens the database. Throws StoreError if it cannot be opened or migrated.
  void Start();
  // Takes new keys, warehouses and rules; listen address and store path need a restart.
  void Reload(std::shared_ptr<const Config> config);
  // Finishes requests in flight and releases the database. Idempotent.
  void Stop();

 private:
  std::shared_ptr<const Config> config_;
  const Clock& clock_;
  std::unique_ptr<Store> store_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_API_SERVER_H_
