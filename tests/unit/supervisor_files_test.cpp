// Tests of daemon/supervisor_files: what a daemon reads of a local attempt's
// supervisor. The outcome file (what a supervisor writes, and what a broken or
// newer one may), the lock that says a supervisor lives (held by another
// process, as in real life: a record lock's holder is a process), and the
// leftovers of a job whose supervisor died, where a reused pid is never
// signalled.
#include "daemon/supervisor_files.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "daemon/local_executor.h"
#include "test_files.h"

using namespace spoold;

namespace {

const char* kOutcome =
    R"({"protocol": 2, "supervisor_pid": 10, "job_pid": 11, "started_unix_ms": 1000, "ended_unix_ms": 5000,)"
    R"( "exit_code": null, "signal": 9, "cause": "timeout", "spawn_error": null,)"
    R"( "kills": [{"signal": 15, "unix_ms": 3000, "leftovers": false}, {"signal": 9, "unix_ms": 4000, "leftovers": false}],)"
    R"( "survivors": false, "cpu_user_s": 0.25, "cpu_sys_s": 0.125, "max_rss_kb": 2048})";

// A child that takes the supervisor lock of `dir` and waits until killed;
// returns once the lock is held.
pid_t LockInChild(const std::string& dir) {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = ::open((dir + "/supervisor.lock").c_str(), O_RDWR | O_CREAT, 0644);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    if (fd < 0 || ::fcntl(fd, F_SETLK, &lock) != 0) ::_exit(1);
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
  return pid;
}

void KillAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace

TEST_CASE("ParseOutcome: what the supervisor writes, in the daemon's terms") {
  auto out = ParseOutcome(kOutcome);
  REQUIRE(out.ok());
  CHECK(out->protocol == 2);
  CHECK(!out->end.exit_code);
  CHECK(out->end.signal == 9);
  CHECK(out->end.cause == Reason::kTimeout);
  CHECK(out->end.cpu_user_s == doctest::Approx(0.25));
  CHECK(out->end.max_rss_kb == 2048);
  REQUIRE(out->kills.size() == 2);
  CHECK(out->kills[0].signal == 15);
  CHECK(out->kills[1].at.time_since_epoch().count() == 4000);
  CHECK(!out->spawn_error);
  CHECK(out->ended.time_since_epoch().count() == 5000);
}

TEST_CASE("ParseOutcome: causes, spawn errors, and what it refuses") {
  std::string text = kOutcome;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  CHECK(ParseOutcome(with("\"timeout\"", "\"cancelled\""))->end.cause == Reason::kCancelledByUser);
  CHECK(ParseOutcome(with("\"timeout\"", "\"interrupted\""))->end.cause == Reason::kInterrupted);
  CHECK(ParseOutcome(with("\"timeout\"", "\"none\""))->end.cause == Reason::kNone);
  auto spawn = ParseOutcome(with("\"spawn_error\": null", "\"spawn_error\": {\"stage\": 3, \"errno\": 2}"));
  REQUIRE(spawn.ok());
  CHECK(spawn->spawn_error == std::make_pair(3, 2));
  // A newer supervisor's outcome is not guessed at: the error names both versions.
  auto newer = ParseOutcome(with("\"protocol\": 2", "\"protocol\": 3"));
  REQUIRE(!newer.ok());
  CHECK(newer.error().code == "unknown_protocol");
  CHECK(newer.error().message.find("protocol 3") != std::string::npos);
  CHECK(!ParseOutcome(with("\"signal\": 9", "\"signal\": null")).ok());  // neither exit code nor signal
  CHECK(!ParseOutcome(with("\"cpu_user_s\": 0.25, ", "")).ok());
  CHECK(!ParseOutcome(text.substr(0, text.size() / 2)).ok());  // torn
  CHECK(!ParseOutcome("[]").ok());
}

TEST_CASE("ReadOutcome: none, a good one, a broken one") {
  testfiles::TempDir dir;
  CHECK(!ReadOutcome(dir.path()));
  testfiles::WriteFile(dir / "outcome.json", kOutcome);
  auto good = ReadOutcome(dir.path());
  REQUIRE(good);
  CHECK(good->ok());
  testfiles::WriteFile(dir / "outcome.json", "{");
  auto broken = ReadOutcome(dir.path());
  REQUIRE(broken);
  CHECK(!broken->ok());
}

TEST_CASE("LockHolder and OpenSupervisor: the process that holds the lock, while it lives") {
  testfiles::TempDir dir;
  CHECK(!LockHolder(dir.path()));  // no lock file
  testfiles::WriteFile(dir / "supervisor.lock", "");
  CHECK(!LockHolder(dir.path()));  // nobody holds it
  const pid_t holder = LockInChild(dir.path());
  CHECK(LockHolder(dir.path()) == holder);
  const int pidfd = OpenSupervisor(holder, dir.path());
  CHECK(pidfd >= 0);
  // Another pid (ours) is not the holder: no pidfd for it.
  CHECK(OpenSupervisor(::getpid(), dir.path()) == -1);
  KillAndReap(holder);
  CHECK(!LockHolder(dir.path()));
  CHECK(OpenSupervisor(holder, dir.path()) == -1);
  if (pidfd >= 0) ::close(pidfd);
}

TEST_CASE("StopOrphanedJob: a pid that now belongs to another process is never signalled") {
  // A process of ours stands for "another process that got the job's pid":
  // the recorded start time is not its own.
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t other = ::fork();
  REQUIRE(other >= 0);
  if (other == 0) {
    ::setsid();
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);  // it leads its session now
  ::close(ready[0]);
  auto start = ProcessStartTicks(other);
  REQUIRE(start);
  std::string said = StopOrphanedJob(other, *start + 1);
  CHECK(said.find("another process") != std::string::npos);
  int status = 0;
  CHECK(::waitpid(other, &status, WNOHANG) == 0);  // still alive
  CHECK(::kill(other, 0) == 0);
  // With its real start time it is the job's: its session is killed.
  said = StopOrphanedJob(other, *start);
  CHECK(said.find("were killed") != std::string::npos);
  REQUIRE(::waitpid(other, &status, 0) == other);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}
