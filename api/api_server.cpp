#include "api_server.h"

#include <spdlog/spdlog.h>

namespace allocation_relay {
namespace {

std::string ReasonJson(int status) {
  switch (status) {
    case 400:
      return R"({"status":"no","errorMessages":["Bad request"]})";
    case 413:
      return R"({"status":"no","errorMessages":["Request body too large"]})";
    case 414:
      return R"({"status":"no","errorMessages":["Request URI too long"]})";
    case 431:
      return R"({"status":"no","errorMessages":["Request header too large"]})";
    case 500:
      return R"({"status":"no","errorMessages":["Internal error"]})";
    default:
      return R"({"status":"no","errorMessages":["Request failed"]})";
  }
}

HttpServerOptions HttpOptions(const ApiConfig& api) {
  HttpServerOptions o;
  o.name = "api";
  o.announce = "api listening on";
  o.listen = api.listen;
  o.workers = api.threads;
  o.max_connections = api.max_connections;
  o.idle_timeout = api.idle_timeout;
  o.max_body = api.max_body;
  o.error_body = ReasonJson;
  if (api.tls) {
    o.tls_cert = api.tls->cert;
    o.tls_key = api.tls->key;
  }
  return o;
}

}  // namespace

ApiServer::ApiServer(std::shared_ptr<const Config> config, const Clock& clock)
    : config_(config),
      service_(config, clock, [this] { return http_.counters(); }),
      http_(HttpOptions(config->api), [this](const HttpRequest& req) {
        ApiRequest request;
        request.method = req.method;
        request.path = req.path;
        // Our own parse of the raw target: httplib drops a literal '?' inside the query.
        request.params = ParseQueryString(req.target);
        request.body = req.body;
        request.token = req.Header("API-Authorization");
        ApiResponse answer = service_.Handle(request);
        HttpResponse res;
        res.status = answer.status;
        if (!answer.allow.empty()) res.headers.emplace_back("Allow", answer.allow);
        for (auto& header : answer.headers) res.headers.push_back(std::move(header));
        res.body = std::move(answer.body);
        res.content_type = std::move(answer.content_type);
        return res;
      }) {}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Start() {
  // Opening once up front runs the migrations and fails start-up on a bad database.
  std::unique_ptr<Store> store = Store::Open(StoreOptionsFrom(config_->store));
  http_.Start();
  spdlog::info("api ready: database {} (schema {}), {} warehouses, {} keys",
               StoreLocation(config_->store), Store::LatestSchemaVersion(),
               config_->warehouses.size(), config_->api.keys.size());
}

void ApiServer::Reload(std::shared_ptr<const Config> config) {
  for (const std::string& change : StoreChangesForRestart(config_->store, config->store)) {
    spdlog::warn("{}; it takes effect at the next restart", change);
  }
  if (config->api.listen.host != config_->api.listen.host ||
      config->api.listen.port != config_->api.listen.port) {
    spdlog::warn("api.listen changed; it takes effect at the next restart");
  }
  if (config->api.threads != config_->api.threads ||
      config->api.max_connections != config_->api.max_connections ||
      config->api.idle_timeout != config_->api.idle_timeout ||
      config->api.max_body != config_->api.max_body) {
    spdlog::warn(
        "api.threads, max_connections, idle_timeout and max_body take effect at the "
        "next restart");
  }
  if (config->api.tls.has_value() != config_->api.tls.has_value()) {
    spdlog::warn("api.tls {}; HTTPS on or off takes effect at the next restart",
                 config->api.tls ? "added" : "removed");
  } else if (config->api.tls) {
    // The files were checked by the config load; they are read again here (they may have
    // changed since), and a bad pair keeps the running one.
    std::string error;
    if (http_.ReloadTls(config->api.tls->cert, config->api.tls->key, &error)) {
      spdlog::info("api.tls: certificate {} loaded for new connections", config->api.tls->cert);
    } else {
      spdlog::warn("api.tls: keeping the running certificate: {}", error);
    }
  }
  service_.Reload(config);
  config_ = std::move(config);
  spdlog::info("configuration reloaded: {} warehouses, {} rules, {} keys",
               config_->warehouses.size(), config_->rules.size(), config_->api.keys.size());
}

void ApiServer::Stop() { http_.Stop(); }

}  // namespace allocation_relay
