// HTTPS on the API (SPEC section 13) on the real binary: certificates made here with the openssl
// command line, a libcurl client that checks the served certificate against the one it pins
// (CURLOPT_CAINFO), and raw sockets for clients that do not speak TLS at all.
//
// No timed assertions: waits have generous limits and only tell "happens" from "never".
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/api_process.h"
#include "support/process.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// A self-signed certificate for 127.0.0.1 (subjectAltName) and its key: <name>.crt, <name>.key.
void MakeCertificate(const testing::TempDir& dir, const std::string& name,
                     const std::string& subject, int serial) {
  std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 2 -subj '" +
      subject + "' -addext subjectAltName=IP:127.0.0.1 -set_serial " + std::to_string(serial) +
      " -keyout " + dir.File(name + ".key") + " -out " + dir.File(name + ".crt") + " 2>/dev/null";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("openssl failed: " + command);
}

void Copy(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

// allocation-api with `api.tls: {cert: server.crt, key: server.key}` (relative to the config
// file) and an idle_timeout of 300 ms, on a fresh directory, database and OS-chosen port.
class HttpsApi {
 public:
  HttpsApi() {
    MakeCertificate(dir_, "first", "/CN=127.0.0.1/O=First", 1001);
    MakeCertificate(dir_, "second", "/CN=127.0.0.1/O=Second", 2002);
    Copy(dir_.File("first.crt"), dir_.File("server.crt"));
    Copy(dir_.File("first.key"), dir_.File("server.key"));
    testing::ApiProcessOptions options;
    if (testing::TestOnPostgresql()) options.store = database_.options();
    std::string config = testing::ApiProcess::Config(options);
    const std::string threads = "  threads: 4\n";
    std::size_t at = config.find(threads);
    if (at == std::string::npos) throw std::logic_error("ApiProcess config has no threads line");
    config.replace(at, threads.size(),
                   threads + "  idle_timeout: 300ms\n  tls: {cert: server.crt, key: server.key}\n");
    dir_.Write("relay.yaml", config);
    process_ = std::make_unique<testing::Process>(
        std::vector<std::string>{API_BINARY, "--config", dir_.File("relay.yaml")}, dir_.path());
    std::regex listening(R"(api listening on 127\.0\.0\.1:(\d+))");
    std::smatch match;
    bool up = testing::WaitFor(
        [&] {
          std::string err = process_->Stderr();
          if (!std::regex_search(err, match, listening)) return false;
          port_ = std::stoi(match[1]);
          return err.find("api ready") != std::string::npos;
        },
        15s);
    if (!up) throw std::runtime_error("allocation-api did not start: " + process_->Stderr());
  }

  int port() const { return port_; }
  const testing::TempDir& dir() const { return dir_; }
  testing::Process& process() { return *process_; }
  std::string Url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }

  // Sends SIGHUP and waits for `log_line` to appear once more than before.
  bool Reload(const std::string& log_line) {
    auto count = [&] {
      std::string err = process_->Stderr();
      std::size_t n = 0;
      for (std::size_t at = err.find(log_line); at != std::string::npos;
           at = err.find(log_line, at + 1)) {
        ++n;
      }
      return n;
    };
    std::size_t before = count();
    process_->Signal(SIGHUP);
    return testing::WaitFor([&] { return count() > before; }, 10s);
  }

 private:
  testing::TempDir dir_;
  testing::TestDatabase database_{dir_};
  std::unique_ptr<testing::Process> process_;
  int port_ = 0;
};

// One libcurl easy handle: its connection is kept alive between requests.
class HttpsClient {
 public:
  struct Answer {
    CURLcode code = CURLE_OK;
    long status = 0;
    long new_connections = 0;  // CURLINFO_NUM_CONNECTS: 0 when the connection was reused
    std::string body;
    std::string error;
  };

  // Trusts only the certificate in `ca_file`.
  explicit HttpsClient(const std::string& ca_file) : curl_(curl_easy_init()) {
    curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file.c_str());
    curl_easy_setopt(curl_, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &HttpsClient::Collect);
  }
  ~HttpsClient() { curl_easy_cleanup(curl_); }
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // Only TLS versions up to `max` (CURL_SSLVERSION_MAX_*), OpenSSL's client-side floor lowered
  // so that the refusal, if any, is the server's.
  void LimitVersions(long min, long max) {
    curl_easy_setopt(curl_, CURLOPT_SSLVERSION, min | max);
    curl_easy_setopt(curl_, CURLOPT_SSL_CIPHER_LIST, "DEFAULT:@SECLEVEL=0");
  }

  Answer Get(const std::string& url) {
    Answer answer;
    char error[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &answer.body);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
    answer.code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &answer.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &answer.new_connections);
    answer.error = error[0] != '\0' ? error : curl_easy_strerror(answer.code);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
    return answer;
  }

 private:
  static std::size_t Collect(char* data, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  CURL* curl_;
};

const std::string kHealthy = R"({"status":"ok"})";

TEST(Https, ServesHealthAndKeepsTheConnectionAlive) {
  HttpsApi api;
  HttpsClient client(api.dir().File("first.crt"));
  HttpsClient::Answer first = client.Get(api.Url("/health"));
  ASSERT_EQ(first.code, CURLE_OK) << first.error;
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, kHealthy);
  EXPECT_EQ(first.new_connections, 1);
  for (int i = 0; i < 3; ++i) {
    HttpsClient::Answer again = client.Get(api.Url("/health"));
    ASSERT_EQ(again.code, CURLE_OK) << again.error;
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(again.new_connections, 0) << "the keep-alive connection was not reused";
  }
  // An authenticated endpoint too (a bigger answer than /health).
  HttpsClient::Answer page = client.Get(api.Url("/metrics"));
  ASSERT_EQ(page.code, CURLE_OK) << page.error;
  EXPECT_THAT(page.body, HasSubstr("allocation_relay_http_connections"));
}

TEST(Https, RefusesACertificateTheClientDoesNotTrust) {
  HttpsApi api;
  HttpsClient client(api.dir().File("second.crt"));
  HttpsClient::Answer answer = client.Get(api.Url("/health"));
  EXPECT_EQ(answer.code, CURLE_PEER_FAILED_VERIFICATION) << answer.error;
  // The client's alert ends the handshake on the server's side too: counted, not served.
  HttpsClient trusting(api.dir().File("first.crt"));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return trusting.Get(api.Url("/metrics"))
                   .body.find(
                       "allocation_relay_http_connections_total{outcome=\"tls_failed\"} 1") !=
               std::string::npos;
      },
      10s));
}

TEST(Https, PlainHttpToTheTlsPortFailsAndTheServerKeepsServing) {
  HttpsApi api;
  for (int i = 0; i < 3; ++i) {
    testing::RawConnection plain(api.port(), 5s);
    ASSERT_TRUE(plain.connected());
    testing::RawAnswer answer = plain.Exchange(testing::HttpRequestText("GET", "/health"), 5s);
    EXPECT_NE(answer.status, 200) << answer.Describe();
    EXPECT_TRUE(plain.WaitClosed(10s)) << "the server kept a non-TLS client's connection open";
  }
  HttpsClient client(api.dir().File("first.crt"));
  HttpsClient::Answer answer = client.Get(api.Url("/health"));
  ASSERT_EQ(answer.code, CURLE_OK) << answer.error;
  EXPECT_EQ(answer.body, kHealthy);
  EXPECT_TRUE(api.process().Running());
  EXPECT_THAT(client.Get(api.Url("/metrics")).body,
              HasSubstr("allocation_relay_http_connections_total{outcome=\"tls_failed\"} 3"));
}

TEST(Https, RefusesTls11AndServesTls12And13) {
  HttpsApi api;
  {
    HttpsClient old(api.dir().File("first.crt"));
    old.LimitVersions(CURL_SSLVERSION_TLSv1_0, CURL_SSLVERSION_MAX_TLSv1_1);
    HttpsClient::Answer answer = old.Get(api.Url("/health"));
    EXPECT_NE(answer.code, CURLE_OK) << "TLS 1.1 was accepted";
    EXPECT_EQ(answer.status, 0);
  }
  {
    // The same lowered client floor, up to 1.2: the refusal above was the version's.
    HttpsClient tls12(api.dir().File("first.crt"));
    tls12.LimitVersions(CURL_SSLVERSION_TLSv1_0, CURL_SSLVERSION_MAX_TLSv1_2);
    HttpsClient::Answer answer = tls12.Get(api.Url("/health"));
    ASSERT_EQ(answer.code, CURLE_OK) << answer.error;
    EXPECT_EQ(answer.body, kHealthy);
  }
  {
    HttpsClient tls13(api.dir().File("first.crt"));
    tls13.LimitVersions(CURL_SSLVERSION_TLSv1_3, CURL_SSLVERSION_MAX_TLSv1_3);
    HttpsClient::Answer answer = tls13.Get(api.Url("/health"));
    ASSERT_EQ(answer.code, CURLE_OK) << answer.error;
    EXPECT_EQ(answer.body, kHealthy);
  }
}

TEST(Https, SighupServesTheNewCertificateAndKeepsOpenConnections) {
  HttpsApi api;
  HttpsClient kept(api.dir().File("first.crt"));
  ASSERT_EQ(kept.Get(api.Url("/health")).code, CURLE_OK);

  Copy(api.dir().File("second.crt"), api.dir().File("server.crt"));
  Copy(api.dir().File("second.key"), api.dir().File("server.key"));
  ASSERT_TRUE(api.Reload("loaded for new connections")) << api.process().Stderr();

  // The connection opened before the reload is still served, on the same connection.
  HttpsClient::Answer again = kept.Get(api.Url("/health"));
  ASSERT_EQ(again.code, CURLE_OK) << again.error;
  EXPECT_EQ(again.new_connections, 0) << "the reload dropped an open connection";
  EXPECT_EQ(again.body, kHealthy);

  // New connections get the new certificate: only the new one verifies.
  HttpsClient fresh(api.dir().File("second.crt"));
  HttpsClient::Answer answer = fresh.Get(api.Url("/health"));
  ASSERT_EQ(answer.code, CURLE_OK) << answer.error;
  EXPECT_EQ(answer.body, kHealthy);
  HttpsClient stale(api.dir().File("first.crt"));
  EXPECT_EQ(stale.Get(api.Url("/health")).code, CURLE_PEER_FAILED_VERIFICATION);
}

TEST(Https, ABadFileOnSighupKeepsTheRunningCertificate) {
  HttpsApi api;
  api.dir().Write("server.crt", "not a certificate\n");
  ASSERT_TRUE(api.Reload("reload failed, keeping the running configuration"))
      << api.process().Stderr();
  EXPECT_THAT(api.process().Stderr(), HasSubstr("api.tls.cert"));
  HttpsClient client(api.dir().File("first.crt"));
  HttpsClient::Answer answer = client.Get(api.Url("/health"));
  ASSERT_EQ(answer.code, CURLE_OK) << answer.error;
  EXPECT_EQ(answer.body, kHealthy);

  // A key that does not match the certificate: refused the same way, named.
  Copy(api.dir().File("first.crt"), api.dir().File("server.crt"));
  Copy(api.dir().File("second.key"), api.dir().File("server.key"));
  ASSERT_TRUE(api.Reload("reload failed, keeping the running configuration"));
  EXPECT_THAT(api.process().Stderr(), HasSubstr("api.tls.key"));
  HttpsClient after(api.dir().File("first.crt"));
  EXPECT_EQ(after.Get(api.Url("/health")).code, CURLE_OK);
}

TEST(Https, AStalledHandshakeIsClosedAtTheIdleTimeout) {
  HttpsApi api;
  testing::RawConnection silent(api.port(), 5s);  // connects and never says a word
  testing::RawConnection halfway(api.port(), 5s);
  ASSERT_TRUE(silent.connected());
  ASSERT_TRUE(halfway.connected());
  ASSERT_TRUE(halfway.Send(std::string("\x16\x03\x01\x02\x00\x01", 6)));  // a ClientHello's start
  EXPECT_TRUE(silent.WaitClosed(10s));
  EXPECT_TRUE(halfway.WaitClosed(10s));
  HttpsClient client(api.dir().File("first.crt"));
  HttpsClient::Answer metrics = client.Get(api.Url("/metrics"));
  ASSERT_EQ(metrics.code, CURLE_OK) << metrics.error;
  EXPECT_THAT(metrics.body,
              HasSubstr("allocation_relay_http_connections_total{outcome=\"timed_out\"} 2"));
  EXPECT_THAT(metrics.body,
              HasSubstr("allocation_relay_http_connections_total{outcome=\"tls_failed\"} 0"));
}

TEST(Https, AnIdleKeepAliveConnectionIsClosedAtTheIdleTimeout) {
  HttpsApi api;
  HttpsClient client(api.dir().File("first.crt"));
  ASSERT_EQ(client.Get(api.Url("/health")).code, CURLE_OK);
  HttpsClient observer(api.dir().File("first.crt"));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return observer.Get(api.Url("/metrics"))
                   .body.find("allocation_relay_http_connections_total{outcome=\"timed_out\"} 1") !=
               std::string::npos;
      },
      10s));
  // The client notices the closed connection and opens a new one.
  HttpsClient::Answer answer = client.Get(api.Url("/health"));
  ASSERT_EQ(answer.code, CURLE_OK) << answer.error;
  EXPECT_EQ(answer.new_connections, 1);
}

}  // namespace
}  // namespace allocation_relay
