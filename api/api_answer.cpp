#include "api_answer.h"

#include <spdlog/spdlog.h>

namespace allocation_relay {

using nlohmann::ordered_json;

std::string Dump(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

ApiResponse Json(int status, const ordered_json& body) { return ApiResponse{status, Dump(body)}; }

ApiResponse ErrorAnswer(int status, const std::string& message) {
  ordered_json body = ordered_json::object();
  body["status"] = "no";
  body["errorMessages"] = ordered_json::array({message});
  return Json(status, body);
}

ApiResponse Unavailable(const StoreError& e) {
  const char* message = "The database is unavailable; try again later.";
  switch (e.kind()) {
    case StoreError::Kind::kBusy:
      message = "The database is busy; try again.";
      break;
    case StoreError::Kind::kFull:
      message = "The database is full; try again later.";
      break;
    case StoreError::Kind::kReadOnly:
      message = "The database cannot be written; try again later.";
      break;
    default:
      break;
  }
  spdlog::warn("answering 503: {}", e.what());
  return ErrorAnswer(503, message);
}

}  // namespace allocation_relay
