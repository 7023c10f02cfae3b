// EscapeForLog (daemon/logging.h): what reaches the daemon's log can never
// forge a line of its own nor send a terminal control sequence.
#include "daemon/logging.h"

#include <doctest/doctest.h>

#include <string>

using spoold::EscapeForLog;

TEST_CASE("logging: untrusted text is escaped, printable text is kept") {
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"plain name.toml", "plain name.toml"},
      {"x\n2026-01-01T00:00:00.000Z critical FAKE.json", "x\\n2026-01-01T00:00:00.000Z critical FAKE.json"},
      {"a\rb\tc", "a\\rb\\tc"},
      {std::string("nul\0byte", 8), "nul\\x00byte"},
      {"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"},
      {"del\x7f", "del\\x7f"},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},  // UTF-8 kept
      {"bad\xff\xfe", "bad\\xff\\xfe"},
      {"overlong\xc0\xaf", "overlong\\xc0\\xaf"},
      {"surrogate\xed\xa0\x80", "surrogate\\xed\\xa0\\x80"},
      {"cut\xe2\x82", "cut\\xe2\\x82"},
      {"next line\xc2\x85", "next line\\xc2\\x85"},  // NEL, a C1 control
      {"csi\xc2\x9b"
       "31m",
       "csi\\xc2\\x9b"
       "31m"},  // 8-bit CSI
      {"sep\xe2\x80\xa8"
       "x",
       "sep\\xe2\\x80\\xa8"
       "x"},                                 // U+2028
      {"nbsp\xc2\xa0ok", "nbsp\xc2\xa0ok"},  // U+00A0 is text
      {"already \\x0a escaped", "already \\x0a escaped"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(EscapeForLog(c.in) == c.out);
    CHECK(EscapeForLog(c.in).find('\n') == std::string::npos);
  }
}
