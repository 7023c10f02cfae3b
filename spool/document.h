// One parsed job or control file, whatever its format: the value as JSON (TOML
// tables become objects, TOML dates and times become RFC 3339 strings) plus where
// each key stood in the source, so validation can name line and column. Parsing
// bounds nesting (kMaxNesting) before the parsers see the text, so a hostile file
// can neither crash nor hang it. Both formats: invalid UTF-8, a top level that is
// not a table/object, and (JSON) an empty file and a key given twice are parse
// errors; an empty TOML file is an empty table. A UTF-8 byte order mark at the
// start is accepted and skipped. TOML nan and inf are kept as numbers (valid
// TOML; the value then has no exact JSON form, and validation refuses them).
// Pure: no state, no I/O.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "config/result.h"
#include "spool/json_util.h"

namespace spoold {

enum class DocFormat { kToml, kJson };

struct SourcePos {
  int line = 0;  // 1-based; 0 = unknown
  int column = 0;
};

struct Document {
  Json value;  // always an object at the top
  // Dotted key path ("retry.attempts", "command[2]", "env.HOME") -> where that
  // key's value (or that array element) starts in the source. Keys that contain
  // dots make ambiguous paths; only one position is kept for such a path.
  std::map<std::string, SourcePos> positions;

  SourcePos PositionOf(const std::string& path) const;  // {0,0} when unknown
};

// Parses `bytes`. Errors have code "parse_error", the line and column where known,
// and a message that does not quote the input.
Result<Document> ParseDocument(std::string_view bytes, DocFormat format);

}  // namespace spoold
