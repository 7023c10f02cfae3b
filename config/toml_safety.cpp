#include "config/toml_safety.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace spoold {
namespace {

// How this check stays honest. It is not a TOML validator: it follows the structure
// toml++ follows (lines, keys, table headers, strings, comments, arrays, inline
// tables) and treats the inside of numbers, dates and booleans as opaque words. It
// refuses only what would hurt toml++:
//
//  * invalid UTF-8 and NUL bytes (toml++ reports these, but catching them first lets
//    the byte-level scan below rely on every structural character being ASCII);
//  * nesting deeper than kMaxNesting, counted the way the parsed document nests
//    (root table = 1; every table a dotted key or header creates, every array and
//    inline table adds 1): after parsing, toml++ walks the tree recursively
//    (update_region_ends), and the tables of a ~400 KB `a.a.a...= 1` line or
//    `[a.a.a...]` header overflow the stack there. Arrays and inline tables it
//    bounds itself (at 256), but every level costs stack in our converters too;
//  * the inputs that reach an internal assert of toml++ 3.3 (found by reading
//    parser.inl and by fuzzing it with asserts on):
//      - a table header whose first non-blank character after `[` or `[[` is
//        neither a key character, a quote nor `]` ("[=", "[,", "[[[", "[\n", ...):
//        parse_table_header() calls parse_key(), which asserts on it;
//      - an array element that starts with `}` or with U+0085, U+2028 or U+2029
//        ("a=[}", "a=[1,}", "a=[\u2028]"): parse_array() calls parse_value(),
//        which asserts that it is not looking at a value terminator;
//      - a date followed by 'T' or 't' and no digit ("a=1979-05-27T:00"):
//        parse_date_time() calls parse_time(), which asserts on a digit;
//      - a ten-character date-like value, a space, one digit and a terminator
//        ("a = 1979-05-20 3,"): parse_value()'s look-ahead for a date-time
//        written with a space asserts that it is not at a terminator;
//  * the code points U+00A1-U+0499, U+2C5E-U+2FFF, U+3001-U+3057 and
//    U+FB26-U+FEFE wherever toml++ classifies them as whitespace or not (see
//    HitsTomlUnreachable): outside strings and comments, where valid TOML has
//    only ASCII, and right after a backslash in a multi-line basic string.
//
// Whenever the text stops following the grammar at a point where toml++ is certain
// to report an error itself, the scan stops and returns OK: toml++ never reads past
// its first error, so nothing after it can hurt, and its own message is the better
// one. That is also why valid TOML is never refused: on valid text the scan sees
// only structure it understands, and it refuses only the patterns above, none of
// which is valid TOML, with one exception: a multi-line basic string whose
// line-ending backslash is followed, after blanks, by one of those code points.

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool IsBareKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsKeyStart(char c) { return IsBareKeyChar(c) || c == '"' || c == '\''; }

// Characters that end a number, date, time or boolean for toml++
// (is_value_terminator), plus the ones that start another structure.
bool EndsWord(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ']' || c == '}' || c == '#' ||
         c == '[' || c == '{' || c == '"' || c == '\'' || c == '=';
}

// Length of the UTF-8 sequence at `pos` (1..4), or 0 when it is not valid UTF-8
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t Utf8SequenceLength(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) -> uint8_t {
    return pos + i < text.size() ? static_cast<uint8_t>(text[pos + i]) : 0;
  };
  const auto continuation = [&](size_t i) { return (byte(i) & 0xC0) == 0x80; };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return continuation(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const uint8_t b1 = byte(1);
    if (b0 == 0xE0 && b1 < 0xA0) return 0;   // overlong
    if (b0 == 0xED && b1 >= 0xA0) return 0;  // UTF-16 surrogate
    return continuation(1) && continuation(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const uint8_t b1 = byte(1);
    if (b0 == 0xF0 && b1 < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && b1 >= 0x90) return 0;  // above U+10FFFF
    return continuation(1) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

// toml++'s is_value_terminator(): all whitespace it knows (ASCII and Unicode,
// horizontal and vertical), and the characters that end a value.
bool IsValueTerminator(char32_t c) {
  switch (c) {
    case U' ':
    case U'\t':
    case U'\n':
    case U'\v':
    case U'\f':
    case U'\r':
    case U']':
    case U'}':
    case U',':
    case U'#':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x180E:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x2060:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200B;
  }
}

// toml++'s is_non_ascii_horizontal_whitespace() where it is defined.
bool IsNonAsciiHorizontalSpace(char32_t c) {
  return c == 0xA0 || c == 0x1680 || c == 0x180E || (c >= 0x2000 && c <= 0x200B) || c == 0x202F ||
         c == 0x205F || c == 0x2060 || c == 0x3000 || c == 0xFEFF;
}

// toml++ 3.3's is_non_ascii_horizontal_whitespace() falls into a
// __builtin_unreachable() (undefined behaviour in every build) for these code
// points: its generated switch lacks their cases. It is asked about a character
// whenever toml++ checks for whitespace or a value terminator, which outside
// strings and comments is everywhere. This mirrors its arithmetic exactly.
bool HitsTomlUnreachable(char32_t c) {
  if (c < 0xA0 || c > 0xFEFF) return false;
  const uint64_t child = (static_cast<uint64_t>(c) - 0xA0) / 0x3FA;
  if (((uint64_t{1} << child) & 0x7FFFFFFFFFFFF75Eull) != 0) return false;
  if (c == 0xA0 || c == 0x3000 || c == 0xFEFF) return false;
  return child != 5 && child != 7;
}

constexpr const char* kUnhandledCharacter =
    "a character that the TOML parser cannot handle here (allowed only inside strings and "
    "comments)";

constexpr const char* kUnhandledAfterBackslash =
    "a backslash in a multi-line string is followed by a character that the TOML parser "
    "cannot handle there";

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  Status Run() {
    if (!CheckEncoding()) return error_;
    if (text_.substr(0, kUtf8Bom.size()) == kUtf8Bom) pos_ = kUtf8Bom.size();
    ScanDocument();
    // Stopped early: toml++ will report an error near pos_, but it may look at the
    // characters there first, so none of them may be one it cannot look at.
    if (!rejected_) CheckUnhandledCharacters(pos_, text_.size());
    if (rejected_) return error_;
    return OkStatus();
  }

 private:
  // Every Scan* function returns true to go on and false to stop, either because
  // the text was refused (rejected_) or because toml++ will report an error at or
  // before this point and never read further (GiveUp).

  bool CheckEncoding() {
    for (size_t i = 0; i < text_.size();) {
      if (text_[i] == '\0') return Reject(i, "the file contains a NUL byte");
      const size_t length = Utf8SequenceLength(text_, i);
      if (length == 0) return Reject(i, "the file is not valid UTF-8");
      i += length;
    }
    return true;
  }

  void ScanDocument() {
    int table_depth = 1;  // the root table
    while (true) {
      SkipSpaces();
      if (AtEnd()) return;
      const char c = Peek();
      if (c == '\n' || c == '\r') {
        if (!SkipLineBreak()) return;
      } else if (c == '#') {
        SkipComment();
      } else if (c == '[') {
        if (!ScanTableHeader(&table_depth)) return;
        if (!FinishLine()) return;
      } else if (IsKeyStart(c)) {
        if (!ScanKeyValue(table_depth)) return;
        if (!FinishLine()) return;
      } else {
        return;  // toml++: "expected keys, tables, whitespace or comments"
      }
    }
  }

  // `[a.b]` makes tables at depths 2 and 3 (the root is 1); `[[a.b]]` makes the
  // array `b` at depth 3 holding tables at depth 4.
  bool ScanTableHeader(int* table_depth) {
    ++pos_;  // '['
    const bool spaced = SkipSpaces();
    bool is_array = false;
    if (Peek() == '[') {
      if (spaced) return GiveUp();  // toml++: "brackets must be contiguous"
      is_array = true;
      ++pos_;
      SkipSpaces();
    }
    if (AtEnd() || Peek() == ']') return GiveUp();  // toml++ reports both
    if (!IsKeyStart(Peek())) {
      return Reject(pos_, "a table header must start with a key name");
    }
    int parts = 0;
    if (!ScanKey(1, &parts)) return false;
    const int depth = 1 + parts + (is_array ? 1 : 0);
    if (depth > kMaxNesting) return Reject(last_part_begin_, TooDeep("tables"));
    if (Peek() != ']') return GiveUp();
    ++pos_;
    if (is_array) {
      if (Peek() != ']') return GiveUp();
      ++pos_;
    }
    *table_depth = depth;
    return true;
  }

  // A key-value pair in a table at `table_depth`: every part of the dotted key but
  // the last makes a table one level deeper; the value, when it is an array or an
  // inline table, sits one level below the last of them.
  bool ScanKeyValue(int table_depth) {
    int parts = 0;
    if (!ScanKey(table_depth, &parts)) return false;
    if (Peek() != '=') return GiveUp();
    ++pos_;
    SkipSpaces();
    return ScanValue(table_depth + parts);
  }

  // A dotted key read in a table at `table_depth`. Leaves pos_ after the blanks
  // that follow it and last_part_begin_ at its last part.
  bool ScanKey(int table_depth, int* parts) {
    *parts = 0;
    while (true) {
      if (AtEnd() || !IsKeyStart(Peek())) return GiveUp();
      last_part_begin_ = pos_;
      ++*parts;
      if (*parts > kMaxNesting) {
        return Reject(pos_, "a dotted key has more than " + std::to_string(kMaxNesting) + " parts");
      }
      // A part followed by a dot is a table: the previous one is at this depth.
      if (*parts > 1 && table_depth + *parts - 1 > kMaxNesting) {
        return Reject(pos_, TooDeep("tables"));
      }
      if (IsBareKeyChar(Peek())) {
        while (!AtEnd() && IsBareKeyChar(Peek())) ++pos_;
      } else {
        bool multi_line = false;
        if (!ScanString(&multi_line)) return false;
        if (multi_line) return GiveUp();  // toml++: prohibited in keys
      }
      SkipSpaces();
      if (Peek() != '.') return true;
      ++pos_;
      SkipSpaces();
    }
  }

  // A value whose array or inline table, if it is one, would be at `depth`.
  bool ScanValue(int depth) {
    if (AtEnd()) return GiveUp();
    const char c = Peek();
    if (c == '[') return ScanArray(depth);
    if (c == '{') return ScanInlineTable(depth);
    if (c == '"' || c == '\'') {
      bool multi_line = false;
      return ScanString(&multi_line);
    }
    if (EndsWord(c)) return GiveUp();  // toml++: "expected value"
    // A number, date, time or boolean. A date and a time separated by one space
    // are one value for toml++, so words separated by blanks are taken together;
    // anything that is not a value is toml++'s error to report.
    const size_t value_begin = pos_;
    while (true) {
      const size_t word_begin = pos_;
      while (!AtEnd() && !EndsWord(Peek())) ++pos_;
      if (!CheckUnhandledCharacters(word_begin, pos_)) return false;
      if (!CheckWord(word_begin)) return false;
      if (word_begin == value_begin && !CheckDateLookahead(value_begin)) return false;
      const size_t after_word = pos_;
      SkipSpaces();
      if (AtEnd() || EndsWord(Peek())) {
        pos_ = after_word;
        return true;
      }
    }
  }

  // toml++ takes a word of the form `YYYY-MM-DDT...` for a date-time and, past
  // the 'T', asserts that a digit follows ("1979-05-27T:00"). A valid value that
  // starts with a digit has a 'T' or 't' at that place only in a date-time, and
  // there a digit always follows it.
  bool CheckWord(size_t begin) {
    const std::string_view word = text_.substr(begin, pos_ - begin);
    constexpr size_t kTimeSeparator = 10;  // after "YYYY-MM-DD"
    if (word.size() <= kTimeSeparator || !IsDigit(word[0])) return true;
    if (word[kTimeSeparator] != 'T' && word[kTimeSeparator] != 't') return true;
    if (word.size() > kTimeSeparator + 1 && IsDigit(word[kTimeSeparator + 1])) return true;
    return Reject(begin + kTimeSeparator, "a date-time has no time after its 'T'");
  }

  // toml++ reads a value up to a value terminator; if that gave ten characters
  // (underscores not counted) starting with a digit, with '-' as the 5th and 8th,
  // it may be a date followed by " HH:MM": it looks past the space, and when one
  // digit and then a terminator follow, it asserts ("a = 1979-05-20 3,"). A valid
  // time has at least two digits there, so no valid value is refused.
  bool CheckDateLookahead(size_t begin) {
    if (!IsDigit(text_[begin])) return true;
    size_t i = begin;
    int count = 0;
    bool dashes = true;
    while (i < text_.size()) {
      size_t length = 1;
      const char32_t c = DecodeAt(i, &length);
      if (IsValueTerminator(c)) break;
      if (c != U'_') {
        if ((count == 4 || count == 7) && c != U'-') dashes = false;
        ++count;
      }
      i += length;
    }
    if (count != 10 || !dashes) return true;
    if (i + 2 >= text_.size() || text_[i] != ' ' || !IsDigit(text_[i + 1])) return true;
    if (IsDigit(text_[i + 2])) return true;
    return Reject(i + 1, "a date is followed by a time of one digit");
  }

  // The code point starting at `pos` (the text is valid UTF-8, checked first).
  char32_t DecodeAt(size_t pos, size_t* length) const {
    const auto b0 = static_cast<uint8_t>(text_[pos]);
    *length = Utf8SequenceLength(text_, pos);
    if (*length == 1) return b0;
    char32_t c = b0 & (0xFF >> (*length + 1));
    for (size_t k = 1; k < *length; ++k) c = (c << 6) | (static_cast<uint8_t>(text_[pos + k]) & 0x3F);
    return c;
  }

  bool ScanArray(int depth) {
    if (depth > kMaxNesting) {
      return Reject(pos_, TooDeep("arrays and inline tables"));
    }
    ++pos_;  // '['
    bool after_value = false;
    while (true) {
      if (!SkipBlankLinesAndComments()) return false;
      if (AtEnd()) return GiveUp();
      const char c = Peek();
      if (c == ']') {
        ++pos_;
        return true;
      }
      if (c == ',') {
        if (!after_value) return GiveUp();  // toml++: "expected value, saw comma"
        after_value = false;
        ++pos_;
        continue;
      }
      if (after_value) return GiveUp();  // toml++: "expected comma or ']'"
      // toml++ hands everything else to parse_value(), which asserts that it does
      // not start at a value terminator; these are the terminators left over.
      if (c == '}' || StartsNonAsciiLineBreak()) {
        return Reject(pos_, "an array element is missing");
      }
      if (!ScanValue(depth + 1)) return false;
      after_value = true;
    }
  }

  bool ScanInlineTable(int depth) {
    if (depth > kMaxNesting) {
      return Reject(pos_, TooDeep("arrays and inline tables"));
    }
    ++pos_;  // '{'
    bool after_pair = false;
    while (true) {
      SkipSpaces();
      if (AtEnd()) return GiveUp();
      const char c = Peek();
      if (c == '}') {
        ++pos_;
        return true;
      }
      if (c == ',') {
        if (!after_pair) return GiveUp();
        after_pair = false;
        ++pos_;
        continue;
      }
      // Line breaks inside inline tables are an error for toml++ (TOML 1.0).
      if (after_pair || !IsKeyStart(c)) return GiveUp();
      if (!ScanKeyValue(depth)) return false;
      after_pair = true;
    }
  }

  // A string starting at the quote under pos_: basic or literal, single- or
  // multi-line. Stops (GiveUp) on an unterminated one: toml++ reports it.
  bool ScanString(bool* multi_line) {
    const char quote = Peek();
    const bool basic = quote == '"';
    *multi_line = Peek(1) == quote && Peek(2) == quote;
    if (*multi_line) {
      pos_ += 3;
      while (!AtEnd()) {
        const char c = Peek();
        if (basic && c == '\\') {
          if (!CheckLineEndingBackslash()) return false;
          pos_ += 2;  // escapes, including a backslash before a quote or line end
        } else if (c == quote && Peek(1) == quote && Peek(2) == quote) {
          pos_ += 3;
          // Up to two more quotes belong to the content (`""""a"""""`).
          for (int extra = 0; extra < 2 && !AtEnd() && Peek() == quote; ++extra) ++pos_;
          return true;
        } else {
          ++pos_;
        }
      }
      return GiveUp();
    }
    ++pos_;
    while (!AtEnd()) {
      const char c = Peek();
      if (c == '\n' || c == '\r') return GiveUp();
      if (basic && c == '\\') {
        pos_ += 2;
        continue;
      }
      ++pos_;
      if (c == quote) return true;
    }
    return GiveUp();
  }

  // In a multi-line basic string toml++ asks whether the character after a
  // backslash is whitespace and, for a line-ending backslash, whether the first
  // character after the blanks and line breaks that follow is: see
  // HitsTomlUnreachable. This is the one place where valid TOML is refused
  // (a continued line starting with such a character, e.g. "\\\n  été").
  bool CheckLineEndingBackslash() {
    for (size_t i = pos_ + 1; i < text_.size();) {
      const char c = text_[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i;
        continue;
      }
      if (static_cast<uint8_t>(c) < 0x80) return true;
      size_t length = 1;
      const char32_t code_point = DecodeAt(i, &length);
      if (HitsTomlUnreachable(code_point)) return Reject(i, kUnhandledAfterBackslash);
      // While skipping after a line-ending backslash toml++ also skips Unicode
      // horizontal whitespace, and asks again about the character after it.
      if (!IsNonAsciiHorizontalSpace(code_point)) return true;
      i += length;
    }
    return true;
  }

  // Refuses the first code point in [begin, end) that HitsTomlUnreachable.
  bool CheckUnhandledCharacters(size_t begin, size_t end, const char* message = kUnhandledCharacter) {
    for (size_t i = begin; i < end && i < text_.size();) {
      if (static_cast<uint8_t>(text_[i]) < 0x80) {
        ++i;
        continue;
      }
      size_t length = 1;
      if (HitsTomlUnreachable(DecodeAt(i, &length))) return Reject(i, message);
      i += length;
    }
    return true;
  }

  // After a header or a key-value pair: blanks, then a comment, a line break or
  // the end; anything else is toml++'s error.
  bool FinishLine() {
    SkipSpaces();
    if (AtEnd()) return true;
    if (Peek() == '#') {
      SkipComment();
      return true;
    }
    if (Peek() == '\n' || Peek() == '\r') return SkipLineBreak();
    return GiveUp();
  }

  bool SkipBlankLinesAndComments() {
    while (true) {
      SkipSpaces();
      if (AtEnd()) return true;
      if (Peek() == '#') {
        SkipComment();
      } else if (Peek() == '\n' || Peek() == '\r') {
        if (!SkipLineBreak()) return false;
      } else {
        return true;
      }
    }
  }

  bool SkipSpaces() {
    const size_t begin = pos_;
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t')) ++pos_;
    return pos_ != begin;
  }

  // "\n" or "\r\n"; a lone "\r" is toml++'s error.
  bool SkipLineBreak() {
    if (Peek() == '\r') {
      if (Peek(1) != '\n') return GiveUp();
      ++pos_;
    }
    ++pos_;
    return true;
  }

  void SkipComment() {
    while (!AtEnd() && Peek() != '\n' && Peek() != '\r') ++pos_;
  }

  // U+0085, U+2028 and U+2029: whitespace to toml++'s is_value_terminator, but not
  // line breaks it consumes.
  bool StartsNonAsciiLineBreak() const {
    return (Peek() == '\xC2' && Peek(1) == '\x85') ||
           (Peek() == '\xE2' && Peek(1) == '\x80' && (Peek(2) == '\xA8' || Peek(2) == '\xA9'));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  // NUL bytes were refused up front, so '\0' can stand for "past the end".
  char Peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }

  static bool GiveUp() { return false; }

  static std::string TooDeep(const char* what) {
    return std::string(what) + " nest deeper than " + std::to_string(kMaxNesting) + " levels";
  }

  bool Reject(size_t at, std::string message) {
    // Line and column as toml++ counts them: 1-based, columns in code points.
    int line = 1;
    int column = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      const auto byte = static_cast<uint8_t>(text_[i]);
      if (byte == '\n') {
        ++line;
        column = 1;
      } else if ((byte & 0xC0) != 0x80) {
        ++column;
      }
    }
    error_ = MakeError("parse_error", std::move(message), {}, line, column);
    rejected_ = true;
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t last_part_begin_ = 0;
  bool rejected_ = false;
  Error error_;
};

}  // namespace

Status CheckTomlSafety(std::string_view text) { return Scanner(text).Run(); }

}  // namespace spoold
