// Resources as files write them (SPEC.md sections 5 and 8): sizes, [machine]
// against the host, a pool's capacity and defaults, and a job's [resources]
// with its pool's defaults and capacity.
#include <doctest/doctest.h>

#include "config/config.h"
#include "config/resources.h"
#include "spool/document.h"
#include "spool/job_spec.h"

using namespace spoold;

namespace {

constexpr int64_t kM = int64_t{1} << 20;
constexpr int64_t kG = int64_t{1} << 30;

// A host of 4 CPUs (numbers 2..5), 16G and two GPUs, for every test here.
struct FakeHost {
  FakeHost() { SetHostFacts({{2, 3, 4, 5}, 16 * kG, {0, 1}}); }
  ~FakeHost() { SetHostFacts(DetectHost()); }
};

Result<Config> Parse(const std::string& text) { return ParseConfig(text, "/etc/spoold/spoold.toml"); }

Result<JobSpec> Job(const std::string& text, const Config& config) {
  auto doc = ParseDocument(text, DocFormat::kToml);
  REQUIRE(doc.ok());
  return ValidateJobSpec(*doc, "job-1", config);
}

}  // namespace

TEST_CASE("sizes: units are powers of 1024, and what is no size is refused") {
  CHECK(ParseSize("512M") == 512 * kM);
  CHECK(ParseSize("4G") == 4 * kG);
  CHECK(ParseSize("1.5G") == 3 * kG / 2);
  CHECK(ParseSize("4096") == 4096);
  CHECK(ParseSize("2gib") == 2 * kG);
  CHECK(ParseSize("1 T") == int64_t{1} << 40);
  CHECK(ParseSize("8KB") == 8192);
  CHECK_FALSE(ParseSize("").has_value());
  CHECK_FALSE(ParseSize("G").has_value());
  CHECK_FALSE(ParseSize("-1G").has_value());
  CHECK_FALSE(ParseSize("1.5").has_value());  // a fraction of a byte
  CHECK_FALSE(ParseSize("4X").has_value());
  CHECK_FALSE(ParseSize("1e9").has_value());
  CHECK_FALSE(ParseSize("99999999999999999999G").has_value());
  CHECK(FormatSize(4 * kG) == "4G");
  CHECK(FormatSize(1536 * kM) == "1536M");
  CHECK(FormatSize(1000) == "1000");
}

TEST_CASE("config: [machine] defaults to the host, and may not claim more CPUs than spoold may run on") {
  FakeHost host;
  auto plain = Parse("");
  REQUIRE(plain.ok());
  CHECK(plain->machine.cpus == 4);
  CHECK(plain->machine.cpu_ids == std::vector<int>{2, 3, 4, 5});
  CHECK(plain->machine.memory == 16 * kG);
  CHECK(plain->machine.gpus == std::vector<int>{0, 1});
  CHECK(plain->CapacityOf(plain->pools.at("default")).cpus == 4);

  auto set = Parse("[machine]\ncpus = 2\nmemory = \"8G\"\ngpus = [1]\n");
  REQUIRE(set.ok());
  CHECK(set->machine.cpu_ids == std::vector<int>{2, 3});
  CHECK(set->machine.memory == 8 * kG);
  CHECK(set->machine.gpus == std::vector<int>{1});

  auto more = Parse("[machine]\ncpus = 8\n");
  REQUIRE_FALSE(more.ok());
  CHECK(more.error().field == "machine.cpus");
  CHECK(more.error().line == 2);
  CHECK(more.error().message.find("more than the 4 CPUs") != std::string::npos);

  auto typo = Parse("[machine]\ncpu = 2\n");
  REQUIRE_FALSE(typo.ok());
  CHECK(typo.error().code == "unknown_field");

  auto bad_gpus = Parse("[machine]\ngpus = [0, 0]\n");
  REQUIRE_FALSE(bad_gpus.ok());
  CHECK(bad_gpus.error().field == "machine.gpus");
}

TEST_CASE("config: a pool's capacity lies within the machine's, its defaults within its capacity") {
  FakeHost host;
  auto ok = Parse(
      "[pools.gpu]\ncpus = 2\nmemory = \"4G\"\ngpus = [1]\ndefault_cpus = 1\ndefault_memory = \"1G\"\n");
  REQUIRE(ok.ok());
  const PoolCapacity cap = ok->CapacityOf(ok->pools.at("gpu"));
  CHECK(cap.cpus == 2);
  CHECK(cap.memory == 4 * kG);
  CHECK(cap.gpus == std::vector<int>{1});
  CHECK(ok->pools.at("gpu").defaults == ResourceAmounts{1, 1 * kG, 0});

  auto over = Parse("[pools.a]\nmemory = \"32G\"\n");
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().field == "pools.a.memory");
  CHECK(over.error().message.find("machine.memory (16G)") != std::string::npos);

  auto device = Parse("[pools.a]\ngpus = [7]\n");
  REQUIRE_FALSE(device.ok());
  CHECK(device.error().field == "pools.a.gpus");

  auto big_default = Parse("[pools.a]\ncpus = 2\ndefault_cpus = 3\n");
  REQUIRE_FALSE(big_default.ok());
  CHECK(big_default.error().field == "pools.a.default_cpus");
  CHECK(big_default.error().line == 3);

  // A slurm pool claims nothing of the machine: no bound unless set.
  auto slurm = Parse("[pools.hpc]\nexecutor = \"slurm\"\ncpus = 64\n");
  REQUIRE(slurm.ok());
  const PoolCapacity hpc = slurm->CapacityOf(slurm->pools.at("hpc"));
  CHECK(hpc.cpus == 64);
  CHECK(hpc.memory == PoolCapacity::kNoBound);
}

TEST_CASE("job files: [resources] with the pool's defaults, refused past what the pool could ever give") {
  FakeHost host;
  auto config = Parse("[pools.default]\ndefault_memory = \"1G\"\n[pools.small]\ncpus = 2\nmemory = \"2G\"\n");
  REQUIRE(config.ok());
  auto plain = Job("command = [\"true\"]\n", *config);
  REQUIRE(plain.ok());
  CHECK(plain->resources == ResourceAmounts{0, 1 * kG, 0});

  auto asked = Job("command = [\"true\"]\n[resources]\ncpus = 2\nmemory = \"512M\"\ngpus = 1\n", *config);
  REQUIRE(asked.ok());
  CHECK(asked->resources == ResourceAmounts{2, 512 * kM, 1});

  auto wide = Job("command = [\"true\"]\npool = \"small\"\n[resources]\ncpus = 3\n", *config);
  REQUIRE_FALSE(wide.ok());
  CHECK(wide.error().code == "invalid_field");
  CHECK(wide.error().field == "resources.cpus");
  CHECK(wide.error().line == 4);
  CHECK(wide.error().message == "resources.cpus asks for 3 CPUs; pool \"small\" has 2 CPUs");

  auto gpus = Job("command = [\"true\"]\npool = \"small\"\n[resources]\ngpus = 3\n", *config);
  REQUIRE_FALSE(gpus.ok());
  CHECK(gpus.error().message.find("has 2 GPUs") != std::string::npos);

  auto bad_size = Job("command = [\"true\"]\n[resources]\nmemory = \"lots\"\n", *config);
  REQUIRE_FALSE(bad_size.ok());
  CHECK(bad_size.error().field == "resources.memory");
  CHECK(bad_size.error().message.find("a size such as") != std::string::npos);

  auto tiny = Job("command = [\"true\"]\n[resources]\nmemory = 1000\n", *config);
  REQUIRE_FALSE(tiny.ok());
  CHECK(tiny.error().message == "resources.memory must be from 1M to 1P");

  auto zero = Job("command = [\"true\"]\n[resources]\ncpus = 0\n", *config);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().field == "resources.cpus");

  auto typo = Job("command = [\"true\"]\n[resources]\ncpu = 1\n", *config);
  REQUIRE_FALSE(typo.ok());
  CHECK(typo.error().code == "unknown_field");
  CHECK(typo.error().message.find("resources.cpus") != std::string::npos);
}
