"""The kill loop (issue 3): many short jobs, the daemon SIGKILLed at random
moments about ten times and restarted each time. Afterwards every job must be
terminal, none lost, no job's runs may have overlapped, status.json's seq never
went back, index.json must agree with the job folders, and nothing half-made or
still running may be left.

Set SPOOLD_KILLLOOP_SEED to replay a failing run (the seed is printed)."""
import json
import os
import random
import sys
import time
import unittest

from harness import SpoolTestMixin, TERMINAL
from harness_sched import OrphanReaper, describe_pids, flock_guarded, kill_unreleased_helpers

JOBS = 120
KILLS = 10


# Each run takes the job's lock (held by its processes for as long as any of
# them lives, so a second run alongside is caught even across a daemon crash),
# then records its start and end with its pid and the attempt number.
def run_script(base, job_id, seconds):
    runs = f"{base}/runs/{job_id}"
    return flock_guarded(f"{base}/locks/{job_id}", f"{job_id} $SPOOLD_ATTEMPT $$", f"{base}/concurrent.log",
                         f'echo "S $SPOOLD_ATTEMPT $$ $(date +%s%N)" >> "{runs}"\n'
                         f"sleep {seconds}\n"
                         f'echo "E $SPOOLD_ATTEMPT $$ $(date +%s%N)" >> "{runs}"\n')


class KillLoopTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        self.seed = int(os.environ.get("SPOOLD_KILLLOOP_SEED", time.time_ns() % 2**31))
        print(f"\nSPOOLD_KILLLOOP_SEED={self.seed}", file=sys.stderr)
        self.rng = random.Random(self.seed)
        self.half_made = []
        self.seen = {}  # job id -> (seq, fingerprint) of the last observation

    def observe(self, spool, ids, when):
        """Reads every existing status.json: never torn, seq never goes back, and
        grows whenever the content changed."""
        for job_id in ids:
            path = os.path.join(spool.job_dir(job_id), "status.json")
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                continue
            try:
                st = json.loads(raw)
            except ValueError:
                self.fail(f"{when}: jobs/{job_id}/status.json torn: {raw[:300]!r}")
            fingerprint = json.dumps({k: v for k, v in st.items() if k != "seq"},
                                     sort_keys=True)
            if job_id in self.seen:
                seq, old = self.seen[job_id]
                self.assertGreaterEqual(st["seq"], seq,
                                        f"{when}: jobs/{job_id} seq went back: {seq} -> "
                                        f"{st['seq']}")
                if fingerprint != old:
                    self.assertGreater(st["seq"], seq,
                                       f"{when}: jobs/{job_id} changed without a new seq")
            self.seen[job_id] = (st["seq"], fingerprint)

    def runs(self, spool, job_id):
        """[(attempt, pid, start_ns, end_ns or None)] from the job's run log."""
        path = os.path.join(spool.base, "runs", job_id)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            lines = [line.split() for line in f.read().splitlines()]
        runs = {}
        order = []
        for kind, attempt, pid, stamp in lines:
            key = int(pid)
            if kind == "S":
                runs[key] = [int(attempt), key, int(stamp), None]
                order.append(key)
            else:
                self.assertIn(key, runs, f"{job_id}: end without start: {lines}")
                runs[key][3] = int(stamp)
        return [tuple(runs[k]) for k in order]

    def restart(self, spool, k):
        try:
            spool.start()
        except AssertionError as exc:  # it names the processes holding spoold.lock
            self.fail(f"restart after kill {k} failed: {exc}")

    def tmp_entries(self, spool):
        found = set()
        for name in spool.jobs_leftovers():
            try:
                found.add((name, os.lstat(spool.path("jobs", name)).st_ino))
            except FileNotFoundError:
                pass
        return found

    def test_kill_loop(self):
        started = time.monotonic()
        spool = self.make_spool(config={
            "pools": {"default": {"workers": 2, "queue_limit": 1000}}})
        # Killed jobs are reparented; reap them as a prompt init would.
        reaper = OrphanReaper(lambda: [p.pid for p in spool.procs])
        self.addCleanup(reaper.stop)
        self.addCleanup(kill_unreleased_helpers, spool)
        for folder in ("locks", "runs"):
            os.makedirs(os.path.join(spool.base, folder))
        ids = [f"k{n:03d}" for n in range(JOBS)]
        for job_id in ids:
            seconds = self.rng.choice(("0.05", "0.1", "0.2", "0.3"))
            spool.drop_job(job_id, script=run_script(spool.base, job_id, seconds))

        restart_times = []
        for k in range(KILLS):
            time.sleep(self.rng.uniform(0.2, 1.2))  # the random moment of the crash
            self.observe(spool, ids, f"before kill {k}")
            spool.kill()
            self.observe(spool, ids, f"after kill {k}")
            half_made = self.tmp_entries(spool)
            self.half_made += sorted(name for name, _ in half_made)
            t = time.monotonic()
            self.restart(spool, k)
            restart_times.append(time.monotonic() - t)
            # The new daemon may be taking in the same file again under the same
            # name: the entry left by the crash is known by its inode.
            spool.wait_for(lambda: not (half_made & self.tmp_entries(spool)), timeout=5,
                           what=f"kill {k}: half-made job folders {half_made} removed")
        print(f"half-made job folders found after kills: {self.half_made}", file=sys.stderr)
        print(f"restarts took {', '.join(f'{t:.2f}' for t in restart_times)} s",
              file=sys.stderr)

        deadline = started + 80
        for job_id in ids:
            spool.wait_for(lambda: (spool.status(job_id)["state"] in TERMINAL),
                           timeout=max(1.0, deadline - time.monotonic()),
                           what=f"job {job_id} terminal")
            self.observe(spool, [job_id], "at the end")
        spool.wait_for(lambda: spool.incoming() == [], what="incoming/ emptied")

        self.assertEqual(spool.rejected(), [], "no job may be rejected")
        self.assertEqual(sorted(os.listdir(spool.path("jobs"))), ids,
                         "every job exists exactly once, nothing half-made")
        concurrent = os.path.join(spool.base, "concurrent.log")
        self.assertFalse(os.path.exists(concurrent),
                         "a job ran twice at the same time: " +
                         (open(concurrent).read() if os.path.exists(concurrent) else ""))

        interrupted_out = []
        total_interruptions = 0
        for job_id in ids:
            st = spool.status(job_id)
            self.assert_status_complete(st, job_id)
            events = spool.events(job_id)
            self.assert_events_wellformed(events, job_id)
            names = [e["event"] for e in events]
            self.assertEqual(names.count("accepted"), 1, f"{job_id}: {names}")
            total_interruptions += st.get("interruptions", 0)
            if st["state"] == "failed" and st["reason"] == "interrupted":
                self.assertEqual(st.get("interruptions"), 3, st)
                interrupted_out.append(job_id)
            else:
                self.assertEqual(st["state"], "succeeded",
                                 f"{job_id}: {st['state']}/{st['reason']}: {st}")
            reasons = [a["reason"] for a in st["attempts"]]
            self.assertEqual(reasons.count("interrupted"), st.get("interruptions", 0), st)
            runs = self.runs(spool, job_id)
            self.assertLessEqual(len(runs), len(st["attempts"]),
                                 f"{job_id}: more runs than recorded attempts: {runs} {st}")
            if st["state"] == "succeeded":
                self.assertTrue(runs and runs[-1][3] is not None,
                                f"{job_id}: its last run completed: {runs}")
                self.assertEqual(runs[-1][0], st["attempt"],
                                 f"{job_id}: the last run is the last attempt: {runs} {st}")
            for a, b in zip(runs, runs[1:]):
                if a[3] is not None:
                    self.assertLessEqual(a[3], b[2],
                                         f"{job_id}: runs overlapped in time: {runs}")
                self.assertNotEqual(a[1], b[1], f"{job_id}: {runs}")
        print(f"{total_interruptions} interruptions in all; failed as interrupted: "
              f"{interrupted_out or 'none'}", file=sys.stderr)

        def index_agrees():
            index = spool.index()
            if sorted(index["jobs"]) != ids:
                return False
            for job_id in ids:
                st = spool.status(job_id)
                entry = index["jobs"][job_id]
                for key in ("state", "reason", "pool", "attempt", "exit_code", "priority",
                            "created", "started", "finished"):
                    if entry.get(key) != st[key]:
                        raise ValueError(f"index.json {job_id}.{key} = {entry.get(key)!r}, "
                                         f"status.json has {st[key]!r}")
            pool = index["pools"]["default"]
            return pool["running"] == 0 and pool["queued"] == 0
        spool.wait_for(index_agrees, timeout=5, what="index.json agrees with status.json")
        self.assertEqual(spool.jobs_leftovers(), [])
        left = spool.job_processes()
        self.assertEqual(left, [], f"job processes left running: {describe_pids(left)}")
        self.assertLess(time.monotonic() - started, 90)


if __name__ == "__main__":
    unittest.main()
