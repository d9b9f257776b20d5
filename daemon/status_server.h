// StatusServer: GET /health and GET /metrics of the dispatcher on dispatcher.listen, served by
// the shared HttpServer: 2 workers, up to kMaxConnections open connections (idle ones never block
// a scraper or a health check), closed after api.idle_timeout of silence. /health: 200
// {"status":"ok"} while the database answers at its path, else 503. /metrics: Prometheus text:
// queue depth per warehouse, deliveries by state, disabled webhooks, attempts by outcome,
// delivery latency, rows pruned by kind and the age of the oldest finished allocation kept, the
// port's connections. Start/Stop from one thread; requests are served on the server's own
// threads.
#ifndef ALLOCATION_RELAY_DAEMON_STATUS_SERVER_H_
#define ALLOCATION_RELAY_DAEMON_STATUS_SERVER_H_

#include <memory>
#include <mutex>
#include <string>

#include "allocation_relay/config.h"
#include "allocation_relay/http_server.h"
#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"
#include "delivery_loop.h"
#include "pruner.h"

namespace allocation_relay {

class StatusServer {
 public:
  static constexpr int kMaxConnections = 64;

  // `delivery` and `pruner` must outlive the server.
  StatusServer(StoreOptions options, ListenAddress listen, std::chrono::milliseconds idle_timeout,
               const DeliveryLoop& delivery, const Pruner& pruner);
  ~StatusServer();

  // Binds (port 0: the OS picks one) and serves. Throws std::runtime_error.
  void Start();
  int port() const { return http_.port(); }
  void Stop();

 private:
  HttpResponse Handle(const HttpRequest& request);
  std::string Health(int& status);
  std::string Metrics();

  StoreOptions options_;
  const DeliveryLoop& delivery_;
  const Pruner& pruner_;
  Mutex store_mu_;  // one connection, used by one request at a time
  std::unique_ptr<Store> store_ GUARDED_BY(store_mu_);
  HttpServer http_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_STATUS_SERVER_H_
