// DeliveryLoop: sends the webhook outbox to warehouses (SPEC section 4).
//
// Two threads. The round thread owns a Store: each round records every call that finished,
// and claims or forms the next deliveries of the warehouses concerned, in one transaction (one
// commit, one fsync, for all of them). The send thread owns the WebhookTransport (libcurl's
// WebhookSender unless a test gives another): it sends what the rounds claimed and hands back
// what finished. Neither waits for the other: while a round writes, calls go on.
//
// Per warehouse, a lane holds the deliveries claimed for it and not yet recorded: some ready,
// up to max_in_flight in flight. A round claims a few deliveries ahead (kLookaheadEvents events'
// worth), so that with max_in_flight 1 (strict order) the next delivery goes out the moment the
// previous one is answered 2xx, without waiting for that answer to be written: a round then
// covers many calls per warehouse, not one. Strict order still holds: the next call starts
// only after a 2xx; after any other answer the lane halts, the round records the failure and
// gives the ready deliveries back (their leases released), and they wait behind the retry. If
// the process dies before the 2xx was written, that delivery is sent again after restart (at
// least once; the receiver may then see it after the next one).
//
// A new delivery (formed from outbox events) is stored only when its first call is recorded,
// with that attempt: one row write per delivery, not an insert at the claim and an update at the
// answer. Until then it lives only here and its events stay unbatched in the database, so after
// a crash they form the same batch again, under the same uid (derived from the events), and it
// is sent again once the crashed process's warehouse lease runs out. A warehouse is sent only by
// the dispatcher holding its lease (SPEC section 10: several dispatchers on one PostgreSQL
// database divide the warehouses; the store refuses a warehouse leased to another claimant),
// and no call starts unless that lease outlasts it. A stored delivery (a retry, a re-send) is
// claimed with a lease longer than the call's timeout, so after a crash it is sent again once
// its lease runs out; a ready one whose lease could run out during its call is renewed by a
// round before it goes. Outcomes: 2xx
// succeeded; 410 Gone disables the webhook (the delivery waits until an operator enables it);
// otherwise the retry schedule (Retry-After on 429/503), then dead.
//
// New work is noticed by a cheap indexed query (the newest event id) every few milliseconds,
// never by scanning the database. On PostgreSQL a third thread waits for the store's
// EventSignal (LISTEN/NOTIFY) and wakes the round thread at once; the query is then only the
// backstop, every kSignalledIdleWait. Start/Stop/SetConfig/counters may be called from any thread.
#ifndef ALLOCATION_RELAY_DAEMON_DELIVERY_LOOP_H_
#define ALLOCATION_RELAY_DAEMON_DELIVERY_LOOP_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"
#include "webhook_transport.h"

namespace allocation_relay {

class DeliveryLoop {
 public:
  // How often the newest event id is looked at when nothing else wakes the round thread.
  static constexpr std::chrono::milliseconds kIdleWait{5};
  // The same where an EventSignal wakes the round thread (PostgreSQL).
  static constexpr std::chrono::milliseconds kSignalledIdleWait{100};
  // How often every warehouse is looked at even if no new event appeared (operator re-sends,
  // enabled webhooks, expired leases of another dispatcher).
  static constexpr std::chrono::milliseconds kRescanInterval{1000};
  // Events' worth of deliveries a lane claims ahead of its calls (at least one delivery).
  static constexpr int kLookaheadEvents = 64;
  // A round that recorded at least kBusyRoundRecords calls is followed by the next one no
  // sooner than kBusyRoundInterval after its start, unless a lane needs one (halted, renewing,
  // or out of claimed deliveries).
  static constexpr std::size_t kBusyRoundRecords = 64;
  static constexpr std::chrono::milliseconds kBusyRoundInterval{20};
  // At most this many deliveries held (claimed, not recorded) over all lanes: bounds memory.
  static constexpr int kMaxHeld = 4096;
  // Dispatchers on one database divide the warehouses: each marks itself live (for
  // kDispatcherTtl) every kHeartbeatInterval, and claims only the warehouses AssignedDispatcher
  // gives it among the live ones. A dead one's warehouses pass to the others within
  // kDispatcherTtl, and are sent by them once its leases run out.
  static constexpr std::chrono::milliseconds kHeartbeatInterval{1000};
  // For its first kStartupHeartbeats, a new dispatcher looks every kStartupHeartbeatInterval:
  // dispatchers started together find each other before they have claimed much.
  static constexpr std::chrono::milliseconds kStartupHeartbeatInterval{100};
  static constexpr int kStartupHeartbeats = 20;
  static constexpr std::chrono::milliseconds kDispatcherTtl{5000};
  // The dispatcher (of `dispatchers`, not empty) that sends `warehouse_id`'s deliveries:
  // rendezvous hashing, so each gets about an equal share, and one leaving or joining moves only
  // the warehouses it had or takes. The same on every host and build.
  static const std::string& AssignedDispatcher(std::int64_t warehouse_id,
                                               const std::vector<std::string>& dispatchers);

  // Makes the transport the send thread calls through; Start() calls it once.
  using TransportFactory = std::function<std::unique_ptr<WebhookTransport>()>;

  // `clock` must outlive the loop and be thread-safe. An empty `make_transport` means libcurl's
  // WebhookSender; tests pass a scripted transport.
  DeliveryLoop(StoreOptions options, const Clock& clock, std::shared_ptr<const Config> config,
               TransportFactory make_transport = {});
  ~DeliveryLoop();

  // Opens the Store and starts the threads. Throws StoreError.
  void Start();
  // Stops claiming and sending, waits for calls in flight (bounded by their timeouts), records
  // them, gives back the leases of deliveries not sent, joins.
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
  // The deliveries of one warehouse that this process holds (claimed, not yet recorded). A
  // delivery not yet stored (formed from new events; stored when its first call is recorded)
  // has a negative id here, unique in this process (see IsStored).
  struct Lane {
    std::deque<Delivery> ready;  // in order; the front goes next
    // The calls in flight: delivery id -> the newest of its events if not stored, else 0.
    std::map<std::int64_t, std::int64_t> sending;
    bool halted = false;    // a call failed (strict order) or answered 410
    bool renewing = false;  // the front waits for a round to renew its lease
    bool strict = true;     // `ready` was claimed under strict order
    // The warehouse's lease as this process holds it (its own clock); nullopt: not held. Calls
    // start only while it outlasts them; a round renews it before.
    std::optional<TimePoint> lease_until;
    bool renew_lease = false;  // a call waits for a round to renew the warehouse's lease
  };
  struct Finished {
    Delivery delivery;
    WebhookOutcome outcome;
    TimePoint at;  // when the call ended
  };
  // How far NoticeNewWork looked.
  enum class Scan {
    kFailed,   // a database error: the round stops here
    kPartial,  // only warehouses with new events were marked dirty (or none, when stopping)
    kFull,     // every warehouse was marked dirty; its pending deliveries are read from the start
  };
  // A lease renewal for the front of a lane marked `renewing`.
  struct Renewal {
    std::int64_t warehouse_id, delivery_id;
    TimePoint until;
  };
  // What PlanClaims gathered for the round's write.
  struct ClaimPlan {
    std::vector<Store::DeliveryWant> wants;
    std::vector<Renewal> renewals;
    std::vector<Store::LeaseChange> leases;  // releases not yet written, then the renewals
  };
  // What ReviewLanes leaves for PlanWants.
  struct LaneReview {
    std::set<std::int64_t> halted;  // lanes that halted since the last round
    int held_total = 0;             // deliveries held over all lanes
  };

  // Whether a delivery this process holds is in the database. One formed from new events is
  // stored only with its first attempt: until then its id is 0 as the store hands it over, then
  // negative (ApplyTakes), so that lanes can key it.
  static bool IsStored(std::int64_t delivery_id) { return delivery_id > 0; }
  static bool IsStored(const Delivery& delivery) { return IsStored(delivery.id); }

  std::shared_ptr<const Config> CurrentConfig() const;
  void RoundLoop();
  void SendLoop();
  // Signal thread: waits for `signal` and wakes the round thread, until stopping.
  void SignalLoop(std::unique_ptr<EventSignal> signal);
  // One round (round thread): the steps below in order. False on a database error (retried
  // after a pause).
  bool Round(const Config& config);
  // Marks dirty the warehouses with events newer than the last round's, or every warehouse
  // when a rescan is due (reading the disabled webhooks again).
  Scan NoticeNewWork(const Config& config, TimePoint now, bool stopping);
  // Takes the calls the send thread finished and decides their attempt records (unrecorded_).
  // False on a database error.
  bool TakeFinishedCalls(const Config& config);
  // Gathers the lease changes and the claims (DeliveryWant per dirty warehouse) of the round.
  ClaimPlan PlanClaims(const Config& config, TimePoint now, bool stopping, Scan scan);
  // Gives back the ready deliveries of lanes that halted, may no longer send or are another live
  // dispatcher's now, and plans the lease renewals of fronts waiting for one.
  LaneReview ReviewLanes(const Config& config, TimePoint now, bool stopping, ClaimPlan& plan)
      REQUIRES(pipe_mu_);
  // Adds a claim for each dirty warehouse whose lane has room.
  void PlanWants(const Config& config, TimePoint now, bool stopping, Scan scan,
                 const LaneReview& review, ClaimPlan& plan) REQUIRES(pipe_mu_);
  // Marks this dispatcher live and reads the others, every kHeartbeatInterval. False on a
  // database error.
  bool Heartbeat(TimePoint now);
  // Whether this dispatcher is the one to claim `warehouse_id`'s deliveries.
  bool Assigned(std::int64_t warehouse_id) const;
  // Records the decided attempts, applies the lease changes and claims, in one transaction.
  StoreResult<std::vector<Store::DeliveryTake>> WriteRound(const Config& config, TimePoint now,
                                                           const ClaimPlan& plan);
  // Puts what the write claimed and renewed into the lanes and wakes the send thread.
  void ApplyTakes(const Config& config, const ClaimPlan& plan,
                  std::vector<Store::DeliveryTake>& takes);
  // The webhook of `warehouse_id` if this round may claim for it (configured, not disabled,
  // not stopping), else nullptr.
  const WebhookConfig* UsableWebhook(const Config& config, std::int64_t warehouse_id,
                                     bool stopping) const;
  // The send thread's share of a round: moves ready deliveries into `go` while their lanes and
  // the total concurrency allow.
  void PickSendable(const Config& config, std::vector<Delivery>& go) REQUIRES(pipe_mu_);
  // Sets the calling (send) thread's nice value to the process's plus `relative`; logs when not
  // permitted.
  void ApplySendThreadNice(int relative);
  // What one finished call means (retry time, dead, disabled webhook). Round thread. Takes the
  // delivery out of `finished` (a new one is stored with the record).
  Store::AttemptRecord Decide(const Config& config, Finished& finished);
  // Starts the call of `delivery`. A stored one's document moves into the request (a retry
  // reads it from the database again); a new one keeps a copy, stored with its record if the
  // call fails (a succeeded delivery keeps no document).
  void Submit(const Config& config, const WarehouseConfig& warehouse, Delivery& delivery);

  StoreOptions options_;
  const Clock& clock_;
  // This process's claim id (host, pid, random): the owner of its leases. A restarted
  // dispatcher is a new claimant and waits for its old leases like any other.
  const std::string claimant_;
  mutable Mutex mu_;
  std::shared_ptr<const Config> config_ GUARDED_BY(mu_);
  Counters counters_ GUARDED_BY(mu_);
  std::atomic<bool> stopping_{false};
  int process_nice_ = 0;  // the nice value of the thread that called Start
  std::thread round_thread_;
  std::thread send_thread_;
  std::thread signal_thread_;  // waits for the EventSignal, if the backend has one
  std::chrono::milliseconds idle_wait_ = kIdleWait;
  TransportFactory make_transport_;
  std::unique_ptr<WebhookTransport> transport_;  // used by the send thread; Wakeup() by anyone

  // Between the two threads.
  Mutex pipe_mu_;
  std::condition_variable round_cv_;  // wakes the round thread: something to record
  // By warehouse; entries are never erased.
  std::map<std::int64_t, Lane> lanes_ GUARDED_BY(pipe_mu_);
  std::set<std::int64_t> kicked_ GUARDED_BY(pipe_mu_);   // lanes that may have something to send
  std::vector<Finished> finished_ GUARDED_BY(pipe_mu_);  // calls done, not yet handed to a round
  int sending_total_ GUARDED_BY(pipe_mu_) = 0;
  bool urgent_ GUARDED_BY(pipe_mu_) = false;     // a lane waits for a round: no busy-round pause
  bool signalled_ GUARDED_BY(pipe_mu_) = false;  // the EventSignal fired since the last round
  // The send thread has nothing in flight and stopped.
  bool sender_done_ GUARDED_BY(pipe_mu_) = false;

  // Round thread only.
  std::unique_ptr<Store> store_;
  std::set<std::int64_t> dirty_;                       // warehouses that may have work
  std::vector<Store::AttemptRecord> unrecorded_;       // decided, not yet written
  std::vector<Store::LeaseChange> lease_changes_;      // releases not yet written
  std::optional<std::vector<std::int64_t>> disabled_;  // webhooks off; read at each rescan
  std::int64_t last_event_id_ = -1;
  std::size_t last_round_records_ = 0;
  TimePoint next_scan_;                   // every warehouse is looked at then
  TimePoint write_again_at_;              // after a database error, the next try
  std::int64_t formed_ = 0;               // new deliveries so far: their ids here are -1, -2, ...
  std::mt19937_64 random_;                // retry jitter; seeded from the OS
  std::vector<std::string> dispatchers_;  // the live ones at the last heartbeat, sorted
  TimePoint next_heartbeat_;
  int heartbeats_ = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_DELIVERY_LOOP_H_
