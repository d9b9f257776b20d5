// allocation-dispatcherd: parses flags, loads the config, runs a Dispatcher until SIGTERM.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>

#include "allocation_relay/config.h"
#include "allocation_relay/service.h"
#include "allocation_relay/version.h"
#include "dispatcher.h"
#include "operator_commands.h"

using namespace allocation_relay;

int main(int argc, char** argv) {
  CLI::App app{"allocation-dispatcherd: delivers allocation webhooks to warehouses"};
  std::string config_path = "/etc/allocation-relay/allocation-relay.yaml";
  bool check_config = false;
  app.add_option("--config", config_path, "YAML config file")->capture_default_str();
  app.add_flag("--check-config", check_config, "validate the config file and exit");
  app.set_version_flag("--version",
                       std::string("allocation-dispatcherd (") + kProductName + ") " + kVersion);

  // Operator commands: run against the configured database while the services run.
  app.fallthrough();  // --config may follow the command name
  std::string state_text;
  std::optional<std::int64_t> warehouse;
  std::int64_t order_number = 0;
  int limit = 100;
  std::string backup_path;
  CLI::App* list = app.add_subcommand("deliveries", "list webhook deliveries");
  list->add_option("--state", state_text, "pending, succeeded or dead")
      ->check(CLI::IsMember({"pending", "succeeded", "dead"}));
  list->add_option("--warehouse", warehouse, "only this warehouse");
  list->add_option("--limit", limit, "at most this many")->capture_default_str();
  std::optional<std::int64_t> delivery;
  CLI::App* resend = app.add_subcommand("resend-dead", "queue dead deliveries again");
  resend->alias("resend");  // its first name
  CLI::Option* resend_warehouse =
      resend->add_option("--warehouse", warehouse, "only this warehouse's (default: all)");
  resend->add_option("--delivery", delivery, "only this delivery (by id)")
      ->excludes(resend_warehouse);
  CLI::App* enable = app.add_subcommand("enable-webhook", "enable a webhook disabled by 410 Gone");
  enable->add_option("--warehouse", warehouse, "the warehouse")->required();
  CLI::App* history = app.add_subcommand("history", "show an allocation's history");
  history->add_option("--order", order_number, "the order number")->required();
  CLI::App* backup = app.add_subcommand("backup", "write an online backup of the database");
  backup->add_option("--to", backup_path, "the backup file (must not exist)")->required();
  bool dry_run = false;
  CLI::App* prune = app.add_subcommand("prune", "delete now what retention no longer keeps");
  prune->add_flag("--dry-run", dry_run, "delete nothing; print what would be deleted");
  CLI11_PARSE(app, argc, argv);
  mallopt(M_ARENA_MAX, 4);  // many worker threads, little memory each: bound glibc's arenas

  try {
    auto config = std::make_shared<const Config>(LoadConfigFile(config_path));
    if (check_config) {
      std::printf("%s: configuration OK\n", config_path.c_str());
      return 0;
    }
    if (*list) {
      return ListDeliveriesCommand(*config, ParseDeliveryState(state_text), warehouse, limit,
                                   std::cout, std::cerr);
    }
    if (*resend && delivery) {
      return ResendDeadDeliveryCommand(*config, *delivery, std::cout, std::cerr);
    }
    if (*resend) return ResendDeadCommand(*config, warehouse, std::cout, std::cerr);
    if (*enable) return EnableWebhookCommand(*config, *warehouse, std::cout, std::cerr);
    if (*history) return HistoryCommand(*config, order_number, std::cout, std::cerr);
    if (*backup) return BackupCommand(*config, backup_path, std::cout, std::cerr);
    if (*prune) return PruneCommand(*config, dry_run, std::cout, std::cerr);
    ConfigureLogging("allocation-dispatcherd", config->log_level);
    SystemClock clock;
    RunUntilStopped([&] { return std::make_unique<Dispatcher>(config, clock); },
                    [&] { return std::make_shared<const Config>(LoadConfigFile(config_path)); },
                    "stopping on signal");
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return check_config ? 1 : 78;  // EX_CONFIG
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allocation-dispatcherd: %s\n", e.what());
    return 1;
  }
}
