// The only file of shared/ that includes cpp-httplib. How the pieces fit:
//   - httplib's accept loop (its own thread) hands each new socket to process_and_close_socket,
//     which ConnectionAdopter overrides: the socket joins the event thread instead of taking a
//     worker for its lifetime.
//   - The event thread (epoll, every socket EPOLLONESHOT) reads without blocking and frames
//     requests: a complete one (head and body, by Content-Length or chunked encoding) goes to
//     the work queue. It also writes what a worker could not, and closes idle connections.
//   - A worker runs httplib's process_request() over the buffered request (RequestStream), so
//     parsing, routing and the answer's format stay httplib's; the answer is written without
//     blocking and the connection goes back to the event thread.
// A connection is owned by exactly one thread at a time (the event thread, or the worker it was
// handed to); the hand-over goes through a mutex, so its fields need no further locking.
#include "allocation_relay/http_server.h"

#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "allocation_relay/thread_annotations.h"
#include "http_framing.h"
#include "tls_context.h"

namespace allocation_relay {
namespace {

using Steady = std::chrono::steady_clock;

// A connection's buffers are shrunk back after a request bigger than this.
constexpr std::size_t kKeepCapacity = 64 * 1024;
// After an error answered by the event thread itself (413, 431, 400) the rest of the request is
// read and dropped for this long, so the client sees the answer instead of a reset.
constexpr std::chrono::milliseconds kLinger{1000};
// Stop() waits at most this long for answers being written to clients that do not read.
constexpr std::chrono::milliseconds kStopWriteLimit{1000};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

const char* ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

std::pair<std::string, int> Address(int fd, bool peer) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return {"", 0};
  char host[INET6_ADDRSTRLEN] = {};
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return {host, port};
}

// The accept loop's task queue: runs each task (adopting a socket, which does not block) at once.
class InlineTaskQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// httplib's server, with its per-connection loop replaced by handing the socket to us, and its
// request processing opened up to the workers.
class ConnectionAdopter : public httplib::Server {
 public:
  explicit ConnectionAdopter(std::function<void(int)> adopt) : adopt_(std::move(adopt)) {}
  // httplib listens with a backlog of 5 (compiled into Debian's library): a burst of clients
  // connecting at once would see dropped handshakes and wait for retransmissions. Listening
  // again on the bound socket raises the backlog (Linux caps it at net.core.somaxconn).
  void RaiseListenBacklog() { ::listen(svr_sock_, 4096); }
  bool ProcessRequest(httplib::Stream& stream, bool close_connection, bool& connection_closed) {
    return process_request(stream, close_connection, connection_closed, nullptr);
  }

 private:
  bool process_and_close_socket(int sock) override {
    adopt_(sock);
    return true;
  }
  std::function<void(int)> adopt_;
};

struct Connection {
  enum class State { kHandshaking, kReading, kWorking, kWriting, kLingering };
  int fd = -1;
  State state = State::kReading;
  std::unique_ptr<TlsSession> tls;  // HTTPS: every byte but a lingering close's goes through it
  bool read_wants_write = false;    // TLS: the read waits for the socket to take bytes
  bool write_wants_read = false;    // TLS: the write waits for bytes from the peer
  std::string in;                   // received and not yet handled
  std::string out;                  // answer bytes not yet written, from out_offset
  std::size_t out_offset = 0;
  std::size_t request_length = 0;  // kWorking: the first request in `in`
  bool continue_sent = false;      // 100 Continue already sent for the request being read
  bool close_after = false;        // close once `out` is written
  bool peer_done = false;          // the client shut its side down
  Steady::time_point last_activity;
  Steady::time_point linger_until;
  std::pair<std::string, int> remote, local;
};

// One buffered request as httplib reads it, and the connection's output as it writes.
class RequestStream : public httplib::Stream {
 public:
  RequestStream(Connection& c, std::string_view request) : c_(c), request_(request) {}
  bool is_readable() const override { return pos_ < request_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, std::size_t size) override {
    std::size_t n = std::min(size, request_.size() - pos_);
    std::memcpy(ptr, request_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, std::size_t size) override {
    // The event thread answered Expect: 100-continue already when it had to (body not yet sent).
    if (std::string_view(ptr, size) == kContinue) return static_cast<ssize_t>(size);
    c_.out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.remote.first;
    port = c_.remote.second;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.local.first;
    port = c_.local.second;
  }
  int socket() const override { return c_.fd; }

 private:
  Connection& c_;
  std::string_view request_;
  std::size_t pos_ = 0;
};

bool FlushTls(Connection& c) {
  c.write_wants_read = false;
  while (c.out_offset < c.out.size()) {
    std::size_t n = 0;
    TlsSession::Status status =
        c.tls->Write(c.out.data() + c.out_offset, c.out.size() - c.out_offset, &n);
    if (status == TlsSession::Status::kOk) {
      c.out_offset += n;
      continue;
    }
    if (status == TlsSession::Status::kWantRead) c.write_wants_read = true;
    return status == TlsSession::Status::kWantRead || status == TlsSession::Status::kWantWrite;
  }
  c.out.clear();
  c.out_offset = 0;
  if (c.out.capacity() > kKeepCapacity) c.out.shrink_to_fit();
  return true;
}

// Writes what the socket takes now. False if the connection broke.
bool Flush(Connection& c) {
  if (c.tls) return FlushTls(c);
  while (c.out_offset < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_offset += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  c.out.clear();
  c.out_offset = 0;
  if (c.out.capacity() > kKeepCapacity) c.out.shrink_to_fit();
  return true;
}

// Reads what arrived (up to 64 KiB) into c.in, or drops it when lingering. True if the client
// closed the connection or it broke.
bool Receive(Connection& c) {
  char buf[16384];
  for (int round = 0; round < 4; ++round) {
    ssize_t n = ::recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      if (c.state != Connection::State::kLingering) c.in.append(buf, static_cast<std::size_t>(n));
      c.last_activity = Steady::now();
      if (static_cast<std::size_t>(n) < sizeof(buf)) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return true;  // closed by the client (0) or broken (error)
  }
  return false;
}

// Receive() through the connection's TLS session. Decrypted bytes may be left in the session
// (past 64 KiB): ArmRead() sees them.
bool ReceiveTls(Connection& c) {
  char buf[16384];
  c.read_wants_write = false;
  for (int round = 0; round < 4; ++round) {
    std::size_t n = 0;
    TlsSession::Status status = c.tls->Read(buf, sizeof(buf), &n);
    if (status == TlsSession::Status::kOk) {
      c.in.append(buf, n);
      c.last_activity = Steady::now();
      continue;
    }
    if (status == TlsSession::Status::kWantRead) return false;
    if (status == TlsSession::Status::kWantWrite) {
      c.read_wants_write = true;
      return false;
    }
    return true;  // close_notify, closed or broken
  }
  return false;
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)), handler_(std::move(handler)) {}

  ~Impl() { Stop(); }

  void Start();
  void Stop();
  int port() const { return port_; }
  Counters counters() const {
    return {open_.load(), accepted_.load(), refused_.load(), timed_out_.load(), tls_failed_.load()};
  }
  bool ReloadTls(const std::string& cert, const std::string& key, std::string* error);

 private:
  void Adopt(int fd);
  void EventLoop();
  void WorkerLoop();
  void Process(Connection& c);

  // Event thread only.
  void Arm(Connection& c, std::uint32_t events);
  // Waits for the next bytes of a request (kReading); with TLS, bytes already decrypted in the
  // session are read on the loop's next turn, since the socket will not signal them.
  void ArmRead(Connection& c);
  // What a kWriting connection waits for (with TLS a write may need a read first).
  static std::uint32_t WriteEvents(const Connection& c) {
    return c.write_wants_read ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
  }
  void OnHandshake(Connection& c);
  void OnReadable(Connection& c);
  void OnWritable(Connection& c);
  void AfterAnswer(Connection& c);  // `out` written: next request, or wait for one
  void FrameAndDispatch(Connection& c);
  void AnswerError(Connection& c, int status);
  void Close(Connection& c);
  void Sweep(Steady::time_point now);

  void Wake() {
    std::uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  std::unique_ptr<ConnectionAdopter> server_;
  std::thread accept_thread_;
  std::thread event_thread_;
  std::vector<std::thread> workers_;
  int port_ = 0;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};

  std::atomic<std::int64_t> open_{0}, accepted_{0}, refused_{0}, timed_out_{0}, tls_failed_{0};
  Steady::time_point last_refusal_log_{};

  // Event thread only.
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  int working_ = 0;  // connections handed to workers and not back yet
  // TLS connections with decrypted bytes waiting in their session (fd and connection).
  std::vector<std::pair<int, Connection*>> tls_pending_;
  Steady::time_point stop_deadline_{};

  Mutex tls_mu_;
  std::shared_ptr<const TlsContext> tls_ GUARDED_BY(tls_mu_);  // for new connections; or null

  Mutex mu_;  // guards the hand-over lists below
  std::condition_variable work_cv_;
  std::deque<Connection*> work_ GUARDED_BY(mu_);       // complete requests for the workers
  std::vector<Connection*> returned_ GUARDED_BY(mu_);  // answered, for the event thread
  std::vector<int> adopted_ GUARDED_BY(mu_);           // new sockets, for the event thread
  bool workers_stop_ GUARDED_BY(mu_) = false;
};

void HttpServer::Impl::Start() {
  // Every connection is a file descriptor; SQLite needs a few per worker.
  rlim_t needed = static_cast<rlim_t>(options_.max_connections) + 64 +
                  4 * static_cast<rlim_t>(options_.workers);
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < needed) {
    rlim_t want = std::min(needed, limit.rlim_max);
    limit.rlim_cur = std::max(limit.rlim_cur, want);
    setrlimit(RLIMIT_NOFILE, &limit);
    if (want < needed) {
      spdlog::warn(
          "{}: the open-files limit ({}) is below what max_connections {} needs ({}); "
          "raise LimitNOFILE",
          options_.name, limit.rlim_max, options_.max_connections, needed);
    }
  }

  if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
    TlsFileProblem problem;
    auto context = TlsContext::Load(options_.tls_cert, options_.tls_key, &problem);
    if (!context) throw std::runtime_error("TLS: " + problem.message);
    MutexLock lock(tls_mu_);
    tls_ = std::move(context);
  }

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::runtime_error("epoll/eventfd failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake-up descriptor
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);

  server_ = std::make_unique<ConnectionAdopter>([this](int fd) { Adopt(fd); });
  ConnectionAdopter& s = *server_;
  s.new_task_queue = [] { return new InlineTaskQueue; };
  s.set_tcp_nodelay(true);
  s.set_payload_max_length(options_.max_body);
  // Only what the Keep-Alive answer header says; the event thread does the closing.
  s.set_keep_alive_timeout(std::max<time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.idle_timeout).count()));
  s.set_keep_alive_max_count(1000000);

  auto route = [this](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request;
    request.method = req.method;
    request.path = req.path;
    request.target = req.target;
    request.headers.assign(req.headers.begin(), req.headers.end());
    request.body = req.body;
    HttpResponse answer = handler_(request);
    res.status = answer.status;
    for (auto& [name, value] : answer.headers) res.set_header(name, value);
    // httplib compresses the body when the client accepts gzip or br: caches must know.
    if (!res.has_header("Vary")) res.set_header("Vary", "Accept-Encoding");
    res.body = std::move(answer.body);
    res.set_header("Content-Type", answer.content_type);
  };
  const char* kAnyPath = R"(/.*)";
  s.Get(kAnyPath, route);
  s.Post(kAnyPath, route);
  s.Put(kAnyPath, route);
  s.Patch(kAnyPath, route);
  s.Delete(kAnyPath, route);
  s.Options(kAnyPath, route);
  // Errors httplib answers itself (400, 414, ...) get our body; the handler's already have one.
  httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request&,
                                                         httplib::Response& res) {
    if (!res.body.empty() || !options_.error_body)
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(options_.error_body(res.status), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  s.set_error_handler(on_error);
  s.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("{}: {} {} failed: {}", options_.name, req.method, req.path, what);
        res.status = 500;
        res.set_content(options_.error_body ? options_.error_body(500) : "", "application/json");
      });

  const ListenAddress& listen = options_.listen;
  if (listen.port == 0) {
    port_ = s.bind_to_any_port(listen.host);
  } else {
    port_ = s.bind_to_port(listen.host, listen.port) ? listen.port : -1;
  }
  if (port_ <= 0) {
    throw std::runtime_error("cannot listen on " + listen.host + ":" + std::to_string(listen.port) +
                             " (address in use or not local?)");
  }
  s.RaiseListenBacklog();
  event_thread_ = std::thread([this] { EventLoop(); });
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  accept_thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing until the accept loop runs, and 0.11 has no
  // wait_until_ready(): wait here, so a SIGTERM right after start-up is never lost.
  auto deadline = Steady::now() + std::chrono::seconds(10);
  while (!server_->is_running()) {
    if (Steady::now() > deadline) throw std::runtime_error("the HTTP server did not start");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("{} {}:{}", options_.announce, listen.host, port_);
  if (!options_.tls_cert.empty()) {
    spdlog::info("{}: HTTPS only (TLS 1.2 and 1.3), certificate {}", options_.name,
                 options_.tls_cert);
  }
}

bool HttpServer::Impl::ReloadTls(const std::string& cert, const std::string& key,
                                 std::string* error) {
  {
    MutexLock lock(tls_mu_);
    if (!tls_) {
      if (error != nullptr) *error = "the server runs plain HTTP";
      return false;
    }
  }
  TlsFileProblem problem;
  std::shared_ptr<const TlsContext> context = TlsContext::Load(cert, key, &problem);
  if (!context) {
    if (error != nullptr) *error = problem.message;
    return false;
  }
  std::shared_ptr<const TlsContext> old;
  {
    MutexLock lock(tls_mu_);
    old = std::exchange(tls_, std::move(context));
  }
  return true;  // `old` goes here; open sessions hold their own reference to its SSL_CTX
}

void HttpServer::Impl::Stop() {
  if (!server_) return;
  stopping_ = true;
  server_->stop();
  if (accept_thread_.joinable()) accept_thread_.join();
  Wake();
  if (event_thread_.joinable()) event_thread_.join();  // every connection closed
  {
    MutexLock lock(mu_);
    workers_stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  server_.reset();
  close(epoll_fd_);
  close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
}

// Accept thread.
void HttpServer::Impl::Adopt(int fd) {
  accepted_++;
  if (stopping_ || open_.load() >= options_.max_connections) {
    refused_++;
    ::close(fd);  // at once: a refused client must not wait behind the open ones
    auto now = Steady::now();
    if (now - last_refusal_log_ > std::chrono::seconds(10)) {
      last_refusal_log_ = now;
      spdlog::warn("{}: {} connections open (max_connections); refusing new ones", options_.name,
                   options_.max_connections);
    }
    return;
  }
  open_++;
  {
    MutexLock lock(mu_);
    adopted_.push_back(fd);
  }
  Wake();
}

void HttpServer::Impl::Arm(Connection& c, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events | EPOLLONESHOT;
  ev.data.ptr = &c;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpServer::Impl::EventLoop() {
  std::vector<epoll_event> events(256);
  Steady::time_point last_sweep = Steady::now();
  std::vector<int> adopted;
  std::vector<Connection*> returned;
  for (;;) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                       tls_pending_.empty() ? 50 : 0);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Connection*>(events[static_cast<std::size_t>(i)].data.ptr);
      if (c == nullptr) {
        std::uint64_t count;
        while (::read(wake_fd_, &count, sizeof(count)) > 0) {
        }
        continue;
      }
      std::uint32_t what = events[static_cast<std::size_t>(i)].events;
      if (c->state == Connection::State::kWriting) {
        OnWritable(*c);
      } else if (c->state == Connection::State::kHandshaking) {
        OnHandshake(*c);
      } else if ((what & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) || c->read_wants_write) {
        OnReadable(*c);
      }
    }
    if (!tls_pending_.empty()) {
      std::vector<std::pair<int, Connection*>> pending;
      pending.swap(tls_pending_);
      for (auto [fd, c] : pending) {
        auto it = connections_.find(fd);
        if (it != connections_.end() && it->second.get() == c &&
            c->state == Connection::State::kReading) {
          OnReadable(*c);
        }
      }
    }
    {
      MutexLock lock(mu_);
      adopted.swap(adopted_);
      returned.swap(returned_);
    }
    Steady::time_point now = Steady::now();
    std::shared_ptr<const TlsContext> tls;
    if (!adopted.empty()) {
      MutexLock lock(tls_mu_);
      tls = tls_;
    }
    for (int fd : adopted) {
      SetNonBlocking(fd);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Connection>();
      c->fd = fd;
      c->last_activity = now;
      c->remote = Address(fd, true);
      c->local = Address(fd, false);
      if (tls) {
        c->tls = std::make_unique<TlsSession>(*tls, fd);
        c->state = Connection::State::kHandshaking;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
      ev.data.ptr = c.get();
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
      connections_.emplace(fd, std::move(c));
    }
    adopted.clear();
    for (Connection* c : returned) {
      --working_;
      if (!Flush(*c)) {
        Close(*c);
      } else if (c->out_offset < c->out.size()) {
        c->state = Connection::State::kWriting;
        c->last_activity = now;
        Arm(*c, WriteEvents(*c));
      } else {
        AfterAnswer(*c);
      }
    }
    returned.clear();
    if (stopping_) {
      if (stop_deadline_ == Steady::time_point{}) {
        stop_deadline_ = now + std::min(options_.write_timeout, kStopWriteLimit);
      }
      // Nothing in progress on these: close them now.
      std::vector<Connection*> idle;
      for (auto& [fd, c] : connections_) {
        if (c->state == Connection::State::kReading || c->state == Connection::State::kLingering ||
            c->state == Connection::State::kHandshaking) {
          idle.push_back(c.get());
        }
      }
      for (Connection* c : idle) Close(*c);
    }
    if (now - last_sweep >= std::chrono::milliseconds(50) || stopping_) {
      last_sweep = now;
      Sweep(now);
    }
    if (stopping_ && connections_.empty()) break;
  }
}

void HttpServer::Impl::Sweep(Steady::time_point now) {
  std::vector<Connection*> expired;
  for (auto& [fd, c] : connections_) {
    switch (c->state) {
      case Connection::State::kHandshaking:  // from the accept: a handshake gets idle_timeout
      case Connection::State::kReading:
        if (now - c->last_activity >= options_.idle_timeout) {
          timed_out_++;
          expired.push_back(c.get());
        }
        break;
      case Connection::State::kWriting:
        if (now - c->last_activity >= options_.write_timeout ||
            (stopping_ && now >= stop_deadline_)) {
          expired.push_back(c.get());
        }
        break;
      case Connection::State::kLingering:
        if (now >= c->linger_until) expired.push_back(c.get());
        break;
      case Connection::State::kWorking:
        break;
    }
  }
  for (Connection* c : expired) Close(*c);
}

void HttpServer::Impl::OnHandshake(Connection& c) {
  switch (c.tls->Handshake()) {
    case TlsSession::Status::kOk:
      c.state = Connection::State::kReading;
      c.last_activity = Steady::now();
      OnReadable(c);  // the request may have come with the handshake's last flight
      return;
    case TlsSession::Status::kWantRead:
      Arm(c, EPOLLIN | EPOLLRDHUP);
      return;
    case TlsSession::Status::kWantWrite:
      Arm(c, EPOLLOUT);
      return;
    case TlsSession::Status::kClosed:
    case TlsSession::Status::kError:
      spdlog::debug("{}: TLS handshake with {}:{} failed: {}", options_.name, c.remote.first,
                    c.remote.second, c.tls->error());
      tls_failed_++;
      Close(c);
      return;
  }
}

void HttpServer::Impl::ArmRead(Connection& c) {
  if (c.tls && c.tls->HasPending()) {
    tls_pending_.emplace_back(c.fd, &c);
    return;
  }
  Arm(c, c.read_wants_write ? EPOLLOUT : EPOLLIN | EPOLLRDHUP);
}

void HttpServer::Impl::OnReadable(Connection& c) {
  // A lingering connection's TLS session is over: what still arrives is dropped unread.
  bool eof = c.tls && c.state != Connection::State::kLingering ? ReceiveTls(c) : Receive(c);
  if (c.state == Connection::State::kLingering) {
    if (eof) {
      Close(c);
    } else {
      Arm(c, EPOLLIN | EPOLLRDHUP);
    }
    return;
  }
  if (eof) c.peer_done = true;
  if (stopping_) {
    Close(c);  // nothing of it was in progress
    return;
  }
  FrameAndDispatch(c);
}

// kReading with new bytes, or after an answer: hands a complete request to a worker.
void HttpServer::Impl::FrameAndDispatch(Connection& c) {
  // Empty lines before a request line are ignored (RFC 9112 2.2).
  std::size_t blank = 0;
  while (c.in.compare(blank, 2, "\r\n") == 0) blank += 2;
  if (blank > 0) c.in.erase(0, blank);
  Framing f = FrameRequest(c.in, options_.max_body);
  switch (f.kind) {
    case Framing::Kind::kComplete: {
      c.state = Connection::State::kWorking;
      c.request_length = f.length;
      ++working_;
      {
        MutexLock lock(mu_);
        work_.push_back(&c);
      }
      work_cv_.notify_one();
      return;
    }
    case Framing::Kind::kIncomplete:
      if (c.peer_done) {
        Close(c);
        return;
      }
      if (f.expects_continue && !c.continue_sent) {
        c.continue_sent = true;
        c.out.append(kContinue);
        if (!Flush(c)) {
          Close(c);
          return;
        }
      }
      c.state = Connection::State::kReading;
      ArmRead(c);
      return;
    case Framing::Kind::kBodyTooLarge:
      AnswerError(c, 413);
      return;
    case Framing::Kind::kHeadTooLarge:
      AnswerError(c, 431);
      return;
    case Framing::Kind::kBad:
      AnswerError(c, 400);
      return;
  }
}

void HttpServer::Impl::AnswerError(Connection& c, int status) {
  std::string body = options_.error_body ? options_.error_body(status) : "";
  c.out += "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  c.in.clear();
  c.close_after = true;
  if (!Flush(c)) {
    Close(c);
  } else if (c.out_offset < c.out.size()) {
    c.state = Connection::State::kWriting;
    Arm(c, WriteEvents(c));
  } else {
    AfterAnswer(c);
  }
}

void HttpServer::Impl::OnWritable(Connection& c) {
  std::size_t before = c.out_offset;
  if (!Flush(c)) {
    Close(c);
    return;
  }
  if (c.out.empty()) {
    AfterAnswer(c);
    return;
  }
  if (c.out_offset != before) c.last_activity = Steady::now();
  Arm(c, WriteEvents(c));
}

void HttpServer::Impl::AfterAnswer(Connection& c) {
  c.continue_sent = false;
  if (c.close_after || stopping_) {
    if (c.tls) c.tls->SendCloseNotify();
    if (c.in.empty() && !c.peer_done && !stopping_) {
      // Let the client read the answer before the close: drop what it still sends for a while.
      shutdown(c.fd, SHUT_WR);
      c.state = Connection::State::kLingering;
      c.linger_until = Steady::now() + kLinger;
      Arm(c, EPOLLIN | EPOLLRDHUP);
      return;
    }
    Close(c);
    return;
  }
  c.last_activity = Steady::now();
  if (c.in.capacity() > kKeepCapacity && c.in.size() < kKeepCapacity) c.in.shrink_to_fit();
  FrameAndDispatch(c);
}

void HttpServer::Impl::Close(Connection& c) {
  int fd = c.fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  connections_.erase(fd);  // destroys c
  open_--;
}

void HttpServer::Impl::WorkerLoop() {
  for (;;) {
    Connection* c = nullptr;
    {
      MutexLock lock(mu_);
      lock.Wait(work_cv_, [this]() REQUIRES(mu_) { return workers_stop_ || !work_.empty(); });
      if (work_.empty()) return;
      c = work_.front();
      work_.pop_front();
    }
    Process(*c);
    {
      MutexLock lock(mu_);
      returned_.push_back(c);
    }
    Wake();
  }
}

// Worker: answers the first request in c.in into c.out and writes what the socket takes.
void HttpServer::Impl::Process(Connection& c) {
  bool connection_closed = false;
  bool ok = false;
  {
    c.request_length = PrepareHeadForHttplib(&c.in, c.request_length);
    RequestStream stream(c, std::string_view(c.in).substr(0, c.request_length));
    ok = server_->ProcessRequest(stream, stopping_.load(), connection_closed);
  }
  c.in.erase(0, c.request_length);
  c.request_length = 0;
  if (!ok || connection_closed || stopping_) c.close_after = true;
  if (!Flush(c)) c.close_after = true;  // the event thread finds it broken again and closes
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}
HttpServer::~HttpServer() = default;
void HttpServer::Start() { impl_->Start(); }
int HttpServer::port() const { return impl_->port(); }
void HttpServer::Stop() { impl_->Stop(); }
bool HttpServer::ReloadTls(const std::string& cert, const std::string& key, std::string* error) {
  return impl_->ReloadTls(cert, key, error);
}
HttpServer::Counters HttpServer::counters() const { return impl_->counters(); }

void WriteConnectionMetrics(std::ostream& out, const HttpServer::Counters& c) {
  out << "# HELP allocation_relay_http_connections HTTP connections open now.\n"
         "# TYPE allocation_relay_http_connections gauge\n"
      << "allocation_relay_http_connections " << c.open << "\n"
      << "# HELP allocation_relay_http_connections_total HTTP connections accepted, refused "
         "(max_connections reached), closed after idle_timeout and closed by a failed TLS "
         "handshake.\n"
         "# TYPE allocation_relay_http_connections_total counter\n"
      << "allocation_relay_http_connections_total{outcome=\"accepted\"} " << c.accepted << "\n"
      << "allocation_relay_http_connections_total{outcome=\"refused\"} " << c.refused << "\n"
      << "allocation_relay_http_connections_total{outcome=\"timed_out\"} " << c.timed_out << "\n"
      << "allocation_relay_http_connections_total{outcome=\"tls_failed\"} " << c.tls_failed << "\n";
}

}  // namespace allocation_relay
