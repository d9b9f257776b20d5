// The only code that speaks SQL, and the only user of SQLiteCpp.
#include "allocation_relay/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <linux/futex.h>
#include <sqlite3.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "schema.h"

namespace allocation_relay {
namespace {

// Status sets as OR-chains, never `status IN (...)`: SQLite evaluates an IN-list through a
// temporary b-tree built on every execution, and an UPDATE of `status` evaluates the predicate
// of each partial index (migration 2) besides its own WHERE. The pending chain is spelt exactly
// as those index predicates, so that queries can use them.
constexpr const char* kPendingSql =
    "(status = 'allocated' OR status = 'sent' OR status = 'failed')";
constexpr const char* kConfirmableSql =
    "(status = 'allocated' OR status = 'sent' OR status = 'failed' OR status = 'timed-out')";
constexpr const char* kSendableSql = "(status = 'allocated' OR status = 'failed')";
constexpr const char* kUnsentSql = "(status = 'allocated')";

StoreError::Kind KindOf(int primary_code) {
  switch (primary_code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return StoreError::Kind::kBusy;
    case SQLITE_FULL:
      return StoreError::Kind::kFull;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return StoreError::Kind::kReadOnly;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return StoreError::Kind::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StoreError::Kind::kCorrupt;
    default:
      return StoreError::Kind::kInternal;
  }
}

StoreError Translate(const SQLite::Exception& e) {
  return StoreError(KindOf(e.getErrorCode() & 0xff), std::string("database: ") + e.what());
}

// Runs `body`, turning every exception into a StoreError value: no SQLite exception leaves
// the store.
template <typename F>
auto Guarded(F&& body) -> StoreResult<decltype(body())> {
  try {
    return body();
  } catch (const SQLite::Exception& e) {
    return std::unexpected(Translate(e));
  } catch (const StoreError& e) {
    return std::unexpected(e);
  } catch (const std::exception& e) {
    return std::unexpected(StoreError(StoreError::Kind::kInternal, e.what()));
  }
}

const char* SynchronousPragma(SynchronousMode mode) {
  switch (mode) {
    case SynchronousMode::kOff:
      return "PRAGMA synchronous = OFF";
    case SynchronousMode::kNormal:
      return "PRAGMA synchronous = NORMAL";
    case SynchronousMode::kFull:
      return "PRAGMA synchronous = FULL";
    case SynchronousMode::kExtra:
      return "PRAGMA synchronous = EXTRA";
  }
  return "PRAGMA synchronous = FULL";
}

RequestStatus StatusColumn(const SQLite::Column& c) {
  std::optional<RequestStatus> s = ParseRequestStatus(c.getString());
  if (!s) throw StoreError(StoreError::Kind::kCorrupt, "unknown request status " + c.getString());
  return *s;
}

AllocationState StateColumn(const SQLite::Column& c) {
  std::optional<AllocationState> s = ParseAllocationState(c.getString());
  if (!s) throw StoreError(StoreError::Kind::kCorrupt, "unknown allocation state " + c.getString());
  return *s;
}

// A statement borrowed from the cache; reset on return so it never holds a read snapshot.
class Borrowed {
 public:
  explicit Borrowed(SQLite::Statement& s) : s_(s) {}
  ~Borrowed() {
    try {
      s_.reset();
      s_.clearBindings();
    } catch (...) {
    }
  }
  SQLite::Statement* operator->() { return &s_; }
  SQLite::Statement& operator*() { return s_; }

 private:
  SQLite::Statement& s_;
};

// BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a transaction
// that reads then writes never fails half-way with SQLITE_BUSY.
class WriteTransaction {
 public:
  explicit WriteTransaction(SQLite::Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~WriteTransaction() {
    if (!done_) {
      try {
        db_.exec("ROLLBACK");
      } catch (...) {
      }
    }
  }
  void Commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  SQLite::Database& db_;
  bool done_ = false;
};

// A deferred transaction for reads that take several statements: one consistent snapshot.
class ReadTransaction {
 public:
  explicit ReadTransaction(SQLite::Database& db) : db_(db) { db_.exec("BEGIN"); }
  ~ReadTransaction() {
    try {
      db_.exec("COMMIT");
    } catch (...) {
    }
  }

 private:
  SQLite::Database& db_;
};

// "12,57": ids as an SQL IN-list's inside, a JSON array's inside, or the request_ids column.
std::string JoinIds(std::span<const std::int64_t> ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(ids[i]);
  }
  return out;
}

std::string IdList(std::span<const std::int64_t> ids) { return "(" + JoinIds(ids) + ")"; }

// The SET part of every move of a request's status (binds: status, updated_at). `pending` is
// set only when it changes: then a move between pending statuses leaves the indexes declared on
// it alone (SQLite updates an index when a column it names is SET).
std::string StatusSet(RequestStatus to) {
  return IsPending(to) ? "SET status = ?, updated_at = ? "
                       : "SET status = ?, updated_at = ?, pending = NULL ";
}

// Pending requests past their expiration, soonest first. `pending = 1` is the partial index
// requests_pending_by_expiry's own predicate, so SQLite can use it.
// INDEXED BY: without statistics SQLite's planner prefers requests_by_status here and sorts;
// the partial index holds only pending rows and is already in expiration order.
constexpr const char* kExpiryScanSql =
    "SELECT id, allocation_id, warehouse_id FROM allocation_requests "
    "INDEXED BY requests_pending_by_expiry "
    "WHERE pending = 1 AND expires_at <= ? ORDER BY expires_at LIMIT ?";

// Without INDEXED BY the planner answers min() through requests_by_status, reading every
// pending row (27 ms at 200,000 pending, each time the expiry worker looks); with it, O(log n).
constexpr const char* kNextExpirationSql =
    "SELECT min(expires_at) FROM allocation_requests INDEXED BY requests_pending_by_expiry "
    "WHERE pending = 1";

constexpr const char* kRequestSelect =
    "SELECT r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, r.group_index, "
    "r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, r.lines_json ";

constexpr const char* kRequestColumns =
    "SELECT r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, r.group_index, "
    "r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, r.lines_json "
    "FROM allocation_requests r ";

// The SELECT of ListRequests; parameters: after_id, limit, offset. Statuses and ids are inlined
// (enums and integers, never user text); the pending statuses are asked for as `pending = 1`,
// the partial indexes' own predicate, so SQLite can use them.
//
// When rows are skipped (`skipping`: an OFFSET), the page is chosen by an inner query over ids
// only, so the skipped rows are stepped over in an index without reading their table rows; the
// outer query then reads the (at most `limit`) rows of the page. Without an OFFSET one plain
// query reads the page directly.
std::string ListRequestsSql(const RequestQuery& query, bool skipping) {
  std::vector<RequestStatus> statuses = query.statuses;
  std::sort(statuses.begin(), statuses.end());
  statuses.erase(std::unique(statuses.begin(), statuses.end()), statuses.end());
  const bool pending_only =
      statuses == std::vector<RequestStatus>{RequestStatus::kAllocated, RequestStatus::kSent,
                                             RequestStatus::kFailed};
  // The default (pending) query is what every warehouse polls. Without statistics the planner
  // walks the full-history index instead of the small partial one, so name it; an order filter
  // is more selective still and is left to the planner.
  const char* index = "";
  if (pending_only && query.order_numbers.empty()) {
    index = (!query.warehouse_ids.empty() || query.scope.only)
                ? "INDEXED BY requests_pending_by_warehouse "
                : "INDEXED BY requests_pending ";
  }
  std::string inner = skipping ? "SELECT r.id FROM allocation_requests r "
                               : std::string(kRequestSelect) + "FROM allocation_requests r ";
  inner += index;
  inner += "WHERE r.id > ?";
  if (!query.order_numbers.empty())
    inner += " AND r.order_number IN " + IdList(query.order_numbers);
  if (pending_only) {
    inner += " AND r.pending = 1";
  } else if (!statuses.empty()) {
    inner += " AND (";
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      inner += (i ? " OR status = '" : "status = '") + std::string(ToString(statuses[i])) + "'";
    }
    inner += ")";
  }
  if (!query.warehouse_ids.empty()) {
    inner += " AND r.warehouse_id IN " + IdList(query.warehouse_ids);
  }
  if (query.scope.only) inner += " AND r.warehouse_id IN " + IdList(*query.scope.only);
  inner += " ORDER BY r.id LIMIT ? OFFSET ?";
  if (!skipping) return inner;
  return std::string(kRequestSelect) + "FROM (" + inner +
         ") page JOIN allocation_requests r ON r.id = page.id ORDER BY r.id";
}

bool IsUnfiltered(const RequestQuery& q) {
  return q.statuses.empty() && q.order_numbers.empty() && q.warehouse_ids.empty() && !q.scope.only;
}

// The writer connection's VFS: SQLite's default one, except that what a commit writes to the
// write-ahead log is gathered in memory and written with one call when SQLite next does anything
// else with the log: at the latest the fsync that ends the commit, before the commit is
// published to readers (only under synchronous FULL or EXTRA: NORMAL and OFF publish a commit
// without syncing the log, so they use the default VFS). SQLite writes each log frame with two
// calls, its 24-byte header and then the page: a batch of confirms wrote ~20 frames, ~40
// pwrite calls, a third of the writer's time. The bytes, their order and the fsync are the
// same; a write error shows at the fsync (or the read, truncate, ...) that follows it, which
// fails the commit as the write would have.
class LogBufferVfs {
 public:
  static constexpr const char* kName = "allocation-relay-log";
  static constexpr std::size_t kMaxBuffer = 512 * 1024;  // then what is gathered is written

  // Registers the VFS (once per process); returns its name.
  static const char* Name() {
    static std::once_flag once;
    std::call_once(once, [] {
      real_ = sqlite3_vfs_find(nullptr);
      vfs_ = *real_;
      vfs_.zName = kName;
      vfs_.pNext = nullptr;
      vfs_.szOsFile = static_cast<int>(kRealOffset) + real_->szOsFile;
      vfs_.xOpen = &Open;
      // Everything else is the default VFS's own (they get it, not this one, as their VFS).
      vfs_.xDelete = [](sqlite3_vfs*, const char* name, int sync) {
        return real_->xDelete(real_, name, sync);
      };
      vfs_.xAccess = [](sqlite3_vfs*, const char* name, int flags, int* out) {
        return real_->xAccess(real_, name, flags, out);
      };
      vfs_.xFullPathname = [](sqlite3_vfs*, const char* name, int n, char* out) {
        return real_->xFullPathname(real_, name, n, out);
      };
      vfs_.xDlOpen = [](sqlite3_vfs*, const char* name) { return real_->xDlOpen(real_, name); };
      vfs_.xDlError = [](sqlite3_vfs*, int n, char* out) { real_->xDlError(real_, n, out); };
      vfs_.xDlSym = [](sqlite3_vfs*, void* h, const char* sym) {
        return real_->xDlSym(real_, h, sym);
      };
      vfs_.xDlClose = [](sqlite3_vfs*, void* h) { real_->xDlClose(real_, h); };
      vfs_.xRandomness = [](sqlite3_vfs*, int n, char* out) {
        return real_->xRandomness(real_, n, out);
      };
      vfs_.xSleep = [](sqlite3_vfs*, int us) { return real_->xSleep(real_, us); };
      vfs_.xCurrentTime = [](sqlite3_vfs*, double* t) { return real_->xCurrentTime(real_, t); };
      vfs_.xGetLastError = [](sqlite3_vfs*, int n, char* out) {
        return real_->xGetLastError(real_, n, out);
      };
      if (real_->iVersion >= 2 && real_->xCurrentTimeInt64) {
        vfs_.xCurrentTimeInt64 = [](sqlite3_vfs*, sqlite3_int64* t) {
          return real_->xCurrentTimeInt64(real_, t);
        };
      }
      if (real_->iVersion >= 3) {
        vfs_.xSetSystemCall = [](sqlite3_vfs*, const char* name, sqlite3_syscall_ptr call) {
          return real_->xSetSystemCall(real_, name, call);
        };
        vfs_.xGetSystemCall = [](sqlite3_vfs*, const char* name) {
          return real_->xGetSystemCall(real_, name);
        };
        vfs_.xNextSystemCall = [](sqlite3_vfs*, const char* name) {
          return real_->xNextSystemCall(real_, name);
        };
      }
      sqlite3_vfs_register(&vfs_, /*makeDflt=*/0);
    });
    return kName;
  }

 private:
  struct File {
    sqlite3_file base;
    sqlite3_file* real;    // the default VFS's file, at kRealOffset
    std::string* pending;  // bytes not yet written, from `start` on
    sqlite3_int64 start;
  };
  static constexpr std::size_t kRealOffset = (sizeof(File) + 15) / 16 * 16;

  static int Open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
    // Anything but a write-ahead log is the default VFS's file itself (it fits: szOsFile is
    // larger).
    if ((flags & SQLITE_OPEN_WAL) == 0) return real_->xOpen(real_, name, file, flags, out_flags);
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
    f->pending = nullptr;
    f->start = 0;
    const int rc = real_->xOpen(real_, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
      f->base.pMethods = nullptr;
      return rc;
    }
    f->pending = new std::string();
    f->base.pMethods = &kMethods;
    return SQLITE_OK;
  }

  static File* Of(sqlite3_file* file) { return reinterpret_cast<File*>(file); }
  static const sqlite3_io_methods& Real(File* f) { return *f->real->pMethods; }

  // Writes what is gathered, in calls of at most kMaxWrite bytes: the default VFS writes at
  // most 128 KiB - 1 bytes per call (it masks the length with 0x1ffff, and fails a call of a
  // multiple of 128 KiB as a full disk).
  static constexpr std::size_t kMaxWrite = 64 * 1024;
  static int Flush(File* f) {
    int rc = SQLITE_OK;
    const std::string& data = *f->pending;
    for (std::size_t done = 0; done < data.size() && rc == SQLITE_OK; done += kMaxWrite) {
      const std::size_t n = std::min(kMaxWrite, data.size() - done);
      rc = Real(f).xWrite(f->real, data.data() + done, static_cast<int>(n),
                          f->start + static_cast<sqlite3_int64>(done));
    }
    f->pending->clear();
    return rc;
  }

  static int Write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
    File* f = Of(file);
    const bool follows = offset == f->start + static_cast<sqlite3_int64>(f->pending->size());
    if (!f->pending->empty() && (!follows || f->pending->size() >= kMaxBuffer)) {
      if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
    }
    if (f->pending->empty()) f->start = offset;
    f->pending->append(static_cast<const char*>(data), static_cast<std::size_t>(amount));
    return SQLITE_OK;
  }

  static int Close(sqlite3_file* file) {
    File* f = Of(file);
    const int flushed = Flush(f);
    const int closed = Real(f).xClose(f->real);
    delete f->pending;
    f->pending = nullptr;
    return flushed != SQLITE_OK ? flushed : closed;
  }

  // Every other method writes what is gathered first, then is the default VFS's.
  template <auto Method, typename... Args>
  static int Then(sqlite3_file* file, Args... args) {
    File* f = Of(file);
    if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
    return (Real(f).*Method)(f->real, args...);
  }

  static inline const sqlite3_io_methods kMethods = {
      /*iVersion=*/1,
      &Close,
      [](sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
        return Then<&sqlite3_io_methods::xRead>(file, out, amount, offset);
      },
      &Write,
      [](sqlite3_file* file, sqlite3_int64 size) {
        return Then<&sqlite3_io_methods::xTruncate>(file, size);
      },
      [](sqlite3_file* file, int flags) { return Then<&sqlite3_io_methods::xSync>(file, flags); },
      [](sqlite3_file* file, sqlite3_int64* size) {
        return Then<&sqlite3_io_methods::xFileSize>(file, size);
      },
      [](sqlite3_file* file, int lock) { return Then<&sqlite3_io_methods::xLock>(file, lock); },
      [](sqlite3_file* file, int lock) { return Then<&sqlite3_io_methods::xUnlock>(file, lock); },
      [](sqlite3_file* file, int* out) {
        return Then<&sqlite3_io_methods::xCheckReservedLock>(file, out);
      },
      [](sqlite3_file* file, int op, void* arg) {
        return Then<&sqlite3_io_methods::xFileControl>(file, op, arg);
      },
      [](sqlite3_file* file) { return Real(Of(file)).xSectorSize(Of(file)->real); },
      [](sqlite3_file* file) { return Real(Of(file)).xDeviceCharacteristics(Of(file)->real); },
      // Version 1: SQLite maps no shared memory and fetches no pages through a log file.
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
  };

  static inline sqlite3_vfs* real_ = nullptr;
  static inline sqlite3_vfs vfs_{};
};

}  // namespace

StoreOptions StoreOptionsFrom(const StoreConfig& config) {
  return StoreOptions{config.path, config.synchronous, config.busy_timeout, true, config.max_size};
}

class WriteGroup;

class Store::Impl {
 public:
  // `group` is where this connection's writes go (nullptr for the writer connection itself,
  // opened through the VFS named `vfs`, or the default one if null).
  Impl(const StoreOptions& options, std::shared_ptr<WriteGroup> group, const char* vfs = nullptr);

  SQLite::Database db_;
  std::shared_ptr<WriteGroup> group_;
  std::string salt_;  // Salt(), read once

  // Runs `op` inside a write transaction, grouped with the writes other threads of this process
  // make to the same file at the same moment (one commit, one fsync for all). `op` returns true
  // to keep its changes, false to undo them; its exceptions, or the commit's, are rethrown here.
  void Write(const std::function<bool(Impl&)>& op);

  // Write() for a Store method: `op(writer, result)` fills the method's result; every exception
  // becomes a StoreError value.
  template <typename T, typename Op>
  StoreResult<T> WriteResult(Op&& op) {
    return Guarded([&]() -> T {
      T result{};
      Write([&](Impl& writer) -> bool { return op(writer, result); });
      return result;
    });
  }

  // What the flow needs of an allocation row.
  struct AllocationRow {
    std::int64_t id;
    AllocationState state;
    int current_group;
    PriorityGroups groups;
    OrderRef order;
    std::string lines_json;
  };

  Borrowed Prepared(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      if (cache_.size() > 256) cache_.clear();  // dynamic IN-lists: keep the cache bounded
      it = cache_.emplace(sql, std::make_unique<SQLite::Statement>(db_, sql)).first;
    }
    return Borrowed(*it->second);
  }

  void QueueEvent(std::int64_t warehouse_id, std::int64_t request_id, EventAction action,
                  RequestStatus status, TimePoint now) {
    Borrowed s = Prepared(
        "INSERT INTO outbox_events (warehouse_id, request_id, action, status, created_at) "
        "VALUES (?, ?, ?, ?, ?)");
    s->bind(1, warehouse_id);
    s->bind(2, request_id);
    s->bind(3, std::string(ToString(action)));
    s->bind(4, std::string(ToString(status)));
    s->bind(5, ToUnixMicros(now));
    s->exec();
  }

  // Inserts an `allocated` request and its create event; false if the warehouse already has a
  // request in this allocation. The request as stored is appended to `made` if given.
  bool InsertRequest(const AllocationRow& allocation, const WarehouseInfo& warehouse,
                     int group_index, TimePoint now, std::vector<AllocationRequest>* made) {
    const TimePoint expires = now + std::chrono::duration_cast<Micros>(warehouse.confirm_timeout);
    Borrowed s = Prepared(
        "INSERT INTO allocation_requests (allocation_id, order_id, order_number, lines_json, "
        "warehouse_id, warehouse_name, group_index, status, pending, created_at, expires_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'allocated', 1, ?, ?, ?) "
        "ON CONFLICT (allocation_id, warehouse_id) DO NOTHING");
    s->bind(1, allocation.id);
    s->bind(2, allocation.order.id);
    s->bind(3, allocation.order.number);
    s->bind(4, allocation.lines_json);
    s->bind(5, warehouse.id);
    s->bind(6, warehouse.name);
    s->bind(7, group_index);
    s->bind(8, ToUnixMicros(now));
    s->bind(9, ToUnixMicros(expires));
    s->bind(10, ToUnixMicros(now));
    if (s->exec() != 1) return false;
    const std::int64_t id = db_.getLastInsertRowid();
    QueueEvent(warehouse.id, id, EventAction::kCreate, RequestStatus::kAllocated, now);
    if (made) {
      made->push_back(AllocationRequest{id, allocation.id, RequestStatus::kAllocated, warehouse.id,
                                        warehouse.name, group_index, now, expires, now,
                                        allocation.order, allocation.lines_json});
    }
    return true;
  }

  // Outdates every non-final request of the allocation except `keep` (with update events).
  void OutdateOpenRequests(std::int64_t allocation_id, std::int64_t keep, TimePoint now) {
    std::vector<std::pair<std::int64_t, std::int64_t>> victims;  // (request id, warehouse id)
    {
      Borrowed s = Prepared(std::string("SELECT id, warehouse_id FROM allocation_requests "
                                        "WHERE allocation_id = ? AND id != ? AND ") +
                            kConfirmableSql);
      s->bind(1, allocation_id);
      s->bind(2, keep);
      while (s->executeStep()) victims.emplace_back(s->getColumn(0), s->getColumn(1));
    }
    for (auto [request_id, warehouse_id] : victims) {
      if (SetStatusWhere(request_id, RequestStatus::kOutdated, kConfirmableSql, now) == 1) {
        QueueEvent(warehouse_id, request_id, EventAction::kUpdate, RequestStatus::kOutdated, now);
      }
    }
  }

  AllocationRow ReadAllocationRow(std::int64_t allocation_id) {
    Borrowed s = Prepared(
        "SELECT state, current_group, groups_json, order_id, order_number, lines_json "
        "FROM allocations WHERE id = ?");
    s->bind(1, allocation_id);
    if (!s->executeStep()) {
      throw StoreError(StoreError::Kind::kCorrupt, "request without allocation");
    }
    return AllocationRow{allocation_id,
                         StateColumn(s->getColumn(0)),
                         s->getColumn(1).getInt(),
                         nlohmann::json::parse(s->getColumn(2).getString()).get<PriorityGroups>(),
                         OrderRef{s->getColumn(3).getString(), s->getColumn(4).getInt64()},
                         s->getColumn(5).getString()};
  }

  int CountPendingInGroup(std::int64_t allocation_id, int group_index) {
    Borrowed s = Prepared(
        "SELECT count(*) FROM allocation_requests "
        "WHERE allocation_id = ? AND group_index = ? AND pending = 1");
    s->bind(1, allocation_id);
    s->bind(2, group_index);
    s->executeStep();
    return s->getColumn(0).getInt();
  }

  // Starts group `first` or, if none of its warehouses can be asked, the first later group that
  // has one; past the last group the allocation is exhausted. Returns kNextGroup or kExhausted.
  // The requests made are appended to `made` if given.
  FlowStep StartGroupFrom(const AllocationRow& allocation, int first, TimePoint now,
                          const WarehouseCatalog& catalog,
                          std::vector<AllocationRequest>* made = nullptr) {
    const std::int64_t allocation_id = allocation.id;
    const PriorityGroups& groups = allocation.groups;
    for (int g = first; g < static_cast<int>(groups.size()); ++g) {
      int created = 0;
      for (std::int64_t warehouse_id : groups[static_cast<std::size_t>(g)]) {
        const WarehouseInfo* info = catalog.Find(warehouse_id);
        if (info && InsertRequest(allocation, *info, g, now, made)) ++created;
      }
      // A new allocation's first group is already its current one, as of `now`.
      if (created > 0 && g == allocation.current_group) return FlowStep::kNextGroup;
      if (created > 0) {
        Borrowed s = Prepared(
            "UPDATE allocations SET current_group = ?, updated_at = ? WHERE id = ? AND state = "
            "'open'");
        s->bind(1, g);
        s->bind(2, ToUnixMicros(now));
        s->bind(3, allocation_id);
        s->exec();
        return FlowStep::kNextGroup;
      }
    }
    Borrowed s = Prepared(
        "UPDATE allocations SET state = 'exhausted', updated_at = ? WHERE id = ? AND state = "
        "'open'");
    s->bind(1, ToUnixMicros(now));
    s->bind(2, allocation_id);
    if (s->exec() == 1) OutdateOpenRequests(allocation_id, 0, now);
    return FlowStep::kExhausted;
  }

  // After a request of the allocation left the pending set: moves the flow on if its current
  // group has nothing pending any more.
  FlowStep MaybeAdvance(std::int64_t allocation_id, TimePoint now,
                        const WarehouseCatalog& catalog) {
    AllocationRow row = ReadAllocationRow(allocation_id);
    if (row.state != AllocationState::kOpen) return FlowStep::kWait;
    FlowStep step = DecideFlowStep(row.current_group, static_cast<int>(row.groups.size()),
                                   CountPendingInGroup(allocation_id, row.current_group));
    if (step == FlowStep::kWait) return step;
    return StartGroupFrom(row, row.current_group + 1, now, catalog);
  }

  struct RequestHead {
    RequestStatus status;
    std::int64_t warehouse_id;
    std::int64_t allocation_id;
    int group_index;
    AllocationState allocation_state;
    int current_group;
  };

  std::optional<RequestHead> ReadRequestHead(std::int64_t request_id) {
    Borrowed s = Prepared(
        "SELECT r.status, r.warehouse_id, r.allocation_id, r.group_index, a.state, "
        "a.current_group FROM allocation_requests r JOIN allocations a ON a.id = r.allocation_id "
        "WHERE r.id = ?");
    s->bind(1, request_id);
    if (!s->executeStep()) return std::nullopt;
    return RequestHead{StatusColumn(s->getColumn(0)), s->getColumn(1).getInt64(),
                       s->getColumn(2).getInt64(),    s->getColumn(3).getInt(),
                       StateColumn(s->getColumn(4)),  s->getColumn(5).getInt()};
  }

  // The common start of a PUT /allocation-request: the request must exist in `scope` and be
  // confirmable (pending or timed-out) in an open allocation; then it moves to `to`. Returns
  // its state from before, or nullopt with `result` saying why nothing changed.
  std::optional<RequestHead> ApplyUpdate(std::int64_t request_id, const WarehouseScope& scope,
                                         RequestStatus to, TimePoint now, UpdateResult& result) {
    std::optional<RequestHead> head = ReadRequestHead(request_id);
    if (!head || !scope.Allows(head->warehouse_id)) {
      result = UpdateResult{UpdateResult::Outcome::kNotFound, RequestStatus::kAllocated};
      return std::nullopt;
    }
    if (!IsConfirmable(head->status) || head->allocation_state != AllocationState::kOpen ||
        SetStatusWhere(request_id, to, kConfirmableSql, now) != 1) {
      result = UpdateResult{UpdateResult::Outcome::kWrongStatus, head->status};
      return std::nullopt;
    }
    return head;
  }

  int SetStatusWhere(std::int64_t request_id, RequestStatus to, const char* from_sql,
                     TimePoint now) {
    Borrowed s =
        Prepared("UPDATE allocation_requests " + StatusSet(to) + "WHERE id = ? AND " + from_sql);
    s->bind(1, std::string(ToString(to)));
    s->bind(2, ToUnixMicros(now));
    s->bind(3, request_id);
    return s->exec();
  }

  std::vector<std::string> Explain(const std::string& sql) {
    SQLite::Statement s(db_, "EXPLAIN QUERY PLAN " + sql);
    std::vector<std::string> out;
    while (s.executeStep()) out.push_back(s.getColumn(3).getString());
    return out;
  }

  // Moves each of `ids` whose status is in `from_sql` to `to`; returns how many moved.
  StoreResult<int> SetStatuses(std::span<const std::int64_t> ids, RequestStatus to,
                               const char* from_sql, TimePoint now) {
    return WriteResult<int>([&](Impl& writer, int& changed) -> bool {
      changed = writer.SetStatusesWhere(ids, to, from_sql, now);
      return true;
    });
  }

  static constexpr const char* kDeliveryColumns =
      "SELECT id, uid, warehouse_id, state, document, attempt_count, next_attempt_at, "
      "lease_until, created_at, request_ids FROM deliveries ";

  // A delivery row (columns as kDeliveryColumns) with the requests of its events.
  Delivery DeliveryFromRow(SQLite::Statement& s) {
    Delivery d;
    d.id = s.getColumn(0).getInt64();
    d.uid = s.getColumn(1).getString();
    d.warehouse_id = s.getColumn(2).getInt64();
    std::optional<DeliveryState> state = ParseDeliveryState(s.getColumn(3).getString());
    if (!state) throw StoreError(StoreError::Kind::kCorrupt, "unknown delivery state");
    d.state = *state;
    d.document = s.getColumn(4).getString();
    d.attempt_count = s.getColumn(5).getInt();
    d.next_attempt_at = FromUnixMicros(s.getColumn(6).getInt64());
    if (!s.getColumn(7).isNull()) d.lease_until = FromUnixMicros(s.getColumn(7).getInt64());
    d.created_at = FromUnixMicros(s.getColumn(8).getInt64());
    d.request_ids = ParseIdList(s.getColumn(9).getString());
    return d;
  }

  // The `request_ids` column: "12,57" (event order). Anything else is a corrupt row.
  static std::vector<std::int64_t> ParseIdList(std::string_view text) {
    std::vector<std::int64_t> ids;
    while (!text.empty()) {
      std::int64_t id = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
      if (ec != std::errc()) throw StoreError(StoreError::Kind::kCorrupt, "bad request_ids");
      ids.push_back(id);
      text.remove_prefix(static_cast<std::size_t>(end - text.data()));
      if (!text.empty()) {
        if (text.front() != ',') throw StoreError(StoreError::Kind::kCorrupt, "bad request_ids");
        text.remove_prefix(1);
      }
    }
    return ids;
  }

  std::optional<Delivery> ReadDelivery(const std::string& where, std::int64_t key) {
    Borrowed q = Prepared(std::string(kDeliveryColumns) + where);
    q->bind(1, key);
    if (!q->executeStep()) return std::nullopt;
    return DeliveryFromRow(*q);
  }

  // Records one finished call inside a round's write; false (nothing written) unless it is the
  // pending delivery's next attempt or the first of a delivery not yet stored (which it stores).
  // The caller then moves its requests (RecordAndTake does it for all the calls of a round at
  // once).
  bool RecordOneAttempt(const Store::AttemptRecord& record, TimePoint now) {
    const AttemptOutcome outcome = record.outcome;
    const char* state = outcome == AttemptOutcome::kSucceeded ? "succeeded"
                        : outcome == AttemptOutcome::kDead    ? "dead"
                                                              : "pending";
    const std::int64_t next_us =
        ToUnixMicros(outcome == AttemptOutcome::kRetry ? record.next_attempt_at : now);
    // Null while pending (a plain pointer: GCC warns wrongly about an optional here).
    const TimePoint* finished_at = outcome == AttemptOutcome::kRetry ? nullptr : &now;
    const DeliveryAttempt& attempt = record.attempt;
    const int number = attempt.attempt;
    std::int64_t delivery_id = attempt.delivery_id;
    if (delivery_id == 0) {
      if (number != 1) return false;
      delivery_id = StoreFormed(record.formed, state, next_us, finished_at);
    } else {
      // Only the delivery's next attempt is recorded: not a late duplicate, nothing once final.
      Borrowed s = Prepared(
          "UPDATE deliveries SET attempt_count = ?1, state = ?2, next_attempt_at = ?3, "
          "lease_until = NULL, finished_at = ?4, "
          "document = CASE WHEN ?2 = 'succeeded' THEN '' ELSE document END "
          "WHERE id = ?5 AND state = 'pending' AND attempt_count = ?6");
      s->bind(1, number);
      s->bind(2, state);
      s->bind(3, next_us);
      if (finished_at) {
        s->bind(4, ToUnixMicros(*finished_at));
      } else {
        s->bind(4);
      }
      s->bind(5, delivery_id);
      s->bind(6, number - 1);
      if (s->exec() != 1) return false;
    }
    {
      Borrowed s = Prepared(
          "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, "
          "http_status, error, response_head) VALUES (?, ?, ?, ?, ?, ?, ?)");
      s->bind(1, delivery_id);
      s->bind(2, number);
      s->bind(3, ToUnixMicros(attempt.started_at));
      s->bind(4, static_cast<std::int64_t>(attempt.duration.count()));
      s->bind(5, attempt.http_status);
      s->bind(6, attempt.error);
      s->bind(7, attempt.response_head.data(), static_cast<int>(attempt.response_head.size()));
      s->exec();
    }
    return true;
  }

  // Moves each of `ids` whose status is in `from_sql` to `to`, in one statement (the ids go in
  // as a JSON array); returns how many moved. Like SetStatusWhere, `pending` is set only when
  // it changes.
  int SetStatusesWhere(std::span<const std::int64_t> ids, RequestStatus to, const char* from_sql,
                       TimePoint now) {
    if (ids.empty()) return 0;
    // NOT INDEXED: by id (rowid) alone; otherwise the planner splits the status OR-chain into
    // two searches of requests_by_status per id.
    Borrowed s = Prepared("UPDATE allocation_requests NOT INDEXED " + StatusSet(to) +
                          "WHERE id IN (SELECT value FROM json_each(?)) AND " + from_sql);
    s->bind(1, std::string(ToString(to)));
    s->bind(2, ToUnixMicros(now));
    s->bind(3, "[" + JoinIds(ids) + "]");
    return s->exec();
  }

  std::optional<AllocationRequest> ReadRequest(std::int64_t request_id) {
    Borrowed s = Prepared(std::string(kRequestColumns) + "WHERE r.id = ?");
    s->bind(1, request_id);
    if (!s->executeStep()) return std::nullopt;
    return RequestFromRow(*s);
  }

  // Outbox events not yet in a delivery, oldest first, of one warehouse or of all.
  std::vector<OutboxEvent> UnbatchedEvents(std::optional<std::int64_t> warehouse, int limit) {
    Borrowed s = Prepared(
        warehouse ? "SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id "
                    "FROM outbox_events WHERE delivery_id IS NULL AND warehouse_id = ? "
                    "ORDER BY id LIMIT ?"
                  : "SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id "
                    "FROM outbox_events WHERE delivery_id IS NULL ORDER BY id LIMIT ?");
    int next = 1;
    if (warehouse) s->bind(next++, *warehouse);
    s->bind(next, limit);
    std::vector<OutboxEvent> out;
    while (s->executeStep()) out.push_back(EventFromRow(*s));
    return out;
  }

  // A warehouse's unbatched events, oldest first, each with its request (one query, not one
  // per event: the dispatcher forms deliveries from them).
  std::vector<std::pair<OutboxEvent, std::optional<AllocationRequest>>> UnbatchedWithRequests(
      std::int64_t warehouse, std::int64_t after_event, int limit) {
    Borrowed s = Prepared(
        "SELECT e.id, e.warehouse_id, e.request_id, e.action, e.status, e.created_at, "
        "e.delivery_id, r.id, r.allocation_id, r.status, r.warehouse_id, r.warehouse_name, "
        "r.group_index, r.created_at, r.expires_at, r.updated_at, r.order_id, r.order_number, "
        "r.lines_json FROM outbox_events e INDEXED BY outbox_unbatched_by_warehouse "
        "LEFT JOIN allocation_requests r ON r.id = e.request_id "
        "WHERE e.delivery_id IS NULL AND e.warehouse_id = ? AND e.id > ? ORDER BY e.id LIMIT ?");
    s->bind(1, warehouse);
    s->bind(2, after_event);
    s->bind(3, limit);
    std::vector<std::pair<OutboxEvent, std::optional<AllocationRequest>>> out;
    while (s->executeStep()) {
      std::optional<AllocationRequest> r;
      if (!s->getColumn(7).isNull()) r = RequestFromRow(*s, 7);
      out.emplace_back(EventFromRow(*s), std::move(r));
    }
    return out;
  }

  // Stores a delivery formed by TakeDeliveries (not stored then) with its first attempt's
  // outcome (`state`, the next attempt's time, the finish time or null) and puts its events in it;
  // returns its id. An event already in another delivery stays there (only a second dispatcher
  // on the same database could have sent it too). One cached statement per event, not an
  // IN-list: a new SQL text per batch would be parsed every time and churn the statement cache.
  std::int64_t StoreFormed(const Delivery& d, const char* state, std::int64_t next_attempt_us,
                           const TimePoint* finished_at) {
    const bool outcome_succeeded = std::string_view(state) == "succeeded";
    std::int64_t delivery_id = 0;
    {
      Borrowed s = Prepared(
          "INSERT INTO deliveries (uid, warehouse_id, state, document, request_ids, "
          "attempt_count, next_attempt_at, created_at, finished_at) "
          "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)");
      s->bind(1, d.uid);
      s->bind(2, d.warehouse_id);
      s->bind(3, state);
      // A succeeded delivery's document is never read again (only pending and dead ones are
      // sent again), and its events and requests render it again if anyone asks: not stored.
      s->bind(4, outcome_succeeded ? std::string() : d.document);
      s->bind(5, JoinIds(d.request_ids));
      s->bind(6, next_attempt_us);
      s->bind(7, ToUnixMicros(d.created_at));
      if (finished_at) {
        s->bind(8, ToUnixMicros(*finished_at));
      } else {
        s->bind(8);
      }
      s->exec();
      delivery_id = db_.getLastInsertRowid();
    }
    Borrowed u = Prepared(
        "UPDATE outbox_events SET delivery_id = ? WHERE id = ? AND warehouse_id = ? AND "
        "delivery_id IS NULL");
    u->bind(1, delivery_id);
    u->bind(3, d.warehouse_id);
    for (std::int64_t id : d.event_ids) {
      u->bind(2, id);
      u->exec();
      u->reset();
    }
    return delivery_id;
  }

  // The database's salt for delivery uids (migration 4), read once.
  const std::string& Salt() {
    if (salt_.empty()) salt_ = db_.execAndGet("SELECT salt FROM store_identity").getString();
    return salt_;
  }

  // A new delivery's id as receivers see it (webhook-id): "msg_" and 24 hex digits of a keyed
  // hash of its warehouse and events, so the same batch formed again (after a crash) keeps it.
  std::string FormedUid(std::int64_t warehouse_id, std::span<const std::int64_t> event_ids) {
    std::string text = std::to_string(warehouse_id) + ":" + JoinIds(event_ids);
    return "msg_" + HmacSha256Hex(Salt(), text).substr(0, 24);
  }

  // Leases a pending delivery until `lease_until`, unless someone holds an unexpired lease.
  bool ClaimLease(std::int64_t delivery_id, TimePoint now, TimePoint lease_until) {
    Borrowed s = Prepared(
        "UPDATE deliveries SET lease_until = ? WHERE id = ? AND state = 'pending' AND "
        "(lease_until IS NULL OR lease_until <= ?)");
    s->bind(1, ToUnixMicros(lease_until));
    s->bind(2, delivery_id);
    s->bind(3, ToUnixMicros(now));
    return s->exec() == 1;
  }

  void ChangeLease(const Store::LeaseChange& change) {
    Borrowed s =
        Prepared("UPDATE deliveries SET lease_until = ? WHERE id = ? AND state = 'pending'");
    if (change.until) {
      s->bind(1, ToUnixMicros(*change.until));
    } else {
      s->bind(1);
    }
    s->bind(2, change.delivery_id);
    s->exec();
  }

  // RecordAndTake's work for one warehouse, inside its write.
  Store::DeliveryTake TakeDeliveries(const Store::DeliveryWant& want, TimePoint now,
                                     const Store::DocumentRenderer& render);

  // An outbox row: id, warehouse_id, request_id, action, status, created_at, delivery_id.
  static OutboxEvent EventFromRow(SQLite::Statement& s) {
    OutboxEvent e;
    e.id = s.getColumn(0).getInt64();
    e.warehouse_id = s.getColumn(1).getInt64();
    e.request_id = s.getColumn(2).getInt64();
    e.action = ParseEventAction(s.getColumn(3).getString()).value_or(EventAction::kCreate);
    e.status = StatusColumn(s.getColumn(4));
    e.created_at = FromUnixMicros(s.getColumn(5).getInt64());
    if (!s.getColumn(6).isNull()) e.delivery_id = s.getColumn(6).getInt64();
    return e;
  }

  // A request row (columns as kRequestColumns), starting at column `first`.
  static AllocationRequest RequestFromRow(SQLite::Statement& s, int first = 0) {
    auto c = [&](int i) { return s.getColumn(first + i); };
    AllocationRequest r;
    r.id = c(0).getInt64();
    r.allocation_id = c(1).getInt64();
    r.status = StatusColumn(c(2));
    r.warehouse_id = c(3).getInt64();
    r.warehouse_name = c(4).getString();
    r.group_index = c(5).getInt();
    r.created_at = FromUnixMicros(c(6).getInt64());
    r.expires_at = FromUnixMicros(c(7).getInt64());
    r.updated_at = FromUnixMicros(c(8).getInt64());
    r.order.id = c(9).getString();
    r.order.number = c(10).getInt64();
    r.lines_json = c(11).getString();
    return r;
  }

 private:
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> cache_;
};

// Group commit. Every write of this process to one file goes through its WriteGroup, which owns
// one writer connection. Writes queued together run on it as one batch: one BEGIN IMMEDIATE
// transaction, each write in a SAVEPOINT so one write's undo or failure leaves the others
// intact, one commit (one fsync), and each writer gets its own outcome once that commit is done.
// Under load N confirms cost one fsync instead of N; writers wait in the group instead of
// SQLite's sleeping busy handler; and the writer connection's cache stays warm (a connection that
// did not write must drop its cache after another one did). Writers in other processes still
// serialise through SQLite's lock.
//
// Who runs a batch: a write that finds the group idle runs at once on its own thread, alone (no
// thread switch: a quiet service, or the dispatcher's round thread, pays nothing for the group).
// Writes that arrive meanwhile queue up; when that batch ends they are handed to the group's
// writer thread (started at the first hand-over), which runs everything queued as the next batch
// and goes on with the writes queued during that one until the queue is empty. Under load,
// batches thus follow each other on one thread with no wake-up in between. A queued write sleeps
// on a futex of its own until its batch has committed: one wake-up per write, no herd.
class WriteGroup {
 public:
  static std::shared_ptr<WriteGroup> For(const StoreOptions& options) {
    static std::mutex registry_mu;
    static std::map<std::pair<pid_t, std::string>, std::weak_ptr<WriteGroup>> registry;
    // Keyed by process too: a forked child must never use its parent's connection.
    std::pair<pid_t, std::string> key{getpid(), options.path};
    std::lock_guard lock(registry_mu);
    std::shared_ptr<WriteGroup> group = registry[key].lock();
    if (!group) {
      group = std::make_shared<WriteGroup>(options);
      registry[key] = group;
    }
    return group;
  }

  explicit WriteGroup(StoreOptions options) : options_(std::move(options)) {
    options_.create_and_migrate = false;  // the writer connection never creates the file
  }

  // Only once no Store of the file is left, so no write is queued or running.
  ~WriteGroup() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    thread_cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  // Runs `op` in a batch; returns once the batch has committed (or failed). `op` returns true to
  // keep its changes, false to undo them; its exceptions, or the commit's, are rethrown here.
  void Run(const std::function<bool(Store::Impl&)>& op) {
    auto me = std::make_shared<Pending>(&op);
    std::unique_lock lock(mu_);
    queue_.push_back(me);
    if (busy_) {
      lock.unlock();
      me->Wait();
    } else {
      busy_ = true;
      RunBatch(lock);  // just this write
      if (queue_.empty()) {
        busy_ = false;
      } else {
        handed_ = true;
        if (thread_.joinable()) {
          thread_cv_.notify_one();
        } else {
          try {
            thread_ = std::thread([this] { WriterThread(); });
          } catch (const std::system_error&) {  // no thread to be had: run them here
            handed_ = false;
            while (!queue_.empty()) RunBatch(lock);
            busy_ = false;
          }
        }
      }
    }
    // Taken out of the shared record: the thread that drops its last reference may be the
    // writer thread, which must not be the one to destroy an exception this thread still uses.
    std::exception_ptr error = std::move(me->error);
    if (error) std::rethrow_exception(error);
  }

  WriteGroupStats Stats() {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  using Steady = std::chrono::steady_clock;
  static double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

  // One write and its outcome. Shared: the thread that finishes it still touches it (the
  // wake-up) when its writer may already have returned.
  struct Pending {
    explicit Pending(const std::function<bool(Store::Impl&)>* o) : op(o), queued(Steady::now()) {}
    // Sleeps in the kernel until Done(): a futex, not std::atomic::wait, which spins on
    // sched_yield first (with a dozen writers waiting on two cores, 12 % of the service's CPU).
    void Wait() {
      while (done.load(std::memory_order_acquire) == 0) {
        syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&done), FUTEX_WAIT_PRIVATE, 0, nullptr,
                nullptr, 0);
      }
    }
    void Done() {
      done.store(1, std::memory_order_release);
      syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&done), FUTEX_WAKE_PRIVATE, 1, nullptr,
              nullptr, 0);
    }
    const std::function<bool(Store::Impl&)>* op;
    std::exception_ptr error;
    std::atomic<std::uint32_t> done{0};
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    Steady::time_point queued;
  };
  static constexpr std::size_t kMaxBatch = 256;

  void WriterThread() {
    std::unique_lock lock(mu_);
    while (true) {
      thread_cv_.wait(lock, [&] { return handed_ || stop_; });
      if (!handed_) return;
      handed_ = false;
      while (!queue_.empty()) RunBatch(lock);
      busy_ = false;
    }
  }

  // Takes the queued writes, runs them as one batch (without the lock) and wakes their writers.
  // Called with the lock held, returns with it held.
  void RunBatch(std::unique_lock<std::mutex>& lock) {
    std::vector<std::shared_ptr<Pending>> batch;
    const Steady::time_point start = Steady::now();
    while (!queue_.empty() && batch.size() < kMaxBatch) {
      stats_.wait_seconds += Seconds(start - queue_.front()->queued);
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    ++stats_.commits;
    stats_.writes += batch.size();
    lock.unlock();
    Execute(batch);
    for (const std::shared_ptr<Pending>& p : batch) p->Done();
    lock.lock();
  }

  // Only the thread running a batch calls this, so the writer connection is used by one thread
  // at a time.
  void Execute(const std::vector<std::shared_ptr<Pending>>& batch) {
    const Steady::time_point start = Steady::now();
    Steady::time_point executed = start;
    bool open = false;  // a transaction is open on the writer connection
    try {
      if (!writer_) {
        // Gathering a commit's log writes is safe only when every commit syncs the log.
        const bool syncs = options_.synchronous == SynchronousMode::kFull ||
                           options_.synchronous == SynchronousMode::kExtra;
        writer_ = std::make_unique<Store::Impl>(options_, nullptr,
                                                syncs ? LogBufferVfs::Name() : nullptr);
        wal_frames_ = 0;
        sqlite3_wal_hook(writer_->db_.getHandle(), &WriteGroup::WalHook, this);
      }
      Store::Impl& w = *writer_;
      // Transaction control through cached statements, not parsed again for every batch.
      auto exec = [&w](const char* sql) { w.Prepared(sql)->exec(); };
      exec("BEGIN IMMEDIATE");
      open = true;
      // Alone in its transaction, a write needs no savepoint: undoing it is a rollback. (A
      // savepoint makes SQLite copy every page the write changes into a statement journal,
      // which for a dispatcher round of thousands of rows is most of its I/O.)
      const bool alone = batch.size() == 1;
      bool keep_any = false;
      for (const std::shared_ptr<Pending>& p : batch) {
        if (!alone) exec("SAVEPOINT write_op");
        bool keep = false;
        try {
          keep = (*p->op)(w);
        } catch (...) {
          p->error = std::current_exception();
        }
        keep_any = keep_any || keep;
        if (!alone) {
          if (!keep) exec("ROLLBACK TO write_op");
          exec("RELEASE write_op");
        }
      }
      executed = Steady::now();
      exec(keep_any ? "COMMIT" : "ROLLBACK");
      open = false;
    } catch (...) {
      // Opening, BEGIN, a savepoint or COMMIT failed (busy, full, read-only, ...): nothing of
      // the batch is kept. A broken writer connection is reopened by the next batch.
      for (const std::shared_ptr<Pending>& p : batch) {
        if (!p->error) p->error = std::current_exception();
      }
      if (open && writer_) {
        try {
          writer_->db_.exec("ROLLBACK");
        } catch (...) {
        }
      }
      writer_.reset();
    }
    const Steady::time_point end = Steady::now();
    std::lock_guard lock(mu_);
    stats_.execute_seconds += Seconds(executed - start);
    stats_.commit_seconds += Seconds(end - executed);
  }

  // Called by SQLite after each commit of the writer connection with the number of frames in the
  // log: counts them, and checkpoints as the hook of `wal_autocheckpoint` (which this replaces)
  // would, PASSIVE once the log holds kCheckpointFrames, timing it.
  static int WalHook(void* arg, sqlite3* db, const char* name, int frames) {
    auto* self = static_cast<WriteGroup*>(arg);
    const int appended = frames >= self->wal_frames_ ? frames - self->wal_frames_ : frames;
    self->wal_frames_ = frames;
    double seconds = -1;
    if (frames >= kCheckpointFrames) {
      const Steady::time_point start = Steady::now();
      sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      seconds = Seconds(Steady::now() - start);
    }
    std::lock_guard lock(self->mu_);
    self->stats_.wal_frames += static_cast<std::uint64_t>(appended);
    if (seconds >= 0) {
      ++self->stats_.checkpoints;
      self->stats_.checkpoint_seconds += seconds;
    }
    return SQLITE_OK;
  }
  static constexpr int kCheckpointFrames = 8000;  // as PRAGMA wal_autocheckpoint below

  StoreOptions options_;
  std::unique_ptr<Store::Impl> writer_;
  int wal_frames_ = 0;  // in the log after the writer's last commit (writer's thread only)
  std::mutex mu_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool busy_ = false;    // a batch is running, or the writer thread has the queue
  bool handed_ = false;  // the queue is the writer thread's to run
  bool stop_ = false;
  std::condition_variable thread_cv_;
  std::thread thread_;  // the writer thread, started at the first hand-over
  WriteGroupStats stats_;
};

Store::Impl::Impl(const StoreOptions& options, std::shared_ptr<WriteGroup> group, const char* vfs)
    : db_(options.path.c_str(),
          SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX |
              (options.create_and_migrate ? SQLite::OPEN_CREATE : 0),
          static_cast<int>(options.busy_timeout.count()), vfs),
      group_(std::move(group)) {
  db_.exec(SynchronousPragma(options.synchronous));
  // Statement journals and sort b-trees in memory, not in temporary files created and
  // unlinked per statement.
  db_.exec("PRAGMA temp_store = MEMORY");
  // Checkpoint every 8000 pages (32 MiB of WAL), not 1000: a page a busy dispatcher rewrites
  // in many commits is copied to the database once per checkpoint, and checkpoints are rarer.
  // (The writer connection's WriteGroup::WalHook replaces this hook, with the same threshold.)
  db_.exec("PRAGMA wal_autocheckpoint = 8000");
  // Page cache: the writer keeps the hot pages of every write (4 MiB); a reading connection
  // (one per API worker) only needs the small indexes of the common queries (1 MiB), which
  // keeps the service's memory flat however many workers it has.
  db_.exec(group_ ? "PRAGMA cache_size = -1024" : "PRAGMA cache_size = -4096");
  if (options.max_size > 0) {
    std::int64_t page = db_.execAndGet("PRAGMA page_size").getInt64();
    db_.exec("PRAGMA max_page_count = " +
             std::to_string(std::max<std::int64_t>(1, options.max_size / page)));
  }
}

void Store::Impl::Write(const std::function<bool(Impl&)>& op) { group_->Run(op); }

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

int Store::LatestSchemaVersion() { return static_cast<int>(std::size(schema::kMigrations)); }

std::unique_ptr<Store> Store::Open(const StoreOptions& options) {
  try {
    auto impl = std::make_unique<Impl>(options, WriteGroup::For(options));
    SQLite::Database& db = impl->db_;
    if (!options.create_and_migrate) {
      int version = db.execAndGet("PRAGMA user_version").getInt();
      if (version != LatestSchemaVersion()) {
        throw StoreError(StoreError::Kind::kUnavailable,
                         "database " + options.path + " has schema version " +
                             std::to_string(version) + ", expected " +
                             std::to_string(LatestSchemaVersion()));
      }
      return std::unique_ptr<Store>(new Store(std::move(impl)));
    }
    // Switching to WAL needs a moment of exclusive access; a second process opening the same
    // new file at the same instant may see SQLITE_BUSY even with a busy timeout, so retry.
    for (int attempt = 0;; ++attempt) {
      try {
        std::string mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
        if (mode != "wal") {
          throw StoreError(
              StoreError::Kind::kUnavailable,
              "database " + options.path + ": cannot use WAL (journal_mode " + mode + ")");
        }
        break;
      } catch (const SQLite::Exception& e) {
        if ((e.getErrorCode() & 0xff) != SQLITE_BUSY || attempt >= 200) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }

    WriteTransaction txn(db);
    int version = db.execAndGet("PRAGMA user_version").getInt();
    if (version > LatestSchemaVersion()) {
      throw StoreError(StoreError::Kind::kUnavailable,
                       "database " + options.path + " has schema version " +
                           std::to_string(version) + ", newer than this build's " +
                           std::to_string(LatestSchemaVersion()) + "; upgrade allocation-relay");
    }
    for (int v = version; v < LatestSchemaVersion(); ++v) {
      db.exec(schema::kMigrations[v]);
      db.exec("PRAGMA user_version = " + std::to_string(v + 1));
    }
    txn.Commit();
    return std::unique_ptr<Store>(new Store(std::move(impl)));
  } catch (const SQLite::Exception& e) {
    StoreError translated = Translate(e);
    throw StoreError(translated.kind(), "cannot open database " + options.path + ": " + e.what());
  }
}

StoreResult<int> Store::SchemaVersion() {
  return Guarded([&] { return impl_->db_.execAndGet("PRAGMA user_version").getInt(); });
}

StoreResult<CreateResult> Store::CreateAllocation(const NewAllocation& allocation, TimePoint now,
                                                  const WarehouseCatalog& catalog) {
  // Everything that does not need the database is prepared before the write, outside the
  // group commit's serial part.
  Impl::AllocationRow row{0,
                          AllocationState::kOpen,
                          0,
                          allocation.groups,
                          allocation.order,
                          LinesJson(allocation.lines)};
  const std::string groups_json = nlohmann::json(allocation.groups).dump();
  std::vector<OrderLine> lines = allocation.lines;  // as stored: in line id order
  std::sort(lines.begin(), lines.end(),
            [](const OrderLine& a, const OrderLine& b) { return a.line_id < b.line_id; });
  return impl_->WriteResult<CreateResult>([&](Impl& im, CreateResult& result) -> bool {
    {
      Borrowed s = im.Prepared("SELECT id FROM allocations WHERE order_number = ?");
      s->bind(1, allocation.order.number);
      if (s->executeStep()) {
        result.outcome = CreateResult::Outcome::kDuplicateOrder;
        return false;
      }
    }
    {
      Borrowed s = im.Prepared(
          "INSERT INTO allocations (order_id, order_number, groups_json, lines_json, "
          "current_group, state, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 'open', ?, ?)");
      s->bind(1, allocation.order.id);
      s->bind(2, allocation.order.number);
      s->bind(3, groups_json);
      s->bind(4, row.lines_json);
      s->bind(5, ToUnixMicros(now));
      s->bind(6, ToUnixMicros(now));
      s->exec();
      row.id = im.db_.getLastInsertRowid();
    }
    Allocation& made = result.allocation;
    const FlowStep step = im.StartGroupFrom(row, 0, now, catalog, &made.requests);
    made.id = row.id;
    made.order = allocation.order;
    made.lines = lines;
    made.groups = allocation.groups;
    made.state =
        step == FlowStep::kExhausted ? AllocationState::kExhausted : AllocationState::kOpen;
    made.current_group = made.requests.empty() ? 0 : made.requests.front().group_index;
    made.created_at = now;
    made.updated_at = now;
    result.outcome = CreateResult::Outcome::kCreated;
    result.allocation_id = row.id;
    return true;
  });
}

StoreResult<UpdateResult> Store::ConfirmRequest(std::int64_t request_id,
                                                const WarehouseScope& scope, TimePoint now) {
  return impl_->WriteResult<UpdateResult>([&](Impl& im, UpdateResult& result) -> bool {
    std::optional<Impl::RequestHead> head =
        im.ApplyUpdate(request_id, scope, RequestStatus::kConfirmed, now, result);
    if (!head) return false;
    UpdateResult wrong{UpdateResult::Outcome::kWrongStatus, head->status};
    Borrowed s = im.Prepared(
        "UPDATE allocations SET state = 'confirmed', confirmed_warehouse_id = ?, updated_at = ? "
        "WHERE id = ? AND state = 'open'");
    s->bind(1, head->warehouse_id);
    s->bind(2, ToUnixMicros(now));
    s->bind(3, head->allocation_id);
    if (s->exec() != 1) {  // the allocation is no longer open: undo the request's change
      result = wrong;
      return false;
    }
    im.OutdateOpenRequests(head->allocation_id, request_id, now);
    result = UpdateResult{UpdateResult::Outcome::kUpdated, RequestStatus::kConfirmed};
    return true;
  });
}

StoreResult<UpdateResult> Store::RejectRequest(std::int64_t request_id, const WarehouseScope& scope,
                                               TimePoint now, const WarehouseCatalog& catalog) {
  return impl_->WriteResult<UpdateResult>([&](Impl& im, UpdateResult& result) -> bool {
    std::optional<Impl::RequestHead> head =
        im.ApplyUpdate(request_id, scope, RequestStatus::kRejected, now, result);
    if (!head) return false;
    if (head->group_index == head->current_group) {
      im.MaybeAdvance(head->allocation_id, now, catalog);
    }
    result = UpdateResult{UpdateResult::Outcome::kUpdated, RequestStatus::kRejected};
    return true;
  });
}

StoreResult<ExpiryResult> Store::ExpireDue(TimePoint now, const WarehouseCatalog& catalog,
                                           int limit) {
  return impl_->WriteResult<ExpiryResult>([&](Impl& im, ExpiryResult& result) -> bool {
    struct Expired {
      std::int64_t id, allocation_id, warehouse_id;
    };
    std::vector<Expired> expired;
    {
      Borrowed s = im.Prepared(kExpiryScanSql);
      s->bind(1, ToUnixMicros(now));
      s->bind(2, limit);
      while (s->executeStep()) {
        expired.push_back(Expired{s->getColumn(0).getInt64(), s->getColumn(1).getInt64(),
                                  s->getColumn(2).getInt64()});
      }
    }
    result = ExpiryResult{};
    std::set<std::int64_t> allocations;
    for (const Expired& e : expired) {
      if (im.SetStatusWhere(e.id, RequestStatus::kTimedOut, kPendingSql, now) == 1) {
        im.QueueEvent(e.warehouse_id, e.id, EventAction::kUpdate, RequestStatus::kTimedOut, now);
        ++result.timed_out;
        allocations.insert(e.allocation_id);
      }
    }
    for (std::int64_t allocation_id : allocations) {
      switch (im.MaybeAdvance(allocation_id, now, catalog)) {
        case FlowStep::kNextGroup:
          ++result.groups_advanced;
          break;
        case FlowStep::kExhausted:
          ++result.exhausted;
          break;
        case FlowStep::kWait:
          break;
      }
    }
    return true;
  });
}

StoreResult<std::optional<TimePoint>> Store::NextExpiration() {
  return Guarded([&]() -> std::optional<TimePoint> {
    Borrowed s = impl_->Prepared(kNextExpirationSql);
    if (!s->executeStep() || s->getColumn(0).isNull()) return std::nullopt;
    return FromUnixMicros(s->getColumn(0).getInt64());
  });
}

StoreResult<CancelResult> Store::CancelAllocation(std::int64_t order_number, TimePoint now) {
  return impl_->WriteResult<CancelResult>([&](Impl& im, CancelResult& result) -> bool {
    std::int64_t allocation_id = 0;
    AllocationState state;
    {
      Borrowed s = im.Prepared("SELECT id, state FROM allocations WHERE order_number = ?");
      s->bind(1, order_number);
      if (!s->executeStep()) {
        result = CancelResult{CancelResult::Outcome::kNotFound, {}};
        return false;
      }
      allocation_id = s->getColumn(0).getInt64();
      state = StateColumn(s->getColumn(1));
    }
    if (state != AllocationState::kOpen) {
      result = CancelResult{CancelResult::Outcome::kNotOpen, state};
      return false;
    }
    Borrowed s = im.Prepared(
        "UPDATE allocations SET state = 'cancelled', updated_at = ? WHERE id = ? AND state = "
        "'open'");
    s->bind(1, ToUnixMicros(now));
    s->bind(2, allocation_id);
    if (s->exec() != 1) {
      result = CancelResult{CancelResult::Outcome::kNotOpen, state};
      return false;
    }
    im.OutdateOpenRequests(allocation_id, 0, now);
    result = CancelResult{CancelResult::Outcome::kCancelled, AllocationState::kCancelled};
    return true;
  });
}

StoreResult<int> Store::MarkSent(std::span<const std::int64_t> request_ids, TimePoint now) {
  return impl_->SetStatuses(request_ids, RequestStatus::kSent, kSendableSql, now);
}

StoreResult<int> Store::MarkFailed(std::span<const std::int64_t> request_ids, TimePoint now) {
  return impl_->SetStatuses(request_ids, RequestStatus::kFailed, kUnsentSql, now);
}

StoreResult<std::optional<AllocationRequest>> Store::GetRequest(std::int64_t request_id) {
  return Guarded(
      [&]() -> std::optional<AllocationRequest> { return impl_->ReadRequest(request_id); });
}

StoreResult<std::optional<Allocation>> Store::GetAllocationByOrder(std::int64_t order_number) {
  return Guarded([&]() -> std::optional<Allocation> {
    ReadTransaction txn(impl_->db_);
    Allocation a;
    {
      Borrowed s = impl_->Prepared(
          "SELECT id, order_id, order_number, groups_json, current_group, state, "
          "confirmed_warehouse_id, created_at, updated_at, lines_json FROM allocations "
          "WHERE order_number = ?");
      s->bind(1, order_number);
      if (!s->executeStep()) return std::nullopt;
      a.id = s->getColumn(0).getInt64();
      a.order.id = s->getColumn(1).getString();
      a.order.number = s->getColumn(2).getInt64();
      a.groups = nlohmann::json::parse(s->getColumn(3).getString()).get<PriorityGroups>();
      a.current_group = s->getColumn(4).getInt();
      a.state = StateColumn(s->getColumn(5));
      if (!s->getColumn(6).isNull()) a.confirmed_warehouse_id = s->getColumn(6).getInt64();
      a.created_at = FromUnixMicros(s->getColumn(7).getInt64());
      a.updated_at = FromUnixMicros(s->getColumn(8).getInt64());
      a.lines = ParseLinesJson(s->getColumn(9).getString());
    }
    {
      Borrowed s =
          impl_->Prepared(std::string(kRequestColumns) + "WHERE r.allocation_id = ? ORDER BY r.id");
      s->bind(1, a.id);
      while (s->executeStep()) a.requests.push_back(Impl::RequestFromRow(*s));
    }
    return a;
  });
}

StoreResult<std::vector<AllocationRequest>> Store::ListRequests(const RequestQuery& query) {
  return Guarded([&]() -> std::vector<AllocationRequest> {
    ReadTransaction txn(impl_->db_);
    std::int64_t after_id = query.after_id;
    std::int64_t offset = query.offset;
    if (offset > 0 && IsUnfiltered(query)) {
      // Dense ids (count = max(id)): page P is the id range after (P-1)*100, O(log n).
      Borrowed d = impl_->Prepared(
          "SELECT (SELECT value FROM row_counts WHERE name = 'allocation_requests'), "
          "(SELECT max(id) FROM allocation_requests)");
      if (d->executeStep() && !d->getColumn(1).isNull() &&
          d->getColumn(0).getInt64() == d->getColumn(1).getInt64()) {
        after_id = offset > std::numeric_limits<std::int64_t>::max() - after_id
                       ? std::numeric_limits<std::int64_t>::max()
                       : after_id + offset;
        offset = 0;
      }
    }
    std::vector<AllocationRequest> out;
    {
      Borrowed s = impl_->Prepared(ListRequestsSql(query, offset > 0));
      s->bind(1, after_id);
      s->bind(2, query.limit);
      s->bind(3, offset);
      while (s->executeStep()) out.push_back(Impl::RequestFromRow(*s));
    }
    return out;
  });
}

StoreResult<std::vector<OutboxEvent>> Store::ListUnbatchedEvents(
    std::optional<std::int64_t> warehouse, int limit) {
  return Guarded([&]() { return impl_->UnbatchedEvents(warehouse, limit); });
}

StoreResult<std::vector<Store::DeliveryTake>> Store::RecordAndTake(
    std::span<const AttemptRecord> records, std::span<const LeaseChange> leases,
    std::span<const DeliveryWant> wants, TimePoint now, const DocumentRenderer& render) {
  return impl_->WriteResult<std::vector<DeliveryTake>>(
      [&](Impl& im, std::vector<DeliveryTake>& takes) -> bool {
        takes.clear();  // a retried group runs the op again
        std::vector<std::int64_t> sent, failed;
        for (const AttemptRecord& r : records) {
          if (!im.RecordOneAttempt(r, now)) continue;
          std::vector<std::int64_t>& to = r.outcome == AttemptOutcome::kSucceeded ? sent : failed;
          to.insert(to.end(), r.request_ids.begin(), r.request_ids.end());
        }
        // Conditional: a request already confirmed, rejected, timed out or outdated keeps its
        // status whatever the webhook's fate. Failures first: applied one by one in any order,
        // a request that both failed and succeeded in this round would end `sent` too.
        im.SetStatusesWhere(failed, RequestStatus::kFailed, kUnsentSql, now);
        im.SetStatusesWhere(sent, RequestStatus::kSent, kSendableSql, now);
        for (const LeaseChange& change : leases) im.ChangeLease(change);
        for (const DeliveryWant& want : wants)
          takes.push_back(im.TakeDeliveries(want, now, render));
        return true;
      });
}

Store::DeliveryTake Store::Impl::TakeDeliveries(const Store::DeliveryWant& want, TimePoint now,
                                                const Store::DocumentRenderer& render) {
  DeliveryTake take;
  take.warehouse_id = want.warehouse_id;
  const std::int64_t now_us = ToUnixMicros(now);
  auto note_due = [&](std::int64_t due_us) {
    TimePoint t = FromUnixMicros(due_us);
    if (!take.next_due || t < *take.next_due) take.next_due = t;
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
    Borrowed q = Prepared(
        "SELECT id, next_attempt_at, lease_until FROM deliveries "
        "WHERE warehouse_id = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?");
    q->bind(1, want.warehouse_id);
    q->bind(2, past_held ? *std::max_element(want.held.begin(), want.held.end()) : 0);
    q->bind(3, past_held ? want.slots : limit);
    while (q->executeStep() && static_cast<int>(claim.size()) < want.slots) {
      std::int64_t id = q->getColumn(0).getInt64();
      if (held(id)) continue;
      std::int64_t due = q->getColumn(1).getInt64();
      bool leased = !q->getColumn(2).isNull() && q->getColumn(2).getInt64() > now_us;
      if (due > now_us) {
        note_due(due);
      } else if (leased) {
        note_due(q->getColumn(2).getInt64());  // a crashed dispatcher's lease runs out
      } else {
        claim.push_back(id);
        continue;
      }
      blocked = true;
      break;
    }
  } else {
    {
      Borrowed q = Prepared(
          "SELECT id FROM deliveries WHERE warehouse_id = ? AND state = 'pending' AND "
          "next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
          "ORDER BY id LIMIT ?");
      q->bind(1, want.warehouse_id);
      q->bind(2, now_us);
      q->bind(3, now_us);
      q->bind(4, limit);
      while (q->executeStep() && static_cast<int>(claim.size()) < want.slots) {
        if (!held(q->getColumn(0).getInt64())) claim.push_back(q->getColumn(0).getInt64());
      }
    }
    Borrowed q = Prepared(
        "SELECT min(next_attempt_at) FROM deliveries WHERE warehouse_id = ? AND "
        "state = 'pending' AND next_attempt_at > ?");
    q->bind(1, want.warehouse_id);
    q->bind(2, now_us);
    if (q->executeStep() && !q->getColumn(0).isNull()) note_due(q->getColumn(0).getInt64());
  }
  for (std::int64_t id : claim) {
    if (!ClaimLease(id, now, want.lease_until)) continue;
    if (auto d = ReadDelivery("WHERE id = ?", id)) take.claimed.push_back(std::move(*d));
  }
  if (blocked) return take;

  // New deliveries from the unbatched events, while slots are left: one read for all of them.
  // Not stored: a delivery is stored with its first attempt (RecordOneAttempt).
  const int wanted = want.slots - static_cast<int>(take.claimed.size());
  if (wanted <= 0) return take;
  auto unbatched = UnbatchedWithRequests(want.warehouse_id, want.after_event,
                                         wanted * std::max(1, want.max_events));
  for (std::size_t first = 0; first < unbatched.size();) {
    const std::size_t count =
        std::min(unbatched.size() - first, static_cast<std::size_t>(std::max(1, want.max_events)));
    std::vector<OutboxEvent> events;
    Delivery d;
    std::vector<AllocationRequest> requests;
    for (std::size_t i = first; i < first + count; ++i) {
      auto& [e, r] = unbatched[i];
      d.event_ids.push_back(e.id);
      d.request_ids.push_back(e.request_id);
      if (r) requests.push_back(std::move(*r));
      events.push_back(std::move(e));
    }
    first += count;
    d.document = render(events, requests);
    d.uid = FormedUid(want.warehouse_id, d.event_ids);
    d.warehouse_id = want.warehouse_id;
    d.state = DeliveryState::kPending;
    d.next_attempt_at = now;
    d.created_at = now;
    take.claimed.push_back(std::move(d));
  }
  return take;
}

StoreResult<std::vector<std::int64_t>> Store::WarehousesWithEventsAfter(std::int64_t event_id) {
  return Guarded([&]() -> std::vector<std::int64_t> {
    Borrowed q = impl_->Prepared(
        "SELECT DISTINCT warehouse_id FROM outbox_events WHERE id > ? ORDER BY warehouse_id");
    q->bind(1, event_id);
    std::vector<std::int64_t> out;
    while (q->executeStep()) out.push_back(q->getColumn(0).getInt64());
    return out;
  });
}

StoreResult<std::vector<Delivery>> Store::ListDeliveries(std::optional<DeliveryState> state,
                                                         std::optional<std::int64_t> warehouse,
                                                         int limit) {
  return Guarded([&]() -> std::vector<Delivery> {
    ReadTransaction txn(impl_->db_);
    std::string sql = std::string(Impl::kDeliveryColumns) + "WHERE 1";
    if (state) sql += " AND state = '" + std::string(ToString(*state)) + "'";
    if (warehouse) sql += " AND warehouse_id = " + std::to_string(*warehouse);
    sql += " ORDER BY id LIMIT " + std::to_string(limit);
    std::vector<Delivery> rows;
    {
      Borrowed q = impl_->Prepared(sql);
      while (q->executeStep()) {
        Delivery d;
        d.id = q->getColumn(0).getInt64();
        rows.push_back(d);
      }
    }
    std::vector<Delivery> out;
    for (const Delivery& d : rows) {
      if (auto full = impl_->ReadDelivery("WHERE id = ?", d.id)) out.push_back(std::move(*full));
    }
    return out;
  });
}

StoreResult<std::vector<DeliveryAttempt>> Store::ListAttempts(std::int64_t delivery_id) {
  return Guarded([&]() -> std::vector<DeliveryAttempt> {
    Borrowed q = impl_->Prepared(
        "SELECT delivery_id, attempt, started_at, duration_us, http_status, error, response_head "
        "FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt");
    q->bind(1, delivery_id);
    std::vector<DeliveryAttempt> out;
    while (q->executeStep()) {
      DeliveryAttempt a;
      a.delivery_id = q->getColumn(0).getInt64();
      a.attempt = q->getColumn(1).getInt();
      a.started_at = FromUnixMicros(q->getColumn(2).getInt64());
      a.duration = Micros(q->getColumn(3).getInt64());
      a.http_status = q->getColumn(4).getInt();
      a.error = q->getColumn(5).getString();
      const SQLite::Column head = q->getColumn(6);
      a.response_head.assign(static_cast<const char*>(head.getBlob()),
                             static_cast<std::size_t>(head.getBytes()));
      out.push_back(std::move(a));
    }
    return out;
  });
}

StoreResult<std::vector<OutboxEvent>> Store::EventsOfRequests(
    std::span<const std::int64_t> request_ids) {
  return Guarded([&]() -> std::vector<OutboxEvent> {
    std::vector<OutboxEvent> out;
    if (request_ids.empty()) return out;
    Borrowed q = impl_->Prepared(
        "SELECT id, warehouse_id, request_id, action, status, created_at, delivery_id "
        "FROM outbox_events WHERE request_id IN " +
        IdList(request_ids) + " ORDER BY id");
    while (q->executeStep()) {
      out.push_back(Impl::EventFromRow(*q));
    }
    return out;
  });
}

StoreResult<std::optional<Delivery>> Store::GetDelivery(std::int64_t delivery_id) {
  return Guarded([&]() -> std::optional<Delivery> {
    ReadTransaction txn(impl_->db_);
    return impl_->ReadDelivery("WHERE id = ?", delivery_id);
  });
}

StoreResult<bool> Store::BackupTo(const std::string& path) {
  return Guarded([&]() -> bool {
    SQLite::Statement s(impl_->db_, "VACUUM INTO ?");
    s.bind(1, path);
    s.exec();
    return true;
  });
}

StoreResult<std::vector<std::pair<DeliveryState, std::int64_t>>> Store::CountDeliveriesByState() {
  return Guarded([&] {
    std::vector<std::pair<DeliveryState, std::int64_t>> out = {
        {DeliveryState::kPending, 0}, {DeliveryState::kSucceeded, 0}, {DeliveryState::kDead, 0}};
    // Pending and dead ones are counted in their small partial indexes. Deliveries are never
    // deleted, so their ids are dense and the rest (succeeded) is max(id) minus those: no scan
    // of the table, whatever its size.
    Borrowed q = impl_->Prepared(
        "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'), "
        "(SELECT count(*) FROM deliveries WHERE state = 'dead'), "
        "(SELECT coalesce(max(id), 0) FROM deliveries)");
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
Store::UnbatchedEventsByWarehouse() {
  return Guarded([&] {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    Borrowed q = impl_->Prepared(
        "SELECT warehouse_id, count(*) FROM outbox_events INDEXED BY "
        "outbox_unbatched_by_warehouse WHERE delivery_id IS NULL GROUP BY warehouse_id");
    while (q->executeStep())
      out.emplace_back(q->getColumn(0).getInt64(), q->getColumn(1).getInt64());
    return out;
  });
}

StoreResult<std::int64_t> Store::MaxEventId() {
  return Guarded([&]() -> std::int64_t {
    Borrowed q = impl_->Prepared("SELECT coalesce(max(id), 0) FROM outbox_events");
    q->executeStep();
    return q->getColumn(0).getInt64();
  });
}

StoreResult<bool> Store::DisableWebhook(std::int64_t warehouse_id, const std::string& reason,
                                        TimePoint now) {
  return impl_->WriteResult<bool>([&](Impl& im, bool& changed) -> bool {
    Borrowed s = im.Prepared(
        "INSERT INTO webhook_endpoints (warehouse_id, disabled_at, disabled_reason) "
        "VALUES (?, ?, ?) ON CONFLICT (warehouse_id) DO UPDATE SET disabled_at = "
        "excluded.disabled_at, disabled_reason = excluded.disabled_reason "
        "WHERE disabled_at IS NULL");
    s->bind(1, warehouse_id);
    s->bind(2, ToUnixMicros(now));
    s->bind(3, reason);
    changed = s->exec() == 1;
    return true;
  });
}

StoreResult<bool> Store::EnableWebhook(std::int64_t warehouse_id) {
  return impl_->WriteResult<bool>([&](Impl& im, bool& changed) -> bool {
    Borrowed s = im.Prepared(
        "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL "
        "WHERE warehouse_id = ? AND disabled_at IS NOT NULL");
    s->bind(1, warehouse_id);
    changed = s->exec() == 1;
    return true;
  });
}

StoreResult<std::vector<std::int64_t>> Store::DisabledWebhooks() {
  return Guarded([&]() -> std::vector<std::int64_t> {
    Borrowed q = impl_->Prepared(
        "SELECT warehouse_id FROM webhook_endpoints WHERE disabled_at IS NOT NULL ORDER BY 1");
    std::vector<std::int64_t> out;
    while (q->executeStep()) out.push_back(q->getColumn(0).getInt64());
    return out;
  });
}

StoreResult<int> Store::ResendDead(std::optional<std::int64_t> warehouse, TimePoint now) {
  return impl_->WriteResult<int>([&](Impl& im, int& count) -> bool {
    std::string sql =
        "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL, "
        "finished_at = NULL WHERE state = 'dead'";
    if (warehouse) sql += " AND warehouse_id = " + std::to_string(*warehouse);
    Borrowed s = im.Prepared(sql);
    s->bind(1, ToUnixMicros(now));
    count = s->exec();
    return true;
  });
}

StoreResult<std::vector<std::string>> Store::ExplainListRequests(const RequestQuery& query) {
  return Guarded([&] { return impl_->Explain(ListRequestsSql(query, query.offset > 0)); });
}

StoreResult<std::vector<std::string>> Store::ExplainExpiryScan() {
  return Guarded([&] { return impl_->Explain(kExpiryScanSql); });
}

StoreResult<std::vector<std::string>> Store::ExplainNextExpiration() {
  return Guarded([&] { return impl_->Explain(kNextExpirationSql); });
}

StoreResult<std::vector<std::pair<RequestStatus, std::int64_t>>> Store::CountRequestsByStatus() {
  return Guarded([&] {
    std::vector<std::pair<RequestStatus, std::int64_t>> out;
    for (RequestStatus s : kAllRequestStatuses) out.emplace_back(s, 0);
    Borrowed q = impl_->Prepared(
        "SELECT status, count(*) FROM allocation_requests INDEXED BY requests_by_status "
        "GROUP BY status");
    while (q->executeStep()) {
      RequestStatus s = StatusColumn(q->getColumn(0));
      out[static_cast<std::size_t>(s)].second = q->getColumn(1).getInt64();
    }
    return out;
  });
}

StoreResult<std::vector<std::pair<AllocationState, std::int64_t>>>
Store::CountAllocationsByState() {
  return Guarded([&] {
    std::vector<std::pair<AllocationState, std::int64_t>> out;
    for (AllocationState s : {AllocationState::kOpen, AllocationState::kConfirmed,
                              AllocationState::kExhausted, AllocationState::kCancelled}) {
      out.emplace_back(s, 0);
    }
    // One pass with a counter per state: `GROUP BY state` (no index on it) sorted every
    // allocation in memory, ~47 MiB per scrape at a million rows, kept by the allocator.
    Borrowed q = impl_->Prepared(
        "SELECT count(*) FILTER (WHERE state = 'open'), count(*) FILTER (WHERE state = "
        "'confirmed'), count(*) FILTER (WHERE state = 'exhausted'), count(*) FILTER (WHERE "
        "state = 'cancelled') FROM allocations");
    if (q->executeStep()) {
      for (int i = 0; i < 4; ++i)
        out[static_cast<std::size_t>(i)].second = q->getColumn(i).getInt64();
    }
    return out;
  });
}

StoreResult<bool> Store::Ping() {
  return Guarded([&] {
    // An open connection keeps working on a file that was deleted or moved away, but what it
    // writes then is lost to every process that opens the path: report that as unavailable.
    const std::string& path = impl_->db_.getFilename();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw StoreError(StoreError::Kind::kUnavailable, "database file " + path + " is missing");
    }
    Borrowed q = impl_->Prepared("SELECT count(*) FROM sqlite_schema");
    return q->executeStep();
  });
}

WriteGroupStats Store::GroupStats() const { return impl_->group_->Stats(); }

StoreResult<bool> Store::IntegrityCheck() {
  return Guarded(
      [&] { return impl_->db_.execAndGet("PRAGMA integrity_check").getString() == "ok"; });
}

}  // namespace allocation_relay
