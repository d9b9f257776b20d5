// Store: the database both services share, and the only door to it: no code outside
// shared/src/store/ speaks SQL.
//
// Each method that changes state is one write transaction that checks the current state,
// applies a conditional update (`... WHERE status IN (...)`) and queues the outbox events the
// change implies, so two processes racing on one database cannot both win, and a late write
// never overwrites a final status. The rules are written once (store/flow.cpp,
// store/deliveries.cpp) over the backend's row operations; the backend (store/sqlite/: one
// SQLite file in WAL mode) holds the SQL.
//
// Ownership and threads: a Store owns one connection for reads and is NOT thread-safe; give
// each thread its own Store. Writes of every Store of one file in a process go through one
// shared writer connection (group commit, store/sqlite/write_group.h), opened with the options
// of the first Store of that file that is still alive; SQLite serialises writers across
// processes.
//
// Errors: Open() throws StoreError (a start-up failure); every other method returns a
// StoreResult holding either the value or a StoreError value (busy, full, read-only, ...).
// No database library's exception leaves this class.
#ifndef ALLOCATION_RELAY_STORE_H_
#define ALLOCATION_RELAY_STORE_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "allocation_relay/config.h"
#include "allocation_relay/domain.h"

namespace allocation_relay {

class StoreBackend;  // store/backend.h: the database behind a Store

class StoreError : public std::runtime_error {
 public:
  enum class Kind {
    kBusy,         // locked by another writer for longer than busy_timeout
    kFull,         // disk full or max_page_count reached
    kReadOnly,     // no permission to write
    kUnavailable,  // cannot open / I/O error
    kCorrupt,      // not a database, or damaged
    kInternal,     // anything else (a bug, a constraint we did not expect)
  };
  StoreError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

template <typename T>
using StoreResult = std::expected<T, StoreError>;

struct StoreOptions {
  std::string path;
  SynchronousMode synchronous = SynchronousMode::kFull;
  std::chrono::milliseconds busy_timeout{5000};
  // true (start-up): create the file if missing, switch it to WAL, run migrations.
  // false (a further connection of a running service): the database must exist with the
  // current schema; a file that vanished is an error, never silently recreated empty.
  bool create_and_migrate = true;
  // Bytes the file may grow to (PRAGMA max_page_count on every connection); 0: no limit. A
  // write past it fails as StoreError::Kind::kFull and changes nothing, like a full disk.
  std::int64_t max_size = 0;
  // PostgreSQL (backend kPostgresql): the libpq connection URI (no password in it) and the
  // connections a process may open (the API's pool of Stores).
  StoreBackendKind backend = StoreBackendKind::kSqlite;
  std::string url{};  // {}: brace-initialised options that stop before it stay warning-free
  int pool = 8;
};
StoreOptions StoreOptionsFrom(const StoreConfig& config);

// The outcome of a request update (PUT /allocation-request).
struct UpdateResult {
  enum class Outcome {
    kUpdated,
    kNotFound,     // no such id, or not in the caller's scope
    kWrongStatus,  // not confirmable / rejectable; `status` holds the current one
  };
  Outcome outcome = Outcome::kNotFound;
  RequestStatus status = RequestStatus::kAllocated;
};

struct CreateResult {
  enum class Outcome { kCreated, kDuplicateOrder };
  Outcome outcome = Outcome::kCreated;
  std::int64_t allocation_id = 0;
  // kCreated: the allocation as stored by this write, with the requests it made (what
  // GetAllocationByOrder would read right after it).
  Allocation allocation;
};

struct CancelResult {
  enum class Outcome { kCancelled, kNotFound, kNotOpen };
  Outcome outcome = Outcome::kNotFound;
  AllocationState state = AllocationState::kOpen;  // the state found when kNotOpen
};

// A check-first warehouse's answer to its check (POST /check-first).
struct CheckAnswer {
  std::int64_t order_number = 0;
  std::int64_t warehouse_id = 0;
  bool accepted = false;
};

struct CheckResult {
  enum class Outcome {
    kAnswered,  // the check took the answer
    kUnknown,   // no such order, the warehouse was not asked on it, or not in the caller's scope
    kFailed,    // no longer possible: answered, expired, or the allocation is not open
  };
  Outcome outcome = Outcome::kUnknown;
};

struct ExpiryResult {
  int timed_out = 0;         // requests moved to timed-out
  int checks_timed_out = 0;  // checks moved to timed-out
  int groups_advanced = 0;   // allocations whose flow moved to the next group
  int exhausted = 0;         // allocations that ran out of groups
};

// A filter for ListRequests; empty vectors mean "any".
struct RequestQuery {
  std::vector<RequestStatus> statuses;
  std::vector<std::int64_t> order_numbers;
  std::vector<std::int64_t> warehouse_ids;
  // Only requests whose stored warehouse name (warehouseName) is exactly this text; bound as
  // a parameter, never written into the SQL.
  std::optional<std::string> warehouse_name;
  WarehouseScope scope;
  std::int64_t after_id = 0;  // only ids greater than this
  std::int64_t offset = 0;
  int limit = 100;
};

// The group commit's counters for one file in this process (store/sqlite/write_group.h), for
// metrics; they only grow while the process runs.
struct WriteGroupStats {
  std::uint64_t commits = 0;      // transactions the group ran, one per batch of writes
  std::uint64_t writes = 0;       // the writes those batches held
  double wait_seconds = 0;        // summed over writes: time queued before their batch began
  double execute_seconds = 0;     // running the batches' writes (statements and savepoints)
  double commit_seconds = 0;      // their COMMITs, with the fsync
  std::uint64_t wal_frames = 0;   // pages the commits appended to the write-ahead log
  std::uint64_t checkpoints = 0;  // checkpoints of the log into the database file
  double checkpoint_seconds = 0;  // their time
};

// Retention (SPEC section 9): what a prune pass deletes. nullopt keeps that kind forever.
struct RetentionCutoffs {
  // Final allocations (confirmed, exhausted, cancelled) last changed before this go, with their
  // requests and outbox events, and the deliveries left without events (with their attempts).
  std::optional<TimePoint> finished;
  // Attempt records that started before this go (their deliveries keep their counts).
  std::optional<TimePoint> attempts;
  // The warehouses whose events are sent (nullopt: every warehouse's). An event of any other
  // is never put into a delivery, so it does not hold its allocation back (else the allocation
  // of a warehouse that polls would be kept forever).
  std::optional<std::vector<std::int64_t>> webhook_warehouses;
};

// Rows deleted (or, in a dry run, that would be) by kind.
struct PruneCounts {
  std::int64_t allocations = 0, requests = 0, events = 0, deliveries = 0, attempts = 0;
  std::int64_t Total() const { return allocations + requests + events + deliveries + attempts; }
  void Add(const PruneCounts& o) {
    allocations += o.allocations;
    requests += o.requests;
    events += o.events;
    deliveries += o.deliveries;
    attempts += o.attempts;
  }
};

// Where a prune pass has got to; a new pass starts from a default one. Steps move it on, so
// allocations kept back (an event still waiting for delivery) are not looked at again in the
// same pass.
struct PruneCursor {
  std::int64_t updated_at_us = std::numeric_limits<std::int64_t>::min();  // of the last looked at
  std::int64_t allocation_id = 0;
  bool allocations_done = false;
  bool attempts_done = false;
  bool done() const { return allocations_done && attempts_done; }
};

// Operator console (SPEC section 11, docs/console.md).
//
// Webhook call durations are counted in buckets with these upper bounds (milliseconds); the
// last bucket (index std::size(kCallDurationBoundsMs)) holds longer calls.
inline constexpr int kCallDurationBoundsMs[] = {1,   2,   5,    10,   20,   50,   100,
                                                200, 500, 1000, 2000, 5000, 10000};
inline constexpr std::size_t kCallDurationBuckets = std::size(kCallDurationBoundsMs) + 1;

// What the overview shows of one warehouse. The counts are of open work now; the rest comes
// from the activity the store keeps per warehouse and minute as attempts are recorded.
struct WarehouseActivity {
  std::int64_t warehouse_id = 0;
  std::int64_t pending_requests = 0;  // allocated, sent or failed
  std::int64_t asked_checks = 0;
  std::int64_t queued_events = 0;  // not yet in a delivery
  std::int64_t pending_deliveries = 0;
  std::int64_t dead_deliveries = 0;
  std::optional<TimePoint> disabled_at;  // webhook disabled by a 410 Gone
  std::string disabled_reason;
  std::optional<TimePoint> last_success_at;  // start of the newest successful call
  // Calls by duration bucket, of the minutes that start at or after `latency_since` (calls are
  // kept per minute of their start).
  std::array<std::int64_t, kCallDurationBuckets> call_durations{};
};

// Webhook activity in one minute, summed over the warehouses read.
struct ActivityMinute {
  TimePoint minute;                  // its start
  std::int64_t delivered = 0;        // deliveries that succeeded
  std::int64_t failed_attempts = 0;  // attempts that failed (retried or dead)
  std::int64_t dead = 0;             // deliveries that went dead
};

struct ActivityOverview {
  // Every warehouse in scope with anything to show (a nonzero count, a disabled webhook, a
  // success or a call kept), by id; a warehouse not listed has nothing.
  std::vector<WarehouseActivity> warehouses;
  // Minutes at or after `chart_since` with any activity, oldest first.
  std::vector<ActivityMinute> minutes;
};

// The console's deliveries list: newest first, keyset paged by id.
struct DeliveryQuery {
  std::optional<DeliveryState> state;     // nullopt: any
  std::optional<std::int64_t> warehouse;  // nullopt: any
  WarehouseScope scope;
  std::int64_t before_id = 0;  // only ids below this; 0: from the newest
  int limit = 50;
};

struct DeliverySummary {
  Delivery delivery;  // without its document
  std::optional<DeliveryAttempt> last_attempt;
};

enum class ResendOutcome { kResent, kNotFound, kNotDead };

// EventSignal: tells a dispatcher at once that another process queued outbox events, where the
// backend can (PostgreSQL: LISTEN/NOTIFY; every write that queues events notifies after its
// commit). Polling stays the backstop: a signal may be late or, across a reconnect, lost. Owns its
// own connection; not thread-safe (one thread waits on it).
class EventSignal {
 public:
  virtual ~EventSignal() = default;
  // The signal of the database of `options`, or nullptr when its backend has none (SQLite:
  // the processes of one host poll the file cheaply). Throws StoreError.
  static std::unique_ptr<EventSignal> Open(const StoreOptions& options);
  // Waits up to `timeout`; true if events may have been queued since the last call (a
  // notification arrived, or the connection was made again and some may have been missed).
  virtual bool Wait(std::chrono::milliseconds timeout) = 0;
};

class Store {
 public:
  // Opens (creating if needed) the database at options.path, sets WAL, busy_timeout and
  // synchronous, and runs pending schema migrations. Safe when several processes open a new
  // file at once. Throws StoreError.
  static std::unique_ptr<Store> Open(const StoreOptions& options);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The schema version this build migrates to, and the file's current one.
  static int LatestSchemaVersion();
  StoreResult<int> SchemaVersion();

  // Creates the allocation and `allocated` requests (with create events) for the first group
  // in one transaction; warehouses unknown to `catalog` are skipped, and a group left empty
  // moves the flow on. REQUIRES: `allocation` validated (non-empty lines and groups).
  StoreResult<CreateResult> CreateAllocation(const NewAllocation& allocation, TimePoint now,
                                             const WarehouseCatalog& catalog);

  // Confirms a confirmable request (pending or timed-out) of an open allocation: the request
  // becomes confirmed, the allocation confirmed, every other non-final request outdated (with
  // update events). Exactly one of any number of racing confirms wins.
  StoreResult<UpdateResult> ConfirmRequest(std::int64_t request_id, const WarehouseScope& scope,
                                           TimePoint now);

  // Rejects a pending or timed-out request. If it belongs to the current group and nothing of
  // that group is pending any more, the flow moves on (next group's requests, or exhausted).
  StoreResult<UpdateResult> RejectRequest(std::int64_t request_id, const WarehouseScope& scope,
                                          TimePoint now, const WarehouseCatalog& catalog);

  // Answers an asked check (SPEC section 12): accepting confirms the allocation by that
  // warehouse (an accepted event), rejects the other asked checks and outdates the non-final
  // requests; rejecting (a rejected event) moves the flow on once the group has no check asked
  // (to its direct-then-confirm warehouses, else the next group). Exactly one of any number of
  // racing acceptances wins. From the check's expiry on (`now` >= its expiration) no answer is
  // taken (kFailed), whether or not ExpireDue has timed it out yet.
  StoreResult<CheckResult> AnswerCheck(const CheckAnswer& answer, const WarehouseScope& scope,
                                       TimePoint now, const WarehouseCatalog& catalog);

  // Moves up to `limit` pending requests whose expiration is <= now to timed-out (with update
  // events), and up to `limit` asked checks to timed-out (with timeout events), and moves their
  // allocations' flow on. Reads only expired rows (partial indexes).
  StoreResult<ExpiryResult> ExpireDue(TimePoint now, const WarehouseCatalog& catalog,
                                      int limit = 500);

  // The earliest expiration among pending requests and asked checks, if any.
  StoreResult<std::optional<TimePoint>> NextExpiration();

  // Cancels an open allocation: state cancelled, every non-final request outdated.
  StoreResult<CancelResult> CancelAllocation(std::int64_t order_number, TimePoint now);

  // Delivery outcomes: `sent` from allocated or failed; `failed` from allocated only. Final
  // and timed-out requests are left alone. Returns how many rows changed.
  StoreResult<int> MarkSent(std::span<const std::int64_t> request_ids, TimePoint now);
  StoreResult<int> MarkFailed(std::span<const std::int64_t> request_ids, TimePoint now);

  // Reads.
  StoreResult<std::optional<AllocationRequest>> GetRequest(std::int64_t request_id);
  StoreResult<std::optional<Allocation>> GetAllocationByOrder(std::int64_t order_number);
  StoreResult<std::vector<AllocationRequest>> ListRequests(const RequestQuery& query);
  // Every request of order `order_number` that matches `filters`' statuses, warehouse_name and
  // scope (its order_numbers, warehouse_ids, after_id, offset and limit are not used), in id
  // order, unpaged: an order has at most one request per warehouse of its groups. nullopt when
  // the order is unknown, or when filters.scope limits it to warehouses none of the order's
  // requests is at. One statement: the requests and the order's existence are read from one
  // snapshot.
  StoreResult<std::optional<std::vector<AllocationRequest>>> ListOrderRequests(
      std::int64_t order_number, const RequestQuery& filters);
  // Outbox events not yet put into a delivery, oldest first (all warehouses if nullopt).
  StoreResult<std::vector<OutboxEvent>> ListUnbatchedEvents(std::optional<std::int64_t> warehouse,
                                                            int limit);

  // Webhook deliveries (used by the dispatcher).
  //
  // A finished call: `attempt` and what it means; `next_attempt_at` is used for kRetry.
  // A stored delivery's attempt (attempt.delivery_id > 0) is recorded only if attempt.attempt is
  // the pending delivery's count + 1 (so a late duplicate of a recorded call changes nothing).
  // A delivery formed but not yet stored (attempt.delivery_id 0, its first attempt) is stored
  // from `formed` with this attempt, and its events are marked as sent in it. Then
  // `request_ids` get the outcome's status.
  struct AttemptRecord {
    DeliveryAttempt attempt;
    AttemptOutcome outcome = AttemptOutcome::kRetry;
    TimePoint next_attempt_at;
    std::vector<std::int64_t> request_ids;  // the delivery's, as claimed (Delivery::request_ids)
    Delivery formed;                        // when attempt.delivery_id is 0
  };

  // One round of the dispatcher in one transaction (one commit): records `records`, applies
  // `leases`, then for each of `wants` claims the warehouse's due pending deliveries and forms
  // new ones from its unbatched events after `after_event`, up to `slots`. A claimed pending
  // delivery is leased until `lease_until`; a new one is not stored (Delivery::id 0, its
  // `event_ids` set): it is stored when its first attempt is recorded, and until then its
  // events stay unbatched, so after a crash they form the same batch again, with the same uid
  // (derived from the events and the database's salt). With `strict_order` deliveries go in
  // order and a newer one never passes a pending one that is not due (waiting for a retry) or
  // leased by someone else. `held` are the caller's own stored deliveries of that warehouse
  // (claimed and not yet recorded): they are neither claimed again nor in the way;
  // `after_event` is the newest event in the caller's unstored ones. `render` makes a new
  // delivery's document from its events and their requests; it runs inside the write.
  // With `strict_order` and `past_held`, pending deliveries are looked for only after the newest
  // held one: under strict order the held ones are the oldest pending, so the pending rows before
  // them need not be read again every round (a lane holds dozens ahead). A pending delivery older
  // than them appears only when an operator re-sends a dead one; a look without `past_held` (the
  // caller's periodic one) finds it.
  //
  // Dispatchers divide the warehouses with leases (SPEC section 10): a want first takes or
  // renews the warehouse's lease for `claimant` until `lease_until`, and takes nothing if
  // another claimant holds it (DeliveryTake::refused). A want with `slots` 0 only renews; one
  // with `release` gives the lease up. Leases are judged by the database's clock; the times in
  // and out of this call are the caller's, translated.
  struct DeliveryWant {
    std::int64_t warehouse_id = 0;
    int slots = 1;
    int max_events = 100;
    bool strict_order = true;
    TimePoint lease_until;
    std::vector<std::int64_t> held;
    bool past_held = false;
    std::int64_t after_event = 0;
    bool release = false;
  };
  // A lease the caller holds, renewed until `until`, or given up (nullopt) so the delivery can
  // be claimed again at once. Applied only while the delivery is pending and leased to the
  // claimant.
  struct LeaseChange {
    std::int64_t delivery_id = 0;
    std::optional<TimePoint> until;
  };
  struct DeliveryTake {
    std::int64_t warehouse_id = 0;
    bool refused = false;               // another claimant holds the warehouse's lease
    std::vector<Delivery> claimed;      // in order; stored ones leased until lease_until
    std::optional<TimePoint> next_due;  // the earliest pending delivery not yet due
  };
  // Renders a batch: its events, their requests and the subjects of its check_first events.
  using DocumentRenderer =
      std::function<std::string(std::span<const OutboxEvent>, std::span<const AllocationRequest>,
                                std::span<const CheckEventSubject>)>;
  StoreResult<std::vector<DeliveryTake>> RecordAndTake(std::span<const AttemptRecord> records,
                                                       std::span<const LeaseChange> leases,
                                                       std::span<const DeliveryWant> wants,
                                                       TimePoint now,
                                                       const DocumentRenderer& render,
                                                       const std::string& claimant = "dispatcher");
  // The dispatchers on this database divide the warehouses between them: each marks itself
  // live for `ttl` from `now` (judged by the database's clock, like leases) every second or so,
  // and gets back the live ones (claimants, sorted), itself included. A `ttl` of zero takes
  // `claimant` out (a dispatcher stopping).
  StoreResult<std::vector<std::string>> LiveDispatchers(const std::string& claimant, TimePoint now,
                                                        Micros ttl);
  // Warehouses with outbox events newer than `event_id` (what a new event id is about).
  StoreResult<std::vector<std::int64_t>> WarehousesWithEventsAfter(std::int64_t event_id);
  // Deliveries by state and warehouse (any if nullopt), oldest first.
  StoreResult<std::vector<Delivery>> ListDeliveries(std::optional<DeliveryState> state,
                                                    std::optional<std::int64_t> warehouse,
                                                    int limit);
  StoreResult<std::vector<DeliveryAttempt>> ListAttempts(std::int64_t delivery_id);
  // The outbox events about `request_ids` and `check_ids`, oldest first (for an allocation's
  // history).
  StoreResult<std::vector<OutboxEvent>> EventsOfRequests(
      std::span<const std::int64_t> request_ids, std::span<const std::int64_t> check_ids = {});
  StoreResult<std::optional<Delivery>> GetDelivery(std::int64_t delivery_id);
  // A consistent copy of the whole database at `path` (VACUUM INTO), taken while both services
  // keep running. Fails if `path` exists.
  StoreResult<bool> BackupTo(const std::string& path);

  // For metrics: deliveries by state, and unbatched events by warehouse (the queue depth).
  StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>> CountDeliveriesByState();
  StoreResult<std::vector<std::pair<std::int64_t, std::int64_t>>> UnbatchedEventsByWarehouse();

  // The newest outbox event id (0 if none): a cheap test for "anything new to send?".
  StoreResult<std::int64_t> MaxEventId();
  // Webhooks turned off by a 410 Gone until an operator enables them again.
  StoreResult<bool> DisableWebhook(std::int64_t warehouse_id, const std::string& reason,
                                   TimePoint now);
  StoreResult<bool> EnableWebhook(std::int64_t warehouse_id);
  StoreResult<std::vector<std::int64_t>> DisabledWebhooks();
  // Dead deliveries (of one warehouse, or all) become pending again, due at `now`. Returns how
  // many.
  StoreResult<int> ResendDead(std::optional<std::int64_t> warehouse, TimePoint now);

  // Operator console (docs/console.md). The activity kept per warehouse and minute (of each
  // call's start) is written by RecordAndTake with the attempts it records (a late duplicate
  // counts nowhere); the dispatcher deletes minutes older than a day with PruneActivity. Each
  // warehouse's last success is kept apart and outlives them.
  //
  // The overview of the warehouses `scope` allows (none for an empty list): the open work,
  // read in the partial indexes of open work alone, and the kept activity of the minutes at or
  // after min(chart_since, latency_since). One snapshot.
  StoreResult<ActivityOverview> ReadActivity(const WarehouseScope& scope, TimePoint chart_since,
                                             TimePoint latency_since);
  // Up to query.limit deliveries in the query's scope, newest (highest id) first, without their
  // documents, each with its last attempt (nullopt if retention deleted it). Empty for a
  // limit <= 0, an empty scope, or a warehouse outside the scope.
  StoreResult<std::vector<DeliverySummary>> ListDeliveryPage(const DeliveryQuery& query);
  // One dead delivery becomes pending again, due at `now` (as ResendDead): kResent; kNotFound
  // if there is no such delivery or its warehouse is outside `scope`; kNotDead if it is pending
  // or succeeded (of two racing re-sends, one gets kResent and the other kNotDead).
  StoreResult<ResendOutcome> ResendDeadDelivery(std::int64_t delivery_id,
                                                const WarehouseScope& scope, TimePoint now);
  // Deletes the activity of minutes before `before`; returns the rows deleted.
  StoreResult<std::int64_t> PruneActivity(TimePoint before);

  // Tests only: the query plans SQLite chooses (EXPLAIN QUERY PLAN, one line per step) for the
  // exact SQL that ListRequests, ExpireDue and NextExpiration run, so tests can check which
  // index serves them.
  StoreResult<std::vector<std::string>> ExplainListRequestsForTest(const RequestQuery& query);
  StoreResult<std::vector<std::string>> ExplainExpiryScanForTest();
  StoreResult<std::vector<std::string>> ExplainNextExpirationForTest();

  // Counts for metrics: requests by status and allocations by state (every value present).
  StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>> CountRequestsByStatus();
  StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>> CountAllocationsByState();
  // Checks by status (every value present): asked, and each outcome.
  StoreResult<std::vector<std::pair<CheckStatus, std::int64_t>>> CountChecksByStatus();

  // One step of a prune pass, one small write transaction: deletes up to `max_allocations`
  // prunable final allocations after `cursor` (oldest change first) with everything of theirs,
  // then up to `max_attempts` old attempts, and moves `cursor` on. Never deleted: an open
  // allocation; an allocation with an event not yet in a delivery (of one of
  // cutoffs.webhook_warehouses) or in a pending one; the
  // allocation of the newest request or event (so SQLite never hands out their ids again); a
  // pending delivery. With `dry_run` the step is undone and its counts say what it would have
  // deleted (a delivery whose events span two steps is then not counted).
  StoreResult<PruneCounts> PruneStep(const RetentionCutoffs& cutoffs, PruneCursor& cursor,
                                     int max_allocations, int max_attempts, bool dry_run);
  // When the oldest final allocation kept was last changed (nullopt if there is none).
  StoreResult<std::optional<TimePoint>> OldestFinishedAllocation();

  // Succeeds when the database answers and its file is still at its path.
  StoreResult<bool> Ping();

  // `PRAGMA integrity_check` == "ok".
  StoreResult<bool> IntegrityCheck();

  // The group commit's counters for this Store's file in this process.
  WriteGroupStats GroupStats() const;

 private:
  explicit Store(std::unique_ptr<StoreBackend> backend);
  std::unique_ptr<StoreBackend> backend_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_STORE_H_
