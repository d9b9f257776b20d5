#include "allocation_relay/clock.h"

namespace allocation_relay {

TimePoint SystemClock::Now() const {
  return std::chrono::time_point_cast<Micros>(std::chrono::system_clock::now());
}

}  // namespace allocation_relay
