// RetrySchedule: when to try a failed delivery again (SPEC section 4).
//
// Delay n (0-based) after the n+1-th failed attempt is schedule[n] with +-20 % jitter; on a 429
// or 503 with Retry-After the delay is at least that long, capped at the schedule's longest delay.
// After the last delay the delivery is dead. Immutable; thread-safe.
#ifndef ALLOCATION_RELAY_DAEMON_RETRY_SCHEDULE_H_
#define ALLOCATION_RELAY_DAEMON_RETRY_SCHEDULE_H_

#include <chrono>
#include <optional>
#include <vector>

namespace allocation_relay {

class RetrySchedule {
 public:
  explicit RetrySchedule(std::vector<std::chrono::milliseconds> delays, double jitter = 0.2)
      : delays_(std::move(delays)), jitter_(jitter) {}

  // The wait before the next attempt after `failed_attempts` failures (>= 1), or nullopt when
  // the schedule is used up. `unit_random` is a uniform draw from [0, 1) (a seam for tests).
  std::optional<std::chrono::milliseconds> Delay(
      int failed_attempts, double unit_random,
      std::optional<std::chrono::milliseconds> retry_after = std::nullopt) const;

 private:
  std::vector<std::chrono::milliseconds> delays_;
  double jitter_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_RETRY_SCHEDULE_H_
