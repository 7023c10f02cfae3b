// Media types by file extension, read from a mime.types file (by default
// /etc/mime.types, from Debian's media-types package) instead of a table of our
// own. Owns the parsed table; the system one is parsed once, on first use, and
// then shared read-only by every thread for the life of the process (a changed
// /etc/mime.types is seen after a restart). Logs nothing and never fails: a file
// that cannot be read gives an empty table, so every lookup is unknown and
// callers fall back to application/octet-stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace spoold {

inline constexpr const char* kSystemMimeTypesPath = "/etc/mime.types";

class MediaTypeTable {
 public:
  // mime.types text: one "type/subtype ext1 ext2 ..." a line, separated by blanks;
  // a word starting with "#" comments out the rest of its line. Extensions are
  // matched without regard to ASCII case; one listed under two types gets the
  // later one. Lines whose type is not a well-formed media type are skipped.
  static MediaTypeTable Parse(std::string_view text);
  // Reads and parses the file at `path`; an empty table if it cannot be read or
  // is larger than kMaxFileSize.
  static MediaTypeTable Load(const std::string& path);
  static constexpr size_t kMaxFileSize = 1 << 20;  // Debian's file is about 74 KB

  // The media type for `extension` (without the dot, any case), or "" if unknown.
  std::string_view Find(std::string_view extension) const;
  size_t size() const { return types_.size(); }

 private:
  std::unordered_map<std::string, std::string> types_;  // lower-case extension -> type
};

// The table of /etc/mime.types, loaded on the first call (thread-safe).
const MediaTypeTable& SystemMediaTypes();

}  // namespace spoold
