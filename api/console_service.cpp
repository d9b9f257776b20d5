#include "console_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "allocation_relay/allocation_history.h"
#include "console_assets.h"

namespace allocation_relay {
namespace {

using nlohmann::ordered_json;

constexpr std::string_view kConsole = "/console";
constexpr std::string_view kApiPrefix = "/console/api/";

// No inline script or style, nothing from elsewhere, never inside a frame.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// "2026-11-30T22:10:00.123Z": UTC to the millisecond, what JavaScript's Date reads.
std::string UtcIso(TimePoint t) {
  std::int64_t ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms - static_cast<std::int64_t>(seconds) * 1000));
  return text;
}

ordered_json UtcIsoOrNull(const std::optional<TimePoint>& t) {
  return t ? ordered_json(UtcIso(*t)) : ordered_json(nullptr);
}

double Milliseconds(Micros d) { return static_cast<double>(d.count()) / 1000.0; }

ApiResponse Text(int status, std::string body) {
  ApiResponse res{status, std::move(body)};
  res.content_type = "text/plain; charset=utf-8";
  return res;
}

ApiResponse MethodNotAllowed(const ApiRequest& req, const char* allowed, bool json) {
  std::string message = "Method " + req.method + " is not allowed on " + req.path;
  ApiResponse res = json ? ErrorAnswer(405, message) : Text(405, message + "\n");
  res.allow = allowed;
  return res;
}

std::string WarehouseName(const Config& config, std::int64_t id) {
  const WarehouseConfig* w = config.FindWarehouse(id);
  return w ? w->name : std::string();
}

ordered_json NameOrNull(const Config& config, std::int64_t id) {
  const WarehouseConfig* w = config.FindWarehouse(id);
  return w ? ordered_json(w->name) : ordered_json(nullptr);
}

// The upper bound (ms) of the bucket holding quantile `q` of `buckets`; nullopt past the last
// bound. REQUIRES: some calls.
std::optional<int> QuantileBound(const std::array<std::int64_t, kCallDurationBuckets>& buckets,
                                 std::int64_t calls, double q) {
  // The rank of the q-quantile among `calls` ordered durations, counting from 1.
  std::int64_t rank = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(q * static_cast<double>(calls))));
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < std::size(kCallDurationBoundsMs); ++i) {
    seen += buckets[i];
    if (seen >= rank) return kCallDurationBoundsMs[i];
  }
  return std::nullopt;
}

ordered_json LatencyJson(const std::array<std::int64_t, kCallDurationBuckets>& buckets) {
  std::int64_t calls = 0;
  for (std::int64_t n : buckets) calls += n;
  ordered_json latency = ordered_json::object();
  latency["calls"] = calls;
  if (calls == 0) {
    latency["p50Ms"] = nullptr;
    latency["p99Ms"] = nullptr;
    return latency;
  }
  bool over = false;
  for (auto [name, q] : {std::pair{"p50Ms", 0.5}, std::pair{"p99Ms", 0.99}}) {
    std::optional<int> bound = QuantileBound(buckets, calls, q);
    latency[name] = bound ? ordered_json(*bound) : ordered_json(nullptr);
    over = over || !bound;
  }
  if (over) latency["over10s"] = true;
  return latency;
}

// A request or a check: what was asked of which warehouse, and how it stands. `name` is the
// warehouse's name as the entry shows it.
template <typename Asked>
ordered_json AskedJson(const Asked& asked, ordered_json name) {
  ordered_json j = ordered_json::object();
  j["id"] = asked.id;
  j["warehouseId"] = asked.warehouse_id;
  j["warehouseName"] = std::move(name);
  j["group"] = asked.group_index + 1;
  j["status"] = ToString(asked.status);
  j["createdAt"] = UtcIso(asked.created_at);
  j["expiresAt"] = UtcIso(asked.expires_at);
  j["updatedAt"] = UtcIso(asked.updated_at);
  return j;
}

ordered_json AttemptJson(const DeliveryAttempt& a) {
  ordered_json j = ordered_json::object();
  j["attempt"] = a.attempt;
  j["startedAt"] = UtcIso(a.started_at);
  j["durationMs"] = Milliseconds(a.duration);
  j["httpStatus"] = a.http_status ? ordered_json(a.http_status) : ordered_json(nullptr);
  j["error"] = a.error;
  j["responseHead"] = a.response_head;
  return j;
}

// The fields a delivery shows everywhere.
ordered_json DeliveryJson(const Delivery& d) {
  ordered_json j = ordered_json::object();
  j["id"] = d.id;
  j["uid"] = d.uid;
  j["warehouseId"] = d.warehouse_id;
  j["state"] = ToString(d.state);
  j["attemptCount"] = d.attempt_count;
  j["createdAt"] = UtcIso(d.created_at);
  j["nextAttemptAt"] =
      d.state == DeliveryState::kPending ? ordered_json(UtcIso(d.next_attempt_at)) : nullptr;
  return j;
}

// The warehouse an action names: configured and in the key's scope, else nullopt.
std::optional<std::int64_t> ActionWarehouse(const Config& config, std::string_view id,
                                            const ApiKey& key) {
  std::optional<std::int64_t> n = ParsePositiveInt(id);
  if (!n || !config.FindWarehouse(*n) || !key.scope.Allows(*n)) return std::nullopt;
  return n;
}

ApiResponse NoStore(ApiResponse res) {
  res.headers.emplace_back("Cache-Control", "no-store");
  return res;
}

}  // namespace

bool ConsoleService::Serves(std::string_view path) {
  return path == kConsole || path.starts_with("/console/");
}

ApiResponse ConsoleService::Handle(const ApiRequest& req, const Config& config, const KeyRing& keys,
                                   const RateLimiter& limiter) {
  std::string endpoint = "console page";
  ApiResponse res = Route(req, config, keys, limiter, endpoint);
  res.endpoint = std::move(endpoint);
  res.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  res.headers.emplace_back("X-Frame-Options", "DENY");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  return res;
}

ApiResponse ConsoleService::Route(const ApiRequest& req, const Config& config, const KeyRing& keys,
                                  const RateLimiter& limiter, std::string& endpoint) {
  const bool read = req.method == "GET" || req.method == "HEAD";
  if (req.path == kConsole) {
    if (!read) return MethodNotAllowed(req, "GET, HEAD", false);
    ApiResponse res = Text(301, "The console is at /console/\n");
    res.headers.emplace_back("Location", "/console/");
    return res;
  }
  if (!req.path.starts_with(kApiPrefix)) {
    for (const EmbeddedAsset& asset : EmbeddedAssets()) {
      if (asset.path != req.path) continue;
      if (!read) return MethodNotAllowed(req, "GET, HEAD", false);
      ApiResponse res{200, std::string(asset.body)};
      res.content_type = std::string(asset.content_type);
      // Revalidated on every load, so an upgraded binary's page is never mixed with old files.
      res.headers.emplace_back("Cache-Control", "no-cache");
      return res;
    }
    return Text(404, "Not found: " + req.path + "\n");
  }

  // The JSON endpoints: find the route, then the key, as the Order API does.
  endpoint = "console api";
  std::string_view rest = std::string_view(req.path).substr(kApiPrefix.size());
  enum class Kind {
    kNone,
    kSession,
    kOverview,
    kAllocation,
    kDeliveries,
    kResend,
    kResendDead,
    kEnableWebhook
  };
  Kind kind = Kind::kNone;
  std::string_view argument;
  auto segment_route = [&](std::string_view prefix, std::string_view suffix) {
    if (!rest.starts_with(prefix) || !rest.ends_with(suffix) ||
        rest.size() <= prefix.size() + suffix.size()) {
      return false;
    }
    argument = rest.substr(prefix.size(), rest.size() - prefix.size() - suffix.size());
    return argument.find('/') == std::string_view::npos;
  };
  if (rest == "session") {
    kind = Kind::kSession;
  } else if (rest == "overview") {
    kind = Kind::kOverview;
  } else if (rest == "deliveries") {
    kind = Kind::kDeliveries;
  } else if (segment_route("allocations/", "")) {
    kind = Kind::kAllocation;
  } else if (segment_route("deliveries/", "/resend")) {
    kind = Kind::kResend;
  } else if (segment_route("warehouses/", "/resend-dead")) {
    kind = Kind::kResendDead;
  } else if (segment_route("warehouses/", "/enable-webhook")) {
    kind = Kind::kEnableWebhook;
  }
  if (kind == Kind::kNone) return NoStore(ErrorAnswer(404, "Unknown path " + req.path));

  const bool action =
      kind == Kind::kResend || kind == Kind::kResendDead || kind == Kind::kEnableWebhook;
  static constexpr const char* kNames[] = {"",
                                           "GET /console/api/session",
                                           "GET /console/api/overview",
                                           "GET /console/api/allocations",
                                           "GET /console/api/deliveries",
                                           "POST /console/api/deliveries/resend",
                                           "POST /console/api/warehouses/resend-dead",
                                           "POST /console/api/warehouses/enable-webhook"};
  endpoint = kNames[static_cast<int>(kind)];
  if (action ? req.method != "POST" : !read) {
    return NoStore(MethodNotAllowed(req, action ? "POST" : "GET, HEAD", true));
  }
  const ApiKey* key = keys.Authenticate(req.token);
  if (key == nullptr) return NoStore(Json(401, ordered_json{{"status", "Unauthorized"}}));
  if (std::optional<ApiResponse> refused = limiter.Admit(*key, clock_.Now())) {
    return NoStore(std::move(*refused));
  }
  if (!KeyRing::Allows(*key, kReadGrant) || (action && !KeyRing::Allows(*key, kActionsGrant))) {
    return NoStore(Json(403, ordered_json{{"status", "Not Allowed"}}));
  }
  switch (kind) {
    case Kind::kSession: {
      ordered_json body = ordered_json::object();
      body["key"] = key->name;
      body["actions"] = KeyRing::Allows(*key, kActionsGrant);
      body["warehouses"] = key->scope.only ? ordered_json(*key->scope.only) : ordered_json(nullptr);
      return NoStore(Json(200, body));
    }
    case Kind::kOverview:
      return NoStore(Overview(config, *key));
    case Kind::kAllocation:
      return NoStore(AllocationPage(config, argument, *key));
    case Kind::kDeliveries:
      return NoStore(Deliveries(config, req, *key));
    case Kind::kResend:
      return NoStore(ResendDelivery(argument, *key));
    case Kind::kResendDead:
      return NoStore(ResendWarehouse(config, argument, *key));
    case Kind::kEnableWebhook:
      return NoStore(EnableWebhook(config, argument, *key));
    case Kind::kNone:
      break;
  }
  return NoStore(ErrorAnswer(404, "Unknown path " + req.path));
}

ApiResponse ConsoleService::Overview(const Config& config, const ApiKey& key) {
  const TimePoint now = clock_.Now();
  const TimePoint this_minute = std::chrono::floor<std::chrono::minutes>(now);
  const TimePoint chart_since = this_minute - std::chrono::minutes(kChartMinutes - 1);
  const TimePoint latency_since = now - std::chrono::minutes(kLatencyWindowMinutes);
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto activity = store.ReadActivity(key.scope, chart_since, latency_since);
    if (!activity) return std::unexpected(activity.error());
    std::map<std::int64_t, const WarehouseActivity*> by_id;
    for (const WarehouseActivity& w : activity->warehouses) by_id[w.warehouse_id] = &w;

    std::vector<const WarehouseConfig*> shown;
    for (const WarehouseConfig& w : config.warehouses) {
      if (key.scope.Allows(w.id)) shown.push_back(&w);
    }
    std::sort(shown.begin(), shown.end(),
              [](const WarehouseConfig* a, const WarehouseConfig* b) { return a->id < b->id; });
    ordered_json warehouses = ordered_json::array();
    const WarehouseActivity none;
    for (const WarehouseConfig* w : shown) {
      auto found = by_id.find(w->id);
      const WarehouseActivity& a = found == by_id.end() ? none : *found->second;
      ordered_json row = ordered_json::object();
      row["id"] = w->id;
      row["name"] = w->name;
      row["policy"] = ToString(w->policy);
      row["webhook"] = !w->webhook ? "none" : a.disabled_at ? "disabled" : "enabled";
      row["disabledAt"] = w->webhook ? UtcIsoOrNull(a.disabled_at) : nullptr;
      row["disabledReason"] =
          w->webhook && a.disabled_at ? ordered_json(a.disabled_reason) : ordered_json(nullptr);
      row["pendingRequests"] = a.pending_requests;
      row["askedChecks"] = a.asked_checks;
      row["queuedEvents"] = a.queued_events;
      row["pendingDeliveries"] = a.pending_deliveries;
      row["deadDeliveries"] = a.dead_deliveries;
      row["lastSuccessAt"] = UtcIsoOrNull(a.last_success_at);
      row["latency"] = LatencyJson(a.call_durations);
      warehouses.push_back(std::move(row));
    }

    std::map<TimePoint, const ActivityMinute*> minutes;
    for (const ActivityMinute& m : activity->minutes) minutes[m.minute] = &m;
    ordered_json per_minute = ordered_json::array();
    for (int i = 0; i < kChartMinutes; ++i) {
      TimePoint minute = chart_since + std::chrono::minutes(i);
      auto found = minutes.find(minute);
      ordered_json m = ordered_json::object();
      m["minute"] = UtcIso(minute);
      m["delivered"] = found == minutes.end() ? 0 : found->second->delivered;
      m["failedAttempts"] = found == minutes.end() ? 0 : found->second->failed_attempts;
      m["dead"] = found == minutes.end() ? 0 : found->second->dead;
      per_minute.push_back(std::move(m));
    }

    ordered_json body = ordered_json::object();
    body["now"] = UtcIso(now);
    body["latencyWindowMinutes"] = kLatencyWindowMinutes;
    body["warehouses"] = std::move(warehouses);
    body["perMinute"] = std::move(per_minute);
    return Json(200, body);
  });
}

ApiResponse ConsoleService::AllocationPage(const Config& config, std::string_view number,
                                           const ApiKey& key) {
  const std::string not_found = "No allocation for order " + std::string(number);
  std::optional<std::int64_t> n = ParsePositiveInt(number);
  if (!n) return ErrorAnswer(404, not_found);
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto history = ReadAllocationHistory(store, *n, key.scope, /*with_attempts=*/true);
    if (!history) return std::unexpected(history.error());
    if (!*history) return ErrorAnswer(404, not_found);
    const Allocation& a = (*history)->allocation;
    // A scoped key sees an allocation only through its warehouses' requests and checks.
    if (key.scope.only && a.requests.empty() && a.checks.empty()) {
      return ErrorAnswer(404, not_found);
    }

    ordered_json allocation = ordered_json::object();
    allocation["orderNumber"] = a.order.number;
    allocation["orderId"] = a.order.id;
    allocation["state"] = ToString(a.state);
    allocation["confirmedWarehouseId"] =
        a.confirmed_warehouse_id && key.scope.Allows(*a.confirmed_warehouse_id)
            ? ordered_json(*a.confirmed_warehouse_id)
            : ordered_json(nullptr);
    allocation["currentGroup"] = a.current_group + 1;
    allocation["createdAt"] = UtcIso(a.created_at);
    allocation["updatedAt"] = UtcIso(a.updated_at);
    ordered_json groups = ordered_json::array();
    for (std::size_t g = 0; g < a.groups.size(); ++g) {
      ordered_json members = ordered_json::array();
      for (std::int64_t id : a.groups[g]) {
        if (!key.scope.Allows(id)) continue;
        members.push_back(ordered_json{{"id", id}, {"name", NameOrNull(config, id)}});
      }
      ordered_json group = ordered_json::object();
      group["group"] = g + 1;
      group["current"] = static_cast<int>(g) == a.current_group;
      group["warehouses"] = std::move(members);
      groups.push_back(std::move(group));
    }
    allocation["groups"] = std::move(groups);

    ordered_json requests = ordered_json::array();
    for (const AllocationRequest& r : a.requests) {
      requests.push_back(AskedJson(r, r.warehouse_name));
    }
    ordered_json checks = ordered_json::array();
    for (const Check& c : a.checks) {
      checks.push_back(AskedJson(c, NameOrNull(config, c.warehouse_id)));
    }
    ordered_json events = ordered_json::array();
    for (const OutboxEvent& e : (*history)->events) {
      ordered_json j = ordered_json::object();
      j["id"] = e.id;
      j["type"] = e.check_id ? "check_first" : "allocation_request";
      j["action"] = ToString(e.action);
      j["status"] = e.check_id ? ordered_json(nullptr) : ordered_json(ToString(e.status));
      j["requestId"] = e.request_id ? ordered_json(e.request_id) : ordered_json(nullptr);
      j["checkId"] = e.check_id ? ordered_json(e.check_id) : ordered_json(nullptr);
      j["warehouseId"] = e.warehouse_id;
      j["createdAt"] = UtcIso(e.created_at);
      j["deliveryId"] = e.delivery_id ? ordered_json(*e.delivery_id) : ordered_json(nullptr);
      events.push_back(std::move(j));
    }
    ordered_json deliveries = ordered_json::array();
    for (const AllocationHistory::CarriedBy& d : (*history)->deliveries) {
      ordered_json j = DeliveryJson(d.delivery);
      ordered_json attempts = ordered_json::array();
      for (const DeliveryAttempt& attempt : d.attempts) attempts.push_back(AttemptJson(attempt));
      j["attempts"] = std::move(attempts);
      deliveries.push_back(std::move(j));
    }

    ordered_json body = ordered_json::object();
    body["allocation"] = std::move(allocation);
    body["requests"] = std::move(requests);
    body["checks"] = std::move(checks);
    body["events"] = std::move(events);
    body["deliveries"] = std::move(deliveries);
    return Json(200, body);
  });
}

ApiResponse ConsoleService::Deliveries(const Config& config, const ApiRequest& req,
                                       const ApiKey& key) {
  DeliveryQuery query;
  query.scope = key.scope;
  if (auto it = req.params.find("state"); it != req.params.end() && !it->second.empty()) {
    query.state = ParseDeliveryState(it->second);
    if (!query.state) return ErrorAnswer(400, "state: must be pending, succeeded or dead");
  }
  if (auto it = req.params.find("warehouse"); it != req.params.end() && !it->second.empty()) {
    query.warehouse = ParsePositiveInt(it->second);
    if (!query.warehouse) return ErrorAnswer(400, "warehouse: must be a warehouse id");
  }
  if (auto it = req.params.find("before"); it != req.params.end() && !it->second.empty()) {
    std::optional<std::int64_t> before = ParsePositiveInt(it->second);
    if (!before) return ErrorAnswer(400, "before: must be a delivery id");
    query.before_id = *before;
  }
  if (auto it = req.params.find("limit"); it != req.params.end() && !it->second.empty()) {
    std::optional<std::int64_t> limit = ParsePositiveInt(it->second);
    if (!limit || *limit > 200) return ErrorAnswer(400, "limit: must be from 1 to 200");
    query.limit = static_cast<int>(*limit);
  }
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    // One more than the page tells whether an older page exists.
    DeliveryQuery probe = query;
    probe.limit = query.limit + 1;
    auto page = store.ListDeliveryPage(probe);
    if (!page) return std::unexpected(page.error());
    const bool more = static_cast<int>(page->size()) > query.limit;
    if (more) page->resize(query.limit);
    ordered_json deliveries = ordered_json::array();
    for (const DeliverySummary& s : *page) {
      ordered_json j = DeliveryJson(s.delivery);
      j["warehouseName"] = NameOrNull(config, s.delivery.warehouse_id);
      j["requestIds"] = s.delivery.request_ids;
      j["lastAttempt"] = s.last_attempt ? AttemptJson(*s.last_attempt) : ordered_json(nullptr);
      deliveries.push_back(std::move(j));
    }
    ordered_json body = ordered_json::object();
    body["deliveries"] = std::move(deliveries);
    body["next"] = more ? ordered_json(page->back().delivery.id) : ordered_json(nullptr);
    return Json(200, body);
  });
}

ApiResponse ConsoleService::ResendDelivery(std::string_view id, const ApiKey& key) {
  const std::string unknown = "Unknown delivery " + std::string(id);
  std::optional<std::int64_t> n = ParsePositiveInt(id);
  if (!n) return ErrorAnswer(404, unknown);
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto outcome = store.ResendDeadDelivery(*n, key.scope, clock_.Now());
    if (!outcome) return std::unexpected(outcome.error());
    switch (*outcome) {
      case ResendOutcome::kNotFound:
        return ErrorAnswer(404, unknown);
      case ResendOutcome::kNotDead:
        return ErrorAnswer(409, "Delivery " + std::to_string(*n) + " is not dead");
      case ResendOutcome::kResent:
        break;
    }
    spdlog::info("console: key {} re-sent dead delivery {}", key.name, *n);
    return Json(200, ordered_json{{"status", "ok"}, {"resent", 1}});
  });
}

ApiResponse ConsoleService::ResendWarehouse(const Config& config, std::string_view id,
                                            const ApiKey& key) {
  std::optional<std::int64_t> n = ActionWarehouse(config, id, key);
  if (!n) return ErrorAnswer(404, "Unknown warehouse " + std::string(id));
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto resent = store.ResendDead(*n, clock_.Now());
    if (!resent) return std::unexpected(resent.error());
    spdlog::info("console: key {} re-sent {} dead deliver{} of warehouse {} ({})", key.name,
                 *resent, *resent == 1 ? "y" : "ies", *n, WarehouseName(config, *n));
    return Json(200, ordered_json{{"status", "ok"}, {"resent", *resent}});
  });
}

ApiResponse ConsoleService::EnableWebhook(const Config& config, std::string_view id,
                                          const ApiKey& key) {
  std::optional<std::int64_t> n = ActionWarehouse(config, id, key);
  if (!n) return ErrorAnswer(404, "Unknown warehouse " + std::string(id));
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto enabled = store.EnableWebhook(*n);
    if (!enabled) return std::unexpected(enabled.error());
    spdlog::info("console: key {} {} the webhook of warehouse {} ({})", key.name,
                 *enabled ? "enabled" : "asked to enable (it was not disabled)", *n,
                 WarehouseName(config, *n));
    return Json(200, ordered_json{{"status", "ok"}, {"enabled", *enabled}});
  });
}

}  // namespace allocation_relay
