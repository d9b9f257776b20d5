#include "allocation_relay/time_zone.h"

#include <date/date.h>
#include <gtest/gtest.h>

namespace allocation_relay {
namespace {

using namespace std::chrono;

// 2024-03-31 01:00:00 UTC is when Europe/Stockholm moves from +01:00 to +02:00; 2024-10-27
// 01:00:00 UTC is when it moves back.
TimePoint Utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int us = 0) {
  return TimePoint(date::sys_days(date::year(y) / mo / d).time_since_epoch() + hours(h) +
                   minutes(mi) + seconds(s) + microseconds(us));
}

TEST(TimeZone, FindsIanaZonesAndRejectsUnknownNames) {
  ASSERT_TRUE(TimeZone::Find("Europe/Stockholm"));
  EXPECT_EQ(TimeZone::Find("Europe/Stockholm")->name(), "Europe/Stockholm");
  EXPECT_FALSE(TimeZone::Find("Europe/Stockolm"));
  EXPECT_FALSE(TimeZone::Find(""));
}

TEST(TimeZone, Iso8601CarriesTheOffsetAcrossSpringForward) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  EXPECT_EQ(zone.FormatIso8601(Utc(2024, 3, 31, 0, 59, 59, 999999)), "2024-03-31T01:59:59+01:00");
  EXPECT_EQ(zone.FormatIso8601(Utc(2024, 3, 31, 1, 0, 0)), "2024-03-31T03:00:00+02:00");
}

TEST(TimeZone, Iso8601CarriesTheOffsetAcrossFallBack) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  EXPECT_EQ(zone.FormatIso8601(Utc(2024, 10, 27, 0, 30, 0)), "2024-10-27T02:30:00+02:00");
  EXPECT_EQ(zone.FormatIso8601(Utc(2024, 10, 27, 1, 30, 0)), "2024-10-27T02:30:00+01:00");
}

TEST(TimeZone, MatchesTheSeedPageExample) {
  // "2024-03-18T09:04:48+01:00" in the reference page is 08:04:48 UTC.
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  EXPECT_EQ(zone.FormatIso8601(Utc(2024, 3, 18, 8, 4, 48, 123456)), "2024-03-18T09:04:48+01:00");
}

TEST(TimeZone, LocalMicrosAsCentraWebhooksWriteThem) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  EXPECT_EQ(zone.FormatLocalMicros(Utc(2023, 12, 29, 8, 44, 11, 505407)),
            "2023-12-29 09:44:11.505407");
  EXPECT_EQ(zone.FormatLocalMicros(Utc(2024, 3, 31, 1, 0, 0, 7)), "2024-03-31 03:00:00.000007");
  EXPECT_EQ(zone.FormatLocalMicros(Utc(2024, 3, 31, 0, 59, 59, 999999)),
            "2024-03-31 01:59:59.999999");
}

TEST(TimeZone, NegativeOffsetsAndUtc) {
  TimeZone ny = *TimeZone::Find("America/New_York");
  EXPECT_EQ(ny.FormatIso8601(Utc(2024, 1, 15, 12, 0, 0)), "2024-01-15T07:00:00-05:00");
  TimeZone kolkata = *TimeZone::Find("Asia/Kolkata");
  EXPECT_EQ(kolkata.FormatIso8601(Utc(2024, 1, 15, 12, 0, 0)), "2024-01-15T17:30:00+05:30");
  EXPECT_EQ(TimeZone::Utc().FormatIso8601(Utc(2024, 1, 15, 12, 0, 0)), "2024-01-15T12:00:00+00:00");
}

}  // namespace
}  // namespace allocation_relay
