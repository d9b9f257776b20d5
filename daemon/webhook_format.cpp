#include "webhook_format.h"

#include "allocation_relay/render.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/version.h"

namespace allocation_relay {

std::string UserAgent() { return std::string(kProductName) + "/" + kVersion; }

namespace {
const std::string& CachedUserAgent() {
  static const std::string user_agent = UserAgent();
  return user_agent;
}
}  // namespace

WebhookRequest FormatWebhook(const WebhookConfig& hook, const std::string& uid,
                             std::string document, std::int64_t unix_seconds) {
  WebhookRequest r;
  r.headers.reserve(5);
  r.headers.emplace_back("User-Agent", CachedUserAgent());
  if (hook.signature == SignatureScheme::kCentra) {
    r.body = "payload=" + FormUrlEncode(document);
    r.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    r.headers.emplace_back("X-Centra-Signature",
                           CentraSignatureHeader(hook.secrets.at(0), unix_seconds, r.body));
  } else {
    r.body = std::move(document);
    r.headers.emplace_back("Content-Type", "application/json");
    r.headers.emplace_back("webhook-id", uid);
    r.headers.emplace_back("webhook-timestamp", std::to_string(unix_seconds));
    // Every secret signs (a rotation: receivers holding either verify), space-separated, newest
    // first. The config loader guarantees whsec_ secrets for this scheme.
    std::string signatures;
    for (const std::string& secret : hook.secrets) {
      if (!signatures.empty()) signatures += ' ';
      signatures += StandardWebhooksSignature(secret, uid, unix_seconds, r.body).value_or("");
    }
    r.headers.emplace_back("webhook-signature", std::move(signatures));
  }
  return r;
}

}  // namespace allocation_relay
