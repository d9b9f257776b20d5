// TimeZone: an IANA time zone (from the system tz database) used to show every date.
//
// Copyable and cheap; the underlying zone data is immutable once loaded, so one TimeZone may be
// used from any number of threads.
#ifndef ALLOCATION_RELAY_TIME_ZONE_H_
#define ALLOCATION_RELAY_TIME_ZONE_H_

#include <optional>
#include <string>
#include <string_view>

#include "allocation_relay/clock.h"

namespace date {
class time_zone;
}

namespace allocation_relay {

class TimeZone {
 public:
  // Returns nullopt if `name` is not in the tz database (e.g. "Europe/Stockolm").
  static std::optional<TimeZone> Find(std::string_view name);
  static TimeZone Utc();

  const std::string& name() const { return name_; }

  // ISO-8601 to the second with the zone's offset at that instant, as the Order API shows
  // dates: "2024-03-18T09:04:48+01:00". Sub-second digits are dropped (floor).
  std::string FormatIso8601(TimePoint t) const;

  // Local wall time with microseconds, as Centra's webhooks show dates:
  // "2023-12-29 09:44:11.505407".
  std::string FormatLocalMicros(TimePoint t) const;

 private:
  TimeZone(const date::time_zone* zone, std::string name) : zone_(zone), name_(std::move(name)) {}
  const date::time_zone* zone_;
  std::string name_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_TIME_ZONE_H_
