// allocation-dispatcherd delivering webhooks to real receivers on loopback, with the real API
// making the allocations on the same database file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <regex>
#include <sstream>
#include <thread>

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/dispatcher_status.h"
#include "support/form.h"
#include "support/receiver.h"
#include "support/services_test.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::FormDecode;
using ::testing::HasSubstr;
using testing::Process;
using testing::Receiver;
using ::testing::StartsWith;

ApiProcessOptions Options(std::map<int, std::string> webhooks,
                          std::string dispatcher = ApiProcessOptions().dispatcher) {
  ApiProcessOptions o;
  o.webhooks = std::move(webhooks);
  o.dispatcher = std::move(dispatcher);
  return o;
}

class Delivery : public testing::ServicesTest {
 protected:
  void Start(const ApiProcessOptions& options) { StartServices(options); }
  // The attempts of warehouse `w`'s one succeeded delivery (none, and a failure, if it has not
  // exactly one).
  std::vector<DeliveryAttempt> AttemptsOfTheSucceededDelivery(std::int64_t w) {
    auto store = OpenStore();
    auto done = *store->ListDeliveries(DeliveryState::kSucceeded, w, 10);
    EXPECT_EQ(done.size(), 1u);
    return done.size() == 1 ? *store->ListAttempts(done[0].id) : std::vector<DeliveryAttempt>{};
  }
  // The event ids of every call the receiver got, in arrival order (Centra format).
  std::vector<std::int64_t> ReceivedEventIds() {
    std::vector<std::int64_t> ids;
    for (const auto& c : receiver_.Calls()) {
      json doc = json::parse(FormDecode(c.body.substr(8)));
      for (const auto& e : doc["events"]) ids.push_back(e["id"].get<std::int64_t>());
    }
    return ids;
  }
  std::string StatusOf(int request_id) {
    auto all = api_->Get("/allocation-requests?status=all").Json()["allocation_requests"];
    for (const auto& e : all) {
      if (e["id"] == request_id) return e["status"];
    }
    return "";
  }
};

TEST_F(Delivery, CentraFormatIsByteExactAndSigned) {
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: test123}"}}));
  api_->CreateAllocation(15, "[[3]]");
  ASSERT_TRUE(receiver_.WaitForCalls(1, 15s)) << dispatcher_->Stderr();
  Receiver::Call call = receiver_.Calls()[0];
  EXPECT_EQ(call.path, "/hook");
  EXPECT_EQ(call.Header("Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_THAT(call.Header("User-Agent"), StartsWith("allocation-relay/"));
  ASSERT_THAT(call.body, StartsWith("payload="));
  // The signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>.
  std::smatch m;
  std::string signature = call.Header("X-Centra-Signature");
  ASSERT_TRUE(std::regex_match(signature, m, std::regex(R"(t=(\d+),v1=([0-9a-f]{64}))")))
      << signature;
  EXPECT_EQ(signature, CentraSignatureHeader("test123", std::stoll(m[1]), call.body));
  // The body is exactly payload=<urlencode(JSON)> of Centra's event shape.
  std::string document = FormDecode(call.body.substr(8));
  EXPECT_EQ("payload=" + FormUrlEncode(document), call.body);
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(document);
  ASSERT_EQ(doc["events"].size(), 1u);
  nlohmann::ordered_json e = doc["events"][0];
  std::vector<std::string> keys;
  for (auto& [k, v] : e.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"type", "action", "date", "id", "data"}));
  EXPECT_EQ(e["type"], "allocation_request");
  EXPECT_EQ(e["action"], "create");
  EXPECT_EQ(e["id"], 1);
  EXPECT_TRUE(std::regex_match(e["date"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})")));
  EXPECT_EQ(e["data"]["status"], "allocated");
  EXPECT_EQ(e["data"]["warehouseId"], 3);
  EXPECT_EQ(e["data"]["expirationDate"]["timezone_type"], 3);
  EXPECT_EQ(e["data"]["expirationDate"]["timezone"], "Europe/Stockholm");
  EXPECT_EQ(e["data"]["order"].dump(), R"({"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":15})");
  EXPECT_EQ(e["data"]["lines"].dump(), R"({"73":{"lineId":73,"quantity":5,"stockItemId":1}})");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 10s));
}

TEST_F(Delivery, StandardWebhooksFormatIsSignedPerTheSpec) {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  Start(Options({{4, "{url: '" + receiver_.Url("/sw") + "', secret: '" + secret +
                         "', signature: standard-webhooks}"}}));
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(receiver_.WaitForCalls(1, 15s)) << dispatcher_->Stderr();
  Receiver::Call call = receiver_.Calls()[0];
  EXPECT_EQ(call.Header("Content-Type"), "application/json");
  EXPECT_THAT(call.Header("webhook-id"), StartsWith("msg_"));
  std::string ts = call.Header("webhook-timestamp");
  ASSERT_FALSE(ts.empty());
  EXPECT_EQ(
      call.Header("webhook-signature"),
      *StandardWebhooksSignature(secret, call.Header("webhook-id"), std::stoll(ts), call.body));
  EXPECT_EQ(json::parse(call.body)["events"][0]["data"]["warehouseId"], 4);
}

// The reference implementation (npm `standardwebhooks`, installed by tests/run.sh) verifies
// what the dispatcher sends.
TEST_F(Delivery, StandardWebhooksSignatureVerifiesWithTheReferenceLibrary) {
  const std::string dir = STANDARDWEBHOOKS_DIR;
  ASSERT_TRUE(std::filesystem::exists(dir + "/node_modules/standardwebhooks"))
      << "run: npm ci --prefix " << dir << " (tests/run.sh does)";
  const std::string secret = "whsec_" + Base64Encode("allocation-relay test secret 0123");
  Start(Options({{4, "{url: '" + receiver_.Url() + "', secret: '" + secret +
                         "', signature: standard-webhooks}"}}));
  api_->CreateAllocation(15, "[[4]]");
  api_->CreateAllocation(16, "[[4]]");
  ASSERT_TRUE(receiver_.WaitForCalls(1, 15s)) << dispatcher_->Stderr();
  Receiver::Call call = receiver_.Calls()[0];
  json headers = {{"webhook-id", call.Header("webhook-id")},
                  {"webhook-timestamp", call.Header("webhook-timestamp")},
                  {"webhook-signature", call.Header("webhook-signature")}};
  std::string headers_file = api_->dir().Write("headers.json", headers.dump());
  std::string body_file = api_->dir().Write("body.json", call.body);
  testing::CommandResult good = testing::RunCommand(
      {"/usr/bin/env", "node", dir + "/verify.mjs", secret, headers_file, body_file},
      api_->dir().path());
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_THAT(good.out, HasSubstr("verified:"));
  // The check can fail: a changed body is refused by the same library.
  std::string tampered = api_->dir().Write("tampered.json", call.body + " ");
  testing::CommandResult bad = testing::RunCommand(
      {"/usr/bin/env", "node", dir + "/verify.mjs", secret, headers_file, tampered},
      api_->dir().path());
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
}

TEST_F(Delivery, AFailedAttemptIsRetriedUnderTheSameDeliveryId) {
  receiver_.Script({500});
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s, signature: centra}"}}));
  api_->CreateAllocation(15, "[[3]]");
  ASSERT_TRUE(receiver_.WaitForCalls(2, 15s)) << dispatcher_->Stderr();
  auto calls = receiver_.Calls();
  EXPECT_EQ(calls[0].body, calls[1].body);  // the batch is retried as it is
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 10s));
  auto attempts = AttemptsOfTheSucceededDelivery(3);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 500);
  EXPECT_EQ(attempts[0].response_head, "received 1");
  EXPECT_EQ(attempts[1].http_status, 200);
}

TEST_F(Delivery, AfterTheScheduleTheDeliveryIsDeadAndTheApiStillWorks) {
  receiver_.SetDefault(500);
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}}));
  api_->CreateAllocation(15, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kDead, 3, 10)->size() == 1; }, 15s))
      << dispatcher_->Stderr();
  EXPECT_EQ(receiver_.Calls().size(), 3u);  // first try + the two retries of the schedule
  EXPECT_EQ(StatusOf(1), "failed");
  // A warehouse whose webhook is down confirms through the API alone.
  EXPECT_EQ(api_->Update(1, "confirmed")["success"], true);
  EXPECT_EQ(StatusOf(1), "confirmed");
}

TEST_F(Delivery, GoneDisablesTheWebhookUntilEnabledAndNothingIsLost) {
  receiver_.Script({410});
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}}));
  api_->CreateAllocation(15, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor([&] { return store->DisabledWebhooks()->size() == 1; }, 15s))
      << dispatcher_->Stderr();
  api_->CreateAllocation(16, "[[3]]");
  std::this_thread::sleep_for(1500ms);  // give a (wrong) second call the chance to happen
  EXPECT_EQ(receiver_.Calls().size(), 1u);
  ASSERT_TRUE(*store->EnableWebhook(3));
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent" && StatusOf(2) == "sent"; }, 15s))
      << dispatcher_->Stderr();
}

// A 410 is not a failed retry: after the webhook is enabled again, the delivery still has its
// whole retry schedule (here one retry), so a 500 then is retried, not dead.
TEST_F(Delivery, GoneAnswersDoNotUseUpTheRetrySchedule) {
  receiver_.Script({410, 500});
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}},
                "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [300ms]}"));
  api_->CreateAllocation(15, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor([&] { return store->DisabledWebhooks()->size() == 1; }, 15s))
      << dispatcher_->Stderr();
  ASSERT_TRUE(*store->EnableWebhook(3));
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 15s))
      << dispatcher_->Stderr();
  auto attempts = AttemptsOfTheSucceededDelivery(3);
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].http_status, 410);
  EXPECT_EQ(attempts[1].http_status, 500);
  EXPECT_EQ(attempts[2].http_status, 200);
}

TEST_F(Delivery, PrivateDestinationsAreRefusedUnlessAllowed) {
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}},
                "{listen: '127.0.0.1:0', retry_schedule: [100ms]}"));
  api_->CreateAllocation(15, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kDead, 3, 10)->size() == 1; }, 15s))
      << dispatcher_->Stderr();
  EXPECT_TRUE(receiver_.Calls().empty());
  auto attempts = *store->ListAttempts((*store->ListDeliveries(DeliveryState::kDead, 3, 10))[0].id);
  ASSERT_FALSE(attempts.empty());
  EXPECT_EQ(attempts[0].http_status, 0);
  EXPECT_THAT(attempts[0].error, HasSubstr("destination refused"));
  EXPECT_EQ(StatusOf(1), "failed");
}

TEST_F(Delivery, EventsOfOneWarehouseArriveInOrderBatched) {
  receiver_.Script({500});  // hold the first batch back once so later events pile up
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s, max_events_per_call: 3}"}},
                "{listen: '127.0.0.1:0', allow_private_networks: true, "
                "retry_schedule: [1s]}"));
  for (int i = 0; i < 7; ++i) api_->CreateAllocation(100 + i, "[[3]]");
  // Wait for every event past the first call (answered 500; its batch, of however many events
  // had been committed when it formed, arrives again in the next call).
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto calls = receiver_.Calls();
        std::size_t events = 0;
        for (std::size_t i = 1; i < calls.size(); ++i) {
          events += json::parse(FormDecode(calls[i].body.substr(8)))["events"].size();
        }
        return events >= 7;
      },
      20s))
      << dispatcher_->Stderr();
  std::vector<std::int64_t> ids;
  auto calls = receiver_.Calls();
  for (std::size_t i = 1; i < calls.size(); ++i) {  // calls[0] was answered 500
    json doc = json::parse(FormDecode(calls[i].body.substr(8)));
    EXPECT_LE(doc["events"].size(), 3u);
    for (const auto& e : doc["events"]) ids.push_back(e["id"].get<std::int64_t>());
  }
  EXPECT_EQ(ids, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7})) << calls.size();
}

// The dispatcher claims several deliveries of a warehouse ahead and sends the next one as soon
// as the previous one is answered 2xx. A failure in the middle must still hold everything after
// it back until its retry succeeded: the receiver sees 1 2 3(500) 3 4 5 6 7 8, nothing else.
TEST_F(Delivery, StrictOrderHoldsWhenACallFailsBehindDeliveriesClaimedAhead) {
  receiver_.Script({200, 200, 500});
  api_ = std::make_unique<ApiProcess>(
      Options({{3, "{url: '" + receiver_.Url() + "', secret: s, max_events_per_call: 1}"}},
              "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [1s]}"));
  for (int i = 0; i < 8; ++i) api_->CreateAllocation(100 + i, "[[3]]");  // queued before start
  StartDispatcher();
  ASSERT_TRUE(receiver_.WaitForCalls(9, 20s)) << dispatcher_->Stderr();
  EXPECT_EQ(ReceivedEventIds(), (std::vector<std::int64_t>{1, 2, 3, 3, 4, 5, 6, 7, 8}));
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(8) == "sent"; }, 10s));
  auto store = OpenStore();
  EXPECT_EQ(store->ListDeliveries(DeliveryState::kSucceeded, 3, 100)->size(), 8u);
  EXPECT_EQ(store->ListDeliveries(DeliveryState::kPending, 3, 100)->size(), 0u);
}

// A slow warehouse with stored deliveries claimed ahead (16 dead ones an operator sends again):
// the later ones wait for their turn longer than a call's timeout, so their leases are renewed
// before they go. Nothing is sent twice or out of order, and each succeeds at its next attempt.
TEST_F(Delivery, LeasesOfDeliveriesWaitingBehindASlowWarehouseAreRenewed) {
  receiver_.SetDefault(500);
  Start(Options(
      {{3, "{url: '" + receiver_.Url() + "', secret: s, max_events_per_call: 1, timeout: 400ms}"}},
      "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [50ms]}"));
  for (int i = 0; i < 16; ++i) api_->CreateAllocation(100 + i, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kDead, 3, 100)->size() == 16; }, 20s))
      << dispatcher_->Stderr();
  const std::size_t failed_calls = receiver_.Calls().size();
  EXPECT_EQ(failed_calls, 32u);  // two attempts each
  receiver_.SetDefault(200);
  receiver_.Delay(380ms, 16);
  ASSERT_EQ(*store->ResendDead(3, SystemClock().Now()), 16);
  ASSERT_TRUE(receiver_.WaitForCalls(failed_calls + 16, 30s)) << dispatcher_->Stderr();
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(16) == "sent"; }, 10s));
  std::vector<std::int64_t> ids = ReceivedEventIds();
  std::vector<std::int64_t> in_order(16);
  std::iota(in_order.begin(), in_order.end(), 1);
  EXPECT_EQ(std::vector<std::int64_t>(ids.end() - 16, ids.end()), in_order);
  auto done = *store->ListDeliveries(DeliveryState::kSucceeded, 3, 100);
  ASSERT_EQ(done.size(), 16u);
  for (const auto& d : done) EXPECT_EQ(d.attempt_count, 3) << d.uid;
  EXPECT_THAT(dispatcher_->Stderr(), HasSubstr("renewed the leases of"));
}

// SIGTERM with deliveries formed ahead: the call in flight finishes and is recorded; the new
// deliveries not sent were never stored (a delivery is stored with its first attempt), so their
// events wait unbatched and a restart sends them at once, in order, under the same ids.
TEST_F(Delivery, SigtermRecordsTheCallInFlightAndLeavesTheRestUnsent) {
  receiver_.Delay(300ms, 10);
  api_ = std::make_unique<ApiProcess>(
      Options({{3, "{url: '" + receiver_.Url() + "', secret: s, max_events_per_call: 1}"}}));
  for (int i = 0; i < 8; ++i) api_->CreateAllocation(100 + i, "[[3]]");
  StartDispatcher();
  ASSERT_TRUE(receiver_.WaitForCalls(1, 10s)) << dispatcher_->Stderr();
  dispatcher_->Signal(SIGTERM);
  ASSERT_EQ(dispatcher_->Wait(10s), 0) << dispatcher_->Stderr();
  auto store = OpenStore();
  auto done = *store->ListDeliveries(DeliveryState::kSucceeded, 3, 100);
  EXPECT_EQ(done.size(), receiver_.Calls().size());  // every call made was recorded
  EXPECT_TRUE(store->ListDeliveries(DeliveryState::kPending, 3, 100)->empty());
  const std::size_t unsent = store->ListUnbatchedEvents(3, 100)->size();
  EXPECT_EQ(unsent, 8 - done.size());
  EXPECT_GT(unsent, 0u);
  // Restarted, the rest goes out at once, in order.
  receiver_.Delay(0ms, 0);
  StartDispatcher();
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(8) == "sent"; }, 5s)) << dispatcher_->Stderr();
  EXPECT_EQ(ReceivedEventIds(), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

// The nice value in a /proc stat file (field 19).
int NiceIn(const std::filesystem::path& stat_file) {
  std::ifstream in(stat_file);
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // from field 3 (state)
  std::string field;
  for (int i = 3; i <= 19 && fields >> field; ++i) {
    if (i == 19) return std::stoi(field);
  }
  return 0;
}

// The nice value of each thread of `pid`.
std::vector<int> ThreadNices(pid_t pid) {
  std::vector<int> nices;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    nices.push_back(NiceIn(task.path() / "stat"));
  }
  return nices;
}

// Whether this process may lower a thread's nice value (root with CAP_SYS_NICE, or RLIMIT_NICE).
bool MayLowerNice() {
  bool ok = false;
  std::thread probe([&] {
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, 0);
    ok = errno == 0 && nice > -20 && setpriority(PRIO_PROCESS, 0, nice - 1) == 0;
  });
  probe.join();
  return ok;
}

// dispatcher.send_thread_nice: the send thread runs at the process's nice value plus it, when
// the process may lower it; when it may not, the dispatcher says so and goes on.
TEST_F(Delivery, TheSendThreadRunsAtItsConfiguredNiceValue) {
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}},
                "{listen: '127.0.0.1:0', allow_private_networks: true, send_thread_nice: -3}"));
  api_->CreateAllocation(15, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 10s))
      << dispatcher_->Stderr();
  std::vector<int> nices = ThreadNices(dispatcher_->pid());
  ASSERT_FALSE(nices.empty());
  const int process = NiceIn("/proc/" + std::to_string(dispatcher_->pid()) + "/stat");
  const int expected = std::max(-20, process - 3);
  if (MayLowerNice()) {
    EXPECT_EQ(std::count(nices.begin(), nices.end(), expected), 1)
        << ::testing::PrintToString(nices);
    EXPECT_THAT(dispatcher_->Stderr(),
                HasSubstr("send thread at nice " + std::to_string(expected)));
  } else {
    EXPECT_THAT(dispatcher_->Stderr(), HasSubstr("send thread stays at the process's priority"));
    EXPECT_EQ(std::count(nices.begin(), nices.end(), process), static_cast<long>(nices.size()));
  }
}

// max_in_flight 3: a slow warehouse gets three calls at once (their attempts overlap in time),
// which strict order (the default, 1) never does.
TEST_F(Delivery, MaxInFlightSendsSeveralCallsToOneWarehouseAtOnce) {
  receiver_.Delay(1000ms, 3);
  Start(Options({{3, "{url: '" + receiver_.Url() +
                         "', secret: s, max_events_per_call: 1, max_in_flight: 3}"}}));
  for (int i = 0; i < 3; ++i) api_->CreateAllocation(100 + i, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(3) == "sent"; }, 15s))
      << dispatcher_->Stderr();
  auto store = OpenStore();
  auto done = *store->ListDeliveries(DeliveryState::kSucceeded, 3, 10);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kSucceeded, 3, 10)->size() == 3; }, 10s));
  done = *store->ListDeliveries(DeliveryState::kSucceeded, 3, 10);
  TimePoint latest_start = TimePoint::min(), earliest_end = TimePoint::max();
  for (const auto& d : done) {
    auto attempts = *store->ListAttempts(d.id);
    ASSERT_EQ(attempts.size(), 1u);
    latest_start = std::max(latest_start, attempts[0].started_at);
    earliest_end = std::min(earliest_end, attempts[0].started_at + attempts[0].duration);
  }
  EXPECT_LT(latest_start, earliest_end) << "the three calls did not overlap";
}

// A warehouse that hangs past the call's timeout: the attempt is recorded as a timeout (no HTTP
// status) and retried; the retry succeeds.
TEST_F(Delivery, AHangingReceiverTimesOutAndIsRetried) {
  receiver_.Delay(1500ms, 1);
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s, timeout: 300ms}"}}));
  api_->CreateAllocation(15, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 15s))
      << dispatcher_->Stderr();
  auto attempts = AttemptsOfTheSucceededDelivery(3);
  ASSERT_GE(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 0);
  EXPECT_THAT(attempts[0].error, HasSubstr("Timeout"));
  EXPECT_LT(attempts[0].duration, 1200ms);  // cut at the timeout, not at the answer
  EXPECT_EQ(attempts.back().http_status, 200);
}

// A warehouse that resets every connection: attempts are recorded as network errors, the
// requests become failed, and after the schedule the delivery is dead.
TEST_F(Delivery, AReceiverThatResetsConnectionsIsRecordedAsNetworkErrors) {
  testing::ResettingServer resetting;
  Start(Options({{3, "{url: '" + resetting.Url() + "', secret: s}"}}));
  api_->CreateAllocation(15, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kDead, 3, 10)->size() == 1; }, 15s))
      << dispatcher_->Stderr();
  auto attempts = *store->ListAttempts((*store->ListDeliveries(DeliveryState::kDead, 3, 10))[0].id);
  ASSERT_EQ(attempts.size(), 3u);
  for (const DeliveryAttempt& a : attempts) {
    EXPECT_EQ(a.http_status, 0);
    EXPECT_FALSE(a.error.empty());
  }
  EXPECT_GE(resetting.accepted(), 3);
  EXPECT_EQ(StatusOf(1), "failed");
}

TEST_F(Delivery, StatusServerReportsHealthAndMetrics) {
  receiver_.Script({500});
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}}));
  std::smatch m;
  std::string err = dispatcher_->Stderr();
  ASSERT_TRUE(std::regex_search(err, m, std::regex(R"(dispatcher status on 127\.0\.0\.1:(\d+))")))
      << err;
  httplib::Client status("127.0.0.1", std::stoi(m[1]));
  auto health = status.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, R"({"status":"ok"})");
  api_->CreateAllocation(15, "[[3]]");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 15s));
  auto metrics = status.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body,
              HasSubstr("allocation_relay_delivery_attempts_total{outcome=\"succeeded\"} 1"));
  EXPECT_THAT(metrics->body,
              HasSubstr("allocation_relay_delivery_attempts_total{outcome=\"failed\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("allocation_relay_deliveries{state=\"succeeded\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("allocation_relay_delivery_latency_seconds_count 1"));
  EXPECT_THAT(metrics->body, HasSubstr("allocation_relay_dispatcher_database_up 1"));
  if (testing::TestOnPostgresql()) return;  // the rest moves the SQLite file away
  std::string moved = api_->DatabasePath() + ".moved";
  ASSERT_EQ(std::rename(api_->DatabasePath().c_str(), moved.c_str()), 0);
  EXPECT_EQ(status.Get("/health")->status, 503);
  ASSERT_EQ(std::rename(moved.c_str(), api_->DatabasePath().c_str()), 0);
  EXPECT_EQ(status.Get("/health")->status, 200);
}

// The operator commands against the running services' database.
TEST_F(Delivery, OperatorCommandsListResendEnableShowHistoryAndBackUp) {
  receiver_.SetDefault(500);
  Start(Options({{3, "{url: '" + receiver_.Url() + "', secret: s}"}},
                "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [100ms]}"));
  api_->CreateAllocation(15, "[[3]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return store->ListDeliveries(DeliveryState::kDead, 3, 10)->size() == 1; }, 15s));
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {DISPATCHER_BINARY, "--config", api_->ConfigPath()});
    return testing::RunCommand(args, api_->dir().path());
  };
  testing::CommandResult list = run({"deliveries", "--state", "dead"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("\tdead\t2\t1\t-\tHTTP 500\n"));
  EXPECT_THAT(run({"deliveries", "--state", "pending"}).out, ::testing::Not(HasSubstr("msg_")));

  receiver_.SetDefault(200);
  testing::CommandResult resend = run({"resend", "--warehouse", "3"});
  EXPECT_EQ(resend.exit_code, 0) << resend.err;
  EXPECT_EQ(resend.out, "1 dead deliveries queued again for warehouse 3\n");
  ASSERT_TRUE(testing::WaitFor([&] { return StatusOf(1) == "sent"; }, 15s));

  testing::CommandResult history = run({"history", "--order", "15"});
  EXPECT_EQ(history.exit_code, 0) << history.err;
  EXPECT_THAT(history.out, HasSubstr("order 15 (486e13eaaa65d5ff1e87c997b5dce54e): open"));
  EXPECT_THAT(history.out, HasSubstr("request 1 warehouse 3 (Amsterdam): sent"));
  EXPECT_THAT(history.out, HasSubstr("create (allocated) of request 1"));
  EXPECT_THAT(history.out, HasSubstr("succeeded after 3 attempts"));
  EXPECT_EQ(run({"history", "--order", "99"}).exit_code, 1);

  testing::CommandResult enable = run({"enable-webhook", "--warehouse", "3"});
  EXPECT_EQ(enable.out, "webhook of warehouse 3 was not disabled; nothing changed\n");

  std::string copy = api_->dir().File("backup.db");
  testing::CommandResult backup = run({"backup", "--to", copy});
  if (testing::TestOnPostgresql()) {
    // Nothing to copy a file of: the command says to use pg_dump (SPEC section 10).
    EXPECT_THAT(backup.out + backup.err, HasSubstr("pg_dump"));
    return;
  }
  EXPECT_EQ(backup.exit_code, 0) << backup.err;
  auto restored = Store::Open(testing::SqliteStoreOptions(copy, SynchronousMode::kNormal, 5000ms,
                                                          /*create_and_migrate=*/false));
  EXPECT_TRUE(*restored->IntegrityCheck());
  EXPECT_EQ((*restored->GetAllocationByOrder(15))->requests.size(), 1u);
  EXPECT_EQ(run({"backup", "--to", copy}).exit_code, 1);  // never overwrites
}

// Two dispatchers on one database divide the warehouses (SPEC section 10): the second one,
// started while the first is sending a backlog, gets a share of them, and every event is
// received once (nothing failed, so there is no reason for a second copy) and in order per
// warehouse.
TEST(Dispatchers, TwoDispatchersDivideTheWarehousesBetweenThem) {
  testing::TempDir dir;
  testing::TestDatabase database(dir);
  Receiver receiver;
  receiver.Delay(50ms,
                 1000000);  // the backlog lasts a few seconds (strict order: 1 call at a time)
  constexpr int kWarehouses = 16, kPerWarehouse = 50;
  std::vector<WarehouseInfo> infos;
  std::string config =
      "timezone: Europe/Stockholm\nlog_level: info\nstore: " +
      testing::StoreYaml(database.options()) +
      "\ndispatcher: {listen: '127.0.0.1:0', allow_private_networks: true}\nwarehouses:\n";
  for (int w = 1; w <= kWarehouses; ++w) {
    infos.push_back({w, "W" + std::to_string(w)});
    config += "  - {id: " + std::to_string(w) + ", name: W" + std::to_string(w) +
              ", webhook: {url: '" + receiver.Url("/w" + std::to_string(w)) +
              "', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', signature: "
              "standard-webhooks, max_events_per_call: 1}}\n";
  }
  const std::string config_path = dir.Write("relay.yaml", config);
  {
    auto store = Store::Open(database.options());
    const WarehouseCatalog catalog(infos);
    for (int i = 0; i < kWarehouses * kPerWarehouse; ++i) {
      NewAllocation a{{"o" + std::to_string(i), 1000 + i}, {{1, 1, 1}}, {{1 + i % kWarehouses}}};
      ASSERT_TRUE(store->CreateAllocation(a, SystemClock().Now(), catalog).has_value());
    }
  }
  auto start = [&] {
    auto p = std::make_unique<Process>(
        std::vector<std::string>{DISPATCHER_BINARY, "--config", config_path}, dir.path());
    EXPECT_TRUE(testing::WaitFor(
        [&] { return p->Stderr().find("dispatcher ready") != std::string::npos; }, 15s))
        << p->Stderr();
    return p;
  };
  auto first = start();
  ASSERT_TRUE(receiver.WaitForCalls(20, 15s)) << first->Stderr();
  auto second = start();
  const std::size_t total = kWarehouses * kPerWarehouse;
  ASSERT_TRUE(receiver.WaitForCalls(total, 60s)) << first->Stderr() << second->Stderr();
  long long a = -1, b = -1;
  testing::WaitFor(
      [&] {
        a = testing::SucceededCalls(*first);
        b = testing::SucceededCalls(*second);
        return a >= 0 && b >= 0 && static_cast<std::size_t>(a + b) >= total;
      },
      10s);
  std::cout << "[ dispatchers ] calls by the first: " << a << ", by the second: " << b << "\n";
  EXPECT_GT(b, 0) << "the second dispatcher got no warehouse\n" << second->Stderr();
  EXPECT_GT(a, 0);
  EXPECT_THAT(second->Stderr(), HasSubstr("2 dispatcher(s) share the warehouses"));
  // Each warehouse's events arrived once each, in the order they were queued (request ids).
  std::map<std::string, std::vector<std::int64_t>> by_warehouse;
  for (const Receiver::Call& c : receiver.Calls()) {
    EXPECT_EQ(c.status, 200);
    const json doc = json::parse(c.body);
    for (const auto& e : doc["events"]) by_warehouse[c.path].push_back(e["id"].get<std::int64_t>());
  }
  EXPECT_EQ(by_warehouse.size(), static_cast<std::size_t>(kWarehouses));
  for (const auto& [path, ids] : by_warehouse) {
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kPerWarehouse)) << path;
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << path;
    EXPECT_EQ(std::set<std::int64_t>(ids.begin(), ids.end()).size(), ids.size()) << path;
  }
  for (auto* p : {first.get(), second.get()}) {
    p->Signal(SIGTERM);
    EXPECT_EQ(p->Wait(20s), 0) << p->Stderr();
  }
}

}  // namespace
}  // namespace allocation_relay
