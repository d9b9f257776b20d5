// The versioned schema migrations of the SQLite backend (private to store/sqlite/).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SCHEMA_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SCHEMA_H_

namespace allocation_relay::schema {

// Migration N (1-based) brings a database from user_version N-1 to N. Append only: a released
// migration is never edited.
inline constexpr const char* kMigrations[] = {
    // 1: allocations, their lines and requests; the webhook outbox.
    R"sql(
CREATE TABLE allocations (
  id                     INTEGER PRIMARY KEY,
  order_id               TEXT    NOT NULL,
  order_number           INTEGER NOT NULL UNIQUE,   -- GET /allocations/<n>, duplicate check
  groups_json            TEXT    NOT NULL,          -- priority groups, e.g. [[3,4],[7]]
  lines_json             TEXT    NOT NULL,          -- the order's lines, as the API shows them
  current_group          INTEGER NOT NULL DEFAULT 0,
  state                  TEXT    NOT NULL
                         CHECK (state IN ('open', 'confirmed', 'exhausted', 'cancelled')),
  confirmed_warehouse_id INTEGER,
  created_at             INTEGER NOT NULL,          -- unix microseconds
  updated_at             INTEGER NOT NULL
);

-- A request carries a copy of its order (id, number, lines): they never change, and every
-- answer and webhook shows them, so a page of 100 requests is read without joining anything.
CREATE TABLE allocation_requests (
  id             INTEGER PRIMARY KEY,
  allocation_id  INTEGER NOT NULL REFERENCES allocations (id),
  order_id       TEXT    NOT NULL,
  order_number   INTEGER NOT NULL,
  lines_json     TEXT    NOT NULL,
  warehouse_id   INTEGER NOT NULL,
  warehouse_name TEXT    NOT NULL,
  group_index    INTEGER NOT NULL,
  status         TEXT    NOT NULL CHECK (status IN ('allocated', 'sent', 'failed', 'confirmed',
                                                    'rejected', 'timed-out', 'outdated')),
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  CHECK (expires_at >= created_at),
  UNIQUE (allocation_id, warehouse_id)             -- one request per warehouse and allocation
);

-- GET /allocation-requests?warehouse=W (default status: pending) in id order: only pending rows
-- (~2 % of a live table) are in it, so the warehouses' polling never walks final history. It
-- carries every column an answer shows (a covering index), so that query, the one every
-- warehouse repeats, reads this small index alone and never the table.
CREATE INDEX requests_pending_by_warehouse ON allocation_requests
  (warehouse_id, id, allocation_id, status, warehouse_name, group_index, created_at, expires_at,
   updated_at, order_id, order_number, lines_json)
  WHERE status IN ('allocated', 'sent', 'failed');
-- GET /allocation-requests (pending) without a warehouse filter, in id order.
CREATE INDEX requests_pending ON allocation_requests (id)
  WHERE status IN ('allocated', 'sent', 'failed');
-- GET ...?warehouse=W with any other status set, in id order.
CREATE INDEX requests_by_warehouse ON allocation_requests (warehouse_id, id);
-- GET ...?order=N, in id order.
CREATE INDEX requests_by_order ON allocation_requests (order_number, id);
-- GET ...?status=S without a warehouse, in id order.
CREATE INDEX requests_by_status ON allocation_requests (status, id);
-- The expiry scan: pending rows by expiration, so finding what expired costs O(expired).
CREATE INDEX requests_pending_by_expiry ON allocation_requests (expires_at)
  WHERE status IN ('allocated', 'sent', 'failed');

-- The webhook outbox: one row per state change a warehouse must hear of, written in the same
-- transaction as the change.
CREATE TABLE outbox_events (
  id           INTEGER PRIMARY KEY,
  warehouse_id INTEGER NOT NULL,
  request_id   INTEGER NOT NULL REFERENCES allocation_requests (id),
  action       TEXT    NOT NULL CHECK (action IN ('create', 'update')),
  status       TEXT    NOT NULL,                 -- the status the event reports
  created_at   INTEGER NOT NULL,
  delivery_id  INTEGER REFERENCES deliveries (id) -- NULL until batched into a delivery
);
-- The per-warehouse outbox head: events not yet batched, in order.
CREATE INDEX outbox_unbatched_by_warehouse ON outbox_events (warehouse_id, id)
  WHERE delivery_id IS NULL;
-- The events of one delivery (to apply its outcome to their requests).
CREATE INDEX outbox_by_delivery ON outbox_events (delivery_id) WHERE delivery_id IS NOT NULL;

-- A batch of events sent as one POST, retried as it is under one delivery id.
CREATE TABLE deliveries (
  id              INTEGER PRIMARY KEY,
  uid             TEXT    NOT NULL UNIQUE,       -- the delivery id shown to receivers
  warehouse_id    INTEGER NOT NULL,
  state           TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'dead')),
  document        TEXT    NOT NULL,              -- the events JSON, fixed when the batch forms
  attempt_count   INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_until     INTEGER,                       -- claimed by a dispatcher until then
  created_at      INTEGER NOT NULL,
  finished_at     INTEGER
);
-- Deliveries due for an attempt, soonest first.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
-- Operator listings by warehouse and state.
CREATE INDEX deliveries_by_warehouse ON deliveries (warehouse_id, state, id);

-- Every attempt of every delivery.
CREATE TABLE delivery_attempts (
  delivery_id   INTEGER NOT NULL REFERENCES deliveries (id),
  attempt       INTEGER NOT NULL,
  started_at    INTEGER NOT NULL,
  duration_us   INTEGER NOT NULL,
  http_status   INTEGER NOT NULL,                -- 0: network error
  error         TEXT    NOT NULL DEFAULT '',
  response_head BLOB,                            -- the first bytes of the response body
  PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;

-- Row counts kept by triggers. Requests are never deleted, so their ids are dense (1..count)
-- as long as count = max(id); then page P of an unfiltered listing is an id range, found in
-- O(log n) instead of stepping over (P-1)*100 rows.
CREATE TABLE row_counts (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO row_counts (name, value) VALUES ('allocation_requests', 0);
CREATE TRIGGER allocation_requests_count_insert AFTER INSERT ON allocation_requests BEGIN
  UPDATE row_counts SET value = value + 1 WHERE name = 'allocation_requests';
END;
CREATE TRIGGER allocation_requests_count_delete AFTER DELETE ON allocation_requests BEGIN
  UPDATE row_counts SET value = value - 1 WHERE name = 'allocation_requests';
END;

-- Webhooks disabled by a 410 Gone until an operator enables them again.
CREATE TABLE webhook_endpoints (
  warehouse_id    INTEGER PRIMARY KEY,
  disabled_at     INTEGER,
  disabled_reason TEXT
);
)sql",

    // 2: the pending partial indexes with OR-chains instead of `status IN (...)`. SQLite builds a
    // temporary b-tree for an IN-list on every statement that evaluates it, and every UPDATE of
    // a request's status evaluates each partial index's predicate: 7 of them per update before.
    R"sql(
DROP INDEX requests_pending_by_warehouse;
DROP INDEX requests_pending;
DROP INDEX requests_pending_by_expiry;
CREATE INDEX requests_pending_by_warehouse ON allocation_requests
  (warehouse_id, id, allocation_id, status, warehouse_name, group_index, created_at, expires_at,
   updated_at, order_id, order_number, lines_json)
  WHERE (status = 'allocated' OR status = 'sent' OR status = 'failed');
CREATE INDEX requests_pending ON allocation_requests (id)
  WHERE (status = 'allocated' OR status = 'sent' OR status = 'failed');
CREATE INDEX requests_pending_by_expiry ON allocation_requests (expires_at)
  WHERE (status = 'allocated' OR status = 'sent' OR status = 'failed');
)sql",

    // 3: every table with a CHECK rebuilt with OR-chains instead of `IN (...)`: SQLite builds a
    // temporary b-tree for an IN-list each time it evaluates the CHECK, so every status change
    // and insert paid for one. Requests get `pending` (1 while allocated, sent or failed, else
    // NULL; a CHECK keeps it equal to that) and the pending partial indexes are declared on it:
    // a move between pending statuses (allocated -> sent, the dispatcher's every success) no
    // longer touches requests_pending and requests_pending_by_expiry, since their predicate and
    // columns do not change. Deliveries lose the unique index on uid (96 random bits are unique
    // without one, and it cost a random-order index insert per delivery) and keep only partial
    // indexes: the pending ones by warehouse (the dispatcher's claims, in order) and the dead
    // ones by warehouse (operators). Succeeded deliveries, the bulk, are in the table alone. A
    // delivery keeps its requests' ids, so the outbox needs no index by delivery (one index write
    // less per event batched).
    R"sql(
CREATE TABLE allocations_v3 (
  id                     INTEGER PRIMARY KEY,
  order_id               TEXT    NOT NULL,
  order_number           INTEGER NOT NULL UNIQUE,   -- GET /allocations/<n>, duplicate check
  groups_json            TEXT    NOT NULL,          -- priority groups, e.g. [[3,4],[7]]
  lines_json             TEXT    NOT NULL,          -- the order's lines, as the API shows them
  current_group          INTEGER NOT NULL DEFAULT 0,
  state                  TEXT    NOT NULL
                         CHECK (state = 'open' OR state = 'confirmed' OR state = 'exhausted' OR
                                state = 'cancelled'),
  confirmed_warehouse_id INTEGER,
  created_at             INTEGER NOT NULL,          -- unix microseconds
  updated_at             INTEGER NOT NULL
);
INSERT INTO allocations_v3 (id, order_id, order_number, groups_json, lines_json, current_group,
                            state, confirmed_warehouse_id, created_at, updated_at)
  SELECT id, order_id, order_number, groups_json, lines_json, current_group, state,
         confirmed_warehouse_id, created_at, updated_at FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_v3 RENAME TO allocations;

CREATE TABLE allocation_requests_v3 (
  id             INTEGER PRIMARY KEY,
  allocation_id  INTEGER NOT NULL REFERENCES allocations (id),
  order_id       TEXT    NOT NULL,
  order_number   INTEGER NOT NULL,
  lines_json     TEXT    NOT NULL,
  warehouse_id   INTEGER NOT NULL,
  warehouse_name TEXT    NOT NULL,
  group_index    INTEGER NOT NULL,
  status         TEXT    NOT NULL
                 CHECK (status = 'allocated' OR status = 'sent' OR status = 'failed' OR
                        status = 'confirmed' OR status = 'rejected' OR status = 'timed-out' OR
                        status = 'outdated'),
  pending        INTEGER,                          -- 1 while pending, else NULL
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  CHECK (pending IS (CASE WHEN status = 'allocated' OR status = 'sent' OR status = 'failed'
                          THEN 1 END)),
  CHECK (expires_at >= created_at),
  UNIQUE (allocation_id, warehouse_id)             -- one request per warehouse and allocation
);
INSERT INTO allocation_requests_v3 (id, allocation_id, order_id, order_number, lines_json,
                                    warehouse_id, warehouse_name, group_index, status, pending,
                                    created_at, expires_at, updated_at)
  SELECT id, allocation_id, order_id, order_number, lines_json, warehouse_id, warehouse_name,
         group_index, status,
         CASE WHEN status = 'allocated' OR status = 'sent' OR status = 'failed' THEN 1 END,
         created_at, expires_at, updated_at FROM allocation_requests;
DROP TABLE allocation_requests;  -- and its indexes and triggers, made again below
ALTER TABLE allocation_requests_v3 RENAME TO allocation_requests;
CREATE INDEX requests_pending_by_warehouse ON allocation_requests
  (warehouse_id, id, allocation_id, status, warehouse_name, group_index, created_at, expires_at,
   updated_at, order_id, order_number, lines_json, pending)
  WHERE pending = 1;
CREATE INDEX requests_pending ON allocation_requests (id) WHERE pending = 1;
CREATE INDEX requests_by_warehouse ON allocation_requests (warehouse_id, id);
CREATE INDEX requests_by_order ON allocation_requests (order_number, id);
CREATE INDEX requests_by_status ON allocation_requests (status, id);
CREATE INDEX requests_pending_by_expiry ON allocation_requests (expires_at) WHERE pending = 1;
CREATE TRIGGER allocation_requests_count_insert AFTER INSERT ON allocation_requests BEGIN
  UPDATE row_counts SET value = value + 1 WHERE name = 'allocation_requests';
END;
CREATE TRIGGER allocation_requests_count_delete AFTER DELETE ON allocation_requests BEGIN
  UPDATE row_counts SET value = value - 1 WHERE name = 'allocation_requests';
END;

CREATE TABLE deliveries_v3 (
  id              INTEGER PRIMARY KEY,
  uid             TEXT    NOT NULL,              -- the delivery id shown to receivers
  warehouse_id    INTEGER NOT NULL,
  state           TEXT    NOT NULL
                  CHECK (state = 'pending' OR state = 'succeeded' OR state = 'dead'),
  document        TEXT    NOT NULL,              -- the events JSON, fixed when the batch forms
  request_ids     TEXT    NOT NULL DEFAULT '',   -- its events' requests, "12,57", in event order
  attempt_count   INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_until     INTEGER,                       -- claimed by a dispatcher until then
  created_at      INTEGER NOT NULL,
  finished_at     INTEGER
);
INSERT INTO deliveries_v3 (id, uid, warehouse_id, state, document, request_ids, attempt_count,
                           next_attempt_at, lease_until, created_at, finished_at)
  SELECT d.id, d.uid, d.warehouse_id, d.state, d.document,
         coalesce((SELECT group_concat(request_id, ',') FROM
                     (SELECT request_id FROM outbox_events e WHERE e.delivery_id = d.id
                      ORDER BY e.id)), ''),
         d.attempt_count, d.next_attempt_at, d.lease_until, d.created_at, d.finished_at
  FROM deliveries d;
DROP TABLE deliveries;
ALTER TABLE deliveries_v3 RENAME TO deliveries;
CREATE INDEX deliveries_pending_by_warehouse ON deliveries (warehouse_id, id)
  WHERE state = 'pending';
CREATE INDEX deliveries_dead_by_warehouse ON deliveries (warehouse_id, id) WHERE state = 'dead';

CREATE TABLE outbox_events_v3 (
  id           INTEGER PRIMARY KEY,
  warehouse_id INTEGER NOT NULL,
  request_id   INTEGER NOT NULL REFERENCES allocation_requests (id),
  action       TEXT    NOT NULL CHECK (action = 'create' OR action = 'update'),
  status       TEXT    NOT NULL,                 -- the status the event reports
  created_at   INTEGER NOT NULL,
  delivery_id  INTEGER REFERENCES deliveries (id) -- NULL until batched into a delivery
);
INSERT INTO outbox_events_v3 (id, warehouse_id, request_id, action, status, created_at,
                              delivery_id)
  SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id
  FROM outbox_events;
DROP TABLE outbox_events;
ALTER TABLE outbox_events_v3 RENAME TO outbox_events;
CREATE INDEX outbox_unbatched_by_warehouse ON outbox_events (warehouse_id, id)
  WHERE delivery_id IS NULL;
)sql",

    // 4: a random salt per database. A delivery is stored only when its first call is answered
    // (one row write, not an insert at claim and an update at the answer); until then it exists
    // only in the dispatcher, so its id for receivers (webhook-id) is derived from its events and
    // this salt: a batch formed again after a crash gets the id it had. From this version on a
    // succeeded delivery's document is empty: only pending and dead ones are ever sent again.
    R"sql(
CREATE TABLE store_identity (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  salt TEXT    NOT NULL
);
INSERT INTO store_identity (id, salt) VALUES (1, lower(hex(randomblob(16))));
)sql",

    // 5: retention (SPEC section 9). From this version on final allocations, their requests and
    // events, deliveries left without events and old attempts are deleted, so request ids are no
    // longer dense (row_counts then differs from max(id) and pages are found the general way).
    R"sql(
-- Final allocations by last change: the prune pass walks them oldest first.
CREATE INDEX allocations_finished_by_change ON allocations (updated_at, id)
  WHERE state != 'open';
-- The events of a request: to find whether an allocation still waits for a delivery, and to
-- delete its events with it.
CREATE INDEX outbox_by_request ON outbox_events (request_id);
-- Attempts by start: the old ones are deleted first.
CREATE INDEX attempts_by_start ON delivery_attempts (started_at);
-- Deliveries are deleted too: their ids no longer give their number, so count them.
INSERT INTO row_counts (name, value) SELECT 'deliveries', count(*) FROM deliveries;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
  UPDATE row_counts SET value = value + 1 WHERE name = 'deliveries';
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
  UPDATE row_counts SET value = value - 1 WHERE name = 'deliveries';
END;
)sql",

    // 6: leases owned by a claimant, one per dispatcher start (SPEC section 10). A dispatcher
    // sends a warehouse's deliveries only while it holds the warehouse's lease, so two of them
    // never send one warehouse's deliveries at once; renewing or releasing a lease checks its
    // owner.
    R"sql(
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
CREATE TABLE warehouse_leases (
  warehouse_id INTEGER PRIMARY KEY,
  owner        TEXT    NOT NULL,
  lease_until  INTEGER NOT NULL
);
)sql",

    // 7: the live dispatchers, each renewing its row while it runs, so that they divide the
    // warehouses between them (SPEC section 10).
    R"sql(
CREATE TABLE dispatchers (
  owner      TEXT    PRIMARY KEY,
  seen_until INTEGER NOT NULL
);
)sql",

    // 8: "Check first, then allocate" (SPEC section 12). A check asks a check-first warehouse
    // whether it can ship an order before any stock is allocated; its events (check_first)
    // travel through the same outbox, so an event is about a request or about a check. SQLite
    // cannot relax a NOT NULL or a CHECK in place: outbox_events is built again.
    R"sql(
CREATE TABLE checks (
  id            INTEGER PRIMARY KEY,
  allocation_id INTEGER NOT NULL REFERENCES allocations (id),
  warehouse_id  INTEGER NOT NULL,
  group_index   INTEGER NOT NULL,
  status        TEXT    NOT NULL
                CHECK (status = 'asked' OR status = 'accepted' OR status = 'rejected' OR
                       status = 'timed-out'),
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  CHECK (expires_at >= created_at),
  UNIQUE (allocation_id, warehouse_id)             -- one check per warehouse and allocation
);
CREATE INDEX checks_asked_by_expiry ON checks (expires_at) WHERE status = 'asked';

CREATE TABLE outbox_events_v8 (
  id           INTEGER PRIMARY KEY,
  warehouse_id INTEGER NOT NULL,
  request_id   INTEGER REFERENCES allocation_requests (id),  -- an allocation-request event
  check_id     INTEGER REFERENCES checks (id),               -- or a check_first event
  action       TEXT    NOT NULL
               CHECK (action = 'create' OR action = 'update' OR action = 'accepted' OR
                      action = 'rejected' OR action = 'timeout'),
  status       TEXT    NOT NULL,                 -- the request's or the check's status it reports
  created_at   INTEGER NOT NULL,
  delivery_id  INTEGER REFERENCES deliveries (id), -- NULL until batched into a delivery
  CHECK ((request_id IS NULL) != (check_id IS NULL))
);
INSERT INTO outbox_events_v8 (id, warehouse_id, request_id, action, status, created_at,
                              delivery_id)
  SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id
  FROM outbox_events;
DROP TABLE outbox_events;
ALTER TABLE outbox_events_v8 RENAME TO outbox_events;
CREATE INDEX outbox_unbatched_by_warehouse ON outbox_events (warehouse_id, id)
  WHERE delivery_id IS NULL;
CREATE INDEX outbox_by_request ON outbox_events (request_id);
CREATE INDEX outbox_by_check ON outbox_events (check_id) WHERE check_id IS NOT NULL;
-- Whether a delivery still holds check events (retention): its request_ids name only requests.
CREATE INDEX outbox_check_events_by_delivery ON outbox_events (delivery_id)
  WHERE check_id IS NOT NULL;
)sql",

    // 9: the operator console (SPEC section 11, docs/console.md). Its figures are kept as the
    // dispatcher records attempts, so the overview reads a few hundred rows whatever the size
    // of the database: per minute (when the calls started) and warehouse, the deliveries that
    // succeeded, the calls that failed (retried or dead), the deliveries that went dead and the
    // calls by duration (calls_Nms: at most N ms and more than the bound before; the dispatcher
    // deletes rows older than a day); and each warehouse's last successful call, kept apart so
    // that it outlives those rows. The deliveries list pages a warehouse's deliveries of any
    // state newest first by (warehouse_id, id).
    R"sql(
CREATE TABLE webhook_activity (
  minute          INTEGER NOT NULL,              -- its start, unix microseconds
  warehouse_id    INTEGER NOT NULL,
  delivered       INTEGER NOT NULL DEFAULT 0,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  dead            INTEGER NOT NULL DEFAULT 0,
  calls_1ms       INTEGER NOT NULL DEFAULT 0,
  calls_2ms       INTEGER NOT NULL DEFAULT 0,
  calls_5ms       INTEGER NOT NULL DEFAULT 0,
  calls_10ms      INTEGER NOT NULL DEFAULT 0,
  calls_20ms      INTEGER NOT NULL DEFAULT 0,
  calls_50ms      INTEGER NOT NULL DEFAULT 0,
  calls_100ms     INTEGER NOT NULL DEFAULT 0,
  calls_200ms     INTEGER NOT NULL DEFAULT 0,
  calls_500ms     INTEGER NOT NULL DEFAULT 0,
  calls_1s        INTEGER NOT NULL DEFAULT 0,
  calls_2s        INTEGER NOT NULL DEFAULT 0,
  calls_5s        INTEGER NOT NULL DEFAULT 0,
  calls_10s       INTEGER NOT NULL DEFAULT 0,
  calls_over_10s  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (minute, warehouse_id)
) WITHOUT ROWID;
CREATE TABLE webhook_last_success (
  warehouse_id INTEGER PRIMARY KEY,
  started_at   INTEGER NOT NULL                   -- of the newest successful call
);
CREATE INDEX deliveries_by_warehouse ON deliveries (warehouse_id, id);
)sql",
};

}  // namespace allocation_relay::schema

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_SCHEMA_H_
