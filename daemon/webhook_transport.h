// WebhookTransport: what the delivery loop needs of an HTTP client: start calls, collect the
// ones that finished, be woken. WebhookSender (libcurl) is the real one; tests give the loop a
// scripted one.
//
// Not thread-safe: one thread submits and polls. Wakeup() alone may be called from any thread.
#ifndef ALLOCATION_RELAY_DAEMON_WEBHOOK_TRANSPORT_H_
#define ALLOCATION_RELAY_DAEMON_WEBHOOK_TRANSPORT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "webhook_format.h"

namespace allocation_relay {

struct WebhookCall {
  std::uint64_t tag = 0;  // the caller's handle, returned in the outcome
  std::string url;
  WebhookRequest request;
  std::chrono::milliseconds timeout{5000};
  bool verify_tls = true;
  // Refuse the webhook's host if it resolves to a non-public address (IsNonPublicAddress);
  // never applied to the proxy.
  bool allow_private_networks = false;
  std::string proxy;  // http(s):// proxy URL (dispatcher.proxy); empty: direct
  // PEM texts (not paths: WebhookConfig's contents, read with the config). Mutual TLS: the
  // client certificate (and any chain after it) and its key, both or neither; empty: none. The
  // key is a secret: never logged.
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string ca_pem;  // the CAs to verify the server with, instead of the system's; empty: those
};

struct WebhookOutcome {
  std::uint64_t tag = 0;
  int http_status = 0;  // 0: no HTTP answer
  std::string error;    // empty on an HTTP answer
  std::chrono::microseconds duration{0};
  std::string response_head;  // the first bytes of the body (WebhookSender: kResponseHeadBytes)
  std::optional<std::chrono::milliseconds> retry_after;
};

class WebhookTransport {
 public:
  virtual ~WebhookTransport() = default;

  // Starts `call`; its outcome comes back from a later Poll, every call's exactly once (a call
  // that gets no answer ends with an error by its timeout).
  virtual void Submit(WebhookCall call) = 0;
  // Drives the calls for at most `max_wait` (less if one finishes or Wakeup() is called);
  // returns the calls that finished.
  virtual std::vector<WebhookOutcome> Poll(std::chrono::milliseconds max_wait) = 0;
  virtual std::size_t in_flight() const = 0;
  // Ends a Poll that is waiting, early. Any thread.
  virtual void Wakeup() = 0;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_WEBHOOK_TRANSPORT_H_
