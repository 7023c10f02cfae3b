#include "spool/document.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "config/toml.h"
#include "config/toml_safety.h"

namespace spoold {
namespace {

// A UTF-8 byte order mark is accepted at the very start of either format and
// dropped before parsing (toml++ and nlohmann-json both skip it anyway; dropping
// it here keeps the columns of line 1 the same whatever the parser).
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// Line and column of byte `offset`: 1-based, columns counted in code points like
// toml++ does. Linear, so only used for the one error a parse reports.
SourcePos PositionAt(std::string_view text, size_t offset) {
  SourcePos pos{1, 1};
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    const auto byte = static_cast<uint8_t>(text[i]);
    if (byte == '\n') {
      ++pos.line;
      pos.column = 1;
    } else if ((byte & 0xC0) != 0x80) {
      ++pos.column;
    }
  }
  return pos;
}

Error ParseError(std::string message, SourcePos pos, std::string field = {}) {
  return MakeError("parse_error", std::move(message), std::move(field), pos.line, pos.column);
}

// Same rules as config/toml_safety.cpp: overlong forms, surrogates and code points
// past U+10FFFF are invalid. Returns the offset of the first bad byte, if any.
std::optional<size_t> FindInvalidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto b0 = static_cast<uint8_t>(text[i]);
    const auto at = [&](size_t k) -> uint8_t {
      return i + k < text.size() ? static_cast<uint8_t>(text[i + k]) : 0;
    };
    const auto cont = [&](size_t k) { return (at(k) & 0xC0) == 0x80; };
    size_t length = 0;
    if (b0 < 0x80) {
      length = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = cont(1) ? 2 : 0;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      const bool ok = !(b0 == 0xE0 && at(1) < 0xA0) && !(b0 == 0xED && at(1) >= 0xA0);
      length = ok && cont(1) && cont(2) ? 3 : 0;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      const bool ok = !(b0 == 0xF0 && at(1) < 0x90) && !(b0 == 0xF4 && at(1) >= 0x90);
      length = ok && cont(1) && cont(2) && cont(3) ? 4 : 0;
    }
    if (length == 0) return i;
    i += length;
  }
  return std::nullopt;
}

std::string JoinKey(const std::string& prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  std::string path = prefix;
  path += '.';
  path += key;
  return path;
}

std::string JoinIndex(const std::string& prefix, size_t index) {
  return prefix + "[" + std::to_string(index) + "]";
}

// ---------------------------------------------------------------------------
// TOML

std::string TwoDigits(unsigned value) {
  char buffer[4];
  std::snprintf(buffer, sizeof buffer, "%02u", value % 100);
  return buffer;
}

std::string FormatDate(const toml::date& date) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04u", static_cast<unsigned>(date.year) % 10000);
  return std::string(buffer) + "-" + TwoDigits(date.month) + "-" + TwoDigits(date.day);
}

// "HH:MM:SS" plus the fraction TOML gave, without trailing zeros.
std::string FormatTime(const toml::time& time) {
  std::string out = TwoDigits(time.hour) + ":" + TwoDigits(time.minute) + ":" + TwoDigits(time.second);
  if (time.nanosecond != 0) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "%09u", static_cast<unsigned>(time.nanosecond));
    std::string fraction = buffer;
    while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
    out += "." + fraction;
  }
  return out;
}

// RFC 3339. A local date-time (no offset in the file) stays without one: inventing
// the daemon's time zone would change what the file said.
std::string FormatDateTime(const toml::date_time& value) {
  std::string out = FormatDate(value.date) + "T" + FormatTime(value.time);
  if (value.offset) {
    const int minutes = value.offset->minutes;
    if (minutes == 0) {
      out += "Z";
    } else {
      const unsigned magnitude = static_cast<unsigned>(minutes < 0 ? -minutes : minutes);
      out += minutes < 0 ? "-" : "+";
      out += TwoDigits(magnitude / 60) + ":" + TwoDigits(magnitude % 60);
    }
  }
  return out;
}

SourcePos PositionOfNode(const toml::node& node) {
  const auto& begin = node.source().begin;
  return SourcePos{static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

// Converts toml++'s tree to JSON, recording where each path was written. The
// recursion is bounded: CheckTomlSafety refused anything nested deeper than
// kMaxNesting before toml++ built the tree. TOML's nan and inf stay numbers:
// they are valid TOML, and validation refuses them where a value must be finite.
class TomlConverter {
 public:
  explicit TomlConverter(std::map<std::string, SourcePos>* positions) : positions_(positions) {}

  Json Convert(const toml::node& node, const std::string& path) {
    if (!path.empty()) positions_->emplace(path, PositionOfNode(node));
    if (const toml::table* table = node.as_table()) {
      Json object = Json::object();
      for (const auto& [key, child] : *table) {
        object[std::string(key.str())] = Convert(child, JoinKey(path, key.str()));
      }
      return object;
    }
    if (const toml::array* array = node.as_array()) {
      Json list = Json::array();
      for (size_t i = 0; i < array->size(); ++i) {
        list.push_back(Convert((*array)[i], JoinIndex(path, i)));
      }
      return list;
    }
    if (const auto* integer = node.as_integer()) return integer->get();
    if (const auto* boolean = node.as_boolean()) return boolean->get();
    if (const auto* string = node.as_string()) return string->get();
    if (const auto* floating = node.as_floating_point()) return floating->get();
    if (const auto* date = node.as_date()) return FormatDate(date->get());
    if (const auto* time = node.as_time()) return FormatTime(time->get());
    if (const auto* date_time = node.as_date_time()) return FormatDateTime(date_time->get());
    SPOOLD_CHECK(false && "toml++ node of no known type");
    return nullptr;
  }

 private:
  std::map<std::string, SourcePos>* positions_;
};

// toml++'s descriptions quote the text they stumbled on ("saw 'x'", "cannot
// redefine existing table 'a.b'"), so only their fixed opening, "Error while
// parsing <what>", is kept, and only when <what> is plain words.
std::string TomlErrorMessage(std::string_view description) {
  constexpr std::string_view kPrefix = "Error while parsing ";
  std::string message = "the file is not valid TOML";
  if (description.substr(0, kPrefix.size()) != kPrefix) return message;
  const size_t colon = description.find(':', kPrefix.size());
  if (colon == std::string_view::npos) return message;
  const std::string_view what = description.substr(kPrefix.size(), colon - kPrefix.size());
  for (char c : what) {
    if (!((c >= 'a' && c <= 'z') || c == ' ' || c == '-')) return message;
  }
  return message + " (error while parsing " + std::string(what) + ")";
}

Result<Document> ParseToml(std::string_view text) {
  if (Status safe = CheckTomlSafety(text); !safe.ok()) return safe.error();
  toml::parse_result parsed = toml::parse(text);
  if (!parsed) {
    const toml::parse_error& failure = parsed.error();
    const auto& begin = failure.source().begin;
    return ParseError(TomlErrorMessage(failure.description()),
                      SourcePos{static_cast<int>(begin.line), static_cast<int>(begin.column)});
  }
  Document document;
  TomlConverter converter(&document.positions);
  document.value = converter.Convert(parsed.table(), "");
  return document;
}

// ---------------------------------------------------------------------------
// JSON

// One pass over the JSON text before nlohmann-json sees it. It bounds nesting at
// kMaxNesting (a 100,000-deep "[[[[" is refused at once), finds duplicate keys
// (nlohmann-json silently keeps the last one, so a typo'd second "retry" would
// pass), and records where each key's value and each array element starts.
// It follows only the structure; whatever is malformed is left for
// nlohmann-json to report, and the scan stops trusting itself from there on.
class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text) : text_(text) {}

  // Returns the nesting error, if any; positions and the first duplicate key are
  // available afterwards.
  std::optional<Error> Run() {
    while (pos_ < text_.size() && !lost_) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\r') {
        Advance();
      } else if (c == '\n') {
        ++pos_;
        ++line_;
        column_ = 1;
      } else if (c == '{' || c == '[') {
        StartValue();
        if (frames_.size() + 1 > static_cast<size_t>(kMaxNesting)) {
          return ParseError("objects and arrays nest deeper than " + std::to_string(kMaxNesting) + " levels",
                            Here());
        }
        frames_.push_back(Frame{c == '{', c == '{', 0, value_path_, {}, {}});
        Advance();
      } else if (c == '}' || c == ']') {
        if (frames_.empty() || frames_.back().is_object != (c == '}')) {
          lost_ = true;
        } else {
          frames_.pop_back();
          Advance();
        }
      } else if (c == ',') {
        if (!frames_.empty() && frames_.back().is_object) frames_.back().expect_key = true;
        Advance();
      } else if (c == ':') {
        Advance();
      } else if (c == '"') {
        ScanString();
      } else {
        StartValue();
        while (pos_ < text_.size() && !IsStructural(text_[pos_])) Advance();
      }
    }
    return std::nullopt;
  }

  std::map<std::string, SourcePos> TakePositions() { return std::move(positions_); }
  const std::optional<Error>& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool is_object;
    bool expect_key;
    size_t next_index;
    std::string path;
    std::set<std::string> keys;
    std::string member_path;  // the key just read, joined to path
  };

  static bool IsStructural(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '{' || c == '}' || c == '[' || c == ']' ||
           c == ',' || c == ':' || c == '"';
  }

  SourcePos Here() const { return SourcePos{line_, column_}; }

  void Advance() {
    if ((static_cast<uint8_t>(text_[pos_]) & 0xC0) != 0x80) ++column_;
    ++pos_;
  }

  // A value starts here: name it by where it stands and remember its position.
  void StartValue() {
    if (frames_.empty()) {
      value_path_.clear();
      return;
    }
    Frame& frame = frames_.back();
    value_path_ = frame.is_object ? frame.member_path : JoinIndex(frame.path, frame.next_index++);
    if (!value_path_.empty()) positions_.emplace(value_path_, Here());
  }

  void ScanString() {
    const size_t begin = pos_;
    const SourcePos begin_pos = Here();
    Advance();  // opening quote
    bool escaped = false;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\n') {
        lost_ = true;  // raw line breaks are invalid in JSON strings
        return;
      }
      if (text_[pos_] == '\\') {
        escaped = true;
        Advance();
        if (pos_ >= text_.size()) break;
      }
      Advance();
    }
    if (pos_ >= text_.size()) {
      lost_ = true;
      return;
    }
    Advance();  // closing quote
    if (frames_.empty() || !frames_.back().is_object || !frames_.back().expect_key) {
      StartValueAt(begin_pos);
      return;
    }
    const std::string_view raw = text_.substr(begin, pos_ - begin);
    std::string key;
    if (!escaped) {
      key = std::string(raw.substr(1, raw.size() - 2));
    } else {
      // Let nlohmann-json decode the escapes, so "\u0061" and "a" are one key.
      Json decoded = Json::parse(raw.begin(), raw.end(), nullptr, false);
      if (!decoded.is_string()) {
        lost_ = true;
        return;
      }
      key = decoded.get<std::string>();
    }
    Frame& frame = frames_.back();
    frame.expect_key = false;
    frame.member_path = JoinKey(frame.path, key);
    if (!frame.keys.insert(key).second && !duplicate_) {
      duplicate_ = ParseError("the key " + PrintableName(frame.member_path) + " is given more than once",
                              begin_pos, frame.member_path);
    }
  }

  void StartValueAt(SourcePos pos) {
    if (frames_.empty()) return;
    Frame& frame = frames_.back();
    const std::string path = frame.is_object ? frame.member_path : JoinIndex(frame.path, frame.next_index++);
    if (!path.empty()) positions_.emplace(path, pos);
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
  bool lost_ = false;  // the text left the grammar: nlohmann-json will say where
  std::vector<Frame> frames_;
  std::string value_path_;
  std::map<std::string, SourcePos> positions_;
  std::optional<Error> duplicate_;
};

// nlohmann-json's messages end with "; last read: '<the input>'" when the lexer
// failed; that part quotes the file, so it is cut, and only the library's own
// words before it are kept.
std::string JsonErrorMessage(const Json::parse_error& failure) {
  std::string_view what = failure.what();
  const size_t colon = what.find(": ");
  if (colon == std::string_view::npos) return "the file is not valid JSON";
  what.remove_prefix(colon + 2);
  const size_t last_read = what.find("; last read");
  if (last_read != std::string_view::npos) what = what.substr(0, last_read);
  return "the file is not valid JSON: " + std::string(what);
}

Result<Document> ParseJson(std::string_view text) {
  JsonScanner scanner(text);
  if (std::optional<Error> too_deep = scanner.Run()) return *too_deep;
  Document document;
  try {
    document.value = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& failure) {
    // `byte` counts the characters read, so the culprit is the one before it.
    const size_t offset = failure.byte > 0 ? failure.byte - 1 : 0;
    return ParseError(JsonErrorMessage(failure), PositionAt(text, offset));
  } catch (const Json::out_of_range&) {
    return ParseError("the file is not valid JSON: a number is too large", SourcePos{});
  } catch (const Json::exception&) {
    return ParseError("the file is not valid JSON", SourcePos{});
  }
  if (scanner.duplicate()) return *scanner.duplicate();
  document.positions = scanner.TakePositions();
  return document;
}

}  // namespace

SourcePos Document::PositionOf(const std::string& path) const {
  const auto it = positions.find(path);
  return it == positions.end() ? SourcePos{} : it->second;
}

Result<Document> ParseDocument(std::string_view bytes, DocFormat format) {
  // An empty file is valid TOML, a table without keys (validation names what is
  // missing); it is not valid JSON.
  if (bytes.empty() && format == DocFormat::kJson) return ParseError("the file is empty", SourcePos{});
  if (bytes.substr(0, kUtf8Bom.size()) == kUtf8Bom) bytes.remove_prefix(kUtf8Bom.size());
  if (std::optional<size_t> bad = FindInvalidUtf8(bytes)) {
    return ParseError("the file is not valid UTF-8", PositionAt(bytes, *bad));
  }
  Result<Document> document = format == DocFormat::kToml ? ParseToml(bytes) : ParseJson(bytes);
  if (!document.ok()) return document;
  if (!document->value.is_object()) {
    return ParseError(
        format == DocFormat::kToml ? "the top level must be a table" : "the top level must be an object",
        SourcePos{1, 1});
  }
  return document;
}

}  // namespace spoold
