// Wall-clock times as the spool writes them: UTC RFC 3339 with milliseconds and a
// "Z" (2026-11-21T10:00:00.123Z). Pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace spoold {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::time_point<Clock, std::chrono::milliseconds>;

inline TimePoint Now() { return std::chrono::time_point_cast<std::chrono::milliseconds>(Clock::now()); }

std::string FormatTime(TimePoint t);                       // ...T10:00:00.123Z
std::optional<TimePoint> ParseTime(std::string_view text);  // inverse; also accepts no fraction

// A time of day for a human message, to the second, in UTC like every time the
// spool writes: "10:02:00 UTC" when `t` falls on the UTC day of `now`,
// "2026-12-06 21:10:18 UTC" on any other day, earlier or later. Every message
// that names a time of day says it this way.
std::string FormatMessageTime(TimePoint t, TimePoint now);

}  // namespace spoold
