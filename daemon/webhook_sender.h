// WebhookSender: concurrent HTTP POSTs with libcurl's multi interface (the only file that
// includes <curl/curl.h>). Connections are reused across calls; no signals are used (NOSIGNAL).
// Destinations that resolve to loopback, private, link-local or unspecified addresses are
// refused at connect time (after DNS) unless the call allows them; only http and https. Through
// a proxy (WebhookCall::proxy) that check applies to the webhook's own host, resolved here by a
// probe before the call (the proxy resolves it again), never to the proxy; a host that does not
// resolve here is refused. Client certificates and a CA file are libcurl's own options.
//
// A WebhookTransport: not thread-safe, one thread submits and polls; Wakeup() alone may be called
// from any thread.
#ifndef ALLOCATION_RELAY_DAEMON_WEBHOOK_SENDER_H_
#define ALLOCATION_RELAY_DAEMON_WEBHOOK_SENDER_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "webhook_transport.h"

struct sockaddr;

namespace allocation_relay {

class WebhookSender final : public WebhookTransport {
 public:
  static constexpr std::size_t kResponseHeadBytes = 1024;

  WebhookSender();
  ~WebhookSender() override;
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void Submit(WebhookCall call) override;
  // Drives the transfers for at most `max_wait` (less if one finishes or Wakeup() is called);
  // returns the calls that finished.
  std::vector<WebhookOutcome> Poll(std::chrono::milliseconds max_wait) override;
  std::size_t in_flight() const override;
  void Wakeup() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for loopback, RFC 1918 / unique-local, link-local, CGNAT, multicast and unspecified
// addresses (IPv4, IPv6 and IPv4-mapped IPv6): destinations refused by default.
bool IsNonPublicAddress(const sockaddr* address);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_WEBHOOK_SENDER_H_
