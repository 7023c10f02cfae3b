#include "spool/definition.h"

#include <regex.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <memory>

#include "spool/field_checker.h"
#include "spool/job_spec.h"
#include "spool/json_util.h"

namespace spoold {
namespace {

constexpr size_t kMaxParamName = 64;
constexpr size_t kMaxParams = 100;
constexpr std::string_view kParamKeys[] = {"type", "default", "pattern", "description"};

bool IsParamNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (!first && ((c >= '0' && c <= '9') || c == '_'));
}

// Calls `fn(name, begin, end)` for every "{{name}}" of `text` whose name could
// be a param's; anything else ("{{.Id}}", "{{ x }}") is text.
void ForEachPlaceholder(std::string_view text,
                        const std::function<void(std::string_view, size_t, size_t)>& fn) {
  for (size_t at = text.find("{{"); at != std::string_view::npos; at = text.find("{{", at + 1)) {
    const size_t close = text.find("}}", at + 2);
    if (close == std::string_view::npos) return;
    std::string_view name = text.substr(at + 2, close - at - 2);
    if (IsValidParamName(name)) fn(name, at, close + 2);
  }
}

// One pass: a value that contains "{{x}}" itself is never expanded again.
std::string Substitute(std::string_view text,
                       const std::function<const std::string*(std::string_view)>& value) {
  std::string out;
  size_t copied = 0;
  ForEachPlaceholder(text, [&](std::string_view name, size_t begin, size_t end) {
    if (begin < copied) return;  // inside a placeholder already replaced
    const std::string* v = value(name);
    if (v == nullptr) return;
    out.append(text.substr(copied, begin - copied));
    out.append(*v);
    copied = end;
  });
  out.append(text.substr(copied));
  return out;
}

// The fields that take placeholders (SPEC.md section 2): calls `fn(path, s)`
// for each string of them in `job`.
void ForEachTemplateString(Json& job, const std::function<void(const std::string&, Json&)>& fn) {
  if (auto it = job.find("command"); it != job.end() && it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i) {
      if ((*it)[i].is_string()) fn("command[" + std::to_string(i) + "]", (*it)[i]);
    }
  }
  if (auto it = job.find("env"); it != job.end() && it->is_object()) {
    for (auto& [key, value] : it->items()) {
      if (value.is_string()) fn("env." + key, value);
    }
  }
  for (const char* key : {"cwd", "title"}) {
    if (auto it = job.find(key); it != job.end() && it->is_string()) fn(key, *it);
  }
}

void SubstituteAll(Json& job, const std::map<std::string, std::string>& values) {
  auto lookup = [&](std::string_view name) -> const std::string* {
    auto it = values.find(std::string(name));
    return it == values.end() ? nullptr : &it->second;
  };
  ForEachTemplateString(
      job, [&](const std::string&, Json& s) { s = Substitute(s.get_ref<const std::string&>(), lookup); });
}

// A pattern the daemon compiles: POSIX extended syntax, short, without
// back-references and without a bound on a group. glibc expands a counted
// repetition when it compiles, so nested ones ("((a{1,100}){1,100}){1,100}")
// take seconds and gigabytes; back-references make matching exponential.
// Without them glibc's matcher is linear in the value.
constexpr size_t kMaxPattern = 256;

Status CheckPatternShape(const std::string& pattern) {
  if (pattern.size() > kMaxPattern) return MakeError("invalid_field", "is longer than 256 bytes");
  if (pattern.find('\0') != std::string::npos) return MakeError("invalid_field", "contains a NUL byte");
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (in_class) {
      if (c == ']' && pattern[i - 1] != '[' && !(i >= 2 && pattern[i - 1] == '^' && pattern[i - 2] == '[')) {
        in_class = false;
      }
      continue;
    }
    if (c == '[') {
      in_class = true;
    } else if (c == '\\' && i + 1 < pattern.size()) {
      if (pattern[i + 1] >= '1' && pattern[i + 1] <= '9') {
        return MakeError("invalid_field", "uses a back-reference, which is not allowed");
      }
      ++i;
    } else if (c == '{' && i > 0 && pattern[i - 1] == ')') {
      return MakeError("invalid_field",
                       "puts a {m,n} bound on a group, which is not allowed (bound single items)");
    }
  }
  return OkStatus();
}

}  // namespace

struct ParamSpec::Compiled {
  regex_t re{};
  ~Compiled() { regfree(&re); }
};

namespace {

Result<std::shared_ptr<const ParamSpec::Compiled>> CompilePattern(const std::string& pattern) {
  if (auto shape = CheckPatternShape(pattern); !shape.ok()) return shape.error();
  auto compiled = std::make_shared<ParamSpec::Compiled>();
  if (int rc = regcomp(&compiled->re, pattern.c_str(), REG_EXTENDED); rc != 0) {
    char buf[256];
    regerror(rc, &compiled->re, buf, sizeof buf);
    std::shared_ptr<ParamSpec::Compiled> failed = std::move(compiled);
    // regfree is not for a failed regcomp: the destructor must not run it.
    new (&failed->re) regex_t{};
    return MakeError("invalid_field", std::string("is not a POSIX extended regular expression: ") + buf);
  }
  return std::shared_ptr<const ParamSpec::Compiled>(std::move(compiled));
}

// The whole value must match: the leftmost-longest match (POSIX) starts at 0
// and ends at the end. Matching the pattern as written, not wrapped in
// "^(...)$", keeps "a|b" and its groups meaning what they say.
bool Matches(const ParamSpec& spec, const std::string& text) {
  if (!spec.compiled) return true;
  regmatch_t match{};
  if (regexec(&spec.compiled->re, text.c_str(), 1, &match, 0) != 0) return false;
  return match.rm_so == 0 && static_cast<size_t>(match.rm_eo) == text.size();
}

// `value` as a param of `spec`'s type: nullopt when it is not one. Integers and
// booleans may come as strings (spoolctl's -p k=v has no types).
std::optional<Json> Coerce(const ParamSpec& spec, const Json& value) {
  switch (spec.type) {
    case ParamSpec::Type::kString:
      if (value.is_string()) return value;
      return std::nullopt;
    case ParamSpec::Type::kInteger: {
      if (value.is_number_integer()) return value;
      if (!value.is_string()) return std::nullopt;
      const auto& s = value.get_ref<const std::string&>();
      int64_t n = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size() || s[0] == '+') return std::nullopt;
      return Json(n);
    }
    case ParamSpec::Type::kBoolean:
      if (value.is_boolean()) return value;
      if (value == "true") return Json(true);
      if (value == "false") return Json(false);
      return std::nullopt;
  }
  return std::nullopt;
}

const char* TypeRule(ParamSpec::Type type) {
  switch (type) {
    case ParamSpec::Type::kString:
      return "a string";
    case ParamSpec::Type::kInteger:
      return "an integer (or a string of one)";
    case ParamSpec::Type::kBoolean:
      return "true or false";
  }
  return "";
}

// Checks a value for `spec` (type, NUL bytes, pattern); returns it coerced.
Result<Json> CheckParamValue(const Document& doc, const std::string& field, const ParamSpec& spec,
                             const Json& value, const std::string& code) {
  auto coerced = Coerce(spec, value);
  if (!coerced)
    return FieldChecker(doc).Fail(
        code, field, field + " must be " + TypeRule(spec.type) + ", got " + DescribeValue(value));
  const std::string text = ParamText(*coerced);
  if (text.find('\0') != std::string::npos) {
    return FieldChecker(doc).Fail(code, field, field + " must not contain a NUL byte");
  }
  if (!Matches(spec, text)) {
    // Neither the value nor the pattern is quoted: both are file content.
    return FieldChecker(doc).Fail(code, field, field + " does not match the pattern its definition gives it");
  }
  return *coerced;
}

Result<ParamSpec> ParseParam(const Document& doc, const std::string& field, const Json& table) {
  if (!table.is_object())
    return FieldChecker(doc).Fail("invalid_field", field,
                                  field + " must be a table, got " + DescribeValue(table));
  for (const auto& [key, value] : table.items()) {
    if (std::find(std::begin(kParamKeys), std::end(kParamKeys), key) == std::end(kParamKeys)) {
      return FieldChecker(doc).Fail("unknown_field", field + "." + PrintableName(key, 64),
                                    field + "." + PrintableName(key, 64) +
                                        " is not a key of a param (type, default, pattern, description)");
    }
  }
  ParamSpec spec;
  if (auto it = table.find("type"); it != table.end()) {
    if (*it == "string") {
      spec.type = ParamSpec::Type::kString;
    } else if (*it == "integer") {
      spec.type = ParamSpec::Type::kInteger;
    } else if (*it == "boolean") {
      spec.type = ParamSpec::Type::kBoolean;
    } else {
      return FieldChecker(doc).Fail(
          "invalid_field", field + ".type",
          field + ".type must be \"string\", \"integer\" or \"boolean\", got " + DescribeValue(*it));
    }
  }
  if (auto it = table.find("description"); it != table.end()) {
    if (!it->is_string()) {
      return FieldChecker(doc).Fail("invalid_field", field + ".description",
                                    field + ".description must be a string, got " + DescribeValue(*it));
    }
    spec.description = it->get<std::string>();
  }
  if (auto it = table.find("pattern"); it != table.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return FieldChecker(doc).Fail(
          "invalid_field", field + ".pattern",
          field + ".pattern must be a non-empty POSIX extended regular expression, got " +
              DescribeValue(*it));
    }
    spec.pattern = it->get<std::string>();
    auto re = CompilePattern(spec.pattern);
    if (!re.ok())
      return FieldChecker(doc).Fail("invalid_field", field + ".pattern",
                                    field + ".pattern " + re.error().message);
    spec.compiled = std::move(re.value());
  }
  if (auto it = table.find("default"); it != table.end()) {
    // A default is as strict as the file's type: integer params take integers.
    if ((spec.type == ParamSpec::Type::kInteger && !it->is_number_integer()) ||
        (spec.type == ParamSpec::Type::kBoolean && !it->is_boolean())) {
      return FieldChecker(doc).Fail(
          "invalid_field", field + ".default",
          field + ".default must be " +
              (spec.type == ParamSpec::Type::kInteger ? "an integer" : "true or false") + ", got " +
              DescribeValue(*it));
    }
    auto value = CheckParamValue(doc, field + ".default", spec, *it, "invalid_field");
    if (!value.ok()) return value.error();
    spec.default_value = *value;
  }
  return spec;
}

}  // namespace

bool IsValidParamName(std::string_view name) {
  if (name.empty() || name.size() > kMaxParamName) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsParamNameChar(name[i], i == 0)) return false;
  }
  return true;
}

bool IsValidDefinitionName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = std::isalnum(static_cast<unsigned char>(c)) != 0;
    if (!(alnum || (i > 0 && (c == '_' || c == '-')))) return false;
  }
  return true;
}

const char* ParamTypeName(ParamSpec::Type type) {
  switch (type) {
    case ParamSpec::Type::kString:
      return "string";
    case ParamSpec::Type::kInteger:
      return "integer";
    case ParamSpec::Type::kBoolean:
      return "boolean";
  }
  return "";
}

std::string ParamVariable(const std::string& param) {
  std::string out = "SPOOLD_PARAM_";
  for (char c : param) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string ParamText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  return value.dump();
}

Result<Definition> ParseDefinition(std::string_view name, std::string_view bytes, DocFormat format,
                                   const Config& config) {
  auto doc = ParseDocument(bytes, format);
  if (!doc.ok()) return doc.error();
  Definition def;
  def.name = std::string(name);
  def.job = doc->value;
  if (def.job.contains("definition")) {
    return FieldChecker(*doc).Fail("invalid_field", "definition",
                                   "a definition cannot name another definition");
  }
  if (auto it = def.job.find("params"); it != def.job.end()) {
    if (!it->is_object())
      return FieldChecker(*doc).Fail("invalid_field", "params",
                                     "params must be a table, got " + DescribeValue(*it));
    if (it->size() > kMaxParams) {
      return FieldChecker(*doc).Fail("invalid_field", "params", "a definition declares at most 100 params");
    }
    for (const auto& [pname, table] : it->items()) {
      const std::string field = "params." + PrintableName(pname, 64);
      if (!IsValidParamName(pname)) {
        return FieldChecker(*doc).Fail(
            "invalid_field", field,
            field +
                ": a param's name must be 1 to 64 lower-case letters, digits or '_', "
                "starting with a letter");
      }
      auto spec = ParseParam(*doc, field, table);
      if (!spec.ok()) return spec.error();
      def.params.emplace(pname, std::move(spec.value()));
    }
    def.job.erase(it);
  }
  if (auto it = def.job.find("allow_override"); it != def.job.end()) {
    if (!it->is_array()) {
      return FieldChecker(*doc).Fail(
          "invalid_field", "allow_override",
          "allow_override must be an array of job keys, got " + DescribeValue(*it));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& key = (*it)[i];
      const std::string field = "allow_override[" + std::to_string(i) + "]";
      if (!key.is_string() || !IsJobKey(key.get_ref<const std::string&>())) {
        return FieldChecker(*doc).Fail("invalid_field", field,
                                       field + " must name a key of a job file, got " + DescribeValue(key));
      }
      def.allow_override.insert(key.get<std::string>());
    }
    def.job.erase(it);
  }
  // The job keys must make a valid job whatever the params: checked with each
  // default, or "/" (valid in every templated field, an absolute cwd too).
  std::map<std::string, std::string> samples;
  for (const auto& [pname, spec] : def.params) {
    samples[pname] = spec.default_value                       ? ParamText(*spec.default_value)
                     : spec.type == ParamSpec::Type::kString  ? "/"
                     : spec.type == ParamSpec::Type::kInteger ? "1"
                                                              : "true";
  }
  // An undeclared one too, so that an unknown key is named first (below).
  ForEachTemplateString(def.job, [&](const std::string&, Json& s) {
    ForEachPlaceholder(s.get_ref<const std::string&>(),
                       [&](std::string_view p, size_t, size_t) { samples.emplace(std::string(p), "/"); });
  });
  Document sample;
  sample.value = def.job;
  sample.positions = doc->positions;
  SubstituteAll(sample.value, samples);
  if (auto spec = ValidateJobSpec(sample, def.name, config); !spec.ok()) return spec.error();
  // Every placeholder names a declared param: a typo must not reach a command.
  std::optional<Error> unknown;
  ForEachTemplateString(def.job, [&](const std::string& field, Json& s) {
    ForEachPlaceholder(s.get_ref<const std::string&>(), [&](std::string_view p, size_t, size_t) {
      if (!unknown && def.params.count(std::string(p)) == 0) {
        unknown =
            FieldChecker(*doc).Fail("invalid_field", field,
                                    field + " uses {{" + std::string(p) +
                                        "}}, which is not a declared param (params." + std::string(p) + ")");
      }
    });
  });
  if (unknown) return *unknown;
  return def;
}

Result<std::optional<RunRef>> ParseRunRef(const Document& run) {
  auto it = run.value.find("definition");
  if (it == run.value.end()) return std::optional<RunRef>();
  const std::string rule = "definition must be a definition's name, or name:revision (\"etl\", \"etl:3\")";
  if (!it->is_string())
    return FieldChecker(run).Fail("invalid_field", "definition", rule + ", got " + DescribeValue(*it));
  const std::string& text = it->get_ref<const std::string&>();
  RunRef ref;
  const size_t colon = text.find(':');
  ref.name = text.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string rev = text.substr(colon + 1);
    int n = 0;
    auto [end, ec] = std::from_chars(rev.data(), rev.data() + rev.size(), n);
    if (rev.empty() || ec != std::errc() || end != rev.data() + rev.size() || n < 1 || rev[0] == '+') {
      return FieldChecker(run).Fail("invalid_field", "definition",
                                    rule + "; the revision is a number from 1");
    }
    ref.revision = n;
  }
  if (!IsValidDefinitionName(ref.name)) return FieldChecker(run).Fail("invalid_field", "definition", rule);
  return std::optional<RunRef>(std::move(ref));
}

Result<ResolvedRun> ResolveRun(const Definition& def, const Document& run, const std::string& id,
                               const Config& config) {
  // The run's keys in the order they were written, so the first problem of
  // the file is the one named.
  std::vector<std::string> keys;
  for (const auto& [key, value] : run.value.items()) keys.push_back(key);
  std::stable_sort(keys.begin(), keys.end(), [&](const std::string& a, const std::string& b) {
    SourcePos pa = run.PositionOf(a), pb = run.PositionOf(b);
    return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
  });
  for (const auto& key : keys) {
    if (std::find(std::begin(kRunKeys), std::end(kRunKeys), key) != std::end(kRunKeys)) continue;
    const std::string shown = PrintableName(key, 64);
    if (!IsJobKey(key)) {
      return FieldChecker(run).Fail("unknown_field", shown, shown + " is not a key of a job file");
    }
    if (def.allow_override.count(key) == 0) {
      return FieldChecker(run).Fail(
          "override_not_allowed", key,
          key + " may not be set by a run: definition " + def.name + " does not list it in allow_override");
    }
  }
  ResolvedRun out;
  const Json* given = nullptr;
  if (auto it = run.value.find("params"); it != run.value.end()) {
    if (!it->is_object())
      return FieldChecker(run).Fail("invalid_field", "params",
                                    "params must be a table, got " + DescribeValue(*it));
    given = &*it;
    for (const auto& [pname, value] : it->items()) {
      const std::string field = "params." + PrintableName(pname, 64);
      auto spec = def.params.find(pname);
      if (spec == def.params.end()) {
        return FieldChecker(run).Fail("unknown_param", field,
                                      field + " is not a param of definition " + def.name +
                                          (def.params.empty() ? " (it has none)" : ""));
      }
      auto checked = CheckParamValue(run, field, spec->second, value, "invalid_param");
      if (!checked.ok()) return checked.error();
      out.params[pname] = *checked;
    }
  }
  std::map<std::string, std::string> values;
  for (const auto& [pname, spec] : def.params) {
    if (!out.params.contains(pname)) {
      if (!spec.default_value) {
        const SourcePos pos = run.PositionOf(given != nullptr ? "params" : "definition");
        return MakeError("missing_param",
                         "params." + pname + " (" + ParamTypeName(spec.type) +
                             ") is required by definition " + def.name + ", which gives it no default",
                         "params." + pname, pos.line, pos.column);
      }
      out.params[pname] = *spec.default_value;
    }
    values[pname] = ParamText(out.params[pname]);
  }
  // The definition's values take the params; a run's own values are taken as
  // they are written.
  Json job = def.job;
  SubstituteAll(job, values);
  std::set<std::string> from_run;
  for (const auto& key : keys) {
    if (key == "definition" || key == "params") continue;
    const Json& value = run.value[key];
    from_run.insert(key);
    auto mine = job.find(key);
    // Tables merge one level deep: a run adds env variables or metadata
    // without repeating the definition's.
    if (mine != job.end() && mine->is_object() && value.is_object() && key != "array") {
      for (const auto& [k, v] : value.items()) (*mine)[k] = v;
    } else {
      job[key] = value;
    }
  }
  out.job.value = std::move(job);
  // Positions of the run's own keys are the run file's; the definition's keys
  // have none in it.
  for (const auto& [path, pos] : run.positions) {
    const size_t end = path.find_first_of(".[");
    if (from_run.count(path.substr(0, end)) != 0) out.job.positions.emplace(path, pos);
  }
  auto spec = ValidateJobSpec(out.job, id, config);
  if (!spec.ok()) {
    Error error = spec.error();
    const std::string root = error.field.substr(0, error.field.find_first_of(".["));
    if (from_run.count(root) == 0)
      error.message += " (from definition " + def.name + ", its params replaced)";
    return error;
  }
  out.spec = std::move(spec.value());
  return out;
}

}  // namespace spoold
