// Several processes on one PostgreSQL database (SPEC section 10): two APIs and three dispatchers
// under load, dispatchers killed with SIGKILL and started again, the same requests confirmed
// through both APIs at once; and a restart of the PostgreSQL server in the middle of a load.
// PostgreSQL only (suite names end in `Postgresql`: docs/testing.md).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "support/api_process.h"
#include "support/process.h"
#include "support/receiver.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::Process;
using testing::QueryOne;
using testing::QueryRows;
using testing::Receiver;
using testing::TempDir;

const std::string kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
#ifdef ALLOCATION_RELAY_SANITIZED
const std::string kTimeout = "3s";  // a sanitized dispatcher is slow to read an answer
#else
const std::string kTimeout = "1s";
#endif

// A webhook in Standard Webhooks format (JSON bodies: no form-size limit at the receiver) on
// path /w<id> of `receiver`.
std::string Hook(const Receiver& receiver, int warehouse, const std::string& more = "") {
  return "{url: '" + receiver.Url("/w" + std::to_string(warehouse)) + "', secret: '" + kSecret +
         "', signature: standard-webhooks, timeout: " + kTimeout + more + "}";
}

// Every event received in a call answered 2xx, per warehouse (from the path), in arrival order,
// as outbox event ids. An event names its request, action and status (its `id` is the
// request's, as in Centra's): a request has at most one event of each.
std::map<int, std::vector<std::int64_t>> ReceivedByWarehouse(Receiver& receiver,
                                                             const StoreOptions& db) {
  std::map<std::string, std::int64_t> event_ids;
  for (const auto& row :
       QueryRows(db, "SELECT request_id, action, status, id FROM outbox_events")) {
    event_ids[row[0] + " " + row[1] + " " + row[2]] = std::stoll(row[3]);
  }
  std::map<int, std::vector<std::int64_t>> out;
  for (const Receiver::Call& c : receiver.Calls()) {
    if (c.status / 100 != 2) continue;
    const int warehouse = std::stoi(c.path.substr(2));
    const json doc = json::parse(c.body);  // named: a temporary's element would dangle
    for (const auto& e : doc["events"]) {
      const std::string key = std::to_string(e["id"].get<std::int64_t>()) + " " +
                              e["action"].get<std::string>() + " " +
                              e["data"]["status"].get<std::string>();
      auto it = event_ids.find(key);
      out[warehouse].push_back(it == event_ids.end() ? -1 : it->second);
    }
  }
  return out;
}

// An HTTP client of its own (httplib's client is not for several threads).
class Client {
 public:
  explicit Client(int port) : client_("127.0.0.1", port) {
    client_.set_connection_timeout(5s);
    client_.set_read_timeout(30s);
  }
  // Status and JSON body (null when there is no JSON answer).
  std::pair<int, json> Send(const std::string& method, const std::string& path,
                            const std::string& body) {
    httplib::Headers headers{{"API-Authorization", "oms-token"}};
    httplib::Result r = method == "PUT" ? client_.Put(path, headers, body, "application/json")
                                        : client_.Post(path, headers, body, "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

 private:
  httplib::Client client_;
};

std::string AllocationBody(std::int64_t number, const std::string& groups) {
  return R"({"order":{"id":"a)" + std::to_string(number) + R"(","number":)" +
         std::to_string(number) +
         R"(},"lines":[{"lineId":1,"quantity":1,"stockItemId":3}],"warehouses":)" + groups + "}";
}

std::string ConfirmBody(std::int64_t request_id) {
  return R"({"id":)" + std::to_string(request_id) + R"(,"status":"confirmed"})";
}

class ScaleOutPostgresql : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::TestOnPostgresql()) << "registered for the PostgreSQL run only";
  }
  std::unique_ptr<Process> StartDispatcher(const ApiProcess& api) {
    auto d = std::make_unique<Process>(
        std::vector<std::string>{DISPATCHER_BINARY, "--config", api.ConfigPath()},
        api.dir().path());
    EXPECT_TRUE(testing::WaitFor(
        [&] { return d->Stderr().find("dispatcher ready") != std::string::npos; }, 15s))
        << d->Stderr();
    return d;
  }
};

// Two APIs and three dispatchers on one database: thousands of allocations created through
// both APIs; the same request confirmed through both at the same instant 1,000 times; a
// dispatcher killed with SIGKILL (and started again) three times meanwhile. Afterwards every
// event was received at least once, each strict-order warehouse received its events' first
// copies in order, no request is left `allocated`, no request timed out twice; duplicates are
// counted and printed.
TEST_F(ScaleOutPostgresql, TwoApisThreeDispatchersKilledUnderLoad) {
  Receiver receiver;
  ApiProcessOptions o;
  // 3, 4 and 9 in strict order (max_in_flight 1); 7 four calls at once. 9 (Quick) times out
  // after 1 s, so expiry moves flows on under three dispatchers.
  o.webhooks = {{3, Hook(receiver, 3, ", max_events_per_call: 5")},
                {4, Hook(receiver, 4, ", max_events_per_call: 1")},
                {7, Hook(receiver, 7, ", max_events_per_call: 3, max_in_flight: 4")},
                {9, Hook(receiver, 9, ", max_events_per_call: 2")}};
  // Retries for ~40 s: on a loaded machine the 500 failing calls below can take many seconds to
  // get through, and a delivery that ran out of retries would be dead (correctly, but then the
  // test could not check that everything arrived).
  std::string retries = "100ms, 200ms, 400ms, 800ms";
  for (int i = 0; i < 36; ++i) retries += ", 1s";
  o.dispatcher =
      "{listen: '127.0.0.1:0', allow_private_networks: true, concurrency: 16, "
      "retry_schedule: [" +
      retries + "]}";
  ApiProcess api1(o);
  ApiProcessOptions o2 = api1.options();
  o2.store = api1.store_options();
  ApiProcess api2(o2);
  std::vector<std::unique_ptr<Process>> dispatchers;
  for (int i = 0; i < 3; ++i) dispatchers.push_back(StartDispatcher(api1));
  // 500 calls fail at first (a warehouse having a bad minute): retries across dispatchers.
  std::vector<int> script(500, 503);
  receiver.Script(script);
  receiver.Delay(5ms, 1000000);  // every call takes a while: calls are in flight at each kill

#ifdef ALLOCATION_RELAY_SANITIZED
  // Under a sanitizer every process runs several times slower: a lighter load in the same time.
  constexpr int kAllocations = 900;
  constexpr int kRaces = 300;
#else
  constexpr int kAllocations = 3000;
  constexpr int kRaces = 1000;
#endif
  std::atomic<int> created{0}, double_wins{0}, no_wins{0}, errors{0};
  std::atomic<bool> load_done{false};
  // Creates allocations through alternating APIs; every third one of the first 3 * kRaces has
  // its warehouse-3 request confirmed by two threads, one per API, released together.
  auto worker = [&](int thread, int threads) {
    Client c1(api1.port()), c2(api2.port());
    for (int n = thread; n < kAllocations; n += threads) {
      const std::string groups = n % 3 == 0 ? "[[3,4],[7]]" : n % 3 == 1 ? "[[9],[3]]" : "[[4,7]]";
      auto [status, answer] =
          (n % 2 ? c1 : c2).Send("POST", "/allocations", AllocationBody(1000 + n, groups));
      if (status != 200 || answer["status"] != "ok") {
        ++errors;
        continue;
      }
      ++created;
      if (n % 3 != 0 || n / 3 >= kRaces) continue;
      const std::int64_t request = answer["allocation"]["allocation_requests"][0]["id"];
      std::barrier sync(2);
      std::atomic<int> wins{0};
      auto confirm = [&](Client& c) {
        sync.arrive_and_wait();
        auto [s, a] = c.Send("PUT", "/allocation-request", ConfirmBody(request));
        if (s == 200 && a.is_object() && a.value("success", false)) ++wins;
      };
      std::thread other([&] {
        Client own(api2.port());
        confirm(own);
      });
      confirm(c1);
      other.join();
      if (wins == 0) ++no_wins;
      if (wins > 1) ++double_wins;
    }
  };
  std::vector<std::thread> load;
  for (int t = 0; t < 6; ++t) load.emplace_back(worker, t, 6);
  // Meanwhile: SIGKILL a dispatcher holding warehouse leases (owner "host:pid:random") and
  // start it again, three times.
  const StoreOptions& db = api1.store_options();
  int kills_of_a_holder = 0;
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(1500ms);
    // The live dispatcher holding the most leases (after a kill, the others take the dead
    // one's warehouses over once its leases run out: wait for that, up to 10 s).
    std::size_t victim = 0;
    int most = 0;
    testing::WaitFor(
        [&] {
          std::vector<int> held(dispatchers.size(), 0);
          for (const auto& row : QueryRows(db, "SELECT owner FROM warehouse_leases")) {
            for (std::size_t i = 0; i < dispatchers.size(); ++i) {
              held[i] += row[0].find(":" + std::to_string(dispatchers[i]->pid()) + ":") !=
                         std::string::npos;
            }
          }
          victim =
              static_cast<std::size_t>(std::max_element(held.begin(), held.end()) - held.begin());
          most = held[victim];
          return most > 0;
        },
        10s);
    kills_of_a_holder += most > 0;
    dispatchers[victim]->Signal(SIGKILL);
    dispatchers[victim]->Wait(5s);
    dispatchers[victim] = StartDispatcher(api1);
  }
  for (std::thread& t : load) t.join();
  load_done = true;
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(created.load(), kAllocations);
  EXPECT_EQ(double_wins.load(), 0) << "a request confirmed twice";
  EXPECT_EQ(no_wins.load(), 0) << "a race nobody won";

  EXPECT_GT(kills_of_a_holder, 0);
  // Everything sent: no event left outside a delivery, no delivery pending (a killed
  // dispatcher's warehouses are taken over within 2 * timeout + 5 s).
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return QueryOne(db,
                        "SELECT (SELECT count(*) FROM outbox_events WHERE delivery_id IS NULL) + "
                        "(SELECT count(*) FROM deliveries WHERE state <> 'succeeded')") == "0";
      },
      90s))
      << QueryOne(db, "SELECT count(*) FROM outbox_events WHERE delivery_id IS NULL")
      << " unbatched; not succeeded (id, warehouse, state, attempts, next attempt, lease owner, "
         "lease until, now): "
      <<
      [&] {
        std::string out;
        for (const auto& row :
             QueryRows(db,
                       "SELECT id, warehouse_id, state, attempt_count, next_attempt_at, "
                       "coalesce(lease_owner, '-'), coalesce(lease_until, 0), "
                       "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint FROM deliveries "
                       "WHERE state <> 'succeeded' ORDER BY id LIMIT 10")) {
          for (const std::string& v : row) out += v + " ";
          out += "; ";
        }
        for (const auto& row : QueryRows(db, "SELECT owner, seen_until FROM dispatchers")) {
          out += "dispatcher " + row[0] + " until " + row[1] + "; ";
        }
        for (const auto& row :
             QueryRows(db, "SELECT warehouse_id, owner, lease_until FROM warehouse_leases")) {
          out += "lease " + row[0] + " " + row[1] + " " + row[2] + "; ";
        }
        return out;
      }()
      << "\n"
      << dispatchers[0]->Stderr() << dispatchers[1]->Stderr() << dispatchers[2]->Stderr();

  std::map<int, std::vector<std::int64_t>> received = ReceivedByWarehouse(receiver, db);
  std::size_t total = 0, unique = 0;
  for (const auto& row : QueryRows(db, "SELECT warehouse_id, id FROM outbox_events ORDER BY id")) {
    const int warehouse = std::stoi(row[0]);
    const std::int64_t id = std::stoll(row[1]);
    const auto& got = received[warehouse];
    EXPECT_NE(std::find(got.begin(), got.end(), id), got.end())
        << "event " << id << " of warehouse " << warehouse << " never received";
  }
  for (const auto& [warehouse, ids] : received) {
    total += ids.size();
    std::set<std::int64_t> seen;
    std::vector<std::int64_t> first;  // first copies, in arrival order
    for (std::int64_t id : ids) {
      if (seen.insert(id).second) first.push_back(id);
    }
    unique += seen.size();
    if (warehouse != 7) {
      EXPECT_TRUE(std::is_sorted(first.begin(), first.end()))
          << "warehouse " << warehouse << " received its events out of order";
    }
  }
  std::cout << "[ scale-out ] " << created << " allocations, " << kRaces << " confirm races, "
            << total << " events received, " << unique << " distinct, " << total - unique
            << " duplicates (after 3 SIGKILLs, " << kills_of_a_holder
            << " of a dispatcher holding leases)\n";
  EXPECT_EQ(QueryOne(db, "SELECT count(*) FROM allocation_requests WHERE status = 'allocated'"),
            "0");
  EXPECT_EQ(QueryOne(db,
                     "SELECT count(*) FROM (SELECT request_id FROM outbox_events WHERE status = "
                     "'timed-out' GROUP BY request_id HAVING count(*) > 1) twice"),
            "0");
  EXPECT_EQ(QueryOne(db,
                     "SELECT count(*) FROM (SELECT allocation_id FROM allocation_requests WHERE "
                     "status = 'confirmed' GROUP BY allocation_id HAVING count(*) > 1) twice"),
            "0");
  for (auto& d : dispatchers) {
    d->Signal(SIGTERM);
    EXPECT_EQ(d->Wait(20s), 0) << d->Stderr();
  }
}

// The PostgreSQL server restarted (pg_ctl restart -m fast: every connection dropped) while
// clients create and confirm allocations and a dispatcher delivers them. Both services recover
// by themselves; every answer "ok" given is kept, and every event is delivered. The test runs
// its own cluster: the suite's shared one must not go away under other tests.
TEST_F(ScaleOutPostgresql, ServerRestartMidLoadIsRecoveredAndNothingIsLost) {
  TempDir dir;
  // The cluster's owner (postgres, when the tests run as root) must reach its directory.
  std::filesystem::permissions(
      dir.path(),
      std::filesystem::perms::group_read | std::filesystem::perms::group_exec |
          std::filesystem::perms::others_read | std::filesystem::perms::others_exec,
      std::filesystem::perm_options::add);
  const std::string cluster = dir.File("cluster");
  auto started =
      testing::RunCommand({"/bin/bash", PG_CLUSTER_SCRIPT, "start", cluster}, dir.path(), 120s);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  struct StopCluster {
    std::string dir, cluster;
    ~StopCluster() {
      testing::RunCommand({"/bin/bash", PG_CLUSTER_SCRIPT, "stop", cluster}, dir, 60s);
    }
  } stop_cluster{dir.path(), cluster};
  std::ifstream url_file(cluster + "/url");
  std::string url;
  std::getline(url_file, url);
  StoreOptions db;
  db.backend = StoreBackendKind::kPostgresql;
  db.url = url;

  Receiver receiver;
  ApiProcessOptions o;
  o.store = db;
  o.webhooks = {{3, Hook(receiver, 3, ", max_events_per_call: 10")}};
  ApiProcess api(o);
  std::unique_ptr<Process> dispatcher = StartDispatcher(api);

  std::mutex mu;
  std::vector<std::int64_t> created, confirmed;  // orders whose answer was "ok"
  std::atomic<int> refused{0};                   // answers other than ok (503, no connection)
  std::string first_refusal;
  std::atomic<bool> stop{false};
  auto worker = [&](int thread) {
    Client c(api.port());
    for (std::int64_t n = 100000 * (thread + 1); !stop; ++n) {
      auto [status, answer] = c.Send("POST", "/allocations", AllocationBody(n, "[[3,4]]"));
      if (status != 200 || answer["status"] != "ok") {
        ++refused;
        std::this_thread::sleep_for(20ms);
        continue;
      }
      {
        std::lock_guard lock(mu);
        created.push_back(n);
      }
      const std::int64_t request = answer["allocation"]["allocation_requests"][0]["id"];
      auto [s, a] = c.Send("PUT", "/allocation-request", ConfirmBody(request));
      if (s == 200 && a.is_object() && a.value("success", false)) {
        std::lock_guard lock(mu);
        confirmed.push_back(n);
      } else {
        ++refused;
        std::lock_guard lock(mu);
        if (first_refusal.empty()) first_refusal = std::to_string(s) + " " + a.dump();
      }
    }
  };
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) load.emplace_back(worker, t);
  std::this_thread::sleep_for(1500ms);
  auto restarted =
      testing::RunCommand({"/bin/bash", PG_CLUSTER_SCRIPT, "restart", cluster}, dir.path(), 120s);
  EXPECT_EQ(restarted.exit_code, 0) << restarted.err;
  std::this_thread::sleep_for(2500ms);
  stop = true;
  for (std::thread& t : load) t.join();

  EXPECT_TRUE(dispatcher->Running()) << dispatcher->Stderr();
  EXPECT_TRUE(api.process().Running());
  EXPECT_EQ(api.Get("/health").status, 200);
  std::cout << "[ restart ] " << created.size() << " allocations and " << confirmed.size()
            << " confirms answered ok, " << refused
            << " answers refused meanwhile (the first: " << first_refusal << ")\n";
  ASSERT_GT(created.size(), 0u);
  for (std::int64_t n : created) {
    json got = json::parse(api.Get("/allocations/" + std::to_string(n)).body);
    ASSERT_EQ(got["status"], "ok") << "order " << n << " answered ok, then lost";
    if (std::find(confirmed.begin(), confirmed.end(), n) != confirmed.end()) {
      EXPECT_EQ(got["allocation"]["state"], "confirmed") << "order " << n;
    }
  }
  // Every event delivered, after the dispatcher reconnected by itself.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return QueryOne(db,
                        "SELECT (SELECT count(*) FROM outbox_events WHERE delivery_id IS NULL AND "
                        "warehouse_id = 3) + "
                        "(SELECT count(*) FROM deliveries WHERE state <> 'succeeded')") == "0";
      },
      60s))
      << QueryOne(db, "SELECT count(*) FROM outbox_events WHERE delivery_id IS NULL")
      << " unbatched; not succeeded: "
      << QueryOne(db,
                  "SELECT string_agg(id || ':' || state || ':' || attempt_count || ':' || "
                  "coalesce(lease_owner, '-'), ' ') FROM deliveries WHERE state <> 'succeeded'")
      << "; leases: "
      << QueryOne(db, "SELECT string_agg(warehouse_id || ':' || owner, ' ') FROM warehouse_leases")
      << "\n"
      << dispatcher->Stderr();
  std::map<int, std::vector<std::int64_t>> received = ReceivedByWarehouse(receiver, db);
  std::set<std::int64_t> got(received[3].begin(), received[3].end());
  int missing = 0;
  for (const auto& row : QueryRows(db,
                                   "SELECT e.id, e.request_id, e.action, e.status, d.uid, d.state "
                                   "FROM outbox_events e LEFT JOIN deliveries d ON d.id = "
                                   "e.delivery_id WHERE e.warehouse_id = 3")) {
    if (!got.contains(std::stoll(row[0])) && ++missing < 5) {
      ADD_FAILURE() << "event " << row[0] << " (request " << row[1] << " " << row[2] << " "
                    << row[3] << ", delivery " << row[4] << " " << row[5] << ") never received";
    }
  }
  EXPECT_EQ(missing, 0);

  dispatcher->Signal(SIGTERM);
  EXPECT_EQ(dispatcher->Wait(20s), 0) << dispatcher->Stderr();
}

}  // namespace
}  // namespace allocation_relay
