// Racing writers from separate processes on one database file: exactly one confirm wins.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "allocation_relay/render.h"
#include "support/store_fixture.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using testing::StoreTest;

constexpr int kWon = 10;
constexpr int kLostOutdated = 20;
constexpr int kOtherOutcome = 30;
constexpr int kError = 40;

// Forks a child that opens its own Store, reports readiness on `ready`, waits for a byte on
// `go`, then runs `action` and exits with its code. Nothing of gtest runs in the child.
template <typename Action>
pid_t ForkRacer(const StoreOptions& options, int ready, int go, Action action) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int code = kError;
  try {
    std::unique_ptr<Store> store = Store::Open(options);
    char byte = 'r';
    if (write(ready, &byte, 1) != 1) _exit(kError);
    if (read(go, &byte, 1) != 1) _exit(kError);
    code = action(*store);
  } catch (...) {
    code = kError;
  }
  _exit(code);
}

int ExitCode(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int ConfirmCode(Store& store, std::int64_t request_id, TimePoint now) {
  auto r = store.ConfirmRequest(request_id, {}, now);
  if (!r) return kError;
  if (r->outcome == UpdateResult::Outcome::kUpdated) return kWon;
  if (r->outcome == UpdateResult::Outcome::kWrongStatus && r->status == RequestStatus::kOutdated) {
    return kLostOutdated;
  }
  return kOtherOutcome;
}

using StoreRace = StoreTest;

TEST_F(StoreRace, TwoProcessesConfirmingOneSharedGroupHaveExactlyOneWinner200Times) {
  constexpr int kRounds = 200;
  int wins_by_3 = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::int64_t order = 1000 + round;
    Create(order, {{3, 4}, {7}});
    std::int64_t r3 = RequestOf(order, 3).id, r4 = RequestOf(order, 4).id;
    int ready[2], go[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(go), 0);
    TimePoint now = clock_.Now();
    pid_t a =
        ForkRacer(Options(), ready[1], go[0], [&](Store& s) { return ConfirmCode(s, r3, now); });
    pid_t b =
        ForkRacer(Options(), ready[1], go[0], [&](Store& s) { return ConfirmCode(s, r4, now); });
    char byte;
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    ASSERT_EQ(write(go[1], "gg", 2), 2);  // release both at once
    int code_a = ExitCode(a), code_b = ExitCode(b);
    for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);

    ASSERT_TRUE((code_a == kWon && code_b == kLostOutdated) ||
                (code_a == kLostOutdated && code_b == kWon))
        << "round " << round << ": " << code_a << " / " << code_b;
    std::int64_t winner = code_a == kWon ? 3 : 4;
    std::int64_t loser = winner == 3 ? 4 : 3;
    wins_by_3 += winner == 3;
    Allocation alloc = Get(order);
    ASSERT_EQ(alloc.state, AllocationState::kConfirmed);
    ASSERT_EQ(alloc.confirmed_warehouse_id, winner);
    ASSERT_EQ(RequestOf(order, winner).status, RequestStatus::kConfirmed);
    ASSERT_EQ(RequestOf(order, loser).status, RequestStatus::kOutdated);
    ASSERT_FALSE(HasRequest(order, 7));
  }
  // Informational: who wins depends on scheduling; both sides are expected to win sometimes.
  std::printf("warehouse 3 won %d of %d rounds\n", wins_by_3, kRounds);
  EXPECT_TRUE(*store_->IntegrityCheck());
}

// A confirm racing a late delivery outcome from the dispatcher process: the final status
// survives whichever commits first.
TEST_F(StoreRace, LateSentFromAnotherProcessNeverOverwritesConfirmed) {
  for (int round = 0; round < 50; ++round) {
    std::int64_t order = 2000 + round;
    Create(order, {{3}});
    std::int64_t r3 = RequestOf(order, 3).id;
    int ready[2], go[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(go), 0);
    TimePoint now = clock_.Now();
    pid_t confirmer =
        ForkRacer(Options(), ready[1], go[0], [&](Store& s) { return ConfirmCode(s, r3, now); });
    pid_t sender = ForkRacer(Options(), ready[1], go[0], [&](Store& s) {
      std::vector<std::int64_t> ids{r3};
      return s.MarkSent(ids, now).has_value() ? 0 : kError;
    });
    char byte;
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    ASSERT_EQ(write(go[1], "gg", 2), 2);
    ASSERT_EQ(ExitCode(confirmer), kWon);
    ASSERT_EQ(ExitCode(sender), 0);
    for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
    ASSERT_EQ(RequestOf(order, 3).status, RequestStatus::kConfirmed) << "round " << round;
  }
}

// Threads of one process write through one group commit: every write gets its own outcome, a
// write that fails half-way (a warehouse whose timeout would expire the request before it was
// made breaks a CHECK after the allocation row was inserted) leaves nothing behind, and the
// others of its batch are kept.
TEST_F(StoreRace, GroupedWritesFromManyThreadsKeepTheirOwnOutcomes) {
  constexpr int kThreads = 8, kPerThread = 60;
  std::atomic<int> created{0}, failed{0}, other{0};
  WarehouseCatalog broken_catalog(
      {{3, "Amsterdam", -std::chrono::hours(1)}, {4, "Tokyo", std::chrono::hours(1)}});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Store> store = Store::Open(Options());
      for (int i = 0; i < kPerThread; ++i) {
        std::int64_t number = 10000 + t * 1000 + i;
        bool broken = i % 5 == 0;
        NewAllocation a{{"ab", number}, {{1, 1, 1}}, {{4, 3}}};
        auto r = store->CreateAllocation(a, clock_.Now(), broken ? broken_catalog : catalog_);
        if (r && r->outcome == CreateResult::Outcome::kCreated && !broken) {
          ++created;
        } else if (!r && broken) {
          ++failed;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), kThreads * kPerThread * 4 / 5);
  EXPECT_EQ(failed.load(), kThreads * kPerThread / 5);
  EXPECT_EQ(other.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto a = store_->GetAllocationByOrder(10000 + t * 1000 + i);
      ASSERT_TRUE(a.has_value());
      if (i % 5 == 0) {
        EXPECT_FALSE(a->has_value()) << "a failed write left its allocation behind";
      } else {
        ASSERT_TRUE(a->has_value());
        EXPECT_EQ((*a)->requests.size(), 2u);
      }
    }
  }
  RequestQuery all;
  all.limit = 100000;
  EXPECT_EQ(store_->ListRequests(all)->size(), static_cast<std::size_t>(created.load()) * 2);
  EXPECT_EQ(store_->ListUnbatchedEvents(std::nullopt, 100000)->size(),
            static_cast<std::size_t>(created.load()) * 2);
}

// The same orders sent by many threads at once (a client retrying on several connections):
// each order gets exactly one allocation, its requests and create events once, and every other
// attempt answers "duplicate" (on PostgreSQL the later inserts wait for the first one's commit,
// then do nothing).
TEST_F(StoreRace, ConcurrentIntakesOfOneOrderCreateItOnce) {
  constexpr int kThreads = 6, kOrders = 40;
  std::atomic<int> created{0}, duplicates{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::unique_ptr<Store> store = Store::Open(Options());
      for (int i = 0; i < kOrders; ++i) {
        NewAllocation a{{"ab", 20000 + i}, {{1, 1, 1}}, {{4, 3}}};
        auto r = store->CreateAllocation(a, clock_.Now(), catalog_);
        if (r && r->outcome == CreateResult::Outcome::kCreated) {
          ++created;
        } else if (r && r->outcome == CreateResult::Outcome::kDuplicateOrder) {
          ++duplicates;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), kOrders);
  EXPECT_EQ(duplicates.load(), (kThreads - 1) * kOrders);
  EXPECT_EQ(other.load(), 0);
  RequestQuery all;
  all.limit = 100000;
  EXPECT_EQ(store_->ListRequests(all)->size(), static_cast<std::size_t>(kOrders) * 2);
  EXPECT_EQ(store_->ListUnbatchedEvents(std::nullopt, 100000)->size(),
            static_cast<std::size_t>(kOrders) * 2);
}

// SQLite: full.db under synchronous FULL; PostgreSQL: a database of the test's own.
StoreOptions FullOptions(const testing::TestDatabase& database) { return database.options(); }

// The group commit under synchronous FULL (the production setting, where the writer connection
// gathers each commit's log writes and a checkpointer thread copies the log meanwhile): threads
// creating, confirming and rejecting at once each get their own outcome, while another thread
// reads; the log is checkpointed many times over and the file stays intact.
TEST(WriteGroupFull, ConcurrentWritesAndReadsKeepTheirOutcomesThroughManyCheckpoints) {
  testing::TempDir dir;
  testing::TestDatabase database(dir, "full.db", SynchronousMode::kFull);
  const StoreOptions options = FullOptions(database);
  std::unique_ptr<Store> main = Store::Open(options);
  WarehouseCatalog catalog({{3, "Amsterdam", std::chrono::hours(1)},
                            {4, "Tokyo", std::chrono::hours(1)},
                            {7, "Central", std::chrono::hours(2)}});
  const TimePoint now = FromUnixMicros(testing::kStartMicros);
  constexpr int kThreads = 8, kPerThread = 150;
  std::atomic<int> failures{0};
  std::atomic<bool> writing{true};
  std::thread reader([&] {
    std::unique_ptr<Store> store = Store::Open(options);
    while (writing) {
      RequestQuery q;
      q.limit = 100;
      if (!store->ListRequests(q)) ++failures;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Store> store = Store::Open(options);
      for (int i = 0; i < kPerThread; ++i) {
        const std::int64_t number = 1 + t * 10000 + i;
        NewAllocation a{{"ab", number}, {{1, 1, 1}}, {{3, 4}, {7}}};
        auto created = store->CreateAllocation(a, now, catalog);
        if (!created || created->outcome != CreateResult::Outcome::kCreated ||
            created->allocation.requests.size() != 2) {
          ++failures;
          continue;
        }
        const auto& requests = created->allocation.requests;
        // Even: confirm the first request. Odd: reject both, which moves the flow to group 1.
        if (i % 2 == 0) {
          auto r = store->ConfirmRequest(requests[0].id, {}, now);
          if (!r || r->outcome != UpdateResult::Outcome::kUpdated) ++failures;
        } else {
          for (const AllocationRequest& request : requests) {
            auto r = store->RejectRequest(request.id, {}, now, catalog);
            if (!r || r->outcome != UpdateResult::Outcome::kUpdated) ++failures;
          }
        }
        // A second confirm of a request that is no longer pending is refused.
        auto again = store->ConfirmRequest(requests[1].id, {}, now);
        if (!again || again->outcome != UpdateResult::Outcome::kWrongStatus) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  writing = false;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto a = main->GetAllocationByOrder(1 + t * 10000 + i);
      ASSERT_TRUE(a && *a);
      const Allocation& allocation = **a;
      if (i % 2 == 0) {
        EXPECT_EQ(allocation.state, AllocationState::kConfirmed);
        ASSERT_EQ(allocation.requests.size(), 2u);
        EXPECT_EQ(allocation.requests[0].status, RequestStatus::kConfirmed);
        EXPECT_EQ(allocation.requests[1].status, RequestStatus::kOutdated);
      } else {
        EXPECT_EQ(allocation.state, AllocationState::kOpen);
        EXPECT_EQ(allocation.current_group, 1);
        ASSERT_EQ(allocation.requests.size(), 3u);
        EXPECT_EQ(allocation.requests[2].warehouse_id, 7);
        EXPECT_EQ(allocation.requests[2].status, RequestStatus::kAllocated);
      }
    }
  }
  // Every write went through the group: a create, a confirm or two rejects, a refused confirm.
  WriteGroupStats stats = main->GroupStats();
  EXPECT_EQ(stats.writes, static_cast<std::uint64_t>(kThreads * (kPerThread * 3 + kPerThread / 2)));
  EXPECT_LE(stats.commits, stats.writes);
  EXPECT_GT(stats.checkpoints, 0u);
  EXPECT_GT(stats.wal_frames, 8000u);
  EXPECT_TRUE(*main->IntegrityCheck());
}

// Under synchronous FULL too, a write that fails half-way in a batch (a warehouse whose timeout
// would expire the request before it was made breaks a CHECK after the allocation row was
// inserted) leaves nothing behind and the others of its batch are kept.
TEST(WriteGroupFull, AWriteFailingHalfWayLeavesTheOthersOfItsBatchIntact) {
  testing::TempDir dir;
  testing::TestDatabase database(dir, "full.db", SynchronousMode::kFull);
  std::unique_ptr<Store> main = Store::Open(FullOptions(database));
  WarehouseCatalog good({{3, "Amsterdam", std::chrono::hours(1)}});
  WarehouseCatalog broken({{3, "Amsterdam", -std::chrono::hours(1)}});
  const TimePoint now = FromUnixMicros(testing::kStartMicros);
  constexpr int kThreads = 8, kPerThread = 40;
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Store> store = Store::Open(FullOptions(database));
      for (int i = 0; i < kPerThread; ++i) {
        const bool breaks = i % 4 == 0;
        NewAllocation a{{"ab", 1 + t * 1000 + i}, {{1, 1, 1}}, {{3}}};
        auto r = store->CreateAllocation(a, now, breaks ? broken : good);
        if (breaks ? r.has_value() : !r || r->outcome != CreateResult::Outcome::kCreated) {
          ++unexpected;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto a = main->GetAllocationByOrder(1 + t * 1000 + i);
      ASSERT_TRUE(a);
      EXPECT_EQ(a->has_value(), i % 4 != 0) << "order " << 1 + t * 1000 + i;
    }
  }
  EXPECT_EQ(main->ListUnbatchedEvents(std::nullopt, 100000)->size(),
            static_cast<std::size_t>(kThreads * kPerThread * 3 / 4));
  EXPECT_EQ(main->GroupStats().writes, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_TRUE(*main->IntegrityCheck());
}

// A commit larger than what the writer gathers in memory (and than its page cache), among small
// ones: every byte arrives.
TEST(WriteGroupFull, ACommitOfSeveralMegabytesIsWrittenWhole) {
  testing::TempDir dir;
  testing::TestDatabase database(dir, "full.db", SynchronousMode::kFull);
  std::unique_ptr<Store> main = Store::Open(FullOptions(database));
  WarehouseCatalog catalog(
      {{3, "Amsterdam", std::chrono::hours(1)}, {4, "Tokyo", std::chrono::hours(1)}});
  const TimePoint now = FromUnixMicros(testing::kStartMicros);
  std::vector<OrderLine> lines;
  for (std::int64_t i = 1; i <= 40000; ++i) lines.push_back(OrderLine{i, i % 7 + 1, i * 3});
  std::thread small([&] {
    std::unique_ptr<Store> store = Store::Open(FullOptions(database));
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE(store->CreateAllocation({{"ab", 100 + i}, {{1, 1, 1}}, {{3}}}, now, catalog));
    }
  });
  auto big = main->CreateAllocation({{"cd", 1}, lines, {{3, 4}}}, now, catalog);
  small.join();
  ASSERT_TRUE(big);
  main.reset();  // a new connection reads it back from the file
  main = Store::Open(FullOptions(database));
  auto a = main->GetAllocationByOrder(1);
  ASSERT_TRUE(a && *a);
  ASSERT_EQ((*a)->lines.size(), lines.size());
  EXPECT_EQ((*a)->lines.back().stock_item_id, 120000);
  ASSERT_EQ((*a)->requests.size(), 2u);
  EXPECT_EQ(ParseLinesJson((*a)->requests[1].lines_json).size(), lines.size());
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(*main->GetAllocationByOrder(100 + i));
  EXPECT_TRUE(*main->IntegrityCheck());
}

// A process killed (SIGKILL) while its threads write: every write it was told had committed is
// in the file, which is intact.
TEST(WriteGroupFull, EveryWriteAnsweredBeforeAKillIsThereAfterIt) {
  testing::TempDir dir;
  testing::TestDatabase database(dir, "full.db", SynchronousMode::kFull);
  Store::Open(FullOptions(database));  // the schema
  int reported[2];
  ASSERT_EQ(pipe(reported), 0);
  pid_t child = fork();
  if (child == 0) {
    close(reported[0]);
    WarehouseCatalog catalog({{3, "Amsterdam", std::chrono::hours(1)}});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::unique_ptr<Store> store = Store::Open(FullOptions(database));
        for (std::int64_t n = 1 + t * 1000000;; ++n) {
          NewAllocation a{{"ab", n}, {{1, 1, 1}}, {{3}}};
          auto r = store->CreateAllocation(a, FromUnixMicros(testing::kStartMicros), catalog);
          if (!r) _exit(kError);
          if (write(reported[1], &n, sizeof n) != sizeof n) _exit(kError);
        }
      });
    }
    for (auto& t : threads) t.join();
    _exit(0);
  }
  close(reported[1]);
  std::vector<std::int64_t> committed;
  std::int64_t n = 0;
  while (committed.size() < 400 && read(reported[0], &n, sizeof n) == sizeof n) {
    committed.push_back(n);
  }
  kill(child, SIGKILL);
  while (read(reported[0], &n, sizeof n) == sizeof n) committed.push_back(n);
  close(reported[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped before it was killed";
  ASSERT_GE(committed.size(), 400u);
  std::unique_ptr<Store> store = Store::Open(FullOptions(database));
  for (std::int64_t number : committed) {
    auto a = store->GetAllocationByOrder(number);
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->has_value()) << "order " << number << " was answered, then lost";
  }
  EXPECT_TRUE(*store->IntegrityCheck());
}

TEST(StoreMigration, ProcessesOpeningANewFileAtOnceAllSucceed) {
  for (int round = 0; round < 20; ++round) {
    testing::TempDir dir;
    testing::TestDatabase database(dir, "new.db", SynchronousMode::kFull);
    const StoreOptions options = database.options();
    int ready[2], go[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(go), 0);
    std::vector<pid_t> children;
    for (int i = 0; i < 4; ++i) {
      pid_t pid = fork();
      if (pid == 0) {
        char byte = 'r';
        if (write(ready[1], &byte, 1) != 1) _exit(kError);
        if (read(go[0], &byte, 1) != 1) _exit(kError);
        try {
          auto store = Store::Open(options);
          auto v = store->SchemaVersion();
          _exit(v && *v == Store::LatestSchemaVersion() ? 0 : kOtherOutcome);
        } catch (...) {
          _exit(kError);
        }
      }
      children.push_back(pid);
    }
    char byte;
    for (int i = 0; i < 4; ++i) ASSERT_EQ(read(ready[0], &byte, 1), 1);
    ASSERT_EQ(write(go[1], "gggg", 4), 4);
    for (pid_t pid : children) EXPECT_EQ(ExitCode(pid), 0) << "round " << round;
    for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
  }
}

}  // namespace
}  // namespace allocation_relay
