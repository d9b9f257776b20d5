// ApiService driven in-process through Handle(): a real test database (a SQLite file in a temp
// directory, or PostgreSQL: support/test_database.h), a ManualClock for the requests' dates and
// expiry, no HTTP.
#include "api_service.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/store.h"
#include "support/api_request.h"
#include "support/temp_dir.h"
#include "support/test_database.h"
#include "support/test_keys.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::TestKeysYaml;

// 2024-03-18 08:00:00 UTC, 09:00 in Stockholm (+01:00 until the end of March).
constexpr std::int64_t kStartMicros = 1710748800'000000;

const std::string kUnavailableBody =
    R"({"status":"no","errorMessages":["The database is unavailable; try again later."]})";

// Keys: "oms-token" (every endpoint), "pos3-token" (warehouse endpoints, warehouse 3 only),
// "reader-token" (GET /allocation-requests only). Warehouses 3 Amsterdam, 4 Tokyo (1h),
// 7 Central (2h). The store: `database`, with busy_timeout 200ms on SQLite.
std::string ConfigYaml(StoreOptions database) {
  database.busy_timeout = std::chrono::milliseconds(200);
  return "timezone: Europe/Stockholm\n"
         "store: " +
         testing::StoreYaml(database) +
         "\n"
         "api:\n"
         "  keys:\n" +
         TestKeysYaml() +
         "warehouses:\n"
         "  - {id: 3, name: Amsterdam}\n"
         "  - {id: 4, name: Tokyo}\n"
         "  - {id: 7, name: Central, confirm_timeout: 2h}\n";
}

std::string NewAllocationBody(std::int64_t number, const std::string& groups) {
  return R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" + std::to_string(number) +
         R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"warehouses":)" + groups + "}";
}

// One GET /allocation-requests entry of order 15 as the API renders it.
std::string Entry(int id, const std::string& status, int warehouse, const std::string& name,
                  const std::string& expires, const std::string& created) {
  return R"({"id":)" + std::to_string(id) + R"(,"status":")" + status + R"(","warehouseId":)" +
         std::to_string(warehouse) + R"(,"warehouseName":")" + name + R"(","expirationDate":")" +
         expires +
         R"(","order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":15},)"
         R"("lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"createdAt":")" +
         created + R"("})";
}

const std::string kConfirmed = R"({"success":true,"errorMessages":[]})";

std::string CannotUpdate(const std::string& status) {
  return R"({"success":false,"errorMessages":["You can't update allocation request, which is in )"
         R"(status )" +
         status + R"(."]})";
}

std::string ConfirmBody(int id) {
  return R"({"id":)" + std::to_string(id) + R"(,"status":"confirmed"})";
}

// Runs `sql` on its own connection to `path`, as another process would.
void ExecuteSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

class ApiServiceTest : public ::testing::Test {
 protected:
  ApiServiceTest()
      : clock_(FromUnixMicros(kStartMicros)),
        config_(std::make_shared<const Config>(
            ParseConfig(ConfigYaml(database_.options()), "test.yaml"))),
        // Creates and migrates the file, as the server's start-up does; it also runs ExpireDue.
        store_(Store::Open(StoreOptionsFrom(config_->store))),
        service_(config_, clock_) {}

  ApiResponse Send(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& token = "oms-token") {
    return service_.Handle(testing::ApiCall(method, target, token, body));
  }
  ApiResponse Get(const std::string& target, const std::string& token = "oms-token") {
    return Send("GET", target, "", token);
  }
  ApiResponse Confirm(int id, const std::string& token = "oms-token") {
    return Send("PUT", "/allocation-request", ConfirmBody(id), token);
  }
  void Create(std::int64_t number, const std::string& groups) {
    ApiResponse created = Send("POST", "/allocations", NewAllocationBody(number, groups));
    ASSERT_EQ(created.status, 200);
    ASSERT_TRUE(created.body.starts_with(R"({"status":"ok")")) << created.body;
  }
  ExpiryResult ExpireDue() {
    StoreResult<ExpiryResult> result = store_->ExpireDue(clock_.Now(), config_->Catalog());
    EXPECT_TRUE(result.has_value()) << (result ? "" : result.error().what());
    return result.value_or(ExpiryResult{});
  }
  // SQLite only.
  std::string DatabasePath() const { return dir_.File("relay.db"); }

  testing::TempDir dir_;
  testing::TestDatabase database_{dir_};
  ManualClock clock_;
  std::shared_ptr<const Config> config_;
  std::unique_ptr<Store> store_;
  ApiService service_;
};

TEST_F(ApiServiceTest, IntakeAnswersWithTheAllocationAndTheWarehouseListsItsRequest) {
  ApiResponse created = Send("POST", "/allocations", NewAllocationBody(15, "[[3,4],[7]]"));
  EXPECT_EQ(created.status, 200);
  EXPECT_EQ(created.content_type, "application/json");
  EXPECT_EQ(created.endpoint, "POST /allocations");
  const std::string amsterdam = Entry(1, "allocated", 3, "Amsterdam", "2024-03-18T10:00:00+01:00",
                                      "2024-03-18T09:00:00+01:00");
  const std::string tokyo =
      Entry(2, "allocated", 4, "Tokyo", "2024-03-18T10:00:00+01:00", "2024-03-18T09:00:00+01:00");
  EXPECT_EQ(created.body,
            R"({"status":"ok","allocation":{"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e",)"
            R"("number":15},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],)"
            R"("warehouses":[[3,4],[7]],"state":"open","confirmedWarehouseId":null,)"
            R"("allocation_requests":[)" +
                amsterdam + "," + tokyo + "]}}");

  // Warehouse 3's key sees its own request only.
  ApiResponse listed = Get("/allocation-requests", "pos3-token");
  EXPECT_EQ(listed.status, 200);
  EXPECT_EQ(listed.body, R"({"status":"ok","allocation_requests":[)" + amsterdam + "]}");
  EXPECT_EQ(Get("/allocation-requests").body,
            R"({"status":"ok","allocation_requests":[)" + amsterdam + "," + tokyo + "]}");
}

// GET /orders/<n>/allocation-requests (SPEC section 12): the order's requests, every status by
// default, as GET /allocation-requests writes its entries; Centra's `msg` for an unknown order.
TEST_F(ApiServiceTest, OrderRequestsListEveryRequestOfTheOrderAsTheListDoes) {
  Create(15, "[[3,4],[7]]");  // 1 (3), 2 (4)
  clock_.Advance(5min);
  Create(16, "[[3]]");                     // 3 (3): another order, never in 15's answer
  ASSERT_EQ(Confirm(2).body, kConfirmed);  // 1 outdated
  const std::string amsterdam = Entry(1, "outdated", 3, "Amsterdam", "2024-03-18T10:00:00+01:00",
                                      "2024-03-18T09:00:00+01:00");
  const std::string tokyo =
      Entry(2, "confirmed", 4, "Tokyo", "2024-03-18T10:00:00+01:00", "2024-03-18T09:00:00+01:00");
  ApiResponse all = Get("/orders/15/allocation-requests");
  EXPECT_EQ(all.status, 200);
  EXPECT_EQ(all.content_type, "application/json");
  EXPECT_EQ(all.endpoint, "GET /orders/allocation-requests");
  EXPECT_EQ(all.body, R"({"status":"ok","allocation_requests":[)" + amsterdam + "," + tokyo + "]}");
  EXPECT_EQ(all.body, Get("/allocation-requests?order=15&status=all").body);
  EXPECT_EQ(Get("/orders/15/allocation-requests?status=outdated&warehouse=Amsterdam").body,
            R"({"status":"ok","allocation_requests":[)" + amsterdam + "]}");
  EXPECT_EQ(Get("/orders/15/allocation-requests?status=pending").body,
            R"({"status":"ok","allocation_requests":[]})");
  EXPECT_EQ(Get("/orders/15/allocation-requests", "pos3-token").body,
            R"({"status":"ok","allocation_requests":[)" + amsterdam + "]}");

  ApiResponse unknown = Get("/orders/1095/allocation-requests");
  EXPECT_EQ(unknown.status, 200);
  EXPECT_EQ(unknown.body, R"({"status":"no","msg":"Unknown order id: 1095"})");
  ApiResponse not_allowed = Get("/orders/15/allocation-requests", "reader-token");
  EXPECT_EQ(not_allowed.status, 403);
  EXPECT_EQ(not_allowed.body, R"({"status":"Not Allowed"})");
  EXPECT_EQ(not_allowed.endpoint, "GET /orders/allocation-requests");
}

TEST_F(ApiServiceTest, ConfirmTwiceAnswersWithTheCentraErrorTheSecondTime) {
  Create(15, "[[3,4],[7]]");
  ApiResponse first = Confirm(1);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, kConfirmed);
  ApiResponse second = Confirm(1);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, CannotUpdate("confirmed"));
  EXPECT_EQ(Confirm(2).body, CannotUpdate("outdated"));
  EXPECT_EQ(Confirm(99).body,
            R"({"success":false,"errorMessages":["Allocation request not found"]})");
  ApiResponse allocation = Get("/allocations/15");
  EXPECT_NE(allocation.body.find(R"("state":"confirmed","confirmedWarehouseId":3,)"),
            std::string::npos)
      << allocation.body;
}

// SPEC section 2: a timed-out request can still be confirmed while its allocation is open.
TEST_F(ApiServiceTest, ATimedOutRequestCanBeConfirmedWhileTheAllocationIsOpen) {
  Create(15, "[[3],[4]]");
  clock_.Advance(59min);
  EXPECT_EQ(ExpireDue().timed_out, 0);
  clock_.Advance(1min);  // request 1's expiration date
  ExpiryResult expired = ExpireDue();
  EXPECT_EQ(expired.timed_out, 1);
  EXPECT_EQ(expired.groups_advanced, 1);
  // The flow moved on to Tokyo at the clock's time.
  EXPECT_EQ(Get("/allocation-requests?status=all").body,
            R"({"status":"ok","allocation_requests":[)" +
                Entry(1, "timed-out", 3, "Amsterdam", "2024-03-18T10:00:00+01:00",
                      "2024-03-18T09:00:00+01:00") +
                "," +
                Entry(2, "allocated", 4, "Tokyo", "2024-03-18T11:00:00+01:00",
                      "2024-03-18T10:00:00+01:00") +
                "]}");

  EXPECT_EQ(Confirm(1, "pos3-token").body, kConfirmed);
  ApiResponse allocation = Get("/allocations/15");
  EXPECT_NE(allocation.body.find(R"("state":"confirmed","confirmedWarehouseId":3,)"),
            std::string::npos)
      << allocation.body;
  EXPECT_EQ(Get("/allocation-requests?status=outdated").body,
            R"({"status":"ok","allocation_requests":[)" +
                Entry(2, "outdated", 4, "Tokyo", "2024-03-18T11:00:00+01:00",
                      "2024-03-18T10:00:00+01:00") +
                "]}");
}

TEST_F(ApiServiceTest, ATimedOutRequestOfAnExhaustedAllocationCannotBeConfirmed) {
  Create(15, "[[3]]");
  clock_.Advance(1h);
  EXPECT_EQ(ExpireDue().exhausted, 1);
  EXPECT_EQ(Confirm(1).body, CannotUpdate("outdated"));
  EXPECT_NE(Get("/allocations/15").body.find(R"("state":"exhausted","confirmedWarehouseId":null,)"),
            std::string::npos);
}

TEST_F(ApiServiceTest, MissingOrUnknownTokenIs401AndAnUngrantedEndpointIs403) {
  Create(15, "[[3,4]]");
  for (const char* token : {"", "nope", "OMS-TOKEN"}) {
    ApiResponse answer = Get("/allocation-requests", token);
    EXPECT_EQ(answer.status, 401) << token;
    EXPECT_EQ(answer.body, R"({"status":"Unauthorized"})") << token;
  }
  ApiResponse put = Confirm(1, "reader-token");
  EXPECT_EQ(put.status, 403);
  EXPECT_EQ(put.body, R"({"status":"Not Allowed"})");
  EXPECT_EQ(Send("POST", "/allocations", NewAllocationBody(16, "[[3]]"), "pos3-token").status, 403);
  EXPECT_EQ(Get("/allocations/15", "pos3-token").status, 403);
  // Another warehouse's request does not exist for a scoped key.
  EXPECT_EQ(Confirm(2, "pos3-token").body,
            R"({"success":false,"errorMessages":["Allocation request not found"]})");
  ApiResponse health = Get("/health", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  // Nothing was confirmed by the refused requests.
  EXPECT_EQ(Confirm(1).body, kConfirmed);
}

// The file moved away: the pooled connection still reads the moved file, so /health checks the
// path, answers 503 and closes the connection; until the file is back no new one opens.
TEST_F(ApiServiceTest, DatabaseGoneIs503AndTheConnectionIsReopenedWhenItIsBack) {
  Create(15, "[[3]]");
  std::string allocation = Get("/allocations/15").body;
  std::string moved = DatabasePath() + ".moved";
  ASSERT_EQ(std::rename(DatabasePath().c_str(), moved.c_str()), 0);
  ApiResponse health = Get("/health");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.content_type, "application/json");
  EXPECT_EQ(health.body, kUnavailableBody);
  ApiResponse get = Get("/allocations/15");
  EXPECT_EQ(get.status, 503);
  EXPECT_EQ(get.body, kUnavailableBody);
  EXPECT_EQ(Confirm(1).status, 503);
  ASSERT_EQ(std::rename(moved.c_str(), DatabasePath().c_str()), 0);
  EXPECT_EQ(Get("/health").status, 200);
  ApiResponse back = Get("/allocations/15");
  EXPECT_EQ(back.status, 200);
  EXPECT_EQ(back.body, allocation);
}

// A read that finds a corrupt row answers 503 and closes its connection: with the file then
// moved away, the next request cannot reuse it (which would read the moved file unnoticed).
TEST_F(ApiServiceTest, CorruptRowIs503AndItsConnectionIsClosed) {
  Create(15, "[[3]]");
  std::string allocation = Get("/allocations/15").body;
  ExecuteSql(DatabasePath(),
             "PRAGMA ignore_check_constraints = ON;"
             "UPDATE allocations SET state = 'bogus' WHERE order_number = 15");
  ApiResponse corrupt = Get("/allocations/15");
  EXPECT_EQ(corrupt.status, 503);
  EXPECT_EQ(corrupt.body, kUnavailableBody);
  ExecuteSql(DatabasePath(), "UPDATE allocations SET state = 'open' WHERE order_number = 15");

  std::string moved = DatabasePath() + ".moved";
  ASSERT_EQ(std::rename(DatabasePath().c_str(), moved.c_str()), 0);
  EXPECT_EQ(Get("/allocations/15").status, 503);
  ASSERT_EQ(std::rename(moved.c_str(), DatabasePath().c_str()), 0);
  ApiResponse back = Get("/allocations/15");
  EXPECT_EQ(back.status, 200);
  EXPECT_EQ(back.body, allocation);
}

TEST_F(ApiServiceTest, MetricsEndWithTheConnectionCountersOfTheGivenSource) {
  HttpServer::Counters counters{.open = 2, .accepted = 5, .refused = 1, .timed_out = 3};
  ApiService service(config_, clock_, [&] { return counters; });
  std::ostringstream expected;
  WriteConnectionMetrics(expected, counters);

  ApiRequest request;
  request.method = "GET";
  request.path = "/metrics";
  ApiResponse metrics = service.Handle(request);
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4");
  EXPECT_TRUE(metrics.body.ends_with(expected.str())) << metrics.body;
  EXPECT_NE(metrics.body.find("allocation_relay_database_up 1\n"), std::string::npos);

  // Without a source there are no connection counters.
  EXPECT_EQ(Get("/metrics").body.find("allocation_relay_http_connections"), std::string::npos);

  // The database being gone changes the gauges, not the connection counters. (SQLite: its file
  // moved away; PostgreSQL has no file to move.)
  if (testing::TestOnPostgresql()) return;
  std::string moved = DatabasePath() + ".moved";
  ASSERT_EQ(std::rename(DatabasePath().c_str(), moved.c_str()), 0);
  ApiResponse down = service.Handle(request);
  EXPECT_EQ(down.status, 200);
  EXPECT_NE(down.body.find("allocation_relay_database_up 0\n"), std::string::npos);
  EXPECT_TRUE(down.body.ends_with(expected.str())) << down.body;
  ASSERT_EQ(std::rename(moved.c_str(), DatabasePath().c_str()), 0);
}

}  // namespace
}  // namespace allocation_relay
