// StorePool: one Store (SQLite connection) per concurrently running request.
//
// A Store is not thread-safe; the pool hands each worker its own for the length of a request
// and takes it back. Connections are opened lazily; one that hit an I/O or corruption error is
// discarded so the next request starts from a fresh connection. Thread-safe.
#ifndef ALLOCATION_RELAY_API_STORE_POOL_H_
#define ALLOCATION_RELAY_API_STORE_POOL_H_

#include <memory>
#include <mutex>
#include <vector>

#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"

namespace allocation_relay {

class StorePool {
 public:
  // Connections never create the file: the service opened (and migrated) it at start-up.
  explicit StorePool(StoreOptions options) : options_(std::move(options)) {
    options_.create_and_migrate = false;
  }

  // A borrowed Store, returned to the pool when the lease ends.
  class Lease {
   public:
    Lease(StorePool& pool, std::unique_ptr<Store> store) : pool_(&pool), store_(std::move(store)) {}
    Lease(Lease&&) = default;
    ~Lease();
    Store* operator->() { return store_.get(); }
    Store& operator*() { return *store_; }
    // Closes the connection instead of returning it (after an I/O or corruption error).
    void Discard() { store_.reset(); }

   private:
    StorePool* pool_;
    std::unique_ptr<Store> store_;
  };

  // An idle Store, or a newly opened one; a StoreError if the database cannot be opened.
  StoreResult<Lease> Acquire();

 private:
  StoreOptions options_;
  Mutex mu_;
  std::vector<std::unique_ptr<Store>> idle_ GUARDED_BY(mu_);
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_STORE_POOL_H_
