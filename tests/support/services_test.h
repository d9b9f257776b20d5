// ServicesTest: a GoogleTest fixture with both real services on one database: an ApiProcess
// (started by the test, with its options) and allocation-dispatcherd on the same config, plus a
// webhook Receiver. At the end the dispatcher must stop on SIGTERM with status 0.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_SERVICES_TEST_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_SERVICES_TEST_H_

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>

#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/receiver.h"

namespace allocation_relay::testing {

class ServicesTest : public ::testing::Test {
 protected:
  // Starts the API with `options`, then the dispatcher on its config.
  void StartServices(const ApiProcessOptions& options) {
    api_ = std::make_unique<ApiProcess>(options);
    StartDispatcher();
  }
  // (Re)starts the dispatcher on the API's config and waits until it is ready.
  void StartDispatcher() {
    dispatcher_ = std::make_unique<Process>(
        std::vector<std::string>{DISPATCHER_BINARY, "--config", api_->ConfigPath()},
        api_->dir().path());
    ASSERT_TRUE(
        WaitFor([&] { return dispatcher_->Stderr().find("dispatcher ready") != std::string::npos; },
                std::chrono::seconds(15)))
        << dispatcher_->Stderr();
  }
  // Writes `options` as the config, on the services' database, and sends the dispatcher SIGHUP;
  // true once it logs that it reloaded (its first reload: later ones would find the old line).
  bool ReloadDispatcher(ApiProcessOptions options) {
    options.store = api_->options().store;  // the same database (PostgreSQL: the API's own)
    api_->dir().Write("relay.yaml", ApiProcess::Config(options));
    dispatcher_->Signal(SIGHUP);
    return WaitFor(
        [&] { return dispatcher_->Stderr().find("configuration reloaded") != std::string::npos; },
        std::chrono::seconds(10));
  }
  void TearDown() override {
    if (dispatcher_) {
      dispatcher_->Signal(SIGTERM);
      EXPECT_EQ(dispatcher_->Wait(std::chrono::seconds(20)), 0) << dispatcher_->Stderr();
    }
  }
  // A further connection to the services' database (never creates it).
  std::unique_ptr<Store> OpenStore() {
    StoreOptions options = api_->store_options();
    options.create_and_migrate = false;
    return Store::Open(options);
  }

  Receiver receiver_;  // first: outlives the services that post to it
  std::unique_ptr<ApiProcess> api_;
  std::unique_ptr<Process> dispatcher_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_SERVICES_TEST_H_
