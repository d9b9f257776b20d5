// Process plumbing shared by both binaries: logging set-up, signal handling, the service
// manager's readiness protocol and the main thread's run loop.
//
// Signals are taken, not handled: BlockServiceSignals() must run on the main thread before any
// thread starts, so every thread inherits the mask (RunUntilStopped does it first); the main
// thread then waits in WaitForSignal().
#ifndef ALLOCATION_RELAY_SERVICE_H_
#define ALLOCATION_RELAY_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "allocation_relay/config.h"

namespace allocation_relay {

// A service object (ApiServer, Dispatcher) as RunUntilStopped drives it from the main thread:
// Start, Reload and Stop are called from that thread only.
class ServiceRunner {
 public:
  virtual ~ServiceRunner() = default;
  virtual void Start() = 0;
  virtual void Reload(std::shared_ptr<const Config> config) = 0;
  virtual void Stop() = 0;
};

// The main thread's part of a service's life. Blocks the service signals, then builds the
// service with `make_service` (so every thread it starts inherits the mask), starts it and
// reports READY. On each SIGHUP reloads it with `load_config()`; a ConfigError (from loading or
// from Reload) is logged and the running configuration kept. On SIGTERM/SIGINT reports
// STOPPING, logs `stopping_message`, stops the service and returns. Any other exception
// propagates: main() is the one place that turns exceptions into exit codes.
void RunUntilStopped(const std::function<std::unique_ptr<ServiceRunner>()>& make_service,
                     const std::function<std::shared_ptr<const Config>()>& load_config,
                     const std::string& stopping_message);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and so in threads it starts later).
void BlockServiceSignals();

enum class ServiceSignal { kStop, kReload };

// Waits for SIGTERM/SIGINT (kStop) or SIGHUP (kReload). REQUIRES: BlockServiceSignals() ran.
ServiceSignal WaitForSignal();

// systemd's notify protocol (Type=notify): READY=1 once the service works (database open, port
// bound), RELOADING=1/READY=1 around a reload, STOPPING=1 when it drains. No-ops when the process
// was not started by systemd (no NOTIFY_SOCKET).
void NotifyReady(const std::string& status);
void NotifyReloading();
void NotifyStopping();

// One line per event to stderr ("<level> <message>"; journald adds the time). `level` is one of
// trace, debug, info, warn, error; returns false (and changes nothing) for anything else.
bool ConfigureLogging(const std::string& program, const std::string& level);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SERVICE_H_
