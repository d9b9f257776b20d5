#include "rate_limiter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace allocation_relay {

TokenBucket::TokenBucket(KeyRate rate, TimePoint now)
    : rate_(rate), tokens_(static_cast<double>(rate.burst)), last_(now) {}

TokenBucket::Outcome TokenBucket::Take(TimePoint now) {
  const double burst = static_cast<double>(rate_.burst);
  MutexLock lock(mu_);
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst, tokens_ + elapsed * rate_.per_second);
  }
  // A clock set back refills nothing, and the refill goes on from the new time.
  last_ = now;
  if (tokens_ >= burst) limited_ = false;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return {true, Micros(0), false};
  }
  Outcome refused;
  const double seconds = (1 - tokens_) / rate_.per_second;
  refused.wait =
      Micros(std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(seconds * 1e6))));
  refused.first_refusal = !limited_;
  limited_ = true;
  return refused;
}

std::int64_t RetryAfterSeconds(Micros wait) {
  const std::int64_t per_second = Micros(std::chrono::seconds(1)).count();
  return std::max<std::int64_t>(1, (wait.count() + per_second - 1) / per_second);
}

ApiResponse TooManyRequests(std::int64_t retry_after_seconds) {
  ApiResponse res = ErrorAnswer(429, "Too many requests");
  res.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
  return res;
}

RateLimiter::RateLimiter(const std::vector<ApiKey>& keys, TimePoint now,
                         const RateLimiter* previous) {
  for (const ApiKey& key : keys) {
    if (!key.rate) continue;
    Entry entry;
    if (previous) {
      if (auto it = previous->entries_.find(key.name); it != previous->entries_.end()) {
        entry.refused = it->second.refused;
        if (it->second.bucket->rate() == *key.rate) entry.bucket = it->second.bucket;
      }
    }
    if (!entry.bucket) entry.bucket = std::make_shared<TokenBucket>(*key.rate, now);
    if (!entry.refused) entry.refused = std::make_shared<std::atomic<std::uint64_t>>(0);
    entries_.emplace(key.name, std::move(entry));
  }
}

std::optional<ApiResponse> RateLimiter::Admit(const ApiKey& key, TimePoint now) const {
  if (!key.rate) return std::nullopt;
  auto it = entries_.find(key.name);
  if (it == entries_.end()) return std::nullopt;  // not this limiter's key
  TokenBucket::Outcome outcome = it->second.bucket->Take(now);
  if (outcome.taken) return std::nullopt;
  it->second.refused->fetch_add(1, std::memory_order_relaxed);
  const std::int64_t retry_after = RetryAfterSeconds(outcome.wait);
  if (outcome.first_refusal) {
    spdlog::warn(
        "key {} is over its rate limit ({} a second, burst {}): answering 429 until its calls "
        "slow down (logged once a burst)",
        key.name, key.rate->per_second, key.rate->burst);
  }
  return TooManyRequests(retry_after);
}

std::vector<std::pair<std::string, std::uint64_t>> RateLimiter::Refusals() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) {
    out.emplace_back(name, entry.refused->load(std::memory_order_relaxed));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace allocation_relay
