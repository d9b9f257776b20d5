#include "status_server.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

namespace allocation_relay {

namespace {

HttpServerOptions StatusOptions(ListenAddress listen, std::chrono::milliseconds idle_timeout) {
  HttpServerOptions o;
  o.name = "dispatcher status";
  o.announce = "dispatcher status on";
  o.listen = std::move(listen);
  o.workers = 2;
  o.max_connections = StatusServer::kMaxConnections;
  o.idle_timeout = idle_timeout;
  o.max_body = 4096;  // GETs only
  o.error_body = [](int) { return R"({"status":"no","errorMessages":["Request failed"]})"; };
  return o;
}

}  // namespace

StatusServer::StatusServer(StoreOptions options, ListenAddress listen,
                           std::chrono::milliseconds idle_timeout, const DeliveryLoop& delivery,
                           const Pruner& pruner)
    : options_(std::move(options)),
      delivery_(delivery),
      pruner_(pruner),
      http_(StatusOptions(std::move(listen), idle_timeout),
            [this](const HttpRequest& request) { return Handle(request); }) {
  options_.create_and_migrate = false;
}

HttpResponse StatusServer::Handle(const HttpRequest& request) {
  HttpResponse res;
  if (request.path != "/health" && request.path != "/metrics") {
    res.status = 404;
    res.body = R"({"status":"no","errorMessages":["Not found"]})";
    return res;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    res.status = 405;
    res.body = R"({"status":"no","errorMessages":["Method not allowed"]})";
    res.headers.emplace_back("Allow", "GET");
    return res;
  }
  if (request.path == "/health") {
    res.body = Health(res.status);
    return res;
  }
  res.body = Metrics();
  res.content_type = "text/plain; version=0.0.4";
  return res;
}

StatusServer::~StatusServer() { Stop(); }

std::string StatusServer::Health(int& status) {
  MutexLock lock(store_mu_);
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
    MutexLock lock(store_mu_);
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
  Pruner::Counters p = pruner_.counters();
  out << "# HELP allocation_relay_pruned_total Rows deleted by retention, by kind.\n"
         "# TYPE allocation_relay_pruned_total counter\n";
  for (auto [kind, n] :
       {std::pair{"allocations", p.pruned.allocations}, std::pair{"requests", p.pruned.requests},
        std::pair{"events", p.pruned.events}, std::pair{"deliveries", p.pruned.deliveries},
        std::pair{"attempts", p.pruned.attempts}}) {
    out << "allocation_relay_pruned_total{kind=\"" << kind << "\"} " << n << "\n";
  }
  // 0 rather than absent when none is kept (or before the first pass): the series stays
  // continuous, and an alert on "older than the retention" needs no absent() case. Whole
  // seconds: the default float format would round 90 days to 6 digits.
  out << "# HELP allocation_relay_oldest_finished_allocation_age_seconds Age of the last change "
         "of the oldest final allocation kept (0 if none; which one is read after each prune "
         "pass).\n"
         "# TYPE allocation_relay_oldest_finished_allocation_age_seconds gauge\n"
      << "allocation_relay_oldest_finished_allocation_age_seconds "
      << static_cast<std::int64_t>(p.oldest_finished_age_seconds) << "\n";
  WriteConnectionMetrics(out, http_.counters());
  return out.str();
}

void StatusServer::Start() { http_.Start(); }

void StatusServer::Stop() { http_.Stop(); }

}  // namespace allocation_relay
