"""Hooks (SPEC.md section 5, "Hooks"): a hook gets each event it follows once it
exited 0 (hook_ok, its cursor), is retried and then given up (hook_failed) when
it fails, hangs past its timeout or cannot run; a SIGKILL of the daemon before
a hook ran or before its cursor was written delivers the event again with the
same event_id; a slow hook gets events in order; pool hooks come from the
configuration; and 1,000 jobs ending at once never run more hooks at once than
hooks.max_running, nor wait for them to end."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import LEAK_CANARY, TERMINAL, SpoolTestMixin, spoold_bin

# Appends "<event_id> <event>" to $1/deliveries, keeps stdin and the
# environment of each delivery (by seq), and says something on both streams.
RECORD = ('cat > "$1/stdin.$SPOOLD_EVENT_SEQ.json"; env > "$1/env.$SPOOLD_EVENT_SEQ"; '
          'echo "$SPOOLD_EVENT_ID $SPOOLD_EVENT" >> "$1/deliveries"; '
          'echo out-of-hook; echo err-of-hook >&2')


def compiled_with_failpoints():
    out = subprocess.run([spoold_bin(), "--version"], capture_output=True, text=True).stdout
    return "(failpoints)" in out


def hook(script, out, on=("succeeded",), **extra):
    return dict({"on": list(on), "command": ["sh", "-c", script, "hook", out]}, **extra)


class HooksTest(SpoolTestMixin, unittest.TestCase):

    def outdir(self, spool):
        """A folder any user may write: as root, pool hooks run as hooks.user
        (nobody), and the spool's own folder is private to its test."""
        path = tempfile.mkdtemp(prefix="spoold-hooks-")
        os.chmod(path, 0o777)
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def deliveries(self, out):
        try:
            with open(os.path.join(out, "deliveries")) as f:
                return [line.split() for line in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def hook_events(self, spool, job_id, name=None):
        return [e for e in spool.events(job_id)
                if e["event"] in ("hook_ok", "hook_failed") and (name is None or e["event"] == name)]

    def wait_hook_event(self, spool, job_id, name, count=1, timeout=30):
        return spool.wait_for(
            lambda: (lambda found: found if len(found) >= count else None)(
                self.hook_events(spool, job_id, name)),
            timeout=timeout, what=f"{count} {name} event(s) of job {job_id}")

    def cursor(self, spool, job_id, key):
        try:
            with open(os.path.join(spool.job_dir(job_id), "hooks", f"{key}.cursor")) as f:
                return int(f.read())
        except FileNotFoundError:
            return None

    def wait_cursor(self, spool, job_id, key, seq):
        """The cursor is written after the hook's event, at the turn's flush."""
        spool.wait_for(lambda: self.cursor(spool, job_id, key) == seq, timeout=20,
                       what=f"jobs/{job_id}/hooks/{key}.cursor at {seq}")

    def seq_of(self, spool, job_id, event):
        return [e["seq"] for e in spool.events(job_id) if e["event"] == event][-1]

    def wait_caught_up(self, spool, job_id, timeout=30):
        spool.wait_for(lambda: not os.path.exists(spool.path("hooks-pending", job_id)), timeout=timeout,
                       what=f"hooks-pending/{job_id} removed (its hooks caught up)")

    # -- outcomes ------------------------------------------------------------------
    def test_exit_zero_delivers_the_event_with_its_json_and_environment(self):
        spool = self.make_spool()
        out = self.outdir(spool)
        spool.drop_job("ok", command=["true"], hooks=[hook(RECORD, out)])
        spool.wait_terminal("ok")
        ok = self.wait_hook_event(spool, "ok", "hook_ok")[0]
        seq = self.seq_of(spool, "ok", "succeeded")
        self.assertEqual(ok["hook"], "job-0")
        self.assertEqual(ok["event_id"], f"ok/{seq}")
        self.assertEqual(ok["attempts"], 1)
        self.assertEqual(ok["level"], "info")
        self.assertEqual(self.deliveries(out), [[f"ok/{seq}", "succeeded"]])
        self.wait_cursor(spool, "ok", "job-0", seq)
        with open(os.path.join(out, f"stdin.{seq}.json")) as f:
            given = json.load(f)
        self.assertEqual(given["event_id"], f"ok/{seq}")
        self.assertEqual(given["job"], "ok")
        self.assertEqual(given["hook"], "job-0")
        succeeded = [e for e in spool.events("ok") if e["seq"] == seq][0]
        self.assertEqual(given["event"], succeeded)
        self.assertEqual(given["status"]["state"], "succeeded")
        self.assertEqual(given["status"]["id"], "ok")
        with open(os.path.join(out, f"env.{seq}")) as f:
            env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        self.assertEqual(env["SPOOLD_JOB_ID"], "ok")
        self.assertEqual(env["SPOOLD_JOB_DIR"], spool.job_dir("ok"))
        self.assertEqual(env["SPOOLD_EVENT"], "succeeded")
        self.assertEqual(env["SPOOLD_EVENT_ID"], f"ok/{seq}")
        self.assertEqual(env["SPOOLD_EVENT_SEQ"], str(seq))
        self.assertEqual(env["SPOOLD_HOOK"], "job-0")
        self.assertEqual(env["SPOOLD_POOL"], "default")
        for key in ("PATH", "HOME", "USER", "LOGNAME"):
            self.assertIn(key, env)
        self.assertNotIn(LEAK_CANARY, env, "the daemon's environment reached a hook")
        with open(os.path.join(spool.job_dir("ok"), "hooks", "job-0.log")) as f:
            log = f.read()
        self.assertIn("out-of-hook", log)
        self.assertIn("err-of-hook", log)
        self.wait_caught_up(spool, "ok")

    def test_non_zero_exit_is_retried_then_given_up(self):
        spool = self.make_spool()
        out = self.outdir(spool)
        spool.drop_job("bad", command=["true"],
                       hooks=[hook('echo "$SPOOLD_EVENT_ID" >> "$1/deliveries"; exit 3', out, retries=1)])
        failed = self.wait_hook_event(spool, "bad", "hook_failed")[0]
        seq = self.seq_of(spool, "bad", "succeeded")
        self.assertEqual(failed["level"], "warning")
        self.assertEqual(failed["reason"], "nonzero_exit")
        self.assertEqual(failed["exit_code"], 3)
        self.assertEqual(failed["attempts"], 2)
        self.assertEqual(failed["event_id"], f"bad/{seq}")
        self.assertEqual(self.deliveries(out), [[f"bad/{seq}"]] * 2)
        self.assertEqual(self.hook_events(spool, "bad", "hook_ok"), [])
        # Given up: the cursor passes the event, so later ones are not held back.
        self.wait_cursor(spool, "bad", "job-0", seq)
        self.assertEqual(spool.status("bad")["state"], "succeeded", "a hook never changes the job's state")
        self.wait_caught_up(spool, "bad")

    def test_a_hook_hanging_past_its_timeout_is_killed_and_given_up(self):
        spool = self.make_spool()
        out = self.outdir(spool)
        spool.drop_job("hang", command=["true"],
                       hooks=[hook('echo started >> "$1/deliveries"; exec sleep 300', out,
                                   timeout="1s", retries=0)])
        failed = self.wait_hook_event(spool, "hang", "hook_failed")[0]
        self.assertEqual(failed["reason"], "timeout")
        self.assertEqual(failed["signal"], "TERM")
        self.assertEqual(failed["attempts"], 1)
        self.assertEqual(self.deliveries(out), [["started"]])
        self.assertEqual(spool.job_processes(), [], "the hung hook was left running")

    def test_a_missing_program_is_given_up(self):
        spool = self.make_spool()
        spool.drop_job("missing", command=["true"],
                       hooks=[{"on": ["succeeded"], "command": ["no-such-hook-program-x7"], "retries": 0}])
        failed = self.wait_hook_event(spool, "missing", "hook_failed")[0]
        self.assertEqual(failed["reason"], "spawn_failed")
        self.assertIn("ENOENT", failed["error"])
        self.assertIsNone(failed["exit_code"])
        self.assertEqual(spool.status("missing")["state"], "succeeded")
        self.wait_caught_up(spool, "missing")

    # -- crashes ---------------------------------------------------------------------
    def crash_then_restart(self, point):
        if not compiled_with_failpoints():
            self.skipTest("this spoold was built without -DSPOOLD_FAILPOINTS=ON")
        spool = self.make_spool(start=False)
        out = self.outdir(spool)
        spool.env["SPOOLD_FAILPOINTS"] = f"{point}=kill"
        spool.start()
        spool.drop_job("crash", command=["true"], hooks=[hook(RECORD, out)])
        spool.proc.wait(timeout=30)
        self.assertEqual(spool.proc.returncode, -9, f"{point}: the daemon did not die by SIGKILL")
        self.assertIn(f"failpoint {point} fired", spool.log_text())
        del spool.env["SPOOLD_FAILPOINTS"]
        self.assertEqual(spool.status("crash")["state"], "succeeded")
        self.assertIsNone(self.cursor(spool, "crash", "job-0"))
        self.assertTrue(os.path.exists(spool.path("hooks-pending", "crash")))
        before = self.deliveries(out)
        spool.start()
        self.wait_hook_event(spool, "crash", "hook_ok")
        self.wait_caught_up(spool, "crash")
        seq = self.seq_of(spool, "crash", "succeeded")
        self.wait_cursor(spool, "crash", "job-0", seq)
        return before, self.deliveries(out), seq

    def test_sigkill_before_the_hook_ran_delivers_after_the_restart(self):
        before, after, seq = self.crash_then_restart("hook.before_start")
        self.assertEqual(before, [])
        self.assertEqual(after, [[f"crash/{seq}", "succeeded"]])

    def test_sigkill_after_exit_zero_before_the_cursor_delivers_again_with_the_same_event_id(self):
        before, after, seq = self.crash_then_restart("hook.before_cursor")
        self.assertEqual(before, [[f"crash/{seq}", "succeeded"]])
        self.assertEqual(after, [[f"crash/{seq}", "succeeded"]] * 2)

    # -- order, pools, load -------------------------------------------------------------
    def test_a_job_that_ends_while_the_daemon_is_down_gets_its_hook_after_the_restart(self):
        spool = self.make_spool()
        out = self.outdir(spool)
        release = os.path.join(out, "release")
        spool.drop_job("outlives", command=["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.02; done"],
                       hooks=[hook(RECORD, out)])
        spool.wait_state("outlives", ["running"])
        spool.stop()  # the job runs on
        open(release, "w").close()
        spool.wait_for(lambda: os.path.exists(os.path.join(spool.job_dir("outlives"), "attempts", "1",
                                                           "outcome.json")),
                       what="the job's end, recorded by its supervisor", daemon_must_live=False)
        spool.start()  # recovery records the end, and follows its hooks once
        self.assertEqual(spool.wait_terminal("outlives")["state"], "succeeded")
        self.wait_hook_event(spool, "outlives", "hook_ok")
        seq = self.seq_of(spool, "outlives", "succeeded")
        self.assertEqual(self.deliveries(out), [[f"outlives/{seq}", "succeeded"]])
        self.wait_caught_up(spool, "outlives")

    def test_a_slow_hook_gets_every_event_in_order(self):
        spool = self.make_spool()
        out = self.outdir(spool)
        slow = 'sleep 0.2; echo "$SPOOLD_EVENT_SEQ $SPOOLD_EVENT" >> "$1/deliveries"'
        spool.drop_job("slow", command=["sh", "-c", "exit 3"], retry={"attempts": 2, "delay": "100ms"},
                       hooks=[hook(slow, out, on=("*",), retries=0)])
        # The job ends on its own time: it never waits for its hooks.
        spool.wait_terminal("slow")
        self.wait_caught_up(spool, "slow")
        expected = [[str(e["seq"]), e["event"]] for e in spool.events("slow")
                    if e["event"] not in ("hook_ok", "hook_failed")]
        self.assertGreaterEqual(len(expected), 7, expected)
        self.assertEqual(self.deliveries(out), expected)
        oks = self.hook_events(spool, "slow", "hook_ok")
        self.assertEqual([ok["event_id"] for ok in oks], [f"slow/{seq}" for seq, _ in expected])

    def test_pool_hooks_come_from_the_configuration(self):
        spool = self.make_spool(start=False)
        out = self.outdir(spool)
        spool.config["pools"]["default"]["hooks"] = [hook(RECORD, out, on=("failed",))]
        spool.write_config()
        spool.start()
        spool.drop_job("plain", command=["sh", "-c", "exit 1"])
        spool.drop_job("fine", command=["true"])
        ok = self.wait_hook_event(spool, "plain", "hook_ok")[0]
        self.assertEqual(ok["hook"], "pool-0")
        seq = self.seq_of(spool, "plain", "failed")
        with open(os.path.join(out, f"env.{seq}")) as f:
            self.assertIn("SPOOLD_HOOK=pool-0\n", f.read())
        self.wait_cursor(spool, "plain", "pool-0", seq)
        spool.wait_terminal("fine")
        self.wait_caught_up(spool, "fine")
        self.assertEqual(self.hook_events(spool, "fine"), [], "fine never failed: nothing to deliver")
        self.assertEqual(self.deliveries(out), [[f"plain/{seq}", "failed"]])

    def test_a_thousand_jobs_end_without_waiting_for_their_bounded_hooks(self):
        max_running = 3
        # The optimized spoold when the suite has one (tests/CMakeLists.txt
        # passes SPOOLD_LOAD_BIN): the sanitized one takes minutes for a
        # thousand jobs and hooks, and the test is about order, not speed.
        spool = self.make_spool(start=False, workers=16, binary=os.environ.get("SPOOLD_LOAD_BIN"))
        spool.config["hooks"] = {"max_running": max_running}
        spool.config["pools"]["default"]["queue_limit"] = 2000
        spool.write_config()
        spool.start()
        out = self.outdir(spool)
        gate = os.path.join(out, "gate")
        # Each hook says when it starts and ends, and waits for the gate.
        gated = ('echo "+ $SPOOLD_EVENT_ID" >> "$1/deliveries"; '
                 'while [ ! -e "$1/gate" ]; do sleep 0.05; done; '
                 'echo "- $SPOOLD_EVENT_ID" >> "$1/deliveries"')
        n = 1000
        for i in range(n):
            spool.drop_job(f"many{i:04d}", command=["true"], hooks=[hook(gated, out, timeout="1h")])

        def all_ended():
            jobs = spool.index().get("jobs", {})
            states = [jobs.get(f"many{i:04d}", {}).get("state") for i in range(n)]
            return all(s in TERMINAL for s in states)
        spool.wait_for(all_ended, timeout=240, interval=0.2, what=f"all {n} jobs terminal")
        # Every job ended while at most max_running hooks had started and none
        # had ended: no terminal write waited for a hook.
        started = [d for d in self.deliveries(out) if d[0] == "+"]
        self.assertLessEqual(len(started), max_running, started)
        self.assertFalse([d for d in self.deliveries(out) if d[0] == "-"])
        for i in range(0, n, 97):
            self.assertEqual(spool.status(f"many{i:04d}")["state"], "succeeded")
        open(gate, "w").close()
        spool.wait_for(lambda: len(os.listdir(spool.path("hooks-pending"))) == 0, timeout=240, interval=0.2,
                       what="every job's hook delivered")
        running = peak = 0
        ends = set()
        for sign, event_id in self.deliveries(out):
            running += 1 if sign == "+" else -1
            peak = max(peak, running)
            if sign == "-":
                ends.add(event_id)
        self.assertLessEqual(peak, max_running)
        self.assertEqual(len(ends), n)
        for i in range(0, n, 97):
            job = f"many{i:04d}"
            ok = self.hook_events(spool, job, "hook_ok")
            self.assertEqual(len(ok), 1, ok)
            self.assertGreater(ok[0]["seq"], self.seq_of(spool, job, "succeeded"))


if __name__ == "__main__":
    unittest.main()
