// What the API's handlers take and give (ApiRequest, ApiResponse), independent of the HTTP
// library, and the helpers every handler uses to answer: JSON bodies, the 503 of a database
// failure, and WithStore, which runs a handler's reads and writes on a pooled connection.
// Stateless; safe from any thread.
#ifndef ALLOCATION_RELAY_API_API_ANSWER_H_
#define ALLOCATION_RELAY_API_API_ANSWER_H_

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "allocation_relay/store.h"
#include "request_parsing.h"
#include "store_pool.h"

namespace allocation_relay {

struct ApiRequest {
  std::string method;  // "GET", "PUT", ...
  std::string path;
  QueryParams params;
  std::string body;
  std::string token;  // the API-Authorization header, empty if absent
};

struct ApiResponse {
  ApiResponse() = default;
  ApiResponse(int status_code, std::string json_body)
      : status(status_code), body(std::move(json_body)) {}

  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string allow;     // the Allow header of a 405
  std::string endpoint;  // the route's name, for metrics and logs
  std::vector<std::pair<std::string, std::string>> headers;  // any others
};

// `value` as JSON text; invalid UTF-8 (an echoed path, a configured name) is replaced rather
// than thrown on.
std::string Dump(const nlohmann::ordered_json& value);
ApiResponse Json(int status, const nlohmann::ordered_json& body);
// {"status":"no","errorMessages":[...]} with `status`.
ApiResponse ErrorAnswer(int status, const std::string& message);
// The 503 answer to a database failure (logged).
ApiResponse Unavailable(const StoreError& e);

// Runs `fn(Store&)`, which returns a StoreResult<ApiResponse>, on a connection borrowed from
// `pool`. A StoreError, from opening the connection or returned by `fn`, closes the connection
// if it may be broken and is answered by `on_error(error)`.
template <typename Fn, typename OnError>
ApiResponse WithStore(StorePool& pool, Fn&& fn, OnError&& on_error) {
  StoreResult<StorePool::Lease> lease = pool.Acquire();
  if (!lease) return on_error(lease.error());
  StoreResult<ApiResponse> answer = fn(**lease);
  if (answer) return std::move(*answer);
  // After these the connection may be unusable; a fresh one is opened for the next request.
  if (answer.error().kind() == StoreError::Kind::kUnavailable ||
      answer.error().kind() == StoreError::Kind::kCorrupt) {
    lease->Discard();
  }
  return on_error(answer.error());
}

template <typename Fn>
ApiResponse WithStore(StorePool& pool, Fn&& fn) {
  return WithStore(pool, std::forward<Fn>(fn), Unavailable);
}

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_API_ANSWER_H_
