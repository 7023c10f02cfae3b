"""spoolctl (issue 4) against a real daemon on a temporary spool: the commands
that act on jobs, pools and the daemon (cancel, start, pause, resume, shutdown,
and what they do with no daemon running), and those on a job's results and
archives (results, rerun, duplicate, export, import); their exit codes, their
--json output parsed, and their messages for unknown ids and refused requests.
The other commands are tested in test_spoolctl.py."""
import io
import os
import subprocess
import sys
import tarfile
import unittest

from harness import SpoolTestMixin, read_bytes, read_json
from harness_ctl import SpoolctlMixin


# A stand-in for spoold as `spoolctl shutdown --wait` sees it (SPEC.md section 1):
# it flocks the root and record-locks spoold.lock with its pid, says "ready",
# then handles control/ as argv[2] says: "stop" deletes a request and exits 0.5 s
# later; "linger" deletes it and stays; "unread" exits after 1 s without
# reading it. It stays at most 30 s.
LOCK_HOLDER = r"""
import fcntl, os, sys, time
root, mode = sys.argv[1], sys.argv[2]
root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(root_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
lock_fd = os.open(os.path.join(root, "spoold.lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(lock_fd, 0)
os.write(lock_fd, b"%d\n" % os.getpid())
print("ready", flush=True)
end = time.monotonic() + 30
while time.monotonic() < end:
    names = os.listdir(os.path.join(root, "control"))
    if names and mode == "unread":
        time.sleep(1)
        sys.exit(0)
    for name in names:
        os.unlink(os.path.join(root, "control", name))
        if mode == "stop":
            time.sleep(0.5)
            sys.exit(0)
    time.sleep(0.02)
"""


class SpoolctlControlTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    # -- control requests ---------------------------------------------------------

    def test_cancel_start_pause_resume(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 1}}})
        spool.drop_job("held", command=["true"], hold=True)
        spool.wait_accepted("held")
        proc = self.ctl(spool, "start", "held", expect=0)
        self.assertIn("start held: done", proc.out)
        self.assertEqual(spool.wait_terminal("held")["state"], "succeeded")
        proc = self.ctl(spool, "start", "held", expect=1)
        self.assertIn("refused", proc.err)
        self.assertIn("has ended", proc.err)
        spool.drop_job("sleeper", command=["sleep", "30"], kill={"grace": "1s"})
        spool.wait_state("sleeper", "running")
        out = self.json_out(self.ctl(spool, "cancel", "sleeper", "--json", expect=0))
        self.assertEqual((out["action"], out["job"], out["outcome"]), ("cancel", "sleeper", "done"))
        self.assertEqual(spool.wait_terminal("sleeper")["state"], "cancelled")
        self.assertTrue(spool.wait_event("sleeper", "cancel_requested"))
        proc = self.ctl(spool, "cancel", "nosuch", expect=1)
        self.assertIn("no job nosuch", proc.err)
        self.ctl(spool, "pause", "gpu", expect=0)
        self.assertTrue(self.json_out(self.ctl(spool, "pools", "--json", expect=0))["gpu"]["paused"])
        spool.drop_job("gpu_job", command=["true"], pool="gpu")
        spool.wait_for(lambda: spool.status("gpu_job")["reason"] == "pool_paused",
                       what="gpu_job waits in the paused pool")
        self.ctl(spool, "resume", "gpu", expect=0)
        self.assertEqual(spool.wait_terminal("gpu_job")["state"], "succeeded")
        self.assertFalse(self.json_out(self.ctl(spool, "pools", "--json", expect=0))["gpu"]["paused"])
        proc = self.ctl(spool, "pause", "nopool", expect=1)
        self.assertIn("not configured", proc.err)
        self.assertEqual(os.listdir(spool.path("control")), [])

    def test_daemon_not_running(self):
        spool = self.make_spool()
        spool.run_job("before", command=["true"])
        spool.stop()
        path = self.job_file(spool, "later.toml")
        proc = self.ctl(spool, "submit", path, expect=0)
        self.assertEqual(proc.out.strip(), "later")
        self.assertIn(f"spoold is not running on {spool.root}", proc.err)
        self.assertEqual(spool.incoming(), [b"later.toml"])
        proc = self.ctl(spool, "status", "later", expect=1)
        self.assertIn("incoming/later.toml waits", proc.err)
        proc = self.ctl(spool, "pause", "default", expect=0)
        self.assertIn(f"spoold is not running on {spool.root}", proc.err)
        # Reading works without the daemon.
        self.assertIn("succeeded", self.ctl(spool, "status", "before", expect=0).out)
        spool.start()
        spool.wait_for(lambda: spool.index()["pools"]["default"]["paused"],
                       what="the queued pause request is acted on at start")
        self.assertEqual(spool.wait_accepted("later")["reason"], "pool_paused")
        self.ctl(spool, "resume", "default", expect=0)
        self.assertEqual(spool.wait_terminal("later")["state"], "succeeded")

    def test_shutdown_with_the_daemon(self):
        """`spoolctl shutdown` stops the daemon and leaves its jobs running;
        with --stop-jobs it stops them too, and they run again at the next start."""
        spool = self.make_spool()
        spool.drop_job("long", command=["sleep", "300"])
        pid = spool.wait_for(lambda: spool.status("long")["pid"], what="the job running")
        daemon = spool.proc
        out = self.json_out(self.ctl(spool, "shutdown", "--wait", "30", "--json", expect=0))
        self.assertEqual((out["stop_jobs"], out["stopped"]), (False, True), out)
        self.assertEqual(daemon.wait(timeout=10), 0)
        spool.proc = None
        os.kill(pid, 0)  # the job runs on, under its supervisor
        self.assertEqual(spool.status("long")["state"], "running")
        spool.start()
        spool.wait_event("long", "adopted")
        daemon = spool.proc
        out = self.json_out(self.ctl(spool, "shutdown", "--stop-jobs", "--wait", "30", "--json",
                                     expect=0))
        self.assertEqual((out["stop_jobs"], out["stopped"]), (True, True), out)
        self.assertEqual(daemon.wait(timeout=10), 0)
        spool.proc = None
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        st = spool.status("long")
        self.assertEqual((st["state"], st["attempts"][0]["reason"]), ("queued", "interrupted"), st)
        self.assertEqual(os.listdir(spool.path("control")), [], "the request was removed")

    def test_shutdown_without_a_daemon_acting(self):
        """What spoolctl does alone; the daemon's side is tested with the daemon."""
        spool = self.make_spool()
        spool.stop()
        # Nothing is sent to no daemon: the request would stop the next start.
        proc = self.ctl(spool, "shutdown", "--stop-jobs", expect=0)
        self.assertIn(f"spoold is not running on {spool.root}", proc.err)
        out = self.json_out(self.ctl(spool, "shutdown", "--wait", "--json", expect=0))
        self.assertEqual((out["action"], out["stop_jobs"], out["outcome"]),
                         ("shutdown", False, "daemon_not_running"))
        self.assertEqual(os.listdir(spool.path("control")), [])
        self.assertIn("takes no arguments", self.ctl(spool, "shutdown", "now", expect=2).err)
        self.assertIn("--wait must be an integer", self.ctl(spool, "shutdown", "--wait=soon",
                                                            expect=2).err)

        def holder(mode):
            proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, spool.root, mode],
                                    stdout=subprocess.PIPE)
            self.addCleanup(proc.wait)
            self.addCleanup(proc.kill)
            self.assertEqual(proc.stdout.readline(), b"ready\n")
            return proc

        lock = holder("stop")
        out = self.json_out(self.ctl(spool, "shutdown", "--stop-jobs", "--wait", "20", "--json",
                                     expect=0))
        self.assertEqual((out["stop_jobs"], out["outcome"], out["pid"], out["stopped"]),
                         (True, "done", lock.pid, True))
        lock = holder("linger")
        proc = self.ctl(spool, "shutdown", "--wait", "1", expect=124)
        self.assertIn(f"spoold (pid {lock.pid}) still runs after 1 s", proc.err)
        lock.kill()
        lock.wait()
        # A request the daemon never read is taken back, so that it does not stop the
        # next start; the jobs it was to stop were not stopped.
        holder("unread")
        proc = self.ctl(spool, "shutdown", "--stop-jobs", "--wait", expect=1)
        self.assertIn("stopped before it read the request (withdrawn); its jobs were not stopped",
                      proc.err)
        self.assertEqual(os.listdir(spool.path("control")), [])

    # -- results --------------------------------------------------------------------

    def test_results_table_json_cat_download(self):
        spool = self.make_spool()
        spool.run_job("res", command=["sh", "-c", "echo a > a.txt; mkdir sub; printf 'x,y\\n' > sub/b.csv"])
        item = read_json(os.path.join(spool.job_dir("res"), "results.json"))
        proc = self.ctl(spool, "results", "res", expect=0)
        self.assertIn("a.txt", proc.out)
        self.assertIn("sub/b.csv", proc.out)
        self.assertIn(item["assets"]["a.txt"]["file:checksum"], proc.out)
        self.assertEqual(self.json_out(self.ctl(spool, "results", "res", "--json", expect=0)), item)
        one = self.json_out(self.ctl(spool, "results", "res", "--name", "a.txt", "--json", expect=0))
        self.assertEqual(one, {"a.txt": item["assets"]["a.txt"]})
        self.assertEqual(self.ctl(spool, "results", "res", "--cat", "sub/b.csv", expect=0).stdout, b"x,y\n")
        dest = os.path.join(spool.base, "dl")
        self.ctl(spool, "results", "res", "--download", dest, expect=0)
        self.assertEqual(read_bytes(os.path.join(dest, "a.txt")), b"a\n")
        self.assertEqual(read_bytes(os.path.join(dest, "sub", "b.csv")), b"x,y\n")
        # A file changed after results.json was written fails the checksum.
        with open(os.path.join(spool.job_dir("res"), "results", "a.txt"), "w") as f:
            f.write("changed\n")
        proc = self.ctl(spool, "results", "res", "--download", dest, "--name", "a.txt", expect=1)
        self.assertIn("checksum mismatch", proc.err)
        self.assertIn("no asset nope", self.ctl(spool, "results", "res", "--cat", "nope", expect=1).err)
        spool.drop_job("busy", command=["sleep", "30"], kill={"grace": "1s"})
        spool.wait_state("busy", "running")
        self.assertIn("no results.json yet", self.ctl(spool, "results", "busy", expect=1).err)
        self.assertIn("no job nope", self.ctl(spool, "results", "nope", expect=1).err)

    # -- new jobs from old ones -----------------------------------------------------------

    def test_rerun_and_duplicate(self):
        spool = self.make_spool(workers=4)
        spool.run_job("orig", command=["sh", "-c", "echo $SPOOLD_JOB_ID"], metadata={"team": "x"})
        self.assertEqual(self.ctl(spool, "rerun", "orig", expect=0).out.strip(), "orig.r2")
        self.assertEqual(self.ctl(spool, "rerun", "orig", expect=0).out.strip(), "orig.r3")
        self.assertEqual(self.ctl(spool, "rerun", "orig.r2", expect=0).out.strip(), "orig.r4")
        proc = self.ctl(spool, "duplicate", "orig", "-n", "3", expect=0)
        self.assertEqual(proc.out.split(), ["orig.d1", "orig.d2", "orig.d3"])
        for job_id, source in (("orig.r2", "orig"), ("orig.r3", "orig"), ("orig.r4", "orig.r2"),
                               ("orig.d1", "orig"), ("orig.d3", "orig")):
            st = spool.wait_terminal(job_id)
            self.assertEqual(st["state"], "succeeded", job_id)
            self.assertEqual(st["metadata"], {"team": "x", "derived_from": source}, job_id)
            self.assertEqual(spool.attempt_log(job_id), job_id + "\n")
        proc = self.ctl(spool, "rerun", "orig", "--hold", "--json", expect=0)
        self.assertEqual(self.json_out(proc)["id"], "orig.r5")
        self.assertEqual(spool.wait_accepted("orig.r5")["reason"], "held")
        self.assertIn("no job nope", self.ctl(spool, "rerun", "nope", expect=1).err)

    # -- export and import ------------------------------------------------------------------

    def test_export_import_round_trip(self):
        src = self.make_spool()
        src.run_job("ex1", command=["sh", "-c", "echo one > one.txt"])
        src.run_job("ex2", command=["false"])
        archive = os.path.join(src.base, "jobs.tar.gz")
        proc = self.ctl(src, "export", "ex1", "ex2", "-o", archive, expect=0)
        self.assertIn("exported 2 jobs", proc.out)
        self.assertIn("no job nope", self.ctl(src, "export", "nope", "-o", archive + "2", expect=1).err)
        self.ctl(src, "export", "ex1", expect=2)
        src.wait_for(lambda: {"ex1", "ex2"} <= set(src.index()["jobs"]), what="index of src")
        entries = {k: v for k, v in src.index()["jobs"].items() if k in ("ex1", "ex2")}

        dst = self.make_spool(name="other")
        proc = self.ctl(dst, "import", archive, expect=0)
        self.assertEqual(proc.out.split(), ["ex1", "ex2"])
        self.assertIn("next scan", proc.err)
        self.assertEqual(read_bytes(os.path.join(dst.job_dir("ex1"), "results", "one.txt")), b"one\n")
        self.assertEqual([r["id"] for r in self.json_out(self.ctl(dst, "list", "--json", expect=0))],
                         ["ex1", "ex2"])
        # The running daemon takes the new folders in at its next scan, no restart.
        dst.wait_for(lambda: {"ex1", "ex2"} <= set(dst.index()["jobs"]), what="index of dst")
        self.assertEqual({k: dst.index()["jobs"][k] for k in ("ex1", "ex2")}, entries,
                         "imported jobs appear in the index as they were")
        proc = self.ctl(dst, "import", archive, expect=1)
        self.assertIn("ex1, ex2", proc.err)
        self.assertIn("refused", proc.err)
        self.assertEqual(os.listdir(dst.path("tmp")), [], "nothing is left in tmp/")
        # An archive with a path out of its folder is refused as a whole.
        evil = os.path.join(dst.base, "evil.tar.gz")
        with tarfile.open(evil, "w:gz") as tar:
            for name, data in (("ev/status.json", b"{}"), ("ev/../../escape", b"x")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        proc = self.ctl(dst, "import", evil, expect=1)
        self.assertIn("..", proc.err)
        self.assertFalse(os.path.exists(dst.job_dir("ev")))
        # A folder whose status.json names another job is refused.
        wrong = os.path.join(dst.base, "wrong.tar.gz")
        with tarfile.open(wrong, "w:gz") as tar:
            tar.add(src.job_dir("ex1"), arcname="renamed")
        proc = self.ctl(dst, "import", wrong, expect=1)
        self.assertIn("names job ex1", proc.err)
        self.assertFalse(os.path.exists(dst.job_dir("renamed")))


if __name__ == "__main__":
    unittest.main()
