// Job definitions and their runs (SPEC.md section 2, "Definitions"). A
// definition is a job file with declared parameters ([params.<p>]) and the
// keys a run may change (allow_override); a run is a small job file that names
// it (`definition = "etl"` or `"etl:3"`), gives [params] and allowed
// overrides, and resolves to an ordinary job. Pure: no state, no I/O (the
// revisions on disk are DefinitionStore's, spool/definition_store.h).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "spool/document.h"
#include "spool/job_spec.h"

namespace spoold {

// ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$: no dots, so "etl.toml.error.json" and
// the like are never a definition's file.
bool IsValidDefinitionName(std::string_view name);

struct ParamSpec {
  enum class Type { kString, kInteger, kBoolean };
  Type type = Type::kString;
  std::optional<Json> default_value;  // already checked against type and pattern
  std::string pattern;                // a POSIX extended regex the whole value matches; "" = any
  std::string description;
  struct Compiled;                           // the pattern, compiled once
  std::shared_ptr<const Compiled> compiled;  // null without a pattern
};

const char* ParamTypeName(ParamSpec::Type type);

struct Definition {
  std::string name;
  Json job = Json::object();  // the job keys, {{p}} placeholders unreplaced
  std::map<std::string, ParamSpec> params;
  std::set<std::string> allow_override;  // top-level job keys
};

// Parses and checks a definition file: its params, allow_override, every
// {{p}} naming a declared param, and the job keys as a job file (with each
// placeholder replaced by its param's default, or a value valid anywhere).
// Errors name the field and its line like a job file's (invalid_field,
// unknown_field, missing_field, parse_error, unknown_pool, ...).
Result<Definition> ParseDefinition(std::string_view name, std::string_view bytes, DocFormat format,
                                   const Config& config);

// What a run file names: `definition = "etl"` (revision unset: the latest) or
// `"etl:3"`. nullopt when the file has no `definition` key (an ordinary job).
struct RunRef {
  std::string name;
  std::optional<int> revision;
};
Result<std::optional<RunRef>> ParseRunRef(const Document& run);

// A run resolved against its definition: the job to run (ordinary job keys
// only, validated as a job file with id `id`), and the value of every param,
// given or defaulted, by name, as JSON string, integer or boolean.
struct ResolvedRun {
  Document job;
  JobSpec spec;  // the job validated
  Json params = Json::object();
};

// Errors: unknown_param, missing_param, invalid_param (wrong type, pattern
// not matched), override_not_allowed, unknown_field, and any error of the
// resolved job (invalid_field ...), each naming the param or key.
// Param values: strings for string params; an integer or a string of one for
// integer params; a boolean or "true"/"false" for boolean ones (so that
// `spoolctl submit etl -p n=3` needs no types).
Result<ResolvedRun> ResolveRun(const Definition& def, const Document& run, const std::string& id,
                               const Config& config);

// The keys a run may always give, whatever allow_override says: they say when
// and why this run happens, not what runs.
inline constexpr std::string_view kRunKeys[] = {"definition", "params", "hold", "after", "metadata"};

// ^[a-z][a-z0-9_]{0,63}$
bool IsValidParamName(std::string_view name);

// "SPOOLD_PARAM_" + the param's name in upper case.
std::string ParamVariable(const std::string& param);

// A param's value as it is substituted and put in the environment.
std::string ParamText(const Json& value);

}  // namespace spoold
