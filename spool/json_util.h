// Writing JSON that never throws: strings from the outside world (file names,
// job output, metadata) may hold invalid UTF-8, which nlohmann-json's dump()
// throws on by default. Everything the spool writes goes through DumpJson.
// Nesting is bounded on input (kMaxNesting), so dump's recursion is bounded too.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace spoold {

using Json = nlohmann::json;

// Compact (indent < 0) or indented JSON; invalid UTF-8 is replaced by U+FFFD.
std::string DumpJson(const Json& value, int indent = -1);

// `text` with invalid UTF-8 sequences replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view text);

// What a message may say about a value: numbers and booleans as they are (they
// cannot carry hostile text), everything else only by its type. Never the
// content of a string.
std::string DescribeValue(const Json& v);

// Whether JSON text nests arrays and objects at most `max_depth` deep (strings
// skipped): checked before parsing files read back from disk, because the
// parsed value is copied and destroyed recursively.
bool JsonDepthWithin(std::string_view text, int max_depth);

// The same for a parsed value, without recursion (a deep value would overflow
// the stack of a recursive walk, as it does nlohmann's copy and dump).
bool JsonValueDepthWithin(const Json& value, int max_depth);

// The path ("a.b[2]", keys as they are) of the first number in `value` that is
// nan or infinite, which JSON cannot hold (dump() writes null); nullopt when
// there is none. Keys in their sorted order; no recursion.
std::optional<std::string> FindNonFinite(const Json& value);

// A short printable rendering of an untrusted name for messages: invalid UTF-8
// and control characters escaped, cut to `max_len` bytes with "...".
std::string PrintableName(std::string_view text, size_t max_len = 80);

}  // namespace spoold
