// DeliveryLoop in process: its two threads over a real database file, sending through a scripted
// transport (fake warehouses answering 2xx, 500, 410, 429 with Retry-After, a connection error,
// or nothing until the call's timeout). Time is a ManualClock: a retry falls due only when a test
// moves the clock. Tests wait for states with a bounded poll and assert on what the store holds.
#include "delivery_loop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/store_fixture.h"
#include "webhook_transport.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::Pair;
using testing::StoreTest;

// What a fake warehouse answers to one call.
struct Answer {
  int http_status = 200;  // 0: no HTTP answer, `error` says why
  std::string error;
  std::optional<std::chrono::milliseconds> retry_after;
  // No answer until the call's timeout passes (steady clock) or the test ends it
  // (EndHungCallsAtNextWakeup); then it ends as a timeout.
  bool hang = false;
};
Answer Status(int http_status) { return {http_status, "", std::nullopt, false}; }
Answer TooManyRequests(std::chrono::milliseconds retry_after) {
  return {429, "", retry_after, false};
}
Answer ConnectionRefused() { return {0, "Couldn't connect to server", std::nullopt, false}; }
Answer Hang() { return {0, "", std::nullopt, true}; }

// The warehouses behind the scripted transport: the test scripts their answers and reads the
// calls they saw; the transport the loop owns submits and polls through them. Thread-safe.
class FakeWarehouses {
 public:
  struct SeenCall {
    std::string url;
    std::string uid;  // the webhook-id header: the delivery's uid
    int http_status;  // as answered (0: none)
  };

  // The answers to the next calls to `url`, in order; after them every call gets a 200.
  void Script(const std::string& url, std::vector<Answer> answers) {
    std::lock_guard lock(mu_);
    for (Answer& a : answers) scripts_[url].push_back(std::move(a));
  }
  // Calls that hang end with `answer` in the first Poll after the next Wakeup() (the one Stop()
  // makes): the Poll that Wakeup() interrupts returns without them, so the loop must poll again.
  void EndHungCallsAtNextWakeup(Answer answer) {
    std::lock_guard lock(mu_);
    end_hung_with_ = std::move(answer);
  }
  std::vector<SeenCall> Calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<SeenCall> CallsTo(const std::string& url) const {
    std::vector<SeenCall> to;
    for (SeenCall& c : Calls()) {
      if (c.url == url) to.push_back(std::move(c));
    }
    return to;
  }
  std::size_t Hanging() const {
    std::lock_guard lock(mu_);
    return static_cast<std::size_t>(
        std::count_if(open_.begin(), open_.end(), [](const OpenCall& c) { return c.hung; }));
  }

  // The transport's side.
  void Submit(WebhookCall call) {
    std::lock_guard lock(mu_);
    Answer answer;
    if (auto it = scripts_.find(call.url); it != scripts_.end() && !it->second.empty()) {
      answer = std::move(it->second.front());
      it->second.pop_front();
    }
    std::string uid;
    for (const auto& [name, value] : call.request.headers) {
      if (name == "webhook-id") uid = value;
    }
    const auto now = std::chrono::steady_clock::now();
    OpenCall open{{}, answer.hang ? now + call.timeout : now, answer.hang, false, calls_.size()};
    if (answer.hang) {
      open.outcome = TimedOut(call.tag, call.timeout);
    } else {
      open.outcome = Answered(call.tag, answer);
    }
    calls_.push_back({call.url, uid, open.outcome.http_status});
    open_.push_back(std::move(open));
    cv_.notify_all();
  }
  std::vector<WebhookOutcome> Poll(std::chrono::milliseconds max_wait) {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + max_wait;
    for (OpenCall& c : open_) {
      if (!c.ends_at_next_poll) continue;
      c.ends_at_next_poll = false;
      c.ends_at = std::chrono::steady_clock::now();
    }
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      std::vector<WebhookOutcome> done;
      auto earliest = deadline;
      for (auto it = open_.begin(); it != open_.end();) {
        if (it->ends_at <= now) {
          done.push_back(std::move(it->outcome));
          it = open_.erase(it);
        } else {
          earliest = std::min(earliest, it->ends_at);
          ++it;
        }
      }
      if (!done.empty() || woken_ || now >= deadline) {
        woken_ = false;
        return done;
      }
      cv_.wait_until(lock, earliest);
    }
  }
  std::size_t InFlight() const {
    std::lock_guard lock(mu_);
    return open_.size();
  }
  void Wakeup() {
    std::lock_guard lock(mu_);
    woken_ = true;
    if (end_hung_with_) {
      for (OpenCall& c : open_) {
        if (!c.hung) continue;
        c.hung = false;
        c.ends_at_next_poll = true;
        if (!end_hung_with_->hang) c.outcome = Answered(c.outcome.tag, *end_hung_with_);
        calls_[c.call_index].http_status = c.outcome.http_status;
      }
      end_hung_with_.reset();
    }
    cv_.notify_all();
  }

 private:
  struct OpenCall {
    WebhookOutcome outcome;
    std::chrono::steady_clock::time_point ends_at;
    bool hung;
    bool ends_at_next_poll;  // ended by the test: at the start of the next Poll
    std::size_t call_index;  // in calls_
  };
  static WebhookOutcome Answered(std::uint64_t tag, const Answer& answer) {
    WebhookOutcome o;
    o.tag = tag;
    o.http_status = answer.http_status;
    o.error = answer.error;
    o.duration = 1ms;
    o.response_head = answer.http_status ? "answer " + std::to_string(answer.http_status) : "";
    o.retry_after = answer.retry_after;
    return o;
  }
  static WebhookOutcome TimedOut(std::uint64_t tag, std::chrono::milliseconds timeout) {
    WebhookOutcome o;
    o.tag = tag;
    o.error = "Timeout was reached";
    o.duration = timeout;
    return o;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<Answer>> scripts_;
  std::vector<SeenCall> calls_;
  std::vector<OpenCall> open_;
  bool woken_ = false;
  std::optional<Answer> end_hung_with_;
};

// What the loop owns: a WebhookTransport over the shared fake warehouses.
class ScriptedTransport final : public WebhookTransport {
 public:
  explicit ScriptedTransport(std::shared_ptr<FakeWarehouses> warehouses)
      : warehouses_(std::move(warehouses)) {}
  void Submit(WebhookCall call) override { warehouses_->Submit(std::move(call)); }
  std::vector<WebhookOutcome> Poll(std::chrono::milliseconds max_wait) override {
    return warehouses_->Poll(max_wait);
  }
  std::size_t in_flight() const override { return warehouses_->InFlight(); }
  void Wakeup() override { warehouses_->Wakeup(); }

 private:
  std::shared_ptr<FakeWarehouses> warehouses_;
};

constexpr char kUrl3[] = "https://warehouse-3.example/hook";
constexpr char kUrl4[] = "https://warehouse-4.example/hook";

// StoreTest's warehouses 3 and 4 with webhooks (strict order), 7 without.
class DeliveryLoopTest : public StoreTest {
 protected:
  DeliveryLoopTest() {
    config_.dispatcher.retry_schedule = {5s, 5min, 30min};
    config_.dispatcher.send_thread_nice = 0;  // nothing to log
    config_.warehouses = {{3, "Amsterdam", 1h, Webhook(kUrl3)},
                          {4, "Tokyo", 1h, Webhook(kUrl4)},
                          {7, "Central", 2h, std::nullopt}};
  }
  ~DeliveryLoopTest() override {
    if (loop_) loop_->Stop();
  }

  static WebhookConfig Webhook(const std::string& url) {
    WebhookConfig hook;
    hook.url = url;
    hook.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    hook.signature = SignatureScheme::kStandardWebhooks;
    hook.timeout = 2s;
    return hook;
  }
  WebhookConfig& HookOf(std::int64_t warehouse) {
    for (WarehouseConfig& w : config_.warehouses) {
      if (w.id == warehouse) return *w.webhook;
    }
    throw std::logic_error("no such warehouse");
  }

  void StartLoop() {
    loop_ = std::make_unique<DeliveryLoop>(
        Options(), clock_, std::make_shared<const Config>(config_),
        [warehouses = warehouses_] { return std::make_unique<ScriptedTransport>(warehouses); });
    loop_->Start();
  }

  template <typename F>
  static bool Eventually(F condition) {
    return testing::WaitFor(condition, 10s);
  }
  RequestStatus StatusOf(std::int64_t order, std::int64_t warehouse) {
    return RequestOf(order, warehouse).status;
  }
  // The stored delivery of order `order`'s request to `warehouse`, if stored yet.
  std::optional<Delivery> DeliveryOf(std::int64_t order, std::int64_t warehouse) {
    const std::int64_t request_id = RequestOf(order, warehouse).id;
    auto all = store_->ListDeliveries(std::nullopt, warehouse, 1000);
    EXPECT_TRUE(all.has_value());
    if (!all) return std::nullopt;
    for (Delivery& d : *all) {
      if (std::ranges::find(d.request_ids, request_id) != d.request_ids.end()) return d;
    }
    return std::nullopt;
  }
  std::vector<DeliveryAttempt> AttemptsOf(const Delivery& d) {
    auto attempts = store_->ListAttempts(d.id);
    EXPECT_TRUE(attempts.has_value());
    return attempts.value_or(std::vector<DeliveryAttempt>{});
  }
  // Whether the stored delivery of `order` to `warehouse` has had `n` attempts recorded.
  bool HasAttempts(std::int64_t order, std::int64_t warehouse, int n) {
    auto d = DeliveryOf(order, warehouse);
    return d && d->attempt_count == n;
  }
  // An allocation for warehouse 4 alone, delivered: the loop has run rounds since.
  void DeliverToTheOtherWarehouse(std::int64_t order) {
    Create(order, {{4}});
    ASSERT_TRUE(Eventually([&] { return StatusOf(order, 4) == RequestStatus::kSent; }));
  }

  Config config_;
  std::shared_ptr<FakeWarehouses> warehouses_ = std::make_shared<FakeWarehouses>();
  std::unique_ptr<DeliveryLoop> loop_;
};

TEST_F(DeliveryLoopTest, CreatedAllocationIsSentOnceAndItsRequestBecomesSent) {
  Create(15, {{3}});
  StartLoop();
  ASSERT_TRUE(Eventually([&] { return StatusOf(15, 3) == RequestStatus::kSent; }));
  loop_->Stop();  // every call made is recorded by now

  auto d = DeliveryOf(15, 3);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, DeliveryState::kSucceeded);
  EXPECT_EQ(d->attempt_count, 1);
  auto attempts = AttemptsOf(*d);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].http_status, 200);
  EXPECT_EQ(attempts[0].response_head, "answer 200");
  auto calls = warehouses_->Calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].url, kUrl3);
  EXPECT_EQ(calls[0].uid, d->uid);
  EXPECT_EQ(loop_->counters().succeeded, 1u);
  EXPECT_TRUE(store_->ListUnbatchedEvents(std::nullopt, 10)->empty());
}

TEST_F(DeliveryLoopTest, ServerErrorIsRetriedPerTheScheduleAndHoldsLaterDeliveriesBack) {
  HookOf(3).max_events_per_call = 1;  // one delivery per event
  warehouses_->Script(kUrl3, {Status(500)});
  Create(15, {{3}});
  Create(16, {{3}});
  const TimePoint failed_at = clock_.Now();
  StartLoop();
  ASSERT_TRUE(Eventually([&] { return HasAttempts(15, 3, 1); }));

  Delivery first = *DeliveryOf(15, 3);
  EXPECT_EQ(first.state, DeliveryState::kPending);
  // The schedule's first delay, 5 s, with its +-20 % jitter.
  EXPECT_GE(first.next_attempt_at, failed_at + 4s);
  EXPECT_LE(first.next_attempt_at, failed_at + 6s);
  auto attempts = AttemptsOf(first);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].http_status, 500);
  EXPECT_EQ(StatusOf(15, 3), RequestStatus::kFailed);
  // Strict order: while the first waits for its retry, the second is not sent.
  DeliverToTheOtherWarehouse(90);
  EXPECT_EQ(warehouses_->CallsTo(kUrl3).size(), 1u);
  EXPECT_EQ(StatusOf(16, 3), RequestStatus::kAllocated);
  EXPECT_FALSE(DeliveryOf(16, 3));

  clock_.Advance(6s + 1ms);  // the retry falls due
  ASSERT_TRUE(Eventually([&] { return StatusOf(16, 3) == RequestStatus::kSent; }));
  EXPECT_EQ(StatusOf(15, 3), RequestStatus::kSent);
  const std::string second_uid = DeliveryOf(16, 3)->uid;
  std::vector<std::pair<std::string, int>> sequence;
  for (const auto& c : warehouses_->CallsTo(kUrl3)) sequence.emplace_back(c.uid, c.http_status);
  EXPECT_THAT(sequence,
              ElementsAre(Pair(first.uid, 500), Pair(first.uid, 200), Pair(second_uid, 200)));
  EXPECT_EQ(DeliveryOf(15, 3)->state, DeliveryState::kSucceeded);
  EXPECT_EQ(DeliveryOf(15, 3)->attempt_count, 2);
}

TEST_F(DeliveryLoopTest, GoneDisablesTheWebhookUntilEnabledAgain) {
  warehouses_->Script(kUrl3, {Status(410)});
  Create(15, {{3}});
  StartLoop();
  ASSERT_TRUE(Eventually([&] {
    auto disabled = store_->DisabledWebhooks();
    return disabled && *disabled == std::vector<std::int64_t>{3} && HasAttempts(15, 3, 1);
  }));
  Delivery d = *DeliveryOf(15, 3);
  EXPECT_EQ(d.state, DeliveryState::kPending);  // waits for an operator, not for a retry
  EXPECT_EQ(AttemptsOf(d).at(0).http_status, 410);
  EXPECT_EQ(loop_->counters().gone, 1u);
  // Disabled: nothing goes to warehouse 3, even on a rescan.
  clock_.Advance(DeliveryLoop::kRescanInterval);
  DeliverToTheOtherWarehouse(90);
  EXPECT_EQ(warehouses_->CallsTo(kUrl3).size(), 1u);

  ASSERT_TRUE(store_->EnableWebhook(3).has_value());
  clock_.Advance(DeliveryLoop::kRescanInterval);  // enabling announces itself by no event
  ASSERT_TRUE(Eventually([&] { return StatusOf(15, 3) == RequestStatus::kSent; }));
  EXPECT_EQ(DeliveryOf(15, 3)->state, DeliveryState::kSucceeded);
  EXPECT_EQ(warehouses_->CallsTo(kUrl3).size(), 2u);
}

TEST_F(DeliveryLoopTest, ExhaustedRetriesMakeTheDeliveryDead) {
  config_.dispatcher.retry_schedule = {5s, 5min};  // three failures and it is dead
  warehouses_->Script(kUrl3, {TooManyRequests(60s), ConnectionRefused(), Status(500)});
  Create(15, {{3}});
  StartLoop();

  // 429 with Retry-After: 60 s, longer than the first delay (5 s): it wins, without jitter.
  ASSERT_TRUE(Eventually([&] { return HasAttempts(15, 3, 1); }));
  Delivery d = *DeliveryOf(15, 3);
  EXPECT_EQ(d.next_attempt_at, clock_.Now() + 60s);
  EXPECT_EQ(AttemptsOf(d).at(0).http_status, 429);

  clock_.Advance(61s);
  ASSERT_TRUE(Eventually([&] { return HasAttempts(15, 3, 2); }));
  d = *DeliveryOf(15, 3);
  EXPECT_EQ(d.state, DeliveryState::kPending);
  EXPECT_GE(d.next_attempt_at, clock_.Now() + 4min);
  EXPECT_LE(d.next_attempt_at, clock_.Now() + 6min);
  DeliveryAttempt refused = AttemptsOf(d).at(1);
  EXPECT_EQ(refused.http_status, 0);
  EXPECT_EQ(refused.error, "Couldn't connect to server");

  clock_.Advance(6min);
  ASSERT_TRUE(Eventually([&] { return HasAttempts(15, 3, 3); }));
  d = *DeliveryOf(15, 3);
  EXPECT_EQ(d.state, DeliveryState::kDead);
  EXPECT_EQ(AttemptsOf(d).at(2).http_status, 500);
  EXPECT_EQ(StatusOf(15, 3), RequestStatus::kFailed);
  EXPECT_EQ(loop_->counters().dead, 1u);
  // Dead: not sent again, however long one waits.
  clock_.Advance(10h);
  DeliverToTheOtherWarehouse(90);
  EXPECT_EQ(warehouses_->CallsTo(kUrl3).size(), 3u);

  // Re-sent by an operator (resend-dead, the console): one attempt at once, not the schedule
  // again; it fails, so the delivery is dead again, and stays so.
  warehouses_->Script(kUrl3, {Status(500)});
  ASSERT_EQ(*store_->ResendDead(3, clock_.Now()), 1);
  clock_.Advance(DeliveryLoop::kRescanInterval);  // another process's change: found by a rescan
  ASSERT_TRUE(Eventually([&] { return HasAttempts(15, 3, 4); }));
  ASSERT_TRUE(Eventually([&] { return DeliveryOf(15, 3)->state == DeliveryState::kDead; }));
  clock_.Advance(10h);
  DeliverToTheOtherWarehouse(91);
  EXPECT_EQ(warehouses_->CallsTo(kUrl3).size(), 4u);
}

TEST_F(DeliveryLoopTest, StopRecordsACallInFlightThatTimesOut) {
  HookOf(3).timeout = 60s;  // the call hangs until the test ends it
  warehouses_->Script(kUrl3, {Hang()});
  Create(15, {{3}});
  StartLoop();
  ASSERT_TRUE(Eventually([&] { return warehouses_->Hanging() == 1; }));
  // The call is in flight when Stop() begins, and ends only after it: Stop() waits for it.
  warehouses_->EndHungCallsAtNextWakeup(Hang());
  loop_->Stop();

  auto d = DeliveryOf(15, 3);
  ASSERT_TRUE(d);  // a new delivery, stored with the attempt Stop() waited for
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->attempt_count, 1);
  EXPECT_GE(d->next_attempt_at, clock_.Now() + 4s);  // the schedule's first delay
  auto attempts = AttemptsOf(*d);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].http_status, 0);
  EXPECT_EQ(attempts[0].error, "Timeout was reached");
  EXPECT_EQ(StatusOf(15, 3), RequestStatus::kFailed);
  EXPECT_TRUE(store_->ListUnbatchedEvents(std::nullopt, 10)->empty());
}

TEST_F(DeliveryLoopTest, StopRecordsACallInFlightThatSucceeds) {
  HookOf(3).timeout = 60s;  // the call hangs until the test ends it
  warehouses_->Script(kUrl3, {Hang()});
  Create(15, {{3}});
  StartLoop();
  ASSERT_TRUE(Eventually([&] { return warehouses_->Hanging() == 1; }));
  warehouses_->EndHungCallsAtNextWakeup(Status(204));
  loop_->Stop();

  auto d = DeliveryOf(15, 3);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, DeliveryState::kSucceeded);
  EXPECT_EQ(AttemptsOf(*d).at(0).http_status, 204);
  EXPECT_EQ(StatusOf(15, 3), RequestStatus::kSent);
}

// Dispatchers divide the warehouses by rendezvous hashing: every warehouse has exactly one
// dispatcher, each gets about an equal share, and one leaving moves only its own warehouses
// (the others keep theirs, and their leases).
TEST(AssignedDispatcher, SharesAreEvenAndALeavingDispatcherMovesOnlyItsOwn) {
  const std::vector<std::string> three = {
      "host-a:101:5f3a9c0e11d2b7a4", "host-b:2202:09be71c3aa4d6f10", "host-c:33:c4d2e8f1a0b9c7d6"};
  const std::vector<std::string> two = {three[0], three[2]};
  std::map<std::string, int> share;
  constexpr int kWarehouses = 3000;
  for (int w = 1; w <= kWarehouses; ++w) {
    const std::string& of_three = DeliveryLoop::AssignedDispatcher(w, three);
    ++share[of_three];
    EXPECT_EQ(&DeliveryLoop::AssignedDispatcher(w, three), &of_three);  // stable
    const std::string& of_two = DeliveryLoop::AssignedDispatcher(w, two);
    if (of_three != three[1]) {
      EXPECT_EQ(of_two, of_three) << "warehouse " << w << " moved";
    }
  }
  ASSERT_EQ(share.size(), 3u);
  for (const auto& [d, n] : share) {
    EXPECT_GT(n, kWarehouses / 3 * 8 / 10) << d;  // within 20 % of an equal share
    EXPECT_LT(n, kWarehouses / 3 * 12 / 10) << d;
  }
  // One dispatcher alone has every warehouse.
  EXPECT_EQ(DeliveryLoop::AssignedDispatcher(7, {three[1]}), three[1]);
}

}  // namespace
}  // namespace allocation_relay
