// The configuration's refusals (SPEC.md section 8): every bad value with its
// field, position and rule; a misspelt key first; pool names; TOML syntax
// errors; and how an error is printed at start. The accepted files and their
// defaults are in config_test.cpp.
#include <doctest/doctest.h>

#include <string>

#include "config/config.h"

using namespace spoold;

namespace {

constexpr const char* kConfigFile = "/etc/spoold/spoold.toml";

Result<Config> Parse(const std::string& text) { return ParseConfig(text, kConfigFile); }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("config: bad values are refused with their field, position and rule") {
  struct {
    const char* text;
    const char* code;
    const char* field;
    int line;
    int column;
    const char* message;  // a fragment of the message
  } cases[] = {
      // Wrong types.
      {"[spool]\nroot = 5", "invalid_field", "spool.root", 2, 8,
       "spool.root must be a string, got an integer"},
      {"[pools.gpu]\nworkers = \"4\"", "invalid_field", "pools.gpu.workers", 2, 11,
       "pools.gpu.workers must be an integer from 1 to 4096, got a string"},
      {"[pools.gpu]\npaused = \"yes\"", "invalid_field", "pools.gpu.paused", 2, 10,
       "pools.gpu.paused must be true or false, got a string"},
      {"[security]\nallow_root = 1", "invalid_field", "security.allow_root", 2, 14,
       "security.allow_root must be true or false, got an integer"},
      {"[spool]\nrescan_interval = true", "invalid_field", "spool.rescan_interval", 2, 19,
       "spool.rescan_interval must be a duration (a string such as \"30s\" or a number of "
       "seconds), got a boolean"},
      {"spool = 3", "invalid_field", "spool", 1, 9, "spool must be a table, got an integer"},
      {"pools = [1]", "invalid_field", "pools", 1, 9, "pools must be a table, got an array"},
      {"[pools]\ngpu = 3", "invalid_field", "pools.gpu", 2, 7, "pools.gpu must be a table, got an integer"},
      {"[pools.gpu]\nslurm = \"batch\"", "invalid_field", "pools.gpu.slurm", 2, 9,
       "pools.gpu.slurm must be a table, got a string"},
      {"[job_environment]\nlang = [\"C\"]", "invalid_field", "job_environment.lang", 2, 8,
       "job_environment.lang must be a string, got an array"},
      // Out of range.
      {"[pools.gpu]\nworkers = 0", "invalid_field", "pools.gpu.workers", 2, 11,
       "pools.gpu.workers must be an integer from 1 to 4096, got 0"},
      {"[pools.gpu]\nworkers = 4097", "invalid_field", "pools.gpu.workers", 2, 11,
       "pools.gpu.workers must be an integer from 1 to 4096, got 4097"},
      {"[pools.default]\nqueue_limit = 0", "invalid_field", "pools.default.queue_limit", 2, 15,
       "pools.default.queue_limit must be an integer from 1 to 10000000, got 0"},
      {"[pools.default]\nqueue_limit = 10000001", "invalid_field", "pools.default.queue_limit", 2, 15,
       "got 10000001"},
      {"[spool]\nmax_job_file_size = 1023", "invalid_field", "spool.max_job_file_size", 2, 21,
       "spool.max_job_file_size must be an integer from 1024 to 67108864, got 1023"},
      {"[spool]\nmax_job_file_size = 67108865", "invalid_field", "spool.max_job_file_size", 2, 21,
       "got 67108865"},
      {"[spool]\nlarge_index_jobs = -1", "invalid_field", "spool.large_index_jobs", 2, 20,
       "spool.large_index_jobs must be an integer from 0 to 10000000, got -1"},
      {"[spool]\nlarge_index_lag = \"500ms\"", "invalid_field", "spool.large_index_lag", 2, 19,
       "spool.large_index_lag must be a duration from 1s to 1h, got 500ms"},
      {"[spool]\nrescan_interval = \"0\"", "invalid_field", "spool.rescan_interval", 2, 19,
       "spool.rescan_interval must be a duration from 100ms to 1h, got 0"},
      {"[spool]\nrescan_interval = 0.05", "invalid_field", "spool.rescan_interval", 2, 19,
       "from 100ms to 1h, got 50ms"},
      {"[spool]\nrescan_interval = \"1h1s\"", "invalid_field", "spool.rescan_interval", 2, 19,
       "from 100ms to 1h, got 1h1s"},
      {"[spool]\nroot = \"\"", "invalid_field", "spool.root", 2, 8, "spool.root must not be empty"},
      {"[job_environment]\npath = \"/bin\\u0000x\"", "invalid_field", "job_environment.path", 2, 8,
       "job_environment.path must not contain a NUL character"},
      // Bad durations.
      {"[defaults]\ntimeout = \"5x\"", "invalid_field", "defaults.timeout", 2, 11,
       "defaults.timeout must be a duration such as"},
      {"[defaults]\ntimeout = -5", "invalid_field", "defaults.timeout", 2, 11,
       "defaults.timeout must be a duration such as"},
      {"[retention]\nfinished = \"1y\"", "invalid_field", "retention.finished", 2, 12, "unknown unit"},
      {"[retention]\ntombstones = -1", "invalid_field", "retention.tombstones", 2, 14,
       "retention.tombstones"},
      {"[dependencies]\nmax_after = 0", "invalid_field", "dependencies.max_after", 2, 13, "from 1 to 10000"},
      {"[dependencies]\nmax_after = 10001", "invalid_field", "dependencies.max_after", 2, 13,
       "from 1 to 10000"},
      {"[dependencies]\nmissing_grace = \"soon\"", "invalid_field", "dependencies.missing_grace", 2, 17,
       "dependencies.missing_grace"},
      {"[dependencies]\nmissing_gracee = \"1m\"", "unknown_field", "dependencies.missing_gracee", 2, 1,
       "did you mean"},
      {"[retention]\nfinished = \"36501d\"", "invalid_field", "retention.finished", 2, 12,
       "too long: at most 100 years, 36500d"},
      {"[defaults]\ntimeout = 3153600001", "invalid_field", "defaults.timeout", 2, 11,
       "too long: at most 100 years, 36500d"},
      {"[defaults]\ntimeout = nan", "invalid_field", "defaults.timeout", 2, 11,
       "defaults.timeout must be a duration such as \"250ms\", \"1.5s\", \"5m\", \"1h 30m\", \"1d\" or a "
       "number of seconds (got nan)"},
      {"[pools.gpu]\ntimeout = -inf", "invalid_field", "pools.gpu.timeout", 2, 11,
       "(a duration cannot be negative)"},
      {"[spool]\nrescan_interval = inf", "invalid_field", "spool.rescan_interval", 2, 19,
       "(got infinity; 0 means no limit)"},
      {"[pools.gpu]\nworkers = nan", "invalid_field", "pools.gpu.workers", 2, 11,
       "pools.gpu.workers must be an integer from 1 to 4096, got a float"},
      {"[pools.gpu]\ntimeout = \"30m1h\"", "invalid_field", "pools.gpu.timeout", 2, 11,
       "largest to smallest"},
      // Nesting: at most 64 levels, as in job files; checked before any key.
      {"[pools.gpu.slurm]\nx = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
       "parse_error", "", 2, 65, "nest deeper than 64"},
      // Unknown keys and sections.
      {"[spool]\nroute = \"/x\"", "unknown_field", "spool.route", 2, 1,
       "unknown key spool.route in [spool]; known keys: root, rescan_interval, max_job_file_size"},
      {"[pools.gpu]\nnodes = 2", "unknown_field", "pools.gpu.nodes", 2, 1,
       "unknown key pools.gpu.nodes in [pools.gpu]"},
      {"[pools.gpu.slurm]\naccount = \"x\"", "unknown_field", "pools.gpu.slurm.account", 2, 1,
       "unknown key pools.gpu.slurm.account in [pools.gpu.slurm]"},
      {"[defaults]\nretry.attempts = 3", "unknown_field", "defaults.retry", 2, 1,
       "unknown key defaults.retry in [defaults]; known keys: timeout"},
      // No suggestion from another table's keys.
      {"[spool]\nworkers = 2", "unknown_field", "spool.workers", 2, 1,
       "unknown key spool.workers in [spool]; known keys: root, rescan_interval, max_job_file_size"},
      // No suggestion where two keys are as close (spool, pools).
      {"[pool.default]\nworkers = 1", "unknown_field", "pool", 1, 2,
       "unknown section [pool]; known sections: spool, defaults, job_environment, retention, "
       "security, pools"},
      {"verbose = true", "unknown_field", "verbose", 1, 1, "unknown top-level key verbose"},
      // Bad executor.
      {"[pools.gpu]\nexecutor = \"kubernetes\"", "invalid_field", "pools.gpu.executor", 2, 12,
       "pools.gpu.executor must be \"local\" or \"slurm\", got \"kubernetes\""},
      {"[pools.gpu]\nexecutor = 1", "invalid_field", "pools.gpu.executor", 2, 12,
       "must be \"local\" or \"slurm\", got an integer"},
      // Bad pool names.
      {"[pools.\"bad name\"]\nworkers = 1", "invalid_field", "pools.bad name", 1, 8,
       "pool name \"bad name\" is not valid"},
      {"[pools.-x]", "invalid_field", "pools.-x", 1, 8, "must start with a letter or digit"},
      {"[pools.\"\"]", "invalid_field", "pools.", 1, 8, "pool name \"\" is not valid"},
      // Bad sbatch_args.
      {"[pools.gpu]\nslurm.sbatch_args = [\"--mem=4G\", 4]", "invalid_field", "pools.gpu.slurm.sbatch_args",
       2, 34, "pools.gpu.slurm.sbatch_args must be an array of strings, element 2 is an integer"},
      {"[pools.gpu]\nslurm.sbatch_args = \"--mem=4G\"", "invalid_field", "pools.gpu.slurm.sbatch_args", 2, 21,
       "pools.gpu.slurm.sbatch_args must be an array of strings, got a string"},
      {"[pools.gpu.slurm]\npartition = false", "invalid_field", "pools.gpu.slurm.partition", 2, 13,
       "pools.gpu.slurm.partition must be a string, got a boolean"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto config = Parse(c.text);
    REQUIRE_FALSE(config.ok());
    const Error& e = config.error();
    CHECK(e.code == c.code);
    CHECK(e.field == c.field);
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
    CHECK_MESSAGE(Contains(e.message, c.message), e.message);
  }
}

TEST_CASE("config: a misspelt key is reported first, naming the key it is close to") {
  // The message is "unknown key 'FIELD'; did you mean 'CLOSEST'?".
  struct {
    const char* text;
    const char* field;
    const char* closest;
    int line, column;
  } cases[] = {
      {"[spool]\nrot = \"/x\"", "spool.rot", "spool.root", 2, 1},
      {"[security]\n\nallow-root = true", "security.allow-root", "security.allow_root", 3, 1},
      {"[job_environment]\nPATH = \"/bin\"", "job_environment.PATH", "job_environment.path", 2, 1},
      {"[retention]\nfinshed = \"1d\"", "retention.finshed", "retention.finished", 2, 1},
      {"[defaults]\ntimout = 5", "defaults.timout", "defaults.timeout", 2, 1},
      {"[spoool]\nroot = \"/x\"", "spoool", "spool", 1, 2},
      // Pools and their slurm tables, as sections or as dotted keys.
      {"[pools.gpu]\nworker = 2", "pools.gpu.worker", "pools.gpu.workers", 2, 1},
      {"[pools.gpu]\nqueue-limit = 2", "pools.gpu.queue-limit", "pools.gpu.queue_limit", 2, 1},
      {"[pools.gpu.slurm]\npartitions = \"x\"", "pools.gpu.slurm.partitions", "pools.gpu.slurm.partition", 2,
       1},
      {"[pools.gpu]\nslurm.sbatch-args = []", "pools.gpu.slurm.sbatch-args", "pools.gpu.slurm.sbatch_args", 2,
       7},
      {"pools.gpu.slurm.partiton = \"x\"", "pools.gpu.slurm.partiton", "pools.gpu.slurm.partition", 1, 17},
      // Unknown keys come before any other error, the first in the file first,
      // whatever order the sections are read in.
      {"[pools.gpu]\nexecutor = \"k8s\"\nwokers = 2", "pools.gpu.wokers", "pools.gpu.workers", 3, 1},
      {"[spool]\nroot = \"\"\nrescan-interval = 5\n[pools.\"bad name\"]\nwokers = 2", "spool.rescan-interval",
       "spool.rescan_interval", 3, 1},
      {"[spool]\nroot = 5\n[pools.a]\nwokers = 2\n[defaults]\ntimout = 5", "pools.a.wokers",
       "pools.a.workers", 4, 1},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.text));
    auto config = Parse(c.text);
    REQUIRE_FALSE(config.ok());
    const Error& e = config.error();
    CHECK(e.code == "unknown_field");
    CHECK(e.field == c.field);
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
    CHECK(e.message == "unknown key '" + std::string(c.field) + "'; did you mean '" + c.closest + "'?");
  }
  // What the daemon prints when it stops: file, line, column, key and suggestion.
  auto config = Parse("[spool]\nroot = \"/x\"\n[pools.gpu]\nwokers = 2\n");
  REQUIRE_FALSE(config.ok());
  CHECK(
      FormatConfigError(config.error(), "spoold.toml") ==
      "spoold.toml:4:1: pools.gpu.wokers: unknown key 'pools.gpu.wokers'; did you mean 'pools.gpu.workers'?");
}

TEST_CASE("config: pool names follow the job id rule") {
  CHECK(IsValidPoolName("default"));
  CHECK(IsValidPoolName("a"));
  CHECK(IsValidPoolName("9"));
  CHECK(IsValidPoolName("gpu-2.big_one"));
  CHECK(IsValidPoolName(std::string(128, 'x')));
  CHECK_FALSE(IsValidPoolName(std::string(129, 'x')));
  CHECK_FALSE(IsValidPoolName(""));
  CHECK_FALSE(IsValidPoolName(".hidden"));
  CHECK_FALSE(IsValidPoolName("-x"));
  CHECK_FALSE(IsValidPoolName("_x"));
  CHECK_FALSE(IsValidPoolName("a b"));
  CHECK_FALSE(IsValidPoolName("a/b"));
  CHECK_FALSE(IsValidPoolName("caf\xc3\xa9"));
}

TEST_CASE("config: TOML syntax errors are parse errors with a position") {
  struct {
    const char* text;
    int line;
  } cases[] = {
      {"[spool\nroot = \"x\"", 1},
      {"[spool]\nroot = \"x\"\nroot = \"y\"", 3},
      {"[spool]\n\nrescan_interval = 5s", 3},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto config = Parse(c.text);
    REQUIRE_FALSE(config.ok());
    CHECK(config.error().code == "parse_error");
    CHECK(config.error().line == c.line);
    CHECK(config.error().column > 0);
    CHECK_FALSE(config.error().message.empty());
  }
}

TEST_CASE("config: FormatConfigError prints file, line, column and key") {
  auto config = Parse("[pools.gpu]\nworkers = 0\n");
  REQUIRE_FALSE(config.ok());
  // The message already begins with the key, so the key is not printed twice.
  CHECK(FormatConfigError(config.error(), "spoold.toml") ==
        "spoold.toml:2:11: pools.gpu.workers must be an integer from 1 to 4096, got 0");

  Error e = MakeError("config_error", "something is wrong", "spool.root", 3, 0);
  CHECK(FormatConfigError(e, "a.toml") == "a.toml:3: spool.root: something is wrong");
  e.column = 7;
  CHECK(FormatConfigError(e, "a.toml") == "a.toml:3:7: spool.root: something is wrong");
  CHECK(FormatConfigError(e, "") == "3:7: spool.root: something is wrong");
  e.line = 0;
  e.column = 0;
  CHECK(FormatConfigError(e, "a.toml") == "a.toml: spool.root: something is wrong");
  e.field.clear();
  CHECK(FormatConfigError(e, "a.toml") == "a.toml: something is wrong");
  CHECK(FormatConfigError(e, "") == "something is wrong");
  // A message that merely starts with the same letters still gets its key.
  e = MakeError("config_error", "spool.rootless is odd", "spool.root", 1, 1);
  CHECK(FormatConfigError(e, "a.toml") == "a.toml:1:1: spool.root: spool.rootless is odd");
}
