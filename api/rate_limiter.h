// Per-key rate limits (SPEC section 13): a token bucket per API key that has a `rate`, per
// process (N API processes behind a balancer allow N times the rate).
//
// TokenBucket: `burst` tokens, refilled continuously at `per_second`; a call takes one.
// Thread-safe: each bucket has its own mutex, so keys never wait for each other.
//
// RateLimiter: the buckets of one configuration's keys, looked up by key name. The table is
// immutable after construction (it lives in the API's configuration snapshot, swapped whole on
// reload); a new limiter takes over the buckets, and the refusal counters, of the previous one's
// keys whose rate did not change. Thread-safe.
#ifndef ALLOCATION_RELAY_API_RATE_LIMITER_H_
#define ALLOCATION_RELAY_API_RATE_LIMITER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/thread_annotations.h"
#include "api_answer.h"

namespace allocation_relay {

class TokenBucket {
 public:
  // Starts full at `now`.
  TokenBucket(KeyRate rate, TimePoint now);

  struct Outcome {
    bool taken = false;
    // When refused: how long until a token is available (> 0).
    Micros wait{0};
    // When refused: true for the first refusal since the bucket was last full, so a burst of
    // refusals is logged once.
    bool first_refusal = false;
  };
  // Refills for the time since the last call (none if `now` went backwards), then takes a
  // token if there is one.
  Outcome Take(TimePoint now) EXCLUDES(mu_);

  const KeyRate& rate() const { return rate_; }

 private:
  const KeyRate rate_;
  Mutex mu_;
  double tokens_ GUARDED_BY(mu_);
  TimePoint last_ GUARDED_BY(mu_);
  bool limited_ GUARDED_BY(mu_) = false;  // refused since the bucket was last full
};

// The Retry-After of a refusal: `wait` in whole seconds, rounded up, at least 1.
std::int64_t RetryAfterSeconds(Micros wait);

// The 429 answer: {"status":"no","errorMessages":["Too many requests"]} with Retry-After.
ApiResponse TooManyRequests(std::int64_t retry_after_seconds);

class RateLimiter {
 public:
  // Buckets for those of `keys` that have a rate, full at `now`; a key of `previous` by the same
  // name and with the same rate keeps its bucket (shared with `previous`, which may still be in
  // use by requests in flight). Refusal counts carry over by name as long as the key has a rate.
  RateLimiter(const std::vector<ApiKey>& keys, TimePoint now,
              const RateLimiter* previous = nullptr);

  // Takes a token of `key`'s bucket at `now`: nullopt when the call may go on (or the key has no
  // rate), else the 429 answer to give. A refusal is counted; the first of a burst is logged.
  std::optional<ApiResponse> Admit(const ApiKey& key, TimePoint now) const;

  // Refusals so far by key name, for /metrics: every key with a rate, sorted by name.
  std::vector<std::pair<std::string, std::uint64_t>> Refusals() const;

 private:
  struct Entry {
    std::shared_ptr<TokenBucket> bucket;
    std::shared_ptr<std::atomic<std::uint64_t>> refused;
  };
  std::unordered_map<std::string, Entry> entries_;  // by key name; immutable
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_RATE_LIMITER_H_
