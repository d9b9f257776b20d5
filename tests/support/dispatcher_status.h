// What tests and benchmarks read from a running allocation-dispatcherd's status port: its
// address (from the "dispatcher status on" log line, at log_level info) and its succeeded calls
// (from /metrics).
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_DISPATCHER_STATUS_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_DISPATCHER_STATUS_H_

#include "support/process.h"

namespace allocation_relay::testing {

// Succeeded calls so far of `dispatcher`, from its status port's /metrics; -1 if unknown (no
// port logged yet, no answer, no such counter).
long long SucceededCalls(const Process& dispatcher);

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_DISPATCHER_STATUS_H_
