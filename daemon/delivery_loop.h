// DeliveryLoop: sends the webhook outbox to warehouses (SPEC section 4).
//
// One thread with its own Store and WebhookSender. Per warehouse with a webhook and
// max_in_flight 1 (strict order): the oldest pending delivery (its head) is sent when due; when
// there is none, up to max_events_per_call unbatched events are formed into a new delivery, whose
// document is fixed from then on. With max_in_flight N > 1, up to N due deliveries of the
// warehouse are in flight at once and one waiting for a retry no longer holds the others back.
// A delivery is claimed with a lease longer than the call's timeout, so after a crash it is sent
// again once the lease runs out (at least once). Every attempt is recorded with its outcome:
// 2xx succeeded; 410 Gone disables the webhook (the delivery waits until it is enabled);
// otherwise the retry schedule (with Retry-After on 429/503), then dead.
//
// Throughput: each round records every call that finished and claims or forms the next
// deliveries of the warehouses concerned in one transaction, so one commit (one fsync) serves
// all of them. New work is noticed by a cheap indexed query (the newest event id) every few
// milliseconds, never by scanning the database. Start/Stop/SetConfig may be called from any
// thread.
#ifndef ALLOCATION_RELAY_DAEMON_DELIVERY_LOOP_H_
#define ALLOCATION_RELAY_DAEMON_DELIVERY_LOOP_H_

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "webhook_sender.h"

namespace allocation_relay {

class DeliveryLoop {
 public:
  // How often the newest event id is looked at when nothing is in flight.
  static constexpr std::chrono::milliseconds kIdleWait{5};
  // How often every warehouse is looked at even if no new event appeared (operator re-sends,
  // enabled webhooks, expired leases of another dispatcher).
  static constexpr std::chrono::milliseconds kRescanInterval{1000};

  // `clock` must outlive the loop.
  DeliveryLoop(StoreOptions options, const Clock& clock, std::shared_ptr<const Config> config);
  ~DeliveryLoop();

  // Opens the Store and starts the thread. Throws StoreError.
  void Start();
  // Stops claiming, waits for calls in flight (bounded by their timeouts), records them, joins.
  void Stop();
  void SetConfig(std::shared_ptr<const Config> config);

  // Counters since start, for /metrics. Thread-safe.
  struct Counters {
    std::uint64_t succeeded = 0, failed = 0, dead = 0, gone = 0;
    // Seconds from a batch's forming to its successful delivery, cumulative by bucket.
    static constexpr std::array<double, 8> kBuckets = {0.005, 0.01, 0.02, 0.05, 0.1, 1, 10, 60};
    std::array<std::uint64_t, kBuckets.size() + 1> latency{};
    double latency_sum = 0;
  };
  Counters counters() const;

 private:
  void Loop();
  // One round: records the calls that finished and claims or forms the due deliveries of every
  // warehouse that may have work, in one transaction, then submits them. False on a database
  // error (retried after a pause).
  bool Round(const Config& config);
  // What one finished call means (retry time, dead, disabled webhook); nullopt if unknown.
  std::optional<Store::AttemptRecord> Decide(const Config& config, const WebhookOutcome& outcome);
  void Submit(const Config& config, const WarehouseConfig& warehouse, Delivery delivery);

  StoreOptions options_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::shared_ptr<const Config> config_;
  Counters counters_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  // Loop thread only.
  std::unique_ptr<Store> store_;
  std::unique_ptr<WebhookSender> sender_;
  std::map<std::int64_t, Delivery> in_flight_;         // by delivery id
  std::set<std::int64_t> dirty_;                       // warehouses that may have work
  std::vector<Store::AttemptRecord> unrecorded_;       // finished calls not yet recorded
  std::optional<std::vector<std::int64_t>> disabled_;  // webhooks off; read at each rescan
  std::int64_t last_event_id_ = -1;
  TimePoint next_scan_;       // every warehouse is looked at then
  TimePoint write_again_at_;  // after a database error, the next try
  std::mt19937_64 random_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_DELIVERY_LOOP_H_
