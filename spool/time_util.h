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

}  // namespace spoold
