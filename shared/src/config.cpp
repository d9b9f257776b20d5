// With config_duplicate_keys.cpp, the only user of yaml-cpp: nothing else sees its types or
// exceptions.
#include "allocation_relay/config.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "allocation_relay/duration.h"
#include "allocation_relay/signature.h"
#include "allocation_relay/time_zone.h"
#include "config_duplicate_keys.h"
#include "tls_context.h"

namespace allocation_relay {
namespace {

using std::chrono::milliseconds;

const std::vector<milliseconds> kDefaultRetrySchedule = {
    std::chrono::seconds(5), std::chrono::minutes(5), std::chrono::minutes(30),
    std::chrono::hours(2),   std::chrono::hours(5),   std::chrono::hours(10),
    std::chrono::hours(10)};

// Walks the YAML tree and turns every problem into one ConfigError line:
// "<source>:<line>: <key path>: <problem>".
class ConfigReader {
 public:
  // Relative PEM paths (webhook client_cert, client_key, ca_file) are read from `base_dir`.
  ConfigReader(std::string source, std::filesystem::path base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  Config Read(const YAML::Node& root) {
    Config config;
    config.source = source_;
    config.dispatcher.retry_schedule = kDefaultRetrySchedule;
    if (!root || root.IsNull()) return config;
    if (!root.IsMap()) Fail(root, "(top level)", "expected a mapping of keys");
    CheckKeys(root, "",
              {"timezone", "log_level", "store", "api", "dispatcher", "retention", "warehouses",
               "rules"});

    if (auto n = root["timezone"]) {
      config.timezone = String(n, "timezone");
      if (!TimeZone::Find(config.timezone)) {
        Fail(n, "timezone",
             "unknown time zone \"" + config.timezone +
                 "\" (expected an IANA name "
                 "such as Europe/Stockholm)");
      }
    }
    if (auto n = root["log_level"]) {
      config.log_level = String(n, "log_level");
      static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
      if (!kLevels.contains(config.log_level)) {
        Fail(n, "log_level",
             "expected one of trace, debug, info, warn, error, got \"" + config.log_level + "\"");
      }
    }
    if (auto n = root["store"]) ReadStore(n, config.store);
    if (auto n = root["warehouses"]) ReadWarehouses(n, config);
    if (auto n = root["rules"]) ReadRules(n, config);
    if (auto n = root["api"]) ReadApi(n, config);
    if (auto n = root["dispatcher"]) ReadDispatcher(n, config.dispatcher);
    if (auto n = root["retention"]) ReadRetention(n, config.retention);
    config.retention.webhook_warehouses.emplace();
    for (const WarehouseConfig& w : config.warehouses) {
      if (w.webhook) config.retention.webhook_warehouses->push_back(w.id);
    }
    return config;
  }

 private:
  [[noreturn]] void Fail(const YAML::Node& node, const std::string& key,
                         const std::string& problem) const {
    std::ostringstream out;
    out << source_;
    YAML::Mark mark = node.Mark();
    if (!mark.is_null()) out << ":" << mark.line + 1;
    out << ": " << key << ": " << problem;
    throw ConfigError(out.str());
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  void CheckKeys(const YAML::Node& map, const std::string& path,
                 std::initializer_list<const char*> allowed) const {
    for (const auto& kv : map) {
      std::string key = kv.first.Scalar();
      bool known =
          std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; });
      if (!known) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        Fail(kv.first, Join(path, key), "unknown key (expected one of: " + list + ")");
      }
    }
  }

  void ExpectMap(const YAML::Node& n, const std::string& key) const {
    if (!n.IsMap()) Fail(n, key, "expected a mapping");
  }

  void ExpectSequence(const YAML::Node& n, const std::string& key) const {
    if (!n.IsSequence()) Fail(n, key, "expected a list");
  }

  std::string String(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) Fail(n, key, "expected a string");
    return n.Scalar();
  }

  std::int64_t Int(const YAML::Node& n, const std::string& key, std::int64_t min,
                   std::int64_t max) const {
    if (!n.IsScalar()) Fail(n, key, "expected an integer");
    const std::string& s = n.Scalar();
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size()) {
      Fail(n, key, "expected an integer, got \"" + s + "\"");
    }
    if (value < min || value > max) {
      Fail(n, key,
           "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + s);
    }
    return value;
  }

  bool Bool(const YAML::Node& n, const std::string& key) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    Fail(n, key, "expected true or false");
  }

  milliseconds Duration(const YAML::Node& n, const std::string& key, bool allow_zero) const {
    if (!n.IsScalar()) Fail(n, key, "expected a duration such as 250ms, 5s, 30m or 1h");
    std::optional<milliseconds> d = ParseDuration(n.Scalar());
    if (!d) {
      Fail(n, key, "expected a duration such as 250ms, 5s, 30m or 1h, got \"" + n.Scalar() + "\"");
    }
    if (!allow_zero && d->count() == 0) Fail(n, key, "must be longer than 0");
    return *d;
  }

  ListenAddress Listen(const YAML::Node& n, const std::string& key) const {
    std::string text = String(n, key);
    std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      Fail(n, key, "expected host:port, got \"" + text + "\"");
    }
    ListenAddress address;
    address.host = text.substr(0, colon);
    if (address.host.size() > 2 && address.host.front() == '[' && address.host.back() == ']') {
      address.host = address.host.substr(1, address.host.size() - 2);
    }
    std::string port = text.substr(colon + 1);
    int value = -1;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 0 || value > 65535) {
      Fail(n, key, "expected host:port with a port from 0 to 65535, got \"" + text + "\"");
    }
    address.port = value;
    return address;
  }

  // The backend is read first, so the order of the keys does not matter; then each key that
  // belongs to the other backend is refused, the first in the file named.
  void ReadStore(const YAML::Node& n, StoreConfig& store) const {
    ExpectMap(n, "store");
    CheckKeys(n, "store",
              {"backend", "path", "synchronous", "busy_timeout", "max_size", "url", "pool"});
    bool backend_given = false;
    if (auto b = n["backend"]) {
      std::string name = String(b, "store.backend");
      if (name == "sqlite") {
        store.backend = StoreBackendKind::kSqlite;
      } else if (name == "postgresql") {
        store.backend = StoreBackendKind::kPostgresql;
      } else {
        Fail(b, "store.backend", "expected sqlite or postgresql, got \"" + name + "\"");
      }
      backend_given = true;
    }
    const bool postgresql = store.backend == StoreBackendKind::kPostgresql;
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      const bool sqlite_key =
          key == "path" || key == "synchronous" || key == "busy_timeout" || key == "max_size";
      const bool postgresql_key = key == "url" || key == "pool";
      if (postgresql && sqlite_key) {
        Fail(kv.first, "store." + key, "only for backend sqlite (backend is postgresql)");
      }
      if (!postgresql && postgresql_key) {
        Fail(kv.first, "store." + key,
             std::string("only for backend postgresql (backend is sqlite") +
                 (backend_given ? ")" : ", the default)"));
      }
    }
    if (postgresql) {
      ReadPostgresqlStore(n, store);
    } else {
      ReadSqliteStore(n, store);
    }
  }

  void ReadSqliteStore(const YAML::Node& n, StoreConfig& store) const {
    if (auto p = n["path"]) {
      store.path = String(p, "store.path");
      if (store.path.empty()) Fail(p, "store.path", "must not be empty");
    }
    if (auto s = n["synchronous"]) {
      std::string mode = String(s, "store.synchronous");
      if (mode == "off") {
        store.synchronous = SynchronousMode::kOff;
      } else if (mode == "normal") {
        store.synchronous = SynchronousMode::kNormal;
      } else if (mode == "full") {
        store.synchronous = SynchronousMode::kFull;
      } else if (mode == "extra") {
        store.synchronous = SynchronousMode::kExtra;
      } else {
        Fail(s, "store.synchronous", "expected off, normal, full or extra, got \"" + mode + "\"");
      }
    }
    if (auto b = n["busy_timeout"]) store.busy_timeout = Duration(b, "store.busy_timeout", true);
    if (auto m = n["max_size"]) store.max_size = Int(m, "store.max_size", 0, 1LL << 50);
  }

  // The URL is never echoed unmasked: it may hold a password.
  void ReadPostgresqlStore(const YAML::Node& n, StoreConfig& store) const {
    const YAML::Node u = n["url"];
    if (!u || u.IsNull()) {
      Fail(n, "store.url",
           "missing (backend postgresql needs a libpq connection URI such as "
           "postgresql://relay@db1/relay)");
    }
    store.url = String(u, "store.url");
    if (store.url.empty()) Fail(u, "store.url", "must not be empty");
    if (!store.url.starts_with("postgresql://") && !store.url.starts_with("postgres://")) {
      Fail(u, "store.url",
           "expected a libpq connection URI starting with postgresql:// or postgres://");
    }
    std::string masked = RedactUrlPassword(store.url);
    if (masked != store.url) {
      Fail(u, "store.url",
           "must not contain a password (" + masked +
               "); give it in PGPASSWORD, ~/.pgpass or passfile=");
    }
    if (auto p = n["pool"]) store.pool = static_cast<int>(Int(p, "store.pool", 1, 1000));
  }

  std::int64_t WarehouseRef(const YAML::Node& n, const std::string& key,
                            const Config& config) const {
    std::int64_t id = Int(n, key, 1, std::numeric_limits<std::int64_t>::max());
    if (!config.FindWarehouse(id)) {
      Fail(n, key, "unknown warehouse id " + std::to_string(id) + " (not under warehouses:)");
    }
    return id;
  }

  void ReadWarehouses(const YAML::Node& n, Config& config) const {
    ExpectSequence(n, "warehouses");
    for (std::size_t i = 0; i < n.size(); ++i) {
      const YAML::Node w = n[i];
      std::string path = "warehouses[" + std::to_string(i) + "]";
      ExpectMap(w, path);
      CheckKeys(w, path, {"id", "name", "confirm_timeout", "policy", "webhook"});
      WarehouseConfig warehouse;
      if (!w["id"]) Fail(w, path + ".id", "missing (every warehouse needs an integer id)");
      warehouse.id = Int(w["id"], path + ".id", 1, std::numeric_limits<std::int64_t>::max());
      if (config.FindWarehouse(warehouse.id)) {
        Fail(w["id"], path + ".id", "duplicate warehouse id " + std::to_string(warehouse.id));
      }
      if (!w["name"]) Fail(w, path + ".name", "missing (every warehouse needs a name)");
      warehouse.name = String(w["name"], path + ".name");
      if (auto t = w["confirm_timeout"]) {
        warehouse.confirm_timeout = Duration(t, path + ".confirm_timeout", false);
      }
      if (auto p = w["policy"]) {
        std::string policy = String(p, path + ".policy");
        if (policy == "direct-then-confirm") {
          warehouse.policy = WarehousePolicy::kDirectThenConfirm;
        } else if (policy == "check-first") {
          warehouse.policy = WarehousePolicy::kCheckFirst;
        } else {
          Fail(p, path + ".policy",
               "expected direct-then-confirm or check-first, got \"" + policy + "\"");
        }
      }
      if (auto h = w["webhook"]) warehouse.webhook = ReadWebhook(h, path + ".webhook");
      config.warehouses.push_back(std::move(warehouse));
    }
  }

  WebhookConfig ReadWebhook(const YAML::Node& n, const std::string& path) const {
    ExpectMap(n, path);
    CheckKeys(n, path,
              {"url", "secret", "signature", "timeout", "max_events_per_call", "max_in_flight",
               "verify_tls", "client_cert", "client_key", "ca_file"});
    WebhookConfig hook;
    if (!n["url"]) Fail(n, path + ".url", "missing (a webhook needs a url)");
    hook.url = String(n["url"], path + ".url");
    if (!hook.url.starts_with("http://") && !hook.url.starts_with("https://")) {
      Fail(n["url"], path + ".url",
           "expected an http:// or https:// URL, got \"" + hook.url + "\"");
    }
    if (auto s = n["signature"]) {
      std::string scheme = String(s, path + ".signature");
      if (scheme == "centra") {
        hook.signature = SignatureScheme::kCentra;
      } else if (scheme == "standard-webhooks") {
        hook.signature = SignatureScheme::kStandardWebhooks;
      } else {
        Fail(s, path + ".signature",
             "expected centra or standard-webhooks, got \"" + scheme + "\"");
      }
    }
    // The secret is never echoed back in a message: it may be real.
    const YAML::Node secret = n["secret"];
    const std::string secret_key = path + ".secret";
    if (!secret || secret.IsNull()) {
      Fail(n, secret_key, "missing (every webhook must be signed with a secret)");
    }
    if (secret.IsSequence()) {
      // A rotation: newest first.
      if (secret.size() == 0) Fail(secret, secret_key, "the list of secrets must not be empty");
      for (std::size_t i = 0; i < secret.size(); ++i) {
        const YAML::Node item = secret[i];
        const std::string item_key = secret_key + "[" + std::to_string(i) + "]";
        if (!item.IsScalar()) Fail(item, item_key, "expected a string");
        hook.secrets.push_back(item.Scalar());
      }
    } else if (secret.IsScalar()) {
      hook.secrets.push_back(secret.Scalar());
    } else {
      Fail(secret, secret_key, "expected a string or a list of strings, newest first");
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < hook.secrets.size(); ++i) {
      const std::string item_key =
          secret.IsSequence() ? secret_key + "[" + std::to_string(i) + "]" : secret_key;
      const YAML::Node item = secret.IsSequence() ? secret[i] : secret;
      const std::string& value = hook.secrets[i];
      if (value.empty()) Fail(item, item_key, "must not be empty");
      if (!seen.insert(value).second) Fail(item, item_key, "is listed twice");
      if (hook.signature == SignatureScheme::kStandardWebhooks &&
          !IsStandardWebhooksSecret(value)) {
        Fail(item, item_key, "standard-webhooks needs a secret of the form whsec_<base64>");
      }
    }
    if (auto t = n["timeout"]) hook.timeout = Duration(t, path + ".timeout", false);
    if (auto m = n["max_events_per_call"]) {
      hook.max_events_per_call = static_cast<int>(Int(m, path + ".max_events_per_call", 1, 1000));
    }
    if (auto m = n["max_in_flight"]) {
      hook.max_in_flight = static_cast<int>(Int(m, path + ".max_in_flight", 1, 64));
    }
    if (auto v = n["verify_tls"]) hook.verify_tls = Bool(v, path + ".verify_tls");
    // Each file is read once, here: the calls present what was checked, whatever happens to
    // the files until the next load.
    if (auto c = n["client_cert"]) {
      PemText pem = PemFile(c, path + ".client_cert", kCert);
      hook.client_cert = std::move(pem.path);
      hook.client_cert_pem = std::move(pem.text);
    }
    if (auto k = n["client_key"]) {
      PemText pem = PemFile(k, path + ".client_key", kKey);
      hook.client_key = std::move(pem.path);
      hook.client_key_pem = std::move(pem.text);
    }
    if (n["client_cert"] && !n["client_key"]) {
      Fail(n["client_cert"], path + ".client_key", "missing (client_cert needs its client_key)");
    }
    if (n["client_key"] && !n["client_cert"]) {
      Fail(n["client_key"], path + ".client_cert", "missing (client_key needs its client_cert)");
    }
    if (!hook.client_cert.empty()) CheckKeyMatchesCert(n["client_key"], path + ".client_key", hook);
    if (auto a = n["ca_file"]) {
      PemText pem = PemFile(a, path + ".ca_file", kCert);
      hook.ca_file = std::move(pem.path);
      hook.ca_pem = std::move(pem.text);
    }
    return hook;
  }

  enum PemKind { kCert, kKey };
  struct PemText {
    std::string path;  // absolute
    std::string text;  // the whole file
  };
  // More is not a file of certificates or a key (libcurl takes at most 8 MB in memory).
  static constexpr std::size_t kMaxPemBytes = std::size_t{4} << 20;

  // A PEM file that opens and holds a certificate (kCert: the first of the file) or an
  // unencrypted private key (kKey), read once: its absolute path and its whole text. Nothing
  // of the file is ever shown.
  PemText PemFile(const YAML::Node& n, const std::string& key, PemKind kind) const {
    std::string text = String(n, key);
    if (text.empty()) Fail(n, key, "must not be empty");
    std::filesystem::path file(text);
    if (file.is_relative()) file = std::filesystem::absolute(base_dir_ / file).lexically_normal();
    PemText pem{file.string(), {}};
    std::FILE* f = std::fopen(pem.path.c_str(), "rb");
    if (f == nullptr) Fail(n, key, "cannot read " + pem.path + ": " + std::strerror(errno));
    char buffer[16384];
    std::size_t got = 0;
    while (pem.text.size() <= kMaxPemBytes && (got = std::fread(buffer, 1, sizeof buffer, f)) > 0) {
      pem.text.append(buffer, got);
    }
    const int read_error = std::ferror(f) ? (errno != 0 ? errno : EIO) : 0;
    std::fclose(f);
    OPENSSL_cleanse(buffer, sizeof buffer);  // it may have held a key
    if (read_error != 0) {
      Fail(n, key, "cannot read " + pem.path + ": " + std::strerror(read_error));
    }
    if (pem.text.size() > kMaxPemBytes) {
      Fail(n, key, pem.path + " is larger than 4 MiB (not a PEM file)");
    }
    const bool parsed = kind == kCert ? ParseCertificate(pem.text) != nullptr
                                      : ParsePrivateKey(pem.text) != nullptr;
    if (!parsed) {
      Fail(n, key,
           pem.path + (kind == kCert ? " holds no PEM certificate"
                                     : " holds no unencrypted PEM private key"));
    }
    return pem;
  }

  // The texts read by PemFile, not the files again: what is checked is what the calls use.
  void CheckKeyMatchesCert(const YAML::Node& n, const std::string& key,
                           const WebhookConfig& hook) const {
    auto cert = ParseCertificate(hook.client_cert_pem);
    auto pkey = ParsePrivateKey(hook.client_key_pem);
    const bool matches = cert && pkey && X509_check_private_key(cert.get(), pkey.get()) == 1;
    ERR_clear_error();
    if (!matches) {
      Fail(n, key, hook.client_key + " is not the key of client_cert " + hook.client_cert);
    }
  }

  using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
  using PrivateKeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

  // The first certificate of PEM `text`; null if there is none.
  static X509Ptr ParseCertificate(const std::string& text) {
    BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
    X509Ptr cert(bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr, &X509_free);
    BIO_free(bio);
    ERR_clear_error();
    return cert;
  }

  // The first private key of PEM `text`; null if there is none or it is encrypted (no
  // passphrase prompt: an encrypted key fails like a broken one).
  static PrivateKeyPtr ParsePrivateKey(const std::string& text) {
    auto no_password = [](char*, int, int, void*) { return 0; };
    BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
    PrivateKeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio, nullptr, no_password, nullptr) : nullptr,
                       &EVP_PKEY_free);
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
  }

  void ReadRules(const YAML::Node& n, Config& config) const {
    ExpectMap(n, "rules");
    for (const auto& kv : n) {
      std::string name = kv.first.Scalar();
      std::string path = "rules." + name;
      const YAML::Node groups = kv.second;
      ExpectSequence(groups, path);
      if (groups.size() == 0) Fail(groups, path, "must list at least one priority group");
      PriorityGroups rule;
      std::set<std::int64_t> seen;
      for (std::size_t g = 0; g < groups.size(); ++g) {
        std::string group_path = path + "[" + std::to_string(g) + "]";
        const YAML::Node group = groups[g];
        ExpectSequence(group, group_path);
        if (group.size() == 0) Fail(group, group_path, "a priority group must not be empty");
        std::vector<std::int64_t> ids;
        for (std::size_t k = 0; k < group.size(); ++k) {
          std::string id_path = group_path + "[" + std::to_string(k) + "]";
          std::int64_t id = WarehouseRef(group[k], id_path, config);
          if (!seen.insert(id).second) {
            Fail(group[k], id_path, "warehouse " + std::to_string(id) + " is listed twice");
          }
          ids.push_back(id);
        }
        rule.push_back(std::move(ids));
      }
      config.rules.emplace(name, std::move(rule));
    }
  }

  // api.tls: both files, relative to the config file's directory, checked now so that a bad
  // pair fails start-up (or a reload) with one line naming the key.
  ApiConfig::Tls Tls(const YAML::Node& n) const {
    ExpectMap(n, "api.tls");
    CheckKeys(n, "api.tls", {"cert", "key"});
    ApiConfig::Tls tls;
    std::string* fields[] = {&tls.cert, &tls.key};
    const char* names[] = {"cert", "key"};
    for (int i = 0; i < 2; ++i) {
      std::string key = std::string("api.tls.") + names[i];
      YAML::Node file = n[names[i]];
      if (!file) Fail(n, key, "missing (api.tls needs both cert and key)");
      *fields[i] = String(file, key);
      if (fields[i]->empty()) Fail(file, key, "must not be empty");
      std::filesystem::path path(*fields[i]);
      if (path.is_relative()) {
        path = std::filesystem::absolute(base_dir_ / path).lexically_normal();
      }
      *fields[i] = path.string();
    }
    TlsFileProblem problem;
    if (!TlsContext::Load(tls.cert, tls.key, &problem)) {
      Fail(problem.in_key ? n["key"] : n["cert"], problem.in_key ? "api.tls.key" : "api.tls.cert",
           problem.message);
    }
    return tls;
  }

  void ReadApi(const YAML::Node& n, Config& config) const {
    ApiConfig& api = config.api;
    ExpectMap(n, "api");
    CheckKeys(n, "api",
              {"listen", "max_body", "threads", "max_connections", "idle_timeout", "keys", "tls"});
    if (auto l = n["listen"]) api.listen = Listen(l, "api.listen");
    if (auto m = n["max_body"]) {
      api.max_body = static_cast<std::size_t>(Int(m, "api.max_body", 1, 1LL << 30));
    }
    if (auto t = n["threads"]) api.threads = static_cast<int>(Int(t, "api.threads", 1, 256));
    if (auto c = n["max_connections"]) {
      api.max_connections = static_cast<int>(Int(c, "api.max_connections", 1, 1000000));
    }
    if (auto t = n["idle_timeout"]) api.idle_timeout = Duration(t, "api.idle_timeout", false);
    if (auto t = n["tls"]) api.tls = Tls(t);
    if (auto keys = n["keys"]) {
      ExpectSequence(keys, "api.keys");
      std::set<std::string> names;
      std::set<std::string> hashes;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        std::string path = "api.keys[" + std::to_string(i) + "]";
        const YAML::Node k = keys[i];
        ExpectMap(k, path);
        CheckKeys(k, path, {"name", "sha256", "endpoints", "warehouses", "rate"});
        ApiKey key;
        if (!k["name"]) Fail(k, path + ".name", "missing (every key needs a name)");
        key.name = String(k["name"], path + ".name");
        if (!names.insert(key.name).second) {
          Fail(k["name"], path + ".name", "duplicate key name \"" + key.name + "\"");
        }
        if (!k["sha256"]) Fail(k, path + ".sha256", "missing (the SHA-256 hex of the token)");
        std::string hex = String(k["sha256"], path + ".sha256");
        std::transform(hex.begin(), hex.end(), hex.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
          Fail(k["sha256"], path + ".sha256", "expected 64 hex digits (SHA-256 of the token)");
        }
        if (!hashes.insert(hex).second) {
          Fail(k["sha256"], path + ".sha256", "the same token hash is used by two keys");
        }
        for (std::size_t b = 0; b < 32; ++b) {
          key.sha256[b] = static_cast<unsigned char>(std::stoi(hex.substr(2 * b, 2), nullptr, 16));
        }
        if (!k["endpoints"]) Fail(k, path + ".endpoints", "missing (the endpoints it may call)");
        const YAML::Node endpoints = k["endpoints"];
        ExpectSequence(endpoints, path + ".endpoints");
        for (std::size_t e = 0; e < endpoints.size(); ++e) {
          std::string e_path = path + ".endpoints[" + std::to_string(e) + "]";
          std::string name = String(endpoints[e], e_path);
          bool known = std::any_of(std::begin(kEndpointNames), std::end(kEndpointNames),
                                   [&](const char* known_name) { return name == known_name; });
          if (!known) {
            std::string list;
            for (const char* known_name : kEndpointNames) {
              list += (list.empty() ? "" : ", ") + std::string(known_name);
            }
            Fail(endpoints[e], e_path,
                 "unknown endpoint \"" + name + "\" (expected: " + list + ")");
          }
          key.endpoints.push_back(name);
        }
        if (auto w = k["warehouses"]) {
          ExpectSequence(w, path + ".warehouses");
          std::vector<std::int64_t> ids;
          for (std::size_t j = 0; j < w.size(); ++j) {
            ids.push_back(
                WarehouseRef(w[j], path + ".warehouses[" + std::to_string(j) + "]", config));
          }
          key.scope.only = std::move(ids);
        }
        if (auto r = k["rate"]) {
          // {per_second: <number > 0>, burst: <integer >= 1>}, both required.
          const std::string r_path = path + ".rate";
          ExpectMap(r, r_path);
          CheckKeys(r, r_path, {"per_second", "burst"});
          KeyRate rate;
          const YAML::Node per_second = r["per_second"];
          if (!per_second) Fail(r, r_path + ".per_second", "missing (tokens added per second)");
          if (!per_second.IsScalar()) Fail(per_second, r_path + ".per_second", "expected a number");
          const std::string& text = per_second.Scalar();
          // A YAML float: 0.5, 50, 5e1, 1e-3, +2 (from_chars alone takes no '+').
          const char* first = text.data() + (text.starts_with("+") ? 1 : 0);
          auto [end, ec] = std::from_chars(first, text.data() + text.size(), rate.per_second,
                                           std::chars_format::general);
          if (ec != std::errc() || end != text.data() + text.size() ||
              !(rate.per_second > 0 && rate.per_second <= 1e9)) {
            Fail(per_second, r_path + ".per_second",
                 "expected a number greater than 0 (at most 1000000000), got \"" + text + "\"");
          }
          if (!r["burst"]) {
            Fail(r, r_path + ".burst", "missing (the most calls at once, an integer >= 1)");
          }
          rate.burst = Int(r["burst"], r_path + ".burst", 1, 1000000000);
          key.rate = rate;
        }
        api.keys.push_back(std::move(key));
      }
    }
  }

  void ReadDispatcher(const YAML::Node& n, DispatcherConfig& d) const {
    ExpectMap(n, "dispatcher");
    CheckKeys(n, "dispatcher",
              {"listen", "concurrency", "retry_schedule", "allow_private_networks",
               "send_thread_nice", "proxy"});
    if (auto l = n["listen"]) d.listen = Listen(l, "dispatcher.listen");
    if (auto c = n["concurrency"]) {
      d.concurrency = static_cast<int>(Int(c, "dispatcher.concurrency", 1, 10000));
    }
    if (auto r = n["retry_schedule"]) {
      ExpectSequence(r, "dispatcher.retry_schedule");
      d.retry_schedule.clear();
      for (std::size_t i = 0; i < r.size(); ++i) {
        d.retry_schedule.push_back(
            Duration(r[i], "dispatcher.retry_schedule[" + std::to_string(i) + "]", true));
      }
    }
    if (auto p = n["allow_private_networks"]) {
      d.allow_private_networks = Bool(p, "dispatcher.allow_private_networks");
    }
    if (auto s = n["send_thread_nice"]) {
      d.send_thread_nice = static_cast<int>(Int(s, "dispatcher.send_thread_nice", -20, 19));
    }
    if (auto p = n["proxy"]) d.proxy = ProxyUrl(p, "dispatcher.proxy");
  }

  // An http:// or https:// URL of a proxy: scheme, [user[:password]@]host[:port], at most a
  // trailing "/". Messages show it with its password masked.
  std::string ProxyUrl(const YAML::Node& n, const std::string& key) const {
    std::string url = String(n, key);
    // The user info is what lies before the last '@'. An '@', '/', '?' or '#' in it must be
    // percent-encoded (RFC 3986): libcurl ends the user info at the first '@' and the host at
    // the first '/', '?' or '#', so it would take part of the password for the proxy's name
    // and fail every call. As where the password ends is then unclear, such a URL is shown
    // with all of its user info masked.
    const std::size_t scheme_end = url.find("://");
    const std::size_t after_scheme = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    const std::size_t last_at = url.rfind('@');
    std::string_view user_info;
    if (last_at != std::string::npos && last_at >= after_scheme) {
      user_info = std::string_view(url).substr(after_scheme, last_at - after_scheme);
    }
    const bool raw_at = user_info.find('@') != std::string_view::npos;
    const bool raw_delimiter = user_info.find_first_of("/?#") != std::string_view::npos;
    const std::string shown =
        "\"" +
        (raw_at || raw_delimiter ? url.substr(0, after_scheme) + "***" + url.substr(last_at)
                                 : RedactUrlPassword(url)) +
        "\"";
    const std::string expected = "expected a proxy URL http://host:port or https://host:port, got ";
    std::size_t start = 0;
    if (url.starts_with("http://")) {
      start = 7;
    } else if (url.starts_with("https://")) {
      start = 8;
    } else {
      Fail(n, key, expected + shown);
    }
    if (raw_at) {
      Fail(n, key, "write an '@' in the user or password as %40, got " + shown);
    }
    if (raw_delimiter) {
      Fail(n, key,
           "write a '/', '?' or '#' in the user or password as %2F, %3F or %23, got " + shown);
    }
    std::string_view rest = std::string_view(url).substr(start);
    std::size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    if (end != std::string_view::npos && rest.substr(end) != "/") {
      Fail(n, key, "a proxy URL has no path, query or fragment, got " + shown);
    }
    std::size_t at = authority.rfind('@');
    std::string_view host_port =
        at == std::string_view::npos ? authority : authority.substr(at + 1);
    std::string_view host = host_port;
    std::string_view port;
    if (host_port.starts_with("[")) {
      std::size_t close = host_port.find(']');
      if (close == std::string_view::npos) Fail(n, key, expected + shown);
      host = host_port.substr(0, close + 1);
      std::string_view after = host_port.substr(close + 1);
      if (!after.empty()) {
        if (!after.starts_with(":")) Fail(n, key, expected + shown);
        port = after.substr(1);
      }
    } else if (std::size_t colon = host_port.rfind(':'); colon != std::string_view::npos) {
      host = host_port.substr(0, colon);
      port = host_port.substr(colon + 1);
    }
    const bool host_ok = !host.empty() && host.find_first_of(" \t@") == std::string_view::npos;
    bool port_ok = true;
    if (port.data() != nullptr) {  // a ':' was written: a port must follow
      int number = 0;
      auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
      port_ok = !port.empty() && ec == std::errc() && p == port.data() + port.size() &&
                number >= 1 && number <= 65535;
    }
    if (!host_ok || !port_ok) Fail(n, key, expected + shown);
    return url;
  }

  // A retention duration: 0 (also bare, as the sample writes it) means "never" for the key;
  // bounded so that now minus it cannot overflow the clock's microseconds.
  milliseconds RetentionDuration(const YAML::Node& n, const std::string& key,
                                 const std::string& zero_means) const {
    const std::string expected =
        "expected 0 (" + zero_means + ") or a duration such as 90d, 12h or 30m";
    if (!n.IsScalar()) Fail(n, key, expected);
    const std::string& text = n.Scalar();
    if (text == "0") return milliseconds(0);
    if (text.starts_with("-")) Fail(n, key, "must not be negative (0 " + zero_means + ")");
    std::optional<milliseconds> d = ParseDuration(text);
    if (!d) Fail(n, key, expected + ", got \"" + text + "\"");
    constexpr milliseconds kMax = std::chrono::days(36500);
    if (*d > kMax) Fail(n, key, "must be at most 36500d, got \"" + text + "\"");
    return *d;
  }

  void ReadRetention(const YAML::Node& n, RetentionConfig& r) const {
    ExpectMap(n, "retention");
    CheckKeys(n, "retention", {"finished", "attempts", "interval"});
    if (auto f = n["finished"]) {
      r.finished = RetentionDuration(f, "retention.finished", "keeps forever");
    }
    if (auto a = n["attempts"]) {
      r.attempts = RetentionDuration(a, "retention.attempts", "keeps forever");
    }
    if (auto i = n["interval"]) {
      r.interval = RetentionDuration(i, "retention.interval", "turns automatic pruning off");
    }
  }

  std::string source_;
  std::filesystem::path base_dir_;
};

}  // namespace

std::vector<std::string> StoreChangesForRestart(const StoreConfig& running,
                                                const StoreConfig& loaded) {
  std::vector<std::string> changes;
  if (loaded.backend != running.backend) {
    const bool postgresql = loaded.backend == StoreBackendKind::kPostgresql;
    changes.push_back(std::string("store.backend changed to ") +
                      (postgresql ? "postgresql" : "sqlite") + " (" + StoreLocation(loaded) + ")");
    return changes;
  }
  if (loaded.backend == StoreBackendKind::kSqlite) {
    if (loaded.path != running.path) changes.push_back("store.path changed to " + loaded.path);
    return changes;
  }
  if (loaded.url != running.url) {
    changes.push_back("store.url changed to " + RedactUrlPassword(loaded.url));
  }
  if (loaded.pool != running.pool) {
    changes.push_back("store.pool changed to " + std::to_string(loaded.pool));
  }
  return changes;
}

WarehouseCatalog Config::Catalog() const {
  std::vector<WarehouseInfo> infos;
  infos.reserve(warehouses.size());
  for (const WarehouseConfig& w : warehouses)
    infos.push_back({w.id, w.name, w.confirm_timeout, w.policy});
  return WarehouseCatalog(infos);
}

const WarehouseConfig* Config::FindWarehouse(std::int64_t id) const {
  for (const WarehouseConfig& w : warehouses) {
    if (w.id == id) return &w;
  }
  return nullptr;
}

namespace {

Config ParseConfigIn(const std::string& yaml_text, const std::string& source,
                     const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    std::ostringstream out;
    out << source;
    if (!e.mark.is_null()) out << ":" << e.mark.line + 1;
    out << ": invalid YAML: " << e.msg;
    throw ConfigError(out.str());
  }
  try {
    CheckDuplicateKeys(yaml_text, source);
    return ConfigReader(source, base_dir).Read(root);
  } catch (const YAML::Exception& e) {
    // e.g. a duplicate or odd key yaml-cpp rejects while we walk the tree.
    std::ostringstream out;
    out << source;
    if (!e.mark.is_null()) out << ":" << e.mark.line + 1;
    out << ": " << e.msg;
    throw ConfigError(out.str());
  }
}

}  // namespace

Config ParseConfig(const std::string& yaml_text, const std::string& source) {
  return ParseConfigIn(yaml_text, source, std::filesystem::current_path());
}

Config LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  // Relative paths in the file are relative to its directory ("relay.yaml" alone: the current
  // one; absolute() of an empty path would throw).
  const std::filesystem::path dir = std::filesystem::absolute(path).parent_path();
  Config config = ParseConfigIn(text.str(), path, dir);
  std::filesystem::path store_path(config.store.path);
  if (config.store.backend == StoreBackendKind::kSqlite && store_path.is_relative()) {
    config.store.path = (dir / store_path).lexically_normal().string();
  }
  return config;
}

}  // namespace allocation_relay
