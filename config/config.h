// The daemon's configuration (SPEC.md section 8): the TOML file, its defaults and
// its validation. Owns no state beyond the returned Config value; does no I/O
// except reading the one file it is asked to load. Every invalid value is reported
// as an Error naming the file, line, column and key; an unknown key comes before
// any other error, naming the close key if one is.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/duration.h"
#include "config/hook_config.h"
#include "config/resources.h"
#include "config/result.h"

namespace spoold {

inline constexpr const char* kDefaultConfigPath = "/etc/spoold/spoold.toml";

// A job may name at most this many parents whatever the configuration says
// (dependencies.max_after is at most this): the list is checked at intake and
// kept in memory while the job waits.
inline constexpr int kMaxAfterLimit = 10000;

struct SlurmPoolConfig {
  std::string partition;                // "" = the cluster's default partition
  std::vector<std::string> sbatch_args;  // extra sbatch arguments, passed as given
};

struct PoolConfig {
  std::string name;
  int workers = 0;        // jobs running at once; default: the CPU count
  int queue_limit = 1000;  // queued jobs beyond this are rejected (queue_full)
  bool paused = false;
  bool auto_resume = false;  // a job dropped into a paused pool resumes it
  std::string executor = "local";  // "local" or "slurm"
  std::optional<Millis> timeout;   // overrides defaults.timeout for this pool's jobs
  SlurmPoolConfig slurm;
  std::vector<HookSpec> hooks;  // [[pools.<name>.hooks]]: run for every job of the pool
  // Resources (SPEC.md section 5): what the pool's running jobs may hold at
  // once, as written (unset: the machine's for a local pool, no bound for a
  // slurm pool; Config::CapacityOf resolves it), and what a job that says
  // nothing asks for.
  std::optional<int64_t> cpus;
  std::optional<int64_t> memory;
  std::optional<std::vector<int>> gpus;
  ResourceAmounts defaults;
};

// [machine]: what the local pools share, resolved against the host.
struct MachineConfig {
  int64_t cpus = 1;
  int64_t memory = kMinMemory;
  std::vector<int> gpus;
  std::vector<int> cpu_ids;  // the CPUs grants are made of: the first `cpus` spoold may run on
};

// What a pool may hand out. kNoBound: a slurm pool's key left unset.
struct PoolCapacity {
  static constexpr int64_t kNoBound = -1;
  int64_t cpus = 0;
  int64_t memory = 0;
  int64_t gpu_count = 0;
  std::vector<int> gpus;  // a local pool's devices (gpu_count of them)
  // Whether `want` is within the bounds, and if not, the first key it is over.
  const char* Over(const ResourceAmounts& want) const {
    if (cpus != kNoBound && want.cpus > cpus) return "cpus";
    if (memory != kNoBound && want.memory > memory) return "memory";
    if (gpu_count != kNoBound && want.gpus > gpu_count) return "gpus";
    return nullptr;
  }
};

struct Config {
  std::string source;  // the file it was loaded from ("" when built in code)

  // [spool]
  std::string root = "/var/spool/spoold";  // absolute after loading (relative
                                          // paths are taken from the config
                                          // file's folder)
  Millis rescan_interval = std::chrono::seconds(5);
  int64_t max_job_file_size = 1048576;  // bytes
  // Above this many jobs index.json is written at most every large_index_lag;
  // index.active.json stays within a second (SPEC.md section 7).
  int64_t large_index_jobs = 10000;
  Millis large_index_lag = std::chrono::seconds(10);

  // [defaults]: job defaults, overridable per pool and per job
  Millis default_timeout = std::chrono::hours(1);

  // [job_environment]: the parts of a job's clean environment that come from here
  std::string job_path = "/usr/local/bin:/usr/bin:/bin";
  std::string job_lang = "C.UTF-8";

  // [retention]
  Millis retention_finished = std::chrono::hours(24 * 7);  // 0 = keep forever
  // How long a removed job's end stays known to `after` (spool/tombstones.h).
  Millis retention_tombstones = std::chrono::hours(24 * 30);  // 0 = for ever

  // [security]
  bool allow_root = false;
  // [dependencies]: jobs that wait for others (`after`, SPEC.md section 5)
  Millis missing_grace = std::chrono::minutes(10);  // 0 = wait without a limit
  int max_after = 100;                              // parents one job may name

  // [metrics] (SPEC.md section 11): where the Prometheus text file goes
  // ("": the daemon's default, see daemon_metrics.cpp), absolute after
  // loading, and the least time between two writes.
  std::string metrics_path;
  Millis metrics_interval = std::chrono::seconds(5);

  // [hooks]: the bound on hook processes, the pool hooks' user, retention's wait.
  HooksConfig hooks;

  // [pools.*]; there is always a "default" pool (added with defaults if absent).
  std::map<std::string, PoolConfig> pools;

  MachineConfig machine;

  // A pool's capacity, its unset keys resolved (the machine's for a local pool).
  PoolCapacity CapacityOf(const PoolConfig& pool) const;

  // The effective timeout of a job in `pool` that sets none itself.
  Millis TimeoutFor(const std::string& pool) const;
};

// The rule for pool names and job ids: 1 to 128 ASCII letters, digits, '.',
// '_' or '-', starting with a letter or digit (any byte >= 0x80 is refused).
bool IsValidName(std::string_view name);
inline bool IsValidPoolName(std::string_view name) { return IsValidName(name); }

// Parses configuration text; `file_name` is used in messages and to resolve a
// relative spool.root.
Result<Config> ParseConfig(const std::string& text, const std::string& file_name);

// Reads and parses a configuration file.
Result<Config> LoadConfig(const std::string& path);

// "FILE:LINE:COLUMN: KEY: message", the way errors are printed at start.
std::string FormatConfigError(const Error& error, const std::string& file_name);

}  // namespace spoold
