#include "config/duration.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>

using namespace spoold;
using namespace std::chrono_literals;

namespace {

// What every refusal says before its reason.
constexpr std::string_view kRule =
    "must be a duration such as \"250ms\", \"1.5s\", \"5m\", \"1h 30m\", \"1d\" or a number of seconds (";

std::string Message(std::string_view why) { return std::string(kRule) + std::string(why) + ")"; }

constexpr const char* kUnknownUnit =
    "unknown unit; use ms, s, m, h, d or w, or a long name such as sec or hours";
constexpr const char* kNoNumber = "expected a number before each unit";
constexpr const char* kNoDigit = "a decimal point must be followed by a digit";
constexpr const char* kOrder = "units must go from largest to smallest, once each";
constexpr const char* kNoUnit = "a unit is missing after a number; only a number alone means seconds";
constexpr const char* kNegative = "a duration cannot be negative";
constexpr const char* kNonFinite = "got nan or infinity; 0 means no limit";
constexpr const char* kTooLong = "too long: at most 100 years, 36500d";
constexpr const char* kTooShort = "too short: at least 1ms, or 0 for no limit";

void CheckRefused(const Result<Millis>& d, std::string_view why) {
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().code == "invalid_field");
  CHECK(d.error().message == Message(why));
}

}  // namespace

TEST_CASE("durations parse in every documented form") {
  struct {
    const char* text;
    Millis expected;
  } cases[] = {
      {"250ms", 250ms},
      {"30s", 30s},
      {"5m", 5min},
      {"2h", 2h},
      {"1d", 24h},
      {"1w", 24h * 7},
      {"1h30m", 90min},
      {"0", 0ms},
      {"0s", 0ms},
      {"0.0", 0ms},
      {"90", 90s},
      {"1.5", 1500ms},
      {".5", 500ms},
      {"1d2h3m4s5ms", 24h + 2h + 3min + 4s + 5ms},
      // Decimals in every unit, as systemd.time(7) takes them.
      {"1.5s", 1500ms},
      {"0.5h", 30min},
      {"1.25d", 30h},
      {"0.5w", 84h},
      {"2.5m", 150s},
      {"1.5ms", 2ms},  // rounded to the millisecond, halves up
      {"1.4999ms", 1ms},
      {"0.0005", 1ms},
      {"1h 0.5m", 1h + 30s},
      // Blanks between the parts, between a number and its unit, and around.
      {"1h 30m", 90min},
      {"1h\t30m", 90min},
      {"2 h", 2h},
      {" 5s ", 5s},
      {" 90 ", 90s},
      // The long names of systemd.time(7).
      {"2hours", 2h},
      {"1 hour 30 minutes", 90min},
      {"48hr", 48h},
      {"3 days", 72h},
      {"1 day", 24h},
      {"2 weeks", 24h * 14},
      {"1 week", 24h * 7},
      {"10min", 10min},
      {"1 minute", 1min},
      {"5sec", 5s},
      {"1 second", 1s},
      {"2 seconds", 2s},
      {"55s500ms", 55500ms},
      {"100msec", 100ms},
      // The bounds: 100 years of 365 days.
      {"36500d", 24h * 36500},
      {"5214w2d", 24h * 36500},
      {"3153600000", 24h * 36500},
      {"36499.999999999d", 24h * 36500},  // rounds up to the limit
      {"0.123456789s", 123ms},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto d = ParseDuration(c.text);
    REQUIRE_MESSAGE(d.ok(), d.error().message);
    CHECK(*d == c.expected);
  }
}

TEST_CASE("bad durations are refused with the reason") {
  struct {
    std::string text;
    const char* why;
  } cases[] = {
      {"", "got an empty string"},
      {"  ", "got an empty string"},
      {"5x", kUnknownUnit},
      {"1e3s", kUnknownUnit},
      {"5us", kUnknownUnit},
      {"1y", kUnknownUnit},
      {"1M", kUnknownUnit},
      {"5S", kUnknownUnit},
      {"5\xce\xbcs", kUnknownUnit},
      {"m5", kNoNumber},
      {"s", kNoNumber},
      {"5 s s", kNoNumber},
      {"+5s", kNoNumber},
      {"1.5.5s", "a number has more than one decimal point"},
      {"1.", kNoDigit},
      {"5.s", kNoDigit},
      {".", kNoDigit},
      {"1.0000000001s", "at most 9 digits after a decimal point"},
      {"30m1h", kOrder},
      {"1s1s", kOrder},
      {"1h 2hours", kOrder},
      {"1h 30", kNoUnit},
      {"5 10", kNoUnit},
      {"-1s", kNegative},
      {"-5", kNegative},
      {"1h -5m", kNegative},
      {"nan", kNonFinite},
      {"inf", kNonFinite},
      {"-Infinity", kNonFinite},
      {"99999999999d", kTooLong},
      // Under the digit limit, but 1631452241920 * 86400000 overflows 64 bits
      // (found by the job_toml fuzzer).
      {"1631452241920d", kTooLong},
      {"36500d1ms", kTooLong},
      {"36501d", kTooLong},
      {"36500.0001d", kTooLong},
      {"5215w", kTooLong},
      {"3153600001", kTooLong},
      {std::string(400, '9'), kTooLong},
      {"1" + std::string(400, '0') + "ms", kTooLong},
      {"0.0001", kTooShort},
      {"0.4ms", kTooShort},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CheckRefused(ParseDuration(c.text), c.why);
  }
}

TEST_CASE("durations as numbers of seconds are rounded to the millisecond like the same digits in a string") {
  struct {
    double seconds;
    Millis expected;
  } cases[] = {{0, 0ms},      {-0.0, 0ms},   {0.25, 250ms}, {1.5, 1500ms},
               {0.0015, 2ms}, {0.0005, 1ms}, {90, 90s},     {3153600000, 24h * 36500}};
  for (const auto& c : cases) {
    CAPTURE(c.seconds);
    auto d = DurationFromSeconds(c.seconds);
    REQUIRE_MESSAGE(d.ok(), d.error().message);
    CHECK(*d == c.expected);
  }
  struct {
    double seconds;
    const char* why;
  } bad[] = {{-1, kNegative},           {-HUGE_VAL, kNegative},
             {std::nan(""), "got nan"}, {HUGE_VAL, "got infinity; 0 means no limit"},
             {0.00049, kTooShort},      {3153600000.001, kTooLong},
             {1e300, kTooLong},         {1e-300, kTooShort}};
  for (const auto& c : bad) {
    CAPTURE(c.seconds);
    CheckRefused(DurationFromSeconds(c.seconds), c.why);
  }
}

TEST_CASE("durations format back to their shortest form") {
  CHECK(FormatDuration(0ms) == "0");
  CHECK(FormatDuration(90min) == "1h30m");
  CHECK(FormatDuration(250ms) == "250ms");
  CHECK(FormatDuration(24h + 1s) == "1d1s");
  CHECK(FormatDuration(24h * 14) == "14d");
  // What FormatDuration writes reads back the same.
  for (Millis d : {Millis(1), Millis(1500), Millis(90min), Millis(24h * 36500), Millis(24h * 7 + 1h + 1ms)}) {
    CAPTURE(d.count());
    CHECK(*ParseDuration(FormatDuration(d)) == d);
  }
}
