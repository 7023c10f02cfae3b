// Tests of ParseDocument and CheckTomlSafety. The hostile inputs below crash
// toml++ 3.3 (stack overflow or an internal assert) if they ever reach it; this
// binary is built with asserts on, so an input that slipped past the safety check
// would abort the whole run rather than fail one case.
#include "spool/document.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "config/toml_safety.h"

namespace spoold {
namespace {

using namespace std::string_literals;

std::string Repeat(std::string_view piece, int count) {
  std::string out;
  out.reserve(piece.size() * static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) out += piece;
  return out;
}

// `count` dotted parts: "a.a.a".
std::string DottedKey(int count) {
  std::string key = Repeat("a.", count);
  key.pop_back();
  return key;
}

struct Rejection {
  const char* name;
  DocFormat format;
  std::string input;
  int line;
  int column;
  const char* fragment;  // must appear in the message
};

void CheckRejected(const Rejection& c) {
  const std::string name = c.name;
  CAPTURE(name);
  Result<Document> doc = ParseDocument(c.input, c.format);
  REQUIRE_FALSE(doc.ok());
  CHECK(doc.error().code == "parse_error");
  CHECK(doc.error().line == c.line);
  CHECK(doc.error().column == c.column);
  CAPTURE(doc.error().message);
  CHECK(doc.error().message.find(c.fragment) != std::string::npos);
}

TEST_CASE("document: TOML converts to JSON with positions") {
  const std::string text =
      "title = \"nightly\"\n"
      "command = [\"/bin/echo\", \"a b\", \"c\"]\n"
      "[retry]\n"
      "attempts = 3\n"
      "backoff = 1.5\n"
      "[env]\n"
      "HOME = \"/tmp\"\n"
      "[metadata]\n"
      "a.b = [1, 2]\n"
      "when = 1979-05-27T07:32:00.999Z\n"
      "local = 1979-05-27T07:32:00\n"
      "spaced = 1979-05-27 07:32:00Z\n"
      "day = 1979-05-27\n"
      "at = 07:32:00\n"
      "offset = 1979-05-27T00:32:00-07:00\n"
      "floats = [1.5, 2.25, 3.0, 4e2, -0.5, 6.02e23, 1_000.5]\n"
      "\"x.y\" = 1\n"
      "p . q = 2\n"
      "[[runs]]\n"
      "n = 1\n"
      "[[runs]]\n"
      "n = 2\n";
  Result<Document> doc = ParseDocument(text, DocFormat::kToml);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  const Json& v = doc->value;
  CHECK(v["title"] == "nightly");
  CHECK(v["command"] == Json::array({"/bin/echo", "a b", "c"}));
  CHECK(v["retry"]["attempts"].is_number_integer());
  CHECK(v["retry"]["attempts"] == 3);
  CHECK(v["retry"]["backoff"].is_number_float());
  CHECK(v["retry"]["backoff"] == 1.5);
  CHECK(v["env"]["HOME"] == "/tmp");
  const Json& m = v["metadata"];
  CHECK(m["a"]["b"] == Json::array({1, 2}));
  CHECK(m["when"] == "1979-05-27T07:32:00.999Z");
  CHECK(m["local"] == "1979-05-27T07:32:00");
  CHECK(m["spaced"] == "1979-05-27T07:32:00Z");
  CHECK(m["day"] == "1979-05-27");
  CHECK(m["at"] == "07:32:00");
  CHECK(m["offset"] == "1979-05-27T00:32:00-07:00");
  CHECK(m["floats"].size() == 7);
  CHECK(m["floats"][6] == 1000.5);
  CHECK(m["x.y"] == 1);
  CHECK(m["p"]["q"] == 2);
  CHECK(v["runs"][1]["n"] == 2);

  struct Expected {
    const char* path;
    int line;
    int column;
  };
  const std::vector<Expected> positions = {
      {"title", 1, 9},      {"command", 2, 11},     {"command[2]", 2, 32},      {"retry.attempts", 4, 12},
      {"env.HOME", 7, 8},   {"metadata.a.b", 9, 7}, {"metadata.a.b[1]", 9, 11}, {"metadata.when", 10, 8},
      {"runs[1].n", 22, 5},
  };
  for (const Expected& e : positions) {
    CAPTURE(e.path);
    const SourcePos pos = doc->PositionOf(e.path);
    CHECK(pos.line == e.line);
    CHECK(pos.column == e.column);
  }
  CHECK(doc->PositionOf("no.such.key").line == 0);
  CHECK(doc->PositionOf("no.such.key").column == 0);
}

TEST_CASE("document: TOML text that looks hostile inside strings and comments is fine") {
  const std::string text =
      "# [= a=[} 1979-05-27T:00\n"
      "s = \"\"\"\n"
      "[=\n"
      "a=[}\n"
      "\\\"\"\" still inside\n"
      "\"\"\"\n"
      "t = '''\n"
      "[,\n"
      "'''\n"
      "u = \"[= \\\" a.b.c\"\n"
      "w = 'a=[}'\n"
      "q = \"\"\"\"quoted\"\"\"\"\n"
      "crlf = 1\r\n"
      "[ spaced . header ]  # comment\n"
      "\"quoted.dots\".'and.more' = { x = [ [1, 2], [\"]\"] ], y = {} }\n";
  Result<Document> doc = ParseDocument(text, DocFormat::kToml);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  CHECK(doc->value["s"] == "[=\na=[}\n\"\"\" still inside\n");
  CHECK(doc->value["q"] == "\"quoted\"");
  const Json& table = doc->value["spaced"]["header"]["quoted.dots"]["and.more"];
  CHECK(table["x"][1][0] == "]");
  CHECK(table["y"].is_object());
}

TEST_CASE("document: non-ASCII text in strings, keys and comments is fine") {
  const std::string text =
      "# \xC3\xA9t\xC3\xA9 \xD0\x96 \xE3\x80\x81\n"
      "\"cl\xC3\xA9\" = \"\xC3\xA9t\xC3\xA9\"  # \xC3\xA9\n"
      "l = '\xD0\x96\xE3\x80\x82'\n"
      "m = \"\"\"\n\xC3\xA9\n  \xC3\xA9\\\n  x\xC3\xA9\"\"\"\n"
      "n = [\"\xC3\xA9\", '\xEF\xAC\xA6']\n";
  Result<Document> doc = ParseDocument(text, DocFormat::kToml);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  CHECK(doc->value["cl\xC3\xA9"] == "\xC3\xA9t\xC3\xA9");
  CHECK(doc->value["l"] == "\xD0\x96\xE3\x80\x82");
  CHECK(doc->value["m"] == "\xC3\xA9\n  \xC3\xA9x\xC3\xA9");
  CHECK(doc->value["n"][1] == "\xEF\xAC\xA6");
}

TEST_CASE("document: nesting up to kMaxNesting is accepted") {
  // Root table (1) + 63 tables from the dotted key; the value is a scalar.
  CHECK(ParseDocument(DottedKey(64) + " = 1\n", DocFormat::kToml).ok());
  // [a...63] makes a table at depth 64.
  CHECK(ParseDocument("[" + DottedKey(63) + "]\nx = 1\n", DocFormat::kToml).ok());
  // a = [ ... ] with 63 arrays: the innermost is at depth 64.
  CHECK(ParseDocument("a = " + Repeat("[", 63) + Repeat("]", 63) + "\n", DocFormat::kToml).ok());
  CHECK(ParseDocument("{\"a\":" + Repeat("[", 63) + Repeat("]", 63) + "}", DocFormat::kJson).ok());
  // Many floats on one line are words, not dotted keys.
  std::string floats = "v = [";
  for (int i = 0; i < 5000; ++i) floats += "1.5, ";
  floats += "2.5]\n";
  Result<Document> doc = ParseDocument(floats, DocFormat::kToml);
  REQUIRE(doc.ok());
  CHECK(doc->value["v"].size() == 5001);
}

TEST_CASE("document: an empty TOML file is an empty table, as is one of comments and blanks") {
  for (const std::string& text :
       {""s, "\n"s, "  \t\n\n"s, "# nothing yet\n\n# at all"s, "\xEF\xBB\xBF"s, "\r\n"s}) {
    CAPTURE(text);
    Result<Document> doc = ParseDocument(text, DocFormat::kToml);
    REQUIRE_MESSAGE(doc.ok(), doc.error().message);
    CHECK(doc->value == Json::object());
  }
}

TEST_CASE("document: TOML nan and inf are kept as numbers, for validation to judge") {
  Result<Document> doc = ParseDocument("x = nan\n[t]\nv = [1.0, -inf]\nw = +inf\n", DocFormat::kToml);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  CHECK(std::isnan(doc->value["x"].get<double>()));
  CHECK(doc->value["t"]["v"][1].get<double>() == -HUGE_VAL);
  CHECK(doc->value["t"]["w"].get<double>() == HUGE_VAL);
  CHECK(doc->PositionOf("t.v[1]").line == 3);
  CHECK(doc->PositionOf("t.v[1]").column == 11);
  CHECK(FindNonFinite(doc->value) == "t.v[1]");
  CHECK(FindNonFinite(doc->value["x"]) == "");
  CHECK_FALSE(FindNonFinite(doc->value["t"]["v"][0]));
}

TEST_CASE("document: JSON converts with positions") {
  const std::string text =
      "{\"command\": [\"a\", \"b\"],\n"
      " \"retry\": {\"attempts\": 3, \"backoff\": 1.5},\n"
      " \"env\": {\"H\\u00e9\": \"x\"}, \"n\": null}";
  Result<Document> doc = ParseDocument(text, DocFormat::kJson);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  CHECK(doc->value["retry"]["attempts"].is_number_integer());
  CHECK(doc->value["env"]["H\xC3\xA9"] == "x");
  CHECK(doc->PositionOf("command[1]").line == 1);
  CHECK(doc->PositionOf("command[1]").column == 19);
  CHECK(doc->PositionOf("retry.attempts").line == 2);
  CHECK(doc->PositionOf("retry.attempts").column == 24);
  CHECK(doc->PositionOf("retry").column == 11);
  CHECK(doc->PositionOf("env.H\xC3\xA9").line == 3);
  CHECK(doc->PositionOf("n").line == 3);
}

TEST_CASE("document: a UTF-8 byte order mark is accepted in both formats") {
  Result<Document> toml = ParseDocument(
      "\xEF\xBB\xBF"
      "a = 1\n",
      DocFormat::kToml);
  REQUIRE(toml.ok());
  CHECK(toml->value["a"] == 1);
  CHECK(toml->PositionOf("a").column == 5);
  Result<Document> json = ParseDocument("\xEF\xBB\xBF{\"a\": 1}", DocFormat::kJson);
  REQUIRE(json.ok());
  CHECK(json->value["a"] == 1);
}

TEST_CASE("document: rejections") {
  const std::vector<Rejection> cases = {
      {"empty json", DocFormat::kJson, "", 0, 0, "the file is empty"},
      {"toml syntax", DocFormat::kToml, "a = 1\nb = \n", 2, 5, "not valid TOML"},
      {"toml duplicate key", DocFormat::kToml, "a = 1\na = 2\n", 2, 5, "not valid TOML"},
      {"toml NUL", DocFormat::kToml, "a = 1\x00\n"s, 1, 6, "NUL byte"},
      {"toml bad utf-8", DocFormat::kToml, "a = 1\nb = \"\xFF\"\n", 2, 6, "not valid UTF-8"},
      {"toml surrogate", DocFormat::kToml, "b = \"\xED\xA0\x80\"\n", 1, 6, "not valid UTF-8"},
      {"toml overlong", DocFormat::kToml, "b = \"\xC0\x80\"\n", 1, 6, "not valid UTF-8"},
      {"json bad utf-8", DocFormat::kJson, "{\"a\":\n \"\xC3\"}", 2, 3, "not valid UTF-8"},
      {"json NUL", DocFormat::kJson, "{\"a\": \"x\x00\"}"s, 1, 9, "not valid JSON"},
      {"json syntax", DocFormat::kJson, "{\"a\":\n tru}", 2, 5, "not valid JSON"},
      {"json trailing", DocFormat::kJson, "{} x", 1, 4, "not valid JSON"},
      {"json top-level array", DocFormat::kJson, "[1, 2]", 1, 1, "top level must be"},
      {"json top-level string", DocFormat::kJson, "\"x\"", 1, 1, "top level must be"},
      {"json duplicate key", DocFormat::kJson, "{\"a\": 1,\n \"a\": 2}", 2, 2,
       "the key a is given more than once"},
      {"json duplicate key via escape", DocFormat::kJson, "{\"x\": {\"b\": 1, \"\\u0062\": 2}}", 1, 16,
       "the key x.b is given more than once"},
      {"json huge number", DocFormat::kJson, "{\"a\": 1e400}", 0, 0, "too large"},
  };
  for (const Rejection& c : cases) CheckRejected(c);
}

TEST_CASE("document: error messages never quote the input") {
  const std::vector<std::pair<DocFormat, std::string>> inputs = {
      {DocFormat::kToml, "a = 1 zqxsecret\n"},          {DocFormat::kToml, "zqxsecret = 1\nzqxsecret = 2\n"},
      {DocFormat::kToml, "[zqxsecret]\n[zqxsecret]\n"}, {DocFormat::kToml, "a = zqxsecret\n"},
      {DocFormat::kJson, "{\"a\": zqxsecret}"},         {DocFormat::kJson, "{\"a\": \"zqxsecret}"},
      {DocFormat::kJson, "{\"zqxsecret\" 1}"},
  };
  for (const auto& [format, input] : inputs) {
    CAPTURE(input);
    Result<Document> doc = ParseDocument(input, format);
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.error().code == "parse_error");
    CHECK(doc.error().line >= 1);
    CHECK(doc.error().message.find("zqxsecret") == std::string::npos);
  }
}

// Each of these reaches an assert inside toml++ 3.3 (undefined behaviour with
// NDEBUG) or overflows its stack. Found by reading parser.inl and by fuzzing
// toml::parse with libFuzzer and asserts on.
TEST_CASE("document: inputs that would crash toml++ are refused first") {
  const std::string deep_dots = DottedKey(200000) + " = 1\n";  // ~400 KB
  REQUIRE(deep_dots.size() > 400000);
  const std::vector<Rejection> cases = {
      // parse_table_header() -> parse_key() asserts on a non-key character.
      {"header [=", DocFormat::kToml, "[=", 1, 2, "table header must start with a key"},
      {"header [,", DocFormat::kToml, "[,", 1, 2, "table header must start with a key"},
      {"header [{", DocFormat::kToml, "[{", 1, 2, "table header must start with a key"},
      {"header [[[", DocFormat::kToml, "[[[", 1, 3, "table header must start with a key"},
      {"header [\\v", DocFormat::kToml, "[\x0b", 1, 2, "table header must start with a key"},
      {"header [\\t\\x1b", DocFormat::kToml, "[\t\x1b", 1, 3, "table header must start with a key"},
      {"header [ =", DocFormat::kToml, "[ =a'c", 1, 3, "table header must start with a key"},
      {"header [#", DocFormat::kToml, "[# \n=bt", 1, 2, "table header must start with a key"},
      {"header [\\n", DocFormat::kToml, "[a]\nb=1\n[\n", 3, 2, "table header must start with a key"},
      {"header [[ )", DocFormat::kToml, "x = 1\n\n[[ )", 3, 4, "table header must start with a key"},
      // parse_array() -> parse_value() asserts it is not at a value terminator.
      {"array [}", DocFormat::kToml, "a=[}", 1, 4, "array element is missing"},
      {"array [1,}", DocFormat::kToml, "a=[1,}", 1, 6, "array element is missing"},
      {"array [\\n}", DocFormat::kToml, "a=[\n}", 2, 1, "array element is missing"},
      {"array [#c\\n}", DocFormat::kToml, "a=[#c\n}", 2, 1, "array element is missing"},
      {"array in inline table", DocFormat::kToml, "a={b=[}]}", 1, 7, "array element is missing"},
      {"array U+2028", DocFormat::kToml, "a=[\xE2\x80\xA8]", 1, 4, "array element is missing"},
      {"array U+2029", DocFormat::kToml, "a=[1,\xE2\x80\xA9]", 1, 6, "array element is missing"},
      {"array U+0085", DocFormat::kToml, "a=[\xC2\x85]", 1, 4, "array element is missing"},
      // parse_date_time() -> parse_time() asserts a digit follows the 'T'.
      {"date-time T:", DocFormat::kToml, "a=1979-05-27T:00", 1, 13, "no time after its 'T'"},
      {"date-time Tp", DocFormat::kToml, "d = 1979-05-27Tp7:32:00Z\n", 1, 15, "no time after its 'T'"},
      {"date-time t-", DocFormat::kToml, "d = [1979-05-27t-1:00]\n", 1, 16, "no time after its 'T'"},
      // parse_value()'s look-ahead for "YYYY-MM-DD HH:MM" asserts when one digit
      // and then a terminator follow the space.
      {"date space digit ,", DocFormat::kToml, "a = 1979-05-20 3,", 1, 16, "time of one digit"},
      {"date-like = space digit", DocFormat::kToml, "a = 1960-05-2= 1\n79-05-2'2'", 1, 16,
       "time of one digit"},
      {"date-like letters", DocFormat::kToml, "e=2-----a-/- 0\t00000001744419682   [N]\n", 1, 14,
       "time of one digit"},
      {"date with underscore", DocFormat::kToml, "a = [1_979-05-20 3]\n", 1, 18, "time of one digit"},
      // is_non_ascii_horizontal_whitespace() reaches __builtin_unreachable() for
      // U+00A1-U+0499, U+2C5E-U+2FFF, U+3001-U+3057, U+FB26-U+FEFE.
      {"e-acute alone", DocFormat::kToml, "\xC3\xA9", 1, 1, "cannot handle"},
      {"e-acute after a value", DocFormat::kToml, "a = 1\xC3\xA9\n", 1, 6, "cannot handle"},
      {"e-acute after a blank", DocFormat::kToml, "a = 1 \xC3\xA9\n", 1, 7, "cannot handle"},
      {"e-acute after a header", DocFormat::kToml, "[a] \xC3\xA9", 1, 5, "cannot handle"},
      {"e-acute in a key", DocFormat::kToml, "a \xC3\xA9= 1", 1, 3, "cannot handle"},
      {"e-acute in an array", DocFormat::kToml, "a = [1,\xC3\xA9]\n", 1, 8, "cannot handle"},
      {"ideographic comma", DocFormat::kToml, "a = 1\xE3\x80\x81\n", 1, 6, "cannot handle"},
      {"U+FB26", DocFormat::kToml, "a = { b = 1 }\xEF\xAC\xA6", 1, 14, "cannot handle"},
      {"after a line-ending backslash", DocFormat::kToml, "a = \"\"\"x\\\n  \xC3\xA9t\xC3\xA9\"\"\"\n", 2, 3,
       "backslash in a multi-line string"},
      {"after a backslash and Unicode blanks", DocFormat::kToml,
       "a = \"\"\"x\\\n \xEF\xBB\xBF\xC2\xA0\xC3\xA9\"\"\"\n", 2, 4, "backslash in a multi-line string"},
      {"in a multi-line key", DocFormat::kToml, "''.\"\"\"2\\\n  \xEF\xBB\xB6\"\"\" = 1\n", 2, 3,
       "backslash in a multi-line string"},
      {"after an escaping backslash", DocFormat::kToml, "a = \"\"\"x\\\xD0\x96\"\"\"\n", 1, 10,
       "backslash in a multi-line string"},
      // Stack depth: dotted keys, headers, arrays, inline tables.
      {"400 KB dotted key", DocFormat::kToml, deep_dots, 1, 129, "more than 64 parts"},
      {"65 dotted parts", DocFormat::kToml, DottedKey(65) + " = 1", 1, 129, "more than 64 parts"},
      {"header 64 parts", DocFormat::kToml, "[" + DottedKey(64) + "]", 1, 128, "tables nest deeper than 64"},
      {"dotted key below a deep header", DocFormat::kToml,
       "[" + DottedKey(40) + "]\n" + DottedKey(30) + " = 1\n", 2, 49, "tables nest deeper than 64"},
      {"100,000-deep TOML arrays", DocFormat::kToml, "a = " + Repeat("[", 100000), 1, 68,
       "nest deeper than 64"},
      {"100,000-deep TOML inline tables", DocFormat::kToml, "a = " + Repeat("{b = ", 100000), 1, 320,
       "nest deeper than 64"},
      {"100,000-deep JSON arrays", DocFormat::kJson, "{\"a\":" + Repeat("[", 100000), 1, 69,
       "nest deeper than 64"},
      {"100,000-deep top-level JSON arrays", DocFormat::kJson, Repeat("[", 100000), 1, 65,
       "nest deeper than 64"},
      {"100,000-deep JSON objects", DocFormat::kJson, Repeat("{\"a\":", 100000), 1, 321,
       "nest deeper than 64"},
  };
  for (const Rejection& c : cases) CheckRejected(c);
}

TEST_CASE("toml safety: valid TOML passes the check") {
  const std::vector<std::string> valid = {
      "",
      "# only a comment",
      "a = 1.5\nb = -0.0\nc = +1e-3\nd = 0xDEAD_beef\ne = 0o17\nf = 0b101\n",
      "d = 1979-05-27T07:32:00.999Z\ne = 1979-05-27t07:32:00\nf = 1979-05-27 07:32:00\n",
      "a . b . c = 1\n\"a b\".'c.d' = 2\n",
      "[ a . \"b.c\" ]\n[[ x.y ]]\nz = [1, [2, [3]], {a = 1}]\n",
      "s = 'C:\\path'\nt = \"tab\\there\"\nu = \"\"\"\none\\\n  two\"\"\"\n",
      "e = []\nf = [\n  1, # one\n  2,\n]\n",
      "inline = { a = { b = [ { c = 1 } ] } }\n",
      "k = \"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"\n",
      "a = [1979-05-27 , 1979-05-27 07:32, 1979-05-27]\nb = 1979-05-27 # c\n",
      "t = 1979-05-27T07:32:00+01:30\nu = {d = 1979-05-27 }\n",
  };
  for (const std::string& text : valid) {
    CAPTURE(text);
    const Status status = CheckTomlSafety(text);
    CHECK_MESSAGE(status.ok(), (status.ok() ? "" : status.error().message));
  }
}

}  // namespace
}  // namespace spoold
