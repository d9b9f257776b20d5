// Request framing for HttpServer: where the first HTTP/1.1 request in a connection's buffer
// ends (head, then a body by Content-Length or chunked encoding), so that only complete requests
// reach a worker. Pure functions; no I/O.
#ifndef ALLOCATION_RELAY_SHARED_HTTP_FRAMING_H_
#define ALLOCATION_RELAY_SHARED_HTTP_FRAMING_H_

#include <cstddef>
#include <string>
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

// Edits the head of the complete request that makes the first `length` bytes of `*buf`, before
// httplib parses it, against two things httplib's compiled library does on its own; returns the
// request's new length. Both concern headers only; the body is left as it came.
//   - Range and If-Range lines are removed: httplib would answer a range of the body with
//     status 200, which a client or cache takes as the whole answer. Answers here are whole.
//   - A Content-Type of application/x-www-form-urlencoded (what `curl -d` sends by default) gets
//     its first letter in upper case. httplib compares that value case-sensitively and refuses
//     such bodies over 8 KiB with 413 whatever max_body says; media types are case-insensitive
//     (RFC 9110 8.3.1), so the value means the same and the body reaches the handler whole.
std::size_t PrepareHeadForHttplib(std::string* buf, std::size_t length);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_HTTP_FRAMING_H_
