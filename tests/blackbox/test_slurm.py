"""Slurm pools against a real single-node cluster (issue 8): the same job files,
folders, status, retries, timeouts and cancel as local pools. `make test` starts
the cluster when run as root; then a missing controller fails these tests with
the start script's output. Not root, they skip visibly."""
import os
import shutil
import signal
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run, parse_time, read_json, slurm_start_log_tail

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

    def test_a_jobs_resources_are_asked_of_slurm(self):
        # [resources] becomes --cpus-per-task and --mem (SPEC.md section 5):
        # the job's step sees what Slurm gave it, and scontrol says the same.
        spool = self.slurm_spool()
        spool.drop_job("sized", pool="cluster", resources={"cpus": 1, "memory": "100M"},
                       command=["sh", "-c", "echo cpus=$SLURM_CPUS_PER_TASK mem=$SLURM_MEM_PER_NODE"])
        st = spool.wait_terminal("sized", timeout=60)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["resources"], {"cpus": 1, "memory": 100 << 20, "gpus": 0})
        self.assertIn("cpus=1 mem=100\n", spool.attempt_log("sized"))
        slurm_id = st["attempts"][0]["slurm_job_id"]
        shown = subprocess.run(["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True,
                               timeout=30).stdout.split()
        self.assertIn("CPUs/Task=1", shown)
        self.assertIn("MinMemoryNode=100M", shown)
        # A job that asks for nothing gets no such options: Slurm sets neither.
        spool.drop_job("plain", pool="cluster",
                       command=["sh", "-c", "echo cpus=${SLURM_CPUS_PER_TASK-unset} mem=${SLURM_MEM_PER_NODE-unset}"])
        self.assertEqual(spool.wait_terminal("plain", timeout=60)["state"], "succeeded")
        self.assertIn("cpus=unset mem=unset\n", spool.attempt_log("plain"))

    def test_a_gpu_request_goes_to_slurm_which_may_refuse_it(self):
        # The test cluster has no GPUs (no GRES): sbatch refuses --gres=gpu:1,
        # and the job fails spawn_failed with sbatch's word for it.
        spool = self.slurm_spool()
        spool.drop_job("gpu", pool="cluster", resources={"gpus": 1}, command=["true"])
        st = spool.wait_terminal("gpu", timeout=60)
        self.assertEqual((st["state"], st["reason"]), ("failed", "spawn_failed"), st)
        self.assertIn("gres", st["message"].lower(), st)
        self.assertEqual(st["attempts"][-1].get("slurm_job_id"), None, st)

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

    def test_an_array_runs_each_task_as_its_own_slurm_job_at_most_parallel_at_once(self):
        # spoold, not Slurm, decides when a task starts (SPEC.md section 5):
        # each task is one sbatch, submitted when spoold starts the task.
        spool = self.slurm_spool()
        gate = os.path.join(spool.base, "gate")
        os.mkdir(gate)
        # Tasks 0 and 1 wait for each other (both ran at once); task 2 may
        # start only when one of them has ended (parallel = 2).
        script = ('echo "$SPOOLD_JOB_ID $SPOOLD_ARRAY_INDEX $SPOOLD_ARRAY_COUNT" > "$SPOOLD_RESULTS_DIR/who"\n'
                  'if [ "$SPOOLD_ARRAY_INDEX" -lt 2 ]; then\n'
                  '  : > "$GATE/$SPOOLD_ARRAY_INDEX"; n=0\n'
                  '  until [ -e "$GATE/0" ] && [ -e "$GATE/1" ]; do\n'
                  '    n=$((n+1)); [ $n -lt 1200 ] || exit 9; sleep 0.05\n'
                  '  done\n'
                  'fi\n')
        spool.drop_job("sweep", pool="cluster", script=script, env={"GATE": gate},
                       array={"indexes": "0-2", "parallel": 2})
        st = spool.wait_terminal("sweep", timeout=120)
        self.assertEqual((st["state"], st["reason"]), ("succeeded", None), st)
        self.assertEqual(st["tasks"], {"total": 3, "queued": 0, "running": 0, "succeeded": 3, "failed": 0,
                                       "cancelled": 0}, st)
        tasks = [read_json(os.path.join(spool.job_dir("sweep"), "tasks", str(i), "status.json")) for i in range(3)]
        slurm_ids = []
        for i, t in enumerate(tasks):
            self.assertEqual((t["state"], t["array"], t["array_index"], len(t["attempts"])),
                             ("succeeded", "sweep", i, 1), t)
            slurm_ids.append(t["attempts"][0]["slurm_job_id"])
            self.assertIsNotNone(slurm_ids[-1], t)
            with open(os.path.join(spool.job_dir("sweep"), "tasks", str(i), "results", "who")) as f:
                self.assertEqual(f.read(), f"sweep:{i} {i} 3\n")
            self.assertTrue(os.path.exists(os.path.join(spool.job_dir("sweep"), "tasks", str(i), "attempts", "1",
                                                        "slurm.sh")))
        self.assertEqual(len(set(slurm_ids)), 3, f"one Slurm job per task: {slurm_ids}")
        # Task 2 was submitted once task 0 or 1 had ended, not before.
        first_end = min(parse_time(t["attempts"][0]["finished"]) for t in tasks[:2])
        self.assertGreaterEqual(parse_time(tasks[2]["attempts"][0]["started"]), first_end)
        for slurm_id in slurm_ids:
            self.assertFalse(in_squeue(slurm_id), f"Slurm job {slurm_id} still in squeue")

    def test_daemon_killed_while_array_tasks_run_in_slurm(self):
        # A restarted daemon follows the tasks' Slurm jobs by their recorded
        # ids, submits none twice, and starts the tasks left.
        spool = self.slurm_spool()
        runs = os.path.join(spool.base, "runs")
        spool.drop_job("sweep", pool="cluster", env={"RUNS": runs}, array={"indexes": "0-3", "parallel": 2},
                       command=["sh", "-c", 'echo $SPOOLD_ARRAY_INDEX >> "$RUNS"; sleep 3'])

        def task(i):
            return read_json(os.path.join(spool.job_dir("sweep"), "tasks", str(i), "status.json"))
        spool.wait_for(lambda: all((task(i)["attempts"] or [{}])[-1].get("slurm_job_id") for i in (0, 1)),
                       timeout=60, what="tasks 0 and 1 submitted to Slurm")
        spool.kill()
        spool.start()
        st = spool.wait_terminal("sweep", timeout=120)
        self.assertEqual((st["state"], st["tasks"]["succeeded"]), ("succeeded", 4), st)
        with open(runs) as f:
            self.assertEqual(sorted(f.read().split()), ["0", "1", "2", "3"], "each task ran once")
        for i in range(4):
            t = task(i)
            self.assertEqual((t["state"], len(t["attempts"])), ("succeeded", 1), t)
        for i in (0, 1):
            self.assertIn("recovered", [e["event"] for e in spool.events(f"sweep/tasks/{i}")])


if __name__ == "__main__":
    unittest.main()
