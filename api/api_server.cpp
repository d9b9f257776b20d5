#include "api_server.h"

#include <spdlog/spdlog.h>

namespace allocation_relay {

ApiServer::ApiServer(std::shared_ptr<const Config> config, const Clock& clock)
    : config_(config), service_(config, clock), http_(service_, config->api) {}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Start() {
  // Opening once up front runs the migrations and fails start-up on a bad database.
  std::unique_ptr<Store> store = Store::Open(StoreOptionsFrom(config_->store));
  http_.Start();
  spdlog::info("api ready: database {} (schema {}), {} warehouses, {} keys", config_->store.path,
               Store::LatestSchemaVersion(), config_->warehouses.size(), config_->api.keys.size());
}

void ApiServer::Reload(std::shared_ptr<const Config> config) {
  if (config->store.path != config_->store.path) {
    spdlog::warn("store.path changed to {}; it takes effect at the next restart",
                 config->store.path);
  }
  if (config->api.listen.host != config_->api.listen.host ||
      config->api.listen.port != config_->api.listen.port) {
    spdlog::warn("api.listen changed; it takes effect at the next restart");
  }
  service_.Reload(config);
  config_ = std::move(config);
  spdlog::info("configuration reloaded: {} warehouses, {} rules, {} keys",
               config_->warehouses.size(), config_->rules.size(), config_->api.keys.size());
}

void ApiServer::Stop() { http_.Stop(); }

}  // namespace allocation_relay
