// Tests of daemon/local_executor: ProcessStartTicks, the start time that,
// with the pid, identifies an attempt's process across a daemon restart (the
// command name in /proc/PID/stat may hold spaces and ')', which must not shift
// the fields); and where the exec helper spoold-exec is looked for, and which
// one is refused.
#include "daemon/local_executor.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "test_files.h"

using namespace spoold;

namespace {

// Field 22 of /proc/PID/stat, read the slow, obvious way.
std::string StartField(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) rest >> field;
  return field;
}

}  // namespace

TEST_CASE("ProcessStartTicks: field 22, whatever the command name holds") {
  auto mine = ProcessStartTicks(::getpid());
  REQUIRE(mine.has_value());
  CHECK(std::to_string(*mine) == StartField(::getpid()));

  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::prctl(PR_SET_NAME, "a) 1 2 (b) 3", 0, 0, 0);
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  auto theirs = ProcessStartTicks(child);
  REQUIRE(theirs.has_value());
  CHECK(std::to_string(*theirs) == StartField(child));
  CHECK(*theirs >= *mine);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  // Reaped: gone.
  CHECK_FALSE(ProcessStartTicks(child).has_value());
}

TEST_CASE("FindExecHelper: the first candidate that exists, checked, else every place named") {
  testfiles::TempDir dir;
  const std::string beside = dir / "spoold-exec";
  const std::string installed = dir / "libexec-spoold-exec";

  auto none = FindExecHelper({beside, installed});
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message.find(beside) != std::string::npos);
  CHECK(none.error().message.find(installed) != std::string::npos);

  testfiles::WriteFile(installed, "#!/bin/sh\n");
  ::chmod(installed.c_str(), 0755);
  auto found = FindExecHelper({beside, installed});
  REQUIRE(found.ok());
  CHECK(*found == installed);

  // The first one wins once it exists, and must be usable: no silent fallback
  // to another copy (of another version, say).
  testfiles::WriteFile(beside, "#!/bin/sh\n");
  ::chmod(beside.c_str(), 0644);
  auto not_executable = FindExecHelper({beside, installed});
  REQUIRE_FALSE(not_executable.ok());
  CHECK(not_executable.error().message.find(beside + " is not an executable file") != std::string::npos);
  ::chmod(beside.c_str(), 0755);
  CHECK(*FindExecHelper({beside, installed}) == beside);

  if (::geteuid() == 0) {
    // As root every job passes through it: a helper others may write is refused.
    ::chmod(beside.c_str(), 0775);
    auto writable = FindExecHelper({beside, installed});
    REQUIRE_FALSE(writable.ok());
    CHECK(writable.error().message.find("writable by nobody else") != std::string::npos);
    ::chmod(beside.c_str(), 0755);
    REQUIRE(::chown(beside.c_str(), 65534, 65534) == 0);
    CHECK_FALSE(FindExecHelper({beside, installed}).ok());
  }
}

TEST_CASE("ExecHelperCandidates: beside this program first, then the install's libexec folder") {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(n > 0);
  std::string dir(self, static_cast<size_t>(n));
  dir.erase(dir.rfind('/') + 1);
  auto candidates = ExecHelperCandidates();
  REQUIRE(candidates.size() == 2);
  CHECK(candidates[0] == dir + "spoold-exec");
  CHECK(candidates[1] == dir + "../libexec/spoold/spoold-exec");
}
