"""Slurm commands never stall the daemon (issue 8, found in review): sbatch and
scancel run in the thread pool. Driven with stand-in sbatch, squeue and scancel
scripts (SPOOLD_SLURM_BIN_DIR), so that a submission can be held for as long as
the test wants; no Slurm cluster is needed."""
import os
import textwrap
import unittest

from harness import SpoolTestMixin
from harness_sched import cmdline, proc_stat

SLURM_ID = "4242"


class SlurmCommandsTest(SpoolTestMixin, unittest.TestCase):

    def fake_slurm(self, spool):
        """Stand-ins: sbatch logs its call and answers only once `release`
        exists; scancel logs its call, and answers only after a squeue
        reported the job cancelled, or after 10 s (as a busy controller may);
        squeue says RUNNING until a scancel."""
        bindir = os.path.join(spool.base, "fake-slurm")
        os.makedirs(bindir)
        self.calls = os.path.join(bindir, "calls.log")
        self.release = os.path.join(bindir, "release")
        cancelled = os.path.join(bindir, "cancelled")
        seen = os.path.join(bindir, "cancel-seen")
        scripts = {
            "sbatch": f"""\
                echo "sbatch $*" >> {self.calls}
                while [ ! -e {self.release} ]; do sleep 0.05; done
                echo {SLURM_ID}
                """,
            "scancel": f"""\
                echo "scancel $*" >> {self.calls}
                touch {cancelled}
                i=0
                while [ ! -e {seen} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
                sleep 0.5
                """,
            "squeue": f"""\
                if [ -e {cancelled} ]; then echo "{SLURM_ID}|CANCELLED|None|0:15|"; touch {seen};
                else echo "{SLURM_ID}|RUNNING|None|0:0|"; fi
                """,
        }
        for name, body in scripts.items():
            path = os.path.join(bindir, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + textwrap.dedent(body))
            os.chmod(path, 0o755)
        return bindir

    def calls_made(self):
        try:
            with open(self.calls) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def slurm_spool(self):
        spool = self.make_spool(start=False, config={"pools": {
            "default": {"workers": 2},
            "cluster": {"executor": "slurm", "workers": 2, "slurm": {"partition": "debug"}}}})
        spool.env["SPOOLD_SLURM_BIN_DIR"] = self.fake_slurm(spool)
        spool.start()
        return spool

    def test_a_slow_sbatch_does_not_hold_up_local_jobs(self):
        spool = self.slurm_spool()
        spool.drop_job("remote", pool="cluster", command=["true"])
        spool.wait_for(lambda: any(c.startswith("sbatch ") for c in self.calls_made()),
                       what="sbatch called")
        # sbatch has not answered, and will not until the local job is done.
        spool.drop_job("local", command=["true"])
        st = spool.wait_terminal("local")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.status("remote")["attempts"][0]["slurm_job_id"], None,
                         "the submission was still under way")
        with open(self.release, "w"):
            pass
        # The event is appended at once; status.json is replaced at the end of
        # that loop turn.
        spool.wait_for(lambda: spool.status("remote")["attempts"][0]["slurm_job_id"] == SLURM_ID,
                       what="the Slurm job id in status.json")

    def test_a_slurm_command_holds_none_of_the_daemons_descriptors(self):
        # A command runs under a supervisor process cloned from the daemon,
        # which never execs. Had it kept the daemon's descriptors, it would
        # keep the pipes of a command started beside it in another thread open:
        # a poll would wait for a slow sbatch or scancel to end (up to 30 s).
        spool = self.slurm_spool()
        spool.drop_job("remote", pool="cluster", command=["true"])
        spool.wait_for(lambda: any(c.startswith("sbatch ") for c in self.calls_made()),
                       what="sbatch called")
        script = os.fsencode(os.path.join(spool.base, "fake-slurm", "sbatch"))
        shells = [int(e) for e in os.listdir("/proc")
                  if e.isdigit() and script in (cmdline(int(e)) or b"").split(b"\0")]
        # Its shell, not a child it forked for `sleep` that has not exec'd yet.
        sbatch = [pid for pid in shells if (proc_stat(pid) or (None, None))[1] not in shells]
        self.assertEqual(len(sbatch), 1, f"the stand-in sbatch runs: {shells}")
        supervisor = proc_stat(sbatch[0])[1]
        self.assertEqual(proc_stat(supervisor)[1], spool.proc.pid, "sbatch's parent is the daemon's child")
        fd_dir = f"/proc/{supervisor}/fd"
        held = {int(fd): os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
        others = {fd: target for fd, target in held.items()
                  if fd > 2 and not target.startswith("pipe:") and target != "/dev/null"}
        self.assertEqual(others, {}, "descriptors of the daemon held by the supervisor")
        self.assertLessEqual(len([fd for fd in held if fd > 2]), 5,
                             f"its /dev/null and four pipe ends, no more: {held}")
        with open(self.release, "w"):
            pass
        spool.wait_event("remote", "submitted")

    def test_a_cancel_while_sbatch_runs_cancels_what_it_submitted(self):
        spool = self.slurm_spool()
        spool.drop_job("remote", pool="cluster", command=["sleep", "600"])
        spool.wait_for(lambda: any(c.startswith("sbatch ") for c in self.calls_made()),
                       what="sbatch called")
        spool.drop("stop.json", '{"action": "cancel", "job": "remote"}', folder="control")
        spool.wait_event("remote", "cancel_requested")
        with open(self.release, "w"):
            pass
        st = spool.wait_terminal("remote")
        self.assertEqual(st["state"], "cancelled", st)
        self.assertEqual(st["reason"], "cancelled_by_user", st)
        self.assertIn(f"scancel {SLURM_ID}", self.calls_made(), "what sbatch submitted was cancelled")
        events = [e["event"] for e in spool.events("remote")]
        self.assertLess(events.index("submitted"), events.index("kill_sent"), events)


if __name__ == "__main__":
    unittest.main()
