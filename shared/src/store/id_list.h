// Ids written as text: "12,57" (a delivery's uid input, an SQL IN-list's or JSON array's inside,
// the request_ids column).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_ID_LIST_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_ID_LIST_H_

#include <charconv>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "allocation_relay/store.h"

namespace allocation_relay {

inline std::string JoinIds(std::span<const std::int64_t> ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(ids[i]);
  }
  return out;
}

// "12,57" back; anything else is a corrupt row.
inline std::vector<std::int64_t> ParseIdList(std::string_view text) {
  std::vector<std::int64_t> ids;
  while (!text.empty()) {
    std::int64_t id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc()) throw StoreError(StoreError::Kind::kCorrupt, "bad request_ids");
    ids.push_back(id);
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    if (!text.empty()) {
      if (text.front() != ',') throw StoreError(StoreError::Kind::kCorrupt, "bad request_ids");
      text.remove_prefix(1);
    }
  }
  return ids;
}

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_ID_LIST_H_
