#include "allocation_relay/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
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

struct BadCase {
  const char* name;
  const char* yaml;
  const char* expected;  // the whole line must contain this
};

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, FailsWithOneLineNamingTheKey) {
  try {
    ParseConfig(GetParam().yaml, "bad.yaml");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_THAT(what, HasSubstr(GetParam().expected));
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_TRUE(what.starts_with("bad.yaml:")) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfig,
    ::testing::Values(
        BadCase{"UnknownTopLevelKey", "timezone: UTC\nwarehose: []\n",
                "bad.yaml:2: warehose: unknown key"},
        BadCase{"UnknownNestedKey", "store: {path: /x, synchronus: full}\n",
                "bad.yaml:1: store.synchronus: unknown key"},
        BadCase{"UnknownWebhookKey",
                "warehouses:\n  - id: 3\n    name: A\n    webhook:\n      url: https://a/h\n"
                "      secret: s\n      retries: 3\n",
                "bad.yaml:7: warehouses[0].webhook.retries: unknown key"},
        BadCase{"WrongTypeString", "store: {path: [a, b]}\n", "store.path: expected a string"},
        BadCase{"WrongTypeInteger", "api: {max_body: lots}\n",
                "bad.yaml:1: api.max_body: expected an integer, got \"lots\""},
        BadCase{"MaxConnectionsZero", "api: {max_connections: 0}\n",
                "bad.yaml:1: api.max_connections"},
        BadCase{"IdleTimeoutZero", "api: {idle_timeout: 0s}\n",
                "bad.yaml:1: api.idle_timeout: must be longer than 0"},
        BadCase{"IdleTimeoutBare", "api: {idle_timeout: 5}\n", "bad.yaml:1: api.idle_timeout"},
        BadCase{"TlsNotAMapping", "api: {tls: yes}\n", "bad.yaml:1: api.tls: expected a mapping"},
        BadCase{"TlsUnknownKey", "api: {tls: {cert: a, key: b, ca: c}}\n",
                "bad.yaml:1: api.tls.ca: unknown key"},
        BadCase{"TlsWithoutKey", "api: {tls: {cert: /x.pem}}\n",
                "bad.yaml:1: api.tls.key: missing"},
        BadCase{"TlsEmptyCert", "api: {tls: {cert: '', key: /k.pem}}\n",
                "bad.yaml:1: api.tls.cert: must not be empty"},
        BadCase{"TlsCertUnreadable",
                "api:\n  tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\n",
                "bad.yaml:2: api.tls.cert: cannot read /nonexistent/cert.pem: No such file"},
        BadCase{"TlsCertNotPem", "api: {tls: {cert: /dev/null, key: /dev/null}}\n",
                "bad.yaml:1: api.tls.cert: /dev/null holds no PEM certificate"},
        BadCase{"WrongTypeBool", "dispatcher: {allow_private_networks: maybe}\n",
                "dispatcher.allow_private_networks: expected true or false"},
        BadCase{"WrongTypeMapping", "store: 5\n", "bad.yaml:1: store: expected a mapping"},
        BadCase{"NiceOutOfRange", "dispatcher: {send_thread_nice: -40}\n",
                "bad.yaml:1: dispatcher.send_thread_nice"},
        BadCase{"WrongTypeList", "warehouses: {id: 3}\n", "warehouses: expected a list"},
        BadCase{"BadDuration", "store: {busy_timeout: 5}\n",
                "bad.yaml:1: store.busy_timeout: expected a duration such as 250ms, 5s, 30m or "
                "1h, got \"5\""},
        BadCase{"BadDurationInSchedule", "dispatcher:\n  retry_schedule: [5s, 5 minutes]\n",
                "bad.yaml:2: dispatcher.retry_schedule[1]: expected a duration"},
        BadCase{"ZeroConfirmTimeout", "warehouses: [{id: 3, name: A, confirm_timeout: 0s}]\n",
                "warehouses[0].confirm_timeout: must be longer than 0"},
        BadCase{"UnknownWarehousePolicy",
                "warehouses:\n  - id: 3\n    name: A\n    policy: check_first\n",
                "bad.yaml:4: warehouses[0].policy: expected direct-then-confirm or check-first, "
                "got \"check_first\""},
        BadCase{"DuplicateWarehouseId", "warehouses:\n  - {id: 3, name: A}\n  - {id: 3, name: B}\n",
                "bad.yaml:3: warehouses[1].id: duplicate warehouse id 3"},
        BadCase{"MissingWarehouseId", "warehouses:\n  - {name: A}\n", "warehouses[0].id: missing"},
        BadCase{"NonPositiveWarehouseId", "warehouses:\n  - {id: 0, name: A}\n",
                "warehouses[0].id: must be between 1 and"},
        BadCase{"RuleNamingUnknownWarehouse",
                "warehouses:\n  - {id: 3, name: A}\nrules:\n  nordics: [[3], [9]]\n",
                "bad.yaml:4: rules.nordics[1][0]: unknown warehouse id 9"},
        BadCase{"RuleWithEmptyGroup",
                "warehouses:\n  - {id: 3, name: A}\nrules:\n  nordics: [[3], []]\n",
                "rules.nordics[1]: a priority group must not be empty"},
        BadCase{"RuleListingAWarehouseTwice",
                "warehouses:\n  - {id: 3, name: A}\nrules:\n  r: [[3], [3]]\n",
                "rules.r[1][0]: warehouse 3 is listed twice"},
        BadCase{"WebhookWithoutSecret",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h'}\n",
                "bad.yaml:4: warehouses[0].webhook.secret: missing"},
        BadCase{"WebhookWithEmptySecret",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', "
                "secret: ''}\n",
                "warehouses[0].webhook.secret: must not be empty"},
        BadCase{"StandardWebhooksSecretNotWhsec",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', "
                "secret: plain, signature: standard-webhooks}\n",
                "warehouses[0].webhook.secret: standard-webhooks needs a secret of the form "
                "whsec_<base64>"},
        BadCase{
            "SecretEmptyList",
            "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: []}\n",
            "bad.yaml:4: warehouses[0].webhook.secret: the list of secrets must not be empty"},
        BadCase{"SecretListWithAnEmptyOne",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: "
                "[a, '']}\n",
                "bad.yaml:4: warehouses[0].webhook.secret[1]: must not be empty"},
        BadCase{"SecretListOfLists",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: "
                "[[a]]}\n",
                "warehouses[0].webhook.secret[0]: expected a string"},
        BadCase{"SecretMapping",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: "
                "{a: b}}\n",
                "warehouses[0].webhook.secret: expected a string or a list of strings"},
        BadCase{"SecretListedTwice",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: "
                "[a, b, a]}\n",
                "warehouses[0].webhook.secret[2]: is listed twice"},
        BadCase{"StandardWebhooksSecretInListNotWhsec",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', signature: "
                "standard-webhooks, "
                "secret: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, plain]}\n",
                "warehouses[0].webhook.secret[1]: standard-webhooks needs a secret of the form "
                "whsec_<base64>"},
        BadCase{"ProxyNotHttp", "dispatcher: {proxy: 'socks5://p:1080'}\n",
                "bad.yaml:1: dispatcher.proxy: expected a proxy URL http://host:port or "
                "https://host:port, got \"socks5://p:1080\""},
        BadCase{"ProxyWithAPath", "dispatcher: {proxy: 'http://p:3128/x'}\n",
                "dispatcher.proxy: a proxy URL has no path, query or fragment"},
        BadCase{"ProxyPortOutOfRange", "dispatcher: {proxy: 'http://p:99999'}\n",
                "dispatcher.proxy: expected a proxy URL"},
        BadCase{"ProxyWithoutHost", "dispatcher: {proxy: 'http://:3128'}\n",
                "dispatcher.proxy: expected a proxy URL"},
        BadCase{"ProxyNotAString", "dispatcher: {proxy: [a]}\n",
                "dispatcher.proxy: expected a string"},
        BadCase{"ClientCertUnreadable",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "client_cert: /nonexistent/client.pem, client_key: /nonexistent/client.key}\n",
                "warehouses[0].webhook.client_cert: cannot read /nonexistent/client.pem: No such "
                "file"},
        BadCase{"ClientCertNotPem",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "client_cert: /dev/null, client_key: /dev/null}\n",
                "warehouses[0].webhook.client_cert: /dev/null holds no PEM certificate"},
        BadCase{"CaFileNotPem",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "ca_file: /dev/null}\n",
                "warehouses[0].webhook.ca_file: /dev/null holds no PEM certificate"},
        BadCase{"ClientCertEmpty",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "client_cert: ''}\n",
                "warehouses[0].webhook.client_cert: must not be empty"},
        BadCase{"WebhookNotHttp",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'ftp://a/h', secret: s}\n",
                "warehouses[0].webhook.url: expected an http:// or https:// URL"},
        BadCase{"UnknownSignature",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', "
                "secret: s, signature: hmac}\n",
                "warehouses[0].webhook.signature: expected centra or standard-webhooks"},
        BadCase{"UnknownTimeZone", "timezone: Europe/Stockolm\n",
                "bad.yaml:1: timezone: unknown time zone \"Europe/Stockolm\""},
        BadCase{"UnknownSynchronous", "store: {synchronous: fast}\n",
                "store.synchronous: expected off, normal, full or extra"},
        BadCase{"BadListen", "api: {listen: localhost}\n", "api.listen: expected host:port"},
        BadCase{"BadPort", "api: {listen: '127.0.0.1:70000'}\n",
                "api.listen: expected host:port with a port from 0 to 65535"},
        BadCase{"KeyWithBadHash",
                "api:\n  keys:\n    - {name: k, sha256: abc, endpoints: [GET /allocations]}\n",
                "bad.yaml:3: api.keys[0].sha256: expected 64 hex digits"},
        BadCase{"KeyWithUnknownEndpoint",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /orders]\n",
                "bad.yaml:5: api.keys[0].endpoints[0]: unknown endpoint \"GET /orders\""},
        BadCase{"KeyScopedToUnknownWarehouse",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      warehouses: [5]\n",
                "api.keys[0].warehouses[0]: unknown warehouse id 5"},
        BadCase{
            "DuplicateKeyName",
            "api:\n  keys:\n"
            "    - {name: k, sha256: "
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, endpoints: []}\n"
            "    - {name: k, sha256: "
            "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752, endpoints: []}\n",
            "bad.yaml:4: api.keys[1].name: duplicate key name \"k\""},
        BadCase{"KeyRateUnknownKey",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 5, burst: 10, "
                "window: 1s}\n",
                "bad.yaml:6: api.keys[0].rate.window: unknown key (expected one of: per_second, "
                "burst)"},
        BadCase{"KeyRateNotAMapping",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: 50\n",
                "bad.yaml:6: api.keys[0].rate: expected a mapping"},
        BadCase{"KeyRateZeroPerSecond",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 0, burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: expected a number greater than 0 (at "
                "most 1000000000), got \"0\""},
        BadCase{"KeyRateNegativePerSecond",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: -2, burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: expected a number greater than 0"},
        BadCase{"KeyRatePerSecondNotANumber",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: fast, burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: expected a number greater than 0 (at "
                "most 1000000000), got \"fast\""},
        BadCase{"KeyRatePerSecondInfinite",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: inf, burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: expected a number greater than 0"},
        BadCase{"KeyRateMissingPerSecond",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: missing"},
        BadCase{"KeyRateMissingBurst",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 5}\n",
                "bad.yaml:6: api.keys[0].rate.burst: missing (the most calls at once, an integer "
                ">= 1)"},
        BadCase{"KeyRateZeroBurst",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 5, burst: 0}\n",
                "bad.yaml:6: api.keys[0].rate.burst: must be between 1 and 1000000000, got 0"},
        BadCase{"KeyRateFractionalBurst",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 5, burst: 1.5}\n",
                "bad.yaml:6: api.keys[0].rate.burst: expected an integer, got \"1.5\""},
        BadCase{"OutOfRangeEventsPerCall",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "max_events_per_call: 0}\n",
                "warehouses[0].webhook.max_events_per_call: must be between 1 and 1000"},
        BadCase{"RetentionUnknownKey", "retention:\n  finished: 90d\n  events: 30d\n",
                "bad.yaml:3: retention.events: unknown key (expected one of: finished, attempts, "
                "interval)"},
        BadCase{"RetentionNotAMapping", "retention: 90d\n",
                "bad.yaml:1: retention: expected a mapping"},
        BadCase{"RetentionNegative", "retention: {finished: -1d}\n",
                "bad.yaml:1: retention.finished: must not be negative (0 keeps forever)"},
        BadCase{"RetentionBadUnit", "retention: {attempts: 30 days}\n",
                "bad.yaml:1: retention.attempts: expected 0 (keeps forever) or a duration such as "
                "90d, 12h or 30m, got \"30 days\""},
        BadCase{"RetentionUnknownUnit", "retention: {finished: 3w}\n",
                "bad.yaml:1: retention.finished: expected 0 (keeps forever) or a duration"},
        BadCase{"RetentionBareNumber", "retention: {interval: 600}\n",
                "bad.yaml:1: retention.interval: expected 0 (turns automatic pruning off) or a "
                "duration such as 90d, 12h or 30m, got \"600\""},
        BadCase{"RetentionNotAScalar", "retention: {finished: [90d]}\n",
                "bad.yaml:1: retention.finished: expected 0 (keeps forever) or a duration"},
        BadCase{"RetentionTooLong", "retention: {finished: 40000d}\n",
                "bad.yaml:1: retention.finished: must be at most 36500d"},
        BadCase{"RetentionNegativeInterval", "retention: {interval: -10m}\n",
                "bad.yaml:1: retention.interval: must not be negative"},
        BadCase{"UnknownBackend", "store: {backend: mysql}\n",
                "bad.yaml:1: store.backend: expected sqlite or postgresql, got \"mysql\""},
        BadCase{"PathWithPostgresql",
                "store:\n  backend: postgresql\n  url: postgresql://relay@db1/relay\n"
                "  path: /var/lib/x.db\n",
                "bad.yaml:4: store.path: only for backend sqlite (backend is postgresql)"},
        BadCase{"PathBeforeBackendWithPostgresql",
                "store:\n  path: /var/lib/x.db\n  url: postgresql://relay@db1/relay\n"
                "  backend: postgresql\n",
                "bad.yaml:2: store.path: only for backend sqlite (backend is postgresql)"},
        BadCase{"SynchronousWithPostgresql",
                "store: {synchronous: full, backend: postgresql, url: 'postgresql://db1/r'}\n",
                "bad.yaml:1: store.synchronous: only for backend sqlite (backend is postgresql)"},
        BadCase{"BusyTimeoutWithPostgresql",
                "store: {backend: postgresql, url: 'postgresql://db1/r', busy_timeout: 5s}\n",
                "bad.yaml:1: store.busy_timeout: only for backend sqlite (backend is postgresql)"},
        BadCase{"MaxSizeWithPostgresql",
                "store: {backend: postgresql, url: 'postgresql://db1/r', max_size: 0}\n",
                "bad.yaml:1: store.max_size: only for backend sqlite (backend is postgresql)"},
        BadCase{"UrlWithDefaultSqlite", "store:\n  path: /x.db\n  url: postgresql://db1/r\n",
                "bad.yaml:3: store.url: only for backend postgresql (backend is sqlite, the "
                "default)"},
        BadCase{"PoolWithDefaultSqlite", "store: {pool: 8}\n",
                "bad.yaml:1: store.pool: only for backend postgresql (backend is sqlite, the "
                "default)"},
        BadCase{"PoolWithExplicitSqlite", "store:\n  pool: 8\n  backend: sqlite\n",
                "bad.yaml:2: store.pool: only for backend postgresql (backend is sqlite)"},
        BadCase{"UrlWithExplicitSqlite", "store: {backend: sqlite, url: 'postgresql://db1/r'}\n",
                "bad.yaml:1: store.url: only for backend postgresql (backend is sqlite)"},
        BadCase{"PostgresqlWithoutUrl", "store:\n  backend: postgresql\n  pool: 4\n",
                "bad.yaml:2: store.url: missing (backend postgresql needs a libpq connection URI "
                "such as postgresql://relay@db1/relay)"},
        BadCase{"PostgresqlWithEmptyUrl", "store: {backend: postgresql, url: ''}\n",
                "bad.yaml:1: store.url: must not be empty"},
        BadCase{"UrlNotAUri", "store: {backend: postgresql, url: 'host=db1 dbname=relay'}\n",
                "bad.yaml:1: store.url: expected a libpq connection URI starting with "
                "postgresql:// or postgres://"},
        BadCase{"UrlOfAnotherScheme", "store: {backend: postgresql, url: 'mysql://db1/relay'}\n",
                "bad.yaml:1: store.url: expected a libpq connection URI"},
        BadCase{"UrlNotAString", "store: {backend: postgresql, url: [a]}\n",
                "bad.yaml:1: store.url: expected a string"},
        BadCase{"UrlWithPassword",
                "store:\n  backend: postgresql\n  url: postgresql://relay:secret@db1/relay\n",
                "bad.yaml:3: store.url: must not contain a password (postgresql://relay:***@db1/"
                "relay); give it in PGPASSWORD, ~/.pgpass or passfile="},
        BadCase{"UrlWithPasswordParameter",
                "store:\n  backend: postgresql\n"
                "  url: postgres://relay@db1/relay?password=secret&sslmode=require\n",
                "bad.yaml:3: store.url: must not contain a password (postgres://relay@db1/relay?"
                "password=***&sslmode=require); give it in PGPASSWORD, ~/.pgpass or passfile="},
        BadCase{"PoolZero", "store: {backend: postgresql, url: 'postgresql://db1/r', pool: 0}\n",
                "bad.yaml:1: store.pool: must be between 1 and 1000, got 0"},
        BadCase{"PoolTooLarge",
                "store: {backend: postgresql, url: 'postgresql://db1/r', pool: 1001}\n",
                "bad.yaml:1: store.pool: must be between 1 and 1000, got 1001"},
        BadCase{"PoolNotAnInteger",
                "store: {backend: postgresql, url: 'postgresql://db1/r', pool: many}\n",
                "bad.yaml:1: store.pool: expected an integer, got \"many\""},
        BadCase{"UnknownStoreKeyListsTheBackendKeys", "store: {host: db1}\n",
                "bad.yaml:1: store.host: unknown key (expected one of: backend, path, synchronous, "
                "busy_timeout, max_size, url, pool)"},
        BadCase{"BadLogLevel", "log_level: loud\n", "bad.yaml:1: log_level: expected one of"},
        BadCase{"InvalidYaml", "store: {path: /x\n", "bad.yaml:"},
        BadCase{"TopLevelNotAMapping", "- a\n- b\n", "(top level): expected a mapping"}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return std::string(p.param.name); });

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
  for (const char* url : {"http://proxy.example:3128", "https://u:p@proxy.example:8443/",
                          "http://[fd00::1]:3128", "http://proxy"}) {
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
