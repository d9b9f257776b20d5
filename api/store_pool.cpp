#include "store_pool.h"

namespace allocation_relay {

StorePool::Lease::~Lease() {
  if (store_ && pool_) {
    MutexLock lock(pool_->mu_);
    pool_->idle_.push_back(std::move(store_));
  }
}

StoreResult<StorePool::Lease> StorePool::Acquire() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Store> store = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(store));
    }
  }
  try {
    return Lease(*this, Store::Open(options_));
  } catch (const StoreError& e) {
    return std::unexpected(e);
  }
}

}  // namespace allocation_relay
