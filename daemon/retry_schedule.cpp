#include "retry_schedule.h"

#include <algorithm>
#include <cmath>

namespace allocation_relay {

std::optional<std::chrono::milliseconds> RetrySchedule::Delay(
    int failed_attempts, double unit_random,
    std::optional<std::chrono::milliseconds> retry_after) const {
  if (failed_attempts < 1 || failed_attempts > static_cast<int>(delays_.size())) {
    return std::nullopt;
  }
  auto base = delays_[static_cast<std::size_t>(failed_attempts - 1)];
  double factor = 1.0 + jitter_ * (2.0 * unit_random - 1.0);
  auto delay = std::chrono::milliseconds(
      static_cast<std::int64_t>(std::llround(static_cast<double>(base.count()) * factor)));
  if (retry_after) {
    auto longest = *std::max_element(delays_.begin(), delays_.end());
    delay = std::max(delay, std::min(*retry_after, longest));
  }
  return delay;
}

}  // namespace allocation_relay
