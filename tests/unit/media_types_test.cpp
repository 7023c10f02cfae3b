// Tests of spool/media_types: parsing mime.types text (comments, blanks, case,
// repeated extensions, malformed and hostile lines), loading a file (missing,
// a folder, too large) and the system's /etc/mime.types, loaded once.
#include "spool/media_types.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "test_files.h"

using namespace spoold;
using namespace testfiles;
using namespace std::string_literals;

TEST_CASE("media_types: Parse reads types, extensions and comments") {
  const MediaTypeTable table = MediaTypeTable::Parse(
      "# a comment line: text/x-commented cmt\n"
      "\n"
      "   \t  \n"
      "text/plain\t\t\ttxt text  log\n"
      "application/json json # trailing comment: jsn\n"
      "image/PNG PNG\r\n"
      "application/only-a-type\n"
      "  text/csv   csv\n"
      "text/x-sh sh\n"
      "application/x-sh sh\n"
      "application/vnd.a+b-c_d.e csv2");
  CHECK(table.Find("txt") == "text/plain");
  CHECK(table.Find("text") == "text/plain");
  CHECK(table.Find("log") == "text/plain");
  CHECK(table.Find("TXT") == "text/plain");
  CHECK(table.Find("json") == "application/json");
  CHECK(table.Find("#") == "");
  CHECK(table.Find("jsn") == "");
  CHECK(table.Find("cmt") == "");
  CHECK(table.Find("png") == "image/PNG");  // the type as written, the extension any case
  CHECK(table.Find("csv") == "text/csv");
  CHECK(table.Find("sh") == "application/x-sh");             // listed twice: the later one
  CHECK(table.Find("csv2") == "application/vnd.a+b-c_d.e");  // no newline at the end
  CHECK(table.Find("") == "");
  CHECK(table.Find("unknown") == "");
  CHECK(table.size() == 8);
}

TEST_CASE("media_types: malformed and hostile lines are skipped without harm") {
  struct {
    std::string line;
    const char* why;
  } bad[] = {
      {"noslash bad", "no subtype"},
      {"text/ bad", "empty subtype"},
      {"/plain bad", "empty type"},
      {"text/plain/extra bad", "two slashes"},
      {"text/pl;ain bad", "a parameter"},
      {"text/pl\"ain bad", "a quote"},
      {"-text/plain bad", "starts with a symbol"},
      {"text/pl\xc3\xa4in bad", "not ASCII"},
      {"text/pl\377ain bad", "not UTF-8"},
      {std::string("text/pl\0ain bad", 15), "a NUL byte"},
      {"text/pl\001ain bad", "a control character"},
      {"text/" + std::string(128, 'x') + " bad", "subtype longer than 127"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.why);
    const MediaTypeTable table = MediaTypeTable::Parse(b.line + "\ntext/plain good\n");
    CHECK(table.Find("bad") == "");
    CHECK(table.Find("good") == "text/plain");  // the next line still counts
  }

  // Odd extensions are only keys: they are stored and do no harm.
  const MediaTypeTable odd =
      MediaTypeTable::Parse("text/plain e\377x a\0b "s + std::string(100000, 'y') + "\n");
  CHECK(odd.Find("e\377x") == "text/plain");
  CHECK(odd.Find("a\0b"s) == "text/plain");
  CHECK(odd.Find(std::string(100000, 'Y')) == "text/plain");
  CHECK(odd.size() == 3);

  // Random text from the bytes that matter to the parser, made by a fixed
  // generator: parsing never crashes, and every type it accepted is printable
  // ASCII with one "/".
  const std::string alphabet = "ab/ \n#\t\r\0\xff;A+."s;
  uint32_t state = 12345;
  size_t found = 0;
  for (int round = 0; round < 200; ++round) {
    std::string text(4096, '\0');
    for (char& c : text) {
      state = state * 1664525u + 1013904223u;
      c = alphabet[(state >> 16) % alphabet.size()];
    }
    const MediaTypeTable table = MediaTypeTable::Parse(text);
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
      if (i < text.size() && text[i] != ' ' && text[i] != '\n') continue;
      std::string_view type = table.Find(std::string_view(text).substr(start, i - start));
      start = i + 1;
      if (type.empty()) continue;
      ++found;
      CHECK(std::count(type.begin(), type.end(), '/') == 1);
      for (char c : type) CHECK((c > 0x20 && c < 0x7f));
    }
  }
  CHECK(found > 0);  // the text did reach the lines that are accepted
}

TEST_CASE("media_types: Load reads a file and gives an empty table otherwise") {
  TempDir tmp;
  WriteFile(tmp / "mime.types", "# test\ntext/csv csv\nimage/tiff tif tiff\n");
  const MediaTypeTable table = MediaTypeTable::Load(tmp / "mime.types");
  CHECK(table.Find("csv") == "text/csv");
  CHECK(table.Find("TIFF") == "image/tiff");
  CHECK(table.size() == 3);

  CHECK(MediaTypeTable::Load(tmp / "missing").size() == 0);
  CHECK(MediaTypeTable::Load(tmp.path()).size() == 0);  // a folder

  std::string large = "text/csv csv\n";
  large.resize(MediaTypeTable::kMaxFileSize + 1, '#');
  WriteFile(tmp / "large.types", large);
  CHECK(MediaTypeTable::Load(tmp / "large.types").size() == 0);
  large.resize(MediaTypeTable::kMaxFileSize);
  WriteFile(tmp / "limit.types", large);
  CHECK(MediaTypeTable::Load(tmp / "limit.types").Find("csv") == "text/csv");
}

TEST_CASE("media_types: the system's /etc/mime.types, loaded once for all threads") {
  std::vector<const MediaTypeTable*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&seen, i] { seen[i] = &SystemMediaTypes(); });
  }
  for (std::thread& t : threads) t.join();
  for (const MediaTypeTable* table : seen) CHECK(table == &SystemMediaTypes());

  const MediaTypeTable& table = SystemMediaTypes();
  REQUIRE_MESSAGE(table.size() > 0, "/etc/mime.types is missing: install media-types");
  CHECK(table.Find("json") == "application/json");
  CHECK(table.Find("txt") == "text/plain");
  CHECK(table.Find("png") == "image/png");
  CHECK(table.Find("csv") == "text/csv");
  CHECK(table.Find("tif") == "image/tiff");
  CHECK(table.Find("TIF") == "image/tiff");
}
