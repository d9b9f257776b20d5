#include "allocation_relay/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/temp_dir.h"
#include "support/test_certificates.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const char* kValid = R"(timezone: Europe/Stockholm
log_level: debug
store: {path: /tmp/x.db, synchronous: normal, busy_timeout: 250ms}
api:
  listen: 0.0.0.0:8081
  max_body: 2048
  max_connections: 600
  idle_timeout: 1500ms
  keys:
    - {name: pos, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,
       endpoints: [GET /allocation-requests, PUT /allocation-request], warehouses: [3]}
dispatcher:
  listen: "[::1]:9200"
  concurrency: 8
  retry_schedule: [1s, 2s]
  allow_private_networks: true
  send_thread_nice: -3
retention: {finished: 30d, attempts: 1d12h, interval: 90s}
warehouses:
  - id: 3
    name: Amsterdam
    confirm_timeout: 30m
    webhook: {url: "http://127.0.0.1:1/hook", secret: test123, timeout: 2s,
              max_events_per_call: 10, max_in_flight: 2, verify_tls: false}
  - id: 4
    name: Tokyo
    webhook: {url: "https://t.example/h", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
              signature: standard-webhooks}
rules:
  nordics: [[3, 4]]
)";

TEST(Config, LoadsEveryKey) {
  Config c = ParseConfig(kValid, "test.yaml");
  EXPECT_EQ(c.timezone, "Europe/Stockholm");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.store.path, "/tmp/x.db");
  EXPECT_EQ(c.store.synchronous, SynchronousMode::kNormal);
  EXPECT_EQ(c.store.busy_timeout, 250ms);
  EXPECT_EQ(c.api.listen.host, "0.0.0.0");
  EXPECT_EQ(c.api.listen.port, 8081);
  EXPECT_EQ(c.api.max_body, 2048u);
  EXPECT_EQ(c.api.max_connections, 600);
  EXPECT_EQ(c.api.idle_timeout, 1500ms);
  ASSERT_EQ(c.api.keys.size(), 1u);
  EXPECT_EQ(c.api.keys[0].name, "pos");
  EXPECT_EQ(c.api.keys[0].sha256[0], 0x9f);
  EXPECT_EQ(c.api.keys[0].endpoints.size(), 2u);
  ASSERT_TRUE(c.api.keys[0].scope.only);
  EXPECT_EQ(*c.api.keys[0].scope.only, std::vector<std::int64_t>{3});
  EXPECT_EQ(c.dispatcher.listen.host, "::1");
  EXPECT_EQ(c.dispatcher.listen.port, 9200);
  EXPECT_EQ(c.dispatcher.concurrency, 8);
  EXPECT_EQ(c.dispatcher.retry_schedule, (std::vector<std::chrono::milliseconds>{1s, 2s}));
  EXPECT_TRUE(c.dispatcher.allow_private_networks);
  EXPECT_EQ(c.dispatcher.send_thread_nice, -3);
  EXPECT_EQ(c.retention.finished, std::chrono::days(30));
  EXPECT_EQ(c.retention.attempts, 36h);
  EXPECT_EQ(c.retention.interval, 90s);
  ASSERT_EQ(c.warehouses.size(), 2u);
  EXPECT_EQ(c.warehouses[0].confirm_timeout, 30min);
  ASSERT_TRUE(c.warehouses[0].webhook);
  EXPECT_EQ(c.warehouses[0].webhook->timeout, 2s);
  EXPECT_EQ(c.warehouses[0].webhook->max_events_per_call, 10);
  EXPECT_EQ(c.warehouses[0].webhook->max_in_flight, 2);
  EXPECT_FALSE(c.warehouses[0].webhook->verify_tls);
  EXPECT_EQ(c.warehouses[1].webhook->signature, SignatureScheme::kStandardWebhooks);
  EXPECT_EQ(c.warehouses[1].confirm_timeout, 1h);
  EXPECT_EQ(c.rules.at("nordics"), (PriorityGroups{{3, 4}}));
  EXPECT_EQ(c.Catalog().Find(4)->name, "Tokyo");
}

// Every endpoint name a key may be granted, GET /orders/allocation-requests among them.
TEST(Config, KeysAcceptEveryEndpointName) {
  std::string endpoints;
  for (const char* name : kEndpointNames)
    endpoints += (endpoints.empty() ? "" : ", ") + std::string(name);
  Config c = ParseConfig(
      "api:\n  keys:\n    - {name: k, sha256: "
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, endpoints: [" +
          endpoints + "]}\n",
      "test.yaml");
  ASSERT_EQ(c.api.keys.size(), 1u);
  EXPECT_EQ(c.api.keys[0].endpoints.size(), std::size(kEndpointNames));
  EXPECT_THAT(c.api.keys[0].endpoints, ::testing::Contains("GET /orders/allocation-requests"));
}

// api.keys[].rate (SPEC section 13): optional; a fractional per_second is allowed.
TEST(Config, KeyRateIsOptionalAndReadWhenGiven) {
  Config c = ParseConfig(
      "api:\n  keys:\n"
      "    - {name: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,\n"
      "       endpoints: [GET /allocations], rate: {per_second: 0.5, burst: 3}}\n"
      "    - {name: b, sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752,\n"
      "       endpoints: [GET /allocations]}\n",
      "test.yaml");
  ASSERT_EQ(c.api.keys.size(), 2u);
  ASSERT_TRUE(c.api.keys[0].rate);
  EXPECT_EQ(c.api.keys[0].rate->per_second, 0.5);
  EXPECT_EQ(c.api.keys[0].rate->burst, 3);
  EXPECT_FALSE(c.api.keys[1].rate);
}

// per_second is a YAML float: exponent notation and a leading '+' are numbers too.
TEST(Config, KeyRatePerSecondTakesExponentNotation) {
  for (const auto& [text, value] : std::vector<std::pair<std::string, double>>{
           {"5e1", 50}, {"1e-3", 0.001}, {"2.5E+2", 250}, {"+2", 2}, {"1e9", 1e9}}) {
    Config c = ParseConfig(
        "api:\n  keys:\n"
        "    - {name: a, sha256: "
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,\n"
        "       endpoints: [GET /allocations], rate: {per_second: " +
            text + ", burst: 3}}\n",
        "test.yaml");
    ASSERT_TRUE(c.api.keys[0].rate) << text;
    EXPECT_DOUBLE_EQ(c.api.keys[0].rate->per_second, value) << text;
  }
}

// Only a key twice in one mapping is a duplicate: the same key in sibling mappings, at other
// depths or as a value is not.
TEST(Config, TheSameKeyInDifferentMappingsIsNoDuplicate) {
  Config c = ParseConfig(
      "warehouses:\n"
      "  - {id: 3, name: A, webhook: {url: 'https://a/h', secret: s}}\n"
      "  - id: 4\n    name: B\n    webhook: {url: 'https://b/h', secret: [s, t]}\n"
      "rules:\n  id: [[3], [4]]\n  name: [[4]]\n",
      "c.yaml");
  EXPECT_EQ(c.warehouses.size(), 2u);
  EXPECT_EQ(c.rules.size(), 2u);
}

TEST(Config, DefaultsFollowTheSpec) {
  Config c = ParseConfig(
      "warehouses: [{id: 1, name: A, webhook: {url: 'https://a/h', "
      "secret: s}}]\n",
      "t.yaml");
  EXPECT_EQ(c.timezone, "UTC");
  EXPECT_EQ(c.store.path, "/var/lib/allocation-relay/allocation.db");
  EXPECT_EQ(c.store.synchronous, SynchronousMode::kFull);
  EXPECT_EQ(c.store.busy_timeout, 5s);
  EXPECT_EQ(c.api.listen.port, 8080);
  EXPECT_EQ(c.api.max_body, 1048576u);
  EXPECT_EQ(c.api.max_connections, 1024);
  EXPECT_EQ(c.api.idle_timeout, 5s);
  EXPECT_EQ(c.dispatcher.listen.port, 9101);
  EXPECT_EQ(c.dispatcher.concurrency, 64);
  EXPECT_EQ(c.dispatcher.retry_schedule,
            (std::vector<std::chrono::milliseconds>{5s, 5min, 30min, 2h, 5h, 10h, 10h}));
  EXPECT_FALSE(c.dispatcher.allow_private_networks);
  EXPECT_EQ(c.dispatcher.send_thread_nice, -5);
  EXPECT_EQ(c.retention.finished, std::chrono::days(90));
  EXPECT_EQ(c.retention.attempts, std::chrono::days(30));
  EXPECT_EQ(c.retention.interval, 10min);
  const WebhookConfig& w = *c.warehouses[0].webhook;
  EXPECT_EQ(w.signature, SignatureScheme::kCentra);
  EXPECT_EQ(w.timeout, 5s);
  EXPECT_EQ(w.max_events_per_call, 100);
  EXPECT_EQ(w.max_in_flight, 1);
  EXPECT_TRUE(w.verify_tls);
  EXPECT_EQ(c.warehouses[0].confirm_timeout, 1h);
}

TEST(Config, TheShippedSampleIsValid) {
  Config c = LoadConfigFile(SAMPLE_CONFIG);
  EXPECT_EQ(c.timezone, "Europe/Stockholm");
  EXPECT_EQ(c.warehouses.size(), 4u);
  EXPECT_EQ(c.rules.at("nordics"), (PriorityGroups{{3, 4}, {7}}));
  EXPECT_EQ(c.warehouses[0].policy, WarehousePolicy::kDirectThenConfirm);
  EXPECT_EQ(c.warehouses[3].policy, WarehousePolicy::kCheckFirst);
}

TEST(Config, WarehousePolicyIsDirectThenConfirmUnlessCheckFirstAndReachesTheCatalog) {
  Config c = ParseConfig(
      "warehouses:\n  - {id: 3, name: A}\n  - {id: 4, name: B, policy: check-first, "
      "confirm_timeout: 10m}\n  - {id: 5, name: C, policy: direct-then-confirm}\n",
      "t.yaml");
  EXPECT_EQ(c.warehouses[0].policy, WarehousePolicy::kDirectThenConfirm);
  EXPECT_EQ(c.warehouses[1].policy, WarehousePolicy::kCheckFirst);
  EXPECT_EQ(c.warehouses[2].policy, WarehousePolicy::kDirectThenConfirm);
  WarehouseCatalog catalog = c.Catalog();
  ASSERT_NE(catalog.Find(4), nullptr);
  EXPECT_EQ(catalog.Find(4)->policy, WarehousePolicy::kCheckFirst);
  EXPECT_EQ(catalog.Find(4)->confirm_timeout, 10min);
}

TEST(Config, RetentionKeysAreReadOneByOneAndTheOthersKeepTheirDefaults) {
  Config f = ParseConfig("retention: {finished: 7d}\n", "t.yaml");
  EXPECT_EQ(f.retention.finished, std::chrono::days(7));
  EXPECT_EQ(f.retention.attempts, std::chrono::days(30));
  EXPECT_EQ(f.retention.interval, 10min);
  Config a = ParseConfig("retention:\n  attempts: 12h\n", "t.yaml");
  EXPECT_EQ(a.retention.finished, std::chrono::days(90));
  EXPECT_EQ(a.retention.attempts, 12h);
  Config i = ParseConfig("retention:\n  interval: 250ms\n", "t.yaml");
  EXPECT_EQ(i.retention.interval, 250ms);
  EXPECT_EQ(i.retention.finished, std::chrono::days(90));
}

// 0 keeps a kind forever, or (interval) leaves pruning to the prune command; written bare or
// with a unit.
TEST(Config, RetentionZeroMeansForeverOrNoAutomaticPruning) {
  Config bare = ParseConfig("retention: {finished: 0, attempts: 0, interval: 0}\n", "t.yaml");
  EXPECT_EQ(bare.retention.finished, 0ms);
  EXPECT_EQ(bare.retention.attempts, 0ms);
  EXPECT_EQ(bare.retention.interval, 0ms);
  Config units = ParseConfig("retention: {finished: 0d, attempts: 0s, interval: 0m}\n", "t.yaml");
  EXPECT_EQ(units.retention.finished, 0ms);
  EXPECT_EQ(units.retention.attempts, 0ms);
  EXPECT_EQ(units.retention.interval, 0ms);
}

// Retention learns which warehouses' events are ever sent: only those hold allocations back.
TEST(Config, RetentionKnowsTheWarehousesWithAWebhook) {
  Config c = ParseConfig(
      "warehouses:\n"
      "  - {id: 3, name: A, webhook: {url: 'https://a.example/h', secret: s}}\n"
      "  - {id: 4, name: B}\n"
      "  - {id: 7, name: C, webhook: {url: 'https://c.example/h', secret: s}}\n",
      "t.yaml");
  ASSERT_TRUE(c.retention.webhook_warehouses.has_value());
  EXPECT_EQ(*c.retention.webhook_warehouses, (std::vector<std::int64_t>{3, 7}));
}

TEST(Config, TheShippedSampleHasTheRetentionDefaults) {
  Config c = LoadConfigFile(SAMPLE_CONFIG);
  EXPECT_EQ(c.retention.finished, std::chrono::days(90));
  EXPECT_EQ(c.retention.attempts, std::chrono::days(30));
  EXPECT_EQ(c.retention.interval, 10min);
}

// A self-signed certificate and its key, made with the openssl command line: <name>.crt/.key.
void MakeCertificate(const testing::TempDir& dir, const std::string& name) {
  std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=" +
      name + " -keyout " + dir.File(name + ".key") + " -out " + dir.File(name + ".crt") +
      " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

TEST(Config, TlsFilesAreRelativeToTheConfigFileAndChecked) {
  testing::TempDir dir;
  MakeCertificate(dir, "a");
  MakeCertificate(dir, "b");
  auto load = [&](const std::string& tls) {
    return LoadConfigFile(dir.Write("relay.yaml", "api:\n  tls: " + tls + "\n"));
  };
  Config c = load("{cert: a.crt, key: a.key}");
  ASSERT_TRUE(c.api.tls.has_value());
  EXPECT_EQ(c.api.tls->cert, dir.File("a.crt"));
  EXPECT_EQ(c.api.tls->key, dir.File("a.key"));
  EXPECT_FALSE(LoadConfigFile(dir.Write("plain.yaml", "api: {threads: 2}\n")).api.tls);

  auto failure = [&](const std::string& tls) -> std::string {
    try {
      load(tls);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_THAT(failure("{cert: a.crt, key: b.key}"),
              HasSubstr("relay.yaml:2: api.tls.key: " + dir.File("b.key") +
                        " does not match the certificate in " + dir.File("a.crt")));
  EXPECT_THAT(
      failure("{cert: a.crt, key: a.crt}"),
      HasSubstr("relay.yaml:2: api.tls.key: " + dir.File("a.crt") + " holds no PEM private key"));
  EXPECT_THAT(
      failure("{cert: a.key, key: a.key}"),
      HasSubstr("relay.yaml:2: api.tls.cert: " + dir.File("a.key") + " holds no PEM certificate"));
  EXPECT_THAT(failure("{cert: a.crt, key: missing.key}"),
              HasSubstr("api.tls.key: cannot read " + dir.File("missing.key")));
  for (const char* tls : {"{cert: a.crt, key: b.key}", "{cert: a.crt, key: a.crt}"}) {
    EXPECT_EQ(failure(tls).find('\n'), std::string::npos);
  }
}

TEST(Config, UnreadableFileNamesThePath) {
  try {
    LoadConfigFile("/nonexistent/relay.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("/nonexistent/relay.yaml: cannot read"));
  }
}

TEST(Config, SecretsNeverAppearInMessages) {
  try {
    ParseConfig(
        "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', "
        "secret: sup3rs3cret, signature: standard-webhooks}\n",
        "bad.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("sup3rs3cret"), std::string::npos);
  }
}

TEST(Config, ASecretListNeverAppearsInMessages) {
  try {
    ParseConfig(
        "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', "
        "secret: [sup3rs3cret, 0ld-s3cret], signature: standard-webhooks}\n",
        "bad.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  }
}

TEST(Config, ASecretIsOneStringOrAListNewestFirst) {
  Config one = ParseConfig(
      "warehouses:\n  - {id: 3, name: A, webhook: {url: 'https://a/h', secret: s}}\n", "c.yaml");
  EXPECT_EQ(one.warehouses[0].webhook->secrets, (std::vector<std::string>{"s"}));
  Config list = ParseConfig(
      "warehouses:\n  - id: 3\n    name: A\n    webhook:\n      url: https://a/h\n"
      "      secret:\n        - new\n        - old\n",
      "c.yaml");
  EXPECT_EQ(list.warehouses[0].webhook->secrets, (std::vector<std::string>{"new", "old"}));
}

TEST(Config, ProxyIsAnHttpOrHttpsUrlAndEmptyByDefault) {
  EXPECT_EQ(ParseConfig("", "c.yaml").dispatcher.proxy, "");
  for (const char* url :
       {"http://proxy.example:3128", "https://u:p@proxy.example:8443/", "http://[fd00::1]:3128",
        "http://proxy", "http://relay:p%40ss@127.0.0.1:3128", "http://u%40corp:p%2Fw@proxy:1/"}) {
    EXPECT_EQ(
        ParseConfig("dispatcher: {proxy: '" + std::string(url) + "'}\n", "c.yaml").dispatcher.proxy,
        url);
  }
}

TEST(Config, AProxyPasswordNeverAppearsInMessages) {
  try {
    ParseConfig("dispatcher: {proxy: 'http://relay:pr0xy-pw@proxy:3128/path'}\n", "bad.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("http://relay:***@proxy:3128/path"));
    EXPECT_EQ(std::string(e.what()).find("pr0xy-pw"), std::string::npos) << e.what();
  }
}

// libcurl would take what follows a raw '@' in the password for the proxy's host: refused,
// with the whole user info masked since where the password ends is not clear.
TEST(Config, AProxyPasswordWithARawAtOrSlashNeverAppearsInMessages) {
  for (const char* url : {"http://relay:p@ss@127.0.0.1:3128", "http://u:pw@123@host:3128",
                          "http://relay:pa/ss@proxy:3128", "http://relay:pa?ss@proxy:3128",
                          "http://relay:pa#ss@proxy:3128", "socks5://relay:p@ss@proxy:1080"}) {
    try {
      ParseConfig("dispatcher: {proxy: '" + std::string(url) + "'}\n", "bad.yaml");
      FAIL() << url;
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      for (const char* secret : {"p@ss", "pw@123", "pa/ss", "pa?ss", "pa#ss", "relay", "ss@"}) {
        EXPECT_EQ(what.find(secret), std::string::npos) << what;
      }
      EXPECT_EQ(what.find("pw@"), std::string::npos) << what;
    }
  }
}

// Client certificates: both files or neither, each a PEM of its kind, the key the
// certificate's; relative paths are read beside the config file. Messages name the files,
// never what is in them.
class ClientCertificateConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = testing::TestCertificates::Make(dir_);
    // Appended in turn to "secret: s, ".
    prefix_ = "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s";
  }
  std::string Load(const std::string& keys) {
    const std::string path = dir_.Write("relay.yaml", prefix_ + keys + "}\n");
    try {
      LoadConfigFile(path);
      return "";
    } catch (const ConfigError& e) {
      return e.what();
    }
  }
  testing::TempDir dir_;
  testing::TestCertificates pki_;
  std::string prefix_;
};

TEST_F(ClientCertificateConfig, LoadsTheFilesWithRelativePathsBesideTheConfig) {
  const std::string path = dir_.Write(
      "relay.yaml", prefix_ + ", client_cert: client.pem, client_key: ./client.key, ca_file: " +
                        pki_.ca_cert + "}\n");
  Config c = LoadConfigFile(path);
  EXPECT_EQ(c.warehouses[0].webhook->client_cert, pki_.client_cert);
  EXPECT_EQ(c.warehouses[0].webhook->client_key, pki_.client_key);
  EXPECT_EQ(c.warehouses[0].webhook->ca_file, pki_.ca_cert);
  Config none = ParseConfig(prefix_ + "}\n", "c.yaml");
  EXPECT_EQ(none.warehouses[0].webhook->client_cert, "");
  EXPECT_EQ(none.warehouses[0].webhook->ca_file, "");
  EXPECT_EQ(none.warehouses[0].webhook->client_cert_pem, "");
  EXPECT_EQ(none.warehouses[0].webhook->client_key_pem, "");
  EXPECT_EQ(none.warehouses[0].webhook->ca_pem, "");
}

// The calls use the files' texts as loaded: changing a file afterwards changes nothing in the
// loaded config (the next load, on SIGHUP, reads it again).
TEST_F(ClientCertificateConfig, KeepsTheFilesContentsAsLoaded) {
  auto read = [](const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string cert = read(pki_.client_cert), key = read(pki_.client_key);
  const std::string ca = read(pki_.ca_cert);
  ASSERT_THAT(cert, HasSubstr("-----BEGIN CERTIFICATE-----"));
  ASSERT_THAT(key, HasSubstr("-----BEGIN PRIVATE KEY-----"));
  const std::string path =
      dir_.Write("relay.yaml",
                 prefix_ + ", client_cert: client.pem, client_key: client.key, ca_file: ca.pem}\n");
  Config c = LoadConfigFile(path);
  dir_.Write("client.pem", "renewed\n");
  dir_.Write("client.key", "renewed\n");
  dir_.Write("ca.pem", "renewed\n");
  EXPECT_EQ(c.warehouses[0].webhook->client_cert_pem, cert);
  EXPECT_EQ(c.warehouses[0].webhook->client_key_pem, key);
  EXPECT_EQ(c.warehouses[0].webhook->ca_pem, ca);
}

TEST_F(ClientCertificateConfig, RefusesAHalfPairABadKeyAndAKeyOfAnotherCertificate) {
  EXPECT_THAT(Load(", client_cert: client.pem"),
              HasSubstr("warehouses[0].webhook.client_key: missing (client_cert needs its "
                        "client_key)"));
  EXPECT_THAT(Load(", client_key: client.key"),
              HasSubstr("warehouses[0].webhook.client_cert: missing (client_key needs its "
                        "client_cert)"));
  EXPECT_THAT(Load(", client_cert: client.pem, client_key: client.pem"),
              HasSubstr("warehouses[0].webhook.client_key: " + pki_.client_cert +
                        " holds no unencrypted PEM private key"));
  EXPECT_THAT(Load(", client_cert: client.pem, client_key: server.key"),
              HasSubstr("warehouses[0].webhook.client_key: " + pki_.server_key +
                        " is not the key of client_cert " + pki_.client_cert));
  std::string missing = Load(", client_cert: client.pem, client_key: gone.key");
  EXPECT_THAT(missing, HasSubstr("warehouses[0].webhook.client_key: cannot read " +
                                 dir_.File("gone.key") + ": No such file or directory"));
  // A key file's content is never shown.
  std::string key_text;  // the line after "-----BEGIN PRIVATE KEY-----"
  std::ifstream key_file(pki_.client_key);
  std::getline(key_file, key_text);
  std::getline(key_file, key_text);
  ASSERT_GT(key_text.size(), 20u);
  EXPECT_THAT(Load(", client_cert: client.key, client_key: client.key"), Not(HasSubstr(key_text)));
}

TEST(Config, RelativeStorePathIsResolvedAgainstTheConfigFile) {
  testing::TempDir dir;
  std::string path = dir.Write("relay.yaml", "store: {path: data/relay.db}\n");
  EXPECT_EQ(LoadConfigFile(path).store.path, dir.path() + "/data/relay.db");
}

// `--config relay.yaml` (a bare name in the working directory): its paths are relative to the
// working directory, like those of any other config file to its own.
TEST(Config, AConfigFileNamedWithoutADirectoryIsReadFromTheWorkingDirectory) {
  testing::TempDir dir;
  MakeCertificate(dir, "a");
  dir.Write("relay.yaml", "store: {path: relay.db}\napi:\n  tls: {cert: a.crt, key: a.key}\n");
  const std::filesystem::path before = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  std::optional<Config> c;
  std::string error;
  try {
    c = LoadConfigFile("relay.yaml");
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::filesystem::current_path(before);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->store.path, dir.File("relay.db"));
  EXPECT_EQ(c->api.tls->cert, dir.File("a.crt"));
  EXPECT_EQ(c->api.tls->key, dir.File("a.key"));
}

TEST(Config, StoreDefaultsToSqliteWithAPoolOfEight) {
  Config c = ParseConfig("timezone: UTC\n", "t.yaml");
  EXPECT_EQ(c.store.backend, StoreBackendKind::kSqlite);
  EXPECT_EQ(c.store.url, "");
  EXPECT_EQ(c.store.pool, 8);
  Config explicit_sqlite = ParseConfig("store: {backend: sqlite, path: /x.db}\n", "t.yaml");
  EXPECT_EQ(explicit_sqlite.store.backend, StoreBackendKind::kSqlite);
  EXPECT_EQ(explicit_sqlite.store.path, "/x.db");
}

TEST(Config, LoadsAPostgresqlStore) {
  Config c = ParseConfig(
      "store:\n"
      "  backend: postgresql\n"
      "  url: \"postgresql://relay@db1/relay?sslmode=verify-full\"\n"
      "  pool: 16\n",
      "t.yaml");
  EXPECT_EQ(c.store.backend, StoreBackendKind::kPostgresql);
  EXPECT_EQ(c.store.url, "postgresql://relay@db1/relay?sslmode=verify-full");
  EXPECT_EQ(c.store.pool, 16);
}

TEST(Config, PostgresqlPoolDefaultsToEightAndTakesTheBounds) {
  EXPECT_EQ(ParseConfig("store: {backend: postgresql, url: 'postgres://db1/relay'}\n", "t.yaml")
                .store.pool,
            8);
  EXPECT_EQ(
      ParseConfig("store: {backend: postgresql, url: 'postgres://db1/r', pool: 1}\n", "t.yaml")
          .store.pool,
      1);
  EXPECT_EQ(
      ParseConfig("store: {backend: postgresql, url: 'postgres://db1/r', pool: 1000}\n", "t.yaml")
          .store.pool,
      1000);
}

// The backend may come after the keys it governs.
TEST(Config, StoreKeyOrderDoesNotMatter) {
  Config c = ParseConfig(
      "store:\n  pool: 3\n  url: postgresql://db1/relay\n  backend: postgresql\n", "t.yaml");
  EXPECT_EQ(c.store.backend, StoreBackendKind::kPostgresql);
  EXPECT_EQ(c.store.pool, 3);
  Config s =
      ParseConfig("store:\n  busy_timeout: 1s\n  path: /x.db\n  backend: sqlite\n", "t.yaml");
  EXPECT_EQ(s.store.busy_timeout, 1s);
  EXPECT_EQ(s.store.path, "/x.db");
}

// A passfile is where a password belongs; naming it is no password.
TEST(Config, PostgresqlUrlMayNameAPassfile) {
  Config c = ParseConfig(
      "store: {backend: postgresql, url: "
      "'postgresql://relay@db1/relay?passfile=/etc/allocation-relay/pgpass&sslmode=verify-full'}"
      "\n",
      "t.yaml");
  EXPECT_EQ(
      c.store.url,
      "postgresql://relay@db1/relay?passfile=/etc/allocation-relay/pgpass&sslmode=verify-full");
}

TEST(Config, UrlPasswordsNeverAppearInMessages) {
  for (const char* url : {"postgresql://relay:sup3rs3cret@db1/relay",
                          "postgresql://relay@db1/relay?password=sup3rs3cret",
                          "postgresql://relay:sup3rs3cret@db1/relay?password=sup3rs3cret"}) {
    try {
      ParseConfig(std::string("store: {backend: postgresql, url: '") + url + "'}\n", "bad.yaml");
      FAIL() << url;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).find("sup3rs3cret"), std::string::npos) << e.what();
      EXPECT_THAT(std::string(e.what()), HasSubstr("store.url: must not contain a password"));
    }
  }
  // Nor when the url is refused for another reason.
  try {
    ParseConfig("store: {url: 'postgresql://relay:sup3rs3cret@db1/relay'}\n", "bad.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("sup3rs3cret"), std::string::npos) << e.what();
  }
  try {
    ParseConfig("store: {backend: postgresql, url: 'host=db1 password=sup3rs3cret'}\n", "bad.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("sup3rs3cret"), std::string::npos) << e.what();
  }
}

TEST(Config, PostgresqlStorePathIsNotResolved) {
  testing::TempDir dir;
  std::string path =
      dir.Write("relay.yaml", "store: {backend: postgresql, url: 'postgresql://db1/relay'}\n");
  Config c = LoadConfigFile(path);
  EXPECT_EQ(c.store.backend, StoreBackendKind::kPostgresql);
  EXPECT_EQ(c.store.url, "postgresql://db1/relay");
  EXPECT_EQ(c.store.path.find(dir.path()), std::string::npos) << c.store.path;
}

TEST(RedactUrlPassword, MasksThePasswordOfTheUserInfo) {
  EXPECT_EQ(RedactUrlPassword("postgresql://user:secret@host/db"), "postgresql://user:***@host/db");
  EXPECT_EQ(RedactUrlPassword("postgres://user:secret@host:5433/db?sslmode=verify-full"),
            "postgres://user:***@host:5433/db?sslmode=verify-full");
  EXPECT_EQ(RedactUrlPassword("postgresql://user:secret@h1:5432,h2:5433/db"),
            "postgresql://user:***@h1:5432,h2:5433/db");
  EXPECT_EQ(RedactUrlPassword("postgresql://user:secret@host"), "postgresql://user:***@host");
}

TEST(RedactUrlPassword, LeavesAUrlWithoutPasswordAlone) {
  for (const char* url :
       {"postgresql://", "postgresql://host", "postgresql://host/db",
        "postgresql://relay@db1/relay?sslmode=verify-full",
        "postgresql://relay@db1/relay?passfile=/etc/pgpass&sslmode=require",
        "postgresql://[::1]:5432/relay", "postgresql://db1/relay?application_name=relay:api",
        "postgresql://relay@db1/relay?user=other", "", "not a url"}) {
    EXPECT_EQ(RedactUrlPassword(url), url);
  }
}

TEST(RedactUrlPassword, LeavesAUserWithoutPasswordAlone) {
  EXPECT_EQ(RedactUrlPassword("postgresql://relay@db1/relay"), "postgresql://relay@db1/relay");
  // An empty password is no secret.
  EXPECT_EQ(RedactUrlPassword("postgresql://relay:@db1/relay"), "postgresql://relay:@db1/relay");
  EXPECT_EQ(RedactUrlPassword("postgresql://db1/relay?password="),
            "postgresql://db1/relay?password=");
}

TEST(RedactUrlPassword, MasksAPercentEncodedPasswordWhole) {
  EXPECT_EQ(RedactUrlPassword("postgresql://relay:p%40ss%3Aw%2Fd@db1/relay"),
            "postgresql://relay:***@db1/relay");
  EXPECT_EQ(RedactUrlPassword("postgresql://db1/relay?password=p%26ss%3D1&sslmode=require"),
            "postgresql://db1/relay?password=***&sslmode=require");
  // libpq decodes parameter names too.
  EXPECT_EQ(RedactUrlPassword("postgresql://db1/relay?pass%77ord=x"),
            "postgresql://db1/relay?pass%77ord=***");
}

// A raw '@' or ':' in a password (not percent-encoded, as it should be) is masked all the same.
TEST(RedactUrlPassword, MasksAPasswordWithRawSeparators) {
  EXPECT_EQ(RedactUrlPassword("postgresql://relay:p@ss:w@db1/relay"),
            "postgresql://relay:***@db1/relay");
  EXPECT_EQ(RedactUrlPassword("postgresql://db1?password=a:b@c"), "postgresql://db1?password=***");
}

TEST(RedactUrlPassword, MasksThePasswordParameterWhereverItIs) {
  EXPECT_EQ(RedactUrlPassword("postgresql://relay@db1/relay?password=x&sslmode=require"),
            "postgresql://relay@db1/relay?password=***&sslmode=require");
  EXPECT_EQ(RedactUrlPassword(
                "postgresql://relay@db1/relay?sslmode=require&password=x&application_name=api"),
            "postgresql://relay@db1/relay?sslmode=require&password=***&application_name=api");
  EXPECT_EQ(RedactUrlPassword("postgresql://relay@db1/relay?sslmode=require&password=x"),
            "postgresql://relay@db1/relay?sslmode=require&password=***");
  EXPECT_EQ(RedactUrlPassword("postgresql://db1?password=x"), "postgresql://db1?password=***");
  // Only the parameter named password: not one whose name ends in it.
  EXPECT_EQ(RedactUrlPassword("postgresql://db1/r?mypassword=x&passfile=/p"),
            "postgresql://db1/r?mypassword=x&passfile=/p");
}

TEST(RedactUrlPassword, MasksBothPlaces) {
  EXPECT_EQ(RedactUrlPassword("postgresql://u:one@db1/r?password=two&sslmode=disable"),
            "postgresql://u:***@db1/r?password=***&sslmode=disable");
}

TEST(StoreLocation, IsThePathOrTheMaskedUrl) {
  StoreConfig sqlite;
  sqlite.path = "/var/lib/allocation-relay/allocation.db";
  EXPECT_EQ(StoreLocation(sqlite), "/var/lib/allocation-relay/allocation.db");
  StoreConfig postgresql;
  postgresql.backend = StoreBackendKind::kPostgresql;
  postgresql.url = "postgresql://relay:secret@db1/relay?sslmode=verify-full";
  EXPECT_EQ(StoreLocation(postgresql), "postgresql://relay:***@db1/relay?sslmode=verify-full");
}

TEST(StoreChangesForRestart, NamesEachChangedStoreSetting) {
  StoreConfig sqlite;
  sqlite.path = "/a.db";
  EXPECT_TRUE(StoreChangesForRestart(sqlite, sqlite).empty());
  StoreConfig moved = sqlite;
  moved.path = "/b.db";
  EXPECT_EQ(StoreChangesForRestart(sqlite, moved),
            std::vector<std::string>{"store.path changed to /b.db"});

  StoreConfig postgresql;
  postgresql.backend = StoreBackendKind::kPostgresql;
  postgresql.url = "postgresql://relay@db1/relay";
  EXPECT_EQ(StoreChangesForRestart(sqlite, postgresql),
            std::vector<std::string>{
                "store.backend changed to postgresql (postgresql://relay@db1/relay)"});
  EXPECT_EQ(StoreChangesForRestart(postgresql, sqlite),
            std::vector<std::string>{"store.backend changed to sqlite (/a.db)"});
  EXPECT_TRUE(StoreChangesForRestart(postgresql, postgresql).empty());

  StoreConfig other = postgresql;
  other.url = "postgresql://relay:secret@db2/relay";
  other.pool = 16;
  EXPECT_EQ(StoreChangesForRestart(postgresql, other),
            (std::vector<std::string>{"store.url changed to postgresql://relay:***@db2/relay",
                                      "store.pool changed to 16"}));
}

// The sample's commented PostgreSQL store section, uncommented, is a valid store section.
TEST(Config, TheShippedSamplesPostgresqlAlternativeIsValid) {
  std::ifstream in(SAMPLE_CONFIG);
  ASSERT_TRUE(in);
  std::string line;
  std::string block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "#store:") inside = true;
    if (inside && !line.starts_with("#")) break;
    if (inside) block += line.substr(1) + "\n";
  }
  ASSERT_FALSE(block.empty()) << "no #store: section in the sample";
  Config c = ParseConfig(block, "sample-postgresql");
  EXPECT_EQ(c.store.backend, StoreBackendKind::kPostgresql);
  EXPECT_EQ(c.store.url, "postgresql://relay@db1.example.com/relay?sslmode=verify-full");
  EXPECT_EQ(c.store.pool, 8);
}

TEST(Config, TheShippedSampleUsesSqlite) {
  Config c = LoadConfigFile(SAMPLE_CONFIG);
  EXPECT_EQ(c.store.backend, StoreBackendKind::kSqlite);
  EXPECT_EQ(c.store.path, "/var/lib/allocation-relay/allocation.db");
}

}  // namespace
}  // namespace allocation_relay
