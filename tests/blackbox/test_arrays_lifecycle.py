"""Job arrays (`[array]`, SPEC.md section 5) through the real daemon, over
their life: `after` on an array and on one task, and an array that waits
itself; its deadline; queue_limit; a start request of a task; restarts
(SIGKILL, a failpoint, SIGTERM) while tasks run, every task still run exactly
once; retention; a task's retry. test_arrays.py has the rest."""
import datetime
import os
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run, parse_time, spoold_bin
from harness_arrays import WAIT_GO, ArraysMixin, counts, ranges
from harness_ctl import SpoolctlMixin
from harness_sched import drop_control


class ArraysLifecycleTest(ArraysMixin, SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    # -- 5. after ------------------------------------------------------------------------------

    def test_after_an_array_waits_for_all_of_it_and_after_a_task_for_that_task(self):
        spool = self.make_spool(workers=4)
        go, env = self.gated(spool)
        # Dropped before its array: the task id is waited for like any job's.
        spool.drop_job("after3", after=["sweep:3"])
        spool.wait_accepted("after3")
        # Tasks 4 and 5 wait for $GO; 0 to 3 end at once.
        spool.drop_job("sweep", env=env, array={"indexes": "0-5", "parallel": 2},
                       command=["sh", "-c", f'[ $SPOOLD_ARRAY_INDEX -lt 4 ] || {{ {WAIT_GO}; }}'])
        spool.drop_job("whole", after=["sweep"])
        child = spool.wait_terminal("after3", timeout=60)
        self.assertEqual(child["state"], "succeeded", child)
        # It ran once task 3 had succeeded, while the array still ran.
        t3 = self.task(spool, "sweep", 3)
        self.assertEqual(t3["state"], "succeeded")
        self.assertGreaterEqual(parse_time(child["attempts"][0]["started"]), parse_time(t3["finished"]))
        self.wait_running(spool, "sweep", [4, 5])
        self.assertEqual(spool.status("sweep")["state"], "running")
        whole = spool.wait_accepted("whole")
        self.assertEqual((whole["state"], whole["reason"], whole["waiting_on"]),
                         ("queued", "dependency", ["sweep"]), whole)
        open(go, "w").close()
        whole = spool.wait_terminal("whole", timeout=60)
        self.assertEqual(whole["state"], "succeeded", whole)
        self.assertGreaterEqual(parse_time(whole["attempts"][0]["started"]),
                                parse_time(spool.status("sweep")["finished"]))

        # A failed task: its dependents are decided by it, and the array's by
        # the array's end (tasks_failed).
        spool.drop_job("bad", command=["sh", "-c", "exit $((SPOOLD_ARRAY_INDEX == 1 ? 7 : 0))"],
                       array={"indexes": "0-2", "parallel": 1})
        spool.drop_job("after-bad1", after=["bad:1"])
        spool.drop_job("on-bad1", fmt="json", after=[{"job": "bad:1", "on": "failure"}])
        spool.drop_job("after-bad0", after=["bad:0"])
        spool.drop_job("after-bad", after=["bad"])
        st = spool.wait_terminal("after-bad1", timeout=60)
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertTrue(st["message"].startswith("parent bad:1 ended failed (nonzero_exit); after requires success"),
                        st["message"])
        self.assertEqual(st["attempts"], [])
        self.assertEqual(spool.wait_terminal("on-bad1")["state"], "succeeded")
        self.assertEqual(spool.wait_terminal("after-bad0")["state"], "succeeded")
        st = spool.wait_terminal("after-bad")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertTrue(st["message"].startswith("parent bad ended failed (tasks_failed)"), st["message"])
        bad = spool.status("bad")
        self.assertEqual((bad["state"], bad["reason"], bad["failed_indexes"]), ("failed", "tasks_failed", "1"))

    def test_an_array_waits_for_its_parents_and_its_deadline_fails_the_tasks_not_started(self):
        spool = self.make_spool(workers=2)
        go, env = self.gated(spool)
        spool.drop_job("prep", env=env, command=["sh", "-c", WAIT_GO])
        # The array waits like any job, none of its tasks started.
        spool.drop_job("sweep", after=["prep"], array={"indexes": "0-3"})
        st = spool.wait_accepted("sweep")
        self.assertEqual((st["state"], st["reason"], st["waiting_on"]), ("queued", "dependency", ["prep"]), st)
        open(go, "w").close()
        st = spool.wait_terminal("sweep", timeout=60)
        self.assertEqual((st["state"], st["tasks"]), ("succeeded", counts(4, succeeded=4)), st)
        self.assertGreaterEqual(parse_time(self.task(spool, "sweep", 0)["attempts"][0]["started"]),
                                parse_time(spool.status("prep")["finished"]))

        # A deadline that passes while tasks still wait: they fail with it
        # (deadline, listed in failed_indexes), the running one is stopped.
        spool.drop_job("late", deadline="1.5s", command=["sleep", "0.6"], array={"indexes": "0-9", "parallel": 1})
        st = spool.wait_terminal("late", timeout=60)
        ok = [i for i in self.started(spool, "late") if self.task(spool, "late", i)["state"] == "succeeded"]
        self.assertLess(len(ok), 10)
        self.assertEqual((st["state"], st["reason"]), ("failed", "tasks_failed"), st)
        self.assertEqual(st["tasks"], counts(10, succeeded=len(ok), failed=10 - len(ok)), st)
        self.assertEqual(st["failed_indexes"], ranges(set(range(10)) - set(ok)), st)
        for i in self.started(spool, "late"):
            if i not in ok:
                self.assert_task_ended(spool, "late", i, "failed", "deadline")
        spool.drop_job("after-late9", after=["late:9"])
        child = spool.wait_terminal("after-late9")
        self.assertTrue(child["message"].startswith("parent late:9 ended failed (deadline)"), child)

    # -- queue_limit ---------------------------------------------------------------------------

    def test_tasks_not_started_hold_no_place_in_the_queue(self):
        spool = self.make_spool(workers=1, config={"pools": {"default": {"queue_limit": 2}}})
        go, env = self.gated(spool)
        spool.drop_job("sweep", env=env, command=["sh", "-c", WAIT_GO], array={"indexes": "0-49", "parallel": 1})
        self.wait_running(spool, "sweep", [0])
        # 49 tasks wait, yet the queue has room for two jobs.
        for job in ("j1", "j2"):
            spool.drop_job(job)
            self.assertEqual(spool.wait_accepted(job)["reason"], "in_queue")
        spool.drop_job("j3")
        self.assertEqual(spool.wait_rejected("j3.toml")["code"], "queue_full")
        self.ctl(spool, "cancel", "sweep", expect=0)
        self.assertEqual(spool.wait_terminal("sweep", timeout=60)["state"], "cancelled")
        self.assertEqual(spool.wait_terminal("j2")["state"], "succeeded")
        # A held array holds one place until its first task starts.
        spool.drop_job("held", hold=True, array={"indexes": "0-9"})
        spool.wait_accepted("held")
        spool.drop_job("k2", hold=True)
        spool.wait_accepted("k2")
        spool.drop_job("k3", hold=True)
        self.assertEqual(spool.wait_rejected("k3.toml")["code"], "queue_full")
        self.ctl(spool, "cancel", "held", "k2", expect=0)
        # A task waiting to retry holds one, like any job.
        spool.drop_job("flaky", command=["false"], retry={"attempts": 1, "delay": "1h"},
                       array={"indexes": "0-9", "parallel": 1})
        spool.wait_for(lambda: self.task(spool, "flaky", 0)["reason"] == "retry_backoff",
                       what="task flaky:0 waiting to retry")
        spool.drop_job("m1", hold=True)
        spool.wait_accepted("m1")
        spool.drop_job("m2", hold=True)
        self.assertEqual(spool.wait_rejected("m2.toml")["code"], "queue_full")
        self.ctl(spool, "cancel", "flaky", expect=0)
        st = spool.wait_terminal("flaky")
        self.assertEqual((st["state"], st["tasks"]), ("cancelled", counts(10, cancelled=10)), st)

    def test_a_task_cannot_be_held_so_start_of_one_is_refused_as_invalid_state(self):
        # SPEC.md section 5: a task id is usable wherever a job id is, control
        # requests included; `start` releases a held array, a task cannot be
        # held. A start of a task that exists does not fit its state.
        spool = self.make_spool()
        spool.drop_job("held", hold=True, array={"indexes": "0-3"})
        spool.wait_accepted("held")
        drop_control(spool, "start2", {"action": "start", "job": "held:2"})
        err = spool.wait_rejected("start2.json")
        self.assertEqual((err["code"], err["field"]), ("invalid_state", "job"), err)
        # A task the array does not have, or of an array that does not
        # exist, is no job at all.
        drop_control(spool, "start9", {"action": "start", "job": "held:9"})
        self.assertEqual(spool.wait_rejected("start9.json")["code"], "unknown_job")
        drop_control(spool, "startnone", {"action": "start", "job": "none:1"})
        self.assertEqual(spool.wait_rejected("startnone.json")["code"], "unknown_job")
        self.assertEqual(self.started(spool, "held"), [])
        self.assertEqual(spool.status("held")["reason"], "held")

    # -- 6. restarts -------------------------------------------------------------------------

    def restart_while_running(self, stop, failpoint=None):
        """An array of 10 tasks, 2 at a time: 0 to 3 sleep 0.4 s, the others
        wait for $GO. The daemon is stopped by `stop` once 4 and 5 run (or dies
        at `failpoint`), $GO is made, and the daemon started again: every
        task runs exactly once in all, the array succeeds."""
        spool = self.make_spool(start=False, workers=4)
        if failpoint:
            spool.env["SPOOLD_FAILPOINTS"] = failpoint
        spool.start()
        runs = os.path.join(spool.base, "runs")
        go, env = self.gated(spool)
        spool.drop_job("sweep", env=dict(env, RUNS=runs), array={"indexes": "0-9", "parallel": 2},
                       command=["sh", "-c", 'echo $SPOOLD_ARRAY_INDEX >> "$RUNS"; '
                                            f'if [ $SPOOLD_ARRAY_INDEX -lt 4 ]; then sleep 0.4; else {WAIT_GO}; fi'])
        if failpoint:
            spool.proc.wait(timeout=60)
            self.assertEqual(spool.proc.returncode, -9, spool.log_tail())
            del spool.env["SPOOLD_FAILPOINTS"]
        else:
            self.wait_running(spool, "sweep", [4, 5])
            stop(spool)
        started = self.started(spool, "sweep")
        if not failpoint:
            self.assertEqual(started, list(range(6)))
        open(go, "w").close()
        spool.start()
        st = spool.wait_terminal("sweep", timeout=60)
        self.assertEqual((st["state"], st["reason"]), ("succeeded", None), st)
        self.assertEqual(st["tasks"], counts(10, succeeded=10), st)
        self.assertEqual(st["message"], "all 10 tasks succeeded")
        self.assert_ran_once_each(runs, range(10))
        for i in range(10):
            # A task whose start was recorded but whose program the daemon
            # had not let run yet when it died has an `interrupted` attempt
            # that never ran (SPEC.md sections 4 and 5), then its real one.
            t = self.assert_task_ended(spool, "sweep", i, "succeeded", attempts=None)
            ran = [a for a in t["attempts"] if a["reason"] != "interrupted"]
            self.assertEqual([a["exit_code"] for a in ran], [0], t)
            names = [e["event"] for e in spool.events(f"sweep/tasks/{i}")]
            self.assertEqual(names.count("succeeded"), 1, names)
        return spool, started

    def test_sigkill_while_tasks_run_then_restart(self):
        self.restart_while_running(lambda spool: spool.kill())

    def test_daemon_killed_with_a_tasks_end_unrecorded(self):
        out = subprocess.run([spoold_bin(), "--version"], capture_output=True, text=True).stdout
        if "(failpoints)" not in out:
            cannot_run(self, "this spoold was built without -DSPOOLD_FAILPOINTS=ON")
        # The third task's supervisor reaped: its outcome is on disk, its end
        # not recorded, and the fourth task runs on.
        _, started = self.restart_while_running(None, failpoint="attempt.after_reap=kill:3")
        self.assertIn(started, [[0, 1, 2, 3], [0, 1, 2, 3, 4]])

    def test_clean_stop_while_tasks_run_then_start(self):
        spool, _ = self.restart_while_running(lambda spool: spool.stop())
        events = [e["event"] for e in spool.events("sweep")]
        self.assertEqual(events.count("succeeded"), 1, events)
        # A held array is still held after a restart, with no task folder.
        spool.drop_job("held", hold=True, array={"indexes": "0-2"})
        spool.wait_accepted("held")
        spool.stop()
        spool.start()
        st = spool.status("held")
        self.assertEqual((st["state"], st["reason"], st["tasks"]), ("queued", "held", counts(3, queued=3)), st)
        self.assertEqual(self.started(spool, "held"), [])
        self.ctl(spool, "start", "held", expect=0)
        self.assertEqual(spool.wait_terminal("held", timeout=60)["tasks"], counts(3, succeeded=3))

    def test_an_array_removed_by_retention_is_known_by_its_tombstone_and_its_tasks_are_not(self):
        spool = self.make_spool(config={"retention": {"finished": "1s"}, "dependencies": {"missing_grace": "1s"}})
        spool.drop_job("sweep", command=["sh", "-c", "exit $((SPOOLD_ARRAY_INDEX == 1))"],
                       array={"indexes": "0-2", "parallel": 1})
        st = spool.wait_terminal("sweep", timeout=60)
        self.assertEqual((st["state"], st["reason"]), ("failed", "tasks_failed"), st)
        spool.stop()
        now = lambda: datetime.datetime.now(datetime.timezone.utc)
        spool.wait_for(lambda: (now() - parse_time(st["finished"])).total_seconds() > 1.3,
                       what="retention passed", daemon_must_live=False)
        spool.start()
        spool.wait_for(lambda: not os.path.exists(spool.job_dir("sweep")), what="retention removed the array")
        with open(spool.path(".tombstones")) as f:
            self.assertIn('"id":"sweep"', f.read().replace(" ", ""))
        st = spool.run_job("after-sweep", after=["sweep"])
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertTrue(st["message"].startswith("parent sweep ended failed (tasks_failed)"), st["message"])
        st = spool.run_job("after-task", after=["sweep:0"])
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_missing"), st)

    # -- 7. retry ----------------------------------------------------------------------------

    def test_a_task_retried_keeps_its_place_and_the_array_succeeds(self):
        spool = self.make_spool(workers=2)
        flaky = ('[ $SPOOLD_ARRAY_INDEX -ne 1 ] && exit 0; test -e tried && exit 0; touch tried; exit 3')
        spool.drop_job("sweep", command=["sh", "-c", flaky], retry={"attempts": 1, "delay": "300ms"},
                       array={"indexes": "0-3", "parallel": 1})
        st = spool.wait_terminal("sweep", timeout=60)
        self.assertEqual((st["state"], st["reason"]), ("succeeded", None), st)
        self.assertEqual((st["tasks"], st["failed_indexes"]), (counts(4, succeeded=4), ""), st)
        t1 = self.assert_task_ended(spool, "sweep", 1, "succeeded", attempts=2)
        self.assertEqual([a["exit_code"] for a in t1["attempts"]], [3, 0], t1)
        self.assertIn("retry_scheduled", [e["event"] for e in spool.events("sweep/tasks/1")])
        for i in (0, 2, 3):
            self.assert_task_ended(spool, "sweep", i, "succeeded")
        # parallel = 1 and a task waiting to retry keeps its place: one at a time.
        spans = sorted((parse_time(a["started"]), parse_time(a["finished"]))
                       for i in range(4) for a in self.task(spool, "sweep", i)["attempts"])
        for (_, end), (start, _) in zip(spans, spans[1:]):
            self.assertLessEqual(end, start, spans)
        self.assertGreaterEqual(parse_time(self.task(spool, "sweep", 2)["attempts"][0]["started"]),
                                parse_time(t1["finished"]))


if __name__ == "__main__":
    unittest.main()
