// HttpServer: an HTTP/1.1 server for many keep-alive connections (SPEC section 8), used by the
// API and by the dispatcher's status port. cpp-httplib parses requests and writes answers; the
// connections are ours.
//
// cpp-httplib alone gives each connection a worker thread for as long as it stays open, so a
// few idle keep-alive clients stop everyone else. Here one event thread (epoll) owns every open
// connection: it reads what arrives without blocking, and only a complete request (head and
// body) goes to a worker. Workers never wait on the network: a handler's answer is written
// without blocking, and whatever the socket does not take at once is flushed by the event
// thread. So idle, slow (one byte a second) and busy connections cost a little memory each,
// never a worker, and `max_connections` bounds them: past it, a new connection is closed at
// once. A connection on which nothing arrives for `idle_timeout` (between requests or inside
// one) is closed.
//
// Stop() closes the listening socket and every connection without a request in progress at
// once, lets the requests already received finish (their answers say `Connection: close`), and
// returns when they are written (or the write timeout passed).
//
// Threads: Start() and Stop() from one thread; the handler runs on the worker threads, several
// at once. Counters are safe to read from any thread.
#ifndef ALLOCATION_RELAY_HTTP_SERVER_H_
#define ALLOCATION_RELAY_HTTP_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "allocation_relay/config.h"

namespace allocation_relay {

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string path;    // without the query
  std::string target;  // the raw request target, query included
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header of that name (case-insensitive), or "" if absent.
  std::string_view Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpServerOptions {
  std::string name = "http";  // in log lines
  // Logged once bound, followed by " host:port" ("api listening on 127.0.0.1:8080").
  std::string announce = "http listening on";
  ListenAddress listen;
  int workers = 4;
  int max_connections = 1024;
  std::chrono::milliseconds idle_timeout{5000};
  // An answer the client does not read within this is dropped with its connection.
  std::chrono::milliseconds write_timeout{10000};
  std::size_t max_body = 1048576;
  // The body of an error the server answers itself (400, 413, 414, 431, 500, ...).
  std::function<std::string(int status)> error_body;
  // HTTPS only when both are set (PEM files: the certificate chain and its private key); the
  // handshake runs on the event thread like any other read. Empty: plain HTTP.
  std::string tls_cert;
  std::string tls_key;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  struct Counters {
    std::int64_t open = 0;        // connections open now
    std::int64_t accepted = 0;    // since start
    std::int64_t refused = 0;     // closed at once: max_connections reached
    std::int64_t timed_out = 0;   // closed after idle_timeout
    std::int64_t tls_failed = 0;  // closed by a failed TLS handshake (HTTPS servers)
  };

  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listen address (port 0: the OS picks one), raises the open-files limit if
  // max_connections needs it, and serves. Throws std::runtime_error if the address cannot be
  // bound.
  void Start();
  // The bound port (after Start).
  int port() const;
  // See above. Idempotent.
  void Stop();
  // Re-reads the certificate and key (HTTPS servers only): connections accepted from now on
  // use the new pair, open ones keep the pair they started with. Returns false and keeps the
  // running pair if a file cannot be read or parsed or the key does not match; *error says
  // which file and why. Safe from any thread.
  bool ReloadTls(const std::string& cert, const std::string& key, std::string* error);

  Counters counters() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Prometheus text for `counters`: allocation_relay_http_connections (open now) and
// allocation_relay_http_connections_total{outcome="accepted"|"refused"|"timed_out"|"tls_failed"}.
void WriteConnectionMetrics(std::ostream& out, const HttpServer::Counters& counters);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_HTTP_SERVER_H_
