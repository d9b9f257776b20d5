#include "allocation_relay/duration.h"

#include <gtest/gtest.h>

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, ReadsEveryUnit) {
  EXPECT_EQ(ParseDuration("250ms"), 250ms);
  EXPECT_EQ(ParseDuration("5s"), 5s);
  EXPECT_EQ(ParseDuration("30m"), 30min);
  EXPECT_EQ(ParseDuration("1h"), 1h);
  EXPECT_EQ(ParseDuration("2d"), 48h);
  EXPECT_EQ(ParseDuration("0s"), 0ms);
}

TEST(ParseDuration, ReadsCombinedParts) {
  EXPECT_EQ(ParseDuration("1h30m"), 90min);
  EXPECT_EQ(ParseDuration("1m500ms"), 60500ms);
}

TEST(ParseDuration, RejectsMalformedText) {
  for (const char* bad :
       {"", "5", "s", "-5s", "5 s", "5sec", "1.5s", "5S", "h1", "5s ", "99999999999999999999s"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << bad;
  }
}

TEST(FormatDuration, ReadsBackToTheSameValue) {
  EXPECT_EQ(FormatDuration(90min), "1h30m");
  EXPECT_EQ(FormatDuration(250ms), "250ms");
  EXPECT_EQ(FormatDuration(0ms), "0s");
  for (std::chrono::milliseconds d : {1ms, 1001ms, 5000ms, 300000ms, 36000000ms}) {
    EXPECT_EQ(ParseDuration(FormatDuration(d)), d);
  }
}

}  // namespace
}  // namespace allocation_relay
