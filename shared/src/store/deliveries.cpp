#include "deliveries.h"

#include <algorithm>
#include <optional>
#include <string>

#include "activity.h"
#include "allocation_relay/signature.h"
#include "id_list.h"

namespace allocation_relay::deliveries {
namespace {

// A new delivery's id as receivers see it (webhook-id): "msg_" and 24 hex digits of a keyed
// hash of its warehouse and events, so the same batch formed again (after a crash) keeps it.
std::string FormedUid(StoreTransaction& t, std::int64_t warehouse_id,
                      std::span<const std::int64_t> event_ids) {
  std::string text = std::to_string(warehouse_id) + ":" + JoinIds(event_ids);
  return "msg_" + HmacSha256Hex(t.DeliverySalt(), text).substr(0, 24);
}

// What a finished call makes of its delivery.
struct CallOutcome {
  DeliveryState state;
  TimePoint next_attempt_at;
  const TimePoint* finished_at;  // null while pending (a plain pointer: GCC warns wrongly about
                                 // an optional here); else points at the round's `now`
};

CallOutcome OutcomeOf(const Store::AttemptRecord& record, const TimePoint& now) {
  const AttemptOutcome outcome = record.outcome;
  const DeliveryState state = outcome == AttemptOutcome::kSucceeded ? DeliveryState::kSucceeded
                              : outcome == AttemptOutcome::kDead    ? DeliveryState::kDead
                                                                    : DeliveryState::kPending;
  const bool retry = outcome == AttemptOutcome::kRetry;
  return {state, retry ? record.next_attempt_at : now, retry ? nullptr : &now};
}

DeliveryAttempt KeptAttempt(const DeliveryAttempt& attempt) {
  DeliveryAttempt kept = attempt;
  kept.response_head = ResponseHeadText(attempt.response_head);
  return kept;
}

// A succeeded delivery's document is never read again (only pending and dead ones are sent
// again), and its events and requests render it again if anyone asks: not kept.
bool KeepsDocument(DeliveryState state) { return state != DeliveryState::kSucceeded; }

// Records a finished call of a stored delivery and returns the delivery's warehouse; nullopt
// (nothing written) unless it is the pending delivery's next attempt. The caller then moves the
// delivery's requests.
std::optional<std::int64_t> RecordLaterAttempt(StoreTransaction& t,
                                               const Store::AttemptRecord& record,
                                               const TimePoint& now) {
  const CallOutcome o = OutcomeOf(record, now);
  const DeliveryAttempt& attempt = record.attempt;
  std::optional<std::int64_t> warehouse =
      t.AdvanceDelivery(attempt.delivery_id, attempt.attempt, o.state, o.next_attempt_at,
                        o.finished_at, !KeepsDocument(o.state));
  // nullopt: not the next attempt (a late duplicate), or the delivery is final.
  if (warehouse) t.InsertAttempt(attempt.delivery_id, KeptAttempt(attempt));
  return warehouse;
}

// The lease clock (StoreTransaction::LeaseClock) against the caller's: lease times go into the
// database on the one and come out on the other.
struct LeaseTimes {
  TimePoint now, lease_now;
  TimePoint ToLease(TimePoint t) const { return lease_now + (t - now); }
  TimePoint ToCaller(TimePoint t) const { return now + (t - lease_now); }
};

// Takes or renews the warehouse's lease, then claims its due pending deliveries (leased until
// want.lease_until) and forms new ones from its unbatched events while slots are left.
Store::DeliveryTake TakeDeliveries(StoreTransaction& t, const Store::DeliveryWant& want,
                                   const LeaseTimes& clock, const Store::DocumentRenderer& render,
                                   const std::string& claimant) {
  const TimePoint now = clock.now;
  Store::DeliveryTake take;
  take.warehouse_id = want.warehouse_id;
  if (want.release) {
    t.ReleaseWarehouse(want.warehouse_id, claimant);
    return take;
  }
  const TimePoint lease_until = clock.ToLease(want.lease_until);
  if (!t.ClaimWarehouse(want.warehouse_id, claimant, clock.lease_now, lease_until)) {
    take.refused = true;  // another dispatcher sends this warehouse's deliveries
    return take;
  }
  if (want.slots <= 0) return take;  // a renewal only
  auto note_due = [&](TimePoint due) {
    if (!take.next_due || due < *take.next_due) take.next_due = due;
  };
  auto held = [&](std::int64_t id) {
    return std::find(want.held.begin(), want.held.end(), id) != want.held.end();
  };
  const int limit = want.slots + static_cast<int>(want.held.size());
  // Pending deliveries first, oldest first.
  std::vector<std::int64_t> claim;
  bool blocked = false;  // strict order: a pending delivery not due stops everything after it
  if (want.strict_order) {
    const bool past_held = want.past_held && !want.held.empty();
    const std::int64_t after =
        past_held ? *std::max_element(want.held.begin(), want.held.end()) : 0;
    for (const StoreTransaction::PendingDelivery& p :
         t.PendingDeliveries(want.warehouse_id, after, past_held ? want.slots : limit)) {
      if (static_cast<int>(claim.size()) >= want.slots) break;
      if (held(p.id)) continue;
      const bool leased = p.lease_until && *p.lease_until > clock.lease_now;
      if (p.next_attempt_at > now) {
        note_due(p.next_attempt_at);
      } else if (leased) {
        note_due(clock.ToCaller(*p.lease_until));  // a crashed dispatcher's lease runs out
      } else {
        claim.push_back(p.id);
        continue;
      }
      blocked = true;
      break;
    }
  } else {
    for (std::int64_t id : t.DueDeliveries(want.warehouse_id, now, clock.lease_now, limit)) {
      if (static_cast<int>(claim.size()) >= want.slots) break;
      if (!held(id)) claim.push_back(id);
    }
    if (std::optional<TimePoint> due = t.NextDueDelivery(want.warehouse_id, now)) note_due(*due);
  }
  for (std::int64_t id : claim) {
    if (!t.ClaimLease(id, claimant, clock.lease_now, lease_until)) continue;
    if (auto d = t.ReadDelivery(id)) {
      if (d->lease_until) d->lease_until = clock.ToCaller(*d->lease_until);
      take.claimed.push_back(std::move(*d));
    }
  }
  if (blocked) return take;

  // New deliveries from the unbatched events, while slots are left: one read for all of them.
  // Not stored: a delivery is stored with its first attempt (RecordOneAttempt).
  const int wanted = want.slots - static_cast<int>(take.claimed.size());
  if (wanted <= 0) return take;
  const std::size_t per_delivery = static_cast<std::size_t>(std::max(1, want.max_events));
  auto unbatched = t.UnbatchedWithSubjects(want.warehouse_id, want.after_event,
                                           wanted * static_cast<int>(per_delivery));
  for (std::size_t first = 0; first < unbatched.size();) {
    const std::size_t count = std::min(unbatched.size() - first, per_delivery);
    std::vector<OutboxEvent> events;
    Delivery d;
    std::vector<AllocationRequest> requests;
    std::vector<CheckEventSubject> checks;
    for (std::size_t i = first; i < first + count; ++i) {
      StoreTransaction::UnbatchedEvent& u = unbatched[i];
      d.event_ids.push_back(u.event.id);
      // Only requests change with a delivery's fate (sent, failed); checks do not.
      if (u.event.check_id == 0) d.request_ids.push_back(u.event.request_id);
      if (u.request) requests.push_back(std::move(*u.request));
      if (u.check) checks.push_back(std::move(*u.check));
      events.push_back(std::move(u.event));
    }
    first += count;
    d.document = render(events, requests, checks);
    d.uid = FormedUid(t, want.warehouse_id, d.event_ids);
    d.warehouse_id = want.warehouse_id;
    d.state = DeliveryState::kPending;
    d.next_attempt_at = now;
    d.created_at = now;
    take.claimed.push_back(std::move(d));
  }
  return take;
}

}  // namespace

std::string ResponseHeadText(std::string_view in) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    if (b == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    // The length of the sequence `b` starts and the range its second byte may take (no
    // overlong forms, no surrogates, nothing past U+10FFFF: RFC 3629).
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3;
      if (b == 0xE0) low = 0xA0;
      if (b == 0xED) high = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4;
      if (b == 0xF0) low = 0x90;
      if (b == 0xF4) high = 0x8F;
    }
    std::size_t valid = length ? 1 : 0;  // bytes of a well-formed prefix
    while (valid > 0 && valid < length && i + valid < in.size()) {
      const auto c = static_cast<unsigned char>(in[i + valid]);
      if (c < (valid == 1 ? low : 0x80) || c > (valid == 1 ? high : 0xBF)) break;
      ++valid;
    }
    if (length && valid == length) {
      out.append(in.substr(i, length));
      i += length;
    } else {
      out += kReplacement;  // one for the maximal ill-formed prefix (Unicode's practice)
      i += std::max<std::size_t>(1, valid);
    }
  }
  return out;
}

ResendOutcome ResendDeadDelivery(StoreTransaction& t, std::int64_t delivery_id,
                                 const WarehouseScope& scope, TimePoint now) {
  // A delivery's warehouse never changes: read first, it decides only whether the caller may
  // see the delivery. The move itself is conditional, so of two racing re-sends one wins.
  std::optional<std::int64_t> warehouse = t.DeliveryWarehouse(delivery_id);
  if (!warehouse || !scope.Allows(*warehouse)) return ResendOutcome::kNotFound;
  return t.ResendDeadDelivery(delivery_id, now) ? ResendOutcome::kResent : ResendOutcome::kNotDead;
}

std::vector<std::string> LiveDispatchers(StoreTransaction& t, const std::string& claimant,
                                         TimePoint now, Micros ttl) {
  const TimePoint lease_now = t.LeaseClock(now);
  return t.LiveDispatchers(claimant, lease_now, lease_now + ttl);
}

bool RecordAndTake(StoreTransaction& t, std::span<const Store::AttemptRecord> records,
                   std::span<const Store::LeaseChange> leases,
                   std::span<const Store::DeliveryWant> wants, TimePoint now,
                   const Store::DocumentRenderer& render, const std::string& claimant,
                   std::vector<Store::DeliveryTake>& takes) {
  takes.clear();
  std::vector<std::int64_t> sent, failed;
  auto moved = [&](const Store::AttemptRecord& r) {
    std::vector<std::int64_t>& to = r.outcome == AttemptOutcome::kSucceeded ? sent : failed;
    to.insert(to.end(), r.request_ids.begin(), r.request_ids.end());
  };
  // The first calls of deliveries formed in this round are stored together (they are most of
  // the records when every event is its own delivery).
  std::vector<StoreTransaction::FirstAttempt> firsts;
  std::vector<const Store::AttemptRecord*> first_records;
  activity::Tally tally;  // the console's activity of the attempts recorded
  for (const Store::AttemptRecord& r : records) {
    if (r.attempt.delivery_id != 0) {
      if (std::optional<std::int64_t> warehouse = RecordLaterAttempt(t, r, now)) {
        moved(r);
        tally.Add(*warehouse, r.attempt, r.outcome);
      }
      continue;
    }
    if (r.attempt.attempt != 1) continue;
    const CallOutcome o = OutcomeOf(r, now);
    firsts.push_back({&r.formed, o.state, KeepsDocument(o.state), o.next_attempt_at, o.finished_at,
                      KeptAttempt(r.attempt)});
    first_records.push_back(&r);
  }
  if (!firsts.empty()) {
    // An event already in another delivery stays there (only a second dispatcher on the same
    // database could have sent it too).
    t.InsertDeliveries(firsts);
    for (const Store::AttemptRecord* r : first_records) {
      moved(*r);
      tally.Add(r->formed.warehouse_id, r->attempt, r->outcome);
    }
  }
  tally.Write(t);
  // Conditional: a request already confirmed, rejected, timed out or outdated keeps its status
  // whatever the webhook's fate. Failures first: applied one by one in any order, a request
  // that both failed and succeeded in this round would end `sent` too.
  t.MoveRequests(failed, RequestStatus::kFailed, StatusSet::kUnsent, now);
  t.MoveRequests(sent, RequestStatus::kSent, StatusSet::kSendable, now);
  if (leases.empty() && wants.empty()) return true;
  const LeaseTimes clock{now, t.LeaseClock(now)};
  for (const Store::LeaseChange& change : leases) {
    std::optional<TimePoint> until;
    if (change.until) until = clock.ToLease(*change.until);
    t.SetLease(change.delivery_id, claimant, until);
  }
  for (const Store::DeliveryWant& want : wants) {
    takes.push_back(TakeDeliveries(t, want, clock, render, claimant));
  }
  return true;
}

}  // namespace allocation_relay::deliveries
