// StorePool: the API's Stores (database connections), one per request running at once.
//
// A Store is not thread-safe; the pool lends each worker its own for the length of a request
// and takes it back. Connections are opened lazily; one that hit an I/O or corruption error is
// discarded (freeing its place) so the next request starts from a fresh connection.
//
// With a cap (`max_open` > 0; what the API sets for PostgreSQL from store.pool) at most that
// many Stores exist at once, idle and lent together. A request that finds them all lent waits
// up to `wait` for one to come back, then gets StoreError kBusy, which the API answers with
// 503. Without a cap (SQLite: a connection is a file handle) a Store is opened whenever none is
// idle. Thread-safe.
#ifndef ALLOCATION_RELAY_API_STORE_POOL_H_
#define ALLOCATION_RELAY_API_STORE_POOL_H_

#include <chrono>
#include <condition_variable>
#include <memory>
#include <vector>

#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"

namespace allocation_relay {

class StorePool {
 public:
  static constexpr std::chrono::milliseconds kDefaultWait{5000};

  // The cap the API uses for `options`: options.pool for PostgreSQL, 0 (none) for SQLite.
  static int MaxOpenFor(const StoreOptions& options);

  // The API's pool: capped by MaxOpenFor(options), waiting kDefaultWait at the cap.
  explicit StorePool(StoreOptions options)
      : StorePool(options, MaxOpenFor(options), kDefaultWait) {}
  // `max_open`: the most Stores at once, 0 for no cap; `wait`: how long a request waits at the
  // cap. Connections never create the database: the service opened (and migrated) it at
  // start-up.
  StorePool(StoreOptions options, int max_open, std::chrono::milliseconds wait);

  // A borrowed Store, returned to the pool when the lease ends.
  class Lease {
   public:
    Lease(StorePool& pool, std::unique_ptr<Store> store) : pool_(&pool), store_(std::move(store)) {}
    Lease(Lease&&) = default;
    ~Lease();
    Store* operator->() { return store_.get(); }
    Store& operator*() { return *store_; }
    // Closes the connection instead of returning it (after an I/O or corruption error); its
    // place in the pool is free at once. REQUIRES: not used again after this.
    void Discard();

   private:
    StorePool* pool_;
    std::unique_ptr<Store> store_;
  };

  // An idle Store, or a newly opened one. Fails with the StoreError of opening the database,
  // or, at the cap after waiting, with kBusy ("all N database connections are busy").
  StoreResult<Lease> Acquire() EXCLUDES(mu_);

  // Requests waiting at the cap right now (for tests and diagnostics).
  int Waiting() const EXCLUDES(mu_);

 private:
  // Takes back a lent Store (nullptr: it was discarded) and wakes one waiting request.
  void GiveBack(std::unique_ptr<Store> store) EXCLUDES(mu_);

  StoreOptions options_;
  const int max_open_;
  const std::chrono::milliseconds wait_;
  mutable Mutex mu_;
  std::condition_variable returned_;  // signalled with mu_ held when a place frees up
  std::vector<std::unique_ptr<Store>> idle_ GUARDED_BY(mu_);
  int open_ GUARDED_BY(mu_) = 0;  // idle + lent + being opened
  int waiting_ GUARDED_BY(mu_) = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_STORE_POOL_H_
