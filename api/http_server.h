// HttpServer: serves an ApiService over HTTP with cpp-httplib (the only httplib user in api/).
//
// Owns the listening socket, a worker pool of api.threads threads and the accept thread.
// TCP_NODELAY is on (otherwise every response waits ~40 ms for Nagle). Bodies over
// api.max_body get 413; an exception escaping a handler becomes a logged JSON 500.
// Start() and Stop() are called from one thread.
#ifndef ALLOCATION_RELAY_API_HTTP_SERVER_H_
#define ALLOCATION_RELAY_API_HTTP_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "allocation_relay/config.h"
#include "api_service.h"

namespace httplib {
class Server;
}

namespace allocation_relay {

class HttpServer {
 public:
  // `service` must outlive the server.
  HttpServer(ApiService& service, const ApiConfig& config);
  ~HttpServer();

  // Binds the listen address (port 0: the OS picks one) and starts serving. Throws
  // std::runtime_error if the address cannot be bound.
  void Start();
  // The bound port (after Start).
  int port() const { return port_; }
  // Stops accepting, lets requests in flight finish, joins the threads. Idempotent.
  void Stop();

 private:
  ApiService& service_;
  ApiConfig config_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_HTTP_SERVER_H_
