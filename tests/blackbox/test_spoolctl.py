"""spoolctl (issue 4) against a real daemon on a temporary spool: every command,
its exit codes, its --json output parsed, and its messages for unknown ids, bad
files and a missing root."""
import io
import json
import os
import subprocess
import tarfile
import sys
import tempfile
import unittest

from harness import SpoolTestMixin, read_bytes, read_json, source_dir

CTL_TIMEOUT = 60

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


def spoolctl_bin():
    build = os.environ.get("SPOOLD_BUILD_DIR")
    path = os.environ.get("SPOOLCTL_BIN") or (build and os.path.join(build, "spoolctl"))
    if not path:
        raise unittest.SkipTest("set SPOOLCTL_BIN to the spoolctl executable")
    return path


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("SPOOLD_ROOT", "NO_COLOR")}
    env.update(extra)
    return env


class SpoolctlTest(SpoolTestMixin, unittest.TestCase):

    # -- helpers -------------------------------------------------------------

    def ctl(self, spool, *args, input=None, env=None, root=True, expect=None):
        """Runs spoolctl (with --root of `spool` unless root=False); checks the
        exit code when `expect` is given."""
        argv = [spoolctl_bin()]
        if root and spool is not None:
            argv += ["--root", spool.root]
        argv += list(args)
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=CTL_TIMEOUT,
                              env=env or clean_env(), cwd=spool.base if spool else None)
        proc.out = proc.stdout.decode("utf-8", "replace")
        proc.err = proc.stderr.decode("utf-8", "replace")
        if expect is not None:
            self.assertEqual(proc.returncode, expect,
                             f"spoolctl {' '.join(args)}\nstdout: {proc.out}\nstderr: {proc.err}")
        return proc

    def json_out(self, proc):
        return json.loads(proc.out)

    def write(self, spool, name, text):
        path = os.path.join(spool.base, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def job_file(self, spool, name, command='["true"]', extra=""):
        return self.write(spool, name, f"command = {command}\n{extra}")

    def submit(self, spool, path, *args):
        proc = self.ctl(spool, "submit", path, *args, expect=0)
        return proc.out.strip()

    # -- help, usage, root discovery ------------------------------------------

    def test_help_and_usage_errors(self):
        spool = self.make_spool(start=False)
        top = self.ctl(spool, "--help", root=False, expect=0)
        for command in ("submit", "run", "wait", "status", "list", "logs", "cancel", "start",
                        "pause", "resume", "pools", "results", "rerun", "duplicate", "export",
                        "import", "validate", "shutdown"):
            self.assertIn(command, top.out)
            sub = self.ctl(spool, command, "--help", root=False, expect=0)
            self.assertIn(f"usage: spoolctl {command}", sub.out)
        self.ctl(spool, root=False, expect=2)
        self.assertIn("unknown command", self.ctl(spool, "frobnicate", expect=2).err)
        self.assertIn("unknown option --bogus", self.ctl(spool, "list", "--bogus", expect=2).err)
        self.assertIn("needs a value", self.ctl(spool, "logs", "x", "--attempt", expect=2).err)
        spool.start()
        self.ctl(spool, "status", expect=2)
        self.ctl(spool, "duplicate", "x", "-n", "0", expect=2)
        self.ctl(spool, "wait", expect=2)

    def test_missing_root_is_named(self):
        spool = self.make_spool(start=False)
        missing = os.path.join(spool.base, "nowhere")
        proc = self.ctl(None, "--root", missing, "list", expect=1)
        self.assertIn(missing, proc.err)
        self.assertIn("is not a spool", proc.err)
        proc = self.ctl(None, "list", env=clean_env(SPOOLD_ROOT=spool.base), expect=1)
        self.assertIn("$SPOOLD_ROOT", proc.err)
        self.assertIn("no jobs/ and incoming/", proc.err)
        if not os.path.exists("/etc/spoold/spoold.toml"):
            proc = self.ctl(None, "list", expect=1)
            self.assertIn("no spool root", proc.err)
            self.assertIn("/etc/spoold/spoold.toml", proc.err)
        bad_config = self.write(spool, "bad.toml", "[spool]\nroot = 5\n")
        proc = self.ctl(None, "--config", bad_config, "list", expect=1)
        self.assertIn("bad.toml", proc.err)
        # The same root found three ways.
        spool.start()
        self.ctl(None, "--config", spool.config_path, "list", expect=0)
        self.ctl(None, "list", env=clean_env(SPOOLD_ROOT=spool.root), expect=0)
        self.ctl(spool, "list", expect=0)

    # -- submit ----------------------------------------------------------------

    def test_submit_twice_makes_two_jobs(self):
        spool = self.make_spool()
        path = self.job_file(spool, "twice.toml", '["sh", "-c", "echo hi"]', 'title = "Twice"\n')
        first = self.submit(spool, path)
        second = self.submit(spool, path)
        self.assertEqual((first, second), ("twice", "twice-2"))
        for job_id in (first, second):
            self.assertEqual(spool.wait_terminal(job_id)["state"], "succeeded")
            self.assertEqual(read_bytes(os.path.join(spool.job_dir(job_id), "job.toml")),
                             read_bytes(path), "the file is kept byte for byte")
        self.assertEqual(spool.incoming(), [])
        out = self.json_out(self.ctl(spool, "submit", path, "--json", expect=0))
        self.assertEqual((out["id"], out["outcome"], out["file"]),
                         ("twice-3", "accepted", "incoming/twice-3.toml"))

    def test_submit_refuses_invalid_file_like_the_daemon(self):
        spool = self.make_spool()
        bad = self.write(spool, "bad.toml", 'command = ["true"]\n[retry]\nattempts = -3\n')
        proc = self.ctl(spool, "submit", bad, expect=1)
        self.assertIn("bad.toml:3:12: invalid_field (retry.attempts): retry.attempts must be an "
                      "integer from 0 to 100, got -3", proc.err)
        self.assertEqual(proc.out, "")
        err = self.json_out(self.ctl(spool, "submit", bad, "--json", expect=1))["error"]
        # The daemon's own error for the same file, field by field.
        spool.drop("bad.toml", read_bytes(bad))
        daemon = spool.wait_rejected("bad.toml")
        for key in ("code", "field", "line", "column", "error"):
            self.assertEqual(err[key], daemon[key], key)
        self.assertEqual(spool.incoming(), [])
        self.assertFalse(os.path.exists(spool.job_dir("bad")))
        # Unknown pool: checked against the pools index.json lists.
        nopool = self.job_file(spool, "nopool.toml", extra='pool = "nope"\n')
        self.assertIn("unknown_pool (pool)", self.ctl(spool, "submit", nopool, expect=1).err)
        other = self.write(spool, "job.yaml", "command: [true]\n")
        self.assertIn("unsupported_type", self.ctl(spool, "submit", other, expect=1).err)
        missing = os.path.join(spool.base, "missing.toml")
        self.assertIn("missing.toml", self.ctl(spool, "submit", missing, expect=1).err)
        self.assertEqual(spool.incoming(), [])

    def test_submit_overrides_and_stdin(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 1}}})
        path = self.job_file(spool, "ov.toml", '["true"]', 'title = "Overridden"\n')
        job_id = self.submit(spool, path, "--id", "custom", "--pool", "gpu", "--priority", "7", "--hold")
        self.assertEqual(job_id, "custom")
        st = spool.wait_accepted("custom")
        self.assertEqual((st["state"], st["reason"], st["pool"], st["priority"], st["title"]),
                         ("queued", "held", "gpu", 7, "Overridden"))
        job = read_json(os.path.join(spool.job_dir("custom"), "job.json"))
        self.assertEqual((job["pool"], job["priority"], job["hold"]), ("gpu", 7, True))
        proc = self.ctl(spool, "submit", path, "--id", "custom", expect=1)
        self.assertIn("custom is taken", proc.err)
        self.ctl(spool, "submit", path, "--priority", "high", expect=2)
        # Standard input: JSON sniffed, id "stdin".
        proc = self.ctl(spool, "submit", "-", input=b'{"command": ["true"]}', expect=0)
        self.assertEqual(proc.out.strip(), "stdin")
        self.assertEqual(spool.wait_terminal("stdin")["state"], "succeeded")
        proc = self.ctl(spool, "submit", "-", "--id", "piped", input=b'command = ["true"]\n', expect=0)
        self.assertEqual(proc.out.strip(), "piped")
        self.assertTrue(os.path.exists(os.path.join(spool.job_dir("piped"), "job.toml")))

    # -- run and wait ------------------------------------------------------------

    def test_run_exit_codes(self):
        spool = self.make_spool()
        ok = self.job_file(spool, "ok.toml", '["sh", "-c", "sleep 0.5; echo fine"]')
        proc = self.ctl(spool, "run", ok, expect=0)
        self.assertIn("succeeded", proc.out)
        self.assertIn("running", proc.out, "a line per state change")
        script = "echo 40 working > $SPOOLD_PROGRESS_FILE; sleep 2; for i in $(seq 1 15); do echo err$i >&2; done; exit 3"
        fail = self.job_file(spool, "fail.toml", json.dumps(["sh", "-c", script]))
        proc = self.ctl(spool, "run", fail, expect=3)
        self.assertIn("failed (nonzero_exit)", proc.out)
        self.assertIn("40% working", proc.out, "progress is shown")
        self.assertIn("err15", proc.err)
        self.assertIn("err6", proc.err)
        self.assertNotIn("err5\n", proc.err, "only the last 10 lines of stderr")
        self.assertIn(os.path.join(spool.job_dir("fail"), "attempts", "1"), proc.err)
        slow = self.job_file(spool, "slow.toml", '["sleep", "30"]', 'timeout = "300ms"\n[kill]\ngrace = "1s"\n')
        proc = self.ctl(spool, "run", slow, expect=124)
        self.assertIn("failed (timeout)", proc.out)
        # Cancelled while run waits: 125.
        long_job = self.job_file(spool, "long.toml", '["sleep", "30"]', '[kill]\ngrace = "1s"\n')
        run = subprocess.Popen([spoolctl_bin(), "--root", spool.root, "run", long_job],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        try:
            spool.wait_state("long", "running")
            self.ctl(spool, "cancel", "long", expect=0)
            out, _ = run.communicate(timeout=CTL_TIMEOUT)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        self.assertEqual(run.returncode, 125, out)
        proc = self.ctl(spool, "run", ok, "--json", expect=0)
        lines = proc.out.strip().splitlines()
        self.assertEqual(json.loads(lines[-1])["state"], "succeeded")

    def test_wait_several_exits_with_the_worst(self):
        spool = self.make_spool(workers=4)
        spool.drop_job("w_ok", command=["true"])
        spool.drop_job("w_four", command=["sh", "-c", "exit 4"])
        spool.drop_job("w_five", command=["sh", "-c", "exit 5"])
        spool.drop_job("w_slow", command=["sleep", "30"], timeout="200ms", kill={"grace": "1s"})
        for job_id in ("w_ok", "w_four", "w_five", "w_slow"):
            spool.wait_accepted(job_id)
        self.ctl(spool, "wait", "w_ok", expect=0)
        self.ctl(spool, "wait", "w_ok", "w_four", "w_five", expect=4)
        self.ctl(spool, "wait", "w_five", "w_four", expect=5)
        self.ctl(spool, "wait", "w_four", "w_slow", "w_ok", expect=124)
        proc = self.ctl(spool, "wait", "w_ok", "nosuchjob", expect=1)
        self.assertIn("no job nosuchjob", proc.err)
        proc = self.ctl(spool, "wait", "w_ok", "w_four", "--json", expect=4)
        states = [json.loads(line)["state"] for line in proc.out.splitlines()]
        self.assertEqual(states, ["succeeded", "failed"])

    # -- reading -------------------------------------------------------------------

    def test_status_human_and_json(self):
        spool = self.make_spool()
        st = spool.run_job("st", command=["sh", "-c", "exit 2"], title="Status test")
        proc = self.ctl(spool, "status", "st", expect=0)
        self.assertIn("st: failed (nonzero_exit)", proc.out)
        self.assertIn("Status test", proc.out)
        self.assertIn("exit code  2", proc.out)
        self.assertEqual(self.json_out(self.ctl(spool, "status", "st", "--json", expect=0)), st)
        proc = self.ctl(spool, "status", "nope", expect=1)
        self.assertIn(f"no job nope in {spool.root}", proc.err)
        spool.drop("rej.toml", 'command = "true"\n')
        spool.wait_rejected("rej.toml")
        proc = self.ctl(spool, "status", "rej", expect=1)
        self.assertIn("rejected", proc.err)
        self.assertIn("invalid_field (command)", proc.err)

    def test_list_filters_json_and_fallback(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 1}}})
        spool.run_job("l_a", command=["true"], tags=["nightly"], title="A")
        spool.run_job("l_b", command=["false"], pool="gpu")
        spool.drop_job("l_c", command=["true"], hold=True)
        spool.wait_accepted("l_c")
        spool.wait_for(lambda: "l_c" in spool.index()["jobs"], what="index names l_c")
        proc = self.ctl(spool, "list", expect=0)
        self.assertTrue(proc.out.startswith("ID"), proc.out)
        for header in ("STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TITLE"):
            self.assertIn(header, proc.out.splitlines()[0])
        rows = self.json_out(self.ctl(spool, "list", "--json", expect=0))
        self.assertEqual([r["id"] for r in rows], ["l_a", "l_b", "l_c"])
        by_id = {r["id"]: r for r in rows}
        self.assertEqual((by_id["l_c"]["state"], by_id["l_c"]["reason"]), ("queued", "held"))

        def ids(*args):
            return [r["id"] for r in self.json_out(self.ctl(spool, "list", "--json", *args, expect=0))]
        self.assertEqual(ids("--state", "failed,queued"), ["l_b", "l_c"])
        self.assertEqual(ids("--pool", "gpu"), ["l_b"])
        self.assertEqual(ids("--tag", "nightly"), ["l_a"])
        self.assertEqual(ids("--since", "1h"), ["l_a", "l_b", "l_c"])
        self.assertEqual(ids("--owner", "nobody-at-all"), [])
        self.assertEqual(self.ctl(spool, "list", "-q", expect=0).out.split(), ["l_a", "l_b", "l_c"])
        self.ctl(spool, "list", "--state", "bogus", expect=2)
        self.ctl(spool, "list", "--since", "soon", expect=2)
        # Without a (readable) index.json, the job folders are scanned.
        spool.stop()
        with open(spool.path("index.json"), "w") as f:
            f.write("{torn")
        self.assertEqual(ids(), ["l_a", "l_b", "l_c"])
        os.unlink(spool.path("index.json"))
        self.assertEqual(ids("--state", "succeeded"), ["l_a"])

    def test_logs_attempts_events_and_follow(self):
        spool = self.make_spool()
        script = 'echo "out $SPOOLD_ATTEMPT"; echo "err $SPOOLD_ATTEMPT" >&2; [ "$SPOOLD_ATTEMPT" = 2 ]'
        spool.run_job("lg", command=["sh", "-c", script], retry={"attempts": 1, "delay": "0"})
        self.assertEqual(self.ctl(spool, "logs", "lg", expect=0).out, "out 2\n")
        self.assertEqual(self.ctl(spool, "logs", "lg", "--stderr", expect=0).out, "err 2\n")
        self.assertEqual(self.ctl(spool, "logs", "lg", "--attempt", "1", expect=0).out, "out 1\n")
        self.ctl(spool, "logs", "lg", "--attempt", "9", expect=1)
        events = self.ctl(spool, "logs", "lg", "--events", expect=0).out
        self.assertIn("accepted", events)
        self.assertIn("[attempt 2]  attempt 2 exited with code 0", events)
        lines = self.ctl(spool, "logs", "lg", "--events", "--json", expect=0).out.splitlines()
        self.assertEqual([json.loads(x) for x in lines], spool.events("lg"))
        self.assertIn("no job nope", self.ctl(spool, "logs", "nope", expect=1).err)
        # --follow streams until the job ends, then exits with everything.
        follow_script = "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done"
        spool.drop_job("fl", command=["sh", "-c", follow_script])
        spool.wait_accepted("fl")
        proc = self.ctl(spool, "logs", "fl", "--follow", expect=0)
        self.assertEqual(proc.out, "".join(f"line{i}\n" for i in range(1, 6)))
        self.assertIn(spool.status("fl")["state"], ("succeeded",))
        proc = self.ctl(spool, "logs", "fl", "--events", "--follow", "--json", expect=0)
        self.assertEqual(json.loads(proc.out.splitlines()[-1])["event"], "succeeded")

    def test_pools(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 3, "queue_limit": 7}}})
        spool.wait_for(lambda: "gpu" in spool.index()["pools"], what="index lists gpu")
        pools = self.json_out(self.ctl(spool, "pools", "--json", expect=0))
        self.assertEqual(pools, spool.index()["pools"])
        proc = self.ctl(spool, "pools", expect=0)
        self.assertIn("gpu", proc.out)
        self.assertIn("WORKERS", proc.out)
        self.assertEqual(self.ctl(spool, "pools", "-q", expect=0).out.split(), ["default", "gpu"])

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

    # -- validate ------------------------------------------------------------------------

    def test_validate_explain(self):
        spool = self.make_spool(start=False, config={
            "defaults": {"timeout": "2h"},
            "pools": {"gpu": {"workers": 1, "timeout": "30s"}}})
        gpu = self.job_file(spool, "g.toml", extra='pool = "gpu"\n[retry]\nattempts = 2\n')
        own = self.job_file(spool, "own.toml", extra='timeout = "5m"\n')
        plain = self.job_file(spool, "plain.toml")
        bad = self.job_file(spool, "bad.toml", extra="colour = 1\n")

        def explain(path):
            proc = self.ctl(None, "--config", spool.config_path, "validate", "--explain", "--json",
                            path, expect=0)
            out = self.json_out(proc)
            self.assertTrue(out["valid"])
            return out["effective"]
        e = explain(gpu)
        self.assertEqual((e["pool"], e["timeout"], e["timeout_from"]), ("gpu", "30s", "pool gpu"))
        self.assertEqual(e["retry"]["attempts"], 2)
        self.assertEqual(e["kill"], {"signal": "TERM", "grace": "10s"})
        self.assertEqual((explain(own)["timeout"], explain(own)["timeout_from"]), ("5m", "the job file"))
        self.assertEqual(explain(plain)["timeout"], "2h")
        proc = self.ctl(None, "--config", spool.config_path, "validate", plain, "--explain", expect=0)
        self.assertIn("plain.toml: valid", proc.out)
        self.assertIn("timeout", proc.out)
        proc = self.ctl(None, "--config", spool.config_path, "validate", plain, bad, expect=1)
        self.assertIn("unknown_field (colour)", proc.err)
        typo = self.job_file(spool, "typo.toml", extra="titel = \"x\"\n")
        proc = self.ctl(None, "--config", spool.config_path, "validate", typo, expect=1)
        self.assertIn("unknown_field (titel): unknown key 'titel'; did you mean 'title'?", proc.err)
        # Offline with no configuration and no spool: the pool is not checked.
        env = clean_env()
        if not os.path.exists("/etc/spoold/spoold.toml"):
            proc = self.ctl(None, "validate", "--explain", "--json", gpu, env=env, expect=0)
            self.assertFalse(self.json_out(proc)["effective"]["pool_checked"])
        proc = self.ctl(None, "--config", spool.config_path, "validate",
                        self.job_file(spool, "np.toml", extra='pool = "cpu"\n'), expect=1)
        self.assertIn("unknown_pool", proc.err)

    def test_validate_durations(self):
        # SPEC section 2: decimals in any unit, blanks, long unit names, rounded to the ms.
        spool = self.make_spool(start=False)
        ok = self.job_file(spool, "dec.toml", extra='timeout = "0.5h"\ndeadline = "1 hour 30 min"\n'
                                                    '[retry]\ndelay = 1.5\n[kill]\ngrace = "2.5s"\n')
        proc = self.ctl(None, "--config", spool.config_path, "validate", "--explain", "--json", ok,
                        expect=0)
        e = self.json_out(proc)["effective"]
        self.assertEqual((e["timeout"], e["deadline"], e["retry"]["delay"], e["kill"]["grace"]),
                         ("30m", "1h30m", "1s500ms", "2s500ms"))
        for value, reason in (('"1.5.5s"', "more than one decimal point"),
                              ('"-1s"', "cannot be negative"),
                              ('"5 s s"', "expected a number before each unit"),
                              ('"36501d"', "at most 100 years")):
            bad = self.job_file(spool, "bad.toml", extra=f"timeout = {value}\n")
            proc = self.ctl(None, "--config", spool.config_path, "validate", bad, expect=1)
            self.assertIn("invalid_field (timeout)", proc.err)
            self.assertIn(reason, proc.err)

    # -- bash completion --------------------------------------------------------------------

    def test_bash_completion(self):
        spool = self.make_spool()
        spool.run_job("comp_one", command=["true"])
        spool.wait_for(lambda: "comp_one" in spool.index()["jobs"], what="index names comp_one")
        script = os.path.join(source_dir(), "cli", "spoolctl.bash")
        bindir = tempfile.mkdtemp(dir=spool.base)
        os.symlink(spoolctl_bin(), os.path.join(bindir, "spoolctl"))

        def complete(*words):
            line = ["spoolctl", *words]
            program = (f'source "{script}"; COMP_WORDS=({" ".join(json.dumps(w) for w in line)}); '
                       f'COMP_CWORD={len(line) - 1}; _spoolctl; printf "%s\\n" "${{COMPREPLY[@]}}"')
            env = clean_env(PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
            proc = subprocess.run(["bash", "-c", program], capture_output=True, env=env,
                                  timeout=CTL_TIMEOUT)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return proc.stdout.decode().split()
        self.assertIn("submit", complete("su"))
        self.assertEqual(complete("--root", spool.root, "status", "comp"), ["comp_one"])
        self.assertIn("--follow", complete("logs", "--f"))
        self.assertEqual(complete("shutdown", "--st"), ["--stop-jobs"])
        self.assertEqual(complete("--root", spool.root, "pause", ""), ["default"])


if __name__ == "__main__":
    unittest.main()
