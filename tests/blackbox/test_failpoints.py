"""The promises of SPEC.md section 9, proven at every step (issue 6 item 1).

For each failpoint, a test build of spoold runs a small mixed workload with that
point armed, dies there by SIGKILL, is restarted without it, and then every
invariant is checked from the files alone: no accepted job lost, no job run
twice at the same time, only legal transitions with growing seq, the index
equal to the folders, every rejected file with its error file, no temp files.
"""
import json
import os
import re
import signal
import subprocess
import unittest

from harness import SpoolTestMixin, TERMINAL, cannot_run, job_toml, spoold_bin

LEGAL = {("queued", "running"), ("queued", "queued"), ("running", "queued"),
         ("running", "succeeded"), ("running", "failed"), ("running", "cancelled"),
         ("queued", "failed"), ("queued", "cancelled")}

# Each run takes an exclusive lock on a file of its job: a second run of the
# same job while the first still runs cannot get it and says so.
RUN = ("exec 9>>\"$SPOOLD_JOB_DIR/results/lock\"; "
       "flock -n 9 || echo OVERLAP >> \"$SPOOLD_RESULTS_DIR/runs\"; "
       "echo start >> \"$SPOOLD_RESULTS_DIR/runs\"; sleep 0.3; "
       "echo end >> \"$SPOOLD_RESULTS_DIR/runs\"")
FLAKY = ("test -e \"$SPOOLD_RESULTS_DIR/tried\" && exit 0; "
         "touch \"$SPOOLD_RESULTS_DIR/tried\"; exit 3")


def compiled_with_failpoints():
    out = subprocess.run([spoold_bin(), "--version"], capture_output=True, text=True).stdout
    return "(failpoints)" in out


class FailpointsTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        if not compiled_with_failpoints():
            cannot_run(self, "this spoold was built without -DSPOOLD_FAILPOINTS=ON")

    def workload(self, spool):
        jobs = []
        for n in range(4):
            spool.drop_job(f"run{n}", command=["sh", "-c", RUN])
            jobs.append(f"run{n}")
        spool.drop_job("flaky", command=["sh", "-c", FLAKY], retry={"attempts": 2, "delay": "200ms"})
        jobs.append("flaky")
        spool.drop_job("jsonjob", fmt="json", command=["sh", "-c", RUN])
        jobs.append("jsonjob")
        spool.drop("bad.toml", "command = 3\n")
        return jobs

    def crash_at(self, point):
        spool = self.make_spool(start=False, workers=2)
        spool.env["SPOOLD_FAILPOINTS"] = f"{point}=kill"
        spool.start(wait_ready=not point.startswith("index.") and not point.startswith("atomic."))
        jobs = None
        try:
            jobs = self.workload(spool)
        except OSError:
            pass  # the daemon may have died before the folders were all there
        try:
            spool.proc.wait(timeout=30)
        except Exception:
            self.fail(f"failpoint {point} was never reached\n{spool.log_tail()}")
        self.assertEqual(spool.proc.returncode, -9, f"{point}: the daemon did not die by SIGKILL")
        self.assertIn(f"failpoint {point} fired", spool.log_text())
        del spool.env["SPOOLD_FAILPOINTS"]
        spool.start()
        if jobs is None:
            jobs = self.workload(spool)
        self.check_invariants(spool, jobs, point)

    def check_invariants(self, spool, jobs, point):
        for job_id in jobs:
            st = spool.wait_terminal(job_id, timeout=30)
            self.assertEqual(st["state"], "succeeded", f"{point}: {job_id} {st}")
        spool.wait_for(lambda: os.path.exists(spool.path("rejected", "bad.toml.error.json")) and
                       os.path.exists(spool.path("rejected", "bad.toml")),
                       what=f"{point}: the rejected file with its error file")
        # Every refused file has its reason, and every reason its file.
        rejected = set(os.listdir(spool.path("rejected")))
        for name in rejected:
            other = name[:-len(".error.json")] if name.endswith(".error.json") else name + ".error.json"
            self.assertIn(other, rejected, f"{point}: {name} alone in rejected/")
        for job_id in jobs:
            runs_path = os.path.join(spool.job_dir(job_id), "results", "runs")
            runs = ""
            if os.path.exists(runs_path):
                with open(runs_path) as f:
                    runs = f.read()
            self.assertNotIn("OVERLAP", runs, f"{point}: two runs of {job_id} overlapped")
            events = spool.events(job_id)
            seqs = [e["seq"] for e in events]
            self.assertEqual(seqs, sorted(set(seqs)), f"{point}: {job_id} event seq not increasing")
            st = spool.status(job_id)
            # An event may follow the last status write (SPEC.md section 4: one
            # counter; a reader of status.json takes the larger): the
            # `duplicate_ignored` of a dropped file taken in again after a crash
            # at intake.after_commit, once its job has ended. Every other event
            # comes with a status write.
            changing = [e["seq"] for e in events if e["event"] != "duplicate_ignored"]
            self.assertGreaterEqual(st["seq"], changing[-1], f"{point}: {job_id} status seq behind its events")
            for e in events:
                if "from" in e and "state" in e:
                    self.assertIn((e["from"], e["state"]), LEGAL, f"{point}: {job_id} illegal {e}")
        # The index agrees with the folders, once it has caught up.
        def agrees():
            index = spool.index().get("jobs", {})
            return set(index) == set(os.listdir(spool.path("jobs"))) and all(
                index[j]["state"] == spool.status(j)["state"] for j in index)
        spool.wait_for(agrees, timeout=5, what=f"{point}: index.json equal to the folders")
        # Stopped first: a running daemon rewrites index.json and
        # index.active.json through temporary names every second, and a walk
        # could meet one of those mid-write (as it did under load).
        spool.stop()
        leftovers = []
        for folder, dirs, files in os.walk(spool.root):
            leftovers += [os.path.join(folder, n) for n in dirs + files if re.match(r"^\..*\.tmp$", n)]
        self.assertEqual(leftovers, [], f"{point}: temp files left")
        self.assertEqual([n for n in os.listdir(spool.path("incoming"))], [], f"{point}: incoming/ not emptied")

    def test_intake_points(self):
        for point in ("intake.after_read", "commit.before_rename", "commit.after_rename",
                      "intake.after_commit", "reject.after_error_file"):
            with self.subTest(point=point):
                self.crash_at(point)

    def test_attempt_points(self):
        for point in ("attempt.after_spawn", "attempt.before_release", "attempt.after_release",
                      "attempt.after_reap", "attempt.before_finish"):
            with self.subTest(point=point):
                self.crash_at(point)

    def test_write_points(self):
        for point in ("status.before_write", "status.after_write", "events.after_append",
                      "results.before_write", "results.after_write", "index.before_write",
                      "atomic.before_rename"):
            with self.subTest(point=point):
                self.crash_at(point)

    def test_child_waits_until_its_running_state_is_written(self):
        """A status write that fails (a full disk, here injected) keeps the
        helper waiting: the job runs only once status.json says `running`
        with its pid. The job reads its own status.json as its first act."""
        spool = self.make_spool(start=False, workers=1)
        # The accepted job's first status is part of its new folder (not this
        # point); the first status write through it is `running`, after the
        # spawn: that one fails. (Without the gate the job sees `queued`.)
        spool.env["SPOOLD_FAILPOINTS"] = "status.write_fails=fail:1"
        spool.start()
        spool.drop_job("gate", command=["sh", "-c", "cat \"$SPOOLD_JOB_DIR/status.json\" > seen.json; echo $$ > pid"])
        st = spool.wait_terminal("gate")
        self.assertEqual(st["state"], "succeeded", spool.log_tail())
        seen = json.loads(open(os.path.join(spool.job_dir("gate"), "results", "seen.json")).read())
        pid = int(open(os.path.join(spool.job_dir("gate"), "results", "pid")).read())
        self.assertEqual(seen["state"], "running",
                         "the job started before its running state was on disk")
        self.assertEqual(seen["pid"], pid)
        self.assertEqual(st["attempt"], 1)
        self.assertIn("failure injected", spool.log_tail())

    def test_a_folder_rename_that_fails_is_retried(self):
        """The commit rename of a new job folder fails once (an I/O error,
        injected): the job is not lost, not run from its unpublished folder,
        and not taken in twice; the rename is retried and the job runs once."""
        spool = self.make_spool(start=False, workers=1)
        spool.env["SPOOLD_FAILPOINTS"] = "commit.rename_fails=fail:1"
        spool.start()
        spool.drop_job("late", command=["sh", "-c", "echo ran >> runs"])
        st = spool.wait_terminal("late", timeout=20)
        self.assertEqual(st["state"], "succeeded", spool.log_tail())
        self.assertEqual(st["attempt"], 1)
        runs = open(os.path.join(spool.job_dir("late"), "results", "runs")).read()
        self.assertEqual(runs, "ran\n")
        self.assertIn("Input/output error", spool.log_tail())
        spool.wait_for(lambda: not os.listdir(spool.path("incoming")), timeout=5,
                       what="the dropped file removed once the folder is published")
        self.assertEqual(os.listdir(spool.path("rejected")), [])
        accepted = [e for e in spool.events("late") if e["event"] == "accepted"]
        self.assertEqual(len(accepted), 1)

    def test_the_same_file_dropped_again_before_the_first_is_removed_is_not_lost(self):
        # The accepted file is removed from incoming/ only after its job's
        # folder is durable. The same job dropped again under the same name in
        # that moment is a new file: it must stay, and be seen as a duplicate
        # (found by CI: the removal took the new file, and nothing was said).
        spool = self.make_spool(start=False)
        spool.env["SPOOLD_FAILPOINTS"] = "intake.after_commit=stop"
        spool.start()
        data = spool.drop_job("twice", command=["sleep", "0.5"])
        spool.wait_for(lambda: open(f"/proc/{spool.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T",
                       what="the daemon stopped at intake.after_commit")
        spool.drop("twice.toml", data)
        os.kill(spool.proc.pid, signal.SIGCONT)
        spool.wait_event("twice", "duplicate_ignored")
        st = spool.wait_terminal("twice")
        self.assertEqual((st["state"], len(st["attempts"])), ("succeeded", 1), st)
        spool.wait_for(lambda: spool.incoming() == [], what="incoming/ empty")
        self.assertEqual(os.listdir(spool.path("rejected")), [])


if __name__ == "__main__":
    unittest.main()
