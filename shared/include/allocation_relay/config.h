// Config: the YAML file both services read (SPEC section 5), loaded into plain structs.
//
// Loading validates everything up front: an unknown key, a wrong type, a bad duration, a
// duplicate warehouse id, a rule naming an unknown warehouse, a webhook without a secret or an
// unknown time zone throws ConfigError whose what() is one line naming the file, line and key:
//   "etc/relay.yaml:12: warehouses[1].id: duplicate warehouse id 3"
// A loaded Config is an immutable value; share it as std::shared_ptr<const Config>.
#ifndef ALLOCATION_RELAY_CONFIG_H_
#define ALLOCATION_RELAY_CONFIG_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "allocation_relay/domain.h"

namespace allocation_relay {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class SynchronousMode { kOff, kNormal, kFull, kExtra };
enum class SignatureScheme { kCentra, kStandardWebhooks };

// Endpoint names as API keys grant them (SPEC section 3).
inline constexpr const char* kEndpointNames[] = {
    "GET /allocation-requests", "PUT /allocation-request", "POST /allocations", "GET /allocations",
    "POST /allocations/cancel", "GET /orders/allocation-requests", "POST /check-first",
    // The operator console (SPEC section 11): its pages' data, and its actions.
    "console", "console actions"};

struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: the OS picks one (tests)
};

// Which database the services share (SPEC section 10).
enum class StoreBackendKind { kSqlite, kPostgresql };

struct StoreConfig {
  StoreBackendKind backend = StoreBackendKind::kSqlite;
  // SQLite only.
  std::string path = "/var/lib/allocation-relay/allocation.db";  // relative: to the config file
  SynchronousMode synchronous = SynchronousMode::kFull;
  std::chrono::milliseconds busy_timeout{5000};
  std::int64_t max_size = 0;  // bytes the database file may grow to; 0: no limit
  // PostgreSQL only: a libpq connection URI without a password (PGPASSWORD, ~/.pgpass or
  // passfile= give it), and the connections each process may open.
  std::string url;
  int pool = 8;
};

// A key's `rate` (SPEC section 13): a token bucket of `burst` tokens refilled at `per_second`
// tokens a second; every authenticated call takes one.
struct KeyRate {
  double per_second = 0;   // > 0
  std::int64_t burst = 1;  // >= 1
  bool operator==(const KeyRate&) const = default;
};

struct ApiKey {
  std::string name;
  std::array<unsigned char, 32> sha256{};  // SHA-256 of the token; the token itself is never kept
  std::vector<std::string> endpoints;      // a subset of kEndpointNames
  WarehouseScope scope;                    // `warehouses:` limits the key to those warehouses
  std::optional<KeyRate> rate;             // absent: no limit
};

struct ApiConfig {
  ListenAddress listen{"127.0.0.1", 8080};
  std::size_t max_body = 1048576;
  int threads = 16;            // workers running handlers; connections do not hold them
  int max_connections = 1024;  // open at once; past it new ones are closed at once
  // A connection on which nothing arrives for this long is closed (the dispatcher's status
  // port uses it too).
  std::chrono::milliseconds idle_timeout{5000};
  std::vector<ApiKey> keys;
  // HTTPS (SPEC section 13): PEM files, absolute once loaded. Absent: plain HTTP. The files are
  // checked at load (readable, parseable, the key matches the certificate) and re-read on SIGHUP.
  struct Tls {
    std::string cert;
    std::string key;
  };
  std::optional<Tls> tls;
};

struct DispatcherConfig {
  ListenAddress listen{"127.0.0.1", 9101};
  int concurrency = 64;
  std::vector<std::chrono::milliseconds> retry_schedule;  // default 5s,5m,30m,2h,5h,10h,10h
  bool allow_private_networks = false;
  // An http:// or https:// proxy URL every webhook call goes through (empty: none), e.g. for a
  // static egress address. It may hold a user and password; logs show it masked
  // (RedactUrlPassword). The private-network guard still checks the webhook's own host.
  std::string proxy;
  // The nice value of the send thread (the one making the calls) relative to the process's: it
  // is the delivery's critical path, so it goes ahead of the dispatcher's database thread and
  // other local work. Applied when permitted (root, CAP_SYS_NICE or the unit's LimitNICE).
  int send_thread_nice = -5;
};

// Retention (SPEC section 9): how long finished work is kept and how often the dispatcher
// prunes. 0 for `finished` or `attempts` keeps that kind forever; 0 for `interval` turns the
// dispatcher's pruning off (the `prune` command still runs a pass).
struct RetentionConfig {
  // A final allocation (confirmed, exhausted, cancelled) last changed longer ago is deleted
  // with its requests, outbox events and the deliveries left without events.
  std::chrono::milliseconds finished{std::chrono::days(90)};
  // Attempt records older than this are deleted (deliveries keep their counts).
  std::chrono::milliseconds attempts{std::chrono::days(30)};
  std::chrono::milliseconds interval{std::chrono::minutes(10)};
  // Not a key: the warehouses with a webhook (filled from `warehouses` by ParseConfig; nullopt:
  // unknown, every warehouse counts as one). Events of any other warehouse are never sent (it
  // polls, or is no longer configured), so they hold no allocation back from pruning.
  std::optional<std::vector<std::int64_t>> webhook_warehouses;
};

struct WebhookConfig {
  std::string url;
  // Newest first, never empty (the config's `secret`: one string or a list). standard-webhooks
  // signs with every one; centra with the first.
  std::vector<std::string> secrets;
  SignatureScheme signature = SignatureScheme::kCentra;
  std::chrono::milliseconds timeout{5000};
  int max_events_per_call = 100;
  int max_in_flight = 1;
  bool verify_tls = true;
  // Mutual TLS: PEM files of the client certificate and its key (both or neither), and of the
  // CAs the webhook's server certificate is verified against instead of the system's (empty:
  // the system's). The paths are absolute, for messages. Each file is read once, when the
  // config is loaded (start-up, SIGHUP), and checked there (parseable, the key the
  // certificate's); the calls use these contents, never the files, so a file changed on disk
  // takes effect with the next successful load, and a failed reload keeps the running ones.
  std::string client_cert;
  std::string client_key;
  std::string ca_file;
  std::string client_cert_pem;  // the files' whole texts; empty with their path
  std::string client_key_pem;   // a secret: never logged, never in a message
  std::string ca_pem;
};

struct WarehouseConfig {
  std::int64_t id = 0;
  std::string name;
  std::chrono::milliseconds confirm_timeout{std::chrono::hours(1)};
  std::optional<WebhookConfig> webhook;
  WarehousePolicy policy = WarehousePolicy::kDirectThenConfirm;
};

struct Config {
  std::string source;  // the file it was read from, for messages
  std::string timezone = "UTC";
  std::string log_level = "info";
  StoreConfig store;
  ApiConfig api;
  DispatcherConfig dispatcher;
  RetentionConfig retention;
  std::vector<WarehouseConfig> warehouses;
  std::map<std::string, PriorityGroups> rules;

  // The warehouses as the flow sees them.
  WarehouseCatalog Catalog() const;
  // Returns nullptr for an unknown id.
  const WarehouseConfig* FindWarehouse(std::int64_t id) const;
};

// Reads and validates `path`. Throws ConfigError (one line) on any problem, including an
// unreadable file. A relative store.path (backend sqlite) and relative webhook PEM paths
// (client_cert, client_key, ca_file) are resolved against the file's directory.
Config LoadConfigFile(const std::string& path);

// Validates YAML text; `source` names it in messages. Relative store.path is left as written;
// relative webhook PEM paths are read from, and made absolute against, the working directory.
Config ParseConfig(const std::string& yaml_text, const std::string& source);

// Returns `url` with every password in it replaced by `***`, everything else byte for byte:
// the one in the user info of a libpq URI ("postgresql://relay:secret@db1/relay" gives
// "postgresql://relay:***@db1/relay") and the value of each `password=` query parameter
// ("...?password=x&sslmode=require" gives "...?password=***&sslmode=require"). An empty
// password is left as it is. Use it for every URL a message or log line shows.
std::string RedactUrlPassword(std::string_view url);

// Where the store lives, for messages and log lines: the SQLite file's path, or the PostgreSQL
// URL with any password masked (RedactUrlPassword).
std::string StoreLocation(const StoreConfig& store);

// The store settings that differ between the running config and a reloaded one and take effect
// only at the next restart, one phrase each ("store.url changed to postgresql://relay@db2/relay",
// "store.pool changed to 16"); empty if none. URLs are shown masked.
std::vector<std::string> StoreChangesForRestart(const StoreConfig& running,
                                                const StoreConfig& loaded);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_CONFIG_H_
