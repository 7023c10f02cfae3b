#include "daemon/resource_ledger.h"

#include <algorithm>

#include "config/config_resources.h"

namespace spoold {
namespace {

// The first key of `want` that `free` does not cover.
const char* Lacking(const FreeAmounts& free, const ResourceAmounts& want) {
  if (want.cpus > free.cpus) return "cpus";
  if (want.memory > free.memory) return "memory";
  if (want.gpus > free.gpus) return "gpus";
  return nullptr;
}

}  // namespace

void ResourceLedger::SetConfig(const Config& config) { config_ = config; }

const PoolConfig* ResourceLedger::PoolConfigOf(const std::string& pool) const {
  auto it = config_.pools.find(pool);
  return it == config_.pools.end() ? nullptr : &it->second;
}

bool ResourceLedger::Local(const std::string& pool) const {
  const PoolConfig* config = PoolConfigOf(pool);
  return config == nullptr || config->executor == "local";
}

FreeAmounts ResourceLedger::PoolFree(const std::string& pool) const {
  const PoolConfig* config = PoolConfigOf(pool);
  if (config == nullptr) return {};  // removed: starts nothing
  const PoolCapacity capacity = config_.CapacityOf(*config);
  auto used = pool_used_.find(pool);
  const ResourceAmounts u = used == pool_used_.end() ? ResourceAmounts{} : used->second;
  FreeAmounts free{capacity.cpus - u.cpus, capacity.memory - u.memory, 0};
  for (int gpu : capacity.gpus) free.gpus += gpus_taken_.count(gpu) == 0 ? 1 : 0;
  return free;
}

FreeAmounts ResourceLedger::MachineFree() const {
  const MachineConfig& m = config_.machine;
  FreeAmounts free{0, m.memory - machine_used_.memory, 0};
  for (int cpu : m.cpu_ids) free.cpus += cpus_taken_.count(cpu) == 0 ? 1 : 0;
  for (int gpu : m.gpus) free.gpus += gpus_taken_.count(gpu) == 0 ? 1 : 0;
  return free;
}

std::optional<std::string> ResourceLedger::ShortOf(const std::string& pool,
                                                   const ResourceAmounts& want) const {
  if (!Local(pool) || want.Empty()) return std::nullopt;
  if (const char* key = Lacking(PoolFree(pool), want)) {
    return config_resources::DescribeAmount(key, want.Of(key)) + ": pool \"" + pool +
           "\" has not that many free";
  }
  if (const char* key = Lacking(MachineFree(), want)) {
    return config_resources::DescribeAmount(key, want.Of(key)) +
           ": the machine, which its pools share, has not that many free";
  }
  return std::nullopt;
}

std::optional<std::string> ResourceLedger::NeverFits(const std::string& pool,
                                                     const ResourceAmounts& want) const {
  const PoolConfig* config = PoolConfigOf(pool);
  if (config == nullptr || want.Empty()) return std::nullopt;
  const PoolCapacity capacity = config_.CapacityOf(*config);
  if (const char* key = capacity.Over(want)) {
    return config_resources::DescribeAmount(key, want.Of(key)) + ", more than pool \"" + pool +
           "\" has now (" + config_resources::Describe(capacity, key) + ")";
  }
  return std::nullopt;
}

ResourceGrant ResourceLedger::Take(const std::string& id, const std::string& pool,
                                   const ResourceAmounts& want) {
  ResourceGrant grant;
  grant.memory = want.memory;
  if (Local(pool)) {
    for (int cpu : config_.machine.cpu_ids) {
      if (static_cast<int64_t>(grant.cpus.size()) == want.cpus) break;
      if (cpus_taken_.count(cpu) == 0) grant.cpus.push_back(cpu);
    }
    if (const PoolConfig* config = PoolConfigOf(pool)) {
      for (int gpu : config_.CapacityOf(*config).gpus) {
        if (static_cast<int64_t>(grant.gpus.size()) == want.gpus) break;
        if (gpus_taken_.count(gpu) == 0) grant.gpus.push_back(gpu);
      }
    }
  }
  Hold(id, pool, want, grant);
  return grant;
}

void ResourceLedger::Hold(const std::string& id, const std::string& pool, const ResourceAmounts& want,
                          const ResourceGrant& grant) {
  if (!Local(pool) || want.Empty()) return;
  Release(id);
  Held& held = held_[id];
  held = Held{pool, want, grant, {}, {}};
  for (int cpu : grant.cpus) {
    if (cpus_taken_.insert(cpu).second) held.own_cpus.push_back(cpu);
  }
  for (int gpu : grant.gpus) {
    if (gpus_taken_.insert(gpu).second) held.own_gpus.push_back(gpu);
  }
  ResourceAmounts& used = pool_used_[pool];
  used.cpus += want.cpus;
  used.memory += want.memory;
  used.gpus += want.gpus;
  machine_used_.cpus += want.cpus;
  machine_used_.memory += want.memory;
  machine_used_.gpus += want.gpus;
}

void ResourceLedger::Release(const std::string& id) {
  auto it = held_.find(id);
  if (it == held_.end()) return;
  const Held& held = it->second;
  ResourceAmounts& used = pool_used_[held.pool];
  used.cpus -= held.amounts.cpus;
  used.memory -= held.amounts.memory;
  used.gpus -= held.amounts.gpus;
  machine_used_.cpus -= held.amounts.cpus;
  machine_used_.memory -= held.amounts.memory;
  machine_used_.gpus -= held.amounts.gpus;
  for (int cpu : held.own_cpus) cpus_taken_.erase(cpu);
  for (int gpu : held.own_gpus) gpus_taken_.erase(gpu);
  held_.erase(it);
}

ResourceAmounts ResourceLedger::GivesBackTo(const std::string& pool, const Held& held) const {
  ResourceAmounts back{0, 0, 0};
  if (held.pool == pool) {
    back.cpus = held.amounts.cpus;
    back.memory = held.amounts.memory;
  }
  // Devices count for every pool whose list has them.
  if (const PoolConfig* config = PoolConfigOf(pool)) {
    const std::vector<int> gpus = config_.CapacityOf(*config).gpus;
    for (int gpu : held.grant.gpus) {
      back.gpus += std::find(gpus.begin(), gpus.end(), gpu) != gpus.end() ? 1 : 0;
    }
  }
  return back;
}

Json ResourceLedger::PoolJson(const std::string& pool) const {
  Json out = Json::object();
  const PoolConfig* config = PoolConfigOf(pool);
  PoolCapacity capacity;
  if (config != nullptr) capacity = config_.CapacityOf(*config);
  auto bound = [](int64_t n) { return n == PoolCapacity::kNoBound ? 0 : n; };
  out["capacity"] = {
      {"cpus", bound(capacity.cpus)}, {"memory", bound(capacity.memory)}, {"gpus", capacity.gpus}};
  auto used = pool_used_.find(pool);
  const ResourceAmounts u = used == pool_used_.end() ? ResourceAmounts{} : used->second;
  std::vector<int> gpus;
  for (const auto& [id, held] : held_) {
    if (held.pool == pool) gpus.insert(gpus.end(), held.grant.gpus.begin(), held.grant.gpus.end());
  }
  std::sort(gpus.begin(), gpus.end());
  out["used"] = {{"cpus", u.cpus}, {"memory", u.memory}, {"gpus", gpus}};
  return out;
}

Json ResourceLedger::MachineJson() const {
  const MachineConfig& m = config_.machine;
  std::vector<int> gpus(gpus_taken_.begin(), gpus_taken_.end());
  return {{"cpus", m.cpus},
          {"memory", m.memory},
          {"gpus", m.gpus},
          {"used", {{"cpus", machine_used_.cpus}, {"memory", machine_used_.memory}, {"gpus", gpus}}}};
}

}  // namespace spoold
