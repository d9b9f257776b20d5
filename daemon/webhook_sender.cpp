#include "webhook_sender.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>

namespace allocation_relay {
namespace {

bool NonPublicV4(std::uint32_t a) {  // host byte order
  auto in = [a](std::uint32_t net, int bits) {
    std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  return in(0x00000000, 8) ||   // 0.0.0.0/8
         in(0x0A000000, 8) ||   // 10/8
         in(0x64400000, 10) ||  // 100.64/10 (CGNAT)
         in(0x7F000000, 8) ||   // 127/8
         in(0xA9FE0000, 16) ||  // 169.254/16
         in(0xAC100000, 12) ||  // 172.16/12
         in(0xC0A80000, 16) ||  // 192.168/16
         in(0xE0000000, 4) ||   // multicast
         in(0xF0000000, 4);     // reserved, broadcast
}

std::once_flag global_init;

}  // namespace

bool IsNonPublicAddress(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    return NonPublicV4(ntohl(v4->sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    const unsigned char* b = v6->sin6_addr.s6_addr;
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0) {
      std::uint32_t a = (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) |
                        (std::uint32_t{b[14]} << 8) | b[15];
      return NonPublicV4(a);
    }
    bool unspecified_or_loopback = true;
    for (int i = 0; i < 15; ++i) unspecified_or_loopback &= b[i] == 0;
    unspecified_or_loopback &= b[15] <= 1;
    return unspecified_or_loopback ||                  // :: and ::1
           (b[0] & 0xfe) == 0xfc ||                    // fc00::/7 unique local
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||  // fe80::/10 link-local
           b[0] == 0xff;                               // multicast
  }
  return true;  // anything else is not an internet destination
}

struct WebhookSender::Impl {
  struct Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    WebhookCall call;
    WebhookOutcome outcome;
    std::chrono::steady_clock::time_point started;
    // Through a proxy, curl connects to the proxy only, so the webhook's own host is checked
    // first by a probe: the same URL, direct, whose every socket is refused after its address
    // was looked at (curl resolves asynchronously; nothing is sent).
    bool probing = false;
    int probed_addresses = 0;
    bool refused_private = false;
    bool custom_ca = false;  // CURLOPT_CAINFO_BLOB/CAPATH set: the handle is not kept for reuse
    std::list<Transfer>::iterator self;  // its place in `transfers`, for O(1) removal
  };

  CURLM* multi = nullptr;
  std::list<Transfer> transfers;  // stable addresses: libcurl holds pointers to them
  // Finished easy handles, kept for the next calls: setting one up again is cheaper than
  // creating it (connections live in the multi handle's cache either way).
  std::vector<CURL*> idle;
  static constexpr std::size_t kMaxIdle = 256;

  static size_t OnBody(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string& head = t->outcome.response_head;
    if (head.size() < kResponseHeadBytes) {
      head.append(data, std::min(size * n, kResponseHeadBytes - head.size()));
    }
    return size * n;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    constexpr std::string_view kName = "retry-after:";
    const std::size_t length = size * n;
    // Every header line of every answer passes here: look before copying anything.
    if (length > kName.size() && (data[0] == 'r' || data[0] == 'R') &&
        strncasecmp(data, kName.data(), kName.size()) == 0) {
      std::string value(data + kName.size(), length - kName.size());
      char* end = nullptr;
      long seconds = std::strtol(value.c_str(), &end, 10);
      if (end != value.c_str() && seconds >= 0) {
        t->outcome.retry_after = std::chrono::seconds(seconds);
      }
    }
    return size * n;
  }

  static curl_socket_t OnOpenSocket(void* user, curlsocktype, curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(user);
    if (t->probing) {
      ++t->probed_addresses;
      if (IsNonPublicAddress(&address->addr)) t->refused_private = true;
      return CURL_SOCKET_BAD;
    }
    // Through a proxy this socket goes to the proxy: the webhook's host was probed instead.
    if (t->call.proxy.empty() && !t->call.allow_private_networks &&
        IsNonPublicAddress(&address->addr)) {
      t->refused_private = true;
      return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
  }

  void Start(WebhookCall call) {
    Transfer& t = transfers.emplace_back();
    t.self = std::prev(transfers.end());
    t.call = std::move(call);
    t.outcome.tag = t.call.tag;
    t.started = std::chrono::steady_clock::now();
    if (!idle.empty()) {
      t.easy = idle.back();
      idle.pop_back();
    } else {
      t.easy = curl_easy_init();
      if (!t.easy) throw std::runtime_error("curl_easy_init failed");
    }
    t.probing = !t.call.proxy.empty() && !t.call.allow_private_networks;
    SetOptions(t);
    for (const auto& [name, value] : t.call.request.headers) {
      t.headers = curl_slist_append(t.headers, (name + ": " + value).c_str());
    }
    t.headers = curl_slist_append(t.headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, t.headers);
    curl_multi_add_handle(multi, t.easy);
  }

  // Every option a call uses, set on every call (idle handles are reused without a reset). A
  // probe (t.probing) only connects, directly.
  void SetOptions(Transfer& t) {
    CURL* e = t.easy;
    const WebhookCall& c = t.call;
    curl_easy_setopt(e, CURLOPT_URL, c.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, t.probing ? 1L : 0L);
    // Only dispatcher.proxy: "" also keeps curl from taking http_proxy/no_proxy from the
    // environment.
    curl_easy_setopt(e, CURLOPT_PROXY, t.probing ? "" : c.proxy.c_str());
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c.request.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(c.request.body.size()));
    // The probe and the call share the call's timeout.
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t.started);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<std::int64_t>(1, (c.timeout - elapsed).count())));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c.verify_tls ? 2L : 0L);
    // The PEM texts read with the config, never the files: libcurl would read those again for
    // every new connection. The certificate and CA blobs are part of what libcurl matches a
    // cached connection (and TLS session) on, by content, so a connection made with one pair
    // is never reused for a call with another pair or none.
    SetPemBlob(e, CURLOPT_SSLCERT_BLOB, c.client_cert_pem);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    SetPemBlob(e, CURLOPT_SSLKEY_BLOB, c.client_key_pem);
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    if (!c.ca_pem.empty()) {
      // Instead of the system's CAs (the blob overrides CURLOPT_CAINFO), not beside them.
      SetPemBlob(e, CURLOPT_CAINFO_BLOB, c.ca_pem);
      curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
      t.custom_ca = true;
    }
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  }

  // Gives `option` a copy of `pem` (CURL_BLOB_COPY: the handle owns it; the call's string may
  // go first); empty `pem` clears what a reused handle had.
  static void SetPemBlob(CURL* e, CURLoption option, const std::string& pem) {
    if (pem.empty()) {
      curl_easy_setopt(e, option, static_cast<curl_blob*>(nullptr));
      return;
    }
    curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(e, option, &blob);
  }

  // A probe ended (it always ends in an error: its sockets are refused). True if the call then
  // went out through the proxy; false if it ends here (`code` and the verdict in t).
  bool ContinueAfterProbe(Transfer& t) {
    if (t.refused_private || t.probed_addresses == 0) return false;  // Finish says which
    t.probing = false;
    curl_multi_remove_handle(multi, t.easy);
    SetOptions(t);
    curl_multi_add_handle(multi, t.easy);
    return true;
  }

  WebhookOutcome Finish(Transfer& t, CURLcode code) {
    WebhookOutcome out = std::move(t.outcome);
    out.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t.started);
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    if (code == CURLE_OK) {
      out.http_status = static_cast<int>(status);
    } else {
      out.http_status = 0;
      if (t.refused_private) {
        out.error =
            "destination refused: private, loopback or link-local address (set "
            "dispatcher.allow_private_networks to allow)";
      } else if (t.probing) {
        out.error = std::string(
                        "destination refused: the webhook's host could not be resolved "
                        "to check that it is public (") +
                    curl_easy_strerror(code) +
                    "; set dispatcher.allow_private_networks to leave the check to the proxy)";
      } else {
        out.error = curl_easy_strerror(code);
      }
    }
    curl_multi_remove_handle(multi, t.easy);
    if (idle.size() < kMaxIdle && !t.custom_ca) {
      // Not reset: Start sets every option it uses on every call, so nothing carries over (but
      // CURLOPT_CAPATH, whose default cannot be set back: those handles are not kept).
      idle.push_back(t.easy);
    } else {
      curl_easy_cleanup(t.easy);
    }
    curl_slist_free_all(t.headers);
    return out;
  }
};

WebhookSender::WebhookSender() : impl_(std::make_unique<Impl>()) {
  std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_->multi = curl_multi_init();
  if (!impl_->multi) throw std::runtime_error("curl_multi_init failed");
}

WebhookSender::~WebhookSender() {
  for (auto& t : impl_->transfers) impl_->Finish(t, CURLE_ABORTED_BY_CALLBACK);
  for (CURL* e : impl_->idle) curl_easy_cleanup(e);
  curl_multi_cleanup(impl_->multi);
}

void WebhookSender::Submit(WebhookCall call) { impl_->Start(std::move(call)); }

std::size_t WebhookSender::in_flight() const { return impl_->transfers.size(); }

void WebhookSender::Wakeup() { curl_multi_wakeup(impl_->multi); }

std::vector<WebhookOutcome> WebhookSender::Poll(std::chrono::milliseconds max_wait) {
  int running = 0;
  curl_multi_perform(impl_->multi, &running);
  std::vector<WebhookOutcome> done;
  auto collect = [&] {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(impl_->multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Impl::Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      CURLcode code = msg->data.result;
      if (t->probing && impl_->ContinueAfterProbe(*t)) continue;
      done.push_back(impl_->Finish(*t, code));
      impl_->transfers.erase(t->self);
    }
  };
  collect();
  if (done.empty()) {
    int fds = 0;
    curl_multi_poll(impl_->multi, nullptr, 0, static_cast<int>(max_wait.count()), &fds);
    curl_multi_perform(impl_->multi, &running);
    collect();
  }
  return done;
}

}  // namespace allocation_relay
