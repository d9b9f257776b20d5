#include "allocation_relay/time_zone.h"

#include <date/date.h>
#include <date/tz.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace allocation_relay {

std::optional<TimeZone> TimeZone::Find(std::string_view name) {
  if (name.empty()) return std::nullopt;
  try {
    const date::time_zone* zone = date::locate_zone(name);
    return TimeZone(zone, std::string(name));
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

TimeZone TimeZone::Utc() {
  std::optional<TimeZone> utc = Find("UTC");
  if (!utc) throw std::runtime_error("the tz database has no UTC zone (is tzdata installed?)");
  return *utc;
}

std::string TimeZone::FormatIso8601(TimePoint t) const {
  auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  date::sys_info info = zone_->get_info(seconds);
  auto local = seconds + info.offset;
  auto day = std::chrono::floor<date::days>(local);
  date::year_month_day ymd(day);
  date::hh_mm_ss hms(local - day);
  long offset_min = std::chrono::duration_cast<std::chrono::minutes>(info.offset).count();
  char sign = offset_min < 0 ? '-' : '+';
  offset_min = std::labs(offset_min);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ld%c%02ld:%02ld",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long>(hms.hours().count()),
                static_cast<long>(hms.minutes().count()), static_cast<long>(hms.seconds().count()),
                sign, offset_min / 60, offset_min % 60);
  return buf;
}

std::string TimeZone::FormatLocalMicros(TimePoint t) const {
  date::sys_info info = zone_->get_info(std::chrono::floor<std::chrono::seconds>(t));
  auto local = t + info.offset;
  auto day = std::chrono::floor<date::days>(local);
  date::year_month_day ymd(day);
  date::hh_mm_ss hms(local - day);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02ld:%02ld:%02ld.%06ld",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long>(hms.hours().count()),
                static_cast<long>(hms.minutes().count()), static_cast<long>(hms.seconds().count()),
                static_cast<long>(hms.subseconds().count()));
  return buf;
}

}  // namespace allocation_relay
