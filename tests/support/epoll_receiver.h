// EpollReceiver: a minimal HTTP/1.1 receiver for benchmarks, on 127.0.0.1 at a port the OS
// picks. One thread, epoll, keep-alive; every request is answered `200 ok` and its body handed to
// a callback on that thread. It exists because the benchmarks must measure the sender, not the
// receiver: a thread-per-connection httplib server on these 2-core machines gave baselines that
// varied tenfold from run to run, and Debian's httplib answers 413 to form bodies over 8 KB.
//
// Not a general server: no chunked bodies, no pipelining beyond what arrives in order, no TLS.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_EPOLL_RECEIVER_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_EPOLL_RECEIVER_H_

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace allocation_relay::testing {

class EpollReceiver {
 public:
  // Called on the receiver's thread with each request's target and body.
  using Handler = std::function<void(std::string_view target, std::string_view body)>;

  explicit EpollReceiver(Handler handler);
  ~EpollReceiver();
  EpollReceiver(const EpollReceiver&) = delete;
  EpollReceiver& operator=(const EpollReceiver&) = delete;

  int port() const { return port_; }

 private:
  void Run();

  Handler handler_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd that ends Run()
  int port_ = 0;
  std::thread thread_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_EPOLL_RECEIVER_H_
