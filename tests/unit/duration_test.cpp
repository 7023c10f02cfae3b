#include <doctest/doctest.h>

#include "config/duration.h"

using namespace spoold;
using namespace std::chrono_literals;

TEST_CASE("durations parse in every documented form") {
  struct {
    const char* text;
    Millis expected;
  } cases[] = {{"250ms", 250ms}, {"30s", 30s},   {"5m", 5min},        {"2h", 2h},
               {"1d", 24h},      {"1h30m", 90min}, {"0", 0ms},        {"90", 90s},
               {"1.5", 1500ms},  {"1d2h3m4s5ms", 24h + 2h + 3min + 4s + 5ms}};
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto d = ParseDuration(c.text);
    REQUIRE(d.ok());
    CHECK(*d == c.expected);
  }
}

TEST_CASE("bad durations are refused with the reason") {
  struct {
    const char* text;
    const char* why;
  } cases[] = {{"", "empty"},
               {"5x", "unknown unit"},
               {"m5", "expected a number"},
               {"5", nullptr},
               {"30m1h", "largest to smallest"},
               {"1s1s", "largest to smallest"},
               {"5 m", "unit is missing"},
               {"99999999999d", "too long"},
               // Under the digit limit, but 1631452241920 * 86400000 overflows
               // 64 bits (found by the job_toml fuzzer).
               {"1631452241920d", "too long"},
               {"36500d", nullptr},
               {"36500d1ms", "too long"},
               {"36501d", "too long"},
               {"-5s", "expected a number"},
               {"1000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "out of range"}};
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto d = ParseDuration(c.text);
    if (c.why == nullptr) {
      CHECK(d.ok());
      continue;
    }
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().code == "invalid_field");
    CHECK(d.error().message.find(c.why) != std::string::npos);
  }
  CHECK_FALSE(DurationFromSeconds(-1).ok());
  CHECK(DurationFromSeconds(0.0001).error().message.find("too short") != std::string::npos);
  CHECK(*DurationFromSeconds(0.25) == 250ms);
}

TEST_CASE("durations format back to their shortest form") {
  CHECK(FormatDuration(0ms) == "0");
  CHECK(FormatDuration(90min) == "1h30m");
  CHECK(FormatDuration(250ms) == "250ms");
  CHECK(FormatDuration(24h + 1s) == "1d1s");
}
