// Parsing and printing of configuration durations such as "250ms", "5s", "30m", "1h", "1h30m".
#ifndef ALLOCATION_RELAY_DURATION_H_
#define ALLOCATION_RELAY_DURATION_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace allocation_relay {

// Returns the duration written in `text`: one or more <digits><unit> parts, units `ms`, `s`,
// `m`, `h`, `d`. Returns nullopt for anything else (no unit, negative, empty, overflow).
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The shortest form ParseDuration reads back to the same value, e.g. "1h30m", "250ms", "0s".
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DURATION_H_
