// Webhook signatures: Centra's X-Centra-Signature and the Standard Webhooks scheme.
// Pure functions; thread-safe.
#ifndef ALLOCATION_RELAY_SIGNATURE_H_
#define ALLOCATION_RELAY_SIGNATURE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace allocation_relay {

// Hex HMAC-SHA256 of `data` under `key` (lowercase).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// Hex SHA-256 of `data` (lowercase), as API key hashes are written in the config.
std::string Sha256Hex(std::string_view data);
std::array<unsigned char, 32> Sha256(std::string_view data);

// Compares in time that depends only on the length, not on where the bytes differ.
bool ConstantTimeEquals(std::span<const unsigned char> a, std::span<const unsigned char> b);

// `bytes` random bytes from the OS CSPRNG, as lowercase hex (for API tokens).
std::string RandomHexToken(std::size_t bytes = 32);

// The X-Centra-Signature header value: "t=<unix_seconds>,v1=<hex HMAC-SHA256(secret,
// "<t>.<body>")>", where `body` is the whole raw request body including "payload=".
std::string CentraSignatureHeader(std::string_view secret, std::int64_t unix_seconds,
                                  std::string_view body);

// Standard Webhooks (https://www.standardwebhooks.com): the `webhook-signature` value
// "v1,<base64 HMAC-SHA256(key, "<msg_id>.<timestamp>.<body>")>", where the key is the base64
// part of `secret` ("whsec_<base64>"). Returns nullopt if the secret is not of that form.
std::optional<std::string> StandardWebhooksSignature(std::string_view secret,
                                                     std::string_view msg_id,
                                                     std::int64_t unix_seconds,
                                                     std::string_view body);

// True if `secret` is "whsec_" followed by valid, non-empty base64.
bool IsStandardWebhooksSecret(std::string_view secret);

std::string Base64Encode(std::string_view bytes);
// Returns nullopt for malformed base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SIGNATURE_H_
