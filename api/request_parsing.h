// Parsing and validation of Order API input: query strings and JSON bodies, with Centra's
// error wording. Pure functions; thread-safe. Every problem found is reported, keyed by the
// parameter or top-level body field it concerns, in a stable order.
#ifndef ALLOCATION_RELAY_API_REQUEST_PARSING_H_
#define ALLOCATION_RELAY_API_REQUEST_PARSING_H_

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

#include "allocation_relay/config.h"
#include "allocation_relay/domain.h"
#include "allocation_relay/store.h"

namespace allocation_relay {

// Field name -> message, in the order the fields were checked.
using FieldErrors = nlohmann::ordered_json;

// Query parameters by name (the first value of a repeated parameter).
using QueryParams = std::map<std::string, std::string>;

inline constexpr int kPageSize = 100;

// GET /allocation-requests: status (default pending), order, warehouse, page, after.
// Unknown parameters are ignored. Returns the query or the errors of every invalid parameter.
std::variant<RequestQuery, FieldErrors> ParseRequestListQuery(const QueryParams& params);

// GET /orders/<orderNumber>/allocation-requests: status (as above, default all) and warehouse
// (a warehouse name, matched exactly). Unknown parameters, `order`, `page` and `after` among
// them, are ignored. Returns the filters (RequestQuery's statuses and warehouse_name) or the
// error of an invalid status, worded as GET /allocation-requests words it.
std::variant<RequestQuery, FieldErrors> ParseOrderRequestsQuery(const QueryParams& params);

struct RequestUpdate {
  std::int64_t id = 0;
  bool confirm = false;  // false: reject
};

// PUT /allocation-request body {"id": <int>, "status": "confirmed"|"rejected"}.
std::variant<RequestUpdate, FieldErrors> ParseRequestUpdate(const std::string& body);

// POST /check-first body {"orderNumber": <int>, "warehouseId": <int>, "accepted": <bool>}.
// On a problem, Centra's `msg`: the string "invalid request body" for a body that is not a JSON
// object, else {"<field>": "required" | "invalid value"} for each field in error (a null field
// is "required"), in the order orderNumber, warehouseId, accepted.
std::variant<CheckAnswer, nlohmann::ordered_json> ParseCheckAnswer(const std::string& body);

// POST /allocations body; `config` resolves "rule" and checks warehouses.
std::variant<NewAllocation, FieldErrors> ParseNewAllocation(const std::string& body,
                                                            const Config& config);

// The parameters of a request target's query ("/path?a=1&b=%3F" -> a:"1", b:"?"): split at
// the first '?', percent-decoded, '+' read as a space; the first of repeated names wins. A
// literal '?' inside the query is kept (Centra's example answers `status=?` with got "?").
QueryParams ParseQueryString(std::string_view target);

// A positive decimal integer that fits int64 (no sign, no spaces); nullopt otherwise.
std::optional<std::int64_t> ParsePositiveInt(std::string_view text);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_REQUEST_PARSING_H_
