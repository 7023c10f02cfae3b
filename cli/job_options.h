// What submit, run, rerun and duplicate share before a job file is dropped:
// the settings local validation takes pools and defaults from, and the
// options that rewrite a job's top-level keys (--pool, --priority, --hold,
// --after, --array). A run of a definition (cli/definition_cli.h) takes the
// same options into its run file. Pure but for reading the index's head.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/array_cli.h"
#include "cli/common.h"

namespace spoold::cli {

// Where validation takes pools and defaults from (issue 4): the configuration
// when known, else the pools index.json lists, else no pool check.
struct Settings {
  Config config;
  std::string source;
  bool pools_known = true;
  bool config_known = false;

  // Without known pools, `pool` (a job's "pool" value, if a string) is taken
  // as configured, so that validation does not refuse what it cannot judge.
  void AssumePool(const Json& pool);
};

Settings LoadSettings(const Context& ctx);

struct Overrides {
  std::optional<std::string> pool;
  std::optional<int64_t> priority;
  bool hold = false;
  std::vector<std::string> after;  // parents that must succeed first
  std::optional<std::string> derived_from;
  ArrayOptions array;  // the job file's [array] (see cli/array_cli.h)

  bool Any() const { return pool || priority || hold || !after.empty() || derived_from || array.Any(); }
};

// The options of `args`; errors are usage errors naming the option.
Result<Overrides> ParseOverrides(const Args& args);

// Writes the overrides into `job` (a job file's or a run file's top level).
void ApplyOverrides(const Overrides& ov, Json& job);

}  // namespace spoold::cli
