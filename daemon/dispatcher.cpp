#include "dispatcher.h"

#include <spdlog/spdlog.h>

namespace allocation_relay {

Dispatcher::Dispatcher(std::shared_ptr<const Config> config, const Clock& clock)
    : config_(std::move(config)), clock_(clock) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Start() {
  // Opening once up front runs the migrations and fails start-up on a bad database.
  Store::Open(StoreOptionsFrom(config_->store));
  expiry_ =
      std::make_unique<ExpiryWorker>(StoreOptionsFrom(config_->store), clock_, config_->Catalog());
  expiry_->Start();
  delivery_ = std::make_unique<DeliveryLoop>(StoreOptionsFrom(config_->store), clock_, config_);
  delivery_->Start();
  status_ =
      std::make_unique<StatusServer>(StoreOptionsFrom(config_->store), config_->dispatcher.listen,
                                     config_->api.idle_timeout, *delivery_);
  status_->Start();
  spdlog::info("dispatcher ready: database {} (schema {}), {} warehouses", config_->store.path,
               Store::LatestSchemaVersion(), config_->warehouses.size());
}

void Dispatcher::Reload(std::shared_ptr<const Config> config) {
  if (config->store.path != config_->store.path) {
    spdlog::warn("store.path changed to {}; it takes effect at the next restart",
                 config->store.path);
  }
  config_ = std::move(config);
  if (expiry_) expiry_->SetCatalog(config_->Catalog());
  if (delivery_) delivery_->SetConfig(config_);
  spdlog::info("configuration reloaded: {} warehouses, {} rules", config_->warehouses.size(),
               config_->rules.size());
}

void Dispatcher::Stop() {
  if (status_) {
    status_->Stop();
    status_.reset();
  }
  if (delivery_) {
    delivery_->Stop();  // lets calls in flight finish and records them
    delivery_.reset();
  }
  if (expiry_) {
    expiry_->Stop();
    expiry_.reset();
    spdlog::info("dispatcher stopped");
  }
}

}  // namespace allocation_relay
