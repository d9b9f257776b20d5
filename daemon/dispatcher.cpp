#include "dispatcher.h"

#include <spdlog/spdlog.h>

namespace allocation_relay {
namespace {

// How webhook calls leave this host, for the log: the proxy's URL with its password masked.
std::string EgressDescription(const DispatcherConfig& d) {
  return d.proxy.empty() ? std::string("direct") : "through proxy " + RedactUrlPassword(d.proxy);
}

}  // namespace

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
  pruner_ = std::make_unique<Pruner>(StoreOptionsFrom(config_->store), clock_, config_->retention);
  status_ =
      std::make_unique<StatusServer>(StoreOptionsFrom(config_->store), config_->dispatcher.listen,
                                     config_->api.idle_timeout, *delivery_, *pruner_);
  status_->Start();
  // Last: its first pass runs at once, and the work that serves warehouses comes first.
  pruner_->Start();
  spdlog::info("dispatcher ready: database {} (schema {}), {} warehouses, webhook calls {}",
               StoreLocation(config_->store), Store::LatestSchemaVersion(),
               config_->warehouses.size(), EgressDescription(config_->dispatcher));
}

void Dispatcher::Reload(std::shared_ptr<const Config> config) {
  for (const std::string& change : StoreChangesForRestart(config_->store, config->store)) {
    spdlog::warn("{}; it takes effect at the next restart", change);
  }
  if (config->dispatcher.proxy != config_->dispatcher.proxy) {
    spdlog::info("webhook calls now go {} (from the next call)",
                 EgressDescription(config->dispatcher));
  }
  config_ = std::move(config);
  if (expiry_) expiry_->SetCatalog(config_->Catalog());
  if (delivery_) delivery_->SetConfig(config_);
  if (pruner_) pruner_->SetConfig(config_->retention);
  spdlog::info("configuration reloaded: {} warehouses, {} rules", config_->warehouses.size(),
               config_->rules.size());
}

void Dispatcher::Stop() {
  // The pruner first: a pass in progress ends after its step, so it never delays a shutdown
  // behind the calls in flight. The object stays until the status server is gone.
  if (pruner_) pruner_->Stop();
  if (status_) {
    status_->Stop();
    status_.reset();
  }
  pruner_.reset();
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
