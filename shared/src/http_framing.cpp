#include "http_framing.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>

namespace allocation_relay {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Chunked body starting at `pos`: its end, or nullopt while incomplete; sets `too_large`/`bad`.
std::optional<std::size_t> ChunkedEnd(std::string_view buf, std::size_t pos, std::size_t max_body,
                                      bool& too_large, bool& bad) {
  std::size_t total = 0;
  for (;;) {
    std::size_t eol = buf.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      if (buf.size() - pos > 1024) bad = true;  // a chunk-size line is short
      return std::nullopt;
    }
    std::string_view line = buf.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));  // chunk extensions
    line = Trim(line);
    std::size_t size = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    if (ec != std::errc() || end != line.data() + line.size() || line.empty()) {
      bad = true;
      return std::nullopt;
    }
    total += size;
    if (total > max_body) {
      too_large = true;
      return std::nullopt;
    }
    pos = eol + 2;
    if (size == 0) {
      // Trailers, then an empty line.
      for (;;) {
        std::size_t t = buf.find("\r\n", pos);
        if (t == std::string_view::npos) return std::nullopt;
        if (t == pos) return t + 2;
        pos = t + 2;
      }
    }
    if (buf.size() < pos + size + 2) return std::nullopt;
    pos += size + 2;
  }
}

}  // namespace

std::size_t PrepareHeadForHttplib(std::string* buf, std::size_t length) {
  std::size_t head_end = std::string_view(*buf).substr(0, length).find("\r\n\r\n");
  if (head_end == std::string_view::npos) return length;
  std::size_t pos = buf->find("\r\n");  // the end of the request line
  while (pos < head_end) {
    std::size_t eol = buf->find("\r\n", pos + 2);
    std::string_view line = std::string_view(*buf).substr(pos + 2, eol - pos - 2);
    std::size_t colon = line.find(':');
    std::string_view name = colon == std::string_view::npos ? "" : Trim(line.substr(0, colon));
    if (EqualsIgnoreCase(name, "Range") || EqualsIgnoreCase(name, "If-Range")) {
      buf->erase(pos, eol - pos);  // the line and the CRLF before it
      head_end -= eol - pos;
      length -= eol - pos;
      continue;
    }
    if (EqualsIgnoreCase(name, "Content-Type")) {
      std::size_t value = pos + 2 + colon + 1;
      while (value < eol && ((*buf)[value] == ' ' || (*buf)[value] == '\t')) ++value;
      constexpr std::string_view kForm = "application/x-www-form-urlencoded";
      if (EqualsIgnoreCase(std::string_view(*buf).substr(value, kForm.size()), kForm)) {
        (*buf)[value] = 'A';
      }
    }
    pos = eol;
  }
  return length;
}

Framing FrameRequest(std::string_view buf, std::size_t max_body) {
  Framing f;
  std::size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (buf.size() > kMaxRequestHead) f.kind = Framing::Kind::kHeadTooLarge;
    return f;
  }
  if (head_end + 4 > kMaxRequestHead) {
    f.kind = Framing::Kind::kHeadTooLarge;
    return f;
  }
  std::size_t body_start = head_end + 4;
  std::optional<std::uint64_t> content_length;
  bool chunked = false;
  std::size_t pos = buf.find("\r\n");  // past the request line
  while (pos < head_end) {
    pos += 2;
    std::size_t eol = buf.find("\r\n", pos);
    std::string_view line = buf.substr(pos, eol - pos);
    pos = eol;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "Content-Length")) {
      std::uint64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty() ||
          (content_length && *content_length != n)) {
        f.kind = Framing::Kind::kBad;
        return f;
      }
      content_length = n;
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      // httplib decodes exactly "chunked"; any other coding of a request body is refused.
      if (!EqualsIgnoreCase(value, "chunked")) {
        f.kind = Framing::Kind::kBad;
        return f;
      }
      chunked = true;
    } else if (EqualsIgnoreCase(name, "Expect")) {
      f.expects_continue = EqualsIgnoreCase(value, "100-continue");
    }
  }
  if (chunked) {
    bool too_large = false, bad = false;
    std::optional<std::size_t> end = ChunkedEnd(buf, body_start, max_body, too_large, bad);
    if (too_large) f.kind = Framing::Kind::kBodyTooLarge;
    if (bad) f.kind = Framing::Kind::kBad;
    if (end) {
      f.kind = Framing::Kind::kComplete;
      f.length = *end;
    }
    return f;
  }
  std::uint64_t body = content_length.value_or(0);
  if (body > max_body) {
    f.kind = Framing::Kind::kBodyTooLarge;
    return f;
  }
  if (buf.size() - body_start >= body) {
    f.kind = Framing::Kind::kComplete;
    f.length = body_start + static_cast<std::size_t>(body);
  }
  return f;
}

}  // namespace allocation_relay
