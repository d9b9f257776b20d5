#include "operator_commands.h"

#include <algorithm>
#include <map>

#include "allocation_relay/allocation_history.h"
#include "allocation_relay/store.h"
#include "allocation_relay/time_zone.h"
#include "pruner.h"

namespace allocation_relay {
namespace {

// The database must exist: an operator command never creates one.
std::unique_ptr<Store> OpenExisting(const Config& config, std::ostream& err) {
  StoreOptions options = StoreOptionsFrom(config.store);
  options.create_and_migrate = false;
  try {
    return Store::Open(options);
  } catch (const StoreError& e) {
    err << e.what() << "\n";
    return nullptr;
  }
}

TimeZone Zone(const Config& config) {
  return TimeZone::Find(config.timezone).value_or(TimeZone::Utc());
}

template <typename T>
bool Failed(const StoreResult<T>& r, std::ostream& err) {
  if (r) return false;
  err << r.error().what() << "\n";
  return true;
}

}  // namespace

int ListDeliveriesCommand(const Config& config, std::optional<DeliveryState> state,
                          std::optional<std::int64_t> warehouse, int limit, std::ostream& out,
                          std::ostream& err) {
  auto store = OpenExisting(config, err);
  if (!store) return 1;
  auto deliveries = store->ListDeliveries(state, warehouse, limit);
  if (Failed(deliveries, err)) return 1;
  TimeZone zone = Zone(config);
  out << "id\tdelivery\twarehouse\tstate\tattempts\tevents\tnext attempt\tlast answer\n";
  for (const Delivery& d : *deliveries) {
    std::string last = "-";
    auto attempts = store->ListAttempts(d.id);
    if (attempts && !attempts->empty()) {
      const DeliveryAttempt& a = attempts->back();
      last = a.http_status ? "HTTP " + std::to_string(a.http_status) : a.error;
    }
    out << d.id << "\t" << d.uid << "\t" << d.warehouse_id << "\t" << ToString(d.state) << "\t"
        << d.attempt_count << "\t" << d.request_ids.size() << "\t"
        << (d.state == DeliveryState::kPending ? zone.FormatIso8601(d.next_attempt_at) : "-")
        << "\t" << last << "\n";
  }
  return 0;
}

int ResendDeadCommand(const Config& config, std::optional<std::int64_t> warehouse,
                      std::ostream& out, std::ostream& err) {
  auto store = OpenExisting(config, err);
  if (!store) return 1;
  auto count = store->ResendDead(warehouse, SystemClock().Now());
  if (Failed(count, err)) return 1;
  out << *count << " dead deliveries queued again"
      << (warehouse ? " for warehouse " + std::to_string(*warehouse) : "") << "\n";
  return 0;
}

int ResendDeadDeliveryCommand(const Config& config, std::int64_t delivery_id, std::ostream& out,
                              std::ostream& err) {
  auto store = OpenExisting(config, err);
  if (!store) return 1;
  auto outcome = store->ResendDeadDelivery(delivery_id, WarehouseScope{}, SystemClock().Now());
  if (Failed(outcome, err)) return 1;
  switch (*outcome) {
    case ResendOutcome::kResent:
      out << "delivery " << delivery_id << " queued again\n";
      return 0;
    case ResendOutcome::kNotFound:
      err << "no delivery " << delivery_id << "\n";
      return 1;
    case ResendOutcome::kNotDead:
      err << "delivery " << delivery_id << " is not dead; nothing changed\n";
      return 1;
  }
  return 1;
}

int EnableWebhookCommand(const Config& config, std::int64_t warehouse, std::ostream& out,
                         std::ostream& err) {
  auto store = OpenExisting(config, err);
  if (!store) return 1;
  auto changed = store->EnableWebhook(warehouse);
  if (Failed(changed, err)) return 1;
  out << "webhook of warehouse " << warehouse
      << (*changed ? " enabled" : " was not disabled; nothing changed") << "\n";
  return 0;
}

int HistoryCommand(const Config& config, std::int64_t order_number, std::ostream& out,
                   std::ostream& err) {
  auto store = OpenExisting(config, err);
  if (!store) return 1;
  auto history = ReadAllocationHistory(*store, order_number, WarehouseScope{},
                                       /*with_attempts=*/false);
  if (Failed(history, err)) return 1;
  if (!*history) {
    err << "no allocation for order " << order_number << "\n";
    return 1;
  }
  const Allocation& a = (*history)->allocation;
  TimeZone zone = Zone(config);
  out << "order " << a.order.number << " (" << a.order.id << "): " << ToString(a.state);
  if (a.confirmed_warehouse_id) out << " by warehouse " << *a.confirmed_warehouse_id;
  out << ", created " << zone.FormatIso8601(a.created_at) << ", group " << a.current_group + 1
      << " of " << a.groups.size() << "\n";
  for (const AllocationRequest& r : a.requests) {
    out << "  request " << r.id << " warehouse " << r.warehouse_id << " (" << r.warehouse_name
        << "): " << ToString(r.status) << ", created " << zone.FormatIso8601(r.created_at)
        << ", expires " << zone.FormatIso8601(r.expires_at) << ", last change "
        << zone.FormatIso8601(r.updated_at) << "\n";
  }
  for (const Check& c : a.checks) {
    out << "  check " << c.id << " warehouse " << c.warehouse_id << ": " << ToString(c.status)
        << ", asked " << zone.FormatIso8601(c.created_at) << ", expires "
        << zone.FormatIso8601(c.expires_at) << ", last change " << zone.FormatIso8601(c.updated_at)
        << "\n";
  }
  std::map<std::int64_t, const Delivery*> deliveries;
  for (const AllocationHistory::CarriedBy& d : (*history)->deliveries) {
    deliveries[d.delivery.id] = &d.delivery;
  }
  for (const OutboxEvent& e : (*history)->events) {
    if (e.check_id != 0) {
      out << "  event " << e.id << " check_first " << ToString(e.action) << " of check "
          << e.check_id;
    } else {
      out << "  event " << e.id << " " << ToString(e.action) << " (" << ToString(e.status)
          << ") of request " << e.request_id;
    }
    out << " at " << zone.FormatIso8601(e.created_at) << ": ";
    if (!e.delivery_id) {
      out << "not sent yet\n";
      continue;
    }
    auto d = deliveries.find(*e.delivery_id);
    if (d == deliveries.end()) {
      out << "delivery " << *e.delivery_id << "\n";
      continue;
    }
    out << "delivery " << d->second->uid << " " << ToString(d->second->state) << " after "
        << d->second->attempt_count << " attempts\n";
  }
  return 0;
}

int BackupCommand(const Config& config, const std::string& path, std::ostream& out,
                  std::ostream& err) {
  if (config.store.backend == StoreBackendKind::kPostgresql) {
    err << "backup: the store is PostgreSQL; back it up with pg_dump (pg_dump \""
        << StoreLocation(config.store) << "\" > relay.sql)\n";
    return 1;
  }
  auto store = OpenExisting(config, err);
  if (!store) return 1;
  auto done = store->BackupTo(path);
  if (Failed(done, err)) return 1;
  out << "backup of " << StoreLocation(config.store) << " written to " << path << "\n";
  return 0;
}

int PruneCommand(const Config& config, bool dry_run, std::ostream& out, std::ostream& err) {
  SystemClock clock;
  Pruner pruner(StoreOptionsFrom(config.store), clock, config.retention);
  Pruner::PassResult r = pruner.RunPass(dry_run);
  const PruneCounts& c = r.counts;
  // After an error only what was really deleted is worth printing.
  const bool deleted_before_error = r.error && !dry_run && c.Total() > 0;
  if (!r.error || deleted_before_error) {
    if (dry_run) out << "dry run: nothing deleted; would delete:\n";
    out << "allocations " << c.allocations << "\n"
        << "requests " << c.requests << "\n"
        << "events " << c.events << "\n"
        << "deliveries " << c.deliveries << "\n"
        << "attempts " << c.attempts << "\n";
  }
  if (r.error) {
    err << "prune: " << r.error->what()
        << (deleted_before_error ? " (the rows counted above were deleted before it)" : "") << "\n";
    return 1;
  }
  return 0;
}

}  // namespace allocation_relay
