#include "allocation_relay/service.h"

#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <system_error>

namespace allocation_relay {
namespace {

sigset_t ServiceSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockServiceSignals() {
  sigset_t set = ServiceSignals();
  int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  // A broken connection must be an error value from write(), never a process-killing signal.
  signal(SIGPIPE, SIG_IGN);
}

ServiceSignal WaitForSignal() {
  sigset_t set = ServiceSignals();
  for (;;) {
    int sig = 0;
    int rc = sigwait(&set, &sig);
    if (rc == EINTR) continue;
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "sigwait");
    return sig == SIGHUP ? ServiceSignal::kReload : ServiceSignal::kStop;
  }
}

void RunUntilStopped(const std::function<std::unique_ptr<ServiceRunner>()>& make_service,
                     const std::function<std::shared_ptr<const Config>()>& load_config,
                     const std::string& stopping_message) {
  BlockServiceSignals();
  std::unique_ptr<ServiceRunner> service = make_service();
  service->Start();  // database open and port bound
  NotifyReady("ready");
  while (WaitForSignal() == ServiceSignal::kReload) {
    NotifyReloading();
    try {
      service->Reload(load_config());
    } catch (const ConfigError& e) {
      spdlog::error("reload failed, keeping the running configuration: {}", e.what());
    }
    NotifyReady("ready");
  }
  NotifyStopping();
  spdlog::info("{}", stopping_message);
  service->Stop();
}

void NotifyReady(const std::string& status) { sd_notify(0, ("READY=1\nSTATUS=" + status).c_str()); }

void NotifyReloading() { sd_notify(0, "RELOADING=1"); }

void NotifyStopping() { sd_notify(0, "STOPPING=1"); }

bool ConfigureLogging(const std::string& program, const std::string& level) {
  spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::stderr_logger_mt(program + "-" + std::to_string(getpid()));
  // journald stamps the time; the level and the message are ours.
  logger->set_pattern("%l %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return true;
}

}  // namespace allocation_relay
