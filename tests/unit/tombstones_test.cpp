// The ends of jobs removed by retention (spool/tombstones.cpp): remembered
// across a restart, expired after their time, and a damaged file read for what
// it still holds.
#include "spool/tombstones.h"

#include <doctest/doctest.h>

#include "test_files.h"

using namespace spoold;
using namespace std::chrono_literals;
using testfiles::TempDir;

namespace {

const TimePoint kT0 = TimePoint(std::chrono::milliseconds(1'800'000'000'000));

size_t Lines(const std::string& path) {
  std::string text = testfiles::ReadFile(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("tombstones: buried ends are found again after a restart") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  {
    Tombstones t(path, 24h);
    REQUIRE(t.Open(kT0).ok());  // no file yet
    CHECK_FALSE(t.Find("a").has_value());
    REQUIRE(t.Bury({{"a", JobState::kSucceeded, kT0 - 1h}, {"b", JobState::kFailed, kT0 - 2h}}, kT0).ok());
    REQUIRE(t.Bury({{"c", JobState::kCancelled, kT0}}, kT0).ok());
    CHECK(t.Find("b")->state == JobState::kFailed);
  }
  Tombstones again(path, 24h);
  REQUIRE(again.Open(kT0 + 1min).ok());
  CHECK(again.size() == 3);
  REQUIRE(again.Find("a").has_value());
  CHECK(again.Find("a")->state == JobState::kSucceeded);
  CHECK(again.Find("a")->finished == kT0 - 1h);
  CHECK(again.Find("c")->state == JobState::kCancelled);
  CHECK_FALSE(again.Find("d").has_value());
}

TEST_CASE("tombstones: expired ones are forgotten and the file written without them") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  {
    Tombstones t(path, 24h);
    REQUIRE(t.Open(kT0).ok());
    REQUIRE(t.Bury({{"old", JobState::kSucceeded, kT0 - 20h}, {"new", JobState::kFailed, kT0}}, kT0).ok());
  }
  CHECK(Lines(path) == 2);
  Tombstones later(path, 24h);
  REQUIRE(later.Open(kT0 + 5h).ok());
  CHECK_FALSE(later.Find("old").has_value());
  CHECK(later.Find("new").has_value());
  CHECK(Lines(path) == 1);
  // keep = 0: for ever.
  Tombstones forever(path, 0ms);
  REQUIRE(forever.Open(kT0 + 24h * 3650).ok());
  CHECK(forever.Find("new").has_value());
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
  CHECK(t.Find("good")->state == JobState::kFailed);
  CHECK_FALSE(t.Find("torn").has_value());
  CHECK(Lines(path) == 1);
}

TEST_CASE("tombstones: an id buried again keeps its latest end") {
  TempDir dir;
  const std::string path = dir / ".tombstones";
  Tombstones t(path, 0ms);
  REQUIRE(t.Open(kT0).ok());
  REQUIRE(t.Bury({{"x", JobState::kFailed, kT0}}, kT0).ok());
  REQUIRE(t.Bury({{"x", JobState::kSucceeded, kT0 + 1h}}, kT0 + 1h).ok());
  CHECK(t.Find("x")->state == JobState::kSucceeded);
  Tombstones again(path, 0ms);
  REQUIRE(again.Open(kT0 + 2h).ok());
  CHECK(again.Find("x")->state == JobState::kSucceeded);
  CHECK(Lines(path) == 1);  // the older line went when the file was read
}
