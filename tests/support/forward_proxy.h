// ForwardProxy: an HTTP forward proxy for tests, on loopback at a port the OS picks. It takes
// absolute-form requests ("POST http://host:port/path HTTP/1.1", for http:// targets) and
// CONNECT tunnels (for https:// targets), a thread per connection, and counts both. With an
// `upstream` port every target goes to 127.0.0.1:<upstream> instead of its own host, so a test
// can name a public-looking host (e.g. 203.0.113.7) that only the proxy "reaches".
//
// Thread-safe. Plain sockets; a forwarded request is sent upstream with "Connection: close" and
// the answer relayed until upstream closes, then the client's connection is closed too.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_FORWARD_PROXY_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_FORWARD_PROXY_H_

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace allocation_relay::testing {

class ForwardProxy {
 public:
  explicit ForwardProxy(std::optional<int> upstream = std::nullopt);
  ~ForwardProxy();
  ForwardProxy(const ForwardProxy&) = delete;
  ForwardProxy& operator=(const ForwardProxy&) = delete;

  int port() const { return port_; }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }  // absolute-form requests forwarded
  int tunnels() const { return tunnels_; }    // CONNECT tunnels opened
  // The request targets seen, in order ("http://host:port/path" or "host:port" of a CONNECT).
  std::vector<std::string> Targets();
  // The Proxy-Authorization header values seen (empty strings for requests without one).
  std::vector<std::string> Authorizations();

 private:
  void Serve(int client);

  std::optional<int> upstream_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<int> tunnels_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> targets_;
  std::vector<std::string> authorizations_;
  std::vector<int> open_fds_;  // closed on destruction, to end the connections' threads
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_FORWARD_PROXY_H_
