// The real binaries as processes: flags, config checking, start-up and signals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "allocation_relay/store.h"
#include "allocation_relay/version.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/test_database.h"

namespace allocation_relay {
namespace {

using namespace std::chrono_literals;
using testing::CommandResult;
using ::testing::HasSubstr;
using testing::Process;
using testing::RunCommand;
using testing::TempDir;

class Binaries : public ::testing::TestWithParam<const char*> {
 protected:
  std::string Binary() const { return GetParam(); }
  std::string Config(const std::string& extra = "") const {
    return dir_.Write("relay.yaml",
                      "timezone: Europe/Stockholm\n"
                      "store: " +
                          testing::StoreYaml(database_.options(), "path: relay.db") +
                          "\n"
                          "api: {listen: '127.0.0.1:0'}\n"
                          "dispatcher: {listen: '127.0.0.1:0'}\n"
                          "warehouses:\n  - {id: 3, name: Amsterdam}\n" +
                          extra);
  }
  TempDir dir_;
  testing::TestDatabase database_{dir_};
};

TEST_P(Binaries, VersionNamesTheProductAndVersion) {
  CommandResult r = RunCommand({Binary(), "--version"}, dir_.path());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("allocation-relay"));
  EXPECT_THAT(r.out, HasSubstr(kVersion));
}

TEST_P(Binaries, HelpListsTheFlags) {
  CommandResult r = RunCommand({Binary(), "--help"}, dir_.path());
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--config", "--check-config", "--version", "--help"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
}

TEST_P(Binaries, CheckConfigAcceptsTheShippedSample) {
  CommandResult r =
      RunCommand({Binary(), "--check-config", "--config", SAMPLE_CONFIG}, dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("configuration OK"));
}

TEST_P(Binaries, CheckConfigRejectsABadFileWithOneLineNamingTheKey) {
  std::string path = dir_.Write("bad.yaml",
                                "warehouses:\n  - {id: 3, name: A}\n"
                                "  - {id: 3, name: B}\n");
  CommandResult r = RunCommand({Binary(), "--check-config", "--config", path}, dir_.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, path + ":3: warehouses[1].id: duplicate warehouse id 3\n");
}

TEST_P(Binaries, StartUpWithABadConfigFailsWithOneLine) {
  std::string path = Config("rules:\n  r: [[9]]\n");
  CommandResult r = RunCommand({Binary(), "--config", path}, dir_.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("rules.r[0][0]: unknown warehouse id 9"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_P(Binaries, MissingConfigFileIsOneClearLine) {
  CommandResult r = RunCommand({Binary(), "--config", dir_.File("nope.yaml")}, dir_.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("nope.yaml: cannot read the config file"));
}

TEST_P(Binaries, OpensTheDatabaseAndStopsCleanlyOnSigterm) {
  Process p({Binary(), "--config", Config()}, dir_.path());
  ASSERT_TRUE(testing::WaitFor([&] { return p.Stderr().find("ready") != std::string::npos; }, 10s))
      << p.Stderr();
  // The database exists and is migrated.
  StoreOptions options = database_.options();
  options.synchronous = SynchronousMode::kFull;
  auto store = Store::Open(options);
  EXPECT_EQ(*store->SchemaVersion(), Store::LatestSchemaVersion());
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(10s), 0) << p.Stderr();
}

TEST_P(Binaries, SigintAlsoStopsWithStatusZero) {
  Process p({Binary(), "--config", Config()}, dir_.path());
  ASSERT_TRUE(testing::WaitFor([&] { return p.Stderr().find("ready") != std::string::npos; }, 10s));
  p.Signal(SIGINT);
  EXPECT_EQ(p.Wait(10s), 0);
}

TEST_P(Binaries, SighupWithAnInvalidConfigKeepsRunningOnTheOldOne) {
  std::string path = Config();
  Process p({Binary(), "--config", path}, dir_.path());
  ASSERT_TRUE(testing::WaitFor([&] { return p.Stderr().find("ready") != std::string::npos; }, 10s));
  dir_.Write("relay.yaml", "warehouses: [{id: x}]\n");
  p.Signal(SIGHUP);
  ASSERT_TRUE(
      testing::WaitFor([&] { return p.Stderr().find("reload failed") != std::string::npos; }, 10s))
      << p.Stderr();
  EXPECT_THAT(p.Stderr(), HasSubstr("warehouses[0].id: expected an integer"));
  EXPECT_TRUE(p.Running());
  Config();  // a valid file again
  p.Signal(SIGHUP);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return p.Stderr().find("configuration reloaded") != std::string::npos; }, 10s))
      << p.Stderr();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(10s), 0);
}

TEST_P(Binaries, BothProcessesShareOneDatabaseFile) {
  std::string path = Config();
  Process a({Binary(), "--config", path}, dir_.path());
  Process b(
      {std::string(Binary()) == API_BINARY ? DISPATCHER_BINARY : API_BINARY, "--config", path},
      dir_.path());
  auto ready = [](Process& p) { return p.Stderr().find("ready") != std::string::npos; };
  ASSERT_TRUE(testing::WaitFor([&] { return ready(a) && ready(b); }, 10s))
      << a.Stderr() << b.Stderr();
  a.Signal(SIGTERM);
  b.Signal(SIGTERM);
  EXPECT_EQ(a.Wait(10s), 0);
  EXPECT_EQ(b.Wait(10s), 0);
}

// systemd's Type=notify: READY=1 arrives only once the database is open and the port answers;
// SIGHUP brings RELOADING=1 then READY=1 again, SIGTERM STOPPING=1. The test plays systemd's
// part with a datagram socket named in NOTIFY_SOCKET.
TEST_P(Binaries, TellsTheServiceManagerWhenReadyReloadingAndStopping) {
  std::string socket_path = dir_.File("notify.sock");
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto next_message = [&]() -> std::string {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) return "(none within 10 s)";
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  };
  setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
  Process p({Binary(), "--config", Config()}, dir_.path());
  unsetenv("NOTIFY_SOCKET");

  EXPECT_THAT(next_message(), HasSubstr("READY=1"));
  // By now the database exists at its latest schema and the listening port answers.
  StoreOptions further = database_.options();
  further.create_and_migrate = false;
  auto store = Store::Open(further);
  EXPECT_EQ(*store->SchemaVersion(), Store::LatestSchemaVersion());
  std::string err = p.Stderr();
  std::size_t at = err.find("127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << err;
  int port = std::atoi(err.c_str() + at + 10);
  CommandResult health = RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     "http://127.0.0.1:" + std::to_string(port) + "/health"},
                                    dir_.path());
  EXPECT_EQ(health.out, "200");

  p.Signal(SIGHUP);
  EXPECT_THAT(next_message(), HasSubstr("RELOADING=1"));
  EXPECT_THAT(next_message(), HasSubstr("READY=1"));
  p.Signal(SIGTERM);
  EXPECT_THAT(next_message(), HasSubstr("STOPPING=1"));
  EXPECT_EQ(p.Wait(10s), 0);
  close(fd);
}

INSTANTIATE_TEST_SUITE_P(Both, Binaries, ::testing::Values(DISPATCHER_BINARY, API_BINARY),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param).ends_with("allocation-api")
                                      ? std::string("Api")
                                      : std::string("Dispatcher");
                         });

}  // namespace
}  // namespace allocation_relay
