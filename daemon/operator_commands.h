// The operator commands of allocation-dispatcherd (SPEC section 6): list deliveries, re-send
// dead ones, enable a disabled webhook, show an allocation's history, back up the database,
// prune what retention no longer keeps.
// They work on the database named by the config while both services run. Each prints its
// answer to `out`, a problem to `err`, and returns the process exit code (0 ok, 1 failure).
#ifndef ALLOCATION_RELAY_DAEMON_OPERATOR_COMMANDS_H_
#define ALLOCATION_RELAY_DAEMON_OPERATOR_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "allocation_relay/config.h"
#include "allocation_relay/domain.h"

namespace allocation_relay {

int ListDeliveriesCommand(const Config& config, std::optional<DeliveryState> state,
                          std::optional<std::int64_t> warehouse, int limit, std::ostream& out,
                          std::ostream& err);
int ResendDeadCommand(const Config& config, std::optional<std::int64_t> warehouse,
                      std::ostream& out, std::ostream& err);
// One dead delivery goes out again: "delivery 12 of warehouse 3 queued again"; 1 with a line on
// `err` if there is no such delivery or it is not dead.
int ResendDeadDeliveryCommand(const Config& config, std::int64_t delivery_id, std::ostream& out,
                              std::ostream& err);
int EnableWebhookCommand(const Config& config, std::int64_t warehouse, std::ostream& out,
                         std::ostream& err);
int HistoryCommand(const Config& config, std::int64_t order_number, std::ostream& out,
                   std::ostream& err);
// An online backup of the SQLite file to `path` (which must not exist). On PostgreSQL it opens
// nothing and returns 1 with one line on `err` saying to use pg_dump, with the URL masked.
int BackupCommand(const Config& config, const std::string& path, std::ostream& out,
                  std::ostream& err);
// One prune pass now with config.retention (the dispatcher's pass, paced the same way), then
// one line per kind: "allocations 12", "requests 30", "events 45", "deliveries 6",
// "attempts 80". With `dry_run` nothing is deleted: a first line says so and the counts are
// what would be. A database error is reported on `err` (the counts are printed only if rows
// were deleted before it) and returns 1.
int PruneCommand(const Config& config, bool dry_run, std::ostream& out, std::ostream& err);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_OPERATOR_COMMANDS_H_
