// ApiService: the Order API's behaviour, independent of the HTTP library.
//
// Handle() routes a request, checks its key, validates its input and runs it against the
// store, producing the exact Centra-compatible answer (SPEC section 3). Database failures become
// 503 answers with a JSON body; nothing a client sends makes it throw.
//
// Thread-safe: Handle() runs on every HTTP worker at once (each borrows its own Store from the
// pool); Reload() swaps the configuration snapshot atomically.
#ifndef ALLOCATION_RELAY_API_API_SERVICE_H_
#define ALLOCATION_RELAY_API_API_SERVICE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "allocation_relay/clock.h"
#include "allocation_relay/config.h"
#include "allocation_relay/http_server.h"
#include "allocation_relay/thread_annotations.h"
#include "allocation_relay/time_zone.h"
#include "api_answer.h"
#include "api_metrics.h"
#include "console_service.h"
#include "key_ring.h"
#include "rate_limiter.h"
#include "request_parsing.h"
#include "store_pool.h"

namespace allocation_relay {

class ApiService {
 public:
  // Reads the HTTP server's connection counters for /metrics; called on worker threads.
  using ConnectionCounterSource = std::function<HttpServer::Counters()>;

  // `clock` must outlive the service. `connections`, if given, adds the connection counters to
  // the /metrics answer.
  ApiService(std::shared_ptr<const Config> config, const Clock& clock,
             ConnectionCounterSource connections = nullptr);

  ApiResponse Handle(const ApiRequest& request);

  // Takes new keys, warehouses, rules and time zone for the requests that start after it. The
  // rate-limit buckets of keys whose rate did not change keep their tokens; others start full.
  void Reload(std::shared_ptr<const Config> config);

  ApiMetrics& metrics() { return metrics_; }

 private:
  // Everything the handlers read from the config, swapped whole on reload.
  struct Context {
    std::shared_ptr<const Config> config;
    WarehouseCatalog catalog;
    KeyRing keys;
    RateLimiter limiter;  // the keys' rate limits (SPEC section 13)
    TimeZone zone;
  };
  // `previous`: the context being replaced, whose rate-limit buckets carry over.
  static std::shared_ptr<const Context> MakeContext(std::shared_ptr<const Config> config,
                                                    TimePoint now,
                                                    const Context* previous = nullptr);
  std::shared_ptr<const Context> context() const;

  ApiResponse ListRequests(const Context& ctx, const ApiRequest& req, const ApiKey& key);
  ApiResponse UpdateRequest(const Context& ctx, const ApiRequest& req, const ApiKey& key);
  ApiResponse CreateAllocation(const Context& ctx, const ApiRequest& req, const ApiKey& key);
  // GET /orders/<number>/allocation-requests (SPEC section 12).
  ApiResponse ListOrderRequests(const Context& ctx, const ApiRequest& req,
                                const std::string& number, const ApiKey& key);
  ApiResponse GetAllocation(const Context& ctx, const std::string& number, const ApiKey& key);
  ApiResponse CancelAllocation(const Context& ctx, const std::string& number, const ApiKey& key);
  ApiResponse AnswerCheck(const Context& ctx, const ApiRequest& req, const ApiKey& key);
  ApiResponse Health();
  ApiResponse Metrics();
  // The allocation's GET answer, its requests limited to `key`'s warehouses.
  static StoreResult<ApiResponse> AllocationAnswer(const Context& ctx, Store& store,
                                                   std::int64_t number, const ApiKey& key);
  // The same for an allocation in hand (an intake's, as its write stored it).
  static ApiResponse AllocationAnswer(const Context& ctx, Allocation allocation, const ApiKey& key);

  const Clock& clock_;
  ConnectionCounterSource connections_;
  StorePool pool_;
  ConsoleService console_;
  ApiMetrics metrics_;
  Mutex reload_mu_;  // one Reload() at a time, so none loses another's buckets
  mutable Mutex context_mu_;
  std::shared_ptr<const Context> context_ GUARDED_BY(context_mu_);
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_API_SERVICE_H_
