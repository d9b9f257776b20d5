#include "allocation_relay/render.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace allocation_relay {

using nlohmann::ordered_json;

namespace {

ordered_json RenderOrder(const OrderRef& order) {
  ordered_json o = ordered_json::object();
  o["id"] = order.id;
  o["number"] = order.number;
  return o;
}

ordered_json RenderLine(const OrderLine& line) {
  ordered_json l = ordered_json::object();
  l["lineId"] = line.line_id;
  l["quantity"] = line.quantity;
  l["stockItemId"] = line.stock_item_id;
  return l;
}

ordered_json RenderLines(const std::vector<OrderLine>& lines) {
  ordered_json a = ordered_json::array();
  for (const OrderLine& line : lines) a.push_back(RenderLine(line));
  return a;
}

}  // namespace

std::string LinesJson(std::vector<OrderLine> lines) {
  std::sort(lines.begin(), lines.end(),
            [](const OrderLine& a, const OrderLine& b) { return a.line_id < b.line_id; });
  return RenderLines(lines).dump();
}

std::vector<OrderLine> ParseLinesJson(std::string_view json) {
  std::vector<OrderLine> lines;
  for (const auto& l : nlohmann::json::parse(json)) {
    lines.push_back(OrderLine{l.at("lineId").get<std::int64_t>(),
                              l.at("quantity").get<std::int64_t>(),
                              l.at("stockItemId").get<std::int64_t>()});
  }
  return lines;
}

ordered_json RenderRequestEntry(const AllocationRequest& request, const TimeZone& zone) {
  ordered_json e = ordered_json::object();
  e["id"] = request.id;
  e["status"] = ToString(request.status);
  e["warehouseId"] = request.warehouse_id;
  e["warehouseName"] = request.warehouse_name;
  e["expirationDate"] = zone.FormatIso8601(request.expires_at);
  e["order"] = RenderOrder(request.order);
  e["lines"] = ordered_json::parse(request.lines_json);
  e["createdAt"] = zone.FormatIso8601(request.created_at);
  return e;
}

namespace {

void AppendInt(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// A JSON string as nlohmann's dump() writes it (UTF-8 kept, controls escaped). Text that is not
// plain ASCII goes through nlohmann itself, so invalid UTF-8 is replaced exactly as there.
void AppendString(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) {
      out +=
          ordered_json(std::string(s)).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
      return;
    }
  }
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of characters that need no escape
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20) continue;
    out.append(s.substr(run, i - run));
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        }
    }
  }
  out.append(s.substr(run));
  out.push_back('"');
}

}  // namespace

void AppendRequestEntry(std::string& out, const AllocationRequest& request, const TimeZone& zone) {
  out += "{\"id\":";
  AppendInt(out, request.id);
  out += ",\"status\":\"";
  out += ToString(request.status);
  out += "\",\"warehouseId\":";
  AppendInt(out, request.warehouse_id);
  out += ",\"warehouseName\":";
  AppendString(out, request.warehouse_name);
  out += ",\"expirationDate\":\"";
  out += zone.FormatIso8601(request.expires_at);
  out += "\",\"order\":{\"id\":";
  AppendString(out, request.order.id);
  out += ",\"number\":";
  AppendInt(out, request.order.number);
  out += "},\"lines\":";
  out += request.lines_json;
  out += ",\"createdAt\":\"";
  out += zone.FormatIso8601(request.created_at);
  out += "\"}";
}

ordered_json RenderAllocation(const Allocation& allocation, const TimeZone& zone) {
  ordered_json a = ordered_json::object();
  a["order"] = RenderOrder(allocation.order);
  a["lines"] = RenderLines(allocation.lines);
  a["warehouses"] = allocation.groups;
  a["state"] = ToString(allocation.state);
  a["confirmedWarehouseId"] = allocation.confirmed_warehouse_id
                                  ? ordered_json(*allocation.confirmed_warehouse_id)
                                  : ordered_json(nullptr);
  ordered_json requests = ordered_json::array();
  for (const AllocationRequest& r : allocation.requests) {
    requests.push_back(RenderRequestEntry(r, zone));
  }
  a["allocation_requests"] = std::move(requests);
  if (!allocation.checks.empty()) {
    ordered_json checks = ordered_json::array();
    for (const Check& c : allocation.checks) {
      ordered_json entry = ordered_json::object();
      entry["warehouseId"] = c.warehouse_id;
      entry["status"] = ToString(c.status);
      entry["expirationAt"] = zone.FormatIso8601(c.expires_at);
      checks.push_back(std::move(entry));
    }
    a["checks"] = std::move(checks);
  }
  return a;
}

namespace {

// LinesJson's own output read without a JSON parser (the dispatcher's hot path); false on
// anything else, which then goes through ParseLinesJson.
bool ScanCanonicalLines(std::string_view json, std::vector<OrderLine>& lines) {
  auto expect = [&](std::string_view token) {
    if (json.substr(0, token.size()) != token) return false;
    json.remove_prefix(token.size());
    return true;
  };
  auto number = [&](std::int64_t& v) {
    auto [end, ec] = std::from_chars(json.data(), json.data() + json.size(), v);
    if (ec != std::errc() || end == json.data()) return false;
    json.remove_prefix(static_cast<std::size_t>(end - json.data()));
    return true;
  };
  if (!expect("[")) return false;
  if (expect("]")) return json.empty();
  for (;;) {
    OrderLine l;
    if (!expect("{\"lineId\":") || !number(l.line_id) || !expect(",\"quantity\":") ||
        !number(l.quantity) || !expect(",\"stockItemId\":") || !number(l.stock_item_id) ||
        !expect("}")) {
      return false;
    }
    lines.push_back(l);
    if (expect("]")) return json.empty();
    if (!expect(",")) return false;
  }
}

void AppendLine(std::string& out, const OrderLine& line) {
  out += "{\"lineId\":";
  AppendInt(out, line.line_id);
  out += ",\"quantity\":";
  AppendInt(out, line.quantity);
  out += ",\"stockItemId\":";
  AppendInt(out, line.stock_item_id);
  out += '}';
}

void AppendWebhookEvent(std::string& out, const OutboxEvent& event,
                        const AllocationRequest& request, const TimeZone& zone) {
  std::vector<OrderLine> lines;
  if (!ScanCanonicalLines(request.lines_json, lines)) lines = ParseLinesJson(request.lines_json);
  // Keyed by line id; a repeated id keeps its first place and its last value.
  for (std::size_t i = 0; i < lines.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (lines[j].line_id == lines[i].line_id) {
        lines[j] = lines[i];
        lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(i--));
        break;
      }
    }
  }
  out += "{\"type\":\"allocation_request\",\"action\":\"";
  out += ToString(event.action);
  out += "\",\"date\":\"";
  out += zone.FormatLocalMicros(event.created_at);
  out += "\",\"id\":";
  AppendInt(out, request.id);
  out += ",\"data\":{\"status\":\"";
  out += ToString(event.status);
  out += "\",\"warehouseId\":";
  AppendInt(out, request.warehouse_id);
  out += ",\"expirationDate\":{\"date\":\"";
  out += zone.FormatLocalMicros(request.expires_at);
  out += "\",\"timezone_type\":3,\"timezone\":";
  AppendString(out, zone.name());
  out += "},\"order\":{\"id\":";
  AppendString(out, request.order.id);
  out += ",\"number\":";
  AppendInt(out, request.order.number);
  out += "},\"lines\":{";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    AppendInt(out, lines[i].line_id);
    out += "\":";
    AppendLine(out, lines[i]);
  }
  out += "}}}";
}

// A check_first event: `id` is the order number; `create` lists every warehouse asked with it.
void AppendCheckEvent(std::string& out, const OutboxEvent& event, const CheckEventSubject& check,
                      const TimeZone& zone) {
  out += "{\"type\":\"check_first\",\"action\":\"";
  out += ToString(event.action);
  out += "\",\"date\":\"";
  out += zone.FormatLocalMicros(event.created_at);
  out += "\",\"id\":";
  AppendInt(out, check.order_number);
  if (event.action == EventAction::kCreate) {
    out += ",\"data\":{\"warehouses\":[";
    for (std::size_t i = 0; i < check.asked.size(); ++i) {
      if (i > 0) out += ',';
      out += "{\"warehouseId\":";
      AppendInt(out, check.asked[i].first);
      out += ",\"expirationAt\":\"";
      out += zone.FormatIso8601(check.asked[i].second);
      out += "\"}";
    }
    out += "]}}";
  } else {
    out += ",\"data\":{\"warehouseId\":";
    AppendInt(out, check.warehouse_id);
    out += "}}";
  }
}

}  // namespace

void AppendAllocation(std::string& out, const Allocation& allocation, const TimeZone& zone) {
  out += "{\"order\":{\"id\":";
  AppendString(out, allocation.order.id);
  out += ",\"number\":";
  AppendInt(out, allocation.order.number);
  out += "},\"lines\":[";
  for (std::size_t i = 0; i < allocation.lines.size(); ++i) {
    if (i > 0) out += ',';
    AppendLine(out, allocation.lines[i]);
  }
  out += "],\"warehouses\":[";
  for (std::size_t g = 0; g < allocation.groups.size(); ++g) {
    if (g > 0) out += ',';
    out += '[';
    for (std::size_t i = 0; i < allocation.groups[g].size(); ++i) {
      if (i > 0) out += ',';
      AppendInt(out, allocation.groups[g][i]);
    }
    out += ']';
  }
  out += "],\"state\":\"";
  out += ToString(allocation.state);
  out += "\",\"confirmedWarehouseId\":";
  if (allocation.confirmed_warehouse_id) {
    AppendInt(out, *allocation.confirmed_warehouse_id);
  } else {
    out += "null";
  }
  out += ",\"allocation_requests\":[";
  for (std::size_t i = 0; i < allocation.requests.size(); ++i) {
    if (i > 0) out += ',';
    AppendRequestEntry(out, allocation.requests[i], zone);
  }
  out += ']';
  if (!allocation.checks.empty()) {
    out += ",\"checks\":[";
    for (std::size_t i = 0; i < allocation.checks.size(); ++i) {
      const Check& c = allocation.checks[i];
      if (i > 0) out += ',';
      out += "{\"warehouseId\":";
      AppendInt(out, c.warehouse_id);
      out += ",\"status\":\"";
      out += ToString(c.status);
      out += "\",\"expirationAt\":\"";
      out += zone.FormatIso8601(c.expires_at);
      out += "\"}";
    }
    out += ']';
  }
  out += '}';
}

std::string RenderWebhookDocument(std::span<const OutboxEvent> events,
                                  std::span<const AllocationRequest> requests,
                                  std::span<const CheckEventSubject> checks, const TimeZone& zone) {
  std::string out = "{\"events\":[";
  bool first = true;
  for (const OutboxEvent& e : events) {
    if (e.check_id != 0) {
      auto c = std::find_if(checks.begin(), checks.end(),
                            [&](const CheckEventSubject& s) { return s.check_id == e.check_id; });
      if (c == checks.end()) continue;
      if (!first) out += ',';
      first = false;
      AppendCheckEvent(out, e, *c, zone);
      continue;
    }
    auto r = std::find_if(requests.begin(), requests.end(),
                          [&](const AllocationRequest& q) { return q.id == e.request_id; });
    if (r == requests.end()) continue;
    if (!first) out += ',';
    first = false;
    AppendWebhookEvent(out, e, *r, zone);
  }
  out += "]}";
  return out;
}

std::string FormUrlEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3 / 2);
  for (unsigned char c : value) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace allocation_relay
