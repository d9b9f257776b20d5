#include "api_service.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <sstream>

#include "allocation_relay/render.h"

namespace allocation_relay {
namespace {

using nlohmann::ordered_json;

ApiResponse StatusNo(ordered_json messages) {
  ordered_json body = ordered_json::object();
  body["status"] = "no";
  body["errorMessages"] = std::move(messages);
  return Json(200, body);
}

template <typename T>
std::optional<T> ValueIfAny(StoreResult<T>&& result) {
  if (!result) return std::nullopt;
  return std::move(*result);
}

ApiResponse MetricsAnswer(std::string body) {
  ApiResponse res{200, std::move(body)};
  res.content_type = "text/plain; version=0.0.4";
  return res;
}

ApiResponse UpdateAnswer(bool success, ordered_json messages) {
  ordered_json body = ordered_json::object();
  body["success"] = success;
  body["errorMessages"] = std::move(messages);
  return Json(200, body);
}

struct Route {
  enum class Kind {
    kNone,
    kHealth,
    kMetrics,
    kList,
    kUpdate,
    kCreate,
    kGet,
    kCancel,
    kOrderRequests,
    kCheck
  };
  Kind kind = Kind::kNone;
  const char* endpoint = "unknown";  // the name keys are granted by
  const char* method = "";           // the one method the path answers
  std::string order_number;          // the <orderNumber> path segment
};

Route Resolve(const std::string& path) {
  using K = Route::Kind;
  if (path == "/health") return {K::kHealth, "GET /health", "GET", {}};
  if (path == "/metrics") return {K::kMetrics, "GET /metrics", "GET", {}};
  if (path == "/allocation-requests") {
    return {K::kList, "GET /allocation-requests", "GET", {}};
  }
  if (path == "/allocation-request") return {K::kUpdate, "PUT /allocation-request", "PUT", {}};
  if (path == "/allocations") return {K::kCreate, "POST /allocations", "POST", {}};
  if (path == "/check-first") return {K::kCheck, "POST /check-first", "POST", {}};
  // /orders/<orderNumber>/allocation-requests, the segment neither empty nor holding a '/'.
  constexpr std::string_view kOrders = "/orders/";
  constexpr std::string_view kOrderRequests = "/allocation-requests";
  if (path.size() > kOrders.size() + kOrderRequests.size() && path.starts_with(kOrders) &&
      path.ends_with(kOrderRequests)) {
    std::string number =
        path.substr(kOrders.size(), path.size() - kOrders.size() - kOrderRequests.size());
    if (number.find('/') == std::string::npos) {
      return {K::kOrderRequests, "GET /orders/allocation-requests", "GET", number};
    }
  }
  constexpr std::string_view kPrefix = "/allocations/";
  if (path.starts_with(kPrefix)) {
    std::string rest = path.substr(kPrefix.size());
    std::size_t slash = rest.find('/');
    if (slash == std::string::npos && !rest.empty())
      return {K::kGet, "GET /allocations", "GET", rest};
    if (slash != std::string::npos && slash > 0 && rest.substr(slash) == "/cancel") {
      return {K::kCancel, "POST /allocations/cancel", "POST", rest.substr(0, slash)};
    }
  }
  return {};
}

// {"status":"ok","allocation_requests":[...]}: the list of GET /allocation-requests and of
// GET /orders/<n>/allocation-requests.
ApiResponse RequestListAnswer(const std::vector<AllocationRequest>& requests,
                              const TimeZone& zone) {
  std::string body;
  body.reserve(300 * requests.size() + 64);
  body += R"({"status":"ok","allocation_requests":[)";
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (i) body += ',';
    AppendRequestEntry(body, requests[i], zone);
  }
  body += "]}";
  return ApiResponse{200, std::move(body)};
}

// Centra's {"status":"no","msg":...}, the answer of its newer endpoints (the per-order list,
// check-first); `msg` is a string or an object of field errors.
ApiResponse StatusNoMsg(ordered_json msg) {
  ordered_json body = ordered_json::object();
  body["status"] = "no";
  body["msg"] = std::move(msg);
  return Json(200, body);
}

// For an order it does not know: {"status":"no","msg":"Unknown order id: 1095"}, the path
// segment repeated as written.
ApiResponse UnknownOrder(const std::string& number) {
  return StatusNoMsg("Unknown order id: " + number);
}

ordered_json AllocationNotFound() {
  ordered_json messages = ordered_json::object();
  messages["order"] = "Allocation not found";
  return messages;
}

}  // namespace

ApiService::ApiService(std::shared_ptr<const Config> config, const Clock& clock,
                       ConnectionCounterSource connections)
    : clock_(clock),
      connections_(std::move(connections)),
      pool_(StoreOptionsFrom(config->store)),
      console_(clock, pool_),
      context_(MakeContext(std::move(config), clock.Now())) {}

std::shared_ptr<const ApiService::Context> ApiService::MakeContext(
    std::shared_ptr<const Config> config, TimePoint now, const Context* previous) {
  std::optional<TimeZone> zone = TimeZone::Find(config->timezone);
  if (!zone) throw ConfigError("timezone: unknown time zone \"" + config->timezone + "\"");
  WarehouseCatalog catalog = config->Catalog();
  KeyRing keys(config->api.keys);
  RateLimiter limiter(config->api.keys, now, previous ? &previous->limiter : nullptr);
  return std::make_shared<const Context>(
      Context{std::move(config), std::move(catalog), std::move(keys), std::move(limiter), *zone});
}

std::shared_ptr<const ApiService::Context> ApiService::context() const {
  MutexLock lock(context_mu_);
  return context_;
}

void ApiService::Reload(std::shared_ptr<const Config> config) {
  MutexLock reloading(reload_mu_);
  std::shared_ptr<const Context> previous = context();
  std::shared_ptr<const Context> next =
      MakeContext(std::move(config), clock_.Now(), previous.get());
  MutexLock lock(context_mu_);
  context_ = std::move(next);
}

ApiResponse ApiService::Handle(const ApiRequest& req) {
  auto started = std::chrono::steady_clock::now();
  std::shared_ptr<const Context> ctx = context();
  if (ConsoleService::Serves(req.path)) {
    ApiResponse res = console_.Handle(req, *ctx->config, ctx->keys, ctx->limiter);
    metrics_.Record(
        res.endpoint, res.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return res;
  }
  Route route = Resolve(req.path);
  ApiResponse res;
  bool head_as_get = req.method == "HEAD" && std::string_view(route.method) == "GET";
  if (route.kind == Route::Kind::kNone) {
    ordered_json messages = ordered_json::array({"Unknown path " + req.path});
    res = Json(404, ordered_json{{"status", "no"}, {"errorMessages", messages}});
  } else if (req.method != route.method && !head_as_get) {
    ordered_json messages =
        ordered_json::array({"Method " + req.method + " is not allowed on " + req.path});
    res = Json(405, ordered_json{{"status", "no"}, {"errorMessages", messages}});
    res.allow = route.method;
  } else if (route.kind == Route::Kind::kHealth) {
    res = Health();
  } else if (route.kind == Route::Kind::kMetrics) {
    res = Metrics();
  } else if (const ApiKey* key = ctx->keys.Authenticate(req.token); key == nullptr) {
    res = Json(401, ordered_json{{"status", "Unauthorized"}});
  } else if (std::optional<ApiResponse> refused = ctx->limiter.Admit(*key, clock_.Now())) {
    res = std::move(*refused);  // before the grant (SPEC section 13); nothing is run
  } else if (!KeyRing::Allows(*key, route.endpoint)) {
    res = Json(403, ordered_json{{"status", "Not Allowed"}});
  } else {
    switch (route.kind) {
      case Route::Kind::kList:
        res = ListRequests(*ctx, req, *key);
        break;
      case Route::Kind::kUpdate:
        res = UpdateRequest(*ctx, req, *key);
        break;
      case Route::Kind::kCreate:
        res = CreateAllocation(*ctx, req, *key);
        break;
      case Route::Kind::kGet:
        res = GetAllocation(*ctx, route.order_number, *key);
        break;
      case Route::Kind::kCancel:
        res = CancelAllocation(*ctx, route.order_number, *key);
        break;
      case Route::Kind::kCheck:
        res = AnswerCheck(*ctx, req, *key);
        break;
      case Route::Kind::kOrderRequests:
        res = ListOrderRequests(*ctx, req, route.order_number, *key);
        break;
      default:
        break;
    }
  }
  res.endpoint = route.endpoint;
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics_.Record(res.endpoint, res.status, seconds);
  return res;
}

ApiResponse ApiService::ListRequests(const Context& ctx, const ApiRequest& req, const ApiKey& key) {
  std::variant<RequestQuery, FieldErrors> parsed = ParseRequestListQuery(req.params);
  if (auto* errors = std::get_if<FieldErrors>(&parsed)) return StatusNo(std::move(*errors));
  RequestQuery& query = std::get<RequestQuery>(parsed);
  query.scope = key.scope;
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto requests = store.ListRequests(query);
    if (!requests) return std::unexpected(requests.error());
    return RequestListAnswer(*requests, ctx.zone);
  });
}

ApiResponse ApiService::ListOrderRequests(const Context& ctx, const ApiRequest& req,
                                          const std::string& number, const ApiKey& key) {
  // The parameters first: a bad status is reported whether or not the order exists.
  std::variant<RequestQuery, FieldErrors> parsed = ParseOrderRequestsQuery(req.params);
  if (auto* errors = std::get_if<FieldErrors>(&parsed)) return StatusNo(std::move(*errors));
  // As GET /allocations/<n>: a segment that is not a positive integer names no order.
  std::optional<std::int64_t> n = ParsePositiveInt(number);
  if (!n) return UnknownOrder(number);
  RequestQuery& filters = std::get<RequestQuery>(parsed);
  filters.scope = key.scope;
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto requests = store.ListOrderRequests(*n, filters);
    if (!requests) return std::unexpected(requests.error());
    if (!*requests) return UnknownOrder(number);
    return RequestListAnswer(**requests, ctx.zone);
  });
}

ApiResponse ApiService::UpdateRequest(const Context& ctx, const ApiRequest& req,
                                      const ApiKey& key) {
  std::variant<RequestUpdate, FieldErrors> parsed = ParseRequestUpdate(req.body);
  if (auto* errors = std::get_if<FieldErrors>(&parsed)) {
    return UpdateAnswer(false, std::move(*errors));
  }
  const RequestUpdate& update = std::get<RequestUpdate>(parsed);
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    StoreResult<UpdateResult> result =
        update.confirm ? store.ConfirmRequest(update.id, key.scope, clock_.Now())
                       : store.RejectRequest(update.id, key.scope, clock_.Now(), ctx.catalog);
    if (!result) return std::unexpected(result.error());
    switch (result->outcome) {
      case UpdateResult::Outcome::kUpdated:
        spdlog::info("request {} {} by key {}", update.id,
                     update.confirm ? "confirmed" : "rejected", key.name);
        return UpdateAnswer(true, ordered_json::array());
      case UpdateResult::Outcome::kNotFound:
        return UpdateAnswer(false, ordered_json::array({kRequestNotFoundMessage}));
      case UpdateResult::Outcome::kWrongStatus:
        return UpdateAnswer(false, ordered_json::array({CannotUpdateMessage(result->status)}));
    }
    return UpdateAnswer(false, ordered_json::array({kRequestNotFoundMessage}));
  });
}

StoreResult<ApiResponse> ApiService::AllocationAnswer(const Context& ctx, Store& store,
                                                      std::int64_t number, const ApiKey& key) {
  auto allocation = store.GetAllocationByOrder(number);
  if (!allocation) return std::unexpected(allocation.error());
  if (!*allocation) return StatusNo(AllocationNotFound());
  return AllocationAnswer(ctx, std::move(**allocation), key);
}

ApiResponse ApiService::AllocationAnswer(const Context& ctx, Allocation allocation,
                                         const ApiKey& key) {
  std::erase_if(allocation.requests,
                [&](const AllocationRequest& r) { return !key.scope.Allows(r.warehouse_id); });
  std::erase_if(allocation.checks,
                [&](const Check& c) { return !key.scope.Allows(c.warehouse_id); });
  std::string body;
  body.reserve(400 + 300 * allocation.requests.size());
  body += R"({"status":"ok","allocation":)";
  AppendAllocation(body, allocation, ctx.zone);
  body += '}';
  return ApiResponse{200, std::move(body)};
}

ApiResponse ApiService::CreateAllocation(const Context& ctx, const ApiRequest& req,
                                         const ApiKey& key) {
  std::variant<NewAllocation, FieldErrors> parsed = ParseNewAllocation(req.body, *ctx.config);
  if (auto* errors = std::get_if<FieldErrors>(&parsed)) return StatusNo(std::move(*errors));
  const NewAllocation& allocation = std::get<NewAllocation>(parsed);
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto created = store.CreateAllocation(allocation, clock_.Now(), ctx.catalog);
    if (!created) return std::unexpected(created.error());
    if (created->outcome == CreateResult::Outcome::kDuplicateOrder) {
      ordered_json messages = ordered_json::object();
      messages["order"] =
          "Order " + std::to_string(allocation.order.number) + " is already allocated";
      return StatusNo(std::move(messages));
    }
    spdlog::info("allocation for order {} created by key {}", allocation.order.number, key.name);
    // As stored by the write: no read after it (which would find the reading connection's
    // cache outdated by the write, and read through it again).
    return AllocationAnswer(ctx, std::move(created->allocation), key);
  });
}

ApiResponse ApiService::GetAllocation(const Context& ctx, const std::string& number,
                                      const ApiKey& key) {
  std::optional<std::int64_t> n = ParsePositiveInt(number);
  if (!n) return StatusNo(AllocationNotFound());
  return WithStore(pool_, [&](Store& store) { return AllocationAnswer(ctx, store, *n, key); });
}

ApiResponse ApiService::CancelAllocation(const Context& ctx, const std::string& number,
                                         const ApiKey& key) {
  std::optional<std::int64_t> n = ParsePositiveInt(number);
  if (!n) return StatusNo(AllocationNotFound());
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    auto cancelled = store.CancelAllocation(*n, clock_.Now());
    if (!cancelled) return std::unexpected(cancelled.error());
    switch (cancelled->outcome) {
      case CancelResult::Outcome::kNotFound:
        return StatusNo(AllocationNotFound());
      case CancelResult::Outcome::kNotOpen: {
        ordered_json messages = ordered_json::object();
        messages["order"] = "Allocation is " + std::string(ToString(cancelled->state)) +
                            " and can no longer be cancelled";
        return StatusNo(std::move(messages));
      }
      case CancelResult::Outcome::kCancelled:
        break;
    }
    spdlog::info("allocation for order {} cancelled by key {}", *n, key.name);
    return AllocationAnswer(ctx, store, *n, key);
  });
}

ApiResponse ApiService::AnswerCheck(const Context& ctx, const ApiRequest& req, const ApiKey& key) {
  std::variant<CheckAnswer, ordered_json> parsed = ParseCheckAnswer(req.body);
  if (auto* msg = std::get_if<ordered_json>(&parsed)) return StatusNoMsg(std::move(*msg));
  const CheckAnswer& answer = std::get<CheckAnswer>(parsed);
  return WithStore(pool_, [&](Store& store) -> StoreResult<ApiResponse> {
    StoreResult<CheckResult> result =
        store.AnswerCheck(answer, key.scope, clock_.Now(), ctx.catalog);
    if (!result) return std::unexpected(result.error());
    switch (result->outcome) {
      case CheckResult::Outcome::kAnswered:
        spdlog::info("check of order {} {} by warehouse {} (key {})", answer.order_number,
                     answer.accepted ? "accepted" : "rejected", answer.warehouse_id, key.name);
        return Json(200, ordered_json{{"status", "ok"}});
      case CheckResult::Outcome::kUnknown:
        return StatusNoMsg(kOrderDoesNotExistMessage);
      case CheckResult::Outcome::kFailed:
        return StatusNoMsg(kFailedToAllocateMessage);
    }
    return StatusNoMsg(kFailedToAllocateMessage);
  });
}

ApiResponse ApiService::Health() {
  return WithStore(pool_, [](Store& store) -> StoreResult<ApiResponse> {
    if (auto ping = store.Ping(); !ping) return std::unexpected(ping.error());
    return Json(200, ordered_json{{"status", "ok"}});
  });
}

ApiResponse ApiService::Metrics() {
  // A scrape is answered even when the database is not: `database_up` says so, and what could
  // not be read is left out.
  ApiResponse res = WithStore(
      pool_,
      [&](Store& store) -> StoreResult<ApiResponse> {
        bool up = store.Ping().has_value();
        std::optional requests = ValueIfAny(store.CountRequestsByStatus());
        std::optional allocations = ValueIfAny(store.CountAllocationsByState());
        std::optional checks = ValueIfAny(store.CountChecksByStatus());
        return MetricsAnswer(
            metrics_.Render(up, requests, allocations, store.GroupStats(), checks));
      },
      [&](const StoreError&) {
        return MetricsAnswer(metrics_.Render(false, std::nullopt, std::nullopt));
      });
  res.body += RenderRateLimited(context()->limiter.Refusals());
  if (connections_) {
    std::ostringstream out;
    WriteConnectionMetrics(out, connections_());
    res.body += out.str();
  }
  return res;
}

}  // namespace allocation_relay
