#include "config/config_resources.h"

#include <algorithm>
#include <set>

#include "config/config_fields.h"

namespace spoold::config_resources {
namespace {

using namespace spoold::config_fields;

Status ReadSize(const toml::node& node, const std::string& field, int64_t min, int64_t* out) {
  std::optional<int64_t> size;
  if (const auto* number = node.as_integer()) {
    size = number->get();
  } else if (const auto* text = node.as_string()) {
    size = ParseSize(text->get());
  } else {
    return FieldError("invalid_field", field, node.source(),
                      field + " must be " + kSizeRule + ", got " + TypeName(node));
  }
  if (!size) return FieldError("invalid_field", field, node.source(), field + " must be " + kSizeRule);
  if (*size != 0 && (*size < std::max<int64_t>(min, kMinMemory) || *size > kMaxMemory)) {
    return FieldError("invalid_field", field, node.source(), field + " must be from 1M to 1P");
  }
  if (*size == 0 && min > 0)
    return FieldError("invalid_field", field, node.source(), field + " must be from 1M to 1P");
  *out = *size;
  return OkStatus();
}

Status ReadGpuList(const toml::node& node, const std::string& field, bool allow_auto,
                   std::optional<std::vector<int>>* out) {
  std::string rule = field + " must be " + (allow_auto ? "\"auto\" or " : "") +
                     "an array of distinct device indexes from 0 to 255";
  if (const auto* text = node.as_string(); text != nullptr && allow_auto && text->get() == "auto") {
    out->reset();
    return OkStatus();
  }
  const auto* array = node.as_array();
  if (array == nullptr || array->size() > static_cast<size_t>(kMaxGpus)) {
    return FieldError("invalid_field", field, node.source(), rule);
  }
  std::vector<int> gpus;
  std::set<int> seen;
  for (const toml::node& item : *array) {
    const auto* index = item.as_integer();
    if (index == nullptr || index->get() < 0 || index->get() >= kMaxGpus ||
        !seen.insert(int(index->get())).second) {
      return FieldError("invalid_field", field, item.source(), rule);
    }
    gpus.push_back(static_cast<int>(index->get()));
  }
  *out = std::move(gpus);
  return OkStatus();
}

const toml::node* Find(const toml::table& table, std::string_view key) { return table.get(key); }

toml::source_region Where(const toml::table& table, std::string_view key) {
  const toml::node* node = table.get(key);
  return node != nullptr ? node->source() : table.source();
}

}  // namespace

std::string DescribeAmount(std::string_view key, int64_t n) {
  if (key == "cpus") return std::to_string(n) + (n == 1 ? " CPU" : " CPUs");
  if (key == "memory") return FormatSize(n) + " of memory";
  return std::to_string(n) + (n == 1 ? " GPU" : " GPUs");
}

std::string Describe(const PoolCapacity& capacity, std::string_view key) {
  return DescribeAmount(key, key == "cpus"     ? capacity.cpus
                             : key == "memory" ? capacity.memory
                                               : capacity.gpu_count);
}

std::optional<Status> ReadPoolKey(const toml::key& key, const toml::node& node, const std::string& field,
                                  PoolConfig* pool) {
  if (key == "cpus") {
    int64_t cpus = 0;
    Status s = ReadInteger(node, field, 1, kMaxCpus, &cpus);
    if (s) pool->cpus = cpus;
    return s;
  }
  if (key == "memory") {
    int64_t memory = 0;
    Status s = ReadSize(node, field, kMinMemory, &memory);
    if (s) pool->memory = memory;
    return s;
  }
  if (key == "gpus") {
    std::optional<std::vector<int>> gpus;
    Status s = ReadGpuList(node, field, /*allow_auto=*/false, &gpus);
    if (s) pool->gpus = std::move(gpus);
    return s;
  }
  if (key == "default_cpus") return ReadInteger(node, field, 0, kMaxCpus, &pool->defaults.cpus);
  if (key == "default_memory") return ReadSize(node, field, 0, &pool->defaults.memory);
  if (key == "default_gpus") return ReadInteger(node, field, 0, kMaxGpus, &pool->defaults.gpus);
  return std::nullopt;
}

Status Resolve(const toml::table& root, Config* config) {
  const HostFacts& host = Host();
  MachineConfig& machine = config->machine;
  machine.cpus = static_cast<int64_t>(host.cpus.size());
  machine.memory = host.memory;
  machine.gpus = host.gpus;
  if (const toml::table* table = root["machine"].as_table()) {
    if (const toml::node* node = Find(*table, "cpus")) {
      const int64_t most = static_cast<int64_t>(host.cpus.size());
      if (Status s = ReadInteger(*node, "machine.cpus", 1, kMaxCpus, &machine.cpus); !s) return s;
      if (machine.cpus > most) {
        return FieldError("invalid_field", "machine.cpus", node->source(),
                          "machine.cpus is " + std::to_string(machine.cpus) + ", more than the " +
                              std::to_string(most) +
                              " CPUs spoold may run on (each job is given CPUs of its own)");
      }
    }
    if (const toml::node* node = Find(*table, "memory")) {
      if (Status s = ReadSize(*node, "machine.memory", kMinMemory, &machine.memory); !s) return s;
    }
    if (const toml::node* node = Find(*table, "gpus")) {
      std::optional<std::vector<int>> gpus;
      if (Status s = ReadGpuList(*node, "machine.gpus", /*allow_auto=*/true, &gpus); !s) return s;
      machine.gpus = gpus ? *gpus : host.gpus;
    }
  }
  machine.cpu_ids.assign(host.cpus.begin(), host.cpus.begin() + machine.cpus);

  for (auto& [name, pool] : config->pools) {
    const std::string prefix = "pools." + name;
    const toml::table* table = root["pools"][name].as_table();
    auto where = [&](std::string_view key) { return table != nullptr ? Where(*table, key) : root.source(); };
    const bool local = pool.executor == "local";
    if (local) {
      if (pool.cpus && *pool.cpus > machine.cpus) {
        return FieldError("invalid_field", prefix + ".cpus", where("cpus"),
                          prefix + ".cpus is " + std::to_string(*pool.cpus) + ", more than machine.cpus (" +
                              std::to_string(machine.cpus) + ")");
      }
      if (pool.memory && *pool.memory > machine.memory) {
        return FieldError("invalid_field", prefix + ".memory", where("memory"),
                          prefix + ".memory is " + FormatSize(*pool.memory) + ", more than machine.memory (" +
                              FormatSize(machine.memory) + ")");
      }
      if (pool.gpus) {
        for (int gpu : *pool.gpus) {
          if (std::find(machine.gpus.begin(), machine.gpus.end(), gpu) == machine.gpus.end()) {
            return FieldError("invalid_field", prefix + ".gpus", where("gpus"),
                              prefix + ".gpus names device " + std::to_string(gpu) +
                                  ", which machine.gpus does not have ([" + JoinNumbers(machine.gpus) + "])");
          }
        }
      }
    }
    const PoolCapacity capacity = config->CapacityOf(pool);
    if (const char* key = capacity.Over(pool.defaults)) {
      const std::string field = prefix + ".default_" + key;
      return FieldError("invalid_field", field, where(std::string("default_") + key),
                        field + " is more than the pool has (" + Describe(capacity, key) + ")");
    }
  }
  return OkStatus();
}

}  // namespace spoold::config_resources
