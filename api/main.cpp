// allocation-api: parses flags, loads the config, runs an ApiServer until SIGTERM.
// `allocation-api keygen --name N` prints a new token and its config entry.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "allocation_relay/config.h"
#include "allocation_relay/service.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/version.h"
#include "api_server.h"
#include "key_ring.h"

using namespace allocation_relay;

int main(int argc, char** argv) {
  CLI::App app{"allocation-api: the Centra-compatible Order API for allocation requests"};
  std::string config_path = "/etc/allocation-relay/allocation-relay.yaml";
  bool check_config = false;
  app.add_option("--config", config_path, "YAML config file")->capture_default_str();
  app.add_flag("--check-config", check_config, "validate the config file and exit");
  app.set_version_flag("--version",
                       std::string("allocation-api (") + kProductName + ") " + kVersion);
  std::string key_name;
  CLI::App* keygen = app.add_subcommand("keygen", "print a new API token and its config entry");
  keygen->add_option("--name", key_name, "the key's name in the config")->required();
  CLI11_PARSE(app, argc, argv);
  mallopt(M_ARENA_MAX, 4);  // many worker threads, little memory each: bound glibc's arenas

  try {
    if (*keygen) {
      std::fputs(KeygenOutput(key_name, RandomHexToken()).c_str(), stdout);
      return 0;
    }
    auto config = std::make_shared<const Config>(LoadConfigFile(config_path));
    if (check_config) {
      std::printf("%s: configuration OK\n", config_path.c_str());
      return 0;
    }
    ConfigureLogging("allocation-api", config->log_level);
    SystemClock clock;
    RunUntilStopped([&] { return std::make_unique<ApiServer>(config, clock); },
                    [&] { return std::make_shared<const Config>(LoadConfigFile(config_path)); },
                    "stopping on signal: finishing requests in flight");
    spdlog::info("api stopped");
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return check_config ? 1 : 78;  // EX_CONFIG
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allocation-api: %s\n", e.what());
    return 1;
  }
}
