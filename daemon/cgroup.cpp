#include "daemon/cgroup.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <vector>

#include "spool/fileio.h"
#include "spool/sha256.h"

namespace spoold {
namespace {

// cgroup interface files are small; memory.stat, the largest we might read
// by mistake, is a few KiB.
constexpr size_t kMaxCgroupFile = 64 << 10;

// One line of /proc/self/mountinfo (proc(5)): the mount's root within its file
// system, where it is mounted, its type and its super options.
struct Mount {
  std::string root, point, fstype;
  std::vector<std::string> options;
};

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

// The words of a one-line list file (cgroup.controllers, cgroup.subtree_control).
std::vector<std::string> Words(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  for (const auto& x : list) {
    if (x == item) return true;
  }
  return false;
}

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

// mountinfo writes a space, tab, newline and backslash in a path as \ooo.
std::string Unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && IsOctal(text[i + 1]) && IsOctal(text[i + 2]) &&
        IsOctal(text[i + 3])) {
      out += static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 + (text[i + 3] - '0'));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<Mount> ReadMounts(const std::string& path) {
  std::vector<Mount> mounts;
  auto text = ReadSmallFile(path, 4 << 20);
  if (!text.ok()) return mounts;
  for (const std::string& line : Split(*text, '\n')) {
    std::vector<std::string> f = Split(line, ' ');
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 3 >= f.size()) continue;
    mounts.push_back({Unescape(f[3]), Unescape(f[4]), f[dash + 1], Split(f[dash + 3], ',')});
  }
  return mounts;
}

// /proc/self/cgroup: "ID:CONTROLLERS:PATH" per hierarchy; v2's is "0::PATH".
// The path of the line for which `match` is true on the controllers.
template <class Match>
std::optional<std::string> OwnPath(const std::string& text, Match match) {
  for (const std::string& line : Split(text, '\n')) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    if (match(line.substr(0, a), line.substr(a + 1, b - a - 1))) return line.substr(b + 1);
  }
  return std::nullopt;
}

// The folder of cgroup `own` (a path from /proc/self/cgroup) under one of
// `mounts`: mount point + `own` relative to the mount's root. A mount whose
// root is not above `own` (a bind mount of another subtree, or `own` outside
// this cgroup namespace, "/.." paths) cannot show it.
std::optional<std::string> CgroupDir(const std::vector<const Mount*>& mounts, const std::string& own) {
  if (own.empty() || own[0] != '/') return std::nullopt;
  for (const std::string& part : Split(own, '/')) {
    if (part == "..") return std::nullopt;
  }
  for (const Mount* m : mounts) {
    std::string rel;
    if (m->root == "/") {
      rel = own;
    } else if (own == m->root || own.compare(0, m->root.size() + 1, m->root + "/") == 0) {
      rel = own.substr(m->root.size());
    } else {
      continue;
    }
    if (rel == "/") rel.clear();
    return m->point + rel;
  }
  return std::nullopt;
}

std::optional<std::string> ReadFile(const std::string& path) {
  auto text = ReadSmallFile(path, kMaxCgroupFile);
  if (!text.ok()) return std::nullopt;
  return *text;
}

// Writes `value` with one write(), as cgroup files want; 0 or the errno.
int WriteValue(const std::string& path, const std::string& value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno;
  const ssize_t n = ::write(fd, value.data(), value.size());
  const int err = n < 0 ? errno : (static_cast<size_t>(n) != value.size() ? EIO : 0);
  ::close(fd);
  return err;
}

Status Write(const std::string& path, const std::string& value) {
  if (int err = WriteValue(path, value); err != 0)
    return MakeError("io_error", ErrnoMessage("write " + value + " to", path, err));
  return OkStatus();
}

// mkdir, an existing folder being fine.
Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return EnsureDir(path);
  return MakeError("io_error", ErrnoMessage("create cgroup", path, errno));
}

// rmdir of an attempts' parent once its last attempt's cgroup is gone: it is
// made again with the next one. A parent that still holds cgroups (EBUSY in
// v1, ENOTEMPTY in v2) stays; anything else is worth a warning.
void RemoveParent(const std::string& dir) {
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY) {
    spdlog::warn("cannot remove cgroup {}", ErrnoMessage("rmdir", dir, errno));
  }
}

std::optional<int64_t> ParseInt(const std::string& text) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == 0) return std::nullopt;
    return static_cast<int64_t>(v);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The value of `key` in a flat keyed file ("key value" lines: memory.events,
// memory.oom_control, cpu.stat, cpuacct.stat).
std::optional<int64_t> KeyedValue(const std::optional<std::string>& text, const std::string& key) {
  if (!text) return std::nullopt;
  for (const std::string& line : Split(*text, '\n')) {
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ' ') {
      return ParseInt(line.substr(key.size() + 1));
    }
  }
  return std::nullopt;
}

bool HasNoProcesses(const std::string& dir) {
  auto procs = ReadFile(dir + "/cgroup.procs");
  return procs && procs->find_first_not_of(" \n") == std::string::npos;
}

// cgroup v2: usable when the daemon's cgroup offers the memory controller and
// lets its children have it.
Status DetectV2(const std::vector<Mount>& mounts, const std::string& cgroup_text, const std::string& tag,
                std::string* parent) {
  std::vector<const Mount*> v2;
  for (const Mount& m : mounts) {
    if (m.fstype == "cgroup2") v2.push_back(&m);
  }
  if (v2.empty()) return MakeError("io_error", "no cgroup2 file system is mounted");
  auto own = OwnPath(cgroup_text,
                     [](const std::string& id, const std::string& c) { return id == "0" && c.empty(); });
  if (!own) return MakeError("io_error", "the process has no cgroup v2 path (no 0:: line)");
  auto dir = CgroupDir(v2, *own);
  if (!dir) return MakeError("io_error", "its cgroup v2 " + *own + " is not under any cgroup2 mount");
  auto controllers = ReadFile(*dir + "/cgroup.controllers");
  if (!controllers) return MakeError("io_error", "cannot read " + *dir + "/cgroup.controllers");
  if (!Contains(Words(*controllers), "memory")) {
    return MakeError("io_error", "cgroup v2 " + *dir + " does not offer the memory controller");
  }
  auto subtree = ReadFile(*dir + "/cgroup.subtree_control");
  const std::string control = *dir + "/cgroup.subtree_control";
  if (!subtree || !Contains(Words(*subtree), "memory")) {
    int err = WriteValue(control, "+memory");
    // A cgroup other than the root may not both hold processes and give its
    // children a controller ("no internal processes"). The daemon's own cgroup
    // holds the daemon (under systemd, its service's cgroup), so the daemon
    // moves to a leaf of its own beside the attempts' parent, and its cgroup
    // becomes an inner node. Only the daemon moves: its helpers and
    // supervisors start after, in the leaf. Were anything else left in the
    // cgroup, the write fails again and memory is not enforced, rather than
    // spoold moving processes that are not its own. The root cgroup (it has
    // no cgroup.type) is exempt from the rule, so this is never done there.
    if (err == EBUSY && ::access((*dir + "/cgroup.type").c_str(), F_OK) == 0) {
      const std::string leaf = *dir + "/" + tag + ".daemon";
      if (auto st = MakeDir(leaf); !st.ok()) return st;
      if (auto st = Write(leaf + "/cgroup.procs", std::to_string(::getpid())); !st.ok()) return st;
      spdlog::info("moved the daemon into cgroup {} so that {} may give its children the memory controller",
                   leaf, *dir);
      err = WriteValue(control, "+memory");
    }
    if (err != 0) return MakeError("io_error", ErrnoMessage("write +memory to", control, err));
  }
  *parent = *dir + "/" + tag;
  return OkStatus();
}

// cgroup v1: the hierarchy mounted with `controller`, and this process's
// folder in it.
Result<std::string> V1Dir(const std::vector<Mount>& mounts, const std::string& cgroup_text,
                          const std::string& controller) {
  std::vector<const Mount*> found;
  for (const Mount& m : mounts) {
    if (m.fstype == "cgroup" && Contains(m.options, controller)) found.push_back(&m);
  }
  if (found.empty()) return MakeError("io_error", "no cgroup v1 " + controller + " hierarchy is mounted");
  auto own = OwnPath(cgroup_text, [&](const std::string& id, const std::string& c) {
    return id != "0" && Contains(Split(c, ','), controller);
  });
  if (!own) return MakeError("io_error", "the process has no cgroup v1 " + controller + " path");
  auto dir = CgroupDir(found, *own);
  if (!dir)
    return MakeError("io_error", "its " + controller + " cgroup " + *own + " is not under any mount of it");
  return *dir;
}

}  // namespace

std::string CgroupTag(const std::string& root) { return "spoold-" + Sha256Hex(root).substr(0, 8); }

// The attempts' parents are made with the first attempt's cgroup and removed
// with the last one's, so that a daemon that runs no job with a memory request
// (or is killed between jobs) leaves no cgroup behind: a test suite starts
// hundreds of daemons, each on its own spool root, hence its own tag. Detect
// makes them once to learn that it can, and removes what it made.
Status Cgroups::MakeParents() const {
  if (auto st = MakeDir(memory_parent_); !st.ok()) return st;
  if (kind_ == CgroupKind::kV2) {
    // The attempts' cgroups get the memory controller from their parent.
    if (auto st = Write(memory_parent_ + "/cgroup.subtree_control", "+memory"); !st.ok()) {
      RemoveParent(memory_parent_);
      return st;
    }
  }
  if (!cpuacct_parent_.empty() && cpuacct_parent_ != memory_parent_) {
    if (auto st = MakeDir(cpuacct_parent_); !st.ok()) {
      spdlog::warn("CPU time of jobs comes from rusage for now, not cpuacct: {}", st.error().message);
    }
  }
  return OkStatus();
}

Cgroups Cgroups::Detect(const std::string& tag, const std::string& proc_root) {
  const std::vector<Mount> mounts = ReadMounts(proc_root + "/self/mountinfo");
  const auto cgroup_text = ReadFile(proc_root + "/self/cgroup");
  if (mounts.empty()) return Cgroups("cannot read " + proc_root + "/self/mountinfo");
  if (!cgroup_text) return Cgroups("cannot read " + proc_root + "/self/cgroup");
  Cgroups found;
  std::string parent;
  Status v2 = DetectV2(mounts, *cgroup_text, tag, &parent);
  if (v2.ok()) {
    found.kind_ = CgroupKind::kV2;
    found.memory_parent_ = parent;
  } else {
    auto memory = V1Dir(mounts, *cgroup_text, "memory");
    if (!memory.ok()) return Cgroups(v2.error().message + "; " + memory.error().message);
    if (!PathExists(*memory + "/memory.limit_in_bytes")) {
      return Cgroups(v2.error().message + "; " + *memory + " has no memory.limit_in_bytes");
    }
    found.kind_ = CgroupKind::kV1;
    found.memory_parent_ = *memory + "/" + tag;
    // CPU accounting is optional: without it, CPU time comes from rusage.
    if (auto cpuacct = V1Dir(mounts, *cgroup_text, "cpuacct"); cpuacct.ok()) {
      found.cpuacct_parent_ = *cpuacct == *memory ? found.memory_parent_ : *cpuacct + "/" + tag;
    }
  }
  // Whether the parents can be made: those this call made go again (see
  // MakeParents); ones a daemon before left, holding attempts' cgroups, stay.
  const bool memory_existed = PathExists(found.memory_parent_);
  const bool cpuacct_existed = found.cpuacct_parent_.empty() || PathExists(found.cpuacct_parent_);
  if (auto st = found.MakeParents(); !st.ok()) {
    return Cgroups((v2.ok() ? "" : v2.error().message + "; ") + st.error().message);
  }
  if (!cpuacct_existed && !PathExists(found.cpuacct_parent_)) {
    found.cpuacct_parent_.clear();  // it cannot be made: said by MakeParents
  } else if (!cpuacct_existed && found.cpuacct_parent_ != found.memory_parent_) {
    RemoveParent(found.cpuacct_parent_);
  }
  if (!memory_existed) RemoveParent(found.memory_parent_);
  found.reason_.clear();
  return found;
}

std::string Cgroups::Describe() const {
  switch (kind_) {
    case CgroupKind::kV2:
      return "memory by cgroup v2 at " + memory_parent_ + ", CPU time by cpu.stat";
    case CgroupKind::kV1:
      return "memory by cgroup v1 at " + memory_parent_ +
             (cpuacct_parent_.empty() ? ", CPU time from rusage (no cpuacct hierarchy)"
                                      : ", CPU time by cpuacct");
    case CgroupKind::kNone:
      break;
  }
  return "memory: not enforced (no cgroup: " + reason_ + ")";
}

Status Cgroups::Create(const std::string& name, int64_t memory_limit) {
  if (kind_ == CgroupKind::kNone) return MakeError("io_error", "no cgroup: " + reason_);
  if (auto st = MakeParents(); !st.ok()) return st;
  const std::string dir = memory_parent_ + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno != EEXIST) return MakeError("io_error", ErrnoMessage("create cgroup", dir, errno));
    // Left by an earlier try of this attempt, which never ran (a daemon that
    // crashed before recording the start): taken again once empty.
    if (!HasNoProcesses(dir)) return MakeError("io_error", "cgroup " + dir + " exists and holds processes");
  }
  const std::string limit = std::to_string(memory_limit);
  Status st = OkStatus();
  if (kind_ == CgroupKind::kV2) {
    st = Write(dir + "/memory.max", limit);
    // No swap: the limit is what the job may use, not what it may keep in RAM.
    // The file is missing when swap accounting is off (nothing to limit then).
    if (int err = st.ok() ? WriteValue(dir + "/memory.swap.max", "0") : 0; err != 0 && err != ENOENT) {
      st = MakeError("io_error", ErrnoMessage("write 0 to", dir + "/memory.swap.max", err));
    }
    // When the kernel kills one process at the limit it kills all of the
    // attempt's together: a job with part of its processes gone is in no
    // state to go on, and the attempt's end is then one clear event.
    // (Missing before Linux 4.19: then one process goes, as in v1.)
    if (int err = st.ok() ? WriteValue(dir + "/memory.oom.group", "1") : 0; err != 0 && err != ENOENT) {
      st = MakeError("io_error", ErrnoMessage("write 1 to", dir + "/memory.oom.group", err));
    }
  } else {
    const std::string memsw = dir + "/memory.memsw.limit_in_bytes";
    int err = WriteValue(dir + "/memory.limit_in_bytes", limit);
    // memsw may never be below the memory limit: a reused cgroup whose memsw
    // is lower takes memsw first.
    if (err == EINVAL && PathExists(memsw) && WriteValue(memsw, limit) == 0) {
      err = WriteValue(dir + "/memory.limit_in_bytes", limit);
    }
    if (err != 0)
      st = MakeError("io_error", ErrnoMessage("write " + limit + " to", dir + "/memory.limit_in_bytes", err));
    // Where swap accounting is on, memory and swap together get the same
    // limit: no swap beyond it.
    if (st.ok() && PathExists(memsw)) st = Write(memsw, limit);
    if (st.ok() && !cpuacct_parent_.empty() && cpuacct_parent_ != memory_parent_) {
      if (auto made = MakeDir(cpuacct_parent_ + "/" + name); !made.ok()) {
        spdlog::warn("cgroup {}: CPU time from rusage: {}", name, made.error().message);
      }
    }
  }
  if (!st.ok()) Remove(name);
  return st;
}

Status Cgroups::Enter(const std::string& name, pid_t pid) {
  if (kind_ == CgroupKind::kNone) return MakeError("io_error", "no cgroup: " + reason_);
  if (auto st = Write(memory_parent_ + "/" + name + "/cgroup.procs", std::to_string(pid)); !st.ok())
    return st;
  if (!cpuacct_parent_.empty() && cpuacct_parent_ != memory_parent_) {
    const std::string procs = cpuacct_parent_ + "/" + name + "/cgroup.procs";
    if (int err = WriteValue(procs, std::to_string(pid)); err != 0 && err != ENOENT) {
      spdlog::warn("cgroup {}: CPU time from rusage: {}", name, ErrnoMessage("write to", procs, err));
    }
  }
  return OkStatus();
}

CgroupUsage Cgroups::Read(const std::string& name) const {
  CgroupUsage usage;
  if (kind_ == CgroupKind::kNone) return usage;
  const std::string dir = memory_parent_ + "/" + name;
  if (kind_ == CgroupKind::kV2) {
    if (auto text = ReadFile(dir + "/memory.peak")) usage.memory_peak = ParseInt(*text);
    usage.oom_kills = KeyedValue(ReadFile(dir + "/memory.events"), "oom_kill");
    const auto stat = ReadFile(dir + "/cpu.stat");
    if (auto us = KeyedValue(stat, "user_usec")) usage.cpu_user_s = static_cast<double>(*us) / 1e6;
    if (auto us = KeyedValue(stat, "system_usec")) usage.cpu_sys_s = static_cast<double>(*us) / 1e6;
    return usage;
  }
  if (auto text = ReadFile(dir + "/memory.max_usage_in_bytes")) usage.memory_peak = ParseInt(*text);
  usage.oom_kills = KeyedValue(ReadFile(dir + "/memory.oom_control"), "oom_kill");
  if (!cpuacct_parent_.empty()) {
    // In USER_HZ ticks (sysconf(_SC_CLK_TCK), 100 nearly everywhere).
    const auto stat = ReadFile(cpuacct_parent_ + "/" + name + "/cpuacct.stat");
    const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
    if (auto t = KeyedValue(stat, "user"); t && hz > 0) usage.cpu_user_s = static_cast<double>(*t) / hz;
    if (auto t = KeyedValue(stat, "system"); t && hz > 0) usage.cpu_sys_s = static_cast<double>(*t) / hz;
  }
  return usage;
}

void Cgroups::Remove(const std::string& name) {
  if (kind_ == CgroupKind::kNone) return;
  std::vector<std::string> dirs = {memory_parent_ + "/" + name};
  if (!cpuacct_parent_.empty() && cpuacct_parent_ != memory_parent_)
    dirs.push_back(cpuacct_parent_ + "/" + name);
  for (const std::string& dir : dirs) {
    int err = 0;
    // The supervisor reaped every process of the attempt before it wrote the
    // outcome, but the kernel may take a moment to let go of the last one's
    // cgroup (EBUSY): a few short tries, then a warning.
    for (int tries = 0; tries < 20; ++tries) {
      err = ::rmdir(dir.c_str()) == 0 ? 0 : errno;
      if (err != EBUSY) break;
      ::usleep(5'000);
    }
    if (err != 0 && err != ENOENT) spdlog::warn("cannot remove cgroup {}", ErrnoMessage("rmdir", dir, err));
  }
  RemoveParent(memory_parent_);
  if (!cpuacct_parent_.empty() && cpuacct_parent_ != memory_parent_) RemoveParent(cpuacct_parent_);
}

}  // namespace spoold
