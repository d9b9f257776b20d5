#include "key_ring.h"

#include <algorithm>

#include "allocation_relay/signature.h"

namespace allocation_relay {

const ApiKey* KeyRing::Authenticate(std::string_view token) const {
  if (token.empty()) return nullptr;
  std::array<unsigned char, 32> digest = Sha256(token);
  const ApiKey* found = nullptr;
  for (const ApiKey& key : keys_) {  // no early exit: the time does not tell which key matched
    if (ConstantTimeEquals(digest, key.sha256)) found = &key;
  }
  return found;
}

bool KeyRing::Allows(const ApiKey& key, std::string_view endpoint) {
  return std::find(key.endpoints.begin(), key.endpoints.end(), endpoint) != key.endpoints.end();
}

std::string KeygenOutput(const std::string& name, const std::string& token) {
  return "token: " + token +
         "\n"
         "# Give the token to the client (header API-Authorization: <token>); it is not stored.\n"
         "# Add this entry under api.keys, keep the endpoints it needs, optionally add\n"
         "# warehouses: [<id>, ...] to limit it to those warehouses, then reload:\n"
         "    - name: " +
         name + "\n      sha256: " + Sha256Hex(token) +
         "\n      endpoints: [GET /allocation-requests, PUT /allocation-request]\n";
}

}  // namespace allocation_relay
