#include "spool/time_util.h"

#include <cstdio>
#include <ctime>

namespace spoold {

namespace {

// The UTC calendar fields of `t`, and its milliseconds.
struct tm UtcFields(TimePoint t, int* frac_ms) {
  auto ms = t.time_since_epoch().count();
  int64_t secs = ms / 1000;
  int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  time_t tt = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  *frac_ms = static_cast<int>(frac);
  return tm;
}

}  // namespace

std::string FormatTime(TimePoint t) {
  int frac = 0;
  struct tm tm = UtcFields(t, &frac);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string FormatMessageTime(TimePoint t, TimePoint now) {
  int frac = 0;
  struct tm tm = UtcFields(t, &frac);
  struct tm today = UtcFields(now, &frac);
  char buf[96];
  if (tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday) {
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d UTC", tm.tm_hour, tm.tm_min, tm.tm_sec);
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

std::optional<TimePoint> ParseTime(std::string_view text) {
  // Fixed layout: YYYY-MM-DDTHH:MM:SS[.fff...]Z
  if (text.size() < 20 || text.back() != 'Z') return std::nullopt;
  auto digits = [&](size_t pos, size_t n, int* out) {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
  };
  struct tm tm {};
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, &year) || text[4] != '-' || !digits(5, 2, &mon) || text[7] != '-' ||
      !digits(8, 2, &day) || (text[10] != 'T' && text[10] != 't') || !digits(11, 2, &hour) ||
      text[13] != ':' || !digits(14, 2, &min) || text[16] != ':' || !digits(17, 2, &sec)) {
    return std::nullopt;
  }
  int64_t frac_ms = 0;
  size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    int scale = 100;
    size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      frac_ms += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos != text.size() - 1) return std::nullopt;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  time_t tt = timegm(&tm);
  // 9999-12-31T23:59:60 normalises into year 10000, which FormatTime cannot
  // write in four digits: such a time would not read back.
  if (tt >= 253402300800) return std::nullopt;
  return TimePoint(std::chrono::milliseconds(static_cast<int64_t>(tt) * 1000 + frac_ms));
}

}  // namespace spoold
