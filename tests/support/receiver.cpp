#include "support/receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "support/process.h"

namespace allocation_relay::testing {

Receiver::Receiver() {
  server_.set_tcp_nodelay(true);
  // A kept-alive connection holds a worker: enough of them for several dispatchers' connections.
  server_.new_task_queue = [] { return new httplib::ThreadPool(64); };
  server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay{0};
    {
      std::lock_guard lock(mu_);
      if (delayed_calls_ > 0) {
        --delayed_calls_;
        delay = delay_;
      }
    }
    std::this_thread::sleep_for(delay);
    std::lock_guard lock(mu_);
    int status = default_status_;
    if (!script_.empty()) {
      status = script_.front();
      script_.pop_front();
    } else if (!retry_after_.empty()) {
      res.set_header("Retry-After", retry_after_);
    }
    calls_.push_back(Call{req.path, req.body, req.headers, status});
    res.status = status;
    res.set_content("received " + std::to_string(calls_.size()), "text/plain");
  });
  loopback_ = std::make_unique<LoopbackServer>(server_);
}

Receiver::~Receiver() { loopback_.reset(); }  // stop serving before the members go

void Receiver::Script(std::vector<int> statuses) {
  std::lock_guard lock(mu_);
  script_.assign(statuses.begin(), statuses.end());
}

void Receiver::SetDefault(int status, const std::string& retry_after) {
  std::lock_guard lock(mu_);
  default_status_ = status;
  retry_after_ = retry_after;
}

void Receiver::Delay(std::chrono::milliseconds delay, int calls) {
  std::lock_guard lock(mu_);
  delay_ = delay;
  delayed_calls_ = calls;
}

ResettingServer::ResettingServer() {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 16) != 0) {
    throw std::runtime_error("resetting server: cannot listen");
  }
  socklen_t len = sizeof addr;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++accepted_;
      linger hard{1, 0};  // close with RST
      setsockopt(c, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      close(c);
    }
  });
}

ResettingServer::~ResettingServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

std::vector<Receiver::Call> Receiver::Calls() {
  std::lock_guard lock(mu_);
  return calls_;
}

bool Receiver::WaitForCalls(std::size_t n, std::chrono::milliseconds timeout) {
  return WaitFor([&] { return Calls().size() >= n; }, timeout);
}

}  // namespace allocation_relay::testing
