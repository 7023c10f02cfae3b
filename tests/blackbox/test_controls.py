"""Scheduling and control requests (SPEC.md sections 2, 6 and 8): priority then
FIFO, queue_limit, pause/resume, auto_resume, hold/start, cancel, bad requests,
and progress."""
import os
import unittest

from harness import SpoolTestMixin, TERMINAL, parse_time
from harness_sched import (describe_pids, drop_control, event_names, group_members,
                           pid_alive, read_text, wait_control_done)

PY = "/usr/bin/python3"


class ControlsTest(SpoolTestMixin, unittest.TestCase):

    def blocker(self, spool, job_id="blocker", **fields):
        """Drops a job that holds a worker until release(); waits until it runs."""
        gate = os.path.join(spool.base, f"go-{job_id}")
        spool.drop_job(job_id, command=["sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.02; done'],
                       **fields)
        spool.wait_state(job_id, "running")

        def release():
            with open(gate, "w"):
                pass
        return release

    def queued_reason(self, spool, job_id, reason):
        def check():
            st = spool.status(job_id)
            return st if (st["state"], st["reason"]) == ("queued", reason) else None
        return spool.wait_for(check, what=f"job {job_id} queued with reason {reason}")

    def assert_history_says(self, spool, job_id, reason):
        """events.jsonl tells why the job waits: an event named after the reason,
        or an `accepted` event that carries the reason."""
        events = spool.events(job_id)
        ok = any(e["event"] == reason or
                 (e["event"] == "accepted" and e.get("reason") == reason) for e in events)
        self.assertTrue(ok, f"the history of {job_id} never says {reason!r}: {events}")

    def index_pool(self, spool, pool):
        return spool.index()["pools"][pool]

    # -- order ---------------------------------------------------------------

    def test_priority_then_fifo(self):
        spool = self.make_spool(workers=1)
        order = os.path.join(spool.base, "order")
        release = self.blocker(spool)
        jobs = [("p0a", 0), ("p5a", 5), ("neg", -1), ("p0b", 0), ("p10", 10), ("p5b", 5),
                ("p0c", 0)]
        for job_id, prio in jobs:
            spool.drop_job(job_id, priority=prio,
                           command=["sh", "-c", f'echo {job_id} >> "{order}"'])
            st = spool.wait_accepted(job_id)  # one at a time: acceptance order is FIFO order
            self.assertEqual((st["state"], st["reason"]), ("queued", "in_queue"), st)
            self.assertEqual(st["priority"], prio)
        spool.wait_for(lambda: spool.index()["pools"]["default"]["queued"] == len(jobs),
                       what="index.json counts the queued jobs")
        self.assertEqual(self.index_pool(spool, "default")["running"], 1)
        release()
        for job_id, _ in jobs:
            self.assertEqual(spool.wait_terminal(job_id)["state"], "succeeded")
        expected = ["p10", "p5a", "p5b", "p0a", "p0b", "p0c", "neg"]
        self.assertEqual(read_text(order).split(), expected)
        starts = sorted(jobs, key=lambda j: spool.status(j[0])["attempts"][0]["started"])
        self.assertEqual([j for j, _ in starts], expected, "attempts[0].started order")

    def test_workers_cap(self):
        spool = self.make_spool(workers=2)
        trace = os.path.join(spool.base, "trace")
        script = (f'echo "+ $SPOOLD_JOB_ID" >> "{trace}"; sleep 0.3; '
                  f'echo "- $SPOOLD_JOB_ID" >> "{trace}"')
        for n in range(6):
            spool.drop_job(f"w{n}", command=["sh", "-c", script])
        for n in range(6):
            self.assertEqual(spool.wait_terminal(f"w{n}")["state"], "succeeded")
        running = peak = 0
        for line in read_text(trace).splitlines():
            running += 1 if line.startswith("+") else -1
            peak = max(peak, running)
        self.assertEqual(peak, 2, read_text(trace))

    # -- queue_limit ---------------------------------------------------------

    def test_queue_full(self):
        spool = self.make_spool(config={"pools": {"default": {"workers": 1, "queue_limit": 2}}})
        release = self.blocker(spool)  # running: holds no place in the queue
        spool.drop_job("q1")
        spool.drop_job("q2")
        spool.wait_accepted("q1")
        spool.wait_accepted("q2")
        spool.drop_job("q3")
        err = spool.wait_rejected("q3.toml")
        self.assertEqual(err["code"], "queue_full", err)
        self.assertFalse(os.path.exists(spool.job_dir("q3")))
        release()
        for job_id in ("blocker", "q1", "q2"):
            self.assertEqual(spool.wait_terminal(job_id)["state"], "succeeded")
        # Places are free again.
        self.assert_accepts_valid_job(spool, "q4")

    def test_queue_limit_counts_held_and_backoff(self):
        spool = self.make_spool(config={"pools": {"default": {"workers": 2, "queue_limit": 2}}})
        spool.drop_job("held", hold=True)
        self.queued_reason(spool, "held", "held")
        spool.drop_job("backoff", command=["sh", "-c", "exit 3"],
                       retry={"attempts": 1, "delay": "1h"})
        self.queued_reason(spool, "backoff", "retry_backoff")
        spool.drop_job("third")
        err = spool.wait_rejected("third.toml")
        self.assertEqual(err["code"], "queue_full", err)
        drop_control(spool, "c1", {"action": "cancel", "job": "held"})
        self.assertEqual(spool.wait_terminal("held")["state"], "cancelled")
        spool.drop_job("fourth")
        self.assertEqual(spool.wait_terminal("fourth")["state"], "succeeded")
        drop_control(spool, "c2", {"action": "cancel", "job": "backoff"})
        st = spool.wait_terminal("backoff")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)

    # -- pause, resume, auto_resume, hold --------------------------------------

    def test_pause_and_resume_by_control(self):
        spool = self.make_spool()
        drop_control(spool, "pause1", {"action": "pause", "pool": "default"})
        wait_control_done(spool, "pause1.json")
        spool.wait_for(lambda: self.index_pool(spool, "default")["paused"] is True,
                       what="index.json shows the pool paused")
        spool.drop_job("waits")
        self.queued_reason(spool, "waits", "pool_paused")
        spool.wait_for(lambda: spool.index()["jobs"]["waits"]["reason"] == "pool_paused",
                       what="index.json shows pool_paused")
        self.assert_history_says(spool, "waits", "pool_paused")
        # A job already queued when the pool is paused shows the reason too.
        drop_control(spool, "resume1", {"action": "resume", "pool": "default"}, fmt="toml")
        wait_control_done(spool, "resume1.toml")
        self.assertEqual(spool.wait_terminal("waits")["state"], "succeeded")
        spool.wait_for(lambda: self.index_pool(spool, "default")["paused"] is False,
                       what="index.json shows the pool resumed")
        log = spool.log_text()
        self.assertIn("pause1.json", log, "the daemon log records the pool request")
        self.assertIn("resume1.toml", log)

    def test_pause_shows_on_queued_jobs(self):
        spool = self.make_spool(workers=1)
        release = self.blocker(spool)
        spool.drop_job("behind")
        self.queued_reason(spool, "behind", "in_queue")
        drop_control(spool, "p", {"action": "pause", "pool": "default"})
        wait_control_done(spool, "p.json")
        self.queued_reason(spool, "behind", "pool_paused")
        self.assertIn("pool_paused", event_names(spool, "behind"))
        release()
        self.assertEqual(spool.wait_terminal("blocker")["state"], "succeeded")
        st = spool.status("behind")
        self.assertEqual((st["state"], st["reason"]), ("queued", "pool_paused"),
                         "a paused pool starts nothing new")
        drop_control(spool, "r", {"action": "resume", "pool": "default"})
        self.assertEqual(spool.wait_terminal("behind")["state"], "succeeded")

    def test_paused_by_config_and_auto_resume(self):
        spool = self.make_spool(config={"pools": {
            "manual": {"workers": 1, "paused": True},
            "auto": {"workers": 1, "paused": True, "auto_resume": True}}})
        idx = spool.index()
        self.assertIs(idx["pools"]["manual"]["paused"], True)
        self.assertIs(idx["pools"]["auto"]["paused"], True)
        spool.drop_job("m", pool="manual")
        self.queued_reason(spool, "m", "pool_paused")
        spool.drop_job("a", pool="auto")
        self.assertEqual(spool.wait_terminal("a")["state"], "succeeded")
        spool.wait_for(lambda: self.index_pool(spool, "auto")["paused"] is False,
                       what="the auto pool resumed")
        self.assertEqual(spool.status("m")["reason"], "pool_paused", "the other pool stays paused")
        self.assertIs(self.index_pool(spool, "manual")["paused"], True)
        drop_control(spool, "go", {"action": "resume", "pool": "manual"})
        self.assertEqual(spool.wait_terminal("m")["state"], "succeeded")

    def test_hold_and_start(self):
        spool = self.make_spool()
        spool.drop_job("h", hold=True)
        st = self.queued_reason(spool, "h", "held")
        self.assertEqual(st["attempts"], [])
        self.assert_history_says(spool, "h", "held")
        spool.wait_for(lambda: spool.index()["jobs"]["h"]["reason"] == "held",
                       what="index.json shows held")
        drop_control(spool, "start-h", {"action": "start", "job": "h"})
        wait_control_done(spool, "start-h.json")
        st = spool.wait_terminal("h")
        self.assertEqual(st["state"], "succeeded", st)
        names = event_names(spool, "h")
        self.assertIn("start_requested", names)
        self.assertLess(names.index("start_requested"), names.index("started"), names)
        # Starting it again: it is no longer held.
        drop_control(spool, "start-h2", {"action": "start", "job": "h"})
        self.assertEqual(spool.wait_rejected("start-h2.json")["code"], "invalid_state")

    def test_held_job_in_paused_pool(self):
        spool = self.make_spool(config={"pools": {"default": {"paused": True}}})
        spool.drop_job("hp", hold=True)
        self.queued_reason(spool, "hp", "held")
        drop_control(spool, "s", {"action": "start", "job": "hp"})
        wait_control_done(spool, "s.json")
        self.queued_reason(spool, "hp", "pool_paused")
        drop_control(spool, "r", {"action": "resume", "pool": "default"})
        self.assertEqual(spool.wait_terminal("hp")["state"], "succeeded")

    # -- cancel ------------------------------------------------------------------

    def test_cancel_queued(self):
        spool = self.make_spool(workers=1)
        release = self.blocker(spool)
        spool.drop_job("victim")
        self.queued_reason(spool, "victim", "in_queue")
        drop_control(spool, "cancel-victim", {"action": "cancel", "job": "victim"})
        st = spool.wait_terminal("victim")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertEqual(st["attempts"], [], "a cancelled queued job never ran")
        self.assertEqual(st["message"], "cancelled by request before it ran")
        # Deleted once the flush that recorded it has synced: just after the status.
        spool.wait_for(lambda: not os.path.exists(spool.path("control", "cancel-victim.json")),
                       what="the request deleted once acted on", timeout=5)
        names = event_names(spool, "victim")
        self.assertIn("cancel_requested", names)
        self.assertEqual(names[-1], "cancelled", names)
        self.assertEqual(spool.status("blocker")["state"], "running", "others unaffected")
        release()
        self.assertEqual(spool.wait_terminal("blocker")["state"], "succeeded")
        spool.wait_for(lambda: spool.index()["jobs"]["victim"]["state"] == "cancelled",
                       what="index.json shows the cancel")

    def test_cancel_running_kills_children(self):
        spool = self.make_spool()
        spool.drop_job("busy", command=["sh", "-c", "sleep 100 & sleep 100 & wait"],
                       kill={"grace": "5s"})
        st = spool.wait_state("busy", "running")
        pgid = st["pid"]
        pids = spool.wait_for(lambda: len(group_members(pgid)) >= 3 and group_members(pgid),
                              what="the job's three processes")
        drop_control(spool, "stop-busy", {"action": "cancel", "job": "busy"})
        st = spool.wait_terminal("busy")
        left = group_members(pgid, include_zombies=True)
        self.assertEqual(left, [], f"processes left: {describe_pids(left)}")
        self.assertEqual([p for p in pids if pid_alive(p)], [])
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertEqual(len(st["attempts"]), 1, st)
        self.assertEqual(st["message"], "attempt 1 of 1 cancelled by request while running")
        names = event_names(spool, "busy")
        self.assertIn("cancel_requested", names)
        self.assertIn("kill_sent", names)
        self.assertLess(names.index("cancel_requested"), names.index("kill_sent"), names)
        self.assertEqual(names[-1], "cancelled", names)

    def test_cancel_running_term_ignoring(self):
        spool = self.make_spool()
        spool.drop_job("deaf", command=["sh", "-c", "trap '' TERM; sleep 100"],
                       kill={"grace": "1s"}, retry={"attempts": 3, "delay": "100ms"})
        pgid = spool.wait_state("deaf", "running")["pid"]
        spool.wait_for(lambda: len(group_members(pgid)) >= 2, what="sh and sleep running")
        drop_control(spool, "c", {"action": "cancel", "job": "deaf"})
        st = spool.wait_terminal("deaf")
        self.assertEqual(group_members(pgid, include_zombies=True), [])
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertEqual(len(st["attempts"]), 1, "a cancelled job is not retried")
        sigs = [e.get("signal") for e in spool.events("deaf") if e["event"] == "kill_sent"]
        self.assertEqual(sigs, ["TERM", "KILL"])

    def test_cancel_in_retry_backoff(self):
        spool = self.make_spool()
        spool.drop_job("rb", command=["sh", "-c", "exit 2"],
                       retry={"attempts": 5, "delay": "2d", "max_delay": "2d"})
        st = self.queued_reason(spool, "rb", "retry_backoff")
        # Two days away, the retry is never today: its message gives the date.
        shown = parse_time(st["next_attempt_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.assertEqual(st["message"], f"attempt 1 of 6 exited with code 2; retrying at {shown}")
        drop_control(spool, "c", {"action": "cancel", "job": "rb"})
        st = spool.wait_terminal("rb")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertIsNone(st["next_attempt_at"], st)
        self.assertEqual(st["message"], "cancelled by request while waiting to retry, after 1 attempt")
        cancelled = [e for e in spool.events("rb") if e["event"] == "cancelled"]
        self.assertEqual([e["message"] for e in cancelled], [st["message"]])

    # -- bad requests ----------------------------------------------------------

    def test_bad_control_requests(self):
        spool = self.make_spool()
        spool.run_job("done")
        spool.drop_job("waiting", hold=True)
        self.queued_reason(spool, "waiting", "held")
        spool.drop_job("running", command=["sleep", "100"], kill={"grace": "1s"})
        spool.wait_state("running", "running")
        cases = [
            ("unknown-job", {"action": "cancel", "job": "no-such-job"}, "unknown_job"),
            ("unknown-job-start", {"action": "start", "job": "no-such-job"}, "unknown_job"),
            ("bad-action", {"action": "frobnicate", "job": "waiting"}, "invalid_field"),
            ("no-job", {"action": "cancel"}, "missing_field"),
            ("no-action", {"job": "waiting"}, "missing_field"),
            ("no-pool", {"action": "pause"}, "missing_field"),
            ("extra-key", {"action": "cancel", "job": "waiting", "force": True},
             "unknown_field"),
            ("typo", {"action": "cancel", "jbo": "waiting"}, "unknown_field"),
            ("cancel-done", {"action": "cancel", "job": "done"}, "invalid_state"),
            ("start-done", {"action": "start", "job": "done"}, "invalid_state"),
            ("start-running", {"action": "start", "job": "running"}, "invalid_state"),
            ("bad-id", {"action": "cancel", "job": "../escape"}, "bad_id"),
            ("unknown-pool", {"action": "pause", "pool": "nowhere"}, "unknown_pool"),
            ("job-not-string", {"action": "cancel", "job": 7}, "invalid_field"),
        ]
        for name, request, _ in cases:
            drop_control(spool, name, request)
        spool.drop("not-json.json", "{action: cancel", folder="control")
        spool.drop("not-toml.toml", "action = = 'cancel'\n", folder="control")
        cases += [("not-json", None, "parse_error"), ("not-toml", None, "parse_error")]
        for name, request, code in cases:
            fname = name + (".toml" if name == "not-toml" else ".json")
            with self.subTest(request=name):
                err = spool.wait_rejected(fname)
                self.assertEqual(err["code"], code, f"{request}: {err}")
                self.assertTrue(os.path.exists(spool.path("rejected", fname)))
                self.assertEqual(err["file"], fname, err)
                if name == "typo":  # the misspelling, not the job it leaves missing
                    self.assertEqual((err["field"], err["error"]),
                                     ("jbo", "unknown key 'jbo'; did you mean 'job'?"), err)
        spool.wait_for(lambda: os.listdir(spool.path("control")) == [],
                       what="control/ emptied")
        # Nothing was acted on.
        self.assertEqual(spool.status("waiting")["reason"], "held")
        self.assertEqual(spool.status("running")["state"], "running")
        self.assertEqual(spool.status("done")["state"], "succeeded")
        self.assertNotIn("cancel_requested", event_names(spool, "waiting"))
        self.assertIs(self.index_pool(spool, "default")["paused"], False)
        self.assertTrue(spool.alive())
        drop_control(spool, "ok", {"action": "cancel", "job": "running"})
        self.assertEqual(spool.wait_terminal("running")["state"], "cancelled")

    # -- progress --------------------------------------------------------------

    def test_progress_reported(self):
        spool = self.make_spool()
        gate = os.path.join(spool.base, "gate")
        script = ('printf "42 converting tiles" > "$SPOOLD_PROGRESS_FILE"\n'
                  f'while [ ! -e "{gate}.1" ]; do sleep 0.02; done\n'
                  'printf "77\\n" > "$SPOOLD_PROGRESS_FILE.tmp"\n'
                  'mv "$SPOOLD_PROGRESS_FILE.tmp" "$SPOOLD_PROGRESS_FILE"\n'
                  f'while [ ! -e "{gate}.2" ]; do sleep 0.02; done\n')
        spool.drop_job("prog", script=script)

        def progress_is(value, message):
            def check():
                st = spool.status("prog")
                entry = spool.index()["jobs"]["prog"]
                if st["progress"] == value and entry["progress"] == value \
                        and st.get("progress_message") in message:
                    return st
                return None
            return check
        st = spool.wait_for(progress_is(42, ("converting tiles",)), timeout=5,
                            what="progress 42 with its message in status.json and index.json")
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["progress_message"], "converting tiles")
        with open(gate + ".1", "w"):
            pass
        spool.wait_for(progress_is(77, (None, "")), timeout=5,
                       what="progress 77 without a message")
        with open(gate + ".2", "w"):
            pass
        st = spool.wait_terminal("prog")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertIn(st["state"], TERMINAL)


if __name__ == "__main__":
    unittest.main()
