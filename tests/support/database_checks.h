// The services' database seen from outside, as a third process would, on either backend
// (support/test_database.h's raw SQL, one connection per call): reading numbers, the consistency
// every prune must leave, the rows per table and the counts `allocation-dispatcherd prune`
// prints. For the retention tests. SQL here is plain SELECT that both dialects read alike.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_DATABASE_CHECKS_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_DATABASE_CHECKS_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "allocation_relay/store.h"
#include "support/test_database.h"

namespace allocation_relay::testing {

inline std::int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first column of the first row as a number; 0 when there is no row or it is NULL (the
// max() of an empty table).
inline std::int64_t QueryInt(const StoreOptions& options, const std::string& sql) {
  auto rows = QueryRows(options, sql);
  if (rows.empty() || rows[0].empty() || rows[0][0] == "NULL") return 0;
  return std::stoll(rows[0][0]);
}

// The database after any prune, finished or killed: nothing broken, nothing orphaned. On SQLite
// first PRAGMA integrity_check and foreign_key_check (SQLite does not enforce the schema's
// REFERENCES unless told to, so the check is the guard there). PostgreSQL has no such pragmas and
// enforces its foreign keys itself; the orphan checks below, the same SQL on both, stand for them
// there (and cover what no foreign key says: an allocation left without its requests).
inline void ExpectConsistent(const StoreOptions& options) {
  if (options.backend == StoreBackendKind::kSqlite) {
    EXPECT_EQ(QueryRows(options, "PRAGMA integrity_check"),
              (std::vector<std::vector<std::string>>{{"ok"}}));
    auto fk = QueryRows(options, "PRAGMA foreign_key_check");
    EXPECT_TRUE(fk.empty()) << fk.size() << " foreign key violations, first in table " << fk[0][0];
  }
  auto count = [&](const std::string& sql) { return QueryInt(options, sql); };
  EXPECT_EQ(count("SELECT count(*) FROM allocation_requests r WHERE NOT EXISTS "
                  "(SELECT 1 FROM allocations a WHERE a.id = r.allocation_id)"),
            0)
      << "requests without their allocation";
  EXPECT_EQ(count("SELECT count(*) FROM outbox_events e WHERE NOT EXISTS "
                  "(SELECT 1 FROM allocation_requests r WHERE r.id = e.request_id)"),
            0)
      << "events without their request";
  EXPECT_EQ(count("SELECT count(*) FROM allocations a WHERE NOT EXISTS "
                  "(SELECT 1 FROM allocation_requests r WHERE r.allocation_id = a.id)"),
            0)
      << "allocations left without their requests";
  EXPECT_EQ(count("SELECT count(*) FROM outbox_events e WHERE e.delivery_id IS NOT NULL AND "
                  "NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = e.delivery_id)"),
            0)
      << "events in a delivery that is gone";
  EXPECT_EQ(count("SELECT count(*) FROM delivery_attempts t WHERE NOT EXISTS "
                  "(SELECT 1 FROM deliveries d WHERE d.id = t.delivery_id)"),
            0)
      << "attempts of a delivery that is gone";
}

// Rows per table, to compare before and after.
inline std::map<std::string, std::int64_t> TableCounts(const StoreOptions& options) {
  std::map<std::string, std::int64_t> out;
  for (const char* t :
       {"allocations", "allocation_requests", "outbox_events", "deliveries", "delivery_attempts"}) {
    out[t] = QueryInt(options, std::string("SELECT count(*) FROM ") + t);
  }
  return out;
}

// The counts `prune` printed, one "<kind> <n>" line per kind.
inline std::map<std::string, std::int64_t> ParseCounts(const std::string& out) {
  std::map<std::string, std::int64_t> counts;
  std::regex line(R"((allocations|requests|events|deliveries|attempts) (\d+))");
  std::istringstream in(out);
  std::string l;
  std::smatch m;
  while (std::getline(in, l)) {
    if (std::regex_match(l, m, line)) counts[m[1]] = std::stoll(m[2]);
  }
  return counts;
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_DATABASE_CHECKS_H_
