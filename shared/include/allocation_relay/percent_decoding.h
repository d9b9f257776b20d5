// PercentDecode: %XX escapes in URLs and query strings. Pure function; thread-safe.
#ifndef ALLOCATION_RELAY_PERCENT_DECODING_H_
#define ALLOCATION_RELAY_PERCENT_DECODING_H_

#include <string>
#include <string_view>

namespace allocation_relay {

// Each %XX (hex, either case) becomes its byte; a '%' not followed by two hex digits stays as
// written. With `plus_is_space` (query strings, application/x-www-form-urlencoded) '+' is a
// space; without it (URL user info, libpq parameters) '+' is itself.
std::string PercentDecode(std::string_view text, bool plus_is_space);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_PERCENT_DECODING_H_
