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

namespace {

// Writes `v` as exactly `width` decimal digits (zero-padded) at `p`; returns the end.
char* Digits(char* p, long v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  return p + width;
}

struct LocalTime {
  int year;
  unsigned month, day;
  long hours, minutes, seconds, micros;
  long offset_minutes;
};

// The offset in force at `t`. The last answer is kept per thread: consecutive dates almost
// always fall in the same period between two transitions, which spares the zone lookup.
std::chrono::seconds OffsetAt(const date::time_zone* zone, date::sys_seconds t) {
  struct Period {
    const date::time_zone* zone = nullptr;
    date::sys_seconds begin, end;
    std::chrono::seconds offset{0};
  };
  thread_local Period last;
  if (last.zone != zone || t < last.begin || t >= last.end) {
    date::sys_info info = zone->get_info(t);
    last = Period{zone, info.begin, info.end, info.offset};
  }
  return last.offset;
}

LocalTime ToLocal(const date::time_zone* zone, TimePoint t) {
  std::chrono::seconds offset = OffsetAt(zone, std::chrono::floor<std::chrono::seconds>(t));
  auto local = t + offset;
  auto day = std::chrono::floor<date::days>(local);
  date::year_month_day ymd(day);
  date::hh_mm_ss hms(local - day);
  return LocalTime{
      static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()),
      static_cast<unsigned>(ymd.day()),
      static_cast<long>(hms.hours().count()),
      static_cast<long>(hms.minutes().count()),
      static_cast<long>(hms.seconds().count()),
      static_cast<long>(hms.subseconds().count()),
      static_cast<long>(std::chrono::duration_cast<std::chrono::minutes>(offset).count())};
}

// "YYYY-MM-DD?hh:mm:ss" with `separator` between date and time.
char* DateTime(char* p, const LocalTime& l, char separator) {
  p = Digits(p, l.year, 4);
  *p++ = '-';
  p = Digits(p, l.month, 2);
  *p++ = '-';
  p = Digits(p, l.day, 2);
  *p++ = separator;
  p = Digits(p, l.hours, 2);
  *p++ = ':';
  p = Digits(p, l.minutes, 2);
  *p++ = ':';
  return Digits(p, l.seconds, 2);
}

}  // namespace

std::string TimeZone::FormatIso8601(TimePoint t) const {
  // Whole seconds: the sub-second part is dropped (floor), as the offset is taken at that second.
  LocalTime l = ToLocal(zone_, std::chrono::floor<std::chrono::seconds>(t));
  char buf[32];
  char* p = DateTime(buf, l, 'T');
  long offset = l.offset_minutes;
  *p++ = offset < 0 ? '-' : '+';
  offset = std::labs(offset);
  p = Digits(p, offset / 60, 2);
  *p++ = ':';
  p = Digits(p, offset % 60, 2);
  return std::string(buf, p);
}

std::string TimeZone::FormatLocalMicros(TimePoint t) const {
  LocalTime l = ToLocal(zone_, t);
  char buf[32];
  char* p = DateTime(buf, l, ' ');
  *p++ = '.';
  p = Digits(p, l.micros, 6);
  return std::string(buf, p);
}

}  // namespace allocation_relay
