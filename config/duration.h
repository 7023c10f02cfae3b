// Durations as SPEC.md section 2 writes them: "250ms", "1.5s", "5m", "2h", "1d",
// "1h 30m", "2 hours", or a number of seconds; "0" or 0 means no limit. Decimals
// as systemd.time(7) takes them, rounded to the millisecond. Parsing only; owns
// no state.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "config/result.h"

namespace spoold {

using Millis = std::chrono::milliseconds;

// The longest duration accepted (100 years): keeps every sum of times far from
// overflow.
inline constexpr Millis kMaxDuration = std::chrono::hours(24 * 365 * 100);

// Parses a duration string: numbers with up to 9 decimals, each followed by a
// unit (w, d, h, m, s, ms or a long name: week, day, hour, hr, min, minute, sec,
// second, msec, and plurals), largest first and each once, blanks allowed
// between; or one number alone, of seconds. The sum is rounded to the nearest
// millisecond, halves up. Errors are "invalid_field" with a message that says
// what is accepted; the caller fills in the field name and position.
Result<Millis> ParseDuration(std::string_view text);

// A number of seconds (integer or fractional), as TOML/JSON numbers give it:
// rounded to 9 decimals first, then as the same digits in a string.
Result<Millis> DurationFromSeconds(double seconds);

// The shortest exact form: "1h30m", "250ms", "0".
std::string FormatDuration(Millis d);

}  // namespace spoold
