// ApiServer: the allocation-api service object: an ApiService served by an HttpServer (api.listen,
// api.threads workers, api.max_connections, api.idle_timeout, api.max_body).
// Start/Reload/Stop are called from the main thread only.
#ifndef ALLOCATION_RELAY_API_API_SERVER_H_
#define ALLOCATION_RELAY_API_API_SERVER_H_

#include <memory>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/http_server.h"
#include "allocation_relay/service.h"
#include "api_service.h"

namespace allocation_relay {

class ApiServer final : public ServiceRunner {
 public:
  // `clock` must outlive the server.
  ApiServer(std::shared_ptr<const Config> config, const Clock& clock);
  ~ApiServer() override;

  // Opens (and migrates) the database, then binds and serves. Throws StoreError if the
  // database cannot be opened, std::runtime_error if the address cannot be bound.
  void Start() override;
  // Takes new keys, warehouses, rules and time zone; listen address and store path need a
  // restart (a warning says so).
  void Reload(std::shared_ptr<const Config> config) override;
  // Stops accepting, finishes requests in flight. Idempotent.
  void Stop() override;

  int port() const { return http_.port(); }
  HttpServer::Counters connections() const { return http_.counters(); }

 private:
  std::shared_ptr<const Config> config_;
  ApiService service_;
  HttpServer http_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_API_SERVER_H_
