// What submit, run, rerun and duplicate share before a job file is dropped:
// the settings local validation takes pools and defaults from, and the
// options that rewrite a job's top-level keys (--pool, --priority, --hold,
// --after, --array, and --cpus, --memory, --gpus into [resources]). A run of
// a definition (cli/definition_cli.h) takes the same options into its run
// file. Pure but for reading the index's head.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/array_cli.h"
#include "cli/common.h"

namespace spoold::cli {

// Where validation takes pools and defaults from (issue 4): the configuration
// when known, else the pools index.json lists (with their capacity and the
// machine's, SPEC.md section 7, when the daemon writes them), else no pool
// check. What is not known does not bound a job's [resources]: the daemon
// judges it.
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

// --cpus, --memory and --gpus: the keys of the job's [resources] (SPEC.md
// section 5, "Resources") they set; the file's other keys stay.
struct ResourceOptions {
  std::optional<int64_t> cpus;
  std::optional<std::string> memory;  // as given ("4G"): the daemon reads it the same way
  std::optional<int64_t> gpus;

  bool Any() const { return cpus || memory || gpus; }
};

struct Overrides {
  std::optional<std::string> pool;
  std::optional<int64_t> priority;
  bool hold = false;
  std::vector<std::string> after;  // parents that must succeed first
  std::optional<std::string> derived_from;
  ArrayOptions array;  // the job file's [array] (see cli/array_cli.h)
  ResourceOptions resources;

  bool Any() const {
    return pool || priority || hold || !after.empty() || derived_from || array.Any() || resources.Any();
  }
};

// The options of `args`; errors are usage errors naming the option.
Result<Overrides> ParseOverrides(const Args& args);

// --cpus, --memory and --gpus of `args`, each within what a job file's
// [resources] may say; an error names the option and the rule.
Result<ResourceOptions> ParseResourceOptions(const Args& args);

// Writes the overrides into `job` (a job file's or a run file's top level).
void ApplyOverrides(const Overrides& ov, Json& job);

}  // namespace spoold::cli
