"""What a local attempt is given is enforced (SPEC.md section 5, "Resources"):
a memory request runs the attempt in a cgroup of its own with that limit, the
kernel's kill at the limit ends it out_of_memory and the next job runs, its
peak is reported, and its cgroup is gone once it is recorded; a CPU request
binds the job (and what it starts) to the CPUs recorded in attempts[].cpus and
SPOOLD_CPUS, distinct between running jobs. Run as root on a host whose memory
cgroup (v2, else v1) may have children."""
import hashlib
import json
import os
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run

MIB = 1024 * 1024

# Prints what the job's process (python3, a child of sh: affinity is
# inherited) runs on and what it was told, then waits for the file $GO (at
# most 60 s).
SHOW_CPUS = """
import json, os, time
print(json.dumps({"affinity": sorted(os.sched_getaffinity(0)), "env": os.environ.get("SPOOLD_CPUS")}), flush=True)
t = time.monotonic()
while not os.path.exists(os.environ["GO"]) and time.monotonic() - t < 60:
    time.sleep(0.02)
"""


# Touches 16 MiB, then waits for the file $GO (at most 60 s).
HOLD_MEMORY = """
import os, time
x = bytearray(16 * 1024 * 1024)
t = time.monotonic()
while not os.path.exists(os.environ["GO"]) and time.monotonic() - t < 60:
    time.sleep(0.02)
print("done")
"""


def touch(path):
    with open(path, "w"):
        pass


def unescape_mount(text):
    """mountinfo writes a space and a few others as \\ooo."""
    out, i = "", 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit() and len(text[i + 1:i + 4]) == 3:
            out += chr(int(text[i + 1:i + 4], 8))
            i += 4
        else:
            out += text[i]
            i += 1
    return out


def cgroup_dir(mounts, own):
    """mount point + `own` relative to the mount's root, for the first mount above it."""
    for root, point in mounts:
        if root == "/":
            return point + (own if own != "/" else "")
        if own == root or own.startswith(root + "/"):
            return point + own[len(root):]
    return None


def own_cgroups():
    """This process's cgroup folders, as spoold finds its own (it inherits
    ours): {"v2": ..., "memory": ..., "cpuacct": ...}, None where there is none."""
    with open("/proc/self/mountinfo") as f:
        mounts = []
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            mounts.append((fields[dash + 1], fields[dash + 3].split(","),
                           unescape_mount(fields[3]), unescape_mount(fields[4])))
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f.read().splitlines():
            ident, controllers, path = line.split(":", 2)
            if ident == "0":
                own["v2"] = path
            for c in controllers.split(","):
                own[c] = path
    found = {"v2": None, "memory": None, "cpuacct": None}
    if "v2" in own:
        found["v2"] = cgroup_dir([(r, p) for t, _, r, p in mounts if t == "cgroup2"], own["v2"])
    for c in ("memory", "cpuacct"):
        if c in own:
            found[c] = cgroup_dir([(r, p) for t, o, r, p in mounts if t == "cgroup" and c in o], own[c])
    return found


def memory_cgroup():
    """(kind, the folder the attempts' parent is made in) as spoold chooses:
    cgroup v2 when its cgroup offers the memory controller, else v1's memory
    hierarchy; (None, why) when neither."""
    dirs = own_cgroups()
    try:
        with open(os.path.join(dirs["v2"], "cgroup.controllers")) as f:
            if "memory" in f.read().split():
                return "v2", dirs["v2"]
    except (OSError, TypeError):
        pass
    if dirs["memory"] and os.path.exists(os.path.join(dirs["memory"], "memory.limit_in_bytes")):
        return "v1", dirs["memory"]
    return None, "no cgroup v2 with the memory controller, nor a cgroup v1 memory hierarchy"


class ResourcesEnforceTest(SpoolTestMixin, unittest.TestCase):

    def spool_with_cgroups(self, **kwargs):
        """A started spool, and the folder its attempts' cgroups are made in."""
        if os.geteuid() != 0:
            self.skipTest("SKIP: making cgroups needs root")
        kind, where = memory_cgroup()
        if kind is None:
            cannot_run(self, where)
        self.kind = kind
        # Cleanups run last-in first-out: this one, registered before the
        # spool's, runs after the daemon and its jobs are gone: what a failed
        # test left of the parents goes.
        made = []
        self.addCleanup(lambda: [self.rmdir(p) for p in made])
        spool = self.make_spool(start=False, **kwargs)
        tag = "spoold-" + hashlib.sha256(spool.root.encode()).hexdigest()[:8]
        parent = os.path.join(where, tag)
        made.append(parent)
        cpuacct = own_cgroups()["cpuacct"]
        self.cpuacct_parent = None
        if kind == "v1" and cpuacct and cpuacct != where:
            self.cpuacct_parent = os.path.join(cpuacct, tag)
            made.append(self.cpuacct_parent)
        spool.start()
        # Made with the first attempt's cgroup, removed with the last one's:
        # a daemon leaves no cgroup behind when no attempt has one.
        self.assertFalse(os.path.exists(parent), f"{parent} made before any attempt needs it")
        return spool, parent

    @staticmethod
    def rmdir(path):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def limit_file(self):
        return "memory.max" if self.kind == "v2" else "memory.limit_in_bytes"

    def assert_no_warning(self, spool, job_id):
        names = [e["event"] for e in spool.events(job_id)]
        self.assertNotIn("resources_not_enforced", names, spool.events(job_id))

    def test_memory_limit_kills_the_job_out_of_memory_and_the_next_job_runs(self):
        spool, parent = self.spool_with_cgroups(workers=1)
        spool.drop_job("hog", command=["python3", "-c", "x = bytearray(300 * 1024 * 1024)"],
                       resources={"memory": "64M"})
        spool.drop_job("next", command=["sh", "-c", "echo fine"])
        st = spool.wait_terminal("hog", timeout=60)
        self.assertEqual(st["state"], "failed", st)
        first = st["attempts"][0]
        self.assertEqual(first["reason"], "out_of_memory", st)
        self.assertEqual(first["signal"], "KILL", st)
        self.assertEqual(first["memory_limit"], 64 * MIB, st)
        self.assertIsInstance(first["memory_peak"], int, st)
        self.assertGreater(first["memory_peak"], 0, st)
        self.assertLessEqual(first["memory_peak"], 64 * MIB, "the peak is within the limit")
        self.assert_no_warning(spool, "hog")
        # The pool's only worker is free again: the next job runs.
        nxt = spool.wait_terminal("next", timeout=30)
        self.assertEqual(nxt["state"], "succeeded", nxt)
        self.assertEqual(spool.attempt_log("next"), "fine\n")
        self.assertIsNone(nxt["attempts"][0]["memory_limit"], "a job without a memory request has no cgroup")
        spool.wait_for(lambda: not os.path.exists(os.path.join(parent, "hog.1")),
                       what=f"{parent}/hog.1 removed")
        self.assertFalse(os.path.exists(parent), "the attempts' parent goes with the last attempt's cgroup")

    def test_successful_job_reports_its_peak_and_its_cgroup_goes(self):
        spool, parent = self.spool_with_cgroups()
        go = os.path.join(spool.base, "go")
        # 48 MiB touched, then a wait for the test's look at the cgroup.
        script = ("import os, time; x = bytearray(48 * 1024 * 1024); t = time.monotonic()\n"
                  "while not os.path.exists(os.environ['GO']) and time.monotonic() - t < 60: time.sleep(0.02)\n"
                  "print('done')")
        spool.drop_job("fits", command=["python3", "-c", script], resources={"memory": "256M"},
                       env={"GO": go})
        st = spool.wait_state("fits", "running", timeout=30)
        cgroup = os.path.join(parent, "fits.1")
        self.assertTrue(os.path.isdir(cgroup), f"no cgroup {cgroup} while the job runs")
        with open(os.path.join(cgroup, self.limit_file())) as f:
            self.assertEqual(int(f.read()), 256 * MIB)
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            procs = [int(p) for p in f.read().split()]
        self.assertIn(st["attempts"][-1]["pid"], procs, "the job's process is in its cgroup")
        if self.cpuacct_parent:
            with open(os.path.join(self.cpuacct_parent, "fits.1", "cgroup.procs")) as f:
                self.assertIn(st["attempts"][-1]["pid"], [int(p) for p in f.read().split()],
                              "and in its cpuacct cgroup, which counts its CPU time")
        self.assertEqual(st["attempts"][-1]["memory_limit"], 256 * MIB, st)
        with open(go, "w"):
            pass
        st = spool.wait_terminal("fits", timeout=60)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("fits"), "done\n")
        att = st["attempts"][0]
        self.assertEqual(att["memory_limit"], 256 * MIB, st)
        self.assertGreaterEqual(att["memory_peak"], 48 * MIB, st)
        self.assertLess(att["memory_peak"], 256 * MIB, st)
        self.assertGreater(att["cpu_user_s"] + att["cpu_sys_s"], 0, st)
        self.assert_no_warning(spool, "fits")
        spool.wait_for(lambda: not os.path.exists(cgroup), what=f"{cgroup} removed")
        self.assertFalse(os.path.exists(parent), "the attempts' parent goes with the last attempt's cgroup")
        if self.cpuacct_parent:
            self.assertFalse(os.path.exists(self.cpuacct_parent), "and its cpuacct parent")

    def test_a_restarted_daemon_reads_and_removes_the_cgroups_of_attempts_that_ran_on(self):
        spool, parent = self.spool_with_cgroups(workers=2)
        go = {j: os.path.join(spool.base, "go-" + j) for j in ("early", "late")}
        for j in go:
            spool.drop_job(j, command=["python3", "-c", HOLD_MEMORY], resources={"memory": "128M"},
                           env={"GO": go[j]})
        for j in go:
            spool.wait_state(j, "running", timeout=30)
        spool.kill()
        # "early" ends while the daemon is down; "late" runs on, and is adopted.
        touch(go["early"])
        outcome = spool.path("jobs", "early", "attempts", "1", "outcome.json")
        spool.wait_for(lambda: os.path.exists(outcome), timeout=30, daemon_must_live=False,
                       what="early's supervisor recording its end while the daemon is down")
        self.assertTrue(os.path.isdir(os.path.join(parent, "early.1")), "the daemon removes it, not the supervisor")
        spool.start()
        for j in go:
            if j == "late":
                spool.wait_event("late", "adopted")
                self.assertTrue(os.path.isdir(os.path.join(parent, "late.1")), "a running attempt keeps its cgroup")
                touch(go["late"])
            st = spool.wait_terminal(j, timeout=60)
            self.assertEqual(st["state"], "succeeded", st)
            att = st["attempts"][0]
            self.assertEqual(att["memory_limit"], 128 * MIB, st)
            self.assertGreaterEqual(att["memory_peak"], 16 * MIB, st)
            self.assertLess(att["memory_peak"], 128 * MIB, st)
            spool.wait_for(lambda: not os.path.exists(os.path.join(parent, j + ".1")),
                           what=f"{parent}/{j}.1 removed")
        self.assertFalse(os.path.exists(parent), "the attempts' parent goes with the last attempt's cgroup")

    def test_a_memory_limit_that_cannot_be_set_is_said_and_the_job_runs_without(self):
        spool, parent = self.spool_with_cgroups()
        # The cgroup the job's first attempt would take exists and holds a
        # process that is not the job's: spoold must neither take it nor remove it.
        taken = os.path.join(parent, "busy.1")
        os.makedirs(taken)
        sleeper = subprocess.Popen(["sleep", "120"])

        def release():
            sleeper.kill()
            sleeper.wait()
            os.rmdir(taken)
        self.addCleanup(release)  # before the parent's removal and after the spool's cleanup
        with open(os.path.join(taken, "cgroup.procs"), "w") as f:
            f.write(str(sleeper.pid))
        st = spool.run_job("busy", command=["sh", "-c", "echo ran"], resources={"memory": "64M"}, timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("busy"), "ran\n")
        self.assertIsNone(st["attempts"][0]["memory_limit"], st)
        self.assertIsNone(st["attempts"][0]["memory_peak"], st)
        warnings = [e for e in spool.events("busy") if e["event"] == "resources_not_enforced"]
        self.assertEqual([(e["level"], e["message"]) for e in warnings],
                         [("warning", f"memory: 64M asked, not enforced: cgroup {taken} exists and holds processes")])
        with open(os.path.join(taken, "cgroup.procs")) as f:
            self.assertEqual(f.read().split(), [str(sleeper.pid)], "the cgroup that was not spoold's is left alone")

    def cpus_spool(self, workers):
        cpus = sorted(os.sched_getaffinity(0))
        spool = self.make_spool(workers=workers, config={"machine": {"cpus": len(cpus)}})
        return spool, cpus

    def show_cpus(self, spool, job_id, go):
        spool.drop_job(job_id, command=["sh", "-c", 'python3 -c "$0"; true', SHOW_CPUS], resources={"cpus": 1},
                       env={"GO": go})

    def shown(self, spool, job_id):
        text = spool.attempt_log(job_id)
        return json.loads(text) if text.endswith("\n") else None

    def test_a_cpu_request_binds_the_job_to_its_cpus(self):
        spool, cpus = self.cpus_spool(workers=1)
        go = os.path.join(spool.base, "go")
        with open(go, "w"):
            pass
        self.show_cpus(spool, "one", go)
        st = spool.wait_terminal("one", timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        given = st["attempts"][0]["cpus"]
        self.assertEqual(len(given), 1, st)
        self.assertIn(given[0], cpus, st)
        shown = self.shown(spool, "one")
        self.assertEqual(shown["affinity"], given, "the job runs on the CPUs recorded")
        self.assertEqual(shown["env"], ",".join(map(str, given)), "SPOOLD_CPUS names them")
        self.assert_no_warning(spool, "one")

    def test_two_running_jobs_get_distinct_cpus(self):
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest(f"SKIP: two jobs of one CPU each need 2 CPUs; this process may run on "
                          f"{len(os.sched_getaffinity(0))}")
        spool, cpus = self.cpus_spool(workers=2)
        go = os.path.join(spool.base, "go")
        self.show_cpus(spool, "a", go)
        self.show_cpus(spool, "b", go)
        # Both running at once, each having said where it runs.
        spool.wait_for(lambda: self.shown(spool, "a") and self.shown(spool, "b"), timeout=30,
                       what="both jobs running and showing their CPUs")
        shown = {j: self.shown(spool, j) for j in ("a", "b")}
        running = {j: spool.status(j) for j in ("a", "b")}
        for j in ("a", "b"):
            self.assertEqual(running[j]["state"], "running", running[j])
            given = running[j]["attempts"][-1]["cpus"]
            self.assertEqual(len(given), 1, running[j])
            self.assertEqual(shown[j]["affinity"], given, j)
            self.assertEqual(shown[j]["env"], str(given[0]), j)
            self.assertIn(given[0], cpus)
        self.assertNotEqual(shown["a"]["affinity"], shown["b"]["affinity"], "two running jobs share a CPU")
        with open(go, "w"):
            pass
        for j in ("a", "b"):
            self.assertEqual(spool.wait_terminal(j, timeout=30)["state"], "succeeded")


if __name__ == "__main__":
    unittest.main()
