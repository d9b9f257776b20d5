#include "status_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace allocation_relay {

StatusServer::StatusServer(StoreOptions options, ListenAddress listen, const DeliveryLoop& delivery)
    : options_(std::move(options)), listen_(std::move(listen)), delivery_(delivery) {
  options_.create_and_migrate = false;
}

StatusServer::~StatusServer() { Stop(); }

std::string StatusServer::Health(int& status) {
  std::lock_guard lock(store_mu_);
  std::string problem;
  try {
    if (!store_) store_ = Store::Open(options_);
    auto ping = store_->Ping();
    if (ping) {
      status = 200;
      return R"({"status":"ok"})";
    }
    problem = ping.error().what();
    store_.reset();  // a fresh connection next time
  } catch (const StoreError& e) {
    problem = e.what();
  }
  status = 503;
  nlohmann::json body = {{"status", "no"}, {"errorMessages", {problem}}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string StatusServer::Metrics() {
  std::ostringstream out;
  int health = 0;
  Health(health);
  out << "# HELP allocation_relay_dispatcher_database_up Whether the database answers at its "
         "path.\n# TYPE allocation_relay_dispatcher_database_up gauge\n"
      << "allocation_relay_dispatcher_database_up " << (health == 200 ? 1 : 0) << "\n";
  {
    std::lock_guard lock(store_mu_);
    if (store_) {
      if (auto depth = store_->UnbatchedEventsByWarehouse()) {
        out << "# HELP allocation_relay_outbox_queue_depth Events not yet in a delivery, by "
               "warehouse.\n# TYPE allocation_relay_outbox_queue_depth gauge\n";
        for (auto [warehouse, n] : *depth) {
          out << "allocation_relay_outbox_queue_depth{warehouse=\"" << warehouse << "\"} " << n
              << "\n";
        }
      }
      if (auto states = store_->CountDeliveriesByState()) {
        out << "# HELP allocation_relay_deliveries Deliveries by state (dead: kept, "
               "re-sendable).\n# TYPE allocation_relay_deliveries gauge\n";
        for (auto [state, n] : *states) {
          out << "allocation_relay_deliveries{state=\"" << ToString(state) << "\"} " << n << "\n";
        }
      }
      if (auto disabled = store_->DisabledWebhooks()) {
        out << "# HELP allocation_relay_webhook_disabled Webhooks disabled by 410 Gone.\n"
               "# TYPE allocation_relay_webhook_disabled gauge\n";
        for (std::int64_t w : *disabled) {
          out << "allocation_relay_webhook_disabled{warehouse=\"" << w << "\"} 1\n";
        }
      }
    }
  }
  DeliveryLoop::Counters c = delivery_.counters();
  out << "# HELP allocation_relay_delivery_attempts_total Delivery attempts by outcome.\n"
         "# TYPE allocation_relay_delivery_attempts_total counter\n"
      << "allocation_relay_delivery_attempts_total{outcome=\"succeeded\"} " << c.succeeded << "\n"
      << "allocation_relay_delivery_attempts_total{outcome=\"failed\"} " << c.failed << "\n"
      << "allocation_relay_delivery_attempts_total{outcome=\"dead\"} " << c.dead << "\n"
      << "allocation_relay_delivery_attempts_total{outcome=\"gone\"} " << c.gone << "\n"
      << "# HELP allocation_relay_delivery_latency_seconds From a batch's forming to its "
         "successful delivery.\n# TYPE allocation_relay_delivery_latency_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < DeliveryLoop::Counters::kBuckets.size(); ++i) {
    cumulative += c.latency[i];
    out << "allocation_relay_delivery_latency_seconds_bucket{le=\""
        << DeliveryLoop::Counters::kBuckets[i] << "\"} " << cumulative << "\n";
  }
  cumulative += c.latency.back();
  out << "allocation_relay_delivery_latency_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
      << "allocation_relay_delivery_latency_seconds_sum " << c.latency_sum << "\n"
      << "allocation_relay_delivery_latency_seconds_count " << cumulative << "\n";
  return out.str();
}

void StatusServer::Start() {
  server_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *server_;
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  s.set_tcp_nodelay(true);
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    int status = 0;
    std::string body = Health(status);
    res.status = status;
    res.set_content(body, "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Metrics(), "text/plain; version=0.0.4");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content(R"({"status":"no","errorMessages":["Internal error"]})", "application/json");
  });
  port_ = listen_.port == 0 ? s.bind_to_any_port(listen_.host)
                            : (s.bind_to_port(listen_.host, listen_.port) ? listen_.port : -1);
  if (port_ <= 0) {
    throw std::runtime_error("cannot listen on " + listen_.host + ":" +
                             std::to_string(listen_.port) + " (dispatcher.listen)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running()) {  // so that Stop() right after Start() is never lost
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("the status server did not start listening");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("dispatcher status on {}:{}", listen_.host, port_);
}

void StatusServer::Stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace allocation_relay
