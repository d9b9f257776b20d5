// Clock: the one source of "now" for expiry, retries and recorded dates.
//
// Every component takes a `const Clock&` instead of reading the system clock, so tests drive
// expiry and retry logic with a ManualClock and never sleep. Implementations are thread-safe.
#ifndef ALLOCATION_RELAY_CLOCK_H_
#define ALLOCATION_RELAY_CLOCK_H_

#include <atomic>
#include <chrono>

namespace allocation_relay {

// Wall-clock instants are kept with microsecond precision: Centra's webhook dates carry
// microseconds, and the store keeps them as integer microseconds since the Unix epoch.
using Micros = std::chrono::microseconds;
using TimePoint = std::chrono::sys_time<Micros>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// The real wall clock.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override;
};

// A clock that only moves when told to. Safe to read and set from any thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start.time_since_epoch().count()) {}
  TimePoint Now() const override { return TimePoint(Micros(now_.load())); }
  void Set(TimePoint t) { now_.store(t.time_since_epoch().count()); }
  void Advance(Micros d) { now_.fetch_add(d.count()); }

 private:
  std::atomic<Micros::rep> now_;
};

// Microseconds since the Unix epoch, the store's representation of an instant.
inline std::int64_t ToUnixMicros(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint FromUnixMicros(std::int64_t us) { return TimePoint(Micros(us)); }

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_CLOCK_H_
