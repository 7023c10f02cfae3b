#include "spool/media_types.h"

#include <fstream>
#include <vector>

namespace spoold {

namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// RFC 6838 section 4.2: restricted-name, 1 to 127 characters, starting with a
// letter or digit.
bool IsRestrictedName(std::string_view name) {
  if (name.empty() || name.size() > 127 || !IsAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsAlnum(c) && std::string_view("!#$&-^_.+").find(c) == std::string_view::npos) return false;
  }
  return true;
}

// "type/subtype". The type goes into results.json as it is, so anything else
// (bytes that are not UTF-8, quotes, control characters) is refused here.
bool IsMediaType(std::string_view word) {
  size_t slash = word.find('/');
  return slash != std::string_view::npos && IsRestrictedName(word.substr(0, slash)) &&
         IsRestrictedName(word.substr(slash + 1));
}

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The words of one line up to a comment.
std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !IsBlank(line[i])) ++i;
    if (i == start) break;
    if (line[start] == '#') break;
    words.push_back(line.substr(start, i - start));
  }
  return words;
}

}  // namespace

MediaTypeTable MediaTypeTable::Parse(std::string_view text) {
  MediaTypeTable table;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    std::vector<std::string_view> words = Words(line);
    if (words.size() < 2 || !IsMediaType(words[0])) continue;
    for (size_t i = 1; i < words.size(); ++i) {
      table.types_.insert_or_assign(LowerAscii(words[i]), std::string(words[0]));
    }
  }
  return table;
}

MediaTypeTable MediaTypeTable::Load(const std::string& path) {
  // Not ReadSmallFile: that refuses symbolic links, which are fine for a system
  // file that only root can place. A missing, unreadable or oversized file gives
  // the empty table (the spool library logs nothing; see the header).
  std::ifstream in(path, std::ios::binary);
  if (!in) return MediaTypeTable();
  std::string text(kMaxFileSize + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return MediaTypeTable();
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileSize) return MediaTypeTable();
  return Parse(text);
}

std::string_view MediaTypeTable::Find(std::string_view extension) const {
  auto it = types_.find(LowerAscii(extension));
  return it == types_.end() ? std::string_view() : std::string_view(it->second);
}

const MediaTypeTable& SystemMediaTypes() {
  // A function-local static: initialized once, by the first caller, even when
  // several threads call at the same time (C++11 [stmt.dcl]).
  static const MediaTypeTable table = MediaTypeTable::Load(kSystemMimeTypesPath);
  return table;
}

}  // namespace spoold
