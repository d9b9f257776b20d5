#include "allocation_relay/signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace allocation_relay {
namespace {

std::string ToHex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

// Lets the per-thread caches below be searched by string_view, without copying the key.
struct TransparentHash : std::hash<std::string_view> {
  using is_transparent = void;
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, TransparentHash, std::equal_to<>>;

// HMAC() in OpenSSL 3 looks the algorithms up and keys a new context on every call; the
// dispatcher signs every webhook with one of a few secrets. So each thread keeps one keyed
// context per secret (at most kMaxKeys) and re-initialises it for each signature (EVP_MAC_init
// with no key keeps the key: no allocation per signature).
class KeyedHmacCache {
 public:
  ~KeyedHmacCache() { Clear(); }

  // HMAC-SHA256 under `key` of the concatenation of `pieces` (signed without joining them).
  std::string Sign(std::string_view key, std::initializer_list<std::string_view> pieces) {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // shared, immutable
    if (mac == nullptr) throw std::runtime_error("OpenSSL has no HMAC");
    auto it = keyed_.find(key);
    EVP_MAC_CTX* ctx = nullptr;
    if (it == keyed_.end()) {
      if (keyed_.size() >= kMaxKeys) Clear();
      ctx = EVP_MAC_CTX_new(mac);
      char digest[] = "SHA256";
      OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                             OSSL_PARAM_construct_end()};
      if (ctx == nullptr || EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()),
                                         key.size(), params) != 1) {
        EVP_MAC_CTX_free(ctx);
        throw std::runtime_error("HMAC-SHA256 key setup failed");
      }
      keyed_.emplace(std::string(key), ctx);
    } else {
      ctx = it->second;
      if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1) {
        throw std::runtime_error("HMAC-SHA256 re-initialisation failed");
      }
    }
    bool ok = true;
    for (std::string_view piece : pieces) {
      ok = ok && EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(piece.data()),
                                piece.size()) == 1;
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (!ok || EVP_MAC_final(ctx, out, &len, sizeof out) != 1) {
      throw std::runtime_error("HMAC-SHA256 failed");
    }
    return std::string(reinterpret_cast<const char*>(out), len);
  }

 private:
  static constexpr std::size_t kMaxKeys = 256;
  void Clear() {
    for (auto& [key, ctx] : keyed_) EVP_MAC_CTX_free(ctx);
    keyed_.clear();
  }
  StringMap<EVP_MAC_CTX*> keyed_;
};

std::string HmacSha256Raw(std::string_view key, std::initializer_list<std::string_view> pieces) {
  thread_local KeyedHmacCache cache;
  return cache.Sign(key, pieces);
}

// The key of a "whsec_<base64>" secret, or nullopt. Remembered per thread for the few secrets
// a dispatcher signs with, so a signature does not decode its secret again.
const std::optional<std::string>& StandardWebhooksKey(std::string_view secret) {
  constexpr std::string_view kPrefix = "whsec_";
  thread_local StringMap<std::optional<std::string>> keys;
  auto it = keys.find(secret);
  if (it != keys.end()) return it->second;
  if (keys.size() >= 256) keys.clear();
  std::optional<std::string> key;
  if (secret.starts_with(kPrefix)) key = Base64Decode(secret.substr(kPrefix.size()));
  if (key && key->empty()) key.reset();
  return keys.emplace(std::string(secret), std::move(key)).first->second;
}

}  // namespace

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  std::string raw = HmacSha256Raw(key, {data});
  return ToHex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return ToHex(digest, sizeof digest);
}

std::array<unsigned char, 32> Sha256(std::string_view data) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

bool ConstantTimeEquals(std::span<const unsigned char> a, std::span<const unsigned char> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RandomHexToken(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    throw std::runtime_error("the OS random generator failed");
  }
  return ToHex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string CentraSignatureHeader(std::string_view secret, std::int64_t unix_seconds,
                                  std::string_view body) {
  std::string t = std::to_string(unix_seconds);
  std::string raw = HmacSha256Raw(secret, {t, ".", body});
  return "t=" + t + ",v1=" + ToHex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=';
    if (!ok) return std::nullopt;
  }
  std::string out(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

bool IsStandardWebhooksSecret(std::string_view secret) {
  return StandardWebhooksKey(secret).has_value();
}

std::optional<std::string> StandardWebhooksSignature(std::string_view secret,
                                                     std::string_view msg_id,
                                                     std::int64_t unix_seconds,
                                                     std::string_view body) {
  const std::optional<std::string>& key = StandardWebhooksKey(secret);
  if (!key) return std::nullopt;
  std::string t = std::to_string(unix_seconds);
  return "v1," + Base64Encode(HmacSha256Raw(*key, {msg_id, ".", t, ".", body}));
}

}  // namespace allocation_relay
