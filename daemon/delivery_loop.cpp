#include "delivery_loop.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/time_zone.h"
#include "retry_schedule.h"
#include "webhook_sender.h"

namespace allocation_relay {
namespace {

// A claim (of a warehouse or of a stored delivery) lasts twice the call's timeout plus 5 s: a
// live dispatcher always records its attempt before another one may take over, and a crashed
// one's warehouses are taken over within that time (SPEC section 10).
Micros LeaseFor(std::chrono::milliseconds timeout) {
  return std::chrono::duration_cast<Micros>(2 * timeout + std::chrono::seconds(5));
}

// A lane starts a call only while its warehouse lease outlasts the call by this much, and a
// round renews the lease once less than a call's timeout plus kRenewMargin is left.
constexpr Micros kSendMargin = std::chrono::seconds(1);
constexpr Micros kRenewMargin = std::chrono::seconds(3);

std::string NewClaimant() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device device;
  char random[17];
  std::snprintf(random, sizeof random, "%08x%08x", device(), device());
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + random;
}

// FNV-1a over the claimant, then the warehouse mixed in (splitmix64's finaliser): fixed, so
// that every dispatcher computes the same assignment.
std::uint64_t AssignmentScore(const std::string& dispatcher, std::int64_t warehouse_id) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : dispatcher) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= static_cast<std::uint64_t>(warehouse_id) + 0x9e3779b97f4a7c15ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// A want that gives the warehouse's lease up.
Store::DeliveryWant ReleaseOf(std::int64_t warehouse_id) {
  Store::DeliveryWant release;
  release.warehouse_id = warehouse_id;
  release.release = true;
  return release;
}

std::int64_t UnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

DeliveryLoop::DeliveryLoop(StoreOptions options, const Clock& clock,
                           std::shared_ptr<const Config> config, TransportFactory make_transport)
    : options_(std::move(options)),
      clock_(clock),
      claimant_(NewClaimant()),
      config_(std::move(config)),
      make_transport_(std::move(make_transport)),
      random_([] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device()};
        return std::mt19937_64(seed);
      }()) {}

DeliveryLoop::~DeliveryLoop() { Stop(); }

const std::string& DeliveryLoop::AssignedDispatcher(std::int64_t warehouse_id,
                                                    const std::vector<std::string>& dispatchers) {
  const std::string* best = &dispatchers.front();
  std::uint64_t best_score = AssignmentScore(*best, warehouse_id);
  for (const std::string& d : dispatchers) {
    const std::uint64_t score = AssignmentScore(d, warehouse_id);
    if (score > best_score || (score == best_score && d < *best)) {
      best = &d;
      best_score = score;
    }
  }
  return *best;
}

bool DeliveryLoop::Assigned(std::int64_t warehouse_id) const {
  return dispatchers_.size() <= 1 || AssignedDispatcher(warehouse_id, dispatchers_) == claimant_;
}

bool DeliveryLoop::Heartbeat(TimePoint now) {
  if (now < next_heartbeat_) return true;
  auto live = store_->LiveDispatchers(claimant_, now, kDispatcherTtl);
  if (!live) return false;
  next_heartbeat_ = now + std::chrono::duration_cast<Micros>(++heartbeats_ < kStartupHeartbeats
                                                                 ? kStartupHeartbeatInterval
                                                                 : kHeartbeatInterval);
  std::vector<std::string> dispatchers = std::move(*live);
  if (std::find(dispatchers.begin(), dispatchers.end(), claimant_) == dispatchers.end()) {
    dispatchers.push_back(claimant_);  // taken out meanwhile (a clock jump): counts itself
    std::sort(dispatchers.begin(), dispatchers.end());
  }
  if (dispatchers != dispatchers_) {
    if (!dispatchers_.empty() || dispatchers.size() > 1) {
      spdlog::info("delivery: {} dispatcher(s) share the warehouses", dispatchers.size());
    }
    dispatchers_ = std::move(dispatchers);
    next_scan_ = now;  // look at every warehouse: some may be this one's now
  }
  return true;
}

void DeliveryLoop::Start() {
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, 0);  // the starting (main) thread's
  process_nice_ = errno == 0 ? nice : 0;
  store_ = Store::Open(options_);
  std::unique_ptr<EventSignal> signal = EventSignal::Open(options_);
  transport_ = make_transport_ ? make_transport_() : std::make_unique<WebhookSender>();
  send_thread_ = std::thread([this] { SendLoop(); });
  if (signal) {
    idle_wait_ = kSignalledIdleWait;
    signal_thread_ =
        std::thread([this, s = std::move(signal)]() mutable { SignalLoop(std::move(s)); });
  }
  round_thread_ = std::thread([this] { RoundLoop(); });
}

void DeliveryLoop::SignalLoop(std::unique_ptr<EventSignal> signal) {
  while (!stopping_) {
    if (!signal->Wait(std::chrono::milliseconds(200))) continue;
    MutexLock lock(pipe_mu_);
    signalled_ = true;
    round_cv_.notify_one();
  }
}

void DeliveryLoop::Stop() {
  stopping_ = true;
  if (transport_) transport_->Wakeup();
  round_cv_.notify_all();
  if (send_thread_.joinable()) send_thread_.join();
  if (round_thread_.joinable()) round_thread_.join();
  if (signal_thread_.joinable()) signal_thread_.join();
  transport_.reset();
  store_.reset();
}

DeliveryLoop::Counters DeliveryLoop::counters() const {
  MutexLock lock(mu_);
  return counters_;
}

void DeliveryLoop::SetConfig(std::shared_ptr<const Config> config) {
  MutexLock lock(mu_);
  config_ = std::move(config);
}

std::shared_ptr<const Config> DeliveryLoop::CurrentConfig() const {
  MutexLock lock(mu_);
  return config_;
}

void DeliveryLoop::Submit(const Config& config, const WarehouseConfig& warehouse,
                          Delivery& delivery) {
  WebhookCall call;
  call.tag = static_cast<std::uint64_t>(delivery.id);
  call.url = warehouse.webhook->url;
  call.request =
      FormatWebhook(*warehouse.webhook, delivery.uid,
                    IsStored(delivery) ? std::move(delivery.document) : delivery.document,
                    UnixSeconds(clock_.Now()));
  call.timeout = warehouse.webhook->timeout;
  call.verify_tls = warehouse.webhook->verify_tls;
  call.allow_private_networks = config.dispatcher.allow_private_networks;
  call.proxy = config.dispatcher.proxy;
  call.client_cert_pem = warehouse.webhook->client_cert_pem;
  call.client_key_pem = warehouse.webhook->client_key_pem;
  call.ca_pem = warehouse.webhook->ca_pem;
  transport_->Submit(std::move(call));
}

void DeliveryLoop::PickSendable(const Config& config, std::vector<Delivery>& go) {
  const TimePoint now = clock_.Now();
  int budget = config.dispatcher.concurrency - sending_total_;
  for (auto it = kicked_.begin(); it != kicked_.end();) {
    const std::int64_t warehouse_id = *it;
    Lane& lane = lanes_[warehouse_id];
    const WarehouseConfig* w = config.FindWarehouse(warehouse_id);
    bool keep = false;  // stays kicked: it waits for the total concurrency only
    if (w && w->webhook) {
      const WebhookConfig& hook = *w->webhook;
      while (!lane.halted && !lane.renewing && !lane.renew_lease && !lane.ready.empty() &&
             static_cast<int>(lane.sending.size()) < hook.max_in_flight) {
        if (budget <= 0) {
          keep = true;
          break;
        }
        // No call may outlast the warehouse's lease: another dispatcher could take over and
        // send beside it. Renewed by the next round first.
        const Micros call = std::chrono::duration_cast<Micros>(hook.timeout) + kSendMargin;
        if (!lane.lease_until || *lane.lease_until < now + call) {
          lane.renew_lease = true;
          urgent_ = true;
          round_cv_.notify_one();
          break;
        }
        Delivery& d = lane.ready.front();
        // A stored delivery's lease must outlast the call, or another dispatcher could take it
        // while it is in flight: renew it first (the round does). A new one is not stored yet.
        if (IsStored(d) &&
            (!d.lease_until || *d.lease_until < now + hook.timeout + std::chrono::seconds(1))) {
          lane.renewing = true;  // the next round renews the front's lease
          urgent_ = true;
          round_cv_.notify_one();
          break;
        }
        lane.sending.emplace(d.id, IsStored(d) ? 0 : d.event_ids.back());
        ++sending_total_;
        --budget;
        go.push_back(std::move(d));
        lane.ready.pop_front();
      }
    }
    it = keep ? std::next(it) : kicked_.erase(it);
  }
}

void DeliveryLoop::ApplySendThreadNice(int relative) {
  const int nice = std::clamp(process_nice_ + relative, -20, 19);
  // On Linux PRIO_PROCESS with 0 sets the calling thread only.
  if (setpriority(PRIO_PROCESS, 0, nice) == 0) {
    if (relative != 0) spdlog::info("send thread at nice {}", nice);
    return;
  }
  spdlog::info(
      "send thread stays at the process's priority: nice {} not permitted ({}; needs root, "
      "CAP_SYS_NICE or LimitNICE={} in the unit)",
      nice, std::strerror(errno), nice);
}

void DeliveryLoop::SendLoop() {
  std::map<std::int64_t, Delivery> in_flight;  // by delivery id
  std::optional<int> nice_applied;             // dispatcher.send_thread_nice, once per value
  for (;;) {
    std::shared_ptr<const Config> config = CurrentConfig();
    if (nice_applied != config->dispatcher.send_thread_nice) {
      nice_applied = config->dispatcher.send_thread_nice;
      ApplySendThreadNice(*nice_applied);
    }
    std::vector<Delivery> go;
    {
      MutexLock lock(pipe_mu_);
      if (stopping_ && in_flight.empty()) {
        sender_done_ = true;
        round_cv_.notify_one();
        return;
      }
      if (!stopping_) PickSendable(*config, go);
    }
    for (Delivery& d : go) {
      // PickSendable only picks warehouses with a webhook in this config.
      Submit(*config, *config->FindWarehouse(d.warehouse_id), d);
      const std::int64_t id = d.id;
      in_flight.emplace(id, std::move(d));
    }
    std::vector<WebhookOutcome> outcomes = transport_->Poll(kIdleWait);
    if (outcomes.empty()) continue;
    MutexLock lock(pipe_mu_);
    // The round thread needs waking only when it may be waiting for this: an urgent lane, or
    // the first call finished since the last round took them. Waking it on every call (tens
    // of thousands a second) costs a context switch each on a busy machine.
    const bool wake_round = finished_.empty();
    bool became_urgent = false;
    for (WebhookOutcome& outcome : outcomes) {
      auto it = in_flight.find(static_cast<std::int64_t>(outcome.tag));
      if (it == in_flight.end()) continue;
      Delivery d = std::move(it->second);
      in_flight.erase(it);
      Lane& lane = lanes_[d.warehouse_id];
      lane.sending.erase(d.id);
      --sending_total_;
      const WarehouseConfig* w = config->FindWarehouse(d.warehouse_id);
      bool strict = !w || !w->webhook || w->webhook->max_in_flight == 1;
      bool ok = outcome.http_status >= 200 && outcome.http_status < 300;
      if (outcome.http_status == 410 || (strict && !ok)) lane.halted = true;
      // A halted lane, or one that has run out of claimed deliveries, waits for a round.
      if (lane.halted || (lane.ready.empty() && lane.sending.empty())) {
        became_urgent |= !urgent_;
        urgent_ = true;
      }
      kicked_.insert(d.warehouse_id);
      finished_.push_back({std::move(d), std::move(outcome), clock_.Now()});
    }
    if (wake_round || became_urgent) round_cv_.notify_one();
  }
}

bool DeliveryLoop::Round(const Config& config) {
  const TimePoint now = clock_.Now();
  if (now < write_again_at_) return false;
  const bool stopping = stopping_;
  if (!stopping && !Heartbeat(now)) return false;
  const Scan scan = NoticeNewWork(config, now, stopping);
  if (scan == Scan::kFailed) return false;
  if (!TakeFinishedCalls(config)) return false;
  ClaimPlan plan = PlanClaims(config, now, stopping, scan);
  if (plan.wants.empty() && unrecorded_.empty() && plan.leases.empty()) return true;
  auto taken = WriteRound(config, now, plan);
  if (!taken) return false;
  ApplyTakes(config, plan, *taken);
  return true;
}

DeliveryLoop::Scan DeliveryLoop::NoticeNewWork(const Config& config, TimePoint now, bool stopping) {
  if (stopping) return Scan::kPartial;
  auto newest = store_->MaxEventId();
  if (!newest) return Scan::kFailed;
  if (*newest != last_event_id_) {
    if (last_event_id_ < 0 || *newest < last_event_id_) {
      next_scan_ = now;
    } else {
      auto warehouses = store_->WarehousesWithEventsAfter(last_event_id_);
      if (!warehouses) return Scan::kFailed;
      dirty_.insert(warehouses->begin(), warehouses->end());
    }
    last_event_id_ = *newest;
  }
  if (now < next_scan_ && disabled_) return Scan::kPartial;
  // Also catches what no event announces: operator re-sends, enabled webhooks, retries that fell
  // due, expired leases of a crashed dispatcher.
  auto disabled = store_->DisabledWebhooks();
  if (!disabled) return Scan::kFailed;
  disabled_ = std::move(*disabled);
  for (const WarehouseConfig& w : config.warehouses) dirty_.insert(w.id);
  next_scan_ = now + std::chrono::duration_cast<Micros>(kRescanInterval);
  return Scan::kFull;
}

bool DeliveryLoop::TakeFinishedCalls(const Config& config) {
  std::vector<Finished> finished;
  {
    MutexLock lock(pipe_mu_);
    finished.swap(finished_);
    urgent_ = false;
  }
  last_round_records_ = finished.size();
  for (Finished& f : finished) unrecorded_.push_back(Decide(config, f));
  // Decided before any claim is planned: a 410 disables its webhook (and resets disabled_)
  // before this round claims anything for it.
  if (disabled_) return true;
  auto disabled = store_->DisabledWebhooks();
  if (!disabled) return false;
  disabled_ = std::move(*disabled);
  return true;
}

const WebhookConfig* DeliveryLoop::UsableWebhook(const Config& config, std::int64_t warehouse_id,
                                                 bool stopping) const {
  const WarehouseConfig* w = config.FindWarehouse(warehouse_id);
  if (stopping || !w || !w->webhook || !disabled_ ||
      std::find(disabled_->begin(), disabled_->end(), warehouse_id) != disabled_->end()) {
    return nullptr;
  }
  return &*w->webhook;
}

DeliveryLoop::ClaimPlan DeliveryLoop::PlanClaims(const Config& config, TimePoint now, bool stopping,
                                                 Scan scan) {
  ClaimPlan plan;
  // Released leases wait in lease_changes_ until written; renewals are worked out again each
  // round from the lanes still marked `renewing`, so a failed write loses neither.
  plan.leases = lease_changes_;
  MutexLock lock(pipe_mu_);
  const LaneReview review = ReviewLanes(config, now, stopping, plan);
  PlanWants(config, now, stopping, scan, review, plan);
  return plan;
}

DeliveryLoop::LaneReview DeliveryLoop::ReviewLanes(const Config& config, TimePoint now,
                                                   bool stopping, ClaimPlan& plan) {
  LaneReview review;
  for (auto& [warehouse_id, lane] : lanes_) {
    // A halted lane gives its ready deliveries back: they wait behind the failed one, whose
    // failure a round records before it claims for the lane again. So does a lane that may
    // no longer send.
    const WebhookConfig* hook = UsableWebhook(config, warehouse_id, stopping);
    // Claimed under the other order rule (max_in_flight changed by a reload): claim again.
    const bool rule_changed = hook && lane.strict != (hook->max_in_flight == 1);
    // Another live dispatcher's share now: what is claimed ahead goes back, so the warehouse is
    // handed over once its calls in flight end (PlanWants releases its lease then).
    const bool reassigned = !lane.ready.empty() && !Assigned(warehouse_id);
    if (lane.halted || !hook || rule_changed || reassigned) {
      for (const Delivery& d : lane.ready) {
        if (!IsStored(d)) continue;  // its events simply stay unbatched
        lease_changes_.push_back({d.id, std::nullopt});
        plan.leases.push_back({d.id, std::nullopt});
      }
      lane.ready.clear();
      lane.renewing = false;
      if (lane.halted) {
        review.halted.insert(warehouse_id);
        dirty_.insert(warehouse_id);
      }
      lane.halted = false;
    } else if (lane.renewing) {  // its front waits for a lease that outlasts its call
      const Renewal renewal{warehouse_id, lane.ready.front().id, now + LeaseFor(hook->timeout)};
      plan.renewals.push_back(renewal);
      plan.leases.push_back({renewal.delivery_id, renewal.until});
    }
    review.held_total += static_cast<int>(lane.ready.size() + lane.sending.size());
  }
  return review;
}

void DeliveryLoop::PlanWants(const Config& config, TimePoint now, bool stopping, Scan scan,
                             const LaneReview& review, ClaimPlan& plan) {
  // The newest event of each warehouse in a new delivery not yet recorded (ready, in flight,
  // finished, or decided but not written): new deliveries are formed only after it.
  std::map<std::int64_t, std::int64_t> formed_through;
  auto note_formed = [&](const Delivery& d) {
    if (IsStored(d) || d.event_ids.empty()) return;
    std::int64_t& newest = formed_through[d.warehouse_id];
    newest = std::max(newest, d.event_ids.back());
  };
  for (const Finished& f : finished_) note_formed(f.delivery);
  // A failure not yet written (the last write failed) needs no more: RecordAndTake writes the
  // records before it claims, so the stored failure holds its strict lane back as usual.
  for (const Store::AttemptRecord& r : unrecorded_) note_formed(r.formed);
  // Leases of lanes with work in hand: renewed before they could run out under a call, given
  // up once stopping with nothing in flight (the next dispatcher need not wait for them).
  std::set<std::int64_t> wanted;
  for (auto& [warehouse_id, lane] : lanes_) {
    if (!lane.lease_until) continue;
    if (stopping) {
      if (sender_done_) plan.wants.push_back(ReleaseOf(warehouse_id));
      continue;
    }
    const WebhookConfig* hook = UsableWebhook(config, warehouse_id, stopping);
    const bool idle = lane.ready.empty() && lane.sending.empty() && !lane.renew_lease;
    if (idle && !Assigned(warehouse_id)) {
      // Another live dispatcher's share now: handed over as soon as nothing is in flight.
      plan.wants.push_back(ReleaseOf(warehouse_id));
      wanted.insert(warehouse_id);
      continue;
    }
    if (!hook || idle) continue;
    const Micros left = *lane.lease_until - now;
    if (!lane.renew_lease &&
        left >= std::chrono::duration_cast<Micros>(hook->timeout) + kRenewMargin) {
      continue;
    }
    Store::DeliveryWant renewal;
    renewal.warehouse_id = warehouse_id;
    renewal.slots = 0;
    renewal.lease_until = now + LeaseFor(hook->timeout);
    plan.wants.push_back(renewal);
    wanted.insert(warehouse_id);
  }
  int budget = kMaxHeld - review.held_total;
  for (auto it = dirty_.begin(); it != dirty_.end() && budget > 0;) {
    if (wanted.contains(*it)) {  // renewed this round; takes more in the next
      ++it;
      continue;
    }
    const WebhookConfig* hook = UsableWebhook(config, *it, stopping);
    if (!hook) {
      it = stopping ? std::next(it) : dirty_.erase(it);
      continue;
    }
    if (!Assigned(*it)) {  // another live dispatcher's (a rescan looks again)
      it = dirty_.erase(it);
      continue;
    }
    // Its failure may have come after the finished calls were taken: the next round records it
    // first.
    if (review.halted.contains(*it)) {
      ++it;
      continue;
    }
    Lane& lane = lanes_[*it];
    Store::DeliveryWant want{*it,
                             0,
                             hook->max_events_per_call,
                             hook->max_in_flight == 1,
                             now + LeaseFor(hook->timeout),
                             {},
                             /*past_held=*/scan != Scan::kFull};
    std::int64_t& after = formed_through[*it];
    for (const Delivery& d : lane.ready) {
      if (IsStored(d)) {
        want.held.push_back(d.id);
      } else {
        after = std::max(after, d.event_ids.back());
      }
    }
    for (const auto& [id, newest_event] : lane.sending) {
      if (IsStored(id)) want.held.push_back(id);
      after = std::max(after, newest_event);
    }
    want.after_event = after;
    const int capacity =
        hook->max_in_flight + std::max(1, kLookaheadEvents / hook->max_events_per_call);
    const int held = static_cast<int>(lane.ready.size() + lane.sending.size());
    ++it;                               // stays dirty until a round has taken for it
    if (2 * held > capacity) continue;  // enough in hand; refilled when half is gone
    want.slots = std::min(capacity - held, budget);
    budget -= want.slots;
    plan.wants.push_back(std::move(want));
  }
}

StoreResult<std::vector<Store::DeliveryTake>> DeliveryLoop::WriteRound(const Config& config,
                                                                       TimePoint now,
                                                                       const ClaimPlan& plan) {
  std::optional<TimeZone> zone = TimeZone::Find(config.timezone);
  if (!zone) zone = TimeZone::Utc();
  auto render = [&](std::span<const OutboxEvent> events,
                    std::span<const AllocationRequest> requests,
                    std::span<const CheckEventSubject> checks) {
    return RenderWebhookDocument(events, requests, checks, *zone);
  };
  auto taken = store_->RecordAndTake(unrecorded_, plan.leases, plan.wants, now, render, claimant_);
  if (!taken) {
    write_again_at_ = now + std::chrono::milliseconds(100);  // busy or failing database: pause
    return taken;
  }
  unrecorded_.clear();
  lease_changes_.clear();
  if (!plan.renewals.empty()) {
    spdlog::info(
        "renewed the leases of {} claimed deliveries that waited for their turn longer "
        "than their call's timeout",
        plan.renewals.size());
  }
  return taken;
}

void DeliveryLoop::ApplyTakes(const Config& config, const ClaimPlan& plan,
                              std::vector<Store::DeliveryTake>& takes) {
  {
    MutexLock lock(pipe_mu_);
    // Takes come in the order of the wants.
    for (std::size_t i = 0; i < takes.size() && i < plan.wants.size(); ++i) {
      const Store::DeliveryWant& want = plan.wants[i];
      Lane& lane = lanes_[want.warehouse_id];
      if (want.release) {
        lane.lease_until.reset();
        continue;
      }
      if (takes[i].refused) {
        // Another dispatcher holds the warehouse: hand back what was claimed for it here (its
        // calls in flight are recorded as they end) and leave it to that one.
        if (lane.lease_until) {
          spdlog::info("warehouse {}: another dispatcher holds its lease now", want.warehouse_id);
        }
        lane.lease_until.reset();
        lane.renew_lease = false;
        for (const Delivery& d : lane.ready) {
          if (IsStored(d)) lease_changes_.push_back({d.id, std::nullopt});
        }
        lane.ready.clear();
        lane.renewing = false;
        dirty_.erase(want.warehouse_id);
        continue;
      }
      lane.lease_until = want.lease_until;
      if (lane.renew_lease) {
        lane.renew_lease = false;
        kicked_.insert(want.warehouse_id);
      }
    }
    for (const Renewal& r : plan.renewals) {
      Lane& lane = lanes_[r.warehouse_id];
      if (lane.renewing && !lane.ready.empty() && lane.ready.front().id == r.delivery_id) {
        lane.ready.front().lease_until = r.until;
        lane.renewing = false;
        kicked_.insert(r.warehouse_id);
      }
    }
    for (std::size_t i = 0; i < takes.size(); ++i) {
      Store::DeliveryTake& take = takes[i];
      const Store::DeliveryWant& want = plan.wants[i];
      if (take.refused || want.release || want.slots <= 0) continue;  // no claim was asked
      dirty_.erase(take.warehouse_id);
      if (take.next_due) next_scan_ = std::min(next_scan_, *take.next_due);
      if (take.claimed.empty()) continue;
      Lane& lane = lanes_[take.warehouse_id];
      const WarehouseConfig* w = config.FindWarehouse(take.warehouse_id);
      lane.strict = !w || !w->webhook || w->webhook->max_in_flight == 1;
      for (Delivery& d : take.claimed) {
        if (!IsStored(d)) d.id = -++formed_;  // an id for this process only
        lane.ready.push_back(std::move(d));
      }
      kicked_.insert(take.warehouse_id);
    }
  }
  transport_->Wakeup();
}

Store::AttemptRecord DeliveryLoop::Decide(const Config& config, Finished& finished) {
  Delivery& delivery = finished.delivery;
  const WebhookOutcome& outcome = finished.outcome;
  dirty_.insert(delivery.warehouse_id);  // it may have more to send
  const TimePoint now = finished.at;
  DeliveryAttempt attempt;
  attempt.delivery_id = IsStored(delivery) ? delivery.id : 0;  // 0: stored with this record
  attempt.attempt = delivery.attempt_count + 1;
  attempt.started_at = now - std::chrono::duration_cast<Micros>(outcome.duration);
  attempt.duration = outcome.duration;
  attempt.http_status = outcome.http_status;
  attempt.error = outcome.error;
  attempt.response_head = outcome.response_head;

  AttemptOutcome result = AttemptOutcome::kRetry;
  TimePoint next = now;
  int status = outcome.http_status;
  // 410 Gone disables the webhook; the delivery stays pending and goes out again once an
  // operator enables it. If the disabling cannot be written, it is an ordinary failure (with
  // the retry schedule), or the lane would send it again at once.
  bool gone = false;
  if (status == 410) {
    gone = store_->DisableWebhook(delivery.warehouse_id, "410 Gone", now).has_value();
    if (gone) {
      spdlog::warn("warehouse {}: webhook answered 410 Gone; disabled until enabled again",
                   delivery.warehouse_id);
      disabled_.reset();  // read again before the next claim
    } else {
      spdlog::warn("warehouse {}: webhook answered 410 Gone; could not record it as disabled",
                   delivery.warehouse_id);
    }
  }
  if (status >= 200 && status < 300) {
    result = AttemptOutcome::kSucceeded;
  } else if (!gone) {
    RetrySchedule schedule(config.dispatcher.retry_schedule);
    std::optional<std::chrono::milliseconds> retry_after;
    if (status == 429 || status == 503) retry_after = outcome.retry_after;
    double draw = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
    // The schedule counts failures: 410 answers before an operator enabled the webhook again
    // are not retries and do not use it up (looked up only when there were earlier attempts).
    int failures = delivery.attempt_count + 1;
    if (delivery.attempt_count > 0) {
      if (auto earlier = store_->ListAttempts(delivery.id)) {
        for (const DeliveryAttempt& a : *earlier) failures -= a.http_status == 410 ? 1 : 0;
      }
    }
    auto delay = schedule.Delay(std::max(1, failures), draw, retry_after);
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
    MutexLock lock(mu_);
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
        ++(gone ? counters_.gone : counters_.failed);
        break;
      case AttemptOutcome::kDead:
        ++counters_.dead;
        break;
    }
  }
  Store::AttemptRecord record{attempt, result, next, delivery.request_ids, {}};
  if (!IsStored(delivery)) {
    delivery.id = 0;  // as the store expects a delivery it stores with this record
    record.formed = std::move(delivery);
  }
  return record;
}

void DeliveryLoop::RoundLoop() {
  bool failing = false;
  next_scan_ = clock_.Now();
  std::optional<TimePoint> give_up_at;  // when stopping with a failing database
  for (;;) {
    std::shared_ptr<const Config> config = CurrentConfig();
    const auto started = std::chrono::steady_clock::now();
    // Only a round that ran knowing it stops gives every unsent claim back, so only after one
    // may the loop end.
    const bool stopping_round = stopping_;
    bool ok = Round(*config);
    if (!ok && !failing) spdlog::warn("delivery: the database is not available; retrying");
    if (ok && failing) spdlog::info("delivery: database available again");
    failing = !ok;
    MutexLock lock(pipe_mu_);
    if (stopping_ && sender_done_ && finished_.empty()) {
      bool claims_left = false;  // deliveries claimed and not sent, or leases held
      for (const auto& [warehouse_id, lane] : lanes_) {
        claims_left |= !lane.ready.empty() || lane.lease_until.has_value();
      }
      if (stopping_round && ok && !claims_left && unrecorded_.empty() && lease_changes_.empty()) {
        // Out of the live dispatchers at once: the others take this one's warehouses now.
        if (!dispatchers_.empty()) {
          (void)store_->LiveDispatchers(claimant_, clock_.Now(), Micros(0));
        }
        return;
      }
      TimePoint now = clock_.Now();
      if (!give_up_at) give_up_at = now + std::chrono::seconds(5);
      if (now >= *give_up_at) {
        spdlog::error("{} attempts not recorded; their deliveries will be sent again",
                      unrecorded_.size());
        return;
      }
    }
    if (!ok) {
      // The database failed (or a write is paused after one): wait, do not spin.
      lock.WaitFor(round_cv_, std::chrono::milliseconds(100), [&] { return stopping_.load(); });
    } else if (last_round_records_ >= kBusyRoundRecords) {
      // Busy: let calls gather for a while, so a commit covers many per warehouse (the pages
      // of the per-warehouse indexes are written once per round, not once per call). The lanes
      // hold enough claimed deliveries to keep sending meanwhile.
      lock.WaitUntil(round_cv_, started + kBusyRoundInterval,
                     [&]() REQUIRES(pipe_mu_) { return stopping_ || urgent_; });
    } else if (finished_.empty() && !urgent_ && !signalled_) {
      lock.WaitFor(round_cv_, idle_wait_, [&]() REQUIRES(pipe_mu_) {
        return signalled_ || urgent_ || !finished_.empty() || stopping_;
      });
    }
    signalled_ = false;
  }
}

}  // namespace allocation_relay
