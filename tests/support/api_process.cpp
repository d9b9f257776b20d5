#include "support/api_process.h"

#include <signal.h>

#include <regex>
#include <stdexcept>

#include "support/test_keys.h"

namespace allocation_relay::testing {

namespace {
ApiProcessOptions WithExtra(const std::string& extra, const std::string& busy_timeout) {
  ApiProcessOptions options;
  options.extra = extra;
  options.busy_timeout = busy_timeout;
  return options;
}
}  // namespace

std::string ApiProcess::Config(const std::string& extra, const std::string& busy_timeout) {
  return Config(WithExtra(extra, busy_timeout));
}

std::string ApiProcess::Config(const ApiProcessOptions& o) {
  const std::string& extra = o.extra;
  const std::string& busy_timeout = o.busy_timeout;
  auto hook = [&](int id) {
    auto it = o.webhooks.find(id);
    return it == o.webhooks.end() ? std::string() : ", webhook: " + it->second;
  };
  // SQLite: the keys as they always were, the path relative to the config file unless given.
  const std::string sqlite_keys = "path: " + (o.store ? o.store->path : "relay.db") +
                                  ", synchronous: normal, busy_timeout: " + busy_timeout;
  return "timezone: Europe/Stockholm\n"
         "log_level: info\n"
         "store: " +
         StoreYaml(o.store.value_or(StoreOptions{}), sqlite_keys) +
         "\n"
         "api:\n"
         "  listen: 127.0.0.1:0\n"
         "  threads: 4\n"
         "  max_body: 65536\n"
         "  keys:\n" +
         TestKeysYaml() + o.more_keys + "dispatcher: " + o.dispatcher + "\n" +
         "warehouses:\n"
         "  - {id: 3, name: Amsterdam" +
         hook(3) +
         "}\n"
         "  - {id: 4, name: Tokyo" +
         hook(4) +
         "}\n"
         "  - {id: 7, name: Central, confirm_timeout: 2h" +
         hook(7) +
         "}\n"
         "  - {id: 9, name: Quick, confirm_timeout: 1s" +
         hook(9) + "}\n" + o.more_warehouses +
         "rules:\n"
         "  nordics: [[3, 4], [7]]\n" +
         extra;
}

ApiProcess::ApiProcess(const std::string& extra_config, const std::string& busy_timeout)
    : ApiProcess(WithExtra(extra_config, busy_timeout)) {}

ApiProcess::ApiProcess(const ApiProcessOptions& options) : options_(options) {
  if (!options_.store) {
    database_ = std::make_unique<TestDatabase>(dir_);
    if (TestOnPostgresql()) options_.store = database_->options();
  }
  dir_.Write("relay.yaml", Config(options_));
  Start();
}

StoreOptions ApiProcess::store_options() const {
  if (!options_.store) return database_->options();
  StoreOptions options = *options_.store;
  options.create_and_migrate = true;
  if (options.backend == StoreBackendKind::kSqlite) {
    options.synchronous = SynchronousMode::kNormal;
    options.busy_timeout = std::chrono::milliseconds(5000);
  }
  return options;
}

void ApiProcess::Start() {
  process_ = std::make_unique<Process>(
      std::vector<std::string>{API_BINARY, "--config", ConfigPath()}, dir_.path());
  std::regex listening(R"(api listening on 127\.0\.0\.1:(\d+))");
  std::smatch match;
  bool up = WaitFor(
      [&] {
        std::string err = process_->Stderr();
        if (!std::regex_search(err, match, listening)) return false;
        port_ = std::stoi(match[1]);
        return err.find("api ready") != std::string::npos;
      },
      std::chrono::seconds(15));
  if (!up) throw std::runtime_error("allocation-api did not start: " + process_->Stderr());
  client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  client_->set_tcp_nodelay(true);
  client_->set_read_timeout(std::chrono::seconds(30));
}

int ApiProcess::Stop(int signal) {
  process_->Signal(signal);
  return process_->Wait(std::chrono::seconds(15)).value_or(-1);
}

ApiProcess::~ApiProcess() {
  if (process_ && process_->Running()) {
    process_->Signal(SIGTERM);
    process_->Wait(std::chrono::seconds(10));
  }
}

HttpAnswer ApiProcess::Send(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& token) {
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("API-Authorization", token);
  auto call = [&]() -> httplib::Result {
    if (method == "GET") return client_->Get(path, headers);
    if (method == "PUT") return client_->Put(path, headers, body, "application/json");
    if (method == "POST") return client_->Post(path, headers, body, "application/json");
    if (method == "DELETE") return client_->Delete(path, headers, body, "application/json");
    if (method == "PATCH") return client_->Patch(path, headers, body, "application/json");
    throw std::invalid_argument("method " + method);
  };
  httplib::Result r = call();
  HttpAnswer answer;
  if (!r) return answer;
  answer.status = r->status;
  answer.body = r->body;
  answer.content_type = r->get_header_value("Content-Type");
  answer.headers = r->headers;
  return answer;
}

HttpAnswer ApiProcess::Get(const std::string& path, const std::string& token) {
  return Send("GET", path, "", token);
}
HttpAnswer ApiProcess::Put(const std::string& path, const std::string& body,
                           const std::string& token) {
  return Send("PUT", path, body, token);
}
HttpAnswer ApiProcess::Post(const std::string& path, const std::string& body,
                            const std::string& token) {
  return Send("POST", path, body, token);
}

nlohmann::ordered_json ApiProcess::CreateAllocation(std::int64_t number,
                                                    const std::string& groups) {
  HttpAnswer a = Post(
      "/allocations",
      R"({"order":{"id":"486e13eaaa65d5ff1e87c997b5dce54e","number":)" + std::to_string(number) +
          R"(},"lines":[{"lineId":73,"quantity":5,"stockItemId":1}],"warehouses":)" + groups + "}");
  if (a.status != 200) throw std::runtime_error("POST /allocations: " + a.body);
  return a.Json();
}

nlohmann::ordered_json ApiProcess::Update(std::int64_t id, const std::string& status,
                                          const std::string& token) {
  HttpAnswer a = Put("/allocation-request",
                     R"({"id":)" + std::to_string(id) + R"(,"status":")" + status + R"("})", token);
  if (a.status != 200) throw std::runtime_error("PUT /allocation-request: " + a.body);
  return a.Json();
}

}  // namespace allocation_relay::testing
