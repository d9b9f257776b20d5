#include "pg_event_signal.h"

#include <poll.h>

#include <thread>

namespace allocation_relay::postgresql {

PgEventSignal::PgEventSignal(const StoreOptions& options) : c_(options.url) {
  c_.Run(std::string("LISTEN ") + kEventChannel);
}

bool PgEventSignal::Wait(std::chrono::milliseconds timeout) {
  try {
    if (c_.Lost()) {
      c_.EnsureOpen();  // throws while the server is away (with backoff)
      c_.Run(std::string("LISTEN ") + kEventChannel);
      return true;  // notifications may have been missed meanwhile
    }
    if (c_.TakeNotifications() > 0) return true;
    pollfd p{c_.Socket(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) > 0) return c_.TakeNotifications() > 0;
    return false;
  } catch (const StoreError&) {
    std::this_thread::sleep_for(timeout);  // the server is away: the caller polls meanwhile
    return false;
  }
}

}  // namespace allocation_relay::postgresql
