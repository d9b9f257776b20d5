// TestCertificates: a throwaway PKI made with the `openssl` command-line tool in a directory:
// a CA, a server certificate for 127.0.0.1 (and 203.0.113.7, the public-looking host tests
// reach through a proxy) and a client certificate (CN "dispatcher"; IssueClient makes more),
// all signed by the CA; EC P-256 keys, valid for a day. For mutual-TLS tests.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_TEST_CERTIFICATES_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_TEST_CERTIFICATES_H_

#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"

namespace allocation_relay::testing {

struct TestCertificates {
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;
  std::string client_cert, client_key;

  // Throws std::runtime_error with openssl's output if a step fails.
  static TestCertificates Make(const TempDir& dir) {
    TestCertificates c;
    c.ca_cert = dir.File("ca.pem");
    c.ca_key = dir.File("ca.key");
    c.server_cert = dir.File("server.pem");
    c.server_key = dir.File("server.key");
    c.client_cert = dir.File("client.pem");
    c.client_key = dir.File("client.key");
    Run(WithNewKey({"/usr/bin/env", "openssl", "req", "-x509"},
                   {"-keyout", c.ca_key, "-out", c.ca_cert, "-days", "1", "-subj", "/CN=test CA"}),
        dir);
    c.Issue(dir, "127.0.0.1", c.server_cert, c.server_key,
            dir.Write("server.ext", "subjectAltName=IP:127.0.0.1,IP:203.0.113.7\n"));
    c.IssueClient(dir, "dispatcher", c.client_cert, c.client_key);
    return c;
  }

  // Another client certificate of this CA, with a new key: CN `name`, written to `cert` and
  // `key` (paths). Throws like Make.
  void IssueClient(const TempDir& dir, const std::string& name, const std::string& cert,
                   const std::string& key) const {
    Issue(dir, name, cert, key, dir.Write("client.ext", "extendedKeyUsage=clientAuth\n"));
  }

 private:
  static void Run(const std::vector<std::string>& argv, const TempDir& dir) {
    CommandResult r = RunCommand(argv, dir.path());
    if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.out + r.err);
  }
  // `head`, the options of a new unencrypted EC P-256 key, `tail`.
  static std::vector<std::string> WithNewKey(std::vector<std::string> head,
                                             const std::vector<std::string>& tail) {
    const std::vector<std::string> key = {"-newkey", "ec", "-pkeyopt",
                                          "ec_paramgen_curve:prime256v1", "-nodes"};
    head.insert(head.end(), key.begin(), key.end());
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  }
  void Issue(const TempDir& dir, const std::string& name, const std::string& cert,
             const std::string& pkey, const std::string& ext) const {
    const std::string csr = dir.File(name + ".csr");
    Run(WithNewKey({"/usr/bin/env", "openssl", "req"},
                   {"-keyout", pkey, "-out", csr, "-subj", "/CN=" + name}),
        dir);
    Run({"/usr/bin/env", "openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
         "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext},
        dir);
  }
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_TEST_CERTIFICATES_H_
