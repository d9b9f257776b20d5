#include "support/epoll_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <stdexcept>

namespace allocation_relay::testing {
namespace {

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

// Bytes of a complete request at the start of `in` (0 if incomplete), with its target and body.
std::size_t ParseRequest(const std::string& in, std::string_view& target, std::string_view& body) {
  std::size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  std::string_view head(in.data(), end);
  std::size_t length = 0;
  for (std::size_t p = head.find("\r\n"); p != std::string_view::npos;
       p = head.find("\r\n", p + 2)) {
    std::string_view line = head.substr(p + 2, head.find("\r\n", p + 2) - (p + 2));
    constexpr std::string_view kName = "content-length:";
    if (line.size() > kName.size() && strncasecmp(line.data(), kName.data(), kName.size()) == 0) {
      length = std::strtoul(std::string(line.substr(kName.size())).c_str(), nullptr, 10);
    }
  }
  if (in.size() < end + 4 + length) return 0;
  std::size_t sp1 = head.find(' ');
  std::size_t sp2 = head.find(' ', sp1 + 1);
  target = head.substr(sp1 + 1, sp2 - sp1 - 1);
  body = std::string_view(in.data() + end + 4, length);
  return end + 4 + length;
}

}  // namespace

EpollReceiver::EpollReceiver(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 1024) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("EpollReceiver: cannot listen on a loopback port");
  }
  port_ = ntohs(addr.sin_port);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (int fd : {listen_fd_, stop_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  thread_ = std::thread([this] { Run(); });
}

EpollReceiver::~EpollReceiver() {
  std::uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof one) < 0) std::abort();
  thread_.join();
  close(stop_fd_);
  close(epoll_fd_);
  close(listen_fd_);
}

void EpollReceiver::Run() {
  std::map<int, std::string> buffers;  // per connection: bytes not yet parsed
  epoll_event events[64];
  char chunk[65536];
  for (;;) {
    int n = epoll_wait(epoll_fd_, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == stop_fd_) {
        for (auto& [c, _] : buffers) close(c);
        return;
      }
      if (fd == listen_fd_) {
        for (int c;
             (c = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = c;
          epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c, &ev);
          buffers[c];
        }
        continue;
      }
      std::string& in = buffers[fd];
      bool closed = false;
      for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got > 0) {
          in.append(chunk, static_cast<std::size_t>(got));
          continue;
        }
        closed = got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
      std::string_view target, body;
      while (std::size_t used = ParseRequest(in, target, body)) {
        handler_(target, body);
        // Small responses on loopback: the socket buffer takes them whole.
        if (send(fd, kResponse.data(), kResponse.size(), MSG_NOSIGNAL) < 0) closed = true;
        in.erase(0, used);
      }
      if (closed) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        buffers.erase(fd);
      }
    }
  }
}

}  // namespace allocation_relay::testing
