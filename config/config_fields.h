// Reading one value of the configuration file: a typed field with its bounds,
// or an unknown key, each failure an Error naming the field, line and column
// (config/config.cpp reads the sections with these).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "config/toml.h"

namespace spoold::config_fields {

using Source = toml::source_region;

Error FieldError(const char* code, const std::string& field, const Source& where, std::string message);
// "a string", "an integer", ...: how a wrong value is described without quoting it.
std::string TypeName(const toml::node& node);
std::string Join(std::span<const std::string_view> names);
std::string Dotted(const std::string& prefix, std::string_view key);
// `key` is not in `known`, the keys valid in `section` ("" for the top level).
Error UnknownKey(const std::string& section, const toml::key& key, const toml::node& node,
                 std::span<const std::string_view> known);
Status ReadTable(const toml::node& node, const std::string& field, const toml::table** out);
Status ReadInteger(const toml::node& node, const std::string& field, int64_t min, int64_t max, int64_t* out);
Status ReadInt(const toml::node& node, const std::string& field, int64_t min, int64_t max, int* out);
Status ReadBool(const toml::node& node, const std::string& field, bool* out);
Status CheckNoNul(const std::string& text, const std::string& field, const Source& where);
Status ReadString(const toml::node& node, const std::string& field, bool allow_empty, std::string* out);
Status ReadDuration(const toml::node& node, const std::string& field, Millis min, Millis max, Millis* out);

}  // namespace spoold::config_fields
