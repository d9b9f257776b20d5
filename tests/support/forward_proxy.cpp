#include "support/forward_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace allocation_relay::testing {
namespace {

bool SendAll(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

int ConnectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The port of "host:port" (80 without one).
int PortOf(const std::string& authority, int fallback) {
  std::size_t colon = authority.rfind(':');
  if (colon == std::string::npos || authority.find(']', colon) != std::string::npos)
    return fallback;
  return std::atoi(authority.c_str() + colon + 1);
}

// Copies bytes both ways until either side closes.
void Tunnel(int a, int b) {
  char buffer[16384];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (::poll(fds, 2, 10000) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = ::recv(fds[i].fd, buffer, sizeof buffer, 0);
      if (n <= 0 || !SendAll(fds[1 - i].fd, buffer, static_cast<std::size_t>(n))) return;
    }
  }
}

}  // namespace

ForwardProxy::ForwardProxy(std::optional<int> upstream) : upstream_(upstream) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("ForwardProxy: cannot listen on loopback");
  }
  port_ = ntohs(a.sin_port);
  accept_thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) continue;
      std::lock_guard lock(mu_);
      open_fds_.push_back(client);
      threads_.emplace_back([this, client] { Serve(client); });
    }
  });
}

ForwardProxy::~ForwardProxy() {
  stop_ = true;
  accept_thread_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
  for (int fd : open_fds_) ::close(fd);
  ::close(fd_);
}

std::vector<std::string> ForwardProxy::Targets() {
  std::lock_guard lock(mu_);
  return targets_;
}

std::vector<std::string> ForwardProxy::Authorizations() {
  std::lock_guard lock(mu_);
  return authorizations_;
}

void ForwardProxy::Serve(int client) {
  // The request head.
  std::string in;
  char buffer[16384];
  std::size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
    if (n <= 0) return;
    in.append(buffer, static_cast<std::size_t>(n));
  }
  std::string head = in.substr(0, head_end + 2);  // every line ends in \r\n
  std::string rest = in.substr(head_end + 4);
  std::size_t line_end = head.find("\r\n");
  std::string request_line = head.substr(0, line_end);
  std::size_t sp1 = request_line.find(' ');
  std::size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string::npos || sp2 <= sp1) return;
  const std::string method = request_line.substr(0, sp1);
  const std::string target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string version = request_line.substr(sp2 + 1);

  // Headers, without the proxy's own.
  std::string headers;
  std::string authorization;
  std::size_t content_length = 0;
  for (std::size_t pos = line_end + 2; pos < head.size();) {
    std::size_t end = head.find("\r\n", pos);
    std::string line = head.substr(pos, end - pos);
    pos = end + 2;
    std::size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (strcasecmp(name.c_str(), "Proxy-Authorization") == 0) {
      authorization = value;
      continue;
    }
    if (strcasecmp(name.c_str(), "Proxy-Connection") == 0 ||
        strcasecmp(name.c_str(), "Connection") == 0) {
      continue;
    }
    if (strcasecmp(name.c_str(), "Content-Length") == 0) content_length = std::stoul(value);
    headers += line + "\r\n";
  }
  {
    std::lock_guard lock(mu_);
    targets_.push_back(target);
    authorizations_.push_back(authorization);
  }

  if (method == "CONNECT") {
    int upstream = ConnectTo(upstream_.value_or(PortOf(target, 443)));
    if (upstream < 0) {
      SendAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 47);
      return;
    }
    ++tunnels_;
    const std::string ok = "HTTP/1.1 200 Connection Established\r\n\r\n";
    if (SendAll(client, ok.data(), ok.size()) &&
        (rest.empty() || SendAll(upstream, rest.data(), rest.size()))) {
      Tunnel(client, upstream);
    }
    ::close(upstream);
    ::shutdown(client, SHUT_RDWR);
    return;
  }

  // Absolute form: "http://host:port/path".
  if (!target.starts_with("http://")) return;
  std::size_t path_start = target.find('/', 7);
  std::string authority = target.substr(7, path_start - 7);
  std::string path = path_start == std::string::npos ? "/" : target.substr(path_start);
  while (rest.size() < content_length) {
    ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
    if (n <= 0) return;
    rest.append(buffer, static_cast<std::size_t>(n));
  }
  int upstream = ConnectTo(upstream_.value_or(PortOf(authority, 80)));
  if (upstream < 0) {
    SendAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 47);
    return;
  }
  ++requests_;
  std::string out = method + " " + path + " " + version + "\r\n" + headers +
                    "Connection: close\r\n\r\n" + rest.substr(0, content_length);
  if (SendAll(upstream, out.data(), out.size())) {
    ssize_t n;
    while ((n = ::recv(upstream, buffer, sizeof buffer, 0)) > 0) {
      if (!SendAll(client, buffer, static_cast<std::size_t>(n))) break;
    }
  }
  ::close(upstream);
  ::shutdown(client, SHUT_RDWR);
}

}  // namespace allocation_relay::testing
