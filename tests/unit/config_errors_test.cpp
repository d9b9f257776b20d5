// Every bad configuration fails with one line that names the file, the line and the key
// (SPEC section 5): one case per check, for every key of every section (BadConfig.*).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "allocation_relay/config.h"

namespace allocation_relay {
namespace {

using ::testing::HasSubstr;

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
        BadCase{"ProxyWithARawAtInThePassword",
                "dispatcher: {proxy: 'http://relay:p@ss@127.0.0.1:3128'}\n",
                "bad.yaml:1: dispatcher.proxy: write an '@' in the user or password as %40, got "
                "\"http://***@127.0.0.1:3128\""},
        BadCase{"ProxyWithTwoRawAts", "dispatcher:\n  proxy: http://u:pw@123@host:3128\n",
                "bad.yaml:2: dispatcher.proxy: write an '@' in the user or password as %40, got "
                "\"http://***@host:3128\""},
        BadCase{"ProxyWithARawAtInTheUser", "dispatcher: {proxy: 'https://re@lay:pw@host:8443/'}\n",
                "bad.yaml:1: dispatcher.proxy: write an '@' in the user or password as %40, got "
                "\"https://***@host:8443/\""},
        BadCase{"ProxyWithARawSlashInThePassword",
                "dispatcher: {proxy: 'http://relay:pa/ss@proxy:3128'}\n",
                "bad.yaml:1: dispatcher.proxy: write a '/', '?' or '#' in the user or password as "
                "%2F, %3F or %23, got \"http://***@proxy:3128\""},
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
        BadCase{"CaFileADirectory",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "ca_file: /}\n",
                "warehouses[0].webhook.ca_file: cannot read /: Is a directory"},
        BadCase{"CaFileEndless",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h', secret: s, "
                "ca_file: /dev/zero}\n",
                "warehouses[0].webhook.ca_file: /dev/zero is larger than 4 MiB (not a PEM file)"},
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
        BadCase{"KeyRatePerSecondExponentOutOfRange",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 2e9, burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: expected a number greater than 0 (at "
                "most 1000000000), got \"2e9\""},
        BadCase{"KeyRatePerSecondExponentWithoutDigits",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n      rate: {per_second: 5e, burst: 10}\n",
                "bad.yaml:6: api.keys[0].rate.per_second: expected a number greater than 0 (at "
                "most 1000000000), got \"5e\""},
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
        // yaml-cpp keeps both pairs and a lookup takes the first: refused, wherever the mapping.
        BadCase{"DuplicateTopLevelKey",
                "store: {path: /a.db}\ntimezone: UTC\nstore: {path: /b.db}\n",
                "bad.yaml:3: store: duplicate key (first on line 1)"},
        BadCase{"DuplicateNestedKey",
                "dispatcher:\n  allow_private_networks: false\n  allow_private_networks: true\n",
                "bad.yaml:3: dispatcher.allow_private_networks: duplicate key (first on line 2)"},
        BadCase{"DuplicateKeyInAListItem",
                "warehouses:\n  - id: 3\n    name: A\n  - id: 4\n    name: B\n    webhook:\n"
                "      url: https://b/h\n      secret: whsec_new\n      secret: whsec_old\n",
                "bad.yaml:9: warehouses[1].webhook.secret: duplicate key (first on line 8)"},
        BadCase{"DuplicateKeyInAFlowMapping",
                "warehouses:\n  - id: 3\n    name: A\n    webhook: {url: 'https://a/h',\n"
                "      signature: centra, secret: X, signature: standard-webhooks}\n",
                "bad.yaml:5: warehouses[0].webhook.signature: duplicate key (first on line 5)"},
        BadCase{"DuplicateKeyInAFlowMappingOverLines",
                "api:\n  keys:\n    - name: k\n      sha256: "
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                "      endpoints: [GET /allocations]\n"
                "      rate: {per_second: 5,\n             burst: 10,\n             burst: 1}\n",
                "bad.yaml:8: api.keys[0].rate.burst: duplicate key (first on line 7)"},
        BadCase{"DuplicateRuleName",
                "warehouses:\n  - {id: 3, name: A}\n  - {id: 4, name: B}\n"
                "rules:\n  nordics: [[3]]\n  nordics: [[4]]\n",
                "bad.yaml:6: rules.nordics: duplicate key (first on line 5)"},
        BadCase{"DuplicateKeyBeforeAnotherProblem", "warehose: []\nlog_level: info\nlog_level: x\n",
                "bad.yaml:3: log_level: duplicate key (first on line 2)"},
        BadCase{"DuplicateKeyThroughAnAlias", "&k log_level: info\n*k : debug\n",
                "bad.yaml:2: log_level: duplicate key (first on line 1)"},
        BadCase{"InvalidYaml", "store: {path: /x\n", "bad.yaml:"},
        BadCase{"TopLevelNotAMapping", "- a\n- b\n", "(top level): expected a mapping"}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace allocation_relay
