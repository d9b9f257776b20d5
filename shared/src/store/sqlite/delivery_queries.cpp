// The reads of the outbox, deliveries and webhooks: the dispatcher's, the operator commands' and
// the metrics'.
#include <algorithm>

#include "rows.h"
#include "sqlite_backend.h"

namespace allocation_relay::sqlite {

StoreResult<std::vector<OutboxEvent>> SqliteBackend::ListUnbatchedEvents(
    std::optional<std::int64_t> warehouse, int limit) {
  return Guarded([&]() -> std::vector<OutboxEvent> {
    Borrowed s = reader_.Prepared(
        warehouse ? std::string(kEventColumns) +
                        "WHERE delivery_id IS NULL AND warehouse_id = ? ORDER BY id LIMIT ?"
                  : std::string(kEventColumns) + "WHERE delivery_id IS NULL ORDER BY id LIMIT ?");
    int next = 1;
    if (warehouse) s->bind(next++, *warehouse);
    s->bind(next, limit);
    std::vector<OutboxEvent> out;
    while (s->executeStep()) out.push_back(EventFromRow(*s));
    return out;
  });
}

StoreResult<std::vector<std::int64_t>> SqliteBackend::WarehousesWithEventsAfter(
    std::int64_t event_id) {
  return Guarded([&]() -> std::vector<std::int64_t> {
    Borrowed q = reader_.Prepared(
        "SELECT DISTINCT warehouse_id FROM outbox_events WHERE id > ? ORDER BY warehouse_id");
    q->bind(1, event_id);
    std::vector<std::int64_t> out;
    while (q->executeStep()) out.push_back(q->getColumn(0).getInt64());
    return out;
  });
}

StoreResult<std::vector<Delivery>> SqliteBackend::ListDeliveries(
    std::optional<DeliveryState> state, std::optional<std::int64_t> warehouse, int limit) {
  return Guarded([&]() -> std::vector<Delivery> {
    ReadTransaction txn(reader_.db());
    std::string sql = std::string(kDeliveryColumns) + "WHERE 1";
    if (state) sql += " AND state = '" + std::string(ToString(*state)) + "'";
    if (warehouse) sql += " AND warehouse_id = " + std::to_string(*warehouse);
    sql += " ORDER BY id LIMIT " + std::to_string(limit);
    std::vector<Delivery> rows;
    {
      Borrowed q = reader_.Prepared(sql);
      while (q->executeStep()) {
        Delivery d;
        d.id = q->getColumn(0).getInt64();
        rows.push_back(d);
      }
    }
    std::vector<Delivery> out;
    for (const Delivery& d : rows) {
      if (auto full = ReadDelivery(reader_, d.id)) out.push_back(std::move(*full));
    }
    return out;
  });
}

StoreResult<std::vector<DeliveryAttempt>> SqliteBackend::ListAttempts(std::int64_t delivery_id) {
  return Guarded([&]() -> std::vector<DeliveryAttempt> {
    Borrowed q = reader_.Prepared(
        "SELECT delivery_id, attempt, started_at, duration_us, http_status, error, response_head "
        "FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt");
    q->bind(1, delivery_id);
    std::vector<DeliveryAttempt> out;
    while (q->executeStep()) out.push_back(AttemptFromRow(*q));
    return out;
  });
}

StoreResult<std::vector<OutboxEvent>> SqliteBackend::EventsOfRequests(
    std::span<const std::int64_t> request_ids, std::span<const std::int64_t> check_ids) {
  return Guarded([&]() -> std::vector<OutboxEvent> {
    std::vector<OutboxEvent> out;
    if (request_ids.empty() && check_ids.empty()) return out;
    Borrowed q =
        reader_.Prepared(std::string(kEventColumns) + "WHERE request_id IN " + IdList(request_ids) +
                         " OR check_id IN " + IdList(check_ids) + " ORDER BY id");
    while (q->executeStep()) {
      out.push_back(EventFromRow(*q));
    }
    return out;
  });
}

StoreResult<std::optional<Delivery>> SqliteBackend::GetDelivery(std::int64_t delivery_id) {
  return Guarded([&]() -> std::optional<Delivery> {
    ReadTransaction txn(reader_.db());
    return ReadDelivery(reader_, delivery_id);
  });
}

StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>>
SqliteBackend::CountDeliveriesByState() {
  return Guarded([&] {
    std::vector<std::pair<DeliveryState, std::int64_t>> out = {
        {DeliveryState::kPending, 0}, {DeliveryState::kSucceeded, 0}, {DeliveryState::kDead, 0}};
    // Pending and dead ones are counted in their small partial indexes; the rest (succeeded)
    // is the total kept by triggers minus those: no scan of the table, whatever its size.
    Borrowed q = reader_.Prepared(
        "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'), "
        "(SELECT count(*) FROM deliveries WHERE state = 'dead'), "
        "(SELECT value FROM row_counts WHERE name = 'deliveries')");
    if (q->executeStep()) {
      std::int64_t pending = q->getColumn(0).getInt64(), dead = q->getColumn(1).getInt64();
      out[0].second = pending;
      out[1].second = std::max<std::int64_t>(0, q->getColumn(2).getInt64() - pending - dead);
      out[2].second = dead;
    }
    return out;
  });
}

StoreResult<std::vector<std::pair<std::int64_t, std::int64_t>>>
SqliteBackend::UnbatchedEventsByWarehouse() {
  return Guarded([&] {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    Borrowed q = reader_.Prepared(
        "SELECT warehouse_id, count(*) FROM outbox_events INDEXED BY "
        "outbox_unbatched_by_warehouse WHERE delivery_id IS NULL GROUP BY warehouse_id");
    while (q->executeStep())
      out.emplace_back(q->getColumn(0).getInt64(), q->getColumn(1).getInt64());
    return out;
  });
}

StoreResult<std::int64_t> SqliteBackend::MaxEventId() {
  return Guarded([&]() -> std::int64_t {
    Borrowed q = reader_.Prepared("SELECT coalesce(max(id), 0) FROM outbox_events");
    q->executeStep();
    return q->getColumn(0).getInt64();
  });
}

StoreResult<std::vector<std::int64_t>> SqliteBackend::DisabledWebhooks() {
  return Guarded([&]() -> std::vector<std::int64_t> {
    Borrowed q = reader_.Prepared(
        "SELECT warehouse_id FROM webhook_endpoints WHERE disabled_at IS NOT NULL ORDER BY 1");
    std::vector<std::int64_t> out;
    while (q->executeStep()) out.push_back(q->getColumn(0).getInt64());
    return out;
  });
}

}  // namespace allocation_relay::sqlite
