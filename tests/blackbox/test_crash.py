"""Crash safety (SPEC.md section 9): SIGKILL the daemon at random moments during
intake and while jobs run; no accepted job may be lost, torn or run twice at once.

Set SPOOLD_CRASH_SEED to replay a failing run (the seed is printed)."""
import json
import os
import random
import sys
import threading
import time
import unittest

from harness import SpoolTestMixin, TERMINAL, read_bytes
from harness_sched import flock_guarded


def guarded_script(base, job_id, seconds):
    """A job that records each run and notices a second copy of itself running:
    the flock is held by the job's processes for as long as any of them live."""
    return flock_guarded(f"{base}/locks/{job_id}", job_id, f"{base}/concurrent.log",
                         f'echo "$SPOOLD_ATTEMPT" >> "{base}/runs/{job_id}"\n'
                         f"sleep {seconds}\n")


class CrashTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        self.seed = int(os.environ.get("SPOOLD_CRASH_SEED", time.time_ns() % 2**31))
        print(f"\nSPOOLD_CRASH_SEED={self.seed}", file=sys.stderr)
        self.rng = random.Random(self.seed)

    def prepare(self, spool):
        os.makedirs(os.path.join(spool.base, "locks"), exist_ok=True)
        os.makedirs(os.path.join(spool.base, "runs"), exist_ok=True)

    def check_after_kill(self, spool, dropped, when):
        """Every dropped job is still in incoming/ or has a complete job folder."""
        incoming = {os.fsdecode(n) for n in spool.incoming()}
        for job_id, data in dropped.items():
            folder = spool.job_dir(job_id)
            in_incoming = f"{job_id}.toml" in incoming
            if not os.path.isdir(folder):
                self.assertTrue(in_incoming,
                                f"{when}: job {job_id} lost: neither in incoming/ nor "
                                f"in jobs/ (rejected: {spool.rejected()})")
                continue
            where = f"{when}: jobs/{job_id}/"
            with open(os.path.join(folder, "job.toml"), "rb") as f:
                self.assertEqual(f.read(), data, f"{where}job.toml")
            with open(os.path.join(folder, "status.json"), "rb") as f:
                st = json.loads(f.read())
            self.assertEqual(st["id"], job_id, where)
            with open(os.path.join(folder, "events.jsonl"), "rb") as f:
                raw = f.read()
            self.assertTrue(raw.endswith(b"\n"), f"{where}events.jsonl torn: {raw[-200:]!r}")
            events = [json.loads(line) for line in raw.splitlines()]
            self.assertIn("accepted", [e["event"] for e in events], where)

    def test_kill_during_intake(self):
        spool = self.make_spool(workers=2)
        self.prepare(spool)
        dropped = {}
        windows = [(0.0, 0.05), (0.05, 0.15), (0.15, 0.35)]
        for rnd, (lo, hi) in enumerate(windows):
            ids = [f"r{rnd}-{n:02d}" for n in range(10)]
            gaps = [self.rng.uniform(0.005, 0.03) for _ in ids]
            delay = self.rng.uniform(lo, hi)

            def dropper():
                for job_id, gap in zip(ids, gaps):
                    text = f'script = {json.dumps(guarded_script(spool.base, job_id, 0.2))}\n'
                    dropped[job_id] = text.encode()
                    spool.drop(f"{job_id}.toml", text)
                    time.sleep(gap)
            thread = threading.Thread(target=dropper)
            thread.start()
            time.sleep(delay)  # the random moment of the crash
            spool.kill()
            before_kill = [i for i in ids if i in dropped]
            thread.join()
            self.check_after_kill(spool, dropped, f"round {rnd} (kill after {delay:.3f}s)")
            taken = [i for i in before_kill if os.path.isdir(spool.job_dir(i))]
            print(f"round {rnd}: killed after {delay:.3f}s; {len(before_kill)} of {len(ids)} "
                  f"dropped by then, {len(taken)} of those taken in", file=sys.stderr)
            spool.start()
            spool.wait_for(lambda: not spool.jobs_leftovers(), timeout=5,
                           what=f"round {rnd}: no temporary entries left in jobs/ after "
                                f"restart ({spool.jobs_leftovers()})")
            self.check_after_kill(spool, dropped, f"round {rnd} after restart")

        for job_id in dropped:
            spool.wait_terminal(job_id, timeout=60)
        spool.wait_for(lambda: spool.incoming() == [], what="incoming/ emptied")
        self.assertEqual(spool.rejected(), [], "no dropped job may be rejected")
        jobs = sorted(n for n in os.listdir(spool.path("jobs")))
        self.assertEqual(jobs, sorted(dropped), "every job exists exactly once")
        for job_id in dropped:
            st = spool.status(job_id)
            self.assert_status_complete(st, job_id)
            ok = st["state"] == "succeeded" or (st["state"] == "failed"
                                                and st["reason"] == "interrupted")
            self.assertTrue(ok, f"{job_id}: {st['state']}/{st['reason']}: {st}")
            self.assert_events_wellformed(spool.events(job_id), job_id)
            accepted = [e for e in spool.events(job_id) if e["event"] == "accepted"]
            self.assertEqual(len(accepted), 1, f"{job_id} accepted once")
        concurrent = os.path.join(spool.base, "concurrent.log")
        self.assertFalse(os.path.exists(concurrent),
                         "a job ran twice at the same time: "
                         + (read_bytes(concurrent).decode() if os.path.exists(concurrent) else ""))

    def test_kill_while_running_no_double_run(self):
        # After a crash the job's previous run may still be alive (it is in its own
        # session); the next daemon must not start it again alongside that run.
        spool = self.make_spool(workers=2)
        self.prepare(spool)
        spool.drop_job("long", script=guarded_script(spool.base, "long", 3))
        spool.drop_job("short", script=guarded_script(spool.base, "short", 0.5))
        spool.wait_state("long", "running")
        spool.wait_for(lambda: os.path.exists(os.path.join(spool.base, "runs", "long")),
                       what="the long job's first run started")
        spool.kill()
        spool.start()
        for job_id in ("long", "short"):
            st = spool.wait_terminal(job_id, timeout=30)
            ok = st["state"] == "succeeded" or (st["state"] == "failed"
                                                and st["reason"] == "interrupted")
            self.assertTrue(ok, st)
        st = spool.status("long")
        self.assertEqual(st["state"], "succeeded", st)
        # Its supervisor ran it on; the next daemon adopted it: one attempt.
        self.assertEqual([a["reason"] for a in st["attempts"]], [None], st)
        self.assertIn("adopted", [e["event"] for e in spool.events("long")])
        concurrent = os.path.join(spool.base, "concurrent.log")
        self.assertFalse(os.path.exists(concurrent),
                         "a job ran twice at the same time after the crash")
        self.assertEqual(spool.job_processes(), [], "no job process left running")

    def test_interrupted_three_times_fails(self):
        spool = self.make_spool(workers=1)
        self.prepare(spool)
        spool.drop_job("doomed", script=guarded_script(spool.base, "doomed", 30))
        runs = os.path.join(spool.base, "runs", "doomed")
        for n in range(1, 4):
            spool.wait_for(lambda: os.path.exists(runs) and
                           len(read_bytes(runs).split()) >= n,
                           what=f"run {n} of the job started")
            spool.stop_with_jobs()
            if n < 3:
                spool.start()
        spool.start()
        st = spool.wait_terminal("doomed")
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "interrupted", st)
        self.assertIn(st["state"], TERMINAL)


if __name__ == "__main__":
    unittest.main()
