// WebhookRequest: the exact HTTP request of one delivery, in the warehouse's format.
//
// centra: form-encoded body "payload=<url-encoded JSON>", X-Centra-Signature: t=..,v1=.. (the
// first secret signs).
// standard-webhooks: the JSON as the body, webhook-id / webhook-timestamp / webhook-signature,
// one "v1,<base64>" per secret, space-separated in the secrets' order (a rotation).
// Both carry a User-Agent naming the product and version. Pure; thread-safe.
#ifndef ALLOCATION_RELAY_DAEMON_WEBHOOK_FORMAT_H_
#define ALLOCATION_RELAY_DAEMON_WEBHOOK_FORMAT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "allocation_relay/config.h"

namespace allocation_relay {

struct WebhookRequest {
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// `document` is the delivery's {"events": [...]} JSON (taken by value: a standard-webhooks body
// is the document itself, moved in when the caller no longer needs it); `uid` its delivery id;
// `unix_seconds` the signing time of this attempt.
WebhookRequest FormatWebhook(const WebhookConfig& hook, const std::string& uid,
                             std::string document, std::int64_t unix_seconds);

std::string UserAgent();

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_DAEMON_WEBHOOK_FORMAT_H_
