// The ends of jobs removed by retention (spool/tombstones.cpp): remembered
// across a restart, expired after their time, and a damaged file read for what
// it still holds.
#include "spool/tombstones.h"

#include <doctest/doctest.h>

#include <sstream>

#include "test_files.h"

using namespace spoold;
using namespace std::chrono_literals;
using testfiles::TempDir;

namespace {

const TimePoint kT0 = TimePoint(std::chrono::milliseconds(1'800'000'000'000));

// Lines with an entry (a Bury starts with a newline of its own).
size_t Lines(const std::string& path) {
  std::istringstream in(testfiles::ReadFile(path));
  size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

}  // namespace

TEST_CASE("tombstones: buried ends are found again after a restart") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  {
    Tombstones t(path, 24h);
    REQUIRE(t.Open(kT0).ok());  // no file yet
    CHECK_FALSE(t.Find("a", kT0).has_value());
    REQUIRE(t.Bury({{"a", JobState::kSucceeded, Reason::kNone, kT0 - 1h},
                    {"b", JobState::kFailed, Reason::kNonzeroExit, kT0 - 2h}},
                   kT0)
                .ok());
    REQUIRE(t.Bury({{"c", JobState::kCancelled, Reason::kCancelledByUser, kT0}}, kT0).ok());
    CHECK(t.Find("b", kT0)->state == JobState::kFailed);
  }
  Tombstones again(path, 24h);
  REQUIRE(again.Open(kT0 + 1min).ok());
  CHECK(again.size() == 3);
  REQUIRE(again.Find("a", kT0).has_value());
  CHECK(again.Find("a", kT0)->state == JobState::kSucceeded);
  CHECK(again.Find("a", kT0)->finished == kT0 - 1h);
  CHECK(again.Find("c", kT0)->state == JobState::kCancelled);
  CHECK(again.Find("b", kT0)->reason == Reason::kNonzeroExit);
  CHECK(again.Find("a", kT0)->reason == Reason::kNone);
  CHECK_FALSE(again.Find("d", kT0).has_value());
}

TEST_CASE("tombstones: expired ones are forgotten and the file written without them") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  {
    Tombstones t(path, 24h);
    REQUIRE(t.Open(kT0).ok());
    REQUIRE(t.Bury({{"old", JobState::kSucceeded, Reason::kNone, kT0 - 20h},
                    {"new", JobState::kFailed, Reason::kNonzeroExit, kT0}},
                   kT0)
                .ok());
  }
  CHECK(Lines(path) == 2);
  {
    // Expired while the daemon runs: no longer found, before any rewrite.
    Tombstones running(path, 24h);
    REQUIRE(running.Open(kT0).ok());
    CHECK(running.Find("old", kT0 + 3h).has_value());
    CHECK_FALSE(running.Find("old", kT0 + 5h).has_value());
  }
  Tombstones later(path, 24h);
  REQUIRE(later.Open(kT0 + 5h).ok());
  CHECK_FALSE(later.Find("old", kT0).has_value());
  CHECK(later.Find("new", kT0).has_value());
  CHECK(Lines(path) == 1);
  // keep = 0: for ever.
  Tombstones forever(path, 0ms);
  REQUIRE(forever.Open(kT0 + 24h * 3650).ok());
  CHECK(forever.Find("new", kT0).has_value());
}

TEST_CASE("tombstones: a torn last line and foreign lines are dropped, the rest kept") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  testfiles::WriteFile(
      path,
      "{\"id\":\"good\",\"state\":\"failed\",\"finished\":\"2027-01-15T08:00:00.000Z\"}\n"
      "not json\n"
      "{\"id\":5,\"state\":[],\"finished\":{}}\n"
      "{\"id\":\"typed\",\"state\":7,\"finished\":\"2027-01-15T08:00:00.000Z\"}\n"
      "{\"id\":\"../x\",\"state\":\"failed\",\"finished\":\"2027-01-15T08:00:00.000Z\"}\n"
      "{\"id\":\"running\",\"state\":\"running\",\"finished\":\"2027-01-15T08:00:00.000Z\"}\n"
      "{\"id\":\"torn\",\"state\":\"succ");
  Tombstones t(path, 0ms);
  REQUIRE(t.Open(kT0).ok());
  CHECK(t.size() == 1);
  CHECK(t.Find("good", kT0)->state == JobState::kFailed);
  CHECK_FALSE(t.Find("torn", kT0).has_value());
  CHECK(Lines(path) == 1);
}

TEST_CASE("tombstones: an id buried again keeps its latest end") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  Tombstones t(path, 0ms);
  REQUIRE(t.Open(kT0).ok());
  REQUIRE(t.Bury({{"x", JobState::kFailed, Reason::kNonzeroExit, kT0}}, kT0).ok());
  REQUIRE(t.Bury({{"x", JobState::kSucceeded, Reason::kNone, kT0 + 1h}}, kT0 + 1h).ok());
  CHECK(t.Find("x", kT0)->state == JobState::kSucceeded);
  Tombstones again(path, 0ms);
  REQUIRE(again.Open(kT0 + 2h).ok());
  CHECK(again.Find("x", kT0)->state == JobState::kSucceeded);
  CHECK(Lines(path) == 1);  // the older line went when the file was read
}
