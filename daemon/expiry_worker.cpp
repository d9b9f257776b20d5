#include "expiry_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace allocation_relay {

ExpiryWorker::ExpiryWorker(StoreOptions options, const Clock& clock, WarehouseCatalog catalog)
    : options_(std::move(options)),
      clock_(clock),
      catalog_(std::make_shared<const WarehouseCatalog>(std::move(catalog))) {}

ExpiryWorker::~ExpiryWorker() { Stop(); }

void ExpiryWorker::Start() {
  store_ = Store::Open(options_);
  thread_ = std::thread([this] { Loop(); });
}

void ExpiryWorker::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  store_.reset();
}

void ExpiryWorker::SetCatalog(WarehouseCatalog catalog) {
  auto next = std::make_shared<const WarehouseCatalog>(std::move(catalog));
  MutexLock lock(mu_);
  catalog_ = std::move(next);
}

StoreResult<ExpiryResult> ExpiryWorker::RunOnce(Store& store) {
  std::shared_ptr<const WarehouseCatalog> catalog;
  {
    MutexLock lock(mu_);
    catalog = catalog_;
  }
  constexpr int kBatch = 500;  // one transaction each, so the API's writes interleave
  ExpiryResult total;
  for (;;) {
    StoreResult<ExpiryResult> r = store.ExpireDue(clock_.Now(), *catalog, kBatch);
    if (!r) return r;
    total.timed_out += r->timed_out;
    total.groups_advanced += r->groups_advanced;
    total.exhausted += r->exhausted;
    if (r->timed_out < kBatch) return total;
  }
}

void ExpiryWorker::Loop() {
  bool failing = false;
  for (;;) {
    StoreResult<ExpiryResult> r = RunOnce(*store_);
    if (!r) {
      // The database is busy or unavailable: keep trying; say so once per outage.
      if (!failing) spdlog::warn("expiry: {}; retrying", r.error().what());
      failing = true;
    } else {
      if (failing) spdlog::info("expiry: database available again");
      failing = false;
      if (r->timed_out > 0) {
        spdlog::info(
            "expiry: {} requests timed out, {} allocations moved to their next group, "
            "{} exhausted",
            r->timed_out, r->groups_advanced, r->exhausted);
      }
    }
    std::chrono::milliseconds wait = kPollInterval;
    if (r) {
      if (auto next = store_->NextExpiration(); next && *next) {
        auto until = std::chrono::ceil<std::chrono::milliseconds>(**next - clock_.Now());
        wait = std::clamp(until, std::chrono::milliseconds(0), kPollInterval);
      }
    }
    MutexLock lock(mu_);
    if (lock.WaitFor(wake_, wait, [this]() REQUIRES(mu_) { return stopping_; })) return;
  }
}

}  // namespace allocation_relay
