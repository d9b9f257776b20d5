// Process: a child process (one of the real binaries) for integration tests. Its stdout and
// stderr go to files so a test can read them after it ends. Not thread-safe.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_PROCESS_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace allocation_relay::testing {

class Process {
 public:
  // Starts argv[0] with the rest as arguments; output goes to files under `output_dir`.
  Process(const std::vector<std::string>& argv, const std::string& output_dir);
  // Kills the process (SIGKILL) if it is still running.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // The exit code (or 128 + signal number if killed by a signal); nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool Running();
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_, err_path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// The peak resident set size of a running process (VmHWM), in KiB; -1 if unknown.
long PeakRssKb(pid_t pid);

// Runs a command to completion (killed after `timeout`, then exit_code is -1).
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& output_dir,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Polls `predicate` every 10 ms until it is true or `timeout` passes; returns its last value.
template <typename F>
bool WaitFor(F predicate, std::chrono::milliseconds timeout);

}  // namespace allocation_relay::testing

#include <thread>

template <typename F>
bool allocation_relay::testing::WaitFor(F predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return predicate();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_PROCESS_H_
