#include "pg_connection.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>

#include "allocation_relay/config.h"

namespace allocation_relay::postgresql {
namespace {

// The kind of failure a SQLSTATE means to the services (see StoreError::Kind).
StoreError::Kind KindOf(std::string_view sqlstate) {
  if (sqlstate.empty()) return StoreError::Kind::kUnavailable;  // the connection failed
  if (sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03" || (sqlstate.starts_with("53") && sqlstate != "53100")) {
    return StoreError::Kind::kUnavailable;  // connection lost, server shutting down, no resources
  }
  if (sqlstate == "53100") return StoreError::Kind::kFull;      // disk full
  if (sqlstate == "25006") return StoreError::Kind::kReadOnly;  // a read-only standby
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "57014") {
    return StoreError::Kind::kBusy;  // conflicts, lock and statement timeouts
  }
  if (sqlstate.starts_with("XX")) return StoreError::Kind::kCorrupt;
  if (sqlstate == "42P01" || sqlstate == "42703") return StoreError::Kind::kCorrupt;  // no table
  return StoreError::Kind::kInternal;
}

std::string Trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool Ok(pg_result* r) {
  ExecStatusType status = PQresultStatus(r);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

}  // namespace

Params& Params::AddIds(std::span<const std::int64_t> ids) {
  ArrayLiteral array;
  for (std::int64_t id : ids) array.Add(id);
  return Add(array.Text());
}

void ArrayLiteral::Separate() {
  if (text_.size() > 1) text_ += ',';
}

ArrayLiteral& ArrayLiteral::Add(std::int64_t v) {
  Separate();
  text_ += std::to_string(v);
  return *this;
}

ArrayLiteral& ArrayLiteral::Add(std::string_view text) {
  Separate();
  text_ += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
  return *this;
}

ArrayLiteral& ArrayLiteral::AddNull() {
  Separate();
  text_ += "NULL";
  return *this;
}

std::vector<const char*> Params::Pointers() const {
  std::vector<const char*> out;
  out.reserve(values_.size());
  for (std::size_t i = 0; i < values_.size(); ++i) {
    out.push_back(nulls_[i] ? nullptr : values_[i].c_str());
  }
  return out;
}

Result::Result(pg_result* r) : r_(r) {}
Result::~Result() {
  if (r_) PQclear(r_);
}
int Result::rows() const { return PQntuples(r_); }
std::int64_t Result::affected() const {
  const char* n = PQcmdTuples(r_);
  std::int64_t v = 0;
  if (n && *n) std::from_chars(n, n + std::strlen(n), v);
  return v;
}
bool Result::null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
std::string_view Result::text(int row, int col) const {
  return std::string_view(PQgetvalue(r_, row, col),
                          static_cast<std::size_t>(PQgetlength(r_, row, col)));
}
std::int64_t Result::i64(int row, int col) const {
  std::string_view t = text(row, col);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size()) {
    throw StoreError(StoreError::Kind::kCorrupt, "not an integer: " + std::string(t));
  }
  return v;
}

Connection::Connection(std::string url) : url_(std::move(url)) {
  conn_ = PQconnectdb(url_.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = Trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw StoreError(StoreError::Kind::kUnavailable,
                     "cannot connect to " + RedactUrlPassword(url_) + ": " + message);
  }
  // Quiet the server's NOTICEs (they would go to stderr).
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

bool Connection::Lost() const { return conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK; }

void Connection::EnsureOpen() {
  if (!Lost()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_reconnect_) {
    throw StoreError(StoreError::Kind::kUnavailable,
                     "database " + RedactUrlPassword(url_) + " unavailable (reconnecting)");
  }
  prepared_.clear();
  prepared_in_pipeline_.clear();
  sent_.clear();
  pipeline_ = false;
  if (conn_) {
    PQreset(conn_);
  } else {
    conn_ = PQconnectdb(url_.c_str());
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    next_reconnect_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
    throw StoreError(
        StoreError::Kind::kUnavailable,
        "cannot connect to " + RedactUrlPassword(url_) + ": " + Trimmed(PQerrorMessage(conn_)));
  }
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  backoff_ = std::chrono::milliseconds(100);
}

StatementError Connection::Failure(pg_result* r, const std::string& what) const {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  std::string message = r ? Trimmed(PQresultErrorMessage(r)) : "";
  if (message.empty()) message = Trimmed(PQerrorMessage(conn_));
  if (sqlstate.empty() && !Lost()) sqlstate = "XX000";
  std::string head = what.substr(0, 60);
  return StatementError(KindOf(sqlstate), message + " [" + head + "]", sqlstate);
}

const std::string& Connection::PreparedName(const std::string& sql) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) return it->second;
  // Never reused, not even for a statement forgotten after a failed pipeline (it may exist).
  std::string name = "s" + std::to_string(++statements_named_);
  if (pipeline_) {
    if (!PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr)) throw Failure(nullptr, sql);
    sent_.push_back(sql);
    prepared_in_pipeline_.push_back(sql);
  } else {
    Result r(PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
    if (!Ok(r.get())) throw Failure(r.get(), sql);
  }
  return prepared_.emplace(sql, std::move(name)).first->second;
}

void Connection::EnterPipeline() {
  if (pipeline_) return;
  if (!PQenterPipelineMode(conn_)) throw Failure(nullptr, "pipeline");
  pipeline_ = true;
}

void Connection::Queue(const std::string& sql, const Params& params) {
  EnterPipeline();
  std::vector<const char*> values = params.Pointers();
  int sent;
  if (params.size() == 0) {
    sent = PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
  } else {
    const std::string& name = PreparedName(sql);
    sent =
        PQsendQueryPrepared(conn_, name.c_str(), params.size(), values.data(), nullptr, nullptr, 0);
  }
  if (!sent) throw Failure(nullptr, sql);
  sent_.push_back(sql);
}

Result Connection::Exec(const std::string& sql, const Params& params) {
  if (pipeline_) {
    Queue(sql, params);
    // Read everything up to the sync; the last statement's result is the answer.
    if (!PQpipelineSync(conn_)) throw Failure(nullptr, sql);
    std::optional<StatementError> first;
    pg_result* last = nullptr;
    for (std::size_t i = 0; i < sent_.size(); ++i) {
      const bool is_last = i + 1 == sent_.size();
      while (pg_result* r = PQgetResult(conn_)) {
        if (!Ok(r) && !first) first = Failure(r, sent_[i]);
        if (is_last && !last) {
          last = r;
        } else {
          PQclear(r);
        }
      }
    }
    Result answer(last);
    DrainPipeline();  // the sync
    if (first) {
      ForgetPipelinePrepares();
      throw *first;
    }
    prepared_in_pipeline_.clear();
    return answer;
  }
  std::vector<const char*> values = params.Pointers();
  pg_result* r;
  if (params.size() == 0) {
    r = PQexecParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
  } else {
    const std::string& name = PreparedName(sql);
    r = PQexecPrepared(conn_, name.c_str(), params.size(), values.data(), nullptr, nullptr, 0);
  }
  Result answer(r);
  if (!Ok(r)) throw Failure(r, sql);
  return answer;
}

void Connection::Flush() {
  if (!pipeline_) return;
  if (!PQpipelineSync(conn_)) throw Failure(nullptr, "sync");
  std::optional<StatementError> first;
  for (const std::string& sql : sent_) {
    while (pg_result* r = PQgetResult(conn_)) {
      if (!Ok(r) && !first) first = Failure(r, sql);
      PQclear(r);
    }
  }
  DrainPipeline();
  if (first) {
    ForgetPipelinePrepares();
    throw *first;
  }
  prepared_in_pipeline_.clear();
}

void Connection::ForgetPipelinePrepares() {
  // A failure aborts the rest of the pipeline, its PREPAREs too: make them again next time.
  for (const std::string& sql : prepared_in_pipeline_) prepared_.erase(sql);
  prepared_in_pipeline_.clear();
}

void Connection::DrainPipeline() {
  sent_.clear();
  // The sync's own result, then leave pipeline mode. A lost connection ends it anyway.
  pg_result* sync = PQgetResult(conn_);
  const bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  if (sync) PQclear(sync);
  if (!synced || !PQexitPipelineMode(conn_)) {
    pipeline_ = false;
    if (!Lost()) PQreset(conn_);  // a pipeline out of step: start over with a clean session
    prepared_.clear();
    prepared_in_pipeline_.clear();
    throw StoreError(StoreError::Kind::kUnavailable,
                     "lost step with the database: " + Trimmed(PQerrorMessage(conn_)));
  }
  pipeline_ = false;
}

void Connection::Run(const std::string& sql) {
  Flush();
  Result r(PQexec(conn_, sql.c_str()));
  if (!Ok(r.get())) throw Failure(r.get(), sql);
}

int Connection::TakeNotifications() {
  if (Lost()) return 0;
  PQconsumeInput(conn_);
  int count = 0;
  while (PGnotify* n = PQnotifies(conn_)) {
    ++count;
    PQfreemem(n);
  }
  return count;
}

int Connection::Socket() const { return conn_ ? PQsocket(conn_) : -1; }

}  // namespace allocation_relay::postgresql
