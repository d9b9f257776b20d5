// KeyRing: the configured API keys, looked up by token.
//
// Tokens are never stored: a presented token is hashed (SHA-256) and compared with every
// configured hash in constant time. Immutable after construction; safe across threads.
#ifndef ALLOCATION_RELAY_API_KEY_RING_H_
#define ALLOCATION_RELAY_API_KEY_RING_H_

#include <string>
#include <string_view>
#include <vector>

#include "allocation_relay/config.h"

namespace allocation_relay {

class KeyRing {
 public:
  explicit KeyRing(std::vector<ApiKey> keys) : keys_(std::move(keys)) {}

  // The key whose hash matches sha256(token); nullptr for an empty or unknown token.
  const ApiKey* Authenticate(std::string_view token) const;

  // True if `key` may call `endpoint` (an entry of kEndpointNames).
  static bool Allows(const ApiKey& key, std::string_view endpoint);

 private:
  std::vector<ApiKey> keys_;
};

// The text `allocation-api keygen --name <name>` prints: the token and its config entry.
std::string KeygenOutput(const std::string& name, const std::string& token);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_KEY_RING_H_
