// Durations as SPEC.md section 2 writes them: "250ms", "30s", "5m", "2h", "1d",
// "1h30m", or a number of seconds; "0" or 0 means no limit. Parsing only; owns
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

// Parses a duration string. Errors are "invalid_field" with a message that says
// what is accepted; the caller fills in the field name and position.
Result<Millis> ParseDuration(std::string_view text);

// A number of seconds (integer or fractional), as TOML/JSON numbers give it.
Result<Millis> DurationFromSeconds(double seconds);

// The shortest exact form: "1h30m", "250ms", "0".
std::string FormatDuration(Millis d);

}  // namespace spoold
