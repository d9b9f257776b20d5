#include "api_metrics.h"

#include <sstream>

namespace allocation_relay {

void ApiMetrics::Record(const std::string& endpoint, int code, double seconds) {
  MutexLock lock(mu_);
  ++requests_[{endpoint, code}];
  std::size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  ++bucket_counts_[i];
  latency_sum_ += seconds;
  ++latency_count_;
}

std::string ApiMetrics::Render(
    bool database_up,
    const std::optional<std::vector<std::pair<RequestStatus, std::int64_t>>>& requests,
    const std::optional<std::vector<std::pair<AllocationState, std::int64_t>>>& allocations,
    const std::optional<WriteGroupStats>& writes,
    const std::optional<std::vector<std::pair<CheckStatus, std::int64_t>>>& checks) const {
  std::ostringstream out;
  out << "# HELP allocation_relay_database_up Whether the database answers at its path (as "
         "/health).\n"
         "# TYPE allocation_relay_database_up gauge\n"
      << "allocation_relay_database_up " << (database_up ? 1 : 0) << "\n";
  if (requests) {
    out << "# HELP allocation_relay_allocation_requests Allocation requests by status.\n"
           "# TYPE allocation_relay_allocation_requests gauge\n";
    for (const auto& [status, n] : *requests) {
      out << "allocation_relay_allocation_requests{status=\"" << ToString(status) << "\"} " << n
          << "\n";
    }
  }
  if (allocations) {
    out << "# HELP allocation_relay_allocations Allocations by state.\n"
           "# TYPE allocation_relay_allocations gauge\n";
    for (const auto& [state, n] : *allocations) {
      out << "allocation_relay_allocations{state=\"" << ToString(state) << "\"} " << n << "\n";
    }
  }
  if (checks) {
    out << "# HELP allocation_relay_checks Checks of check-first warehouses by status (asked, or "
           "its outcome).\n"
           "# TYPE allocation_relay_checks gauge\n";
    for (const auto& [status, n] : *checks) {
      out << "allocation_relay_checks{status=\"" << ToString(status) << "\"} " << n << "\n";
    }
  }
  if (writes) {
    auto counter = [&](const char* name, const char* help, auto value) {
      out << "# HELP allocation_relay_write_" << name << " " << help << "\n"
          << "# TYPE allocation_relay_write_" << name << " counter\n"
          << "allocation_relay_write_" << name << " " << value << "\n";
    };
    counter("commits_total", "Transactions of the group commit (one per batch of writes).",
            writes->commits);
    counter("ops_total", "Writes those transactions held.", writes->writes);
    counter("wait_seconds_total", "Time writes waited for their batch to begin, summed.",
            writes->wait_seconds);
    counter("execute_seconds_total", "Time the group commit spent running writes.",
            writes->execute_seconds);
    counter("commit_seconds_total", "Time the group commit spent in COMMIT (with its fsync).",
            writes->commit_seconds);
    counter("wal_frames_total", "Pages the group commit appended to the write-ahead log.",
            writes->wal_frames);
    counter("checkpoints_total", "Checkpoints of the write-ahead log into the database.",
            writes->checkpoints);
    counter("checkpoint_seconds_total", "Time spent in those checkpoints.",
            writes->checkpoint_seconds);
  }
  MutexLock lock(mu_);
  out << "# HELP allocation_relay_http_requests_total HTTP requests answered, by endpoint and "
         "status code.\n"
         "# TYPE allocation_relay_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out << "allocation_relay_http_requests_total{endpoint=\"" << key.first << "\",code=\""
        << key.second << "\"} " << n << "\n";
  }
  out << "# HELP allocation_relay_http_request_duration_seconds Time to answer HTTP requests.\n"
         "# TYPE allocation_relay_http_request_duration_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += bucket_counts_[i];
    out << "allocation_relay_http_request_duration_seconds_bucket{le=\"" << kBuckets[i] << "\"} "
        << cumulative << "\n";
  }
  cumulative += bucket_counts_[kBuckets.size()];
  out << "allocation_relay_http_request_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << "allocation_relay_http_request_duration_seconds_sum " << latency_sum_ << "\n"
      << "allocation_relay_http_request_duration_seconds_count " << latency_count_ << "\n";
  return out.str();
}

std::string PrometheusLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string RenderRateLimited(const std::vector<std::pair<std::string, std::uint64_t>>& refusals) {
  std::string out =
      "# HELP allocation_relay_rate_limited_total Calls refused with 429 by their key's rate "
      "limit, by key name.\n"
      "# TYPE allocation_relay_rate_limited_total counter\n";
  for (const auto& [name, n] : refusals) {
    out += "allocation_relay_rate_limited_total{key=\"" + PrometheusLabelValue(name) + "\"} " +
           std::to_string(n) + "\n";
  }
  return out;
}

}  // namespace allocation_relay
