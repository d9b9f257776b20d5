// LoopbackServer: runs a configured httplib::Server on 127.0.0.1 at a port the OS picks, on a
// thread of its own, from construction until destruction. The server must outlive it.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_LOOPBACK_SERVER_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_LOOPBACK_SERVER_H_

#include <httplib.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace allocation_relay::testing {

class LoopbackServer {
 public:
  explicit LoopbackServer(httplib::Server& server) : server_(server) {
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("cannot bind a loopback port");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // httplib 0.11 has no wait_until_ready(); stop() is lost before the loop runs.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LoopbackServer() {
    server_.stop();
    thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }

 private:
  httplib::Server& server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_LOOPBACK_SERVER_H_
