// Request framing for HttpServer: where the first HTTP/1.1 request in a connection's buffer
// ends (head, then a body by Content-Length or chunked encoding), so that only complete requests
// reach a worker. Pure functions; no I/O.
#ifndef ALLOCATION_RELAY_SHARED_HTTP_FRAMING_H_
#define ALLOCATION_RELAY_SHARED_HTTP_FRAMING_H_

#include <cstddef>
#include <string_view>

namespace allocation_relay {

// Heads bigger than this get 431 (httplib's own limit is 8 KiB per line).
inline constexpr std::size_t kMaxRequestHead = 64 * 1024;

struct Framing {
  enum class Kind {
    kIncomplete,    // more bytes needed
    kComplete,      // `length` bytes make the request
    kBodyTooLarge,  // the body (declared, or chunks so far) exceeds max_body: 413
    kHeadTooLarge,  // no end of head within kMaxRequestHead: 431
    kBad,           // an unreadable Content-Length or chunk size: 400
  };
  Kind kind = Kind::kIncomplete;
  std::size_t length = 0;
  bool expects_continue = false;  // the head asks for 100 Continue before the body
};

// REQUIRES: `buf` starts with the request line (empty lines before it already dropped).
Framing FrameRequest(std::string_view buf, std::size_t max_body);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_HTTP_FRAMING_H_
