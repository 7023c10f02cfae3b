// Job definitions in spoolctl (SPEC.md section 2, "Definitions"): what the
// `definitions` commands (definitions.cpp) and the runs that submit and run
// make of a definition (definition_run.cpp) share. spoolctl is a client of
// the daemon's files: the revisions, their history and runs through
// DefinitionStore (spool/definition_store.h), the files people edit and
// their pending error files under definitions/, and the parsing and
// resolution of spool/definition.h, so that a run is judged locally in the
// daemon's words. Reads only; writes nothing.
#pragma once

#include <optional>
#include <string>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/job_options.h"
#include "spool/definition.h"
#include "spool/definition_store.h"

namespace spoold::cli {

// A word of submit or run that names a run of a definition: no file has
// that path, and it is a definition's name (`etl`) or a name and a
// revision (`etl:3`). `text` is the word as given.
struct RunArg {
  std::string name;
  std::optional<int> revision;
  std::string text;
};
std::optional<RunArg> ParseRunArg(const std::string& word);

// `etl` or `etl:3` as a definition and revision, whatever files there are.
std::optional<RunArg> ParseDefinitionRef(const std::string& word);

// definitions/<name>.toml or definitions/<name>.json, whichever exists
// (its name in definitions/), or "" when neither does.
std::string DefinitionFileOf(const Context& ctx, const std::string& name);

// definitions/<file>.error.json, parsed, while the daemon has one there for
// the file (SPEC.md section 3's shape), else nullopt.
std::optional<Json> DefinitionErrorOf(const Context& ctx, const std::string& file);

// "definitions/etl.toml:7:3: invalid_field (params.n.type): ...".
std::string FormatDefinitionError(const Json& error);

// Revision `revision` of `name` (the latest when unset) and its text, as
// DefinitionStore::Read gives them. When there is no such definition or
// revision, the error (unknown_definition) says why and names the
// definitions folder: no file there, its file refused (with the daemon's
// error), not taken in yet, or which revisions there are.
Result<std::pair<RevisionInfo, std::string>> ReadRevision(const Context& ctx, const std::string& name,
                                                          std::optional<int> revision);

// A revision of a definition, its text as it was, and what it declares.
struct LoadedDefinition {
  RevisionInfo info;
  std::string text;
  Definition def;
};

// ReadRevision, then the revision parsed as the daemon does, with the pools
// `settings` knows (a pool it cannot know is assumed to exist). When the
// revision does not parse, *error_file names it ("revisions/etl/3.toml").
Result<LoadedDefinition> LoadDefinition(const Context& ctx, const std::string& name,
                                        std::optional<int> revision, Settings& settings,
                                        std::string* error_file);

// The state of job `id` for the definitions commands: its status.json's
// state, "waiting" while its file waits in incoming/, "removed" when its
// folder is gone, "?" when its status cannot be read.
std::string RunState(const Context& ctx, const std::string& id);

// submit and run of a definition: builds the run file {"definition",
// "params"} from -p and the overrides, resolves it locally as the daemon
// will, and drops it as incoming/<id>.json. The id: --id (a run submitted
// again with the same --id and the same content is not dropped again), else
// NAME-<n> counting on from the definition's runs. The id used goes to
// *id_out; nothing is printed but errors and notes when `quiet`.
int SubmitRun(Context& ctx, const Args& args, const RunArg& run, std::string* id_out, bool quiet);

}  // namespace spoold::cli
