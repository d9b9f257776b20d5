#include "request_parsing.h"

#include <charconv>
#include <limits>
#include <set>

#include "allocation_relay/percent_decoding.h"

namespace allocation_relay {
namespace {

using nlohmann::json;

std::vector<std::string_view> SplitCommas(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    parts.push_back(
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return parts;
}

// A comma list of positive integers; on failure sets `bad` to the first invalid token.
std::optional<std::vector<std::int64_t>> ParseIdList(std::string_view text, std::string& bad) {
  std::vector<std::int64_t> ids;
  for (std::string_view token : SplitCommas(text)) {
    std::optional<std::int64_t> id = ParsePositiveInt(token);
    if (!id) {
      bad = std::string(token);
      return std::nullopt;
    }
    ids.push_back(*id);
  }
  return ids;
}

// A JSON integer that fits int64.
std::optional<std::int64_t> JsonInt(const json& value) {
  if (value.is_number_unsigned()) {
    std::uint64_t u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  return std::nullopt;
}

std::optional<std::int64_t> JsonPositiveInt(const json& value) {
  std::optional<std::int64_t> v = JsonInt(value);
  if (v && *v > 0) return v;
  return std::nullopt;
}

// Parses `body` as a JSON object; nullopt if it is not one.
std::optional<json> ParseObject(const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  return parsed;
}

bool IsHex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

// The `status` parameter: one status, a comma list, `pending`, `all`; absent: `fallback`.
// Sets query.statuses (empty: any) or errors["status"].
void ParseStatusParameter(const QueryParams& params, std::vector<RequestStatus> fallback,
                          RequestQuery& query, FieldErrors& errors) {
  auto status = params.find("status");
  if (status == params.end()) {
    query.statuses = std::move(fallback);
    return;
  }
  bool all = false;
  for (std::string_view token : SplitCommas(status->second)) {
    if (token == "all") {
      all = true;
    } else if (token == "pending") {
      query.statuses.insert(query.statuses.end(), {RequestStatus::kAllocated, RequestStatus::kSent,
                                                   RequestStatus::kFailed});
    } else if (std::optional<RequestStatus> s = ParseRequestStatus(token)) {
      query.statuses.push_back(*s);
    } else {
      errors["status"] =
          "Expected \"status\" to be a single or a comma-separated list of request statuses, "
          "or \"all\", got \"" +
          std::string(token) + "\"";
      break;
    }
  }
  if (all) query.statuses.clear();
}

}  // namespace

QueryParams ParseQueryString(std::string_view target) {
  QueryParams params;
  std::size_t q = target.find('?');
  if (q == std::string_view::npos) return params;
  std::string_view query = target.substr(q + 1);
  std::size_t fragment = query.find('#');
  if (fragment != std::string_view::npos) query = query.substr(0, fragment);
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    std::string name = PercentDecode(pair.substr(0, eq), /*plus_is_space=*/true);
    std::string value = eq == std::string_view::npos
                            ? ""
                            : PercentDecode(pair.substr(eq + 1), /*plus_is_space=*/true);
    params.emplace(std::move(name), std::move(value));  // emplace keeps the first
  }
  return params;
}

std::optional<std::int64_t> ParsePositiveInt(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
  if (text.front() < '0' || text.front() > '9') return std::nullopt;
  return value;
}

std::variant<RequestQuery, FieldErrors> ParseRequestListQuery(const QueryParams& params) {
  RequestQuery query;
  query.limit = kPageSize;
  FieldErrors errors = FieldErrors::object();

  ParseStatusParameter(params,
                       {RequestStatus::kAllocated, RequestStatus::kSent, RequestStatus::kFailed},
                       query, errors);

  std::string bad;
  if (auto order = params.find("order"); order != params.end()) {
    if (auto ids = ParseIdList(order->second, bad)) {
      query.order_numbers = std::move(*ids);
    } else {
      errors["order"] =
          "Expected \"order\" to be a single or a comma-separated list of order numbers, got \"" +
          bad + "\"";
    }
  }
  if (auto warehouse = params.find("warehouse"); warehouse != params.end()) {
    if (auto ids = ParseIdList(warehouse->second, bad)) {
      query.warehouse_ids = std::move(*ids);
    } else {
      errors["warehouse"] =
          "Expected \"warehouse\" to be a single or a comma-separated list of warehouse IDs, "
          "got \"" +
          bad + "\"";
    }
  }
  if (auto page = params.find("page"); page != params.end()) {
    std::optional<std::int64_t> p = ParsePositiveInt(page->second);
    if (!p) {
      errors["page"] = "Expected \"page\" to be a positive integer, got \"" + page->second + "\"";
    } else if (*p > std::numeric_limits<std::int64_t>::max() / kPageSize) {
      query.offset = std::numeric_limits<std::int64_t>::max();  // past any end: empty page
    } else {
      query.offset = (*p - 1) * kPageSize;
    }
  }
  if (auto after = params.find("after"); after != params.end()) {
    std::optional<std::int64_t> a =
        after->second == "0" ? std::optional<std::int64_t>(0) : ParsePositiveInt(after->second);
    if (!a) {
      errors["after"] =
          "Expected \"after\" to be a non-negative integer (an allocation request "
          "id), got \"" +
          after->second + "\"";
    } else {
      query.after_id = *a;
    }
  }
  if (!errors.empty()) return errors;
  return query;
}

std::variant<RequestQuery, FieldErrors> ParseOrderRequestsQuery(const QueryParams& params) {
  RequestQuery query;
  FieldErrors errors = FieldErrors::object();
  ParseStatusParameter(params, {}, query, errors);
  if (auto warehouse = params.find("warehouse"); warehouse != params.end()) {
    query.warehouse_name = warehouse->second;
  }
  if (!errors.empty()) return errors;
  return query;
}

std::variant<RequestUpdate, FieldErrors> ParseRequestUpdate(const std::string& body) {
  std::optional<json> parsed = ParseObject(body);
  FieldErrors errors = FieldErrors::object();
  if (!parsed) {
    errors["body"] = "Expected a JSON object such as {\"id\": 67, \"status\": \"confirmed\"}";
    return errors;
  }
  RequestUpdate update;
  auto id = parsed->find("id");
  std::optional<std::int64_t> id_value;
  if (id != parsed->end()) id_value = JsonPositiveInt(*id);
  if (id == parsed->end()) {
    errors["id"] = "Missing \"id\": expected the allocation request id as an integer";
  } else if (!id_value) {
    errors["id"] = "Expected \"id\" to be a positive integer";
  } else {
    update.id = *id_value;
  }
  auto status = parsed->find("status");
  if (status != parsed->end() && status->is_string() && *status == "confirmed") {
    update.confirm = true;
  } else if (status != parsed->end() && status->is_string() && *status == "rejected") {
    update.confirm = false;
  } else {
    errors["status"] = "invalid value, expected 'confirmed' or 'rejected'";
  }
  if (!errors.empty()) return errors;
  return update;
}

std::variant<CheckAnswer, nlohmann::ordered_json> ParseCheckAnswer(const std::string& body) {
  std::optional<json> parsed = ParseObject(body);
  if (!parsed) return nlohmann::ordered_json("invalid request body");
  FieldErrors errors = FieldErrors::object();
  CheckAnswer answer;
  auto field = [&](const char* name) -> const json* {
    auto it = parsed->find(name);
    if (it == parsed->end() || it->is_null()) {
      errors[name] = "required";
      return nullptr;
    }
    return &*it;
  };
  if (const json* v = field("orderNumber")) {
    if (auto n = JsonPositiveInt(*v)) {
      answer.order_number = *n;
    } else {
      errors["orderNumber"] = "invalid value";
    }
  }
  if (const json* v = field("warehouseId")) {
    if (auto n = JsonPositiveInt(*v)) {
      answer.warehouse_id = *n;
    } else {
      errors["warehouseId"] = "invalid value";
    }
  }
  if (const json* v = field("accepted")) {
    if (v->is_boolean()) {
      answer.accepted = v->get<bool>();
    } else {
      errors["accepted"] = "invalid value";
    }
  }
  if (!errors.empty()) return errors;
  return answer;
}

std::variant<NewAllocation, FieldErrors> ParseNewAllocation(const std::string& body,
                                                            const Config& config) {
  std::optional<json> parsed = ParseObject(body);
  FieldErrors errors = FieldErrors::object();
  if (!parsed) {
    errors["body"] =
        "Expected a JSON object with \"order\", \"lines\" and \"warehouses\" or \"rule\"";
    return errors;
  }
  NewAllocation allocation;

  auto order = parsed->find("order");
  if (order == parsed->end() || !order->is_object()) {
    errors["order"] = "Expected \"order\" to be an object {\"id\": \"<hex>\", \"number\": <int>}";
  } else {
    auto id = order->find("id");
    auto number = order->find("number");
    std::optional<std::int64_t> n;
    if (number != order->end()) n = JsonPositiveInt(*number);
    if (id == order->end() || !id->is_string() || id->get<std::string>().empty() ||
        id->get<std::string>().size() > 128 || !IsHex(id->get<std::string>())) {
      errors["order"] = "Expected \"order.id\" to be a hexadecimal string";
    } else if (!n) {
      errors["order"] = "Expected \"order.number\" to be a positive integer";
    } else {
      allocation.order = OrderRef{id->get<std::string>(), *n};
    }
  }

  auto lines = parsed->find("lines");
  if (lines == parsed->end() || !lines->is_array() || lines->empty()) {
    errors["lines"] =
        "Expected \"lines\" to be a non-empty array of "
        "{\"lineId\", \"quantity\", \"stockItemId\"}";
  } else {
    std::set<std::int64_t> seen;
    for (std::size_t i = 0; i < lines->size() && !errors.contains("lines"); ++i) {
      const json& line = (*lines)[i];
      std::string where = "lines[" + std::to_string(i) + "]";
      if (!line.is_object()) {
        errors["lines"] = where + ": expected an object";
        break;
      }
      auto get = [&](const char* key) -> std::optional<std::int64_t> {
        auto it = line.find(key);
        return it == line.end() ? std::nullopt : JsonPositiveInt(*it);
      };
      std::optional<std::int64_t> line_id = get("lineId"), quantity = get("quantity"),
                                  stock = get("stockItemId");
      if (!line_id) {
        errors["lines"] = where + ": expected \"lineId\" to be a positive integer";
      } else if (!quantity) {
        errors["lines"] = where + ": expected \"quantity\" to be a positive integer";
      } else if (!stock) {
        errors["lines"] = where + ": expected \"stockItemId\" to be a positive integer";
      } else if (!seen.insert(*line_id).second) {
        errors["lines"] = where + ": duplicate lineId " + std::to_string(*line_id);
      } else {
        allocation.lines.push_back(OrderLine{*line_id, *quantity, *stock});
      }
    }
  }

  auto warehouses = parsed->find("warehouses");
  auto rule = parsed->find("rule");
  if (warehouses != parsed->end() && rule != parsed->end()) {
    errors["warehouses"] = "Give either \"warehouses\" or \"rule\", not both";
  } else if (rule != parsed->end()) {
    auto found =
        rule->is_string() ? config.rules.find(rule->get<std::string>()) : config.rules.end();
    if (found == config.rules.end()) {
      errors["rule"] = rule->is_string() ? "Unknown rule \"" + rule->get<std::string>() + "\""
                                         : std::string("Expected \"rule\" to be a rule name");
    } else {
      allocation.groups = found->second;
    }
  } else if (warehouses == parsed->end()) {
    errors["warehouses"] =
        "Expected \"warehouses\" (priority groups of warehouse IDs, e.g. [[3, 4], [7]]) or "
        "\"rule\"";
  } else if (!warehouses->is_array() || warehouses->empty()) {
    errors["warehouses"] =
        "Expected \"warehouses\" to be a non-empty array of priority groups, e.g. [[3, 4], [7]]";
  } else {
    std::set<std::int64_t> seen;
    for (std::size_t g = 0; g < warehouses->size() && !errors.contains("warehouses"); ++g) {
      const json& group = (*warehouses)[g];
      std::string where = "warehouses[" + std::to_string(g) + "]";
      if (!group.is_array() || group.empty()) {
        errors["warehouses"] = where + ": expected a non-empty array of warehouse IDs";
        break;
      }
      std::vector<std::int64_t> ids;
      for (const json& item : group) {
        std::optional<std::int64_t> id = JsonPositiveInt(item);
        if (!id) {
          errors["warehouses"] = where + ": expected warehouse IDs (positive integers)";
          break;
        }
        if (!config.FindWarehouse(*id)) {
          errors["warehouses"] = "Unknown warehouse " + std::to_string(*id);
          break;
        }
        if (!seen.insert(*id).second) {
          errors["warehouses"] = "Warehouse " + std::to_string(*id) + " is listed twice";
          break;
        }
        ids.push_back(*id);
      }
      allocation.groups.push_back(std::move(ids));
    }
  }
  if (!errors.empty()) return errors;
  return allocation;
}

}  // namespace allocation_relay
