// StatusServer: GET /health and GET /metrics of the dispatcher on dispatcher.listen, served by
// cpp-httplib (the daemon's only httplib user). /health: 200 {"status":"ok"} while the database
// answers at its path, else 503. /metrics: Prometheus text: queue depth per warehouse,
// deliveries by state, disabled webhooks, attempts by outcome, delivery latency.
// Start/Stop from one thread; requests are served on the server's own threads.
#ifndef ALLOCATION_RELAY_DAEMON_STATUS_SERVER_H_
#define ALLOCATION_RELAY_DAEMON_STATUS_SERVER_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "delivery_loop.h"

namespace httplib {
class Server;
}

namespace allocation_relay {

class StatusServer {
 public:
  // `delivery` must outlive the server.
  StatusServer(StoreOptions options, ListenAddress listen, const DeliveryLoop& delivery);
  ~StatusServer();

  // Binds (port 0: the OS picks one) and serves. Throws std::runtime_error.
  void Start();
  int port() const { return port_; }
  void Stop();

 private:
  std::string Health(int& status);
  std::string Metrics();

  StoreOptions options_;
  ListenAddress listen_;
  const DeliveryLoop& delivery_;
  std::mutex store_mu_;  // one connection, used by one request at a time
  std::unique_ptr<Store> store_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_STATUS_SERVER_H_
