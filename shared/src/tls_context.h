// TLS for HttpServer (SPEC section 13), the only code of the project that speaks OpenSSL's
// libssl: a TlsContext owns one SSL_CTX (a certificate, its key and the server's settings), a
// TlsSession is one connection's TLS state over a non-blocking socket.
//
// Neither blocks: every call that needs the network to move on says which way it waits
// (kWantRead / kWantWrite) and the caller's event loop calls again when the socket is ready.
//
// Threads: a TlsContext is immutable once loaded and may be used from any thread (sessions are
// made from it on the event thread while a reload makes the next one). A TlsSession belongs to
// one thread at a time, like the connection that holds it; it keeps its context alive (OpenSSL
// counts the references), so replacing the context never touches open connections.
#ifndef ALLOCATION_RELAY_TLS_CONTEXT_H_
#define ALLOCATION_RELAY_TLS_CONTEXT_H_

#include <cstddef>
#include <memory>
#include <string>

struct ssl_st;
struct ssl_ctx_st;

namespace allocation_relay {

// Why a certificate/key pair was refused: which file, and what is wrong with it (one line).
struct TlsFileProblem {
  bool in_key = false;  // false: the certificate file
  std::string message;
};

class TlsContext {
 public:
  // Reads the certificate chain (PEM, the server's certificate first) and the private key (PEM)
  // and checks that they belong together. Returns nullptr and fills *problem if a file cannot
  // be read, is not PEM of the right kind, or the key does not match the certificate. TLS 1.2
  // and 1.3 only, no compression, no renegotiation, the server's cipher preference.
  static std::shared_ptr<const TlsContext> Load(const std::string& cert_file,
                                                const std::string& key_file,
                                                TlsFileProblem* problem);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  ssl_ctx_st* native() const { return ctx_; }

 private:
  explicit TlsContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_;
};

class TlsSession {
 public:
  enum class Status {
    kOk,         // done (Read/Write: *n bytes moved, > 0)
    kWantRead,   // call again when the socket is readable
    kWantWrite,  // call again when the socket is writable
    kClosed,     // the peer closed the TLS session (close_notify) or the connection
    kError,      // a protocol or socket error: close the connection
  };

  // A server-side session over the connected, non-blocking socket `fd` (not owned: the caller
  // closes it after the session is gone).
  TlsSession(const TlsContext& context, int fd);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Moves the handshake on. kOk once it is complete.
  Status Handshake();
  // Decrypted bytes into buf (up to size).
  Status Read(char* buf, std::size_t size, std::size_t* n);
  // Encrypts and sends what the socket takes now (at least one record, or *n = 0 and kWant*).
  // REQUIRES: after a kWant* the next call passes the same bytes again (more may follow them).
  Status Write(const char* data, std::size_t size, std::size_t* n);
  // True if decrypted bytes wait inside the session: the socket will not signal them.
  bool HasPending() const;
  // Sends close_notify if it can without waiting; after an error it does nothing.
  void SendCloseNotify();
  // The last error, for a debug log line.
  const std::string& error() const { return error_; }

 private:
  Status Result(int rc);
  ssl_st* ssl_;
  bool failed_ = false;
  std::string error_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_TLS_CONTEXT_H_
