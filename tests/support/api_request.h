// ApiCall: an ApiRequest as the HTTP server would hand it to ApiService::Handle, from a method
// and a request target ("/path?query"), for the tests and benchmarks that skip HTTP.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_API_REQUEST_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_API_REQUEST_H_

#include <string>

#include "api_answer.h"
#include "request_parsing.h"

namespace allocation_relay::testing {

inline ApiRequest ApiCall(const std::string& method, const std::string& target,
                          const std::string& token, const std::string& body = "") {
  ApiRequest request;
  request.method = method;
  request.path = target.substr(0, target.find('?'));
  request.params = ParseQueryString(target);
  request.body = body;
  request.token = token;
  return request;
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_API_REQUEST_H_
