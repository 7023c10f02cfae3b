// Who holds which resources (SPEC.md section 5, "Resources"): each local
// pool's CPUs, memory and GPUs in use, and the machine's that they share,
// down to the CPU numbers and GPU devices of each running attempt. Slurm
// pools hold nothing here: Slurm hands out their jobs' requests. Pure: no
// I/O; the scheduler asks and tells it.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "spool/json_util.h"

namespace spoold {

// What a pool, or the machine, has free: counts.
struct FreeAmounts {
  int64_t cpus = 0;
  int64_t memory = 0;
  int64_t gpus = 0;
  bool Covers(const ResourceAmounts& want) const {
    return want.cpus <= cpus && want.memory <= memory && want.gpus <= gpus;
  }
  void Take(const ResourceAmounts& a) {
    cpus -= a.cpus;
    memory -= a.memory;
    gpus -= a.gpus;
  }
  void Give(const ResourceAmounts& a) {
    cpus += a.cpus;
    memory += a.memory;
    gpus += a.gpus;
  }
};

class ResourceLedger {
 public:
  // Capacities from the configuration; what is held stays held (a reload
  // may leave a pool over its new capacity until its jobs end).
  void SetConfig(const Config& config);

  // Whether the pool's jobs take from the machine (a local pool: configured,
  // or removed by a reload, which runs its jobs to their ends).
  bool Local(const std::string& pool) const;

  // nullopt when `want` fits in what `pool` and the machine have free now;
  // else which of them lacks what: "4 CPUs: pool \"default\" has not that
  // many free". Always nullopt for a slurm pool.
  std::optional<std::string> ShortOf(const std::string& pool, const ResourceAmounts& want) const;
  // Whether `want` is more than the pool has at all now (a reload shrank it).
  std::optional<std::string> NeverFits(const std::string& pool, const ResourceAmounts& want) const;

  // Gives attempt `id` of `pool` what it asks for, which fits (ShortOf):
  // the lowest free CPU numbers and devices of the pool's list.
  ResourceGrant Take(const std::string& id, const std::string& pool, const ResourceAmounts& want);
  // Records what a running attempt found at recovery holds.
  void Hold(const std::string& id, const std::string& pool, const ResourceAmounts& want,
            const ResourceGrant& grant);
  void Release(const std::string& id);

  FreeAmounts PoolFree(const std::string& pool) const;
  FreeAmounts MachineFree() const;
  // What `id` holds, if anything.
  struct Held {
    std::string pool;
    ResourceAmounts amounts;
    ResourceGrant grant;
    // The numbers of the grant it took: a job taken in from a folder may
    // name CPUs or devices a running job holds already, and its end must
    // not free them.
    std::vector<int> own_cpus;
    std::vector<int> own_gpus;
  };
  const std::map<std::string, Held>& HeldAll() const { return held_; }
  // The amounts `held` gives back to `pool` when it ends (its devices of
  // the pool's list only).
  ResourceAmounts GivesBackTo(const std::string& pool, const Held& held) const;

  // For index.json: a pool's capacity and use, and the machine's.
  Json PoolJson(const std::string& pool) const;
  Json MachineJson() const;

 private:
  const PoolConfig* PoolConfigOf(const std::string& pool) const;
  Config config_;
  std::map<std::string, Held> held_;
  std::map<std::string, ResourceAmounts> pool_used_;
  std::map<std::string, std::vector<int>> pool_gpus_used_;
  ResourceAmounts machine_used_;
  std::set<int> cpus_taken_;
  std::set<int> gpus_taken_;
};

}  // namespace spoold
