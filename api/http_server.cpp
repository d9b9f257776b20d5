#include "http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

namespace allocation_relay {
namespace {

const char* ReasonJson(int status) {
  switch (status) {
    case 400:
      return R"({"status":"no","errorMessages":["Bad request"]})";
    case 413:
      return R"({"status":"no","errorMessages":["Request body too large"]})";
    case 414:
      return R"({"status":"no","errorMessages":["Request URI too long"]})";
    case 500:
      return R"({"status":"no","errorMessages":["Internal error"]})";
    default:
      return R"({"status":"no","errorMessages":["Request failed"]})";
  }
}

}  // namespace

HttpServer::HttpServer(ApiService& service, const ApiConfig& config)
    : service_(service), config_(config) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Start() {
  server_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *server_;
  int threads = config_.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_tcp_nodelay(true);
  s.set_payload_max_length(config_.max_body);
  s.set_read_timeout(std::chrono::seconds(10));
  s.set_write_timeout(std::chrono::seconds(10));
  s.set_keep_alive_timeout(30);
  // httplib closes a keep-alive connection after 5 requests by default; a warehouse polling
  // every few seconds would reconnect constantly.
  s.set_keep_alive_max_count(10000);

  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    ApiRequest request;
    request.method = req.method;
    request.path = req.path;
    // Our own parse of the raw target: httplib drops a literal '?' inside the query.
    request.params = ParseQueryString(req.target);
    request.body = req.body;
    request.token = req.get_header_value("API-Authorization");
    ApiResponse answer = service_.Handle(request);
    res.status = answer.status;
    if (!answer.allow.empty()) res.set_header("Allow", answer.allow);
    res.set_content(std::move(answer.body), answer.content_type.c_str());
  };
  const char* kAnyPath = R"(/.*)";
  s.Get(kAnyPath, handle);
  s.Post(kAnyPath, handle);
  s.Put(kAnyPath, handle);
  s.Patch(kAnyPath, handle);
  s.Delete(kAnyPath, handle);
  s.Options(kAnyPath, handle);

  // Errors httplib answers itself (413, 400, ...) get a JSON body too; ours already have one.
  httplib::Server::HandlerWithResponse on_error = [](const httplib::Request&,
                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(ReasonJson(res.status), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  s.set_error_handler(on_error);
  s.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("{} {} failed: {}", req.method, req.path, what);
        res.status = 500;
        res.set_content(ReasonJson(500), "application/json");
      });

  const ListenAddress& listen = config_.listen;
  if (listen.port == 0) {
    port_ = s.bind_to_any_port(listen.host);
  } else {
    port_ = s.bind_to_port(listen.host, listen.port) ? listen.port : -1;
  }
  if (port_ <= 0) {
    throw std::runtime_error("cannot listen on " + listen.host + ":" + std::to_string(listen.port) +
                             " (address in use or not local?)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing until the accept loop runs, and 0.11 has no
  // wait_until_ready(): wait here, so a SIGTERM right after start-up is never lost.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("the HTTP server did not start listening");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("api listening on {}:{}", listen.host, port_);
}

void HttpServer::Stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace allocation_relay
