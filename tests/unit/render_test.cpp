#include "allocation_relay/render.h"

#include <date/date.h>
#include <gtest/gtest.h>

namespace allocation_relay {
namespace {

using namespace std::chrono;

TimePoint Utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int us = 0) {
  return TimePoint(date::sys_days(date::year(y) / mo / d).time_since_epoch() + hours(h) +
                   minutes(mi) + seconds(s) + microseconds(us));
}

AllocationRequest SeedRequest() {
  AllocationRequest r;
  r.id = 1;
  r.status = RequestStatus::kOutdated;
  r.warehouse_id = 3;
  r.warehouse_name = "Amsterdam";
  r.created_at = Utc(2024, 3, 18, 8, 4, 47, 250000);
  r.expires_at = Utc(2024, 3, 18, 8, 4, 48, 250000);
  r.order = {"486e13eaaa65d5ff1e87c997b5dce54e", 15};
  r.lines_json = LinesJson({{73, 5, 1}});
  return r;
}

// The first entry of the seed page's response example, key for key and in the same order.
TEST(RenderRequestEntry, ReproducesTheSeedPageEntry) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  EXPECT_EQ(RenderRequestEntry(SeedRequest(), zone).dump(),
            R"({"id":1,"status":"outdated","warehouseId":3,"warehouseName":"Amsterdam",)"
            R"("expirationDate":"2024-03-18T09:04:48+01:00",)"
            R"("order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":15},)"
            R"("lines":[{"lineId":73,"quantity":5,"stockItemId":1}],)"
            R"("createdAt":"2024-03-18T09:04:47+01:00"})");
}

// The hand-written GET renderer writes exactly what the JSON tree dumps, for awkward text too.
TEST(AppendRequestEntry, MatchesTheJsonTreeByteForByte) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  std::vector<std::string> names = {"Amsterdam", "Quote \" back \\ slash", "tab\tnew\nline\x01\x1f",
                                    "Göteborg",  "bad \xff\xfe utf8",      "",
                                    "/slash/"};
  std::vector<std::vector<OrderLine>> lines = {{}, {{73, 5, 1}}, {{1, 2, 3}, {4, 5, 6}}};
  for (const std::string& name : names) {
    for (const auto& l : lines) {
      AllocationRequest r = SeedRequest();
      r.warehouse_name = name;
      r.order.id = name.empty() ? "ab" : name;
      r.lines_json = LinesJson(l);
      r.id = 9223372036854775807LL;
      r.status = RequestStatus::kTimedOut;
      std::string fast;
      AppendRequestEntry(fast, r, zone);
      EXPECT_EQ(fast, RenderRequestEntry(r, zone).dump(
                          -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace))
          << name;
    }
  }
}

TEST(RenderRequestEntry, EscapesNamesAsJson) {
  AllocationRequest r = SeedRequest();
  r.warehouse_name = "Quote \" and \\ and é";
  TimeZone zone = TimeZone::Utc();
  nlohmann::json parsed = nlohmann::json::parse(RenderRequestEntry(r, zone).dump());
  EXPECT_EQ(parsed["warehouseName"], "Quote \" and \\ and é");
}

// The create event of reference/centra-facts.md, with the same field order and formats.
TEST(RenderWebhookDocument, ReproducesTheCentraCreateEvent) {
  AllocationRequest r;
  r.id = 2131231241249;
  r.status = RequestStatus::kAllocated;
  r.warehouse_id = 9;
  r.expires_at = Utc(2023, 12, 29, 9, 44, 11, 384563);
  r.order = {"367482b8c68dd399db65637ce0208940", 67};
  r.lines_json = LinesJson({{103, 1, 19}, {102, 1, 19}});  // stored sorted
  OutboxEvent e;
  e.request_id = r.id;
  e.action = EventAction::kCreate;
  e.status = RequestStatus::kAllocated;
  e.created_at = Utc(2023, 12, 29, 8, 44, 11, 505407);
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  EXPECT_EQ(RenderWebhookDocument(std::span(&e, 1), std::span(&r, 1), {}, zone),
            R"({"events":[{"type":"allocation_request","action":"create",)"
            R"("date":"2023-12-29 09:44:11.505407","id":2131231241249,)"
            R"("data":{"status":"allocated","warehouseId":9,)"
            R"("expirationDate":{"date":"2023-12-29 10:44:11.384563","timezone_type":3,)"
            R"("timezone":"Europe/Stockholm"},)"
            R"("order":{"id":"367482b8c68dd399db65637ce0208940","number":67},)"
            R"("lines":{"102":{"lineId":102,"quantity":1,"stockItemId":19},)"
            R"("103":{"lineId":103,"quantity":1,"stockItemId":19}}}}]})");
}

// The check_first events of reference/centra-facts.md: `id` is the order number; a create lists
// every warehouse asked with its expirationAt, the others name the warehouse.
TEST(RenderWebhookDocument, ReproducesTheCentraCheckFirstEvents) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  CheckEventSubject asked{
      5, 19, 2, {{2, Utc(2021, 1, 11, 14, 21, 0, 0)}, {3, Utc(2021, 1, 12, 15, 21, 0, 0)}}};
  CheckEventSubject rejected{6, 20, 3, {}};
  CheckEventSubject accepted{7, 18, 4, {}};
  CheckEventSubject timeout{8, 18, 2, {}};
  std::vector<CheckEventSubject> checks = {asked, rejected, accepted, timeout};
  std::vector<OutboxEvent> events(4);
  const EventAction actions[] = {EventAction::kCreate, EventAction::kRejected,
                                 EventAction::kAccepted, EventAction::kTimeout};
  for (std::size_t i = 0; i < events.size(); ++i) {
    events[i].id = static_cast<std::int64_t>(i) + 1;
    events[i].check_id = checks[i].check_id;
    events[i].action = actions[i];
    events[i].created_at = Utc(2021, 1, 11, 15, 21, 0, 552288);
  }
  EXPECT_EQ(
      RenderWebhookDocument(events, {}, checks, zone),
      R"({"events":[{"type":"check_first","action":"create","date":"2021-01-11 16:21:00.552288",)"
      R"("id":19,"data":{"warehouses":[{"warehouseId":2,"expirationAt":"2021-01-11T15:21:00+01:00"},)"
      R"({"warehouseId":3,"expirationAt":"2021-01-12T16:21:00+01:00"}]}},)"
      R"({"type":"check_first","action":"rejected","date":"2021-01-11 16:21:00.552288",)"
      R"("id":20,"data":{"warehouseId":3}},)"
      R"({"type":"check_first","action":"accepted","date":"2021-01-11 16:21:00.552288",)"
      R"("id":18,"data":{"warehouseId":4}},)"
      R"({"type":"check_first","action":"timeout","date":"2021-01-11 16:21:00.552288",)"
      R"("id":18,"data":{"warehouseId":2}}]})");
  // An event whose check is missing is left out, as one whose request is.
  EXPECT_EQ(RenderWebhookDocument(events, {}, {}, zone), R"({"events":[]})");
}

TEST(RenderWebhookDocument, UpdateEventsReportTheNewStatusAndMissingRequestsAreLeftOut) {
  AllocationRequest r = SeedRequest();
  OutboxEvent e;
  e.request_id = r.id;
  e.action = EventAction::kUpdate;
  e.status = RequestStatus::kTimedOut;
  e.created_at = r.expires_at;
  OutboxEvent orphan = e;
  orphan.request_id = r.id + 1;
  std::vector<OutboxEvent> events{e, orphan, e};
  auto doc =
      nlohmann::json::parse(RenderWebhookDocument(events, std::span(&r, 1), {}, TimeZone::Utc()));
  ASSERT_EQ(doc["events"].size(), 2u);
  EXPECT_EQ(doc["events"][0]["action"], "update");
  EXPECT_EQ(doc["events"][0]["data"]["status"], "timed-out");
  EXPECT_EQ(doc["events"][0]["data"]["expirationDate"]["timezone"], "UTC");
  EXPECT_EQ(RenderWebhookDocument({}, {}, {}, TimeZone::Utc()), R"({"events":[]})");
}

// The direct writer against a JSON tree built independently with nlohmann::ordered_json, on
// the inputs where hand-written JSON goes wrong: escapes, non-ASCII and invalid UTF-8, large
// and negative numbers, lines that are not in the canonical form, a repeated line id.
TEST(RenderWebhookDocument, MatchesAJsonTreeByteForByte) {
  auto tree = [](const OutboxEvent& e, const AllocationRequest& r, const TimeZone& zone) {
    nlohmann::ordered_json lines = nlohmann::ordered_json::object();
    for (const auto& l : nlohmann::json::parse(r.lines_json)) {
      nlohmann::ordered_json line;
      line["lineId"] = l["lineId"];
      line["quantity"] = l["quantity"];
      line["stockItemId"] = l["stockItemId"];
      lines[std::to_string(l["lineId"].get<std::int64_t>())] = line;
    }
    nlohmann::ordered_json j;
    j["type"] = "allocation_request";
    j["action"] = ToString(e.action);
    j["date"] = zone.FormatLocalMicros(e.created_at);
    j["id"] = r.id;
    j["data"]["status"] = ToString(e.status);
    j["data"]["warehouseId"] = r.warehouse_id;
    j["data"]["expirationDate"]["date"] = zone.FormatLocalMicros(r.expires_at);
    j["data"]["expirationDate"]["timezone_type"] = 3;
    j["data"]["expirationDate"]["timezone"] = zone.name();
    j["data"]["order"]["id"] = r.order.id;
    j["data"]["order"]["number"] = r.order.number;
    j["data"]["lines"] = lines;
    nlohmann::ordered_json doc;
    doc["events"] = nlohmann::ordered_json::array({j});
    return doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  };
  const std::vector<std::string> order_ids = {"ab12", "quote\" back\\slash \n tab\t \x01", "åäö €",
                                              std::string("bad \xff utf8")};
  const std::vector<std::string> lines = {
      LinesJson({{73, 5, 1}, {9007199254740993, -2, 0}}),
      R"([ {"quantity": 1, "lineId": 7, "stockItemId": 2} ])",  // not canonical: parsed
      R"([{"lineId":7,"quantity":1,"stockItemId":2},{"lineId":7,"quantity":3,"stockItemId":4}])",
      "[]"};
  TimeZone zone = *TimeZone::Find("America/New_York");
  for (const std::string& id : order_ids) {
    for (const std::string& l : lines) {
      AllocationRequest r = SeedRequest();
      r.order.id = id;
      r.order.number = -5;
      r.lines_json = l;
      OutboxEvent e;
      e.request_id = r.id;
      e.created_at = r.created_at;
      EXPECT_EQ(RenderWebhookDocument(std::span(&e, 1), std::span(&r, 1), {}, zone),
                tree(e, r, zone))
          << id << " " << l;
    }
  }
}

TEST(RenderAllocation, ListsStateGroupsAndRequests) {
  Allocation a;
  a.order = {"486e13eaaa65d5ff1e87c997b5dce54e", 15};
  a.lines = {{73, 5, 1}};
  a.groups = {{3, 4}, {7}};
  a.state = AllocationState::kOpen;
  a.requests = {SeedRequest()};
  nlohmann::ordered_json j = RenderAllocation(a, *TimeZone::Find("Europe/Stockholm"));
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"order", "lines", "warehouses", "state",
                                            "confirmedWarehouseId", "allocation_requests"}));
  EXPECT_EQ(j["warehouses"].dump(), "[[3,4],[7]]");
  EXPECT_TRUE(j["confirmedWarehouseId"].is_null());
  EXPECT_EQ(j["allocation_requests"][0]["id"], 1);
  a.checks = {Check{5, 1, 11, 0, CheckStatus::kAsked, Utc(2024, 3, 18, 8, 0, 0, 0),
                    Utc(2024, 3, 18, 8, 30, 0, 0), Utc(2024, 3, 18, 8, 0, 0, 0)}};
  j = RenderAllocation(a, *TimeZone::Find("Europe/Stockholm"));
  EXPECT_EQ(j["checks"].dump(),
            R"([{"warehouseId":11,"status":"asked","expirationAt":"2024-03-18T09:30:00+01:00"}])");
}

// The hand-written allocation renderer (every intake's answer) writes exactly what the JSON tree
// dumps, for awkward text, every state, with and without a confirmed warehouse.
TEST(AppendAllocation, MatchesTheJsonTreeByteForByte) {
  TimeZone zone = *TimeZone::Find("Europe/Stockholm");
  const std::vector<std::string> texts = {"486e13eaaa65d5ff1e87c997b5dce54e",
                                          "Quote \" \\ x",
                                          "tab\tnew\nline\x01",
                                          "Göteborg",
                                          "bad \xff utf8",
                                          ""};
  const std::vector<PriorityGroups> groups = {{}, {{3}}, {{3, 4}, {7}, {}}};
  int n = 0;
  for (const std::string& text : texts) {
    for (const PriorityGroups& g : groups) {
      for (AllocationState state : {AllocationState::kOpen, AllocationState::kConfirmed,
                                    AllocationState::kExhausted, AllocationState::kCancelled}) {
        Allocation a;
        a.id = ++n;
        a.order = {text, 9223372036854775807LL};
        a.lines = n % 2 ? std::vector<OrderLine>{} : std::vector<OrderLine>{{73, 5, 1}, {74, 1, 2}};
        a.groups = g;
        a.state = state;
        if (state == AllocationState::kConfirmed) a.confirmed_warehouse_id = 4;
        for (int i = 0; i < n % 4 - 1; ++i) {
          a.checks.push_back(Check{20 + i, a.id, 11 + i, 0,
                                   i % 2 ? CheckStatus::kTimedOut : CheckStatus::kAsked,
                                   Utc(2024, 3, 18, 8, 0, 0, 0), Utc(2024, 3, 18, 8, 30, 0, 5),
                                   Utc(2024, 3, 18, 8, 0, 0, 0)});
        }
        for (int i = 0; i < n % 3; ++i) {
          AllocationRequest r = SeedRequest();
          r.id = 10 + i;
          r.warehouse_name = text;
          r.order = a.order;
          r.lines_json = LinesJson(a.lines);
          a.requests.push_back(r);
        }
        std::string fast;
        AppendAllocation(fast, a, zone);
        EXPECT_EQ(fast, RenderAllocation(a, zone).dump(
                            -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace))
            << text;
      }
    }
  }
}

TEST(LinesJson, SortsByLineIdAndRoundTrips) {
  std::string json = LinesJson({{74, 1, 2}, {73, 5, 1}});
  EXPECT_EQ(
      json,
      R"([{"lineId":73,"quantity":5,"stockItemId":1},{"lineId":74,"quantity":1,"stockItemId":2}])");
  std::vector<OrderLine> back = ParseLinesJson(json);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].line_id, 74);
  EXPECT_EQ(back[1].stock_item_id, 2);
  EXPECT_EQ(LinesJson({}), "[]");
}

TEST(FormUrlEncode, EncodesLikePhpUrlencode) {
  EXPECT_EQ(FormUrlEncode("a b&c=d/e~f-g_h.i"), "a+b%26c%3Dd%2Fe%7Ef-g_h.i");
  EXPECT_EQ(FormUrlEncode("é"), "%C3%A9");
}

}  // namespace
}  // namespace allocation_relay
