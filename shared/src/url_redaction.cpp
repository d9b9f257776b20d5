// RedactUrlPassword and StoreLocation (allocation_relay/config.h): URLs for messages and logs,
// with every password libpq or libcurl would read masked.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "allocation_relay/config.h"
#include "allocation_relay/percent_decoding.h"

namespace allocation_relay {
namespace {

// A half-open byte range [begin, end) of a URL to mask.
struct Span {
  std::size_t begin;
  std::size_t end;
};

// The password of the user info: libpq takes what lies between "://" and an '@' before the
// first '/' as "user[:password]". The last such '@' is taken, so that a password with a raw
// '@' in it is masked whole.
std::optional<Span> UserInfoPassword(std::string_view url) {
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  std::size_t start = scheme_end + 3;
  std::size_t authority_end = url.find('/', start);
  if (authority_end == std::string_view::npos) authority_end = url.size();
  std::string_view authority = url.substr(start, authority_end - start);
  std::size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos || colon + 1 == at) return std::nullopt;
  return Span{start + colon + 1, start + at};
}

// The values of `password=` parameters in the query (from the first '?', split at '&').
std::vector<Span> QueryPasswords(std::string_view url) {
  std::vector<Span> spans;
  std::size_t question = url.find('?');
  if (question == std::string_view::npos) return spans;
  std::size_t begin = question + 1;
  while (begin <= url.size()) {
    std::size_t end = url.find('&', begin);
    if (end == std::string_view::npos) end = url.size();
    std::string_view param = url.substr(begin, end - begin);
    std::size_t equals = param.find('=');
    if (equals != std::string_view::npos && equals + 1 < param.size() &&
        PercentDecode(param.substr(0, equals), /*plus_is_space=*/false) == "password") {
      spans.push_back({begin + equals + 1, end});
    }
    begin = end + 1;
  }
  return spans;
}

}  // namespace

std::string RedactUrlPassword(std::string_view url) {
  std::vector<Span> spans = QueryPasswords(url);
  if (std::optional<Span> user = UserInfoPassword(url)) spans.push_back(*user);
  if (spans.empty()) return std::string(url);
  // Overlapping spans (a malformed URL read both ways) are masked as one.
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::string out;
  std::size_t done = 0;
  for (const Span& span : spans) {
    if (span.end <= done) continue;
    if (span.begin >= done) {
      out.append(url.substr(done, span.begin - done));
      out += "***";
    }
    done = span.end;
  }
  out.append(url.substr(done));
  return out;
}

std::string StoreLocation(const StoreConfig& store) {
  if (store.backend == StoreBackendKind::kPostgresql) return RedactUrlPassword(store.url);
  return store.path;
}
}  // namespace allocation_relay
