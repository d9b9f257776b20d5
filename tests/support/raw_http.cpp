#include "support/raw_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <thread>

namespace allocation_relay::testing {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string HeaderOf(std::string_view head, std::string_view name) {
  std::size_t at = head.find("\r\n");
  while (at != std::string_view::npos && at + 2 < head.size()) {
    std::size_t start = at + 2;
    std::size_t end = head.find("\r\n", start);
    std::string_view line =
        head.substr(start, end == std::string_view::npos ? head.npos : end - start);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && EqualsIgnoringCase(line.substr(0, colon), name)) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
      }
      return std::string(value);
    }
    at = end;
  }
  return "";
}

// Takes one complete answer off the front of `buffer` into `answer`; false while incomplete.
bool TakeAnswer(std::string& buffer, bool eof, RawAnswer& answer) {
  std::size_t head_end = buffer.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string head = buffer.substr(0, head_end);
  int status = 0;
  if (head.starts_with("HTTP/1.") && head.size() >= 12) status = std::atoi(head.c_str() + 9);
  std::size_t body_start = head_end + 4;
  std::string body;
  std::size_t consumed = 0;
  std::string length = HeaderOf(head, "Content-Length");
  std::string encoding = HeaderOf(head, "Transfer-Encoding");
  if (!length.empty()) {
    std::size_t n = std::strtoull(length.c_str(), nullptr, 10);
    if (buffer.size() < body_start + n) return false;
    body = buffer.substr(body_start, n);
    consumed = body_start + n;
  } else if (EqualsIgnoringCase(encoding, "chunked")) {
    std::size_t at = body_start;
    while (true) {
      std::size_t line_end = buffer.find("\r\n", at);
      if (line_end == std::string::npos) return false;
      std::size_t size = std::strtoull(buffer.c_str() + at, nullptr, 16);
      at = line_end + 2;
      if (size == 0) {
        // Trailers (if any) up to an empty line.
        while (true) {
          std::size_t end = buffer.find("\r\n", at);
          if (end == std::string::npos) return false;
          bool empty = end == at;
          at = end + 2;
          if (empty) break;
        }
        break;
      }
      if (buffer.size() < at + size + 2) return false;
      body += buffer.substr(at, size);
      at += size + 2;
    }
    consumed = at;
  } else if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
    consumed = body_start;
  } else {
    if (!eof) return false;  // the body runs to the end of the connection
    body = buffer.substr(body_start);
    consumed = buffer.size();
  }
  answer.status = status;
  answer.head = std::move(head);
  answer.body = std::move(body);
  buffer.erase(0, consumed);
  return true;
}

}  // namespace

std::string RawAnswer::Header(std::string_view name) const { return HeaderOf(head, name); }

std::string RawAnswer::Describe() const {
  std::string s = "status " + std::to_string(status);
  if (closed) s += ", closed by the server";
  if (timed_out) s += ", timed out";
  if (!head.empty()) s += ", head: " + head;
  if (!body.empty()) s += ", body: " + body.substr(0, 200);
  return s;
}

RawConnection::RawConnection(int port, std::chrono::milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return;
    }
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t len = sizeof error;
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
      close(fd);
      return;
    }
  }
  fd_ = fd;
}

RawConnection::~RawConnection() { Close(); }

RawConnection::RawConnection(RawConnection&& other) noexcept
    : fd_(other.fd_), eof_(other.eof_), buffer_(std::move(other.buffer_)) {
  other.fd_ = -1;
}

RawConnection& RawConnection::operator=(RawConnection&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.fd_;
    eof_ = other.eof_;
    buffer_ = std::move(other.buffer_);
    other.fd_ = -1;
  }
  return *this;
}

void RawConnection::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool RawConnection::Send(std::string_view data) {
  if (fd_ < 0) return false;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!data.empty()) {
    ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, RemainingMs(deadline)) != 1) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool RawConnection::Drip(std::string_view data, std::chrono::milliseconds gap) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (i > 0) std::this_thread::sleep_for(gap);
    if (!Send(data.substr(i, 1))) return false;
  }
  return true;
}

bool RawConnection::Fill(std::chrono::milliseconds timeout) {
  if (fd_ < 0 || eof_) return false;
  pollfd p{fd_, POLLIN, 0};
  int r = poll(&p, 1, static_cast<int>(timeout.count()));
  if (r <= 0) return true;
  char chunk[65536];
  ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
  if (n > 0) {
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
  eof_ = true;  // EOF, or ECONNRESET and the like
  return false;
}

RawAnswer RawConnection::Read(std::chrono::milliseconds timeout) {
  RawAnswer answer;
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (TakeAnswer(buffer_, eof_, answer)) {
      answer.closed = eof_;
      return answer;
    }
    if (eof_ || fd_ < 0) {
      answer.closed = true;
      return answer;
    }
    int left = RemainingMs(deadline);
    if (left <= 0) {
      // Past the deadline: only what has already arrived counts.
      std::size_t before = buffer_.size();
      Fill(std::chrono::milliseconds(0));
      if (buffer_.size() == before && !eof_) {
        answer.timed_out = true;
        return answer;
      }
      continue;
    }
    Fill(std::chrono::milliseconds(left));
  }
}

RawAnswer RawConnection::Exchange(std::string_view request, std::chrono::milliseconds timeout) {
  if (!Send(request)) {
    RawAnswer answer = Read(std::chrono::milliseconds(0));
    answer.closed = true;
    return answer;
  }
  return Read(timeout);
}

bool RawConnection::WaitClosed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!eof_ && fd_ >= 0) {
    int left = RemainingMs(deadline);
    if (left <= 0) break;
    Fill(std::chrono::milliseconds(left));
  }
  if (!eof_ && fd_ >= 0) Fill(std::chrono::milliseconds(0));
  return eof_ || fd_ < 0;
}

std::string HttpRequestText(const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body) {
  std::string text = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!token.empty()) text += "API-Authorization: " + token + "\r\n";
  if (!body.empty()) {
    text +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return text + "\r\n" + body;
}

std::vector<RawConnection> OpenAnsweredConnections(int port, int n, const std::string& request,
                                                   int& answered,
                                                   std::chrono::milliseconds timeout) {
  std::vector<RawConnection> connections;
  connections.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) connections.emplace_back(port);
  answered = ExchangeOnAll(connections, request, timeout);
  return connections;
}

int ExchangeOnAll(std::vector<RawConnection>& connections, const std::string& request,
                  std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::vector<bool> sent(connections.size());
  for (std::size_t i = 0; i < connections.size(); ++i) sent[i] = connections[i].Send(request);
  int ok = 0;
  for (std::size_t i = 0; i < connections.size(); ++i) {
    if (!sent[i]) continue;
    RawAnswer a = connections[i].Read(std::chrono::milliseconds(RemainingMs(deadline)));
    if (a.status == 200) ++ok;
  }
  return ok;
}

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace allocation_relay::testing
