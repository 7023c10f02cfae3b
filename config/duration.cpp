#include "config/duration.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <optional>

namespace spoold {
namespace {

// Units from largest to smallest; a duration names each at most once, in this
// order. The names are systemd.time(7)'s, less those below a millisecond (us,
// usec, ns, nsec) and the calendar-like ones (M, month, y, year: 30.44 and
// 365.25 days in systemd).
struct Unit {
  std::string_view names[4];
  int64_t ms;
};
constexpr Unit kUnits[] = {
    {{"w", "week", "weeks"}, 604'800'000},      {{"d", "day", "days"}, 86'400'000},
    {{"h", "hr", "hour", "hours"}, 3'600'000},  {{"m", "min", "minute", "minutes"}, 60'000},
    {{"s", "sec", "second", "seconds"}, 1'000}, {{"ms", "msec"}, 1}};
constexpr size_t kSecondsUnit = 4;

// Digits after a decimal point: at most this many, so that every sum below is
// exact in 64 bits.
constexpr int kMaxFractionDigits = 9;
constexpr int64_t kFractionScale = 1'000'000'000;  // 10^kMaxFractionDigits

Error BadDuration(std::string_view why) {
  return MakeError("invalid_field", std::string("must be a duration such as \"250ms\", \"1.5s\", \"5m\", "
                                                "\"1h 30m\", \"1d\" or a number of seconds (") +
                                        std::string(why) + ")");
}

Error TooLong() { return BadDuration("too long: at most 100 years, 36500d"); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

size_t SkipBlanks(std::string_view text, size_t i) {
  while (i < text.size() && IsBlank(text[i])) ++i;
  return i;
}

// whole + fraction / 10^digits.
struct Number {
  int64_t whole = 0;
  int64_t fraction = 0;
  int digits = 0;
};

// Reads digits [ "." digits ] or "." digits at text[*i].
Result<Number> ReadNumber(std::string_view text, size_t* i) {
  Number n;
  const size_t start = *i;
  for (; *i < text.size() && IsDigit(text[*i]); ++*i) {
    n.whole = n.whole * 10 + (text[*i] - '0');
    // Every unit is at least 1ms: a larger number is too long whatever follows.
    if (n.whole > kMaxDuration.count()) return TooLong();
  }
  if (*i < text.size() && text[*i] == '.') {
    ++*i;
    for (; *i < text.size() && IsDigit(text[*i]); ++*i) {
      if (++n.digits > kMaxFractionDigits) return BadDuration("at most 9 digits after a decimal point");
      n.fraction = n.fraction * 10 + (text[*i] - '0');
    }
    if (n.digits == 0) return BadDuration("a decimal point must be followed by a digit");
    if (*i < text.size() && text[*i] == '.') return BadDuration("a number has more than one decimal point");
  } else if (*i == start) {
    return BadDuration(start < text.size() && text[start] == '-' ? "a duration cannot be negative"
                                                                 : "expected a number before each unit");
  }
  return n;
}

// A sum of numbers times units, exact: whole milliseconds plus the rest in
// units of 10^-9 ms.
class Sum {
 public:
  // False when the sum passes kMaxDuration.
  bool Add(const Number& n, int64_t unit_ms) {
    if (n.whole > (kMaxDuration.count() - ms_) / unit_ms) return false;
    ms_ += n.whole * unit_ms;
    int64_t scale = 1;
    for (int k = 0; k < n.digits; ++k) scale *= 10;
    const int64_t scaled = n.fraction * unit_ms;  // < 10^9 * 604800000: fits
    ms_ += scaled / scale;
    rest_ += scaled % scale * (kFractionScale / scale);
    ms_ += rest_ / kFractionScale;
    rest_ %= kFractionScale;
    return ms_ <= kMaxDuration.count();
  }

  // Rounded to the nearest millisecond, halves up.
  Result<Millis> Rounded() const {
    const int64_t ms = ms_ + (rest_ >= kFractionScale / 2 ? 1 : 0);
    if (ms > kMaxDuration.count()) return TooLong();
    // A positive value must not round to 0, which means "no limit".
    if (ms == 0 && rest_ > 0) return BadDuration("too short: at least 1ms, or 0 for no limit");
    return Millis(ms);
  }

 private:
  int64_t ms_ = 0;
  int64_t rest_ = 0;
};

// The index into kUnits of the unit named `name`, or nullopt.
std::optional<size_t> FindUnit(std::string_view name) {
  for (size_t u = 0; u < std::size(kUnits); ++u) {
    for (std::string_view known : kUnits[u].names) {
      if (!known.empty() && known == name) return u;
    }
  }
  return std::nullopt;
}

bool IsNonFiniteWord(std::string_view text) {
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) text.remove_prefix(1);
  std::string lower;
  for (char c : text) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return lower == "nan" || lower == "inf" || lower == "infinity";
}

}  // namespace

Result<Millis> ParseDuration(std::string_view text) {
  const size_t first = SkipBlanks(text, 0);
  if (first == text.size()) return BadDuration("got an empty string");
  size_t last = text.size();
  while (IsBlank(text[last - 1])) --last;
  if (IsNonFiniteWord(text.substr(first, last - first))) {
    return BadDuration("got nan or infinity; 0 means no limit");
  }
  Sum sum;
  std::optional<size_t> last_unit;
  for (size_t i = first; i < text.size(); i = SkipBlanks(text, i)) {
    Result<Number> number = ReadNumber(text, &i);
    if (!number) return number.error();
    i = SkipBlanks(text, i);
    const size_t unit_start = i;
    while (i < text.size() && !IsBlank(text[i]) && !IsDigit(text[i]) && text[i] != '.' && text[i] != '-' &&
           text[i] != '+') {
      ++i;
    }
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    std::optional<size_t> found;
    if (!unit.empty()) {
      found = FindUnit(unit);
      if (!found)
        return BadDuration("unknown unit; use ms, s, m, h, d or w, or a long name such as sec or hours");
    } else if (!last_unit && i == text.size()) {
      found = kSecondsUnit;  // a number alone is a number of seconds
    } else {
      return BadDuration("a unit is missing after a number; only a number alone means seconds");
    }
    if (last_unit && *found <= *last_unit)
      return BadDuration("units must go from largest to smallest, once each");
    last_unit = found;
    if (!sum.Add(*number, kUnits[*found].ms)) return TooLong();
  }
  return sum.Rounded();
}

Result<Millis> DurationFromSeconds(double seconds) {
  if (std::isnan(seconds)) return BadDuration("got nan");
  if (seconds < 0) return BadDuration("a duration cannot be negative");
  if (std::isinf(seconds)) return BadDuration("got infinity; 0 means no limit");
  if (seconds == 0) return Millis(0);  // -0.0 too
  if (seconds * 1000.0 > static_cast<double>(kMaxDuration.count())) return TooLong();
  // The number rounded to 9 decimals (a nanosecond), then read like a string of
  // seconds: 0.0015 and "0.0015" are both 2ms, though the double is a little
  // less than 0.0015.
  char buffer[64];
  const auto [end, ec] =
      std::to_chars(buffer, buffer + sizeof buffer, seconds, std::chars_format::fixed, kMaxFractionDigits);
  if (ec != std::errc()) return TooLong();
  Result<Millis> d = ParseDuration(std::string_view(buffer, static_cast<size_t>(end - buffer)));
  // Below a nanosecond, the decimals are all 0; still not "no limit".
  if (d && d->count() == 0) return BadDuration("too short: at least 1ms, or 0 for no limit");
  return d;
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0";
  std::string out;
  // Weeks are not written: days read more easily, and older readers know them.
  for (size_t u = 1; u < std::size(kUnits); ++u) {
    if (ms >= kUnits[u].ms) {
      out += std::to_string(ms / kUnits[u].ms);
      out += kUnits[u].names[0];
      ms %= kUnits[u].ms;
    }
  }
  return out;
}

}  // namespace spoold
