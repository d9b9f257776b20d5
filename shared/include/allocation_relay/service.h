// Process plumbing shared by both binaries: logging set-up, signal handling and the service
// manager's readiness protocol.
//
// Signals are taken, not handled: BlockServiceSignals() must run in main() before any thread
// starts, so every thread inherits the mask; the main thread then waits in WaitForSignal().
#ifndef ALLOCATION_RELAY_SERVICE_H_
#define ALLOCATION_RELAY_SERVICE_H_

#include <string>

namespace allocation_relay {

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
