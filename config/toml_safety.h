// A cheap lexical check run on TOML text before toml++ sees it, because toml++ 3.3
// crashes on some inputs instead of reporting an error: dotted keys or nesting deep
// enough to overflow the stack, and short malformed inputs that trip its internal
// asserts (undefined behaviour in NDEBUG builds). Pure: no state, no I/O.
#pragma once

#include <string_view>

#include "config/result.h"

namespace spoold {

// The deepest nesting (dotted key parts, table header parts, arrays and inline
// tables) accepted in a TOML or JSON document.
inline constexpr int kMaxNesting = 64;

// OkStatus() when toml++ can be trusted with `text`; otherwise a "parse_error"
// naming the line and column and what is wrong, never quoting the text. Also
// refuses NUL bytes and invalid UTF-8; a leading UTF-8 byte order mark is fine.
// Valid TOML nested no deeper than kMaxNesting always passes; syntax errors it
// does not need to catch are left for toml++ to report.
Status CheckTomlSafety(std::string_view text);

}  // namespace spoold
