// The only file that includes OpenSSL's libssl headers (signature.cpp uses libcrypto only).
#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace allocation_relay {
namespace {

// An encrypted key would make OpenSSL ask for its passphrase on the terminal: refuse instead.
int NoPassphrase(char*, int, int, void*) { return -1; }

// OpenSSL's first queued error as text, or `fallback` if it queued none; clears the queue.
std::string OpenSslError(const char* fallback) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : fallback;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

}  // namespace

std::shared_ptr<const TlsContext> TlsContext::Load(const std::string& cert_file,
                                                   const std::string& key_file,
                                                   TlsFileProblem* problem) {
  auto refuse = [problem](bool in_key, std::string message) {
    ERR_clear_error();
    if (problem != nullptr) *problem = {in_key, std::move(message)};
    return std::shared_ptr<const TlsContext>();
  };
  ERR_clear_error();
  File cert(std::fopen(cert_file.c_str(), "rb"));
  if (!cert) return refuse(false, "cannot read " + cert_file + ": " + std::strerror(errno));
  File key(std::fopen(key_file.c_str(), "rb"));
  if (!key) return refuse(true, "cannot read " + key_file + ": " + std::strerror(errno));
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) return refuse(false, "OpenSSL: " + OpenSslError("cannot make a context"));
  std::shared_ptr<const TlsContext> context(new TlsContext(raw));
  SSL_CTX_set_default_passwd_cb(raw, NoPassphrase);
  if (SSL_CTX_use_certificate_chain_file(raw, cert_file.c_str()) != 1) {
    return refuse(false, cert_file + " holds no PEM certificate: " + OpenSslError("unreadable"));
  }
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_PrivateKey(key.get(), nullptr, NoPassphrase, nullptr), EVP_PKEY_free);
  if (!pkey) {
    return refuse(true, key_file + " holds no PEM private key (or an encrypted one): " +
                            OpenSslError("unreadable"));
  }

  if (SSL_CTX_use_PrivateKey(raw, pkey.get()) != 1 || SSL_CTX_check_private_key(raw) != 1) {
    return refuse(true, key_file + " does not match the certificate in " + cert_file);
  }
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes: the event loop keeps the rest of an answer in its own buffer. Released
  // buffers: an idle connection holds no record buffers (SPEC 8's memory bound).
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(const TlsContext& context, int fd) : ssl_(SSL_new(context.native())) {
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd) != 1) {
    failed_ = true;
    error_ = OpenSslError("cannot make a TLS session");
    return;
  }
  SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

TlsSession::Status TlsSession::Result(int rc) {
  int code = SSL_get_error(ssl_, rc);
  switch (code) {
    case SSL_ERROR_WANT_READ:
      return Status::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return Status::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return Status::kClosed;
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      error_ = errno != 0 ? std::strerror(errno) : "connection closed";
      ERR_clear_error();
      return errno != 0 ? Status::kError : Status::kClosed;
    default:
      failed_ = true;
      error_ = OpenSslError("TLS error");
      return Status::kError;
  }
}

TlsSession::Status TlsSession::Handshake() {
  if (failed_) return Status::kError;
  ERR_clear_error();
  errno = 0;
  int rc = SSL_do_handshake(ssl_);
  return rc == 1 ? Status::kOk : Result(rc);
}

TlsSession::Status TlsSession::Read(char* buf, std::size_t size, std::size_t* n) {
  *n = 0;
  if (failed_) return Status::kError;
  ERR_clear_error();
  errno = 0;
  int rc = SSL_read_ex(ssl_, buf, size, n);
  return rc == 1 ? Status::kOk : Result(rc);
}

TlsSession::Status TlsSession::Write(const char* data, std::size_t size, std::size_t* n) {
  *n = 0;
  if (failed_) return Status::kError;
  ERR_clear_error();
  errno = 0;
  int rc = SSL_write_ex(ssl_, data, size, n);
  return rc == 1 ? Status::kOk : Result(rc);
}

bool TlsSession::HasPending() const { return !failed_ && SSL_has_pending(ssl_) == 1; }

void TlsSession::SendCloseNotify() {
  if (failed_ || SSL_is_init_finished(ssl_) != 1) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

}  // namespace allocation_relay
