#include "spool/time_util.h"

#include <doctest/doctest.h>

using namespace spoold;

namespace {

TimePoint At(const char* text) {
  auto t = ParseTime(text);
  REQUIRE(t.has_value());
  return *t;
}

}  // namespace

TEST_CASE("message times: the time of day alone on now's UTC day, the date as well on any other") {
  struct {
    const char* when;
    const char* now;
    const char* expected;
  } cases[] = {
      // The same day, later or earlier.
      {"2026-12-04T21:10:18.900Z", "2026-12-04T10:00:00Z", "21:10:18 UTC"},
      {"2026-12-04T00:00:00Z", "2026-12-04T23:59:59.999Z", "00:00:00 UTC"},
      // The next day, even less than a day away: across midnight UTC.
      {"2026-12-05T00:00:00Z", "2026-12-04T23:59:59.999Z", "2026-12-05 00:00:00 UTC"},
      {"2026-12-05T21:10:18Z", "2026-12-04T10:00:00Z", "2026-12-05 21:10:18 UTC"},
      // Two days away; a year later on the same date and time of day.
      {"2026-12-06T21:10:18Z", "2026-12-04T10:00:00Z", "2026-12-06 21:10:18 UTC"},
      {"2027-12-04T10:00:00Z", "2026-12-04T10:00:00Z", "2027-12-04 10:00:00 UTC"},
      // A day before now (a clock set back) is dated too.
      {"2026-12-03T23:59:59Z", "2026-12-04T00:00:00Z", "2026-12-03 23:59:59 UTC"},
      // Across a year's end, and before 1970.
      {"2027-01-01T00:00:01Z", "2026-12-31T23:59:59Z", "2027-01-01 00:00:01 UTC"},
      {"1969-12-31T23:59:59.500Z", "1969-12-31T00:00:00Z", "23:59:59 UTC"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.when);
    CAPTURE(c.now);
    CHECK(FormatMessageTime(At(c.when), At(c.now)) == c.expected);
  }
}
