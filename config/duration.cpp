#include "config/duration.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdint>

namespace spoold {
namespace {

// Units from largest to smallest; a duration names each at most once, in this order.
constexpr struct {
  std::string_view name;
  int64_t ms;
} kUnits[] = {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

Error BadDuration(std::string_view why) {
  return MakeError("invalid_field",
                   std::string("must be a duration such as \"250ms\", \"30s\", \"5m\", "
                               "\"2h\", \"1d\", \"1h30m\" or a number of seconds (") +
                       std::string(why) + ")");
}

}  // namespace

Result<Millis> ParseDuration(std::string_view text) {
  if (text.empty()) return BadDuration("got an empty string");
  // A plain number of seconds, possibly fractional, is accepted as a string too.
  bool plain_number = true;
  int dots = 0;
  for (char c : text) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      plain_number = false;
    }
  }
  if (plain_number && dots <= 1 && text != ".") {
    // strtod, not stod: a number of 400 digits must be an error, not an
    // exception (it overflows to HUGE_VAL, which the range check refuses).
    errno = 0;
    double seconds = std::strtod(std::string(text).c_str(), nullptr);
    if (errno == ERANGE) return BadDuration("the number is out of range");
    return DurationFromSeconds(seconds);
  }
  // Otherwise a sequence of <integer><unit> parts, units in decreasing order.
  int64_t total = 0;
  size_t last_unit = 0;  // index into kUnits + 1 of the previous part's unit
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      if (value > kMaxDuration.count()) return BadDuration("too long: at most 100 years");
      ++i;
    }
    if (i == start) return BadDuration("expected a number before each unit");
    size_t unit_start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty()) return BadDuration("a unit is missing after a number");
    size_t found = 0;
    for (size_t u = 0; u < std::size(kUnits); ++u) {
      if (kUnits[u].name == unit) found = u + 1;
    }
    if (found == 0) return BadDuration("unknown unit; use ms, s, m, h or d");
    if (found <= last_unit) return BadDuration("units must go from largest to smallest, once each");
    last_unit = found;
    // value <= kMaxDuration here, but value * unit may not fit in 64 bits.
    if (value > (kMaxDuration.count() - total) / kUnits[found - 1].ms) {
      return BadDuration("too long: at most 100 years");
    }
    total += value * kUnits[found - 1].ms;
  }
  return Millis(total);
}

Result<Millis> DurationFromSeconds(double seconds) {
  if (std::isnan(seconds) || seconds < 0) return BadDuration("got a negative number");
  if (seconds * 1000.0 > static_cast<double>(kMaxDuration.count())) {
    return BadDuration("too long: at most 100 years");
  }
  auto ms = static_cast<int64_t>(std::llround(seconds * 1000.0));
  // A tiny positive value must not round to 0, which means "no limit".
  if (ms == 0 && seconds > 0) return BadDuration("too short: at least 1ms, or 0 for no limit");
  return Millis(ms);
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0";
  std::string out;
  for (const auto& unit : kUnits) {
    if (ms >= unit.ms) {
      out += std::to_string(ms / unit.ms);
      out += unit.name;
      ms %= unit.ms;
    }
  }
  return out;
}

}  // namespace spoold
