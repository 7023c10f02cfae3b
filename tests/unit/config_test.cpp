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
