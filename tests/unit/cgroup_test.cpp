// Tests of daemon/cgroup: where the daemon finds cgroups it may make (read
// from a fake /proc whose mount points are folders of a temporary tree), what
// an attempt's cgroup is made with, what is read back from the files the
// kernel would write, and its removal. The tree plays the kernel: interface
// files a test expects to be written exist beforehand, as the kernel makes
// them in every new cgroup; a missing one is a file this kernel lacks.
#include "daemon/cgroup.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "test_files.h"

using namespace spoold;
using testfiles::ReadFile;
using testfiles::TempDir;
using testfiles::WriteFile;

namespace {

const char* kTag = "spoold-379dd8a2";

// A fake machine: <base>/proc/self/{mountinfo,cgroup}, and cgroup folders
// under <base>/fs.
struct FakeHost {
  TempDir tmp;
  std::string proc() const { return tmp / "proc"; }
  std::string fs(const std::string& rel) const { return tmp.path() + "/fs" + rel; }

  void Proc(const std::string& mountinfo, const std::string& cgroup) {
    std::filesystem::create_directories(tmp / "proc/self");
    WriteFile(tmp / "proc/self/mountinfo", mountinfo);
    WriteFile(tmp / "proc/self/cgroup", cgroup);
  }
  // A cgroup folder, with interface files (name and content).
  void Dir(const std::string& rel, std::initializer_list<std::pair<const char*, const char*>> files = {}) {
    std::filesystem::create_directories(fs(rel));
    for (const auto& [name, content] : files) WriteFile(fs(rel) + "/" + name, content);
  }
  std::string Mount(int id, const std::string& root, const std::string& point_rel, const std::string& fstype,
                    const std::string& super) const {
    return std::to_string(id) + " 30 0:" + std::to_string(id) + " " + root + " " + fs(point_rel) +
           " rw,nosuid,nodev,noexec,relatime shared:" + std::to_string(id) + " - " + fstype + " " + fstype +
           " " + super + "\n";
  }
};

bool IsDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A v1 host as in a container without a cgroup namespace: the hierarchies'
// mounts show the container's subtree (/docker/abc) as their root, and the
// daemon runs in /docker/abc/worker; the memory mount point holds a space.
Cgroups DetectV1(FakeHost& host, bool with_cpuacct = true) {
  std::string mountinfo = "29 1 8:1 / / rw - ext4 /dev/sda1 rw\n" +
                          host.Mount(31, "/docker/abc", "/mem\\040ory", "cgroup", "rw,memory") +
                          host.Mount(40, "/", "/unified", "cgroup2", "rw");
  if (with_cpuacct) mountinfo += host.Mount(32, "/docker/abc", "/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct");
  host.Proc(mountinfo,
            "12:pids:/docker/abc/worker\n4:memory:/docker/abc/worker\n2:cpu,cpuacct:/docker/abc/worker\n"
            "1:name=systemd:/docker/abc/worker\n0::/\n");
  host.Dir("/unified", {{"cgroup.controllers", "hugetlb\n"}});
  host.Dir("/mem ory/worker", {{"memory.limit_in_bytes", "9223372036854771712\n"}});
  host.Dir("/cpu,cpuacct/worker");
  return Cgroups::Detect(kTag, host.proc());
}

// A v2 host: the daemon's cgroup is a systemd service's, offering memory.
Cgroups DetectV2(FakeHost& host, const char* subtree_control = "") {
  host.Proc("29 1 8:1 / / rw - ext4 /dev/sda1 rw\n" + host.Mount(40, "/", "/cg", "cgroup2", "rw,nsdelegate"),
            "0::/system.slice/spoold.service\n");
  host.Dir("/cg/system.slice/spoold.service", {{"cgroup.controllers", "cpuset cpu io memory pids\n"},
                                               {"cgroup.subtree_control", subtree_control}});
  // The kernel makes this file in every cgroup: here, in the attempts' parent.
  host.Dir(std::string("/cg/system.slice/spoold.service/") + kTag, {{"cgroup.subtree_control", ""}});
  return Cgroups::Detect(kTag, host.proc());
}

}  // namespace

TEST_CASE("CgroupTag: spoold- and 8 hex digits of the spool root's SHA-256") {
  CHECK(CgroupTag("/srv/spool") == "spoold-379dd8a2");
  CHECK(CgroupTag("/srv/spool2") == "spoold-4f25905f");
}

TEST_CASE("Detect: cgroup v1 seen through mounts of a subtree (no cgroup namespace)") {
  FakeHost host;
  Cgroups cg = DetectV1(host);
  REQUIRE(cg.kind() == CgroupKind::kV1);
  CHECK(cg.CanLimitMemory());
  CHECK(cg.AccountsCpu());
  CHECK(cg.reason().empty());
  // Mount point + the own path relative to the mount's root, not the own path.
  CHECK(cg.memory_parent() == host.fs("/mem ory/worker/spoold-379dd8a2"));
  CHECK(cg.cpuacct_parent() == host.fs("/cpu,cpuacct/worker/spoold-379dd8a2"));
  // Made to see that it can be, and removed: a daemon leaves no cgroup
  // behind unless an attempt's cgroup is in it.
  CHECK_FALSE(std::filesystem::exists(cg.memory_parent()));
  CHECK_FALSE(std::filesystem::exists(cg.cpuacct_parent()));
  CHECK(cg.Describe() ==
        "memory by cgroup v1 at " + host.fs("/mem ory/worker/spoold-379dd8a2") + ", CPU time by cpuacct");
  // A daemon before left the parents, holding an attempt's cgroup: they stay.
  host.Dir("/mem ory/worker/spoold-379dd8a2/job.1");
  host.Dir("/cpu,cpuacct/worker/spoold-379dd8a2/job.1");
  CHECK(Cgroups::Detect(kTag, host.proc()).kind() == CgroupKind::kV1);
  CHECK(IsDir(cg.memory_parent() + "/job.1"));
  CHECK(IsDir(cg.cpuacct_parent() + "/job.1"));
}

TEST_CASE("Detect: none when the attempts' parent cannot be made") {
  FakeHost host;
  // A file where the parent folder would be.
  host.Dir("/mem ory/worker");
  WriteFile(host.fs("/mem ory/worker/spoold-379dd8a2"), "");
  Cgroups cg = DetectV1(host);
  CHECK(cg.kind() == CgroupKind::kNone);
  CHECK(cg.reason() == "cgroup v2 " + host.fs("/unified") +
                           " does not offer the memory controller; not a folder: " +
                           host.fs("/mem ory/worker/spoold-379dd8a2"));
}

TEST_CASE("Detect: cgroup v1 without cpuacct limits memory, CPU time from rusage") {
  FakeHost host;
  Cgroups cg = DetectV1(host, /*with_cpuacct=*/false);
  REQUIRE(cg.kind() == CgroupKind::kV1);
  CHECK_FALSE(cg.AccountsCpu());
  CHECK(cg.cpuacct_parent().empty());
  CHECK(cg.Describe().find("CPU time from rusage") != std::string::npos);
}

TEST_CASE("Detect: cgroup v2 gives the attempts' parent the memory controller") {
  FakeHost host;
  Cgroups cg = DetectV2(host);
  REQUIRE(cg.kind() == CgroupKind::kV2);
  CHECK(cg.AccountsCpu());
  const std::string own = host.fs("/cg/system.slice/spoold.service");
  CHECK(cg.memory_parent() == own + "/spoold-379dd8a2");
  CHECK(ReadFile(own + "/cgroup.subtree_control") == "+memory");
  CHECK(ReadFile(own + "/spoold-379dd8a2/cgroup.subtree_control") == "+memory");
  CHECK(cg.Describe() == "memory by cgroup v2 at " + own + "/spoold-379dd8a2, CPU time by cpu.stat");
}

TEST_CASE("Detect: cgroup v2 whose children have memory already is not written to") {
  FakeHost host;
  Cgroups cg = DetectV2(host, "cpu memory\n");
  REQUIRE(cg.kind() == CgroupKind::kV2);
  CHECK(ReadFile(host.fs("/cg/system.slice/spoold.service/cgroup.subtree_control")) == "cpu memory\n");
}

TEST_CASE("Detect: none, with the reason, when neither v2 nor v1 offers memory") {
  SUBCASE("no cgroup file system") {
    FakeHost host;
    host.Proc("29 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "0::/\n");
    Cgroups cg = Cgroups::Detect(kTag, host.proc());
    CHECK(cg.kind() == CgroupKind::kNone);
    CHECK_FALSE(cg.CanLimitMemory());
    CHECK(cg.reason() == "no cgroup2 file system is mounted; no cgroup v1 memory hierarchy is mounted");
    CHECK(cg.Describe() == "memory: not enforced (no cgroup: " + cg.reason() + ")");
    auto st = cg.Create("job.1", 1 << 20);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "no cgroup: " + cg.reason());
  }
  SUBCASE("v2 without the memory controller, and the process outside the v1 mount's subtree") {
    FakeHost host;
    host.Proc(host.Mount(40, "/", "/cg", "cgroup2", "rw") +
                  host.Mount(31, "/docker/abc", "/memory", "cgroup", "rw,memory"),
              "4:memory:/other\n0::/\n");
    host.Dir("/cg", {{"cgroup.controllers", "cpu io\n"}});
    Cgroups cg = Cgroups::Detect(kTag, host.proc());
    CHECK(cg.kind() == CgroupKind::kNone);
    CHECK(cg.reason() ==
          "cgroup v2 " + host.fs("/cg") +
              " does not offer the memory controller; its memory cgroup /other is not under any "
              "mount of it");
    CHECK_FALSE(IsDir(host.fs("/memory")));  // nothing made
  }
  SUBCASE("no /proc files") {
    FakeHost host;
    Cgroups cg = Cgroups::Detect(kTag, host.proc());
    CHECK(cg.kind() == CgroupKind::kNone);
    CHECK(cg.reason() == "cannot read " + host.proc() + "/self/mountinfo");
  }
}

TEST_CASE("Create and Enter, cgroup v1: the limit on memory and on memory with swap") {
  FakeHost host;
  Cgroups cg = DetectV1(host);
  REQUIRE(cg.kind() == CgroupKind::kV1);
  const std::string dir = cg.memory_parent() + "/job:3.2";
  host.Dir("/mem ory/worker/spoold-379dd8a2/job:3.2",
           {{"memory.limit_in_bytes", "9223372036854771712\n"},
            {"memory.memsw.limit_in_bytes", "9223372036854771712\n"},
            {"cgroup.procs", ""}});
  host.Dir("/cpu,cpuacct/worker/spoold-379dd8a2/job:3.2", {{"cgroup.procs", ""}});
  auto st = cg.Create("job:3.2", 64 << 20);
  REQUIRE(st.ok());
  CHECK(ReadFile(dir + "/memory.limit_in_bytes") == "67108864");
  CHECK(ReadFile(dir + "/memory.memsw.limit_in_bytes") == "67108864");
  REQUIRE(cg.Enter("job:3.2", 4321).ok());
  CHECK(ReadFile(dir + "/cgroup.procs") == "4321");
  CHECK(ReadFile(cg.cpuacct_parent() + "/job:3.2/cgroup.procs") == "4321");

  SUBCASE("without swap accounting, no memsw file is made") {
    host.Dir("/mem ory/worker/spoold-379dd8a2/job.1", {{"memory.limit_in_bytes", "0"}, {"cgroup.procs", ""}});
    REQUIRE(cg.Create("job.1", 3 << 20).ok());
    CHECK(ReadFile(cg.memory_parent() + "/job.1/memory.limit_in_bytes") == "3145728");
    CHECK_FALSE(std::filesystem::exists(cg.memory_parent() + "/job.1/memory.memsw.limit_in_bytes"));
  }
  SUBCASE("one left by an earlier try that still holds processes is not taken") {
    WriteFile(dir + "/cgroup.procs", "4321\n");
    auto again = cg.Create("job:3.2", 64 << 20);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message == "cgroup " + dir + " exists and holds processes");
  }
  SUBCASE("a limit that cannot be written fails, naming the file, and leaves nothing") {
    // A fresh folder of the fake tree has no interface files: the write fails.
    auto failed = cg.Create("job.9", 64 << 20);
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.error().message == "write 67108864 to " + cg.memory_parent() +
                                        "/job.9/memory.limit_in_bytes: No such file or directory");
    CHECK_FALSE(std::filesystem::exists(cg.memory_parent() + "/job.9"));
    CHECK_FALSE(std::filesystem::exists(cg.cpuacct_parent() + "/job.9"));
    CHECK_FALSE(cg.Enter("job.9", 4321).ok());
  }
}

TEST_CASE("Create, cgroup v2: memory.max, no swap, and the whole group killed together") {
  FakeHost host;
  Cgroups cg = DetectV2(host);
  REQUIRE(cg.kind() == CgroupKind::kV2);
  const std::string dir = cg.memory_parent() + "/job.1";
  SUBCASE("swap accounting on") {
    host.Dir("/cg/system.slice/spoold.service/spoold-379dd8a2/job.1", {{"memory.max", "max\n"},
                                                                       {"memory.swap.max", "max\n"},
                                                                       {"memory.oom.group", "0\n"},
                                                                       {"cgroup.procs", ""}});
    REQUIRE(cg.Create("job.1", int64_t{5} << 30).ok());
    CHECK(ReadFile(dir + "/memory.max") == "5368709120");
    CHECK(ReadFile(dir + "/memory.swap.max") == "0");
    CHECK(ReadFile(dir + "/memory.oom.group") == "1");
  }
  SUBCASE("swap accounting off: memory.swap.max is missing, which is fine") {
    host.Dir("/cg/system.slice/spoold.service/spoold-379dd8a2/job.1",
             {{"memory.max", "max\n"}, {"memory.oom.group", "0\n"}, {"cgroup.procs", ""}});
    REQUIRE(cg.Create("job.1", 1 << 20).ok());
    CHECK(ReadFile(dir + "/memory.max") == "1048576");
    CHECK_FALSE(std::filesystem::exists(dir + "/memory.swap.max"));
  }
}

TEST_CASE("Read, cgroup v2: peak, OOM kills and CPU time") {
  FakeHost host;
  Cgroups cg = DetectV2(host);
  REQUIRE(cg.kind() == CgroupKind::kV2);
  host.Dir("/cg/system.slice/spoold.service/spoold-379dd8a2/job.1",
           {{"memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_group_kill 7\noom_kill 2\n"},
            {"cpu.stat", "usage_usec 2750000\nuser_usec 2500000\nsystem_usec 250000\nnr_periods 0\n"}});
  SUBCASE("with memory.peak") {
    WriteFile(cg.memory_parent() + "/job.1/memory.peak", "67104768\n");
    CgroupUsage u = cg.Read("job.1");
    CHECK(u.memory_peak == 67104768);
    CHECK(u.oom_kills == 2);
    CHECK(u.cpu_user_s == doctest::Approx(2.5));
    CHECK(u.cpu_sys_s == doctest::Approx(0.25));
  }
  SUBCASE("a kernel before 5.19 has no memory.peak") {
    CgroupUsage u = cg.Read("job.1");
    CHECK_FALSE(u.memory_peak.has_value());
    CHECK(u.oom_kills == 2);
  }
  SUBCASE("a cgroup that is not there") {
    CgroupUsage u = cg.Read("job.2");
    CHECK_FALSE(u.memory_peak.has_value());
    CHECK_FALSE(u.oom_kills.has_value());
    CHECK_FALSE(u.cpu_user_s.has_value());
    CHECK_FALSE(u.cpu_sys_s.has_value());
  }
}

TEST_CASE("Read, cgroup v1: max usage, oom_control's oom_kill, cpuacct.stat in USER_HZ ticks") {
  FakeHost host;
  Cgroups cg = DetectV1(host);
  REQUIRE(cg.kind() == CgroupKind::kV1);
  host.Dir("/mem ory/worker/spoold-379dd8a2/job.1",
           {{"memory.max_usage_in_bytes", "67108864\n"},
            {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"}});
  const long hz = ::sysconf(_SC_CLK_TCK);
  host.Dir("/cpu,cpuacct/worker/spoold-379dd8a2/job.1",
           {{"cpuacct.stat",
             ("user " + std::to_string(3 * hz) + "\nsystem " + std::to_string(hz / 2) + "\n").c_str()}});
  CgroupUsage u = cg.Read("job.1");
  CHECK(u.memory_peak == 67108864);
  CHECK(u.oom_kills == 1);
  CHECK(u.cpu_user_s == doctest::Approx(3.0));
  CHECK(u.cpu_sys_s == doctest::Approx(0.5).epsilon(0.02));

  SUBCASE("no OOM kill, an unparsable peak") {
    WriteFile(cg.memory_parent() + "/job.1/memory.oom_control",
              "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
    WriteFile(cg.memory_parent() + "/job.1/memory.max_usage_in_bytes", "lots\n");
    CgroupUsage v = cg.Read("job.1");
    CHECK(v.oom_kills == 0);
    CHECK_FALSE(v.memory_peak.has_value());
  }
}

TEST_CASE("Remove: the cgroup's folders go in each hierarchy, and the parents with the last one") {
  FakeHost host;
  Cgroups cg = DetectV1(host);
  REQUIRE(cg.kind() == CgroupKind::kV1);
  host.Dir("/mem ory/worker/spoold-379dd8a2/job.1");
  host.Dir("/mem ory/worker/spoold-379dd8a2/job.2");
  host.Dir("/cpu,cpuacct/worker/spoold-379dd8a2/job.1");
  host.Dir("/cpu,cpuacct/worker/spoold-379dd8a2/job.2");
  cg.Remove("job.1");
  CHECK_FALSE(std::filesystem::exists(cg.memory_parent() + "/job.1"));
  CHECK_FALSE(std::filesystem::exists(cg.cpuacct_parent() + "/job.1"));
  CHECK(IsDir(cg.memory_parent() + "/job.2"));  // another attempt's stays, and its parent
  CHECK(IsDir(cg.cpuacct_parent() + "/job.2"));
  cg.Remove("job.1");  // gone already: nothing to do
  cg.Remove("job.2");
  CHECK_FALSE(std::filesystem::exists(cg.memory_parent()));
  CHECK_FALSE(std::filesystem::exists(cg.cpuacct_parent()));
  CHECK(IsDir(host.fs("/mem ory/worker")));  // the daemon's own cgroup stays

  SUBCASE("one that cannot go stays, with a warning logged") {
    host.Dir("/mem ory/worker/spoold-379dd8a2/job.3", {{"leftover", "x"}});  // here: not empty
    cg.Remove("job.3");
    CHECK(IsDir(cg.memory_parent() + "/job.3"));
  }
  SUBCASE("the next attempt makes the parents again") {
    // A fresh folder of the fake tree has no interface files, so Create
    // fails at the limit, after making the parents, and removes them again.
    CHECK_FALSE(cg.Create("job.4", 1 << 20).ok());
    CHECK_FALSE(std::filesystem::exists(cg.memory_parent()));
    host.Dir("/mem ory/worker/spoold-379dd8a2/job.4", {{"memory.limit_in_bytes", ""}, {"cgroup.procs", ""}});
    REQUIRE(cg.Create("job.4", 1 << 20).ok());
    CHECK(ReadFile(cg.memory_parent() + "/job.4/memory.limit_in_bytes") == "1048576");
    CHECK(IsDir(cg.cpuacct_parent() + "/job.4"));
  }
}
