#include "api_server.h"

#include <spdlog/spdlog.h>

namespace allocation_relay {

ApiServer::ApiServer(std::shared_ptr<const Config> config, const Clock& clock)
    : config_(std::move(config)), clock_(clock) {}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Start() {
  store_ = Store::Open(StoreOptionsFrom(config_->store));
  spdlog::info("api ready: database {} (schema {}), {} warehouses", config_->store.path,
               Store::LatestSchemaVersion(), config_->warehouses.size());
}

void ApiServer::Reload(std::shared_ptr<const Config> config) {
  if (config->store.path != config_->store.path) {
    spdlog::warn("store.path changed to {}; it takes effect at the next restart",
                 config->store.path);
  }
  config_ = std::move(config);
  spdlog::info("configuration reloaded: {} warehouses, {} rules", config_->warehouses.size(),
               config_->rules.size());
}

void ApiServer::Stop() {
  if (store_) {
    store_.reset();
    spdlog::info("api stopped");
  }
}

}  // namespace allocation_relay
