// Per-key rate limits (SPEC section 13): the token bucket's arithmetic on a ManualClock, the
// limiter's reload rules, and ApiService answering 429 (Order API and console) on a real test
// database. Nothing sleeps: the clock is moved by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "api_metrics.h"
#include "api_service.h"
#include "rate_limiter.h"
#include "support/api_request.h"
#include "support/log_capture.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// 2024-03-18 08:00:00 UTC.
constexpr std::int64_t kStartMicros = 1710748800'000000;
const TimePoint kStart = FromUnixMicros(kStartMicros);

const std::string kTooMany = R"({"status":"no","errorMessages":["Too many requests"]})";

std::string RetryAfter(const ApiResponse& res) {
  for (const auto& [name, value] : res.headers) {
    if (name == "Retry-After") return value;
  }
  return "";
}

// --- TokenBucket ---------------------------------------------------------------------------

TEST(TokenBucket, StartsFullAndRefusesPastTheBurst) {
  TokenBucket bucket(KeyRate{2, 3}, kStart);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.Take(kStart).taken) << i;
  TokenBucket::Outcome refused = bucket.Take(kStart);
  EXPECT_FALSE(refused.taken);
  EXPECT_EQ(refused.wait, 500ms);  // one token at 2 a second
}

TEST(TokenBucket, RefillsAtTheRateAndNeverBeyondTheBurst) {
  TokenBucket bucket(KeyRate{2, 3}, kStart);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(bucket.Take(kStart).taken);
  // 250 ms: half a token, not enough; the wait is what is left of it.
  TokenBucket::Outcome early = bucket.Take(kStart + 250ms);
  EXPECT_FALSE(early.taken);
  EXPECT_EQ(early.wait, 250ms);
  EXPECT_TRUE(bucket.Take(kStart + 500ms).taken);
  EXPECT_FALSE(bucket.Take(kStart + 500ms).taken);
  // An hour idle fills it to the burst (3), not to 7200 tokens.
  const TimePoint later = kStart + 1h;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.Take(later).taken) << i;
  EXPECT_FALSE(bucket.Take(later).taken);
}

TEST(TokenBucket, FractionalRatesWaitSeveralSeconds) {
  TokenBucket bucket(KeyRate{0.25, 1}, kStart);  // one call every 4 s
  ASSERT_TRUE(bucket.Take(kStart).taken);
  EXPECT_EQ(bucket.Take(kStart).wait, 4s);
  EXPECT_EQ(bucket.Take(kStart + 2500ms).wait, 1500ms);
  EXPECT_TRUE(bucket.Take(kStart + 4s).taken);
}

TEST(TokenBucket, AClockSetBackRefillsNothingAndGoesOnFromThere) {
  TokenBucket bucket(KeyRate{1, 1}, kStart);
  ASSERT_TRUE(bucket.Take(kStart).taken);
  EXPECT_FALSE(bucket.Take(kStart - 1h).taken);  // no refill for a negative interval
  EXPECT_FALSE(bucket.Take(kStart - 1h + 500ms).taken);
  EXPECT_TRUE(bucket.Take(kStart - 1h + 1s).taken);
}

TEST(TokenBucket, OnlyTheFirstRefusalUntilTheBucketIsFullAgainIsMarkedFirst) {
  TokenBucket bucket(KeyRate{1, 2}, kStart);
  ASSERT_TRUE(bucket.Take(kStart).taken);
  ASSERT_TRUE(bucket.Take(kStart).taken);
  EXPECT_TRUE(bucket.Take(kStart).first_refusal);
  EXPECT_FALSE(bucket.Take(kStart).first_refusal);
  // A flood at the refill rate: one token taken, the next refused, never "first" again.
  EXPECT_TRUE(bucket.Take(kStart + 1s).taken);
  EXPECT_FALSE(bucket.Take(kStart + 1s).first_refusal);
  // Full again (2 s idle): the next burst is logged again.
  const TimePoint later = kStart + 3s;
  ASSERT_TRUE(bucket.Take(later).taken);
  ASSERT_TRUE(bucket.Take(later).taken);
  EXPECT_TRUE(bucket.Take(later).first_refusal);
}

TEST(TokenBucket, RetryAfterIsWholeSecondsRoundedUpAndAtLeastOne) {
  EXPECT_EQ(RetryAfterSeconds(1us), 1);
  EXPECT_EQ(RetryAfterSeconds(500ms), 1);
  EXPECT_EQ(RetryAfterSeconds(1s), 1);
  EXPECT_EQ(RetryAfterSeconds(1s + 1us), 2);
  EXPECT_EQ(RetryAfterSeconds(4s), 4);
  EXPECT_EQ(RetryAfterSeconds(0us), 1);
}

// --- RateLimiter ---------------------------------------------------------------------------

ApiKey Key(const std::string& name, std::optional<KeyRate> rate) {
  ApiKey key;
  key.name = name;
  key.rate = rate;
  return key;
}

TEST(RateLimiter, KeysWithoutARateAreNeverRefused) {
  ApiKey free = Key("free", std::nullopt);
  RateLimiter limiter({free}, kStart);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(limiter.Admit(free, kStart)) << i;
  EXPECT_TRUE(limiter.Refusals().empty());
}

TEST(RateLimiter, RefusalIsThe429WithRetryAfterAndIsCounted) {
  ApiKey pos = Key("pos", KeyRate{0.5, 1});
  RateLimiter limiter({pos}, kStart);
  EXPECT_FALSE(limiter.Admit(pos, kStart));
  std::optional<ApiResponse> refused = limiter.Admit(pos, kStart + 500ms);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->body, kTooMany);
  EXPECT_EQ(refused->content_type, "application/json");
  EXPECT_EQ(RetryAfter(*refused), "2");  // 1.5 s to go, rounded up
  using Counts = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(limiter.Refusals(), (Counts{{"pos", 1}}));
}

TEST(RateLimiter, AReloadKeepsTheBucketsOfUnchangedRatesAndRefillsChangedAndNewOnes) {
  ApiKey same = Key("same", KeyRate{1, 1});
  ApiKey changed = Key("changed", KeyRate{1, 1});
  RateLimiter before({same, changed}, kStart);
  ASSERT_FALSE(before.Admit(same, kStart));
  ASSERT_FALSE(before.Admit(changed, kStart));
  ASSERT_TRUE(before.Admit(same, kStart));
  ASSERT_TRUE(before.Admit(changed, kStart));

  ApiKey changed2 = Key("changed", KeyRate{1, 2});
  ApiKey added = Key("added", KeyRate{1, 1});
  RateLimiter after({same, changed2, added}, kStart, &before);
  EXPECT_TRUE(after.Admit(same, kStart)) << "an unchanged rate keeps its (empty) bucket";
  EXPECT_FALSE(after.Admit(changed2, kStart)) << "a changed rate starts full";
  EXPECT_FALSE(after.Admit(changed2, kStart));
  EXPECT_TRUE(after.Admit(changed2, kStart));
  EXPECT_FALSE(after.Admit(added, kStart)) << "a new key starts full";
  // The counters go on by name (same: 1 + 1, changed: 1 + 1), new keys from 0.
  using Counts = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(after.Refusals(), (Counts{{"added", 0}, {"changed", 2}, {"same", 2}}));
  // The old limiter (requests still in flight) shares the unchanged bucket.
  EXPECT_TRUE(before.Admit(same, kStart));
}

TEST(ApiMetrics, RateLimitedCounterEscapesKeyNames) {
  std::string text = RenderRateLimited({{"a\"b\\c\nd", 3}, {"pos", 0}});
  EXPECT_THAT(text, HasSubstr("# TYPE allocation_relay_rate_limited_total counter\n"));
  EXPECT_THAT(text, HasSubstr("allocation_relay_rate_limited_total{key=\"a\\\"b\\\\c\\nd\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("allocation_relay_rate_limited_total{key=\"pos\"} 0\n"));
}

// --- ApiService ----------------------------------------------------------------------------

// Keys: "limited" (every Order API endpoint but POST /allocations/cancel, the console;
// 0.5 a second, burst 3), "free" (the same grants, no rate), "reader" (GET /allocation-requests
// only; 1 a second, burst 1). Warehouses 3 Amsterdam, 4 Tokyo.
std::string KeyLine(const std::string& name, const std::string& endpoints,
                    const std::string& extra) {
  return "    - {name: " + name + ", sha256: " + Sha256Hex(name + "-token") + ", endpoints: [" +
         endpoints + "]" + extra + "}\n";
}

const std::string kGrants =
    "GET /allocation-requests, PUT /allocation-request, POST /allocations, GET /allocations, "
    "console";

std::string ConfigYaml(const StoreOptions& database, const std::string& limited_rate) {
  return "store: " + testing::StoreYaml(database) + "\napi:\n  keys:\n" +
         KeyLine("limited", kGrants, ", rate: " + limited_rate) + KeyLine("free", kGrants, "") +
         KeyLine("reader", "GET /allocation-requests", ", rate: {per_second: 1, burst: 1}") +
         "warehouses:\n"
         "  - {id: 3, name: Amsterdam}\n"
         "  - {id: 4, name: Tokyo}\n";
}

const std::string kLimitedRate = "{per_second: 0.5, burst: 3}";

class RateLimitedApi : public ::testing::Test {
 protected:
  RateLimitedApi()
      : clock_(kStart),
        config_(std::make_shared<const Config>(
            ParseConfig(ConfigYaml(database_.options(), kLimitedRate), "test.yaml"))),
        store_(Store::Open(StoreOptionsFrom(config_->store))),
        service_(config_, clock_) {}

  ApiResponse Send(const std::string& method, const std::string& target, const std::string& token,
                   const std::string& body = "") {
    return service_.Handle(testing::ApiCall(method, target, token, body));
  }
  ApiResponse List(const std::string& token = "limited-token") {
    return Send("GET", "/allocation-requests", token);
  }
  // Uses up the limited key's three tokens.
  void UseUpTheBurst() {
    for (int i = 0; i < 3; ++i) ASSERT_EQ(List().status, 200) << i;
  }
  void Reload(const std::string& limited_rate) {
    service_.Reload(std::make_shared<const Config>(
        ParseConfig(ConfigYaml(database_.options(), limited_rate), "test.yaml")));
  }

  testing::TempDir dir_;
  testing::TestDatabase database_{dir_};
  ManualClock clock_;
  std::shared_ptr<const Config> config_;
  std::unique_ptr<Store> store_;
  ApiService service_;
};

TEST_F(RateLimitedApi, PastTheBurstIs429WithRetryAfterAndTheExactBody) {
  UseUpTheBurst();
  ApiResponse refused = List();
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.body, kTooMany);
  EXPECT_EQ(refused.content_type, "application/json");
  EXPECT_EQ(RetryAfter(refused), "2");  // one token at 0.5 a second
  clock_.Advance(1500ms);
  EXPECT_EQ(RetryAfter(List()), "1");  // 0.75 of a token: 0.5 s to go, rounded up
}

TEST_F(RateLimitedApi, ARefusedConfirmChangesNothing) {
  ASSERT_EQ(Send("POST", "/allocations", "free-token",
                 R"({"order":{"id":"abc","number":15},"lines":[{"lineId":1,"quantity":1,)"
                 R"("stockItemId":1}],"warehouses":[[3]]})")
                .status,
            200);
  UseUpTheBurst();
  ApiResponse refused =
      Send("PUT", "/allocation-request", "limited-token", R"({"id":1,"status":"confirmed"})");
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.body, kTooMany);
  auto request = store_->GetRequest(1);
  ASSERT_TRUE(request.has_value());
  ASSERT_TRUE(request->has_value());
  EXPECT_EQ((*request)->status, RequestStatus::kAllocated);
  ApiResponse pending = List("free-token");
  EXPECT_THAT(pending.body, HasSubstr(R"("id":1,"status":"allocated")"));
}

TEST_F(RateLimitedApi, CallsGoThroughAgainOnceTheClockHasRefilledTheBucket) {
  UseUpTheBurst();
  ASSERT_EQ(List().status, 429);
  clock_.Advance(1s);  // half a token
  EXPECT_EQ(List().status, 429);
  clock_.Advance(1s);
  EXPECT_EQ(List().status, 200);
  EXPECT_EQ(List().status, 429);
  clock_.Advance(1h);  // refilled to the burst only
  UseUpTheBurst();
  EXPECT_EQ(List().status, 429);
}

TEST_F(RateLimitedApi, AKeyWithoutARateIsNeverLimitedNorSlowedByAnother) {
  UseUpTheBurst();
  ASSERT_EQ(List().status, 429);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(List("free-token").status, 200) << i;
  EXPECT_EQ(List().status, 429);
}

TEST_F(RateLimitedApi, TheLimitComesAfterTheTokenAndBeforeTheGrant) {
  // An unknown token is 401 and takes nothing from any bucket.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(List("nope").status, 401);
  // An ungranted endpoint takes a token (403), and past the burst is 429 like any other call.
  EXPECT_EQ(Send("GET", "/allocations/1", "reader-token").status, 403);
  EXPECT_EQ(Send("GET", "/allocations/1", "reader-token").status, 429);
  EXPECT_EQ(List("reader-token").status, 429);
  // Unauthenticated endpoints are not limited.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Send("GET", "/health", "").status, 200);
}

TEST_F(RateLimitedApi, TheConsoleEndpointsShareTheKeysBucket) {
  ASSERT_EQ(Send("GET", "/console/api/session", "limited-token").status, 200);
  ASSERT_EQ(List().status, 200);
  ASSERT_EQ(Send("GET", "/console/api/overview", "limited-token").status, 200);
  ApiResponse refused = Send("GET", "/console/api/session", "limited-token");
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.body, kTooMany);
  EXPECT_EQ(RetryAfter(refused), "2");
  EXPECT_THAT(refused.headers, ::testing::Contains(std::pair<std::string, std::string>(
                                   "Cache-Control", "no-store")));
  EXPECT_EQ(List().status, 429);
  // The console's page and assets need no key, and are not limited.
  EXPECT_EQ(Send("GET", "/console/", "").status, 200);
  EXPECT_EQ(Send("GET", "/console/api/session", "free-token").status, 200);
}

TEST_F(RateLimitedApi, MetricsCountRefusalsByKey) {
  UseUpTheBurst();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(List().status, 429);
  ASSERT_EQ(Send("GET", "/console/api/session", "limited-token").status, 429);
  ApiResponse metrics = Send("GET", "/metrics", "");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE allocation_relay_rate_limited_total counter\n"));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_rate_limited_total{key=\"limited\"} 5\n"));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_rate_limited_total{key=\"reader\"} 0\n"));
  EXPECT_THAT(metrics.body, Not(HasSubstr("{key=\"free\"}")));
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_http_requests_total{endpoint=\"GET "
                                      "/allocation-requests\",code=\"429\"} 4\n"));
}

TEST_F(RateLimitedApi, AFloodIsLoggedOnceNotOncePerRefusal) {
  testing::LogCapture log;
  UseUpTheBurst();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(List().status, 429);
  std::string text = log.text();
  EXPECT_THAT(text, HasSubstr("key limited is over its rate limit"));
  EXPECT_EQ(text.find("over its rate limit"), text.rfind("over its rate limit")) << text;
}

TEST_F(RateLimitedApi, AReloadKeepsAnUnchangedBucketAndRefillsAChangedOne) {
  UseUpTheBurst();
  ASSERT_EQ(List().status, 429);
  Reload(kLimitedRate);
  EXPECT_EQ(List().status, 429) << "same rate: the empty bucket stays empty";
  Reload("{per_second: 0.5, burst: 4}");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(List().status, 200) << i;
  EXPECT_EQ(List().status, 429);
  ApiResponse metrics = Send("GET", "/metrics", "");
  EXPECT_THAT(metrics.body, HasSubstr("allocation_relay_rate_limited_total{key=\"limited\"} 3\n"));
}

}  // namespace
}  // namespace allocation_relay
