// ConsoleService: the operator console (SPEC section 11, docs/console.md) behind allocation-api:
// its page and assets (built into the binary) under /console/, and its JSON endpoints under
// /console/api/: the overview, an allocation's history, the deliveries list, and the actions
// (re-send dead deliveries, enable a webhook), which run the same store operations as the
// dispatcher's operator commands and are logged with the key's name.
//
// Thread-safe: Handle() runs on every HTTP worker at once; each call borrows its own Store.
#ifndef ALLOCATION_RELAY_API_CONSOLE_SERVICE_H_
#define ALLOCATION_RELAY_API_CONSOLE_SERVICE_H_

#include <string_view>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "api_answer.h"
#include "key_ring.h"
#include "rate_limiter.h"
#include "store_pool.h"

namespace allocation_relay {

class ConsoleService {
 public:
  // The grants (entries of kEndpointNames) that open the console and its actions.
  static constexpr const char* kReadGrant = "console";
  static constexpr const char* kActionsGrant = "console actions";
  // The overview's chart and latency windows.
  static constexpr int kChartMinutes = 180;
  static constexpr int kLatencyWindowMinutes = 60;

  // `clock` and `pool` must outlive the service.
  ConsoleService(const Clock& clock, StorePool& pool) : clock_(clock), pool_(pool) {}

  // True for /console and every path under /console/.
  static bool Serves(std::string_view path);

  // Answers a request for a path Serves(); `config`, `keys` and `limiter` are the snapshot of
  // the request (the JSON endpoints are rate limited as the Order API: after the token, before
  // the grant). Sets the answer's `endpoint` (for metrics) and the console's security headers.
  ApiResponse Handle(const ApiRequest& req, const Config& config, const KeyRing& keys,
                     const RateLimiter& limiter);

 private:
  ApiResponse Route(const ApiRequest& req, const Config& config, const KeyRing& keys,
                    const RateLimiter& limiter, std::string& endpoint);
  ApiResponse Overview(const Config& config, const ApiKey& key);
  ApiResponse AllocationPage(const Config& config, std::string_view number, const ApiKey& key);
  ApiResponse Deliveries(const Config& config, const ApiRequest& req, const ApiKey& key);
  ApiResponse ResendDelivery(std::string_view id, const ApiKey& key);
  ApiResponse ResendWarehouse(const Config& config, std::string_view id, const ApiKey& key);
  ApiResponse EnableWebhook(const Config& config, std::string_view id, const ApiKey& key);

  const Clock& clock_;
  StorePool& pool_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_CONSOLE_SERVICE_H_
