// SPEC section 13, secret rotation and egress: the real dispatcher signing with a list of
// secrets (verified by the reference `standardwebhooks` library), calling through a real
// forward proxy on loopback (absolute-form requests and CONNECT tunnels) and presenting a
// client certificate to a receiver that demands one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "allocation_relay/signature.h"
#include "allocation_relay/store.h"
#include "support/api_process.h"
#include "support/forward_proxy.h"
#include "support/loopback_server.h"
#include "support/receiver.h"
#include "support/services_test.h"
#include "support/test_certificates.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiProcessOptions;
using testing::ForwardProxy;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestCertificates;

// An HTTPS receiver on loopback that accepts only clients with a certificate of `client_ca`;
// counts the POSTs it answered (200) and keeps the common name of the client certificate each
// one came with. One request per connection: every call is a new TLS handshake, so a call
// presents what the dispatcher gives it then, not what an earlier call's connection did.
class TlsReceiver {
 public:
  TlsReceiver(const TestCertificates& c)
      : server_(c.server_cert.c_str(), c.server_key.c_str(), c.ca_cert.c_str()) {
    server_.set_keep_alive_max_count(1);
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::string name;
      if (X509* cert = SSL_get0_peer_certificate(req.ssl)) {
        char cn[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
        name = cn;
      }
      std::lock_guard lock(mu_);
      client_names_.push_back(name);
      res.set_content("ok", "text/plain");
    });
    loopback_ = std::make_unique<testing::LoopbackServer>(server_);
  }
  int port() const { return loopback_->port(); }
  int calls() {
    std::lock_guard lock(mu_);
    return static_cast<int>(client_names_.size());
  }
  // The CN of each answered call's client certificate, in order.
  std::vector<std::string> ClientNames() {
    std::lock_guard lock(mu_);
    return client_names_;
  }

 private:
  httplib::SSLServer server_;
  std::unique_ptr<testing::LoopbackServer> loopback_;
  std::mutex mu_;
  std::vector<std::string> client_names_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Egress : public testing::ServicesTest {
 protected:
  // The attempts of warehouse `w`'s deliveries in `state` (exactly one delivery expected).
  std::vector<DeliveryAttempt> AttemptsOf(DeliveryState state, std::int64_t w) {
    auto store = OpenStore();
    auto deliveries = *store->ListDeliveries(state, w, 10);
    EXPECT_EQ(deliveries.size(), 1u);
    return deliveries.size() == 1 ? *store->ListAttempts(deliveries[0].id)
                                  : std::vector<DeliveryAttempt>{};
  }
  // True once warehouse `w` has `n` deliveries in `state`.
  bool WaitForDelivery(DeliveryState state, std::int64_t w, std::size_t n = 1) {
    auto store = OpenStore();
    return testing::WaitFor([&] { return store->ListDeliveries(state, w, 10)->size() == n; }, 20s);
  }
  // Runs the reference verifier on `call` with `secret`; returns its exit code.
  int Verify(const testing::Receiver::Call& call, const std::string& secret) {
    const std::string dir = STANDARDWEBHOOKS_DIR;
    json headers = {{"webhook-id", call.Header("webhook-id")},
                    {"webhook-timestamp", call.Header("webhook-timestamp")},
                    {"webhook-signature", call.Header("webhook-signature")}};
    std::string headers_file = api_->dir().Write("headers.json", headers.dump());
    std::string body_file = api_->dir().Write("body.json", call.body);
    testing::CommandResult r = testing::RunCommand(
        {"/usr/bin/env", "node", dir + "/verify.mjs", secret, headers_file, body_file},
        api_->dir().path());
    EXPECT_THAT(r.out + r.err, HasSubstr(r.exit_code == 0 ? "verified:" : "not verified"));
    return r.exit_code;
  }

  testing::TempDir pki_dir_;
};

// A rotation: the receiver may hold the new secret or still the old one; both verify the one
// call, and a secret not in the list does not.
TEST_F(Egress, ARotatedWebhookVerifiesWithEachListedSecretAndNoOther) {
  ASSERT_TRUE(
      std::filesystem::exists(std::string(STANDARDWEBHOOKS_DIR) + "/node_modules/standardwebhooks"))
      << "run: npm ci --prefix " << STANDARDWEBHOOKS_DIR << " (tests/run.sh does)";
  const std::string newer = "whsec_" + Base64Encode("allocation-relay rotation: the new one");
  const std::string older = "whsec_" + Base64Encode("allocation-relay rotation: the old one");
  const std::string other = "whsec_" + Base64Encode("allocation-relay rotation: never listed");
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: '" + receiver_.Url() + "', secret: ['" + newer + "', '" + older +
                        "'], signature: standard-webhooks}"}};
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(receiver_.WaitForCalls(1, 15s)) << dispatcher_->Stderr();
  testing::Receiver::Call call = receiver_.Calls()[0];
  EXPECT_THAT(call.Header("webhook-signature"), ::testing::MatchesRegex("v1,[^ ]+ v1,[^ ]+"));
  EXPECT_EQ(Verify(call, newer), 0);
  EXPECT_EQ(Verify(call, older), 0);
  EXPECT_EQ(Verify(call, other), 1);
  EXPECT_THAT(dispatcher_->Stderr(), Not(HasSubstr(newer)));
  EXPECT_THAT(dispatcher_->Stderr(), Not(HasSubstr(older)));
}

// The webhook names a public address only the proxy reaches (it sends every target to the
// receiver): the guard checks that host, not the proxy on loopback, and the call arrives
// through the proxy with the proxy's credentials; the log shows the proxy URL masked.
TEST_F(Egress, AnHttpWebhookGoesThroughTheProxyWhichTheGuardDoesNotCheck) {
  ForwardProxy proxy(receiver_.port());
  const std::string password = "proxy-pw-8d1f";
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: 'http://203.0.113.7:8080/hook', secret: s}"}};
  o.dispatcher =
      "{listen: '127.0.0.1:0', retry_schedule: [200ms], proxy: 'http://relay:" + password +
      "@127.0.0.1:" + std::to_string(proxy.port()) + "'}";
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(receiver_.WaitForCalls(1, 15s)) << dispatcher_->Stderr();
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4)) << dispatcher_->Stderr();
  EXPECT_EQ(proxy.requests(), 1);
  EXPECT_THAT(proxy.Targets(), ::testing::ElementsAre("http://203.0.113.7:8080/hook"));
  EXPECT_THAT(proxy.Authorizations(),
              ::testing::ElementsAre("Basic " + Base64Encode("relay:" + password)));
  EXPECT_EQ(receiver_.Calls()[0].path, "/hook");
  EXPECT_THAT(dispatcher_->Stderr(), HasSubstr("http://relay:***@127.0.0.1:"));
  EXPECT_THAT(dispatcher_->Stderr(), Not(HasSubstr(password)));
}

// Behind the proxy, a webhook on loopback is refused as it is without one: nothing reaches the
// proxy, and the attempt says why.
TEST_F(Egress, APrivateWebhookHostBehindTheProxyIsStillRefused) {
  ForwardProxy proxy;
  ApiProcessOptions o;
  o.webhooks = {{3, "{url: '" + receiver_.Url() + "', secret: s}"}};
  o.dispatcher = "{listen: '127.0.0.1:0', retry_schedule: [100ms], proxy: '" + proxy.Url() + "'}";
  StartServices(o);
  api_->CreateAllocation(15, "[[3]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kDead, 3)) << dispatcher_->Stderr();
  auto attempts = AttemptsOf(DeliveryState::kDead, 3);
  ASSERT_EQ(attempts.size(), 2u);
  for (const auto& a : attempts) {
    EXPECT_EQ(a.http_status, 0);
    EXPECT_THAT(a.error, HasSubstr("destination refused"));
  }
  EXPECT_TRUE(proxy.Targets().empty());
  EXPECT_TRUE(receiver_.Calls().empty());
}

// A receiver that demands a client certificate: the webhook with client_cert/client_key (and
// the test CA as ca_file) gets through; one without is refused by the TLS handshake, and its
// attempts are recorded with an error and retried.
TEST_F(Egress, AClientCertificateIsPresentedToAReceiverThatDemandsOne) {
  TestCertificates pki = TestCertificates::Make(pki_dir_);
  TlsReceiver tls(pki);
  const std::string url = "https://127.0.0.1:" + std::to_string(tls.port()) + "/hook";
  ApiProcessOptions o;
  o.webhooks = {{3, "{url: '" + url + "', secret: s, client_cert: '" + pki.client_cert +
                        "', client_key: '" + pki.client_key + "', ca_file: '" + pki.ca_cert + "'}"},
                {4, "{url: '" + url + "', secret: s, ca_file: '" + pki.ca_cert + "'}"}};
  StartServices(o);
  api_->CreateAllocation(15, "[[3]]");
  api_->CreateAllocation(16, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 3)) << dispatcher_->Stderr();
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kDead, 4)) << dispatcher_->Stderr();
  auto with = AttemptsOf(DeliveryState::kSucceeded, 3);
  ASSERT_EQ(with.size(), 1u);
  EXPECT_EQ(with[0].http_status, 200);
  auto without = AttemptsOf(DeliveryState::kDead, 4);
  ASSERT_EQ(without.size(), 3u);  // the first call and both retries
  for (const auto& a : without) {
    EXPECT_EQ(a.http_status, 0);
    EXPECT_FALSE(a.error.empty());
  }
  EXPECT_EQ(tls.calls(), 1);
}

// mTLS through a CONNECT tunnel: the proxy sees only "host:port", the TLS session (client
// certificate, the server's name checked) is end to end.
TEST_F(Egress, AnHttpsWebhookWithAClientCertificateGoesThroughAProxyTunnel) {
  TestCertificates pki = TestCertificates::Make(pki_dir_);
  TlsReceiver tls(pki);
  ForwardProxy proxy(tls.port());
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: 'https://203.0.113.7/hook', secret: s, client_cert: '" +
                        pki.client_cert + "', client_key: '" + pki.client_key + "', ca_file: '" +
                        pki.ca_cert + "'}"}};
  o.dispatcher = "{listen: '127.0.0.1:0', retry_schedule: [200ms], proxy: '" + proxy.Url() + "'}";
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4)) << dispatcher_->Stderr();
  EXPECT_EQ(proxy.tunnels(), 1);
  EXPECT_THAT(proxy.Targets(), ::testing::ElementsAre("203.0.113.7:443"));
  EXPECT_EQ(tls.calls(), 1);
}

// SIGHUP changes the proxy for the next calls: one through the first proxy, then, after the
// reload, the next through the second one only.
TEST_F(Egress, ASighupMovesTheNextCallsToTheNewProxy) {
  ForwardProxy first(receiver_.port()), second(receiver_.port());
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: 'http://203.0.113.7:8080/hook', secret: s}"}};
  o.dispatcher = "{listen: '127.0.0.1:0', retry_schedule: [200ms], proxy: '" + first.Url() + "'}";
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(receiver_.WaitForCalls(1, 15s)) << dispatcher_->Stderr();
  EXPECT_EQ(first.requests(), 1);

  o.dispatcher = "{listen: '127.0.0.1:0', retry_schedule: [200ms], proxy: '" + second.Url() + "'}";
  ASSERT_TRUE(ReloadDispatcher(o)) << dispatcher_->Stderr();
  api_->CreateAllocation(16, "[[4]]");
  ASSERT_TRUE(receiver_.WaitForCalls(2, 15s)) << dispatcher_->Stderr();
  EXPECT_EQ(first.requests(), 1);
  EXPECT_EQ(second.requests(), 1);
  EXPECT_THAT(dispatcher_->Stderr(), HasSubstr("through proxy " + second.Url()));
}

// A client certificate added on SIGHUP is presented by the next retry of a delivery that the
// receiver refused without one: the delivery succeeds without a restart.
TEST_F(Egress, AClientCertificateAddedOnSighupIsPresentedByTheNextRetry) {
  TestCertificates pki = TestCertificates::Make(pki_dir_);
  TlsReceiver tls(pki);
  const std::string url = "https://127.0.0.1:" + std::to_string(tls.port()) + "/hook";
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: '" + url + "', secret: s, ca_file: '" + pki.ca_cert + "'}"}};
  o.dispatcher = "{listen: '127.0.0.1:0', allow_private_networks: true, retry_schedule: [2s]}";
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  auto store = OpenStore();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto pending = *store->ListDeliveries(DeliveryState::kPending, 4, 10);
        return pending.size() == 1 && pending[0].attempt_count == 1;
      },
      15s))
      << dispatcher_->Stderr();
  EXPECT_EQ(tls.calls(), 0);

  o.webhooks = {{4, "{url: '" + url + "', secret: s, client_cert: '" + pki.client_cert +
                        "', client_key: '" + pki.client_key + "', ca_file: '" + pki.ca_cert +
                        "'}"}};
  ASSERT_TRUE(ReloadDispatcher(o)) << dispatcher_->Stderr();
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4)) << dispatcher_->Stderr();
  auto attempts = AttemptsOf(DeliveryState::kSucceeded, 4);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].http_status, 0);
  EXPECT_EQ(attempts[1].http_status, 200);
  EXPECT_EQ(tls.calls(), 1);
}

// The files are read when the config is loaded, not by each call: a renewal that has written
// the new certificate but not yet its key (and a CA file broken meanwhile) changes nothing
// until the SIGHUP; then the renewed pair is presented by the next call.
TEST_F(Egress, ClientCertificateFilesChangedWithoutASighupAreNotReadByTheCalls) {
  TestCertificates pki = TestCertificates::Make(pki_dir_);
  const std::string renewed_cert = pki_dir_.File("renewed.pem");
  const std::string renewed_key = pki_dir_.File("renewed.key");
  pki.IssueClient(pki_dir_, "dispatcher renewed", renewed_cert, renewed_key);
  TlsReceiver tls(pki);
  testing::TempDir hook_dir;  // the webhook's own copies, changed in place below
  const std::string cert = hook_dir.Write("client.pem", ReadFile(pki.client_cert));
  const std::string key = hook_dir.Write("client.key", ReadFile(pki.client_key));
  const std::string ca = hook_dir.Write("ca.pem", ReadFile(pki.ca_cert));
  const std::string url = "https://127.0.0.1:" + std::to_string(tls.port()) + "/hook";
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: '" + url + "', secret: s, client_cert: '" + cert + "', client_key: '" +
                        key + "', ca_file: '" + ca + "'}"}};
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4)) << dispatcher_->Stderr();

  hook_dir.Write("client.pem", ReadFile(renewed_cert));  // its key not written yet
  hook_dir.Write("ca.pem", "not a certificate\n");
  api_->CreateAllocation(16, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4, 2)) << dispatcher_->Stderr();
  EXPECT_EQ(tls.calls(), 2);

  hook_dir.Write("client.key", ReadFile(renewed_key));
  hook_dir.Write("ca.pem", ReadFile(pki.ca_cert));
  ASSERT_TRUE(ReloadDispatcher(o)) << dispatcher_->Stderr();
  api_->CreateAllocation(17, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4, 3)) << dispatcher_->Stderr();
  EXPECT_THAT(tls.ClientNames(),
              ::testing::ElementsAre("dispatcher", "dispatcher", "dispatcher renewed"));
  EXPECT_TRUE(OpenStore()->ListDeliveries(DeliveryState::kDead, 4, 10)->empty());
}

// A reload that fails (the key file now holds another certificate's key) keeps the running
// configuration, the pair read at start-up included: the next call still presents it. The
// message names the files, never the key's contents.
TEST_F(Egress, AFailedReloadKeepsTheRunningClientCertificate) {
  TestCertificates pki = TestCertificates::Make(pki_dir_);
  TlsReceiver tls(pki);
  testing::TempDir hook_dir;
  const std::string cert = hook_dir.Write("client.pem", ReadFile(pki.client_cert));
  const std::string key = hook_dir.Write("client.key", ReadFile(pki.client_key));
  const std::string url = "https://127.0.0.1:" + std::to_string(tls.port()) + "/hook";
  ApiProcessOptions o;
  o.webhooks = {{4, "{url: '" + url + "', secret: s, client_cert: '" + cert + "', client_key: '" +
                        key + "', ca_file: '" + pki.ca_cert + "'}"}};
  StartServices(o);
  api_->CreateAllocation(15, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4)) << dispatcher_->Stderr();

  const std::string other_key = ReadFile(pki.server_key);
  hook_dir.Write("client.key", other_key);
  dispatcher_->Signal(SIGHUP);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return dispatcher_->Stderr().find("reload failed") != std::string::npos; }, 10s))
      << dispatcher_->Stderr();
  EXPECT_THAT(dispatcher_->Stderr(), HasSubstr(key + " is not the key of client_cert " + cert));
  api_->CreateAllocation(16, "[[4]]");
  ASSERT_TRUE(WaitForDelivery(DeliveryState::kSucceeded, 4, 2)) << dispatcher_->Stderr();
  EXPECT_THAT(tls.ClientNames(), ::testing::ElementsAre("dispatcher", "dispatcher"));
  // Neither key's text is logged (the line after "-----BEGIN PRIVATE KEY-----").
  for (const std::string& text : {ReadFile(pki.client_key), other_key}) {
    const std::string line = text.substr(text.find('\n') + 1, 40);
    ASSERT_EQ(line.size(), 40u);
    EXPECT_THAT(dispatcher_->Stderr(), Not(HasSubstr(line)));
  }
}

}  // namespace
}  // namespace allocation_relay
