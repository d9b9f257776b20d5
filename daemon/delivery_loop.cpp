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

void DeliveryLoop::Submit(const Config& config, const WarehouseConfig& warehouse,
                          Delivery delivery) {
  WebhookCall call;
  call.tag = static_cast<std::uint64_t>(delivery.id);
  call.url = warehouse.webhook->url;
  call.request =
      FormatWebhook(*warehouse.webhook, delivery.uid, delivery.document, UnixSeconds(clock_.Now()));
  call.timeout = warehouse.webhook->timeout;
  call.verify_tls = warehouse.webhook->verify_tls;
  call.allow_private_networks = config.dispatcher.allow_private_networks;
  sender_->Submit(std::move(call));
  in_flight_.emplace(delivery.id, std::move(delivery));
}

bool DeliveryLoop::Round(const Config& config) {
  TimePoint now = clock_.Now();
  if (now < write_again_at_) return false;
  std::vector<Store::DeliveryWant> wants;
  if (!stopping_) {
    auto newest = store_->MaxEventId();
    if (!newest) return false;
    if (*newest != last_event_id_) {
      if (last_event_id_ < 0 || *newest < last_event_id_) {
        next_scan_ = now;
      } else {
        auto warehouses = store_->WarehousesWithEventsAfter(last_event_id_);
        if (!warehouses) return false;
        dirty_.insert(warehouses->begin(), warehouses->end());
      }
      last_event_id_ = *newest;
    }
    if (now >= next_scan_ || !disabled_) {
      // Also catches what no event announces: operator re-sends, enabled webhooks, retries that
      // fell due, expired leases of a crashed dispatcher.
      auto disabled = store_->DisabledWebhooks();
      if (!disabled) return false;
      disabled_ = std::move(*disabled);
      for (const WarehouseConfig& w : config.warehouses) dirty_.insert(w.id);
      next_scan_ = now + std::chrono::duration_cast<Micros>(kRescanInterval);
    }
    if (!dirty_.empty()) {
      const std::vector<std::int64_t>& disabled = *disabled_;
      std::map<std::int64_t, int> busy;  // calls in flight per warehouse
      for (const auto& [id, d] : in_flight_) ++busy[d.warehouse_id];
      int budget = config.dispatcher.concurrency - static_cast<int>(in_flight_.size());
      for (const WarehouseConfig& w : config.warehouses) {
        if (!dirty_.contains(w.id)) continue;
        if (!w.webhook || std::find(disabled.begin(), disabled.end(), w.id) != disabled.end()) {
          dirty_.erase(w.id);
          continue;
        }
        int slots = std::min(w.webhook->max_in_flight - busy[w.id], budget);
        if (slots <= 0) continue;  // stays dirty until a call of its own finishes
        budget -= slots;
        wants.push_back({w.id, slots, w.webhook->max_events_per_call, w.webhook->max_in_flight == 1,
                         now + LeaseFor(w.webhook->timeout)});
      }
    }
  }
  if (wants.empty() && unrecorded_.empty()) return true;

  std::optional<TimeZone> zone = TimeZone::Find(config.timezone);
  if (!zone) zone = TimeZone::Utc();
  auto render = [&](std::span<const OutboxEvent> events,
                    std::span<const AllocationRequest> requests) {
    std::vector<nlohmann::ordered_json> rendered;
    rendered.reserve(events.size());
    for (const OutboxEvent& e : events) {
      auto r = std::find_if(requests.begin(), requests.end(),
                            [&](const AllocationRequest& q) { return q.id == e.request_id; });
      if (r != requests.end()) rendered.push_back(RenderWebhookEvent(e, *r, *zone));
    }
    return std::pair{"msg_" + RandomHexToken(12), RenderWebhookDocument(rendered)};
  };
  auto taken = store_->RecordAndTake(unrecorded_, wants, now, render);
  if (!taken) {
    write_again_at_ = now + std::chrono::milliseconds(100);  // busy or failing database: pause
    return false;
  }
  unrecorded_.clear();
  for (Store::DeliveryTake& take : *taken) {
    dirty_.erase(take.warehouse_id);
    if (take.next_due) next_scan_ = std::min(next_scan_, *take.next_due);
    auto w = std::find_if(config.warehouses.begin(), config.warehouses.end(),
                          [&](const WarehouseConfig& c) { return c.id == take.warehouse_id; });
    for (Delivery& d : take.claimed) Submit(config, *w, std::move(d));
  }
  return true;
}

std::optional<Store::AttemptRecord> DeliveryLoop::Decide(const Config& config,
                                                         const WebhookOutcome& outcome) {
  auto it = in_flight_.find(static_cast<std::int64_t>(outcome.tag));
  if (it == in_flight_.end()) return std::nullopt;
  Delivery delivery = std::move(it->second);
  in_flight_.erase(it);
  dirty_.insert(delivery.warehouse_id);  // it may have more to send
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
    disabled_.reset();  // read again before the next claim
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
  return Store::AttemptRecord{attempt, result, next};
}

void DeliveryLoop::Loop() {
  bool failing = false;
  next_scan_ = clock_.Now();
  std::optional<TimePoint> give_up_at;  // when stopping with a failing database
  for (;;) {
    std::shared_ptr<const Config> config;
    {
      std::lock_guard lock(mu_);
      config = config_;
    }
    bool ok = Round(*config);
    if (!ok && !failing) spdlog::warn("delivery: the database is not available; retrying");
    if (ok && failing) spdlog::info("delivery: database available again");
    failing = !ok;
    if (stopping_ && in_flight_.empty()) {
      if (unrecorded_.empty()) return;
      TimePoint now = clock_.Now();
      if (!give_up_at) give_up_at = now + std::chrono::seconds(5);
      if (now >= *give_up_at) {
        spdlog::error("{} attempts not recorded; their deliveries will be sent again",
                      unrecorded_.size());
        return;
      }
    }
    for (const WebhookOutcome& outcome : sender_->Poll(kIdleWait)) {
      if (auto record = Decide(*config, outcome)) unrecorded_.push_back(std::move(*record));
    }
  }
}

}  // namespace allocation_relay
