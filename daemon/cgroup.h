// Per-attempt cgroups (SPEC.md section 5, "Resources"): where this daemon may
// make child cgroups (cgroup v2 with the memory controller, else cgroup v1's
// memory hierarchy, with cpuacct for CPU time when it is mounted), and, for
// each local attempt with a memory request, a cgroup of its own: made with its
// limit before the job runs, read for its peak memory, OOM kills and CPU time
// once it has ended, and removed.
//
// Owns nothing but the paths it found: a cgroup is named by the caller
// (`<job id>.<attempt>`) and lives under `<daemon's own cgroup>/<tag>`, a
// parent made with its first attempt's cgroup and removed with its last. Every
// path derives from the proc root it is given and the mount points named
// there, so tests run it on a folder tree. It never throws, and it does not
// decide what a failure means for a job: the local executor does.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "config/result.h"

namespace spoold {

enum class CgroupKind { kNone, kV1, kV2 };

// What an attempt's cgroup says of it; nullopt: the file could not be read
// (memory.peak is missing on kernels before 5.19, for one).
struct CgroupUsage {
  std::optional<int64_t> memory_peak;  // bytes
  std::optional<int64_t> oom_kills;    // processes the kernel killed at the limit
  std::optional<double> cpu_user_s;
  std::optional<double> cpu_sys_s;
};

// "spoold-<8 hex>": the first 8 hex digits of the SHA-256 of the spool root's
// path, so that two daemons on two spool roots never share a parent cgroup.
std::string CgroupTag(const std::string& root);

class Cgroups {
 public:
  // None, with `reason` saying why (also what a default-made one is).
  explicit Cgroups(std::string reason = "not looked for") : reason_(std::move(reason)) {}

  // Finds where this process may make child cgroups, and checks that it can
  // make the attempts' parent, `<own cgroup>/<tag>`, in each hierarchy used
  // (one it made is removed again; an existing one is fine). cgroup v2 first; it
  // may move this process into a leaf `<own cgroup>/<tag>.daemon` (see
  // cgroup.cpp). Kind none, with a reason, if nothing works.
  static Cgroups Detect(const std::string& tag, const std::string& proc_root = "/proc");

  CgroupKind kind() const { return kind_; }
  bool CanLimitMemory() const { return kind_ != CgroupKind::kNone; }
  // Whether Read gives CPU time (cgroup v2 always; v1 with cpuacct).
  bool AccountsCpu() const { return kind_ == CgroupKind::kV2 || !cpuacct_parent_.empty(); }
  // Why there is none ("" when there is one).
  const std::string& reason() const { return reason_; }
  // The attempts' parent folder in the memory hierarchy (v2: the only one),
  // and in cpuacct's (v1 only; "" without it).
  const std::string& memory_parent() const { return memory_parent_; }
  const std::string& cpuacct_parent() const { return cpuacct_parent_; }
  // For the start log: "memory by cgroup v1 at /sys/fs/cgroup/memory/x/spoold-1a2b3c4d,
  // CPU time by cpuacct", or "memory: not enforced (no cgroup: <why>)".
  std::string Describe() const;

  // Makes the cgroup `name` with `memory_limit` bytes, swap included (see
  // cgroup.cpp); one left by a crashed earlier try is reused if empty. An
  // error (code "io_error") names the file and the problem; nothing is left
  // of the cgroup then.
  Status Create(const std::string& name, int64_t memory_limit);
  // Moves process `pid` (and what it starts from then on) into `name`.
  Status Enter(const std::string& name, pid_t pid);
  // What the cgroup `name` recorded.
  CgroupUsage Read(const std::string& name) const;
  // Removes the cgroup `name` (empty once nothing of its attempt is left),
  // and the attempts' parent if it was the last. Logs a warning if it cannot,
  // never throws; a missing one is fine.
  void Remove(const std::string& name);

 private:
  Status MakeParents() const;

  CgroupKind kind_ = CgroupKind::kNone;
  std::string reason_;
  std::string memory_parent_;
  std::string cpuacct_parent_;  // v1: "" without cpuacct; memory_parent_ when mounted together
};

}  // namespace spoold
