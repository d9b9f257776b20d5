// RawConnection: one TCP connection to 127.0.0.1:<port> over plain POSIX sockets, for the tests
// and benchmarks that need what an HTTP client library hides: connections that stay open and
// idle, requests sent a byte at a time or left half-sent, and whether (and when) the server
// closed the connection. HTTP/1.1 only as far as those tests need it: answers with a
// Content-Length, a chunked body, or a body up to the end of the connection.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_RAW_HTTP_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_RAW_HTTP_H_

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace allocation_relay::testing {

struct RawAnswer {
  int status = 0;    // 0: no complete answer (see closed and timed_out)
  std::string head;  // status line and headers
  std::string body;
  bool closed = false;     // the server closed the connection (EOF or reset)
  bool timed_out = false;  // no complete answer within the timeout

  // The first header of that name (case-insensitive), or "" if absent.
  std::string Header(std::string_view name) const;
  // For assertion messages.
  std::string Describe() const;
};

class RawConnection {
 public:
  RawConnection() = default;
  // Connects (non-blocking connect, waited up to `timeout`); connected() is false on failure.
  explicit RawConnection(int port,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  ~RawConnection();
  RawConnection(RawConnection&& other) noexcept;
  RawConnection& operator=(RawConnection&& other) noexcept;
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends all of `data`; false if the connection failed.
  bool Send(std::string_view data);
  // Sends `data` one byte at a time with `gap` between bytes; false if the connection failed.
  bool Drip(std::string_view data, std::chrono::milliseconds gap);
  // Reads one complete answer within `timeout`.
  RawAnswer Read(std::chrono::milliseconds timeout);
  // Send, then Read.
  RawAnswer Exchange(std::string_view request, std::chrono::milliseconds timeout);
  // Waits up to `timeout` for the server to close the connection (EOF or reset): true if it
  // did. Bytes arriving meanwhile are kept for Read.
  bool WaitClosed(std::chrono::milliseconds timeout);
  void Close();

 private:
  // Reads what is there within `timeout` into buffer_; false on EOF/reset (sets eof_).
  bool Fill(std::chrono::milliseconds timeout);

  int fd_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

// A complete keep-alive HTTP/1.1 request; API-Authorization when `token` is not empty, and a
// Content-Length when `body` is not empty.
std::string HttpRequestText(const std::string& method, const std::string& path,
                            const std::string& token = "", const std::string& body = "");

// Opens `n` connections to `port`, sends `request` on each (all first, then reads every
// answer, so the connections need not be answered one after another), and returns them open.
// `answered` gets how many got a 200 within `timeout` (all answers together).
std::vector<RawConnection> OpenAnsweredConnections(
    int port, int n, const std::string& request, int& answered,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// Sends `request` on every connection, then reads every answer; returns how many got a 200
// within `timeout` (all answers together).
int ExchangeOnAll(std::vector<RawConnection>& connections, const std::string& request,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// Raises this process's open-files soft limit to its hard limit (children inherit it).
void RaiseOpenFileLimit();

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_RAW_HTTP_H_
