#include "delivery_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/time_zone.h"
#include "retry_schedule.h"

namespace allocation_relay {
namespace {

// A claim lasts twice the call's timeout plus a second: a live dispatcher always records its
// attempt before another one may take the delivery over, and a crashed one's delivery is sent
// again soon after.
Micros LeaseFor(std::chrono::milliseconds timeout) {
  return std::chrono::duration_cast<Micros>(2 * timeout + std::chrono::seconds(1));
}

std::int64_t UnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

DeliveryLoop::DeliveryLoop(StoreOptions options, const Clock& clock,
                           std::shared_ptr<const Config> config)
    : options_(std::move(options)),
      clock_(clock),
      config_(std::move(config)),
      random_(std::random_device{}()) {}

DeliveryLoop::~DeliveryLoop() { Stop(); }

void DeliveryLoop::Start() {
  store_ = Store::Open(options_);
  sender_ = std::make_unique<WebhookSender>();
  thread_ = std::thread([this] { Loop(); });
}

void DeliveryLoop::Stop() {
  stopping_ = true;
  if (sender_) sender_->Wakeup();
  if (thread_.joinable()) thread_.join();
  sender_.reset();
  store_.reset();
}

DeliveryLoop::Counters DeliveryLoop::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void DeliveryLoop::SetConfig(std::shared_ptr<const Config> config) {
  std::lock_guard lock(mu_);
  config_ = std::move(config);
}

std::optional<std::string> DeliveryLoop::RenderDocument(const Config& config,
                                                        const std::vector<OutboxEvent>& events) {
  std::optional<TimeZone> zone = TimeZone::Find(config.timezone);
  if (!zone) zone = TimeZone::Utc();
  std::vector<nlohmann::ordered_json> rendered;
  for (const OutboxEvent& e : events) {
    auto request = store_->GetRequest(e.request_id);
    if (!request) return std::nullopt;
    if (!*request) continue;  // cannot happen: requests are never deleted
    rendered.push_back(RenderWebhookEvent(e, **request, *zone));
  }
  return RenderWebhookDocument(rendered);
}

bool DeliveryLoop::Scan(const Config& config) {
  TimePoint now = clock_.Now();
  next_scan_ = now + std::chrono::duration_cast<Micros>(kRescanInterval);
  auto disabled = store_->DisabledWebhooks();
  if (!disabled) return false;
  std::size_t budget = static_cast<std::size_t>(config.dispatcher.concurrency);
  for (const WarehouseConfig& w : config.warehouses) {
    if (!w.webhook || in_flight_.size() >= budget) continue;
    if (std::find(disabled->begin(), disabled->end(), w.id) != disabled->end()) continue;
    bool busy = std::any_of(in_flight_.begin(), in_flight_.end(),
                            [&](const auto& d) { return d.second.warehouse_id == w.id; });
    if (busy) continue;  // one call in flight per warehouse keeps its events in order
    TimePoint lease = now + LeaseFor(w.webhook->timeout);
    bool claimed_at_creation = false;
    auto head = store_->HeadDelivery(w.id);
    if (!head) return false;
    if (!*head) {
      auto events = store_->ListUnbatchedEvents(w.id, w.webhook->max_events_per_call);
      if (!events) return false;
      if (events->empty()) continue;
      std::optional<std::string> document = RenderDocument(config, *events);
      if (!document) return false;
      std::vector<std::int64_t> ids;
      for (const OutboxEvent& e : *events) ids.push_back(e.id);
      auto created =
          store_->CreateDelivery(w.id, ids, "msg_" + RandomHexToken(12), *document, now, lease);
      if (!created) return false;
      if (!*created) continue;  // another dispatcher formed it: look again next time
      *head = std::move(*created);
      claimed_at_creation = true;
    }
    Delivery& d = **head;
    if (d.next_attempt_at > now) {
      next_scan_ = std::min(next_scan_, d.next_attempt_at);
      continue;
    }
    if (!claimed_at_creation) {
      auto claimed = store_->ClaimDelivery(d.id, now, lease);
      if (!claimed) return false;
      if (!*claimed) continue;
    }
    WebhookCall call;
    call.tag = static_cast<std::uint64_t>(d.id);
    call.url = w.webhook->url;
    call.request = FormatWebhook(*w.webhook, d.uid, d.document, UnixSeconds(now));
    call.timeout = w.webhook->timeout;
    call.verify_tls = w.webhook->verify_tls;
    call.allow_private_networks = config.dispatcher.allow_private_networks;
    sender_->Submit(std::move(call));
    in_flight_.emplace(d.id, std::move(d));
  }
  return true;
}

std::optional<Store::AttemptRecord> DeliveryLoop::Decide(const Config& config,
                                                         const WebhookOutcome& outcome) {
  auto it = in_flight_.find(static_cast<std::int64_t>(outcome.tag));
  if (it == in_flight_.end()) return std::nullopt;
  Delivery delivery = std::move(it->second);
  in_flight_.erase(it);
  TimePoint now = clock_.Now();
  DeliveryAttempt attempt;
  attempt.delivery_id = delivery.id;
  attempt.started_at = now - std::chrono::duration_cast<Micros>(outcome.duration);
  attempt.duration = outcome.duration;
  attempt.http_status = outcome.http_status;
  attempt.error = outcome.error;
  attempt.response_head = outcome.response_head;

  AttemptOutcome result = AttemptOutcome::kRetry;
  TimePoint next = now;
  int status = outcome.http_status;
  if (status >= 200 && status < 300) {
    result = AttemptOutcome::kSucceeded;
  } else if (status == 410) {
    // The delivery stays pending and goes out again once an operator enables the webhook.
    spdlog::warn("warehouse {}: webhook answered 410 Gone; disabled until enabled again",
                 delivery.warehouse_id);
    if (!store_->DisableWebhook(delivery.warehouse_id, "410 Gone", now)) {
      spdlog::warn("warehouse {}: could not record the disabled webhook", delivery.warehouse_id);
    }
  } else {
    RetrySchedule schedule(config.dispatcher.retry_schedule);
    std::optional<std::chrono::milliseconds> retry_after;
    if (status == 429 || status == 503) retry_after = outcome.retry_after;
    double draw = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
    auto delay = schedule.Delay(delivery.attempt_count + 1, draw, retry_after);
    if (delay) {
      next = now + std::chrono::duration_cast<Micros>(*delay);
    } else {
      result = AttemptOutcome::kDead;
    }
    spdlog::info("warehouse {}: delivery {} attempt {} failed ({}){}", delivery.warehouse_id,
                 delivery.uid, delivery.attempt_count + 1,
                 status ? "HTTP " + std::to_string(status) : outcome.error,
                 delay ? "" : "; no retries left, the delivery is dead");
  }
  {
    std::lock_guard lock(mu_);
    switch (result) {
      case AttemptOutcome::kSucceeded: {
        ++counters_.succeeded;
        double seconds = std::chrono::duration<double>(now - delivery.created_at).count();
        std::size_t i = 0;
        while (i < Counters::kBuckets.size() && seconds > Counters::kBuckets[i]) ++i;
        ++counters_.latency[i];
        counters_.latency_sum += seconds;
        break;
      }
      case AttemptOutcome::kRetry:
        ++(status == 410 ? counters_.gone : counters_.failed);
        break;
      case AttemptOutcome::kDead:
        ++counters_.dead;
        break;
    }
  }
  next_scan_ = now;  // the warehouse may have more to send
  return Store::AttemptRecord{attempt, result, next};
}

void DeliveryLoop::RecordAll(const Config& config, const std::vector<WebhookOutcome>& outcomes) {
  std::vector<Store::AttemptRecord> records;
  for (const WebhookOutcome& outcome : outcomes) {
    if (auto record = Decide(config, outcome)) records.push_back(std::move(*record));
  }
  if (records.empty()) return;
  // One transaction (one fsync) for every call that finished in this poll.
  for (int tries = 0;; ++tries) {
    auto recorded = store_->RecordAttempts(records, clock_.Now());
    if (recorded) return;
    if (tries >= 50 || stopping_) {
      spdlog::error("{} attempts not recorded ({}); their deliveries will be sent again",
                    records.size(), recorded.error().what());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // busy database: wait
  }
}

void DeliveryLoop::Loop() {
  bool failing = false;
  next_scan_ = clock_.Now();
  for (;;) {
    std::shared_ptr<const Config> config;
    {
      std::lock_guard lock(mu_);
      config = config_;
    }
    if (!stopping_) {
      auto newest = store_->MaxEventId();
      bool ok = newest.has_value();
      if (ok && (*newest != last_event_id_ || clock_.Now() >= next_scan_)) {
        ok = Scan(*config);
        if (ok) last_event_id_ = *newest;
      }
      if (!ok && !failing) spdlog::warn("delivery: the database is not available; retrying");
      if (ok && failing) spdlog::info("delivery: database available again");
      failing = !ok;
    } else if (in_flight_.empty()) {
      return;
    }
    RecordAll(*config, sender_->Poll(kIdleWait));
  }
}

}  // namespace allocation_relay
