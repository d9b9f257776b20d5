#include "store_pool.h"

#include <string>

namespace allocation_relay {

StorePool::Lease::~Lease() {
  if (store_ && pool_) pool_->GiveBack(std::move(store_));
}

void StorePool::Lease::Discard() {
  if (!store_) return;
  store_.reset();  // closed outside the pool's lock
  if (pool_) pool_->GiveBack(nullptr);
}

int StorePool::MaxOpenFor(const StoreOptions& options) {
  return options.backend == StoreBackendKind::kPostgresql ? options.pool : 0;
}

StorePool::StorePool(StoreOptions options, int max_open, std::chrono::milliseconds wait)
    : options_(std::move(options)), max_open_(max_open), wait_(wait) {
  options_.create_and_migrate = false;
}

void StorePool::GiveBack(std::unique_ptr<Store> store) {
  {
    MutexLock lock(mu_);
    if (store) {
      idle_.push_back(std::move(store));
    } else {
      --open_;
    }
  }
  returned_.notify_one();
}

int StorePool::Waiting() const {
  MutexLock lock(mu_);
  return waiting_;
}

StoreResult<StorePool::Lease> StorePool::Acquire() {
  {
    MutexLock lock(mu_);
    auto available = [this]() REQUIRES(mu_) {
      return !idle_.empty() || max_open_ <= 0 || open_ < max_open_;
    };
    if (!available()) {
      ++waiting_;
      bool got = lock.WaitFor(returned_, wait_, available);
      --waiting_;
      if (!got) {
        return std::unexpected(
            StoreError(StoreError::Kind::kBusy,
                       "all " + std::to_string(max_open_) + " database connections are busy"));
      }
    }
    if (!idle_.empty()) {
      std::unique_ptr<Store> store = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(store));
    }
    ++open_;  // the place is taken while the connection opens
  }
  try {
    return Lease(*this, Store::Open(options_));
  } catch (const StoreError& e) {
    GiveBack(nullptr);
    return std::unexpected(e);
  } catch (...) {
    GiveBack(nullptr);
    throw;
  }
}

}  // namespace allocation_relay
