// Receiver: a webhook receiver for tests, an HTTP server on loopback (port chosen by the OS)
// that records every POST and answers with scripted statuses. Thread-safe.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_RECEIVER_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_RECEIVER_H_

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/loopback_server.h"

namespace allocation_relay::testing {

class Receiver {
 public:
  struct Call {
    std::string path;
    std::string body;
    httplib::Headers headers;
    int status = 0;  // what the receiver answered
    std::string Header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? "" : it->second;
    }
  };

  Receiver();
  ~Receiver();

  int port() const { return loopback_->port(); }
  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  // The next answers, in order; afterwards `status` (default 200) with `retry_after`.
  void Script(std::vector<int> statuses);
  void SetDefault(int status, const std::string& retry_after = "");
  // The next `calls` calls wait `delay` before answering (a slow or hanging warehouse).
  void Delay(std::chrono::milliseconds delay, int calls);
  std::vector<Call> Calls();
  bool WaitForCalls(std::size_t n, std::chrono::milliseconds timeout);

 private:
  httplib::Server server_;
  std::unique_ptr<LoopbackServer> loopback_;
  std::mutex mu_;
  std::vector<Call> calls_;
  std::deque<int> script_;
  int default_status_ = 200;
  std::string retry_after_;
  std::chrono::milliseconds delay_{0};
  int delayed_calls_ = 0;
};

// A TCP listener on loopback that accepts connections and resets them at once (RST), like a
// crashing warehouse. Thread-safe.
class ResettingServer {
 public:
  ResettingServer();
  ~ResettingServer();
  int port() const { return port_; }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_RECEIVER_H_
