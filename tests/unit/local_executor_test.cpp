// Tests of ProcessStartTicks (daemon/local_executor): the start time that,
// with the pid, identifies an attempt's process across a daemon restart. The
// command name in /proc/PID/stat may hold spaces and ')', which must not shift
// the fields.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "daemon/local_executor.h"

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
