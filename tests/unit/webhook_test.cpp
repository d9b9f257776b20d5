// The dispatcher's pure parts: retry schedule, request formats, the private-address guard.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <utility>

#include "allocation_relay/signature.h"
#include "retry_schedule.h"
#include "webhook_format.h"
#include "webhook_sender.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::StartsWith;

TEST(RetrySchedule, FollowsTheScheduleWithTwentyPercentJitterThenStops) {
  RetrySchedule s({5s, 5min, 30min});
  EXPECT_EQ(s.Delay(1, 0.5), 5s);           // the middle of the jitter range
  EXPECT_EQ(s.Delay(1, 0.0), 4000ms);       // -20 %
  EXPECT_EQ(s.Delay(1, 0.999999), 6000ms);  // just under +20 %
  EXPECT_EQ(s.Delay(2, 0.5), 5min);
  EXPECT_EQ(s.Delay(3, 0.5), 30min);
  EXPECT_EQ(s.Delay(4, 0.5), std::nullopt);  // dead
  EXPECT_EQ(s.Delay(0, 0.5), std::nullopt);
}

TEST(RetrySchedule, RetryAfterIsAFloorCappedAtTheLongestDelay) {
  RetrySchedule s({5s, 5min, 30min});
  EXPECT_EQ(s.Delay(1, 0.5, 60s), 60s);    // longer than 5 s: wait that long
  EXPECT_EQ(s.Delay(2, 0.5, 10s), 5min);   // shorter than the schedule: schedule wins
  EXPECT_EQ(s.Delay(1, 0.5, 10h), 30min);  // capped at the longest delay
  EXPECT_EQ(s.Delay(4, 0.5, 1s), std::nullopt);
}

TEST(FormatWebhook, CentraIsAFormBodySignedOverTheRawBody) {
  WebhookConfig hook;
  hook.secrets = {"test123"};
  WebhookRequest r = FormatWebhook(hook, "msg_1", R"({"x":"test"})", 12345678);
  EXPECT_EQ(r.body, "payload=%7B%22x%22%3A%22test%22%7D");
  auto header = [&](const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return std::string();
  };
  EXPECT_EQ(header("Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(header("X-Centra-Signature"),
            "t=12345678,v1=0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549");
  EXPECT_THAT(header("User-Agent"), StartsWith("allocation-relay/"));
}

TEST(FormatWebhook, StandardWebhooksSendsTheJsonWithIdTimestampAndSignature) {
  WebhookConfig hook;
  hook.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  hook.signature = SignatureScheme::kStandardWebhooks;
  WebhookRequest r =
      FormatWebhook(hook, "msg_p5jXN8AQM9LWM0D4loKWxJek", R"({"test": 2432232314})", 1614265330);
  EXPECT_EQ(r.body, R"({"test": 2432232314})");
  std::map<std::string, std::string> h(r.headers.begin(), r.headers.end());
  EXPECT_EQ(h["Content-Type"], "application/json");
  EXPECT_EQ(h["webhook-id"], "msg_p5jXN8AQM9LWM0D4loKWxJek");
  EXPECT_EQ(h["webhook-timestamp"], "1614265330");
  EXPECT_EQ(h["webhook-signature"], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// A rotation (SPEC section 13): every secret signs, newest first, space-separated. The values
// are Python's hmac/base64 over "msg_id.timestamp.body" with each key.
TEST(FormatWebhook, StandardWebhooksSignsWithEverySecretOfARotation) {
  WebhookConfig hook;
  hook.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                  "whsec_YWxsb2NhdGlvbi1yZWxheSBvbGQgc2VjcmV0"};
  hook.signature = SignatureScheme::kStandardWebhooks;
  WebhookRequest r =
      FormatWebhook(hook, "msg_p5jXN8AQM9LWM0D4loKWxJek", R"({"test": 2432232314})", 1614265330);
  std::map<std::string, std::string> h(r.headers.begin(), r.headers.end());
  EXPECT_EQ(h["webhook-signature"],
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= "
            "v1,j3Wgq/qLsnRSkT1a2EIw2HDviCMNcPe+nGz7UCq3Dk4=");
  // The order of the list is the order of the header.
  std::swap(hook.secrets[0], hook.secrets[1]);
  r = FormatWebhook(hook, "msg_p5jXN8AQM9LWM0D4loKWxJek", R"({"test": 2432232314})", 1614265330);
  h = std::map<std::string, std::string>(r.headers.begin(), r.headers.end());
  EXPECT_EQ(h["webhook-signature"],
            "v1,j3Wgq/qLsnRSkT1a2EIw2HDviCMNcPe+nGz7UCq3Dk4= "
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(FormatWebhook, CentraSignsWithTheFirstSecretOnly) {
  WebhookConfig hook;
  hook.secrets = {"test123", "the old one"};
  WebhookRequest r = FormatWebhook(hook, "msg_1", R"({"x":"test"})", 12345678);
  std::map<std::string, std::string> h(r.headers.begin(), r.headers.end());
  EXPECT_EQ(h["X-Centra-Signature"],
            "t=12345678,v1=0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549");
}

bool NonPublic(const char* ip) {
  sockaddr_in6 v6{};
  sockaddr_in v4{};
  if (inet_pton(AF_INET, ip, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    return IsNonPublicAddress(reinterpret_cast<sockaddr*>(&v4));
  }
  EXPECT_EQ(inet_pton(AF_INET6, ip, &v6.sin6_addr), 1) << ip;
  v6.sin6_family = AF_INET6;
  return IsNonPublicAddress(reinterpret_cast<sockaddr*>(&v6));
}

TEST(IsNonPublicAddress, RefusesLoopbackPrivateAndLinkLocal) {
  for (const char* ip :
       {"127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1",
        "::", "fc00::1", "fd12::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "ff02::1"}) {
    EXPECT_TRUE(NonPublic(ip)) << ip;
  }
  for (const char* ip :
       {"8.8.8.8", "172.32.0.1", "192.169.0.1", "1.1.1.1", "2001:4860::8888", "::ffff:8.8.8.8"}) {
    EXPECT_FALSE(NonPublic(ip)) << ip;
  }
}

}  // namespace
}  // namespace allocation_relay
