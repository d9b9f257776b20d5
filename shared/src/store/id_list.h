// Ids written as text: "12,57" (a delivery's uid input, an SQL IN-list's or JSON array's inside,
// the request_ids column).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_ID_LIST_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_ID_LIST_H_

#include <cstdint>
#include <span>
#include <string>

namespace allocation_relay {

inline std::string JoinIds(std::span<const std::int64_t> ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(ids[i]);
  }
  return out;
}

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_ID_LIST_H_
