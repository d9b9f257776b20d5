// LogCapture: while alive, spdlog's default logger writes into a string the test can read
// (what a service logged, e.g. an action with its key's name). Restores the previous logger when
// it dies. Not thread-safe to construct or destroy while other threads log; text() is.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_LOG_CAPTURE_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_LOG_CAPTURE_H_

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

namespace allocation_relay::testing {

class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() const {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_LOG_CAPTURE_H_
