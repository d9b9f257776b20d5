#include "support/dispatcher_status.h"

#include <httplib.h>

#include <regex>
#include <string>

namespace allocation_relay::testing {

long long SucceededCalls(const Process& dispatcher) {
  std::smatch port;
  const std::string err = dispatcher.Stderr();
  if (!std::regex_search(err, port, std::regex(R"(dispatcher status on 127\.0\.0\.1:(\d+))"))) {
    return -1;
  }
  httplib::Client client("127.0.0.1", std::stoi(port[1]));
  auto r = client.Get("/metrics");
  if (!r) return -1;
  std::smatch value;
  if (!std::regex_search(
          r->body, value,
          std::regex(R"(allocation_relay_delivery_attempts_total\{outcome="succeeded"\} (\d+))"))) {
    return -1;
  }
  return std::stoll(value[1]);
}

}  // namespace allocation_relay::testing
