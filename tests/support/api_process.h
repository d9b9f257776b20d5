// ApiProcess: the real allocation-api binary on a test database (support/test_database.h: its
// own, or one shared with another process) and an OS-chosen port, with an HTTP client for it.
// Warehouses 3 Amsterdam, 4 Tokyo (1h), 7 Central (2h), 9 Quick (confirm timeout 1s); rule
// "nordics" [[3,4],[7]]; keys: "oms-token" (every endpoint), "pos3-token" (warehouse endpoints,
// warehouse 3 only), "reader-token" (GET /allocation-requests only).
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_API_PROCESS_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_API_PROCESS_H_

#include <httplib.h>
#include <signal.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "allocation_relay/store.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection failed)
  std::string body;
  std::string content_type;
  httplib::Headers headers;
  nlohmann::ordered_json Json() const { return nlohmann::ordered_json::parse(body); }
};

struct ApiProcessOptions {
  std::string extra;                    // appended to the config file
  std::string busy_timeout = "5s";      // SQLite only (the store's last key there)
  std::map<int, std::string> webhooks;  // warehouse id -> inline YAML of its `webhook:`
  std::string dispatcher =
      "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [200ms, 200ms]}";
  // Further `warehouses:` entries after 3, 4, 7 and 9, each a line "  - {id: 11, ...}\n", and
  // further `api.keys` entries after the test keys, each a line "    - {name: ..., ...}\n".
  std::string more_warehouses;
  std::string more_keys;
  // The database. Unset: SQLite's relay.db beside the config file (a path relative to it), or,
  // on PostgreSQL, a new test database the ApiProcess owns (it sets this to that database's
  // options). Set: that database, e.g. another ApiProcess's store_options() to share it (SQLite:
  // only its path is used; synchronous stays normal and busy_timeout is the string above).
  std::optional<StoreOptions> store;
};

class ApiProcess {
 public:
  // `extra_config` is appended to the config file (more warehouses, rules, ...).
  explicit ApiProcess(const std::string& extra_config = "", const std::string& busy_timeout = "5s");
  explicit ApiProcess(const ApiProcessOptions& options);
  ~ApiProcess();

  // Stops the process with `signal` and returns its exit status (SIGKILL: killed, -1 or so);
  // Start() runs it again on the same directory, config and database (a new port).
  int Stop(int signal = SIGTERM);
  void Start();

  int port() const { return port_; }
  const TempDir& dir() const { return dir_; }
  // The options it was started with, `store` set when the database is not the default relay.db:
  // Config(options()) is its config file again.
  const ApiProcessOptions& options() const { return options_; }
  // Its database, for further connections (set create_and_migrate false) or another process.
  // SQLite: {DatabasePath(), synchronous normal, busy_timeout 5 s}.
  StoreOptions store_options() const;
  // SQLite only: the database file (relay.db beside the config unless options().store says).
  std::string DatabasePath() const { return store_options().path; }
  std::string ConfigPath() const { return dir_.File("relay.yaml"); }
  Process& process() { return *process_; }

  HttpAnswer Get(const std::string& path, const std::string& token = "oms-token");
  HttpAnswer Put(const std::string& path, const std::string& body,
                 const std::string& token = "oms-token");
  HttpAnswer Post(const std::string& path, const std::string& body,
                  const std::string& token = "oms-token");
  HttpAnswer Send(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& token);

  // POST /allocations for order `number` with `groups` (JSON text); returns the answer JSON.
  nlohmann::ordered_json CreateAllocation(std::int64_t number,
                                          const std::string& groups = "[[3,4],[7]]");
  // PUT /allocation-request {"id": id, "status": status}; returns the answer JSON.
  nlohmann::ordered_json Update(std::int64_t id, const std::string& status,
                                const std::string& token = "oms-token");

  // The config file's text (its `store:` from `options.store`, see ApiProcessOptions).
  static std::string Config(const std::string& extra, const std::string& busy_timeout);
  static std::string Config(const ApiProcessOptions& options);

 private:
  TempDir dir_;
  std::unique_ptr<TestDatabase> database_;  // when options.store was not given
  ApiProcessOptions options_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_API_PROCESS_H_
