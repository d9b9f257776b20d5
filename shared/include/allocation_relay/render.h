// JSON renderings of the domain, field for field as Centra shows them. Every object keeps the
// documented key order (nlohmann::ordered_json), never alphabetical. Pure; thread-safe.
#ifndef ALLOCATION_RELAY_RENDER_H_
#define ALLOCATION_RELAY_RENDER_H_

#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "allocation_relay/domain.h"
#include "allocation_relay/time_zone.h"

namespace allocation_relay {

// The canonical lines array [{"lineId":..,"quantity":..,"stockItemId":..}], in line id order.
std::string LinesJson(std::vector<OrderLine> lines);
// Reads LinesJson's output back; throws nlohmann::json::exception on anything else.
std::vector<OrderLine> ParseLinesJson(std::string_view json);

// One entry of `GET /allocation-requests`: id, status, warehouseId, warehouseName,
// expirationDate, order {id, number}, lines [{lineId, quantity, stockItemId}], createdAt;
// dates ISO-8601 with the zone's offset.
nlohmann::ordered_json RenderRequestEntry(const AllocationRequest& request, const TimeZone& zone);

// Appends exactly RenderRequestEntry(request, zone).dump() to `out` without building a JSON
// tree: the hot path of GET /allocation-requests.
void AppendRequestEntry(std::string& out, const AllocationRequest& request, const TimeZone& zone);

// The allocation object of `GET /allocations/<number>`: order, lines, warehouses, state,
// confirmedWarehouseId (or null), allocation_requests (entries as above), and, for an
// allocation with check-first warehouses, checks [{warehouseId, status, expirationAt}].
nlohmann::ordered_json RenderAllocation(const Allocation& allocation, const TimeZone& zone);

// Appends exactly RenderAllocation(allocation, zone).dump() to `out` without building a JSON
// tree (requests' lines_json as LinesJson writes it): the answer of every intake.
void AppendAllocation(std::string& out, const Allocation& allocation, const TimeZone& zone);

// The JSON document of one webhook call, compact: {"events":[...]} with one Centra event per
// entry of `events` about its request in `requests` or its check in `checks` (an event whose
// subject is missing is left out). An allocation_request event: {type, action, date, id, data
// {status, warehouseId, expirationDate {date, timezone_type, timezone}, order {id, number},
// lines keyed by line id}}. A check_first event: {type, action, date, id (the order number),
// data}, data {warehouses [{warehouseId, expirationAt}]} for `create`, else {warehouseId}.
// `date` is the event's creation time with microseconds in the zone. Written directly, without
// a JSON tree: it is on the dispatcher's hot path.
std::string RenderWebhookDocument(std::span<const OutboxEvent> events,
                                  std::span<const AllocationRequest> requests,
                                  std::span<const CheckEventSubject> checks, const TimeZone& zone);

// `application/x-www-form-urlencoded` encoding of a value (space as '+', as PHP's
// urlencode does and as Centra's payload= bodies are written).
std::string FormUrlEncode(std::string_view value);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_RENDER_H_
