"""Slurm pools against a real single-node cluster (issue 8): the same job files,
folders, status, retries, timeouts and cancel as local pools. `make test` starts
the cluster when run as root; then a missing controller fails these tests with
the start script's output. Not root, they skip visibly."""
import os
import shutil
import signal
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run, slurm_start_log_tail

PARTITION = os.environ.get("SLURM_LOCAL_PARTITION", "debug")


def controller_up():
    if shutil.which("scontrol") is None:
        return False
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15).stdout
    except subprocess.TimeoutExpired:
        return False
    return " is UP" in out


def in_squeue(job_id):
    out = subprocess.run(["squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING", "--jobs", job_id,
                          "--format=%i"], capture_output=True, text=True, timeout=30).stdout
    return job_id in out.split()


class SlurmTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        if not controller_up():
            cannot_run(self, "no Slurm cluster answers `scontrol ping` (as root, `make test` starts one "
                             "with tests/slurm/live-cluster.sh; by hand: sudo tests/slurm/start-cluster.sh)\n"
                             + slurm_start_log_tail())

    def slurm_spool(self):
        spool = self.make_spool(config={"pools": {"cluster": {
            "executor": "slurm", "workers": 4, "slurm": {"partition": PARTITION}}}})
        os.chmod(spool.base, 0o755)
        return spool

    def test_success_with_stdout_in_the_attempt_log(self):
        spool = self.slurm_spool()
        spool.drop_job("hello", pool="cluster", command=["sh", "-c", "echo from-slurm $SPOOLD_JOB_ID; echo r > out.txt"])
        st = spool.wait_terminal("hello", timeout=60)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertIsNotNone(st["attempts"][0]["slurm_job_id"])
        self.assertIn("from-slurm hello", spool.attempt_log("hello"))
        self.assertTrue(os.path.exists(os.path.join(spool.job_dir("hello"), "results", "out.txt")))
        self.assertIn("submitted", [e["event"] for e in spool.events("hello")])

    def test_nonzero_exit_is_retried(self):
        spool = self.slurm_spool()
        spool.drop_job("flaky", pool="cluster", retry={"attempts": 1, "delay": "1s"},
                       command=["sh", "-c", "test -e tried && exit 0; touch tried; exit 3"])
        st = spool.wait_terminal("flaky", timeout=90)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual([a["exit_code"] for a in st["attempts"]], [3, 0])
        self.assertEqual(st["attempts"][0]["reason"], "nonzero_exit")
        self.assertNotEqual(st["attempts"][0]["slurm_job_id"], st["attempts"][1]["slurm_job_id"])

    def test_timeout_is_enforced_with_scancel(self):
        spool = self.slurm_spool()
        spool.drop_job("slow", pool="cluster", timeout="3s", command=["sleep", "300"])
        st = spool.wait_terminal("slow", timeout=90)
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "timeout")
        self.assertFalse(in_squeue(st["attempts"][0]["slurm_job_id"]), "the Slurm job still runs")

    def test_cancel_of_a_running_job(self):
        spool = self.slurm_spool()
        spool.drop_job("long", pool="cluster", command=["sleep", "300"])
        spool.wait_for(lambda: (spool.status("long")["attempts"] or [{}])[-1].get("slurm_job_id"),
                       timeout=60, what="submitted to Slurm")
        spool.drop("c.json", '{"action": "cancel", "job": "long"}', folder="control")
        st = spool.wait_terminal("long", timeout=90)
        self.assertEqual(st["state"], "cancelled", st)
        self.assertFalse(in_squeue(st["attempts"][0]["slurm_job_id"]), "the Slurm job still runs")

    def test_environment_with_commas_and_spaces(self):
        spool = self.slurm_spool()
        value = "a,b c, 'd' \"e\" $HOME `x`"
        spool.drop_job("env", pool="cluster", env={"TRICKY": value},
                       command=["sh", "-c", 'printf "%s" "$TRICKY" > "$SPOOLD_RESULTS_DIR/tricky"'])
        st = spool.wait_terminal("env", timeout=60)
        self.assertEqual(st["state"], "succeeded", st)
        with open(os.path.join(spool.job_dir("env"), "results", "tricky")) as f:
            self.assertEqual(f.read(), value)

    def test_dependencies_decide_when_slurm_jobs_are_submitted(self):
        # spoold, not Slurm, decides when a dependent starts (SPEC.md section 5):
        # a waiting job is submitted with sbatch only once its parents ended.
        spool = self.slurm_spool()
        spool.drop_job("child", pool="cluster", after=["parent"])
        spool.drop_job("local-child", after=["parent"])
        spool.drop_job("on-failure", pool="cluster", fmt="json", after=[{"job": "parent", "on": "failure"}])
        spool.drop_job("parent", pool="cluster", command=["sh", "-c", "sleep 2"])
        spool.wait_accepted("parent")
        for job in ("child", "local-child", "on-failure"):
            self.assertEqual(spool.status(job)["reason"], "dependency", job)
        parent = spool.wait_terminal("parent", timeout=90)
        self.assertEqual(parent["state"], "succeeded", parent)
        for job in ("child", "local-child"):
            st = spool.wait_terminal(job, timeout=90)
            self.assertEqual(st["state"], "succeeded", st)
            self.assertGreaterEqual(st["attempts"][0]["started"], parent["finished"], job)
        self.assertIsNotNone(spool.status("child")["attempts"][0]["slurm_job_id"])
        st = spool.wait_terminal("on-failure", timeout=30)
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertNotIn("submitted", [e["event"] for e in spool.events("on-failure")])

    def test_daemon_killed_while_a_slurm_job_runs(self):
        spool = self.slurm_spool()
        spool.drop_job("survivor", pool="cluster",
                       command=["sh", "-c", "sleep 4; echo run >> \"$SPOOLD_RESULTS_DIR/runs\""])
        spool.wait_for(lambda: (spool.status("survivor")["attempts"] or [{}])[-1].get("slurm_job_id"),
                       timeout=60, what="submitted to Slurm")
        spool.kill()
        spool.start()
        st = spool.wait_terminal("survivor", timeout=90)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(st["attempts"]), 1, "the job was submitted again")
        with open(os.path.join(spool.job_dir("survivor"), "results", "runs")) as f:
            self.assertEqual(f.read(), "run\n", "the job ran more than once")
        self.assertIn("recovered", [e["event"] for e in spool.events("survivor")])


if __name__ == "__main__":
    unittest.main()
