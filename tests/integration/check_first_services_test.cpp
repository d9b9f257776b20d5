// "Check first, then allocate" (SPEC section 12) with the dispatcher and several processes:
// timeouts handing a group on and a late confirm rejecting the open check; the check_first
// webhook events through the real dispatcher to real receivers in both signature formats; and
// two APIs on one database taking answers for the same orders at the same instant. Runs on
// SQLite and, as `postgresql.<Suite>.*`, on PostgreSQL. The API alone: check_first_api_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <thread>

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "support/api_process.h"
#include "support/check_first.h"
#include "support/form.h"
#include "support/receiver.h"
#include "support/services_test.h"
#include "support/stores.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::ordered_json;
using testing::ApiProcess;
using testing::ApiProcessOptions;
using testing::CheckAnswerBody;
using ::testing::HasSubstr;
using testing::HttpAnswer;
using testing::Receiver;
using ::testing::StartsWith;
using namespace testing;  // support/check_first.h

// With the dispatcher, which times checks out at their expiry (store 14: 1 s; warehouse 9's
// requests: 1 s).
class CheckFirstTimeouts : public testing::ServicesTest {
 protected:
  void SetUp() override { StartServices(WithStores()); }
};

TEST_F(CheckFirstTimeouts, AnUnansweredCheckTimesOutAndTheGroupMovesOn) {
  api_->CreateAllocation(15, "[[14,3]]");       // then warehouse 3
  api_->CreateAllocation(16, "[[14],[11,4]]");  // then the next group's store
  api_->CreateAllocation(17, "[[14]]");         // then nothing: exhausted
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Requests(*api_, 15) == Strings{"3:allocated"} &&
               Checks(*api_, 16) == Strings{"14:timed-out", "11:asked"} &&
               AllocationOf(*api_, 17)["state"] == "exhausted";
      },
      15s))
      << dispatcher_->Stderr();
  EXPECT_EQ(WithoutDates(api_->Get("/allocations/15").body),
            AllocationAnswer(15, "[[14,3]]", "open", "null",
                             RequestEntry(1, "allocated", 3, "Amsterdam", 15),
                             CheckEntry(14, "timed-out")));
  EXPECT_EQ(WithoutDates(api_->Get("/allocation-requests").body),
            R"({"status":"ok","allocation_requests":[)" +
                RequestEntry(1, "allocated", 3, "Amsterdam", 15) + "]}");
  // Timed out: no decision of it is taken any more.
  EXPECT_EQ(AnswerCheck(*api_, 15, 14, true).body, kFailed);
  EXPECT_EQ(AnswerCheck(*api_, 15, 14, false).body, kFailed);
  EXPECT_EQ(AnswerCheck(*api_, 17, 14, true).body, kFailed);
  EXPECT_EQ(Requests(*api_, 16), Strings{});  // 11 is asked before 4
  EXPECT_EQ(WithoutDates(api_->Get("/allocations/17").body),
            AllocationAnswer(17, "[[14]]", "exhausted", "null", "", CheckEntry(14, "timed-out")));
  EXPECT_THAT(api_->Get("/metrics", "").body,
              HasSubstr("allocation_relay_checks{status=\"asked\"} 1\n"
                        "allocation_relay_checks{status=\"accepted\"} 0\n"
                        "allocation_relay_checks{status=\"rejected\"} 0\n"
                        "allocation_relay_checks{status=\"timed-out\"} 3\n"));
  // The flow runs on: 3 confirms order 15.
  EXPECT_EQ(api_->Update(1, "confirmed", "pos3-token")["success"], true);
  EXPECT_EQ(AllocationOf(*api_, 15)["confirmedWarehouseId"], 3);
}

// Warehouse 9's request times out and store 11 of the next group is asked. On order 15 the late
// confirm of the timed-out request wins and rejects 11's open check; on order 16 store 11
// accepts and the timed-out request is outdated.
TEST_F(CheckFirstTimeouts, ALateConfirmRejectsTheOpenCheckAndAnAcceptanceOutdatesTheRequest) {
  api_->CreateAllocation(15, "[[9],[11]]");  // request 1
  api_->CreateAllocation(16, "[[9],[11]]");  // request 2
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Checks(*api_, 15) == Strings{"11:asked"} && Checks(*api_, 16) == Strings{"11:asked"};
      },
      15s))
      << dispatcher_->Stderr();
  EXPECT_EQ(Requests(*api_, 15), Strings{"9:timed-out"});

  EXPECT_EQ(api_->Update(1, "confirmed")["success"], true);
  ordered_json a = AllocationOf(*api_, 15);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 9);
  EXPECT_EQ(Checks(*api_, 15), Strings{"11:rejected"});
  EXPECT_EQ(AnswerCheck(*api_, 15, 11, true).body, kFailed);

  EXPECT_EQ(AnswerCheck(*api_, 16, 11, true).body, kOk);
  a = AllocationOf(*api_, 16);
  EXPECT_EQ(a["state"], "confirmed");
  EXPECT_EQ(a["confirmedWarehouseId"], 11);
  EXPECT_EQ(Requests(*api_, 16), Strings{"9:outdated"});
  EXPECT_EQ(
      api_->Put("/allocation-request", R"({"id":2,"status":"confirmed"})").body,
      R"({"success":false,"errorMessages":["You can't update allocation request, which is in status outdated."]})");
}

// The check_first events through the real dispatcher, each to its own store's webhook, in either
// signature format: exact bytes (key order, `id` the order number, `data`), and the signature.
class CheckFirstWebhooks : public testing::ServicesTest {
 protected:
  enum class Format { kCentra, kStandardWebhooks };

  void Start(Format format) {
    format_ = format;
    auto hook = [&](int w) {
      const std::string url = "url: '" + receiver_.Url("/w" + std::to_string(w)) + "'";
      return format == Format::kCentra
                 ? "{" + url + ", secret: " + kCentraSecret + "}"
                 : "{" + url + ", secret: '" + kStandardSecret + "', signature: standard-webhooks}";
    };
    ApiProcessOptions o =
        WithStores({{11, hook(11)}, {12, hook(12)}, {13, hook(13)}, {14, hook(14)}});
    o.webhooks[3] = hook(3);
    StartServices(o);
  }

  // The JSON document of a call (the decoded payload= of Centra's format).
  std::string Document(const Receiver::Call& call) const {
    return format_ == Format::kCentra ? testing::FormDecode(call.body.substr(8)) : call.body;
  }

  // Every event warehouse `w` received so far, in arrival order, as written (the documents are
  // compact, so an event's dump() is its bytes; checked in ExpectSigned) with its date, once
  // checked, replaced by <date>.
  Strings EventsAt(int w) {
    Strings out;
    for (const Receiver::Call& call : receiver_.Calls()) {
      if (call.path != "/w" + std::to_string(w)) continue;
      ordered_json doc = ordered_json::parse(Document(call), nullptr, false);
      if (!doc.is_object()) {
        out.push_back("not JSON: " + call.body);
        continue;
      }
      for (const ordered_json& e : doc["events"]) {
        const std::string date = e.value("date", "");
        EXPECT_TRUE(std::regex_match(date, kLocalMicros)) << e;
        out.push_back(std::regex_replace(e.dump(), kLocalMicros, "<date>"));
      }
    }
    return out;
  }
  bool WaitForEvents(int w, std::size_t n) {
    return testing::WaitFor([&] { return EventsAt(w).size() >= n; }, 15s);
  }

  // Every call: the format's content type and signature, the document byte-exact.
  void ExpectSigned() {
    const std::string verifier = std::string(STANDARDWEBHOOKS_DIR) + "/verify.mjs";
    if (format_ == Format::kStandardWebhooks) {
      ASSERT_TRUE(std::filesystem::exists(std::string(STANDARDWEBHOOKS_DIR) +
                                          "/node_modules/standardwebhooks"))
          << "run: npm ci --prefix " << STANDARDWEBHOOKS_DIR << " (tests/run.sh does)";
    }
    for (const Receiver::Call& call : receiver_.Calls()) {
      SCOPED_TRACE(call.path + " " + call.body);
      EXPECT_THAT(call.Header("User-Agent"), StartsWith("allocation-relay/"));
      const std::string document = Document(call);
      // Compact, in the renderer's key order: a re-dump gives the same bytes.
      EXPECT_EQ(ordered_json::parse(document).dump(), document);
      if (format_ == Format::kCentra) {
        EXPECT_EQ(call.Header("Content-Type"), "application/x-www-form-urlencoded");
        EXPECT_EQ(call.body, "payload=" + FormUrlEncode(document));
        std::smatch m;
        const std::string signature = call.Header("X-Centra-Signature");
        ASSERT_TRUE(std::regex_match(signature, m, std::regex(R"(t=(\d+),v1=([0-9a-f]{64}))")))
            << signature;
        EXPECT_EQ(signature, CentraSignatureHeader(kCentraSecret, std::stoll(m[1]), call.body));
        continue;
      }
      EXPECT_EQ(call.Header("Content-Type"), "application/json");
      EXPECT_THAT(call.Header("webhook-id"), StartsWith("msg_"));
      const std::string ts = call.Header("webhook-timestamp");
      ASSERT_FALSE(ts.empty());
      EXPECT_EQ(call.Header("webhook-signature"),
                *StandardWebhooksSignature(kStandardSecret, call.Header("webhook-id"),
                                           std::stoll(ts), call.body));
      // And the reference library verifies it.
      ordered_json headers = {{"webhook-id", call.Header("webhook-id")},
                              {"webhook-timestamp", ts},
                              {"webhook-signature", call.Header("webhook-signature")}};
      const std::string headers_file = api_->dir().Write("headers.json", headers.dump());
      const std::string body_file = api_->dir().Write("body.json", call.body);
      testing::CommandResult verified = testing::RunCommand(
          {"/usr/bin/env", "node", verifier, kStandardSecret, headers_file, body_file},
          api_->dir().path());
      EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
      EXPECT_THAT(verified.out, HasSubstr("verified:"));
    }
  }

  // Store 14 times out, 12 rejects, 11 accepts order 19; then on order 20 store 11 rejects, the
  // next group's stores 12 and 13 are asked and 12 accepts. Each store gets exactly its events.
  void RunTheScenario() {
    api_->CreateAllocation(19, "[[11,12,14,3]]");
    const Strings asked19 = DatesIn(api_->Get("/allocations/19").body);
    ASSERT_EQ(asked19.size(), 3u);
    const std::string create19 =
        Event("create", 19,
              R"({"warehouses":[{"warehouseId":11,"expirationAt":")" + asked19[0] +
                  R"("},{"warehouseId":12,"expirationAt":")" + asked19[1] +
                  R"("},{"warehouseId":14,"expirationAt":")" + asked19[2] + R"("}]})");
    ASSERT_TRUE(WaitForEvents(11, 1) && WaitForEvents(12, 1)) << dispatcher_->Stderr();
    EXPECT_EQ(EventsAt(11), Strings{create19});
    EXPECT_EQ(EventsAt(12), Strings{create19});
    // 14 does not answer: within about a second of its expiry it hears it timed out.
    ASSERT_TRUE(WaitForEvents(14, 2)) << dispatcher_->Stderr();
    EXPECT_EQ(EventsAt(14), (Strings{create19, Event("timeout", 19, R"({"warehouseId":14})")}));
    ASSERT_EQ(AnswerCheck(*api_, 19, 12, false).body, kOk);
    ASSERT_TRUE(WaitForEvents(12, 2)) << dispatcher_->Stderr();
    ASSERT_EQ(AnswerCheck(*api_, 19, 11, true).body, kOk);
    ASSERT_TRUE(WaitForEvents(11, 2)) << dispatcher_->Stderr();
    EXPECT_EQ(AllocationOf(*api_, 19)["confirmedWarehouseId"], 11);

    api_->CreateAllocation(20, "[[11],[12,13]]");
    const std::string create20 =
        Event("create", 20,
              R"({"warehouses":[{"warehouseId":11,"expirationAt":")" +
                  DatesIn(api_->Get("/allocations/20").body).at(0) + R"("}]})");
    ASSERT_TRUE(WaitForEvents(11, 3)) << dispatcher_->Stderr();
    ASSERT_EQ(AnswerCheck(*api_, 20, 11, false).body, kOk);
    const Strings asked20 = DatesIn(api_->Get("/allocations/20").body);
    ASSERT_EQ(asked20.size(), 3u);
    // The next group's create names only that group's stores.
    const std::string create20b =
        Event("create", 20,
              R"({"warehouses":[{"warehouseId":12,"expirationAt":")" + asked20[1] +
                  R"("},{"warehouseId":13,"expirationAt":")" + asked20[2] + R"("}]})");
    ASSERT_TRUE(WaitForEvents(12, 3) && WaitForEvents(13, 1)) << dispatcher_->Stderr();
    ASSERT_EQ(AnswerCheck(*api_, 20, 12, true).body, kOk);
    ASSERT_TRUE(WaitForEvents(11, 4) && WaitForEvents(12, 4) && WaitForEvents(13, 2))
        << dispatcher_->Stderr();

    EXPECT_EQ(EventsAt(11), (Strings{create19, Event("accepted", 19, R"({"warehouseId":11})"),
                                     create20, Event("rejected", 20, R"({"warehouseId":11})")}));
    EXPECT_EQ(EventsAt(12), (Strings{create19, Event("rejected", 19, R"({"warehouseId":12})"),
                                     create20b, Event("accepted", 20, R"({"warehouseId":12})")}));
    EXPECT_EQ(EventsAt(13), (Strings{create20b, Event("rejected", 20, R"({"warehouseId":13})")}));
    EXPECT_EQ(EventsAt(14), (Strings{create19, Event("timeout", 19, R"({"warehouseId":14})")}));
    EXPECT_EQ(EventsAt(3), Strings{});  // never asked: the stores decided
    ExpectSigned();
  }

  // A check_first event with its date replaced (checked apart), `id` the order number.
  static std::string Event(const std::string& action, std::int64_t order, const std::string& data) {
    return R"({"type":"check_first","action":")" + action + R"(","date":"<date>","id":)" +
           std::to_string(order) + R"(,"data":)" + data + "}";
  }

  static constexpr const char* kCentraSecret = "test123";
  static constexpr const char* kStandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  Format format_ = Format::kCentra;
};

TEST_F(CheckFirstWebhooks, CentraFormatEventsAreByteExactAndSigned) {
  Start(Format::kCentra);
  RunTheScenario();
}

TEST_F(CheckFirstWebhooks, StandardWebhooksEventsVerifyWithTheReferenceLibrary) {
  Start(Format::kStandardWebhooks);
  RunTheScenario();
}

// Two APIs on one database (the SQLite file or the PostgreSQL database): stores 11 and 12 answer
// the same orders at the same instant, 11 through one API and 12 through the other (even orders
// 11 through API 1, odd ones through API 2), four pairs of threads, each pair released together
// per order.
class CheckFirstRace : public ::testing::Test {
 protected:
  CheckFirstRace() : api1_(WithStores()), api2_(SharingTheDatabase(api1_)) {}

  static ApiProcessOptions SharingTheDatabase(const ApiProcess& api) {
    ApiProcessOptions o = api.options();
    o.store = api.store_options();
    return o;
  }

  // Orders first .. first + n - 1 with `groups`, created through both APIs.
  void Create(std::int64_t first, int n, const std::string& groups) {
    for (int i = 0; i < n; ++i) (i % 2 ? api2_ : api1_).CreateAllocation(first + i, groups);
  }

  // "<HTTP status> <body>" of each order's answer by 11 (`by11`) and by 12 (`by12`); store
  // 11 answers order first + i with accepted11(i), 12 with accepted12(i).
  struct Answers {
    std::vector<std::string> by11, by12;
  };
  Answers Race(std::int64_t first, int n, const std::function<bool(int)>& accepted11,
               const std::function<bool(int)>& accepted12) {
    constexpr int kPairs = 4;
    Answers answers{std::vector<std::string>(static_cast<std::size_t>(n)),
                    std::vector<std::string>(static_cast<std::size_t>(n))};
    std::vector<std::unique_ptr<std::barrier<>>> sync;
    for (int p = 0; p < kPairs; ++p) sync.push_back(std::make_unique<std::barrier<>>(2));
    auto racer = [&](int pair, std::int64_t warehouse) {
      httplib::Client c1("127.0.0.1", api1_.port()), c2("127.0.0.1", api2_.port());
      for (httplib::Client* c : {&c1, &c2}) {
        c->set_connection_timeout(5s);
        c->set_read_timeout(30s);
      }
      const httplib::Headers key{{"API-Authorization", "shop-token"}};
      for (int i = pair; i < n; i += kPairs) {
        httplib::Client& c = (warehouse == 11) == (i % 2 == 0) ? c1 : c2;
        const bool accepted = warehouse == 11 ? accepted11(i) : accepted12(i);
        sync[static_cast<std::size_t>(pair)]->arrive_and_wait();
        auto r = c.Post("/check-first", key, CheckAnswerBody(first + i, warehouse, accepted),
                        "application/json");
        (warehouse == 11 ? answers.by11 : answers.by12)[static_cast<std::size_t>(i)] =
            r ? std::to_string(r->status) + " " + r->body : "no answer";
      }
    };
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int p = 0; p < kPairs; ++p) {
      threads.emplace_back(racer, p, 11);
      threads.emplace_back(racer, p, 12);
    }
    for (std::thread& t : threads) t.join();
    std::printf("[ check-first race ] %d orders answered in %.2f s\n", n,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return answers;
  }

  // The API order first + i was not created through.
  ApiProcess& OtherApi(int i) { return i % 2 ? api1_ : api2_; }

  ApiProcess api1_;
  ApiProcess api2_;
};

// 200 orders asked of stores 11 and 12, each accepted by both at once: exactly one acceptance
// wins each order; the other is told "failed to allocate stock".
TEST_F(CheckFirstRace, TwoApisAcceptingOneOrderAtOnceHaveExactlyOneWinner) {
  constexpr int kOrders = 200;
  constexpr std::int64_t kFirst = 1000;
  Create(kFirst, kOrders, "[[11,12]]");
  const auto yes = [](int) { return true; };
  Answers answers = Race(kFirst, kOrders, yes, yes);

  const std::string ok = "200 " + kOk, failed = "200 " + kFailed;
  int wins11 = 0, wins12 = 0;
  for (int i = 0; i < kOrders; ++i) {
    const std::int64_t order = kFirst + i;
    const std::string& by11 = answers.by11[static_cast<std::size_t>(i)];
    const std::string& by12 = answers.by12[static_cast<std::size_t>(i)];
    const bool won11 = by11 == ok, won12 = by12 == ok;
    ASSERT_NE(won11, won12) << "order " << order << ": 11 got " << by11 << ", 12 got " << by12;
    EXPECT_EQ(won11 ? by12 : by11, failed) << "order " << order;
    (won11 ? wins11 : wins12)++;
    ordered_json a = AllocationOf(OtherApi(i), order);
    EXPECT_EQ(a["state"], "confirmed") << order;
    EXPECT_EQ(a["confirmedWarehouseId"], won11 ? 11 : 12) << order;
    EXPECT_EQ(Checks(OtherApi(i), order), won11 ? (Strings{"11:accepted", "12:rejected"})
                                                : (Strings{"11:rejected", "12:accepted"}))
        << order;
  }
  std::printf("[ check-first race ] store 11 won %d, store 12 won %d\n", wins11, wins12);
  // One accepted event to each winner, one rejected event to each loser, none twice.
  const StoreOptions db = api1_.store_options();
  const std::string per_check =
      "SELECT count(*) FROM outbox_events e JOIN checks c ON c.id = e.check_id WHERE ";
  EXPECT_EQ(testing::QueryOne(db, per_check + "e.action = 'accepted' AND c.status = 'accepted' "
                                              "AND e.warehouse_id = c.warehouse_id"),
            std::to_string(kOrders));
  EXPECT_EQ(testing::QueryOne(db, per_check + "e.action = 'rejected' AND c.status = 'rejected' "
                                              "AND e.warehouse_id = c.warehouse_id"),
            std::to_string(kOrders));
  EXPECT_EQ(testing::QueryOne(db,
                              "SELECT count(*) FROM outbox_events WHERE action IN "
                              "('accepted', 'rejected', 'timeout')"),
            std::to_string(2 * kOrders));
  EXPECT_THAT(api2_.Get("/metrics", "").body,
              HasSubstr("allocation_relay_checks{status=\"asked\"} 0\n"
                        "allocation_relay_checks{status=\"accepted\"} 200\n"
                        "allocation_relay_checks{status=\"rejected\"} 200\n"));
}

// 100 orders asked of stores 11 and 12 before warehouse 3. On even orders both reject at once:
// the group is handed to warehouse 3 exactly once (one request, never none). On odd orders 11
// accepts while 12 rejects: 11 wins whichever comes first, and 3 is never asked.
TEST_F(CheckFirstRace, AnswersAtOnceHandTheGroupOnOnceAndOnlyWhenEveryStoreSaidNo) {
  constexpr int kOrders = 100;
  constexpr std::int64_t kFirst = 2000;
  Create(kFirst, kOrders, "[[11,12,3]]");
  Answers answers = Race(
      kFirst, kOrders, [](int i) { return i % 2 == 1; }, [](int) { return false; });
  for (int i = 0; i < kOrders; ++i) {
    const std::int64_t order = kFirst + i;
    const std::string& by11 = answers.by11[static_cast<std::size_t>(i)];
    const std::string& by12 = answers.by12[static_cast<std::size_t>(i)];
    EXPECT_EQ(by11, "200 " + kOk) << order;
    ordered_json a = AllocationOf(OtherApi(i), order);
    if (i % 2 == 0) {
      EXPECT_EQ(by12, "200 " + kOk) << order;
      EXPECT_EQ(a["state"], "open") << order;
      EXPECT_EQ(Checks(OtherApi(i), order), (Strings{"11:rejected", "12:rejected"})) << order;
      EXPECT_EQ(Requests(OtherApi(i), order), Strings{"3:allocated"}) << order;
    } else {
      // 12's rejection either came first (taken, 11 still asked) or after the acceptance.
      EXPECT_TRUE(by12 == "200 " + kOk || by12 == "200 " + kFailed) << order << ": " << by12;
      EXPECT_EQ(a["confirmedWarehouseId"], 11) << order;
      EXPECT_EQ(Checks(OtherApi(i), order), (Strings{"11:accepted", "12:rejected"})) << order;
      EXPECT_EQ(Requests(OtherApi(i), order), Strings{}) << order;
    }
  }
  EXPECT_EQ(testing::QueryOne(api1_.store_options(),
                              "SELECT count(*) FROM outbox_events WHERE warehouse_id = 3"),
            std::to_string(kOrders / 2));
}

}  // namespace
}  // namespace allocation_relay
