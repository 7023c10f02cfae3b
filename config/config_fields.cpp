#include "config/config_fields.h"

#include "config/closest_key.h"
#include "config/duration.h"

namespace spoold::config_fields {

Error FieldError(const char* code, const std::string& field, const Source& where, std::string message) {
  return MakeError(code, std::move(message), field, static_cast<int>(where.begin.line),
                   static_cast<int>(where.begin.column));
}

// "a string", "an integer", ...: how a wrong value is described without quoting it.
std::string TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string Join(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string Dotted(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

// `key` is not in `known`, the keys valid in `section` ("" for the top level).
// Names the close key if there is one, else lists them.
Error UnknownKey(const std::string& section, const toml::key& key, const toml::node& node,
                 std::span<const std::string_view> known) {
  std::string field = Dotted(section, key.str());
  std::string message;
  if (auto suggestion = DidYouMean(field, key.str(), section.empty() ? "" : section + ".", known)) {
    message = std::move(*suggestion);
  } else if (section.empty()) {
    message = (node.is_table() ? "unknown section [" + field + "]" : "unknown top-level key " + field) +
              "; known sections: " + Join(known);
  } else {
    message = "unknown key " + field + " in [" + section + "]; known keys: " + Join(known);
  }
  return FieldError("unknown_field", field, key.source(), std::move(message));
}

Status ReadTable(const toml::node& node, const std::string& field, const toml::table** out) {
  *out = node.as_table();
  if (*out == nullptr) {
    return FieldError("invalid_field", field, node.source(),
                      field + " must be a table, got " + TypeName(node));
  }
  return OkStatus();
}

Status ReadInteger(const toml::node& node, const std::string& field, int64_t min, int64_t max, int64_t* out) {
  std::string rule = field + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const auto* value = node.as_integer();
  if (value == nullptr) {
    return FieldError("invalid_field", field, node.source(), rule + ", got " + TypeName(node));
  }
  int64_t v = value->get();
  if (v < min || v > max) {
    return FieldError("invalid_field", field, node.source(), rule + ", got " + std::to_string(v));
  }
  *out = v;
  return OkStatus();
}

Status ReadInt(const toml::node& node, const std::string& field, int64_t min, int64_t max, int* out) {
  int64_t v = 0;
  if (Status s = ReadInteger(node, field, min, max, &v); !s) return s;
  *out = static_cast<int>(v);
  return OkStatus();
}

Status ReadBool(const toml::node& node, const std::string& field, bool* out) {
  const auto* value = node.as_boolean();
  if (value == nullptr) {
    return FieldError("invalid_field", field, node.source(),
                      field + " must be true or false, got " + TypeName(node));
  }
  *out = value->get();
  return OkStatus();
}

// Every string here ends up in a path, an environment variable or an argv
// element, none of which can hold a NUL byte; TOML can (as "\u0000").
Status CheckNoNul(const std::string& text, const std::string& field, const Source& where) {
  if (text.find('\0') != std::string::npos) {
    return FieldError("invalid_field", field, where, field + " must not contain a NUL character");
  }
  return OkStatus();
}

Status ReadString(const toml::node& node, const std::string& field, bool allow_empty, std::string* out) {
  const auto* value = node.as_string();
  if (value == nullptr) {
    return FieldError("invalid_field", field, node.source(),
                      field + " must be a string, got " + TypeName(node));
  }
  if (!allow_empty && value->get().empty()) {
    return FieldError("invalid_field", field, node.source(), field + " must not be empty");
  }
  if (Status s = CheckNoNul(value->get(), field, node.source()); !s) return s;
  *out = value->get();
  return OkStatus();
}

// A duration is a string ("30s") or a number of seconds (30, 0.5), as in job
// files. ParseDuration and DurationFromSeconds already bound it to 100 years; the
// caller may narrow the range further.
Status ReadDuration(const toml::node& node, const std::string& field, Millis min, Millis max, Millis* out) {
  Result<Millis> d = MakeError("invalid_field", "");
  if (const auto* s = node.as_string()) {
    d = ParseDuration(s->get());
  } else if (const auto* i = node.as_integer()) {
    d = DurationFromSeconds(static_cast<double>(i->get()));
  } else if (const auto* f = node.as_floating_point()) {
    d = DurationFromSeconds(f->get());
  } else {
    return FieldError("invalid_field", field, node.source(),
                      field +
                          " must be a duration (a string such as \"30s\" or a number of "
                          "seconds), got " +
                          TypeName(node));
  }
  if (!d) {
    // ParseDuration's messages start with "must be a duration ..." and leave the
    // key to the caller.
    return FieldError("invalid_field", field, node.source(), field + " " + d.error().message);
  }
  if (*d < min || *d > max) {
    return FieldError("invalid_field", field, node.source(),
                      field + " must be a duration from " + FormatDuration(min) + " to " +
                          FormatDuration(max) + ", got " + FormatDuration(*d));
  }
  *out = *d;
  return OkStatus();
}

}  // namespace spoold::config_fields
