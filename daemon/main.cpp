// allocation-dispatcherd: parses flags, loads the config, runs a Dispatcher until SIGTERM.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "allocation_relay/config.h"
#include "allocation_relay/service.h"
#include "allocation_relay/version.h"
#include "dispatcher.h"

using namespace allocation_relay;

int main(int argc, char** argv) {
  CLI::App app{"allocation-dispatcherd: delivers allocation webhooks to warehouses"};
  std::string config_path = "/etc/allocation-relay/allocation-relay.yaml";
  bool check_config = false;
  app.add_option("--config", config_path, "YAML config file")->capture_default_str();
  app.add_flag("--check-config", check_config, "validate the config file and exit");
  app.set_version_flag("--version",
                       std::string("allocation-dispatcherd (") + kProductName + ") " + kVersion);
  CLI11_PARSE(app, argc, argv);
  mallopt(M_ARENA_MAX, 4);  // many worker threads, little memory each: bound glibc's arenas

  try {
    auto config = std::make_shared<const Config>(LoadConfigFile(config_path));
    if (check_config) {
      std::printf("%s: configuration OK\n", config_path.c_str());
      return 0;
    }
    ConfigureLogging("allocation-dispatcherd", config->log_level);
    BlockServiceSignals();
    SystemClock clock;
    Dispatcher dispatcher(config, clock);
    dispatcher.Start();
    while (WaitForSignal() == ServiceSignal::kReload) {
      try {
        dispatcher.Reload(std::make_shared<const Config>(LoadConfigFile(config_path)));
      } catch (const ConfigError& e) {
        spdlog::error("reload failed, keeping the running configuration: {}", e.what());
      }
    }
    spdlog::info("stopping on signal");
    dispatcher.Stop();
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return check_config ? 1 : 78;  // EX_CONFIG
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allocation-dispatcherd: %s\n", e.what());
    return 1;
  }
}
