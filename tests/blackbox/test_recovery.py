"""Daemon stops and restarts (SPEC.md sections 8 and 9): SIGTERM interrupts and
requeues running jobs, a crash (SIGKILL) is recovered, retention at start, and
SIGHUP reloads the configuration."""
import datetime
import os
import signal
import time
import unittest

from harness import SpoolTestMixin, parse_time, toml_dumps
from harness_sched import (OrphanReaper, children_of, describe_pids, helpers_of, is_handed_a_job,
                           is_unreleased_helper, kill_unreleased_helpers,
                           event_names, group_members, pid_alive,
                           read_pidfile)

# Records each run's pid; the first run blocks, later runs succeed at once.
FIRST_RUN_BLOCKS = (
    'echo $$ >> "$SPOOLD_RESULTS_DIR/pids"\n'
    'if [ -e "$SPOOLD_RESULTS_DIR/ran" ]; then exit 0; fi\n'
    'touch "$SPOOLD_RESULTS_DIR/ran"\n'
    'sleep 100 & wait\n')


class RecoveryTest(SpoolTestMixin, unittest.TestCase):

    def results(self, spool, job_id, name):
        return os.path.join(spool.job_dir(job_id), "results", name)

    def wait_runs(self, spool, job_id, n):
        path = self.results(spool, job_id, "pids")
        return spool.wait_for(lambda: len(read_pidfile(path)) >= n and read_pidfile(path),
                              what=f"run {n} of job {job_id} started")

    def assert_gone(self, pgid, when):
        left = group_members(pgid)
        self.assertEqual(left, [], f"{when}: processes of group {pgid} remain: "
                                   f"{describe_pids(left)}")

    def test_sigterm_interrupts_and_requeues(self):
        spool = self.make_spool()
        spool.drop_job("job", script=FIRST_RUN_BLOCKS, kill={"grace": "5s"})
        pgid = self.wait_runs(spool, "job", 1)[0]
        spool.wait_for(lambda: len(group_members(pgid)) >= 2, what="sh and sleep running")
        self.assertEqual(spool.status("job")["pid"], pgid)
        spool.stop(expect_code=0)
        self.assert_gone(pgid, "after the daemon exited")
        st = spool.status("job")
        self.assertEqual((st["state"], st["reason"]), ("queued", "in_queue"), st)
        self.assertEqual(st.get("interruptions"), 1, st)
        self.assertIsNone(st["pid"], st)
        self.assertEqual(len(st["attempts"]), 1, st)
        self.assertEqual(st["attempts"][0]["reason"], "interrupted", st)
        names = event_names(spool, "job")
        self.assertIn("kill_sent", names)
        self.assertIn("requeued", names)
        index = spool.index()
        self.assertEqual(index["jobs"]["job"]["state"], "queued", "index.json written at stop")
        spool.start()
        st = spool.wait_terminal("job")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st.get("interruptions"), 1, st)
        self.assertEqual(st["max_attempts"], 1, "retry.attempts = 0 is not used up")
        self.assertEqual([a["reason"] for a in st["attempts"]][0], "interrupted", st)
        self.assertEqual(len(st["attempts"]), 2, st)
        self.assertEqual(len(read_pidfile(self.results(spool, "job", "pids"))), 2)

    def test_sigterm_interruption_does_not_use_retries(self):
        spool = self.make_spool()
        script = ('echo $$ >> "$SPOOLD_RESULTS_DIR/pids"\n'
                  'n=$(wc -l < "$SPOOLD_RESULTS_DIR/pids")\n'
                  'if [ "$n" -eq 1 ]; then sleep 100; fi\n'
                  'exit 3\n')
        spool.drop_job("r", script=script, retry={"attempts": 1, "delay": "100ms"})
        self.wait_runs(spool, "r", 1)
        spool.stop()
        spool.start()
        st = spool.wait_terminal("r")
        # Run 1 interrupted, then the first attempt proper and its one retry.
        self.assertEqual((st["state"], st["reason"]), ("failed", "nonzero_exit"), st)
        self.assertEqual([a["reason"] for a in st["attempts"]],
                         ["interrupted", "nonzero_exit", "nonzero_exit"], st)
        self.assertEqual(st.get("interruptions"), 1, st)

    def test_sigterm_with_term_ignoring_job(self):
        spool = self.make_spool()
        spool.drop_job("deaf", command=["sh", "-c", "trap '' TERM; echo $$ > \"$SPOOLD_RESULTS_DIR/pids\"; sleep 100"],
                       kill={"grace": "1s"})
        pgid = self.wait_runs(spool, "deaf", 1)[0]
        spool.wait_for(lambda: len(group_members(pgid)) >= 2, what="sh and sleep running")
        began = time.monotonic()
        spool.stop(expect_code=0, timeout=20)
        self.assertGreaterEqual(time.monotonic() - began, 0.9, "the grace was waited out")
        self.assert_gone(pgid, "after the daemon exited")
        sigs = [e.get("signal") for e in spool.events("deaf") if e["event"] == "kill_sent"]
        self.assertEqual(sigs, ["TERM", "KILL"])
        st = spool.status("deaf")
        self.assertEqual((st["state"], st["reason"]), ("queued", "in_queue"), st)

    def test_three_interruptions_fail(self):
        spool = self.make_spool(workers=1)
        spool.drop_job("doomed", command=["sh", "-c", 'echo $$ >> "$SPOOLD_RESULTS_DIR/pids"; sleep 100'],
                       kill={"grace": "2s"}, retry={"attempts": 5, "delay": "100ms"})
        for n in range(1, 4):
            pids = self.wait_runs(spool, "doomed", n)
            spool.wait_state("doomed", "running")
            spool.stop()
            self.assert_gone(pids[-1], f"stop {n}")
            st = spool.status("doomed")
            self.assertEqual(st.get("interruptions"), n, st)
            spool.start()
        st = spool.wait_terminal("doomed")
        self.assertEqual((st["state"], st["reason"]), ("failed", "interrupted"), st)
        self.assertEqual([a["reason"] for a in st["attempts"]], ["interrupted"] * 3, st)
        self.assertEqual(st.get("interruptions"), 3, st)
        self.assertEqual(len(read_pidfile(self.results(spool, "doomed", "pids"))), 3,
                         "not run a fourth time")

    def test_sigkill_recovery(self):
        spool = self.make_spool()
        reaper = OrphanReaper(lambda: [p.pid for p in spool.procs])
        self.addCleanup(reaper.stop)
        spool.drop_job("crashy", script=FIRST_RUN_BLOCKS, kill={"grace": "5s"})
        pgid = self.wait_runs(spool, "crashy", 1)[0]
        members = spool.wait_for(lambda: len(group_members(pgid)) >= 2 and group_members(pgid),
                                 what="sh and sleep running")
        spool.kill()
        self.assertEqual(group_members(pgid), members,
                         "the job outlives the daemon's SIGKILL (its own session)")
        self.assertEqual(spool.status("crashy")["state"], "running")
        began = time.monotonic()
        spool.start()
        st = spool.wait_terminal("crashy")
        self.assert_gone(pgid, "after recovery")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["attempts"][0]["reason"], "interrupted", st)
        self.assertEqual(len(st["attempts"]), 2, st)
        self.assertEqual(st.get("interruptions"), 1, st)
        events = spool.events("crashy")
        names = [e["event"] for e in events]
        self.assertIn("recovered", names)
        rec = names.index("recovered")
        self.assertLess(rec, len(names) - 1 - names[::-1].index("started"),
                        f"ran again after the recovery: {names}")
        pids = read_pidfile(self.results(spool, "crashy", "pids"))
        self.assertEqual(len(pids), 2, pids)
        self.assertNotEqual(pids[0], pids[1])
        self.assertLess(time.monotonic() - began, 4,
                        "recovery of one killed job does not stall the daemon:\n"
                        + spool.log_tail())

    def test_sigkill_recovery_job_ended_meanwhile(self):
        # The job's process ended while no daemon watched: its outcome is unknown;
        # the attempt counts as interrupted and the job runs again.
        spool = self.make_spool()
        reaper = OrphanReaper(lambda: [p.pid for p in spool.procs])
        self.addCleanup(reaper.stop)
        gate = os.path.join(spool.base, "gate")
        script = ('echo $$ >> "$SPOOLD_RESULTS_DIR/pids"\n'
                  f'while [ ! -e "{gate}" ]; do sleep 0.02; done\n')
        spool.drop_job("gone", script=script)
        pgid = self.wait_runs(spool, "gone", 1)[0]
        spool.kill()
        with open(gate, "w"):
            pass
        spool.wait_for(lambda: not pid_alive(pgid), what="the job's process ended")
        spool.start()
        st = spool.wait_terminal("gone")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["attempts"][0]["reason"], "interrupted", st)
        self.assertIn("recovered", event_names(spool, "gone"))

    def test_crash_between_spawn_and_exec(self):
        # An attempt starts in two phases: the spoold-exec helper, handed the
        # job, waits until the daemon has recorded it, then execs the job. If
        # the daemon dies in between, that helper must exit at once without
        # running anything (and it must not keep the daemon's spool lock, or no
        # daemon can start on the root again); so must the idle one the daemon
        # keeps ready. The daemon is frozen at random moments until one finds a
        # helper that holds a job, then killed.
        spool = self.make_spool(config={"pools": {"default": {"workers": 2,
                                                              "queue_limit": 1000}}})
        reaper = OrphanReaper(lambda: [p.pid for p in spool.procs])
        self.addCleanup(reaper.stop)
        self.addCleanup(kill_unreleased_helpers, spool)
        for n in range(400):
            spool.drop_job(f"j{n:03d}", command=["echo", "ran"])
        daemon = spool.proc.pid
        pending = []
        give_up = time.monotonic() + 30
        while not pending and time.monotonic() < give_up:
            os.kill(daemon, signal.SIGSTOP)
            pending = [p for p in children_of(daemon)
                       if is_unreleased_helper(p, spool) and is_handed_a_job(p)]
            if not pending:
                os.kill(daemon, signal.SIGCONT)
                time.sleep(0.001 * (time.time_ns() % 7))
        if not pending:
            os.kill(daemon, signal.SIGCONT)
            self.skipTest("SKIP: never caught the daemon between spawn and exec (a race; it ran, and found nothing to check)")
        logs = [os.readlink(f"/proc/{p}/fd/1") for p in pending]
        pending = sorted(set(pending) | set(helpers_of(spool)))
        spool.kill()
        try:
            spool.wait_for(lambda: not [p for p in pending if pid_alive(p)], timeout=3,
                           what="the not yet released helper exits after the "
                                "daemon died", daemon_must_live=False)
        except AssertionError:
            self.fail(f"helpers not released by the killed daemon live on: "
                      f"{describe_pids(pending)}; holding the spool lock: "
                      f"{spool.lock_holders()}")
        for log in logs:
            with open(log) as f:
                self.assertEqual(f.read(), "", f"the job of {log} ran though never released")
        spool.start()
        for n in range(400):
            st = spool.wait_terminal(f"j{n:03d}", timeout=30)
            self.assertEqual(st["state"], "succeeded", st)

    def test_retention_at_start(self):
        spool = self.make_spool(config={"retention": {"finished": "2s"}})
        old = spool.run_job("old")
        spool.drop_job("kept", hold=True)
        spool.wait_accepted("kept")
        spool.stop()
        finished = parse_time(old["finished"])
        now = lambda: datetime.datetime.now(datetime.timezone.utc)
        spool.wait_for(lambda: (now() - finished).total_seconds() > 2.3,
                       what="the old job's retention passed", daemon_must_live=False)
        spool.start()
        spool.wait_for(lambda: not os.path.exists(spool.job_dir("old")),
                       what="jobs/old removed by retention")
        spool.wait_for(lambda: "old" not in spool.index()["jobs"],
                       what="index.json entry of old removed")
        self.assertTrue(os.path.isdir(spool.job_dir("kept")), "a held job is not terminal")
        self.assertIn("kept", spool.index()["jobs"])
        # The id is free again.
        st = spool.run_job("old")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(st["attempts"]), 1, st)

    def test_sighup_reload(self):
        spool = self.make_spool()
        spool.drop_job("before", pool="new")
        self.assertEqual(spool.wait_rejected("before.toml")["code"], "unknown_pool")

        good = dict(spool.config)
        good["pools"] = dict(spool.config["pools"])
        good["pools"]["new"] = {"workers": 1}
        text = toml_dumps(good)
        lines = text.splitlines()
        bad_line = lines.index("[pools.new]") + 2  # 1-based line of the bad key
        bad_lines = lines[:bad_line - 1] + ['queue_limit = "many"'] + lines[bad_line - 1:]
        spool.write_config("\n".join(bad_lines) + "\n")
        spool.proc.send_signal(signal.SIGHUP)
        where = f"{spool.config_path}:{bad_line}"
        spool.wait_for(lambda: where in spool.log_text(),
                       what=f"the log names the bad line {where}")
        self.assertTrue(spool.alive())
        spool.drop_job("still-bad", pool="new")
        self.assertEqual(spool.wait_rejected("still-bad.toml")["code"], "unknown_pool",
                         "the old configuration is kept")
        self.assert_accepts_valid_job(spool, "works")

        spool.write_config(text)
        spool.proc.send_signal(signal.SIGHUP)
        spool.wait_for(lambda: "new" in spool.index()["pools"],
                       what="index.json lists the new pool")
        self.assertEqual(spool.index()["pools"]["new"]["workers"], 1)
        st = spool.run_job("after", pool="new")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["pool"], "new")
        self.assertTrue(spool.alive())


    def test_sighup_changes_workers(self):
        spool = self.make_spool(workers=1)
        gate = os.path.join(spool.base, "gate")
        wait_gate = ["sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.02; done']
        spool.drop_job("first", command=wait_gate)
        spool.wait_state("first", "running")
        spool.drop_job("second", command=wait_gate)
        spool.wait_accepted("second")
        self.assertEqual(spool.status("second")["state"], "queued")
        spool.config["pools"]["default"]["workers"] = 2
        spool.write_config()
        spool.proc.send_signal(signal.SIGHUP)
        spool.wait_state("second", "running")
        self.assertEqual(spool.status("first")["state"], "running")
        spool.wait_for(lambda: spool.index()["pools"]["default"]["workers"] == 2,
                       what="index.json shows 2 workers")
        with open(gate, "w"):
            pass
        for job_id in ("first", "second"):
            self.assertEqual(spool.wait_terminal(job_id)["state"], "succeeded")


if __name__ == "__main__":
    unittest.main()
