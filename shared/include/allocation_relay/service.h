// Process plumbing shared by both binaries: logging set-up and signal handling.
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

// One line per event to stderr ("<level> <message>"; journald adds the time). `level` is one of
// trace, debug, info, warn, error; returns false (and changes nothing) for anything else.
bool ConfigureLogging(const std::string& program, const std::string& level);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SERVICE_H_
