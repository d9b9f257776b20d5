// The PostgreSQL backend's plumbing: one libpq connection with its prepared statements, query
// results, and the translation of libpq's failures into StoreError values. Only store/postgresql/
// includes <libpq-fe.h>.
//
// libpq (Debian's libpq-dev 15, the client PostgreSQL itself ships) rather than libpqxx: the
// store needs exactly prepared statements, text results, pipeline mode and LISTEN/NOTIFY, which
// libpq gives without a second layer of exceptions to translate; libpqxx would add a C++ API
// over the same calls and its own exception hierarchy for this file to catch.
//
// A Connection is not thread-safe: one thread uses it (one per Store).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_CONNECTION_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_CONNECTION_H_

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "allocation_relay/store.h"

struct pg_conn;
struct pg_result;

namespace allocation_relay::postgresql {

// A failed statement, with PostgreSQL's SQLSTATE (empty when the connection itself failed).
class StatementError : public StoreError {
 public:
  StatementError(Kind kind, const std::string& message, std::string sqlstate)
      : StoreError(kind, message), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }
  // A conflict with a concurrent transaction that running the whole write again resolves:
  // serialization failure, deadlock, and a unique key another transaction took meanwhile.
  bool Retryable() const {
    return sqlstate_ == "40001" || sqlstate_ == "40P01" || sqlstate_ == "23505";
  }

 private:
  std::string sqlstate_;
};

// Statement parameters, sent as text.
class Params {
 public:
  Params& Add(std::int64_t v) {
    values_.push_back(std::to_string(v));
    nulls_.push_back(false);
    return *this;
  }
  Params& Add(int v) { return Add(static_cast<std::int64_t>(v)); }
  Params& Add(std::string v) {
    values_.push_back(std::move(v));
    nulls_.push_back(false);
    return *this;
  }
  Params& Add(const char* v) { return Add(std::string(v)); }
  Params& Add(std::string_view v) { return Add(std::string(v)); }
  Params& Add(bool v) { return Add(std::string(v ? "t" : "f")); }
  Params& AddNull() {
    values_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  // A bigint[] literal: {1,2,3}.
  Params& AddIds(std::span<const std::int64_t> ids);
  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into this object (null for a NULL parameter), valid while it lives.
  std::vector<const char*> Pointers() const;

 private:
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
};

// The text of a one-dimensional array parameter (bigint[], integer[], text[]): {1,NULL,"a\"b"}.
// For statements that write many rows at once from unnest().
class ArrayLiteral {
 public:
  ArrayLiteral& Add(std::int64_t v);
  ArrayLiteral& Add(int v) { return Add(static_cast<std::int64_t>(v)); }
  ArrayLiteral& Add(std::string_view text);  // quoted: any text, commas and quotes included
  ArrayLiteral& AddNull();
  std::string Text() const { return text_ + '}'; }

 private:
  void Separate();
  std::string text_ = "{";
};

// A statement's result (text format). Row and column numbers are 0-based.
class Result {
 public:
  explicit Result(pg_result* r);
  ~Result();
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result& operator=(Result&&) = delete;
  Result(const Result&) = delete;

  pg_result* get() const { return r_; }
  int rows() const;
  // Rows an INSERT, UPDATE or DELETE changed.
  std::int64_t affected() const;
  bool null(int row, int col) const;
  std::string_view text(int row, int col) const;
  std::string str(int row, int col) const { return std::string(text(row, col)); }
  std::int64_t i64(int row, int col) const;
  int i32(int row, int col) const { return static_cast<int>(i64(row, col)); }

 private:
  pg_result* r_;
};

class Connection {
 public:
  // Connects (throws StoreError kUnavailable, the URL's password never in the message).
  explicit Connection(std::string url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` as a prepared statement (prepared on first use on this connection). Throws
  // StatementError.
  Result Exec(const std::string& sql, const Params& params = {});
  // Runs `sql` (one or more statements, no parameters) as a simple query. Throws.
  void Run(const std::string& sql);
  // Sends `sql` without waiting for its result: it runs, in order, before the next Exec, Run
  // or Flush, which report its failure (libpq's pipeline mode). For statements whose result
  // the caller does not need (an event queued, an attempt recorded): they cost no round trip
  // of their own.
  void Queue(const std::string& sql, const Params& params = {});
  // Waits for everything queued.
  void Flush();

  // Before a new operation: reconnects a connection the server closed (a restart, a failover),
  // at most once per backoff period (100 ms doubling to 2 s while it keeps failing). Throws
  // StoreError kUnavailable meanwhile.
  void EnsureOpen();
  // After a failure: whether the connection itself is lost.
  bool Lost() const;

  // The notifications received so far on channels this connection listens to (LISTEN),
  // without waiting; the socket to poll for more.
  int TakeNotifications();
  int Socket() const;

  const std::string& url() const { return url_; }

 private:
  const std::string& PreparedName(const std::string& sql);
  void EnterPipeline();
  // Reads the queued statements' results up to the pipeline's sync; throws the first failure.
  void DrainPipeline();
  StatementError Failure(pg_result* r, const std::string& what) const;
  void ForgetPipelinePrepares();

  std::string url_;
  pg_conn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
  std::uint64_t statements_named_ = 0;
  std::vector<std::string> sent_;  // queued statements not yet read back (their SQL)
  std::vector<std::string> prepared_in_pipeline_;  // PREPAREs among them
  bool pipeline_ = false;
  std::chrono::steady_clock::time_point next_reconnect_{};
  std::chrono::milliseconds backoff_{100};
};

// Runs `body`, turning every exception into a StoreError value: no exception leaves the store.
template <typename F>
auto Guarded(F&& body) -> StoreResult<decltype(body())> {
  try {
    return body();
  } catch (const StoreError& e) {
    return std::unexpected(e);
  } catch (const std::exception& e) {
    return std::unexpected(StoreError(StoreError::Kind::kInternal, e.what()));
  }
}

}  // namespace allocation_relay::postgresql

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_POSTGRESQL_PG_CONNECTION_H_
