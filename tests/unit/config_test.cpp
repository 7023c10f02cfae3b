#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "config/config.h"
#include "test_files.h"

using namespace spoold;
using namespace testfiles;
using namespace std::chrono_literals;

namespace {

constexpr const char* kConfigFile = "/etc/spoold/spoold.toml";

Result<Config> Parse(const std::string& text) { return ParseConfig(text, kConfigFile); }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

int ExpectedDefaultWorkers() {
  unsigned cpus = std::thread::hardware_concurrency();
  return cpus == 0 ? 1 : static_cast<int>(std::min(cpus, 4096u));
}


}  // namespace

TEST_CASE("config: the example of SPEC section 8 parses with every value") {
  // Copied from SPEC.md section 8; if that page changes, change this too.
  const char* text = R"([spool]
root = "/var/spool/spoold"
rescan_interval = "5s"
max_job_file_size = 1048576        # bytes

[defaults]                         # job defaults, overridable per pool and per job
timeout = "1h"

[retention]
finished = "7d"                    # terminal jobs older than this are removed

[security]
allow_root = false                 # when spoold runs as root: may root-owned job files run?

[pools.default]
workers = 2                        # jobs running at once; default: the CPU count
queue_limit = 100                  # queued jobs beyond this are rejected: queue_full
paused = false
auto_resume = false                # a job dropped into a paused pool resumes it
executor = "local"                 # or "slurm"

[pools.cluster]                    # a pool whose jobs run on a Slurm cluster
executor = "slurm"
workers = 64
slurm.partition = "batch"
slurm.sbatch_args = ["--mem=4G"]
)";
  auto config = Parse(text);
  REQUIRE_MESSAGE(config.ok(), FormatConfigError(config.error(), kConfigFile));
  CHECK(config->source == kConfigFile);
  CHECK(config->root == "/var/spool/spoold");
  CHECK(config->rescan_interval == 5s);
  CHECK(config->max_job_file_size == 1048576);
  CHECK(config->large_index_jobs == 10000);
  CHECK(config->large_index_lag == 10s);
  CHECK(config->default_timeout == 1h);
  CHECK(config->retention_finished == 24h * 7);
  CHECK(config->retention_tombstones == 24h * 30);
  CHECK(config->missing_grace == 10min);
  CHECK(config->max_after == 100);
  CHECK(config->allow_root == false);
  REQUIRE(config->pools.size() == 2);

  const PoolConfig& def = config->pools.at("default");
  CHECK(def.name == "default");
  CHECK(def.workers == 2);
  CHECK(def.queue_limit == 100);
  CHECK(def.paused == false);
  CHECK(def.auto_resume == false);
  CHECK(def.executor == "local");
  CHECK_FALSE(def.timeout.has_value());
  CHECK(def.slurm.partition.empty());
  CHECK(def.slurm.sbatch_args.empty());

  const PoolConfig& cluster = config->pools.at("cluster");
  CHECK(cluster.name == "cluster");
  CHECK(cluster.executor == "slurm");
  CHECK(cluster.workers == 64);
  CHECK(cluster.queue_limit == 1000);
  CHECK(cluster.slurm.partition == "batch");
  CHECK(cluster.slurm.sbatch_args == std::vector<std::string>{"--mem=4G"});
}

TEST_CASE("config: every key of config.h is read") {
  // The keys that SPEC's example leaves out, with values different from the defaults.
  auto config = Parse(R"(
[spool]
rescan_interval = 0.5
max_job_file_size = 1024
large_index_jobs = 0
large_index_lag = "1h"
[defaults]
timeout = 0
[job_environment]
path = "/opt/bin:/usr/bin"
lang = "en_US.UTF-8"
[retention]
finished = 0
tombstones = "2d"
[security]
allow_root = true
[dependencies]
missing_grace = 0
max_after = 10000
[pools.gpu]
paused = true
auto_resume = true
timeout = "1h30m"
queue_limit = 10000000
workers = 4096
)");
  REQUIRE_MESSAGE(config.ok(), FormatConfigError(config.error(), kConfigFile));
  CHECK(config->rescan_interval == 500ms);
  CHECK(config->max_job_file_size == 1024);
  CHECK(config->large_index_jobs == 0);
  CHECK(config->large_index_lag == 1h);
  CHECK(config->default_timeout == 0ms);
  CHECK(config->job_path == "/opt/bin:/usr/bin");
  CHECK(config->job_lang == "en_US.UTF-8");
  CHECK(config->retention_finished == 0ms);
  CHECK(config->retention_tombstones == 48h);
  CHECK(config->allow_root == true);
  CHECK(config->missing_grace == 0ms);
  CHECK(config->max_after == 10000);
  const PoolConfig& gpu = config->pools.at("gpu");
  CHECK(gpu.paused == true);
  CHECK(gpu.auto_resume == true);
  REQUIRE(gpu.timeout.has_value());
  CHECK(*gpu.timeout == 90min);
  CHECK(gpu.queue_limit == 10'000'000);
  CHECK(gpu.workers == 4096);
}

TEST_CASE("config: an empty file gives every default") {
  auto config = Parse("");
  REQUIRE(config.ok());
  CHECK(config->root == "/var/spool/spoold");
  CHECK(config->rescan_interval == 5s);
  CHECK(config->max_job_file_size == 1048576);
  CHECK(config->default_timeout == 1h);
  CHECK(config->job_path == "/usr/local/bin:/usr/bin:/bin");
  CHECK(config->job_lang == "C.UTF-8");
  CHECK(config->retention_finished == 24h * 7);
  CHECK(config->allow_root == false);
  REQUIRE(config->pools.size() == 1);
  const PoolConfig& def = config->pools.at("default");
  CHECK(def.name == "default");
  CHECK(def.workers == ExpectedDefaultWorkers());
  CHECK(def.workers >= 1);
  CHECK(def.queue_limit == 1000);
  CHECK(def.paused == false);
  CHECK(def.auto_resume == false);
  CHECK(def.executor == "local");
  CHECK_FALSE(def.timeout.has_value());
}

TEST_CASE("config: the default pool is added when the file names none") {
  auto config = Parse("[pools.gpu]\nworkers = 3\n");
  REQUIRE(config.ok());
  REQUIRE(config->pools.size() == 2);
  CHECK(config->pools.at("gpu").workers == 3);
  CHECK(config->pools.at("default").name == "default");
  CHECK(config->pools.at("default").workers == ExpectedDefaultWorkers());
  CHECK(config->pools.at("default").queue_limit == 1000);

  // A pool without workers gets the CPU count too.
  auto unset = Parse("[pools.io]\nqueue_limit = 5\n");
  REQUIRE(unset.ok());
  CHECK(unset->pools.at("io").workers == ExpectedDefaultWorkers());

  // A default pool in the file is kept as written, not replaced.
  auto given = Parse("[pools.default]\nworkers = 7\n");
  REQUIRE(given.ok());
  REQUIRE(given->pools.size() == 1);
  CHECK(given->pools.at("default").workers == 7);
}

TEST_CASE("config: TimeoutFor takes the pool's timeout, else the default") {
  auto config = Parse("[defaults]\ntimeout = \"2h\"\n[pools.fast]\ntimeout = \"30s\"\n");
  REQUIRE(config.ok());
  CHECK(config->TimeoutFor("fast") == 30s);
  CHECK(config->TimeoutFor("default") == 2h);
  CHECK(config->TimeoutFor("no-such-pool") == 2h);
}

TEST_CASE("config: durations take decimals, blanks and long unit names, up to 100 years") {
  auto config = Parse(
      "[spool]\nrescan_interval = \"1.5s\"\n[defaults]\ntimeout = \"36500d\"\n"
      "[retention]\nfinished = \"1.5 weeks\"\n[pools.fast]\ntimeout = \"1h 30m\"\n");
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  CHECK(config->rescan_interval == 1500ms);
  CHECK(config->default_timeout == 24h * 36500);
  CHECK(config->retention_finished == 24h * 7 + 12h * 7);
  CHECK(config->TimeoutFor("fast") == 90min);
}

TEST_CASE("config: a relative spool.root is taken from the config file's folder") {
  std::string cwd = std::filesystem::current_path().string();
  struct {
    const char* file;
    const char* root;
    std::string expected;
  } cases[] = {
      {"/etc/spoold/spoold.toml", "../var/spool", "/etc/var/spool"},
      {"/etc/spoold/spoold.toml", "spool/", "/etc/spoold/spool"},
      {"/etc/spoold/spoold.toml", "./a/../b", "/etc/spoold/b"},
      {"/etc/spoold/spoold.toml", "/srv//x/./y/", "/srv/x/y"},
      {"conf/demo.toml", "../var/spool", cwd + "/var/spool"},
      {"", "relative", cwd + "/relative"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.file);
    CAPTURE(c.root);
    auto config = ParseConfig(std::string("[spool]\nroot = \"") + c.root + "\"\n", c.file);
    REQUIRE(config.ok());
    CHECK(config->root == c.expected);
  }
}

TEST_CASE("config: slurm keys may be dotted or a table") {
  const char* dotted = R"([pools.cluster]
executor = "slurm"
slurm.partition = "batch"
slurm.sbatch_args = ["--mem=4G", "--time=10"]
)";
  const char* table = R"([pools.cluster]
executor = "slurm"
[pools.cluster.slurm]
partition = "batch"
sbatch_args = ["--mem=4G", "--time=10"]
)";
  const char* inline_table = R"([pools.cluster]
executor = "slurm"
slurm = { partition = "batch", sbatch_args = ["--mem=4G", "--time=10"] }
)";
  for (const char* text : {dotted, table, inline_table}) {
    CAPTURE(text);
    auto config = Parse(text);
    REQUIRE(config.ok());
    const PoolConfig& pool = config->pools.at("cluster");
    CHECK(pool.executor == "slurm");
    CHECK(pool.slurm.partition == "batch");
    CHECK(pool.slurm.sbatch_args == std::vector<std::string>{"--mem=4G", "--time=10"});
  }
}

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

TEST_CASE("config: LoadConfig reads the file and names the path when it cannot") {
  TempDir dir;
  const std::string file = dir / "spoold.toml";
  WriteFile(file, "[spool]\nroot = \"spool\"\n[pools.default]\nworkers = 3\n");
  auto config = LoadConfig(file);
  REQUIRE(config.ok());
  CHECK(config->source == file);
  CHECK(config->root == dir / "spool");
  CHECK(config->pools.at("default").workers == 3);

  std::string missing = dir / "missing.toml";
  auto not_found = LoadConfig(missing);
  REQUIRE_FALSE(not_found.ok());
  CHECK(not_found.error().code == "io_error");
  CHECK(Contains(not_found.error().message, missing));
  CHECK(Contains(not_found.error().message, "No such file or directory"));

  // At most 1 MiB: comments up to it are read, one byte more is refused unread.
  std::string comments = "# " + std::string(1024 * 1024 - 3, 'x') + "\n";
  WriteFile(file, comments);
  CHECK(LoadConfig(file).ok());
  WriteFile(file, comments + "\n");
  auto too_large = LoadConfig(file);
  REQUIRE_FALSE(too_large.ok());
  CHECK(too_large.error().code == "io_error");
  CHECK(Contains(too_large.error().message, "larger than 1 MiB"));

  auto folder = LoadConfig(dir.path());
  REQUIRE_FALSE(folder.ok());
  CHECK(folder.error().code == "io_error");
  CHECK(Contains(folder.error().message, "not a regular file"));

  WriteFile(file, "[pools.default]\nworkers = 0\n");
  auto invalid = LoadConfig(file);
  REQUIRE_FALSE(invalid.ok());
  CHECK(invalid.error().field == "pools.default.workers");
  CHECK(invalid.error().line == 2);
}

TEST_CASE("config: the demo and example configuration files parse") {
  std::string source_dir = SPOOLD_SOURCE_DIR;

  auto demo = LoadConfig(source_dir + "/config/demo.toml");
  REQUIRE_MESSAGE(demo.ok(), FormatConfigError(demo.error(), "config/demo.toml"));
  CHECK(demo->root ==
        (std::filesystem::path(source_dir) / "var/spool").lexically_normal().string());
  CHECK(demo->rescan_interval == 5s);
  CHECK(demo->allow_root == true);
  REQUIRE(demo->pools.size() == 2);
  CHECK(demo->pools.at("default").workers == 2);
  CHECK(demo->pools.at("default").queue_limit == 100);
  CHECK(demo->pools.at("batch").workers == 1);

  auto example = LoadConfig(source_dir + "/config/spoold.example.toml");
  REQUIRE_MESSAGE(example.ok(),
                  FormatConfigError(example.error(), "config/spoold.example.toml"));
  CHECK(example->root == "/var/spool/spoold");
  CHECK(example->allow_root == false);
  // The example shows every default; it must agree with the built-in ones.
  Config defaults;
  CHECK(example->rescan_interval == defaults.rescan_interval);
  CHECK(example->max_job_file_size == defaults.max_job_file_size);
  CHECK(example->default_timeout == defaults.default_timeout);
  CHECK(example->job_path == defaults.job_path);
  CHECK(example->job_lang == defaults.job_lang);
  CHECK(example->retention_finished == defaults.retention_finished);
  CHECK(example->retention_tombstones == defaults.retention_tombstones);
  CHECK(example->missing_grace == defaults.missing_grace);
  CHECK(example->max_after == defaults.max_after);
  CHECK(example->pools.at("default").queue_limit == PoolConfig{}.queue_limit);
  CHECK(example->pools.at("default").executor == "local");
  CHECK(example->pools.at("default").defaults == PoolConfig{}.defaults);
  CHECK(example->machine.gpus == Host().gpus);
}

TEST_CASE("config: metrics.path is taken from the file's folder, must end in .prom, interval within bounds") {
  auto config = Parse("[metrics]\npath = \"prom/spoold.prom\"\ninterval = \"2s\"\n");
  REQUIRE_MESSAGE(config.ok(), FormatConfigError(config.error(), kConfigFile));
  CHECK(config->metrics_path == (std::filesystem::absolute(kConfigFile).parent_path() / "prom/spoold.prom")
                                    .lexically_normal()
                                    .string());
  CHECK(config->metrics_interval == 2s);
  CHECK(Parse("")->metrics_path.empty());  // the daemon's default (SPEC section 11)
  CHECK(Parse("")->metrics_interval == 5s);

  auto txt = Parse("[metrics]\npath = \"/var/lib/metrics.txt\"\n");
  REQUIRE_FALSE(txt.ok());
  CHECK(txt.error().field == "metrics.path");
  CHECK(txt.error().line == 2);
  CHECK(txt.error().message.find(".prom") != std::string::npos);
  auto fast = Parse("[metrics]\ninterval = \"100ms\"\n");
  REQUIRE_FALSE(fast.ok());
  CHECK(fast.error().field == "metrics.interval");
  auto typo = Parse("[metrics]\npaht = \"a.prom\"\n");
  REQUIRE_FALSE(typo.ok());
  CHECK(typo.error().message.find("path") != std::string::npos);  // did you mean
}
