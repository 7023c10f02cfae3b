#include "cli/job_options.h"

#include "spool/job_array.h"

namespace spoold::cli {
namespace {

// A machine that bounds no request: what is not known is the daemon's to judge.
MachineConfig UnboundedMachine() {
  MachineConfig machine;
  machine.cpus = kMaxCpus;
  machine.memory = kMaxMemory;
  machine.gpus.clear();
  for (int i = 0; i < kMaxGpus; ++i) machine.gpus.push_back(i);
  return machine;
}

std::optional<int64_t> Count(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer() || it->get<int64_t>() < 0) return std::nullopt;
  return it->get<int64_t>();
}

// A list of device numbers (a count, from a daemon that writes one, stands for 0..N-1).
std::optional<std::vector<int>> Devices(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  std::vector<int> devices;
  if (it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() <= kMaxGpus) {
    for (int i = 0; i < it->get<int>(); ++i) devices.push_back(i);
    return devices;
  }
  if (!it->is_array()) return std::nullopt;
  for (const auto& d : *it) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() >= kMaxGpus) return std::nullopt;
    devices.push_back(d.get<int>());
  }
  return devices;
}

// index.json's head "machine" (SPEC.md section 7); an older daemon's index
// has none, and then nothing is bounded.
MachineConfig MachineOf(const Json& head) {
  MachineConfig machine = UnboundedMachine();
  auto it = head.find("machine");
  if (it == head.end() || !it->is_object()) return machine;
  if (auto cpus = Count(*it, "cpus"); cpus && *cpus > 0) {
    machine.cpus = *cpus;
  } else if (auto ids = it->find("cpus"); ids != it->end() && ids->is_array() && !ids->empty()) {
    machine.cpus = static_cast<int64_t>(ids->size());  // CPU numbers, should a daemon list them
  }
  if (auto memory = Count(*it, "memory"); memory && *memory > 0) machine.memory = *memory;
  if (auto gpus = Devices(*it, "gpus")) machine.gpus = *gpus;
  return machine;
}

// A pool entry's "capacity" into `pool`: a local pool's is what it hands
// out; a slurm pool's 0 or [] is no bound. Without it (an older daemon),
// the pool takes the machine's, as a configured pool without these keys does.
void ReadCapacity(const Json& entry, PoolConfig* pool) {
  auto it = entry.find("capacity");
  if (it == entry.end() || !it->is_object()) return;
  const bool local = pool->executor == "local";
  if (auto cpus = Count(*it, "cpus"); cpus && (local || *cpus > 0)) pool->cpus = *cpus;
  if (auto memory = Count(*it, "memory"); memory && (local || *memory > 0)) pool->memory = *memory;
  if (auto gpus = Devices(*it, "gpus"); gpus && (local || !gpus->empty())) pool->gpus = *gpus;
}

}  // namespace

void Settings::AssumePool(const Json& pool) {
  if (pools_known || !pool.is_string()) return;
  config.pools[pool.get<std::string>()].name = pool.get<std::string>();
}

Settings LoadSettings(const Context& ctx) {
  Settings s;
  if (ctx.config) {
    s.config = *ctx.config;
    s.source = "configuration " + ctx.config->source;
    s.config_known = true;
    return s;
  }
  s.config.pools.clear();
  s.config.machine = UnboundedMachine();
  if (ctx.paths) {
    auto index = ReadIndex(ctx);
    if (index.ok() && index->contains("pools") && (*index)["pools"].is_object()) {
      s.config.machine = MachineOf(*index);
      for (const auto& [name, pool] : (*index)["pools"].items()) {
        PoolConfig p;
        p.name = name;
        p.workers = pool.value("workers", 0);
        p.queue_limit = pool.value("queue_limit", 1000);
        p.paused = pool.value("paused", false);
        p.executor = pool.value("executor", "local");
        ReadCapacity(pool, &p);
        s.config.pools[name] = p;
      }
      s.source = "pools from " + ctx.Paths().Index() + " (no configuration: pool timeouts unknown)";
      return s;
    }
  }
  s.pools_known = false;
  s.source = "built-in defaults (no configuration and no index.json: the pool was not checked)";
  return s;
}

Result<Overrides> ParseOverrides(const Args& args) {
  Overrides ov;
  ov.pool = args.Value("pool");
  if (auto text = args.Value("priority")) {
    auto value = ParseIntArg("--priority", *text, INT64_MIN, INT64_MAX);
    if (!value.ok()) return value.error();
    ov.priority = *value;
  }
  ov.hold = args.Flag("hold");
  if (auto text = args.Value("after")) {
    size_t start = 0;
    while (start <= text->size()) {
      size_t comma = text->find(',', start);
      if (comma == std::string::npos) comma = text->size();
      std::string id = text->substr(start, comma - start);
      // A parent may be a task of an array (SPEC.md section 5).
      if (!IsValidJobRef(id)) {
        return MakeError("invalid_field",
                         "--after takes job ids (or task ids, ID:INDEX) separated by commas; \"" +
                             PrintableName(id) + "\" is not one");
      }
      ov.after.push_back(std::move(id));
      start = comma + 1;
    }
  }
  auto array = ParseArrayOptions(args);
  if (!array.ok()) return array.error();
  ov.array = std::move(array.value());
  auto resources = ParseResourceOptions(args);
  if (!resources.ok()) return resources.error();
  ov.resources = std::move(resources.value());
  return ov;
}

Result<ResourceOptions> ParseResourceOptions(const Args& args) {
  // The bounds of a job file's [resources] (spool/job_resources.cpp); what
  // the pool can give is checked with the job, by validation.
  ResourceOptions r;
  if (auto text = args.Value("cpus")) {
    auto n = ParseIntArg("--cpus", *text, 1, kMaxCpus);
    if (!n.ok()) return n.error();
    r.cpus = *n;
  }
  if (auto text = args.Value("memory")) {
    auto size = ParseSize(*text);
    if (!size) {
      return MakeError("usage",
                       std::string("--memory takes ") + kSizeRule + ", got \"" + PrintableName(*text) + "\"");
    }
    if (*size < kMinMemory || *size > kMaxMemory) {
      return MakeError("usage", "--memory must be from 1M to 1P, got \"" + PrintableName(*text) + "\"");
    }
    r.memory = *text;
  }
  if (auto text = args.Value("gpus")) {
    auto n = ParseIntArg("--gpus", *text, 0, kMaxGpus);
    if (!n.ok()) return n.error();
    r.gpus = *n;
  }
  return r;
}

void ApplyOverrides(const Overrides& ov, Json& job) {
  if (ov.pool) job["pool"] = *ov.pool;
  if (ov.priority) job["priority"] = *ov.priority;
  if (ov.hold) job["hold"] = true;
  // Added to what the file names (a parent named twice is refused by validation).
  if (!ov.after.empty()) {
    if (!job.contains("after")) job["after"] = Json::array();
    for (const auto& id : ov.after) job["after"].push_back(id);
  }
  if (ov.derived_from) {
    if (!job.contains("metadata")) job["metadata"] = Json::object();
    if (job["metadata"].is_object()) job["metadata"]["derived_from"] = *ov.derived_from;
  }
  ApplyArrayOptions(ov.array, job);
  if (ov.resources.Any()) {
    // Into the file's [resources]: its other keys stay. A [resources] that is
    // no table is left as it is, for validation to name.
    if (!job.contains("resources")) job["resources"] = Json::object();
    Json& resources = job["resources"];
    if (resources.is_object()) {
      if (ov.resources.cpus) resources["cpus"] = *ov.resources.cpus;
      if (ov.resources.memory) resources["memory"] = *ov.resources.memory;
      if (ov.resources.gpus) resources["gpus"] = *ov.resources.gpus;
    }
  }
}

}  // namespace spoold::cli
