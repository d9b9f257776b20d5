// ExpiryWorker: times out pending requests at their expiration date and moves each allocation's
// flow on (SPEC section 4: within one second; the scan reads only expired rows).
//
// Owns one thread and its own Store. Start()/Stop()/SetCatalog() may be called from any thread;
// RunOnceForTest() must not run while the thread does.
#ifndef ALLOCATION_RELAY_DAEMON_EXPIRY_WORKER_H_
#define ALLOCATION_RELAY_DAEMON_EXPIRY_WORKER_H_

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "allocation_relay/clock.h"
#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"

namespace allocation_relay {

class ExpiryWorker {
 public:
  // How often the thread looks for expired requests when none is due sooner. Requests made by
  // the API (another process) after a look are found at the next one, so this bounds the delay.
  static constexpr std::chrono::milliseconds kPollInterval{200};

  // `clock` must outlive the worker.
  ExpiryWorker(StoreOptions options, const Clock& clock, WarehouseCatalog catalog);
  ~ExpiryWorker();

  // Opens the worker's Store and starts the thread. Throws StoreError.
  void Start();
  // Wakes the thread and joins it. Idempotent.
  void Stop();
  // The warehouses the flow moves on to (after a reload).
  void SetCatalog(WarehouseCatalog catalog);

  // Tests only: one pass of the thread's work (RunOnce) on `store`.
  StoreResult<ExpiryResult> RunOnceForTest(Store& store) { return RunOnce(store); }

 private:
  // Expires everything due at clock.Now() in batches; returns the totals of one pass.
  StoreResult<ExpiryResult> RunOnce(Store& store);
  void Loop();

  StoreOptions options_;
  const Clock& clock_;
  std::unique_ptr<Store> store_;
  Mutex mu_;
  std::condition_variable wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::shared_ptr<const WarehouseCatalog> catalog_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_EXPIRY_WORKER_H_
