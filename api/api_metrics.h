// ApiMetrics: HTTP request counters and a latency histogram for GET /metrics.
// Thread-safe: Record() is called from every worker thread.
#ifndef ALLOCATION_RELAY_API_API_METRICS_H_
#define ALLOCATION_RELAY_API_API_METRICS_H_

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "allocation_relay/domain.h"
#include "allocation_relay/store.h"
#include "allocation_relay/thread_annotations.h"

namespace allocation_relay {

class ApiMetrics {
 public:
  // Counts one answered HTTP request to `endpoint` with status `code` taking `seconds`.
  void Record(const std::string& endpoint, int code, double seconds);

  // Prometheus text format. `database_up` is what /health would say; the database gauges are
  // left out when the counts could not be read, the group commit's counters (`writes`) when
  // not given.
  std::string Render(
      bool database_up,
      const std::optional<std::vector<std::pair<RequestStatus, std::int64_t>>>& requests,
      const std::optional<std::vector<std::pair<AllocationState, std::int64_t>>>& allocations,
      const std::optional<WriteGroupStats>& writes = std::nullopt,
      const std::optional<std::vector<std::pair<CheckStatus, std::int64_t>>>& checks =
          std::nullopt) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  mutable Mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_ GUARDED_BY(mu_);
  std::array<std::uint64_t, kBuckets.size() + 1> bucket_counts_ GUARDED_BY(mu_){};
  double latency_sum_ GUARDED_BY(mu_) = 0;
  std::uint64_t latency_count_ GUARDED_BY(mu_) = 0;
};

// `value` as a Prometheus label value (between its quotes): backslash, double quote and line
// feed escaped.
std::string PrometheusLabelValue(std::string_view value);

// The counter allocation_relay_rate_limited_total{key="<name>"}: the calls refused with 429 by
// the key's rate limit (RateLimiter::Refusals()), in Prometheus text format.
std::string RenderRateLimited(const std::vector<std::pair<std::string, std::uint64_t>>& refusals);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_API_METRICS_H_
