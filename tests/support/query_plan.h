// Helpers for the tests that check the query plans the store reports (SQLite's EXPLAIN QUERY
// PLAN, one step per line): whether a plan names an index, and a plan as one line for a failure
// message.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_QUERY_PLAN_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_QUERY_PLAN_H_

#include <string>
#include <vector>

namespace allocation_relay::testing {

inline bool PlanUses(const std::vector<std::string>& plan, const std::string& index) {
  for (const std::string& step : plan) {
    if (step.find(index) != std::string::npos) return true;
  }
  return false;
}

inline std::string Join(const std::vector<std::string>& plan) {
  std::string s;
  for (const auto& p : plan) s += p + "; ";
  return s;
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_QUERY_PLAN_H_
