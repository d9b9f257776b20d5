// The services' SQLite file seen from outside, as a third process would: a plain connection
// for aging and seeding rows and reading what is there, the consistency every prune must leave,
// and the counts `allocation-dispatcherd prune` prints. For the retention tests.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_DATABASE_FILE_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_DATABASE_FILE_H_

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace allocation_relay::testing {

inline std::int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A plain SQLite connection to the services' file, as a third process would have: for aging and
// seeding rows and for checking what is in the file.
class Sql {
 public:
  explicit Sql(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      throw std::runtime_error("cannot open " + path);
    }
    sqlite3_busy_timeout(db_, 20000);
  }
  ~Sql() { sqlite3_close_v2(db_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  sqlite3* get() { return db_; }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(sql + ": " + message);
    }
  }
  // Every row, each column as text ("NULL" for NULL).
  std::vector<std::vector<std::string>> Rows(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::vector<std::string>> rows;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const unsigned char* t = sqlite3_column_text(s, i);
        row.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    return rows;
  }
  std::int64_t Int(const std::string& sql) {
    auto rows = Rows(sql);
    if (rows.empty() || rows[0].empty() || rows[0][0] == "NULL") return 0;
    return std::stoll(rows[0][0]);
  }

 private:
  sqlite3* db_ = nullptr;
};

// The database after any prune, finished or killed: nothing broken, nothing orphaned.
inline void ExpectConsistent(const std::string& path) {
  Sql db(path);
  EXPECT_EQ(db.Rows("PRAGMA integrity_check"), (std::vector<std::vector<std::string>>{{"ok"}}));
  auto fk = db.Rows("PRAGMA foreign_key_check");
  EXPECT_TRUE(fk.empty()) << fk.size() << " foreign key violations, first in table " << fk[0][0];
  EXPECT_EQ(db.Int("SELECT count(*) FROM allocation_requests r WHERE NOT EXISTS "
                   "(SELECT 1 FROM allocations a WHERE a.id = r.allocation_id)"),
            0)
      << "requests without their allocation";
  EXPECT_EQ(db.Int("SELECT count(*) FROM outbox_events e WHERE NOT EXISTS "
                   "(SELECT 1 FROM allocation_requests r WHERE r.id = e.request_id)"),
            0)
      << "events without their request";
  EXPECT_EQ(db.Int("SELECT count(*) FROM allocations a WHERE NOT EXISTS "
                   "(SELECT 1 FROM allocation_requests r WHERE r.allocation_id = a.id)"),
            0)
      << "allocations left without their requests";
  EXPECT_EQ(db.Int("SELECT count(*) FROM outbox_events e WHERE e.delivery_id IS NOT NULL AND "
                   "NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = e.delivery_id)"),
            0)
      << "events in a delivery that is gone";
  EXPECT_EQ(db.Int("SELECT count(*) FROM delivery_attempts t WHERE NOT EXISTS "
                   "(SELECT 1 FROM deliveries d WHERE d.id = t.delivery_id)"),
            0)
      << "attempts of a delivery that is gone";
}

// Rows per table, to compare before and after.
inline std::map<std::string, std::int64_t> TableCounts(const std::string& path) {
  Sql db(path);
  std::map<std::string, std::int64_t> out;
  for (const char* t :
       {"allocations", "allocation_requests", "outbox_events", "deliveries", "delivery_attempts"}) {
    out[t] = db.Int(std::string("SELECT count(*) FROM ") + t);
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

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_DATABASE_FILE_H_
