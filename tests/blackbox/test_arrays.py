"""Job arrays (`[array]`, SPEC.md section 5) through the real daemon: 10,000
tasks at most `parallel` at a time, each run once, from an intake of a few
files and one index.json entry (the optimized spoold, as in test_load.py);
max_failed and the tasks it never starts; cancel of a task (running or not
started yet) and of the whole array; the SPOOLD_ARRAY_* variables, items, logs
and the array's results.json. `after`, deadlines, queue places, restarts,
retention and retries are test_arrays_lifecycle.py; spoolctl alone (no daemon)
is test_arrays_cli.py; Slurm pools are test_slurm.py."""
import hashlib
import os
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run, parse_time, read_json, stac_validator
from harness_arrays import WAIT_GO, ArraysMixin, counts, ranges, tree
from harness_ctl import SpoolctlMixin, clean_env, spoolctl_bin
from harness_sched import drop_control, pid_alive

# The 10,000-task array, as cheap as a task can be (one sh, no other
# program): each task creates the file `ran` in its own results folder with
# noclobber, so a second run of a task would fail. Tasks 0 to 3 also meet at a
# barrier (each waits until all four have started, then lingers 0.3 s): four
# did run at once, and a daemon that started a fifth meanwhile would show it.
TASK_10K = r'''set -C
: > ran || { echo "task $SPOOLD_ARRAY_INDEX ran before" >&2; exit 9; }
if [ "$SPOOLD_ARRAY_INDEX" -lt 4 ]; then
  : > "$GATE/$SPOOLD_ARRAY_INDEX"
  n=0
  while set -- "$GATE"/*; [ $# -lt 4 ]; do
    n=$((n+1))
    if [ $n -gt 600 ]; then echo "only $# of tasks 0-3 ran at once" >&2; exit 1; fi
    sleep 0.05
  done
  sleep 0.3
fi
'''


def load_binary(test):
    """The optimized, non-sanitized spoold of the load test (SPOOLD_LOAD_BIN,
    which tests/CMakeLists.txt passes to this test as to test_load)."""
    binary = os.environ.get("SPOOLD_LOAD_BIN")
    if not binary:
        cannot_run(test, "SPOOLD_LOAD_BIN is not set: the 10,000-task test needs an optimized, "
                         "non-sanitized spoold (make test passes build/spoold; or configure the test "
                         "build with -DSPOOLD_LOAD_BIN=/path/to/spoold)")
    test.assertTrue(os.access(binary, os.X_OK), f"SPOOLD_LOAD_BIN={binary} is not an executable file")
    return binary


def max_overlap(spans):
    """The most [started, finished] spans that overlap at one instant. The
    daemon records an attempt's `started` before its process runs and its
    `finished` when nothing of it is left (never before), so these spans hold
    the processes' lifetimes. A span that ends at the millisecond another
    starts does not overlap it: the daemon starts a task only after it has
    recorded the end of the one before."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, 0) for _, e in spans])
    most = now = 0
    for _, kind in points:
        now += 1 if kind else -1
        most = max(most, now)
    return most


class ArraysTest(ArraysMixin, SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    # -- 1. 10,000 tasks ---------------------------------------------------------------------

    def test_10000_tasks_four_at_a_time_each_once_from_a_small_intake(self):
        binary = load_binary(self)
        spool = self.make_spool(binary=binary, workers=8)
        spool.wait_for(lambda: spool.index()["jobs"] == {}, what="the first index.json")
        index_empty = os.path.getsize(spool.path("index.json"))
        # One plain held job: what one job writes, and its index entry.
        spool.drop_job("plain", hold=True)
        spool.wait_for(lambda: "plain" in spool.index()["jobs"], what="plain in index.json")
        index_one = os.path.getsize(spool.path("index.json"))
        plain_entries, plain_bytes = tree(spool.job_dir("plain"))

        gate = os.path.join(spool.base, "gate")
        os.mkdir(gate)
        spool.drop_job("sweep", command=["sh", "-c", TASK_10K], hold=True, env={"GATE": gate},
                       array={"indexes": "0-9999", "parallel": 4})
        st = spool.wait_accepted("sweep")
        self.assertEqual((st["state"], st["reason"]), ("queued", "held"), st)
        self.assertEqual(st["tasks"], counts(10000, queued=10000), st)
        spool.wait_for(lambda: "sweep" in spool.index()["jobs"], what="sweep in index.json")
        index_both = os.path.getsize(spool.path("index.json"))

        # Intake: the files of one job, whatever the array's size.
        entries, size = tree(spool.job_dir("sweep"))
        self.assertEqual(self.started(spool, "sweep"), [], "no task folder before the array starts")
        self.assertLessEqual(len(entries), len(plain_entries) + 1, (entries, plain_entries))
        self.assertLess(size, plain_bytes + 1024, (entries, size, plain_bytes))
        # index.json: one entry, about a plain job's (the task counts added).
        self.assertLessEqual(index_both - index_one, (index_one - index_empty) + 200,
                             (index_empty, index_one, index_both))

        self.ctl(spool, "start", "sweep", expect=0)
        st = spool.wait_terminal("sweep", timeout=600)
        self.assertEqual((st["state"], st["reason"]), ("succeeded", None), st)
        self.assertEqual(st["tasks"], counts(10000, succeeded=10000), st)
        self.assertEqual((st["failed_indexes"], st["progress"]), ("", 100), st)
        self.assertEqual(st["message"], "all 10000 tasks succeeded")

        # Each task's folder: succeeded at its first and only attempt, run
        # once (its `ran` file would have failed a second run).
        self.assertEqual(self.started(spool, "sweep"), list(range(10000)))
        spans, wrong = [], []
        for i in range(10000):
            t = self.task(spool, "sweep", i)
            if (t["state"], len(t["attempts"]), t["array_index"]) != ("succeeded", 1, i):
                wrong.append((i, t["state"], len(t["attempts"])))
                continue
            spans.append((parse_time(t["attempts"][0]["started"]), parse_time(t["attempts"][0]["finished"])))
            if not os.path.exists(os.path.join(self.task_dir(spool, "sweep", i), "results", "ran")):
                wrong.append((i, "no results/ran"))
        self.assertEqual(wrong, [], "tasks that did not run once and succeed")
        # Never more than 4 at once; 4 at once at the barrier.
        self.assertEqual(max_overlap(spans), 4, "tasks running at once (parallel = 4)")
        assets = read_json(os.path.join(spool.job_dir("sweep"), "results.json"))["assets"]
        self.assertEqual(sorted(assets), sorted(f"tasks/{i}/ran" for i in range(10000)))

        # index.json still names two jobs, no task.
        spool.wait_for(lambda: spool.index()["jobs"]["sweep"]["state"] == "succeeded", timeout=30,
                       what="index.json showing the array's end")
        index = spool.index()
        self.assertEqual(sorted(index["jobs"]), ["plain", "sweep"])
        self.assertEqual(index["jobs"]["sweep"]["tasks"], counts(10000, succeeded=10000))
        self.assertLessEqual(os.path.getsize(spool.path("index.json")) - index_one,
                             (index_one - index_empty) + 200)
        self.assertEqual(sorted(read_json(spool.path("index.active.json"))["jobs"]), ["plain"])

    # -- 2. max_failed -----------------------------------------------------------------------

    def test_max_failed_stops_starting_tasks_and_the_rest_end_array_halted(self):
        spool = self.make_spool(workers=4)
        runs = os.path.join(spool.base, "runs")
        # Waits for a task that the halt will leave unstarted.
        spool.drop_job("waits19", after=["sweep:19"])
        spool.wait_accepted("waits19")
        # Tasks 4 to 12 fail: 4, 5 and 6 fail first, two at a time, and at
        # most one more was running when the third failure came.
        spool.drop_job("sweep", env={"RUNS": runs},
                       command=["sh", "-c", 'echo $SPOOLD_ARRAY_INDEX >> "$RUNS"; '
                                            'test $SPOOLD_ARRAY_INDEX -lt 4 -o $SPOOLD_ARRAY_INDEX -gt 12'],
                       array={"indexes": "0-19", "parallel": 2, "max_failed": 3})
        st = spool.wait_terminal("sweep", timeout=60)
        ran = self.started(spool, "sweep")
        self.assertIn(ran, [list(range(7)), list(range(8))], "tasks 0 to 6, and 7 if it started before 6 failed")
        failed = [i for i in ran if i >= 4]
        self.assertEqual((st["state"], st["reason"]), ("failed", "tasks_failed"), st)
        self.assertEqual(st["failed_indexes"], ranges(failed), st)
        self.assertEqual(st["tasks"], counts(20, succeeded=4, failed=len(failed), cancelled=20 - len(ran)), st)
        self.assertEqual(st["progress"], 100)
        self.assertIn("max_failed", st["message"])
        self.assert_ran_once_each(runs, ran)
        for i in ran:
            self.assert_task_ended(spool, "sweep", i, *(("failed", "nonzero_exit") if i >= 4 else ("succeeded",)))

        # The tasks never started will not run: the daemon has them cancelled
        # (array_halted). A job waiting for one is decided by that end (then,
        # or when it comes), and a cancel of one is refused as for any ended job.
        child = spool.wait_terminal("waits19")
        self.assertEqual((child["state"], child["reason"]), ("cancelled", "dependency_failed"), child)
        self.assertTrue(child["message"].startswith("parent sweep:19 ended cancelled (array_halted);"), child)
        self.assertLessEqual(parse_time(child["finished"]), parse_time(st["finished"]), "decided at the halt")
        spool.drop_job("after19", after=["sweep:19"])
        child = spool.wait_terminal("after19")
        self.assertEqual((child["state"], child["reason"]), ("cancelled", "dependency_failed"), child)
        self.assertTrue(child["message"].startswith("parent sweep:19 ended cancelled (array_halted);"), child)
        drop_control(spool, "cancel19", {"action": "cancel", "job": "sweep:19"})
        err = spool.wait_rejected("cancel19.json")
        self.assertEqual(err["code"], "invalid_state", err)
        self.assertNotIn(19, self.started(spool, "sweep"), "a refused cancel makes no task folder")
        # spoolctl says why the task has no status of its own.
        proc = self.ctl(spool, "status", "sweep:19")
        self.assertIn("task sweep:19 never started: cancelled (array_halted) with array sweep, which is failed (tasks_failed)", proc.err)

        # The same after a restart: the counts come back from the task folders.
        spool.stop()
        spool.start()
        again = spool.status("sweep")
        self.assertEqual((again["state"], again["tasks"], again["failed_indexes"]),
                         (st["state"], st["tasks"], st["failed_indexes"]))
        spool.drop_job("after18", after=["sweep:18"])
        child = spool.wait_terminal("after18")
        self.assertTrue(child["message"].startswith("parent sweep:18 ended cancelled (array_halted);"), child)
        self.assertEqual(self.started(spool, "sweep"), ran)
        self.assert_ran_once_each(runs, ran)

    def test_tasks_running_at_the_halt_run_to_their_end(self):
        spool = self.make_spool(workers=4)
        go, env = self.gated(spool)
        # Task 0 fails once task 1 runs; task 1 waits for $GO.
        spool.drop_job("halt", env=env, array={"indexes": "0-9", "parallel": 2, "max_failed": 1},
                       command=["sh", "-c", 'if [ $SPOOLD_ARRAY_INDEX -eq 0 ]; then '
                                            'n=0; while [ ! -e "$SPOOLD_JOB_DIR/../1/status.json" ]; do '
                                            'n=$((n+1)); [ $n -lt 1200 ] || exit 99; sleep 0.05; done; '
                                            f'exit 1; fi; {WAIT_GO}'])
        spool.wait_for(lambda: spool.status("halt")["tasks"] == counts(10, running=1, failed=1, cancelled=8),
                       what="the array halted with task 1 running")
        self.assertEqual(self.task(spool, "halt", 1)["state"], "running")
        self.assertEqual(spool.status("halt")["state"], "running", "the array ends when its last task has")
        open(go, "w").close()
        st = spool.wait_terminal("halt", timeout=60)
        self.assertEqual((st["state"], st["reason"], st["failed_indexes"]), ("failed", "tasks_failed", "0"), st)
        self.assertEqual(st["tasks"], counts(10, succeeded=1, failed=1, cancelled=8), st)
        self.assert_task_ended(spool, "halt", 1, "succeeded")
        self.assertEqual(self.started(spool, "halt"), [0, 1])

    # -- 3. cancel ---------------------------------------------------------------------------

    def test_cancel_of_a_running_task_and_of_one_not_started_leaves_the_array_going(self):
        spool = self.make_spool(workers=4)
        runs = os.path.join(spool.base, "runs")
        go, env = self.gated(spool)
        spool.drop_job("sweep", env=dict(env, RUNS=runs),
                       command=["sh", "-c", f'echo $SPOOLD_ARRAY_INDEX >> "$RUNS"; {WAIT_GO}'],
                       array={"indexes": "0-5", "parallel": 2})
        self.wait_running(spool, "sweep", [0, 1])
        self.wait_ran(spool, runs, [0, 1])
        pids = self.task_pids(spool, "sweep", 1)
        drop_control(spool, "cancel1", {"action": "cancel", "job": "sweep:1"})
        self.ctl(spool, "cancel", "sweep:4", expect=0)

        # Task 4 never started: its folder is made to say it was cancelled.
        self.wait_task(spool, "sweep", 4, "cancelled")
        st = self.assert_task_ended(spool, "sweep", 4, "cancelled", "cancelled_by_user", attempts=0)
        self.assertFalse(os.path.exists(os.path.join(self.task_dir(spool, "sweep", 4), "attempts", "1")))
        st = self.wait_task(spool, "sweep", 1, "cancelled")
        self.assertEqual(st["reason"], "cancelled_by_user", st)
        spool.wait_for(lambda: not any(pid_alive(p) for p in pids), what="task 1's processes gone")
        # Its place among the two is taken by task 2; 3 and 5 follow.
        self.wait_running(spool, "sweep", [0, 2])
        self.assertEqual(spool.status("sweep")["state"], "running")
        open(go, "w").close()
        st = spool.wait_terminal("sweep", timeout=60)
        # A task cancelled by hand does not fail its array.
        self.assertEqual((st["state"], st["reason"]), ("succeeded", None), st)
        self.assertEqual(st["tasks"], counts(6, succeeded=4, cancelled=2), st)
        self.assertEqual(st["failed_indexes"], "")
        self.assertEqual(st["message"], "4 of 6 tasks succeeded, 2 cancelled by request")
        for i in (0, 2, 3, 5):
            self.assert_task_ended(spool, "sweep", i, "succeeded")
        self.assert_ran_once_each(runs, [0, 1, 2, 3, 5])
        self.assertEqual(self.started(spool, "sweep"), list(range(6)))
        # An ended task cannot be cancelled again.
        proc = self.ctl(spool, "cancel", "sweep:1")
        self.assertEqual(proc.returncode, 1, proc.out + proc.err)

    def test_cancel_of_the_array_kills_its_running_tasks_and_starts_no_more(self):
        spool = self.make_spool(workers=4)
        runs = os.path.join(spool.base, "runs")
        spool.drop_job("sweep", env={"RUNS": runs},
                       command=["sh", "-c", 'echo $SPOOLD_ARRAY_INDEX >> "$RUNS"; exec sleep 300'],
                       array={"indexes": "0-9", "parallel": 3}, kill={"grace": "5s"})
        spool.drop_job("after7", after=["sweep:7"])
        self.wait_running(spool, "sweep", [0, 1, 2])
        self.wait_ran(spool, runs, [0, 1, 2])
        self.assertEqual(spool.wait_accepted("after7")["waiting_on"], ["sweep:7"])
        # One task cancelled by hand before it started: it gets a folder.
        self.ctl(spool, "cancel", "sweep:8", expect=0)
        self.wait_task(spool, "sweep", 8, "cancelled")
        self.assert_task_ended(spool, "sweep", 8, "cancelled", "cancelled_by_user", attempts=0)
        pids = [p for i in (0, 1, 2) for p in self.task_pids(spool, "sweep", i)]
        self.ctl(spool, "cancel", "sweep", expect=0)
        st = spool.wait_terminal("sweep", timeout=60)
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertEqual(st["tasks"], counts(10, cancelled=10), st)
        self.assertEqual(st["failed_indexes"], "")
        for i in (0, 1, 2):
            t = self.assert_task_ended(spool, "sweep", i, "cancelled", "cancelled_by_user")
            self.assertEqual(t["attempts"][0]["signal"], "TERM", t)
            # The array ends when the last task has ended.
            self.assertLessEqual(parse_time(t["finished"]), parse_time(st["finished"]))
        self.assertEqual([p for p in pids if pid_alive(p)], [], "running tasks are killed")
        self.assertEqual(spool.job_processes(), [])
        self.assertEqual(self.started(spool, "sweep"), [0, 1, 2, 8], "no folder for the tasks never started")
        self.assert_ran_once_each(runs, [0, 1, 2])
        child = spool.wait_terminal("after7")
        self.assertEqual((child["state"], child["reason"]), ("cancelled", "dependency_failed"), child)
        self.assertTrue(child["message"].startswith("parent sweep:7 ended cancelled (cancelled_by_user);"), child)
        proc = self.ctl(spool, "status", "sweep:5")
        self.assertIn("task sweep:5 never started", proc.err)
        spool.drop_job("after5", fmt="json", after=[{"job": "sweep:5", "on": "any"}])
        self.assertEqual(spool.wait_terminal("after5")["state"], "succeeded")

    def test_logs_follow_of_a_task_not_started_waits_for_it_or_says_it_never_will(self):
        spool = self.make_spool(workers=2)
        go, env = self.gated(spool)
        spool.drop_job("chain", env=env, command=["sh", "-c", WAIT_GO + '; echo "task $SPOOLD_ARRAY_INDEX says hi"'],
                       array={"indexes": "0-2", "parallel": 1})
        self.wait_running(spool, "chain", [0])
        argv = [spoolctl_bin(), "--root", spool.root, "logs", "chain:1", "--follow"]
        follow = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        self.addCleanup(lambda: follow.poll() is None and follow.kill())
        note = follow.stderr.readline().decode()  # said once it waits
        self.assertIn("task chain:1 has not started yet", note)
        self.assertIn("waiting for it to start", note)
        self.assertFalse(os.path.exists(self.task_dir(spool, "chain", 1)))
        with open(go, "w"):
            pass
        out, err = follow.communicate(timeout=60)
        self.assertEqual(follow.returncode, 0, err)
        self.assertEqual(out.decode(), "task 1 says hi\n")
        spool.wait_terminal("chain")
        # One that never will: its array was cancelled before it started.
        spool.drop_job("stopped", command=["sleep", "300"], array={"indexes": "0-5", "parallel": 1})
        self.wait_running(spool, "stopped", [0])
        self.ctl(spool, "cancel", "stopped", expect=0)
        spool.wait_terminal("stopped", timeout=60)
        proc = self.ctl(spool, "logs", "stopped:4", "--follow")
        self.assertEqual(proc.returncode, 125, proc.err)
        self.assertIn("never started", proc.err)

    # -- 4. environment, items, logs and results -----------------------------------------------

    def test_each_task_gets_its_index_and_item_and_the_array_lists_every_result(self):
        spool = self.make_spool()
        script = ('printf "%s\\n" "$SPOOLD_JOB_ID" "$SPOOLD_ARRAY_ID" "$SPOOLD_ARRAY_INDEX" '
                  '"$SPOOLD_ARRAY_COUNT" "${SPOOLD_ARRAY_ITEM-unset}" "$SPOOLD_JOB_DIR" "$SPOOLD_RESULTS_DIR" '
                  '"$PWD"\n'
                  'printf "%s" "${SPOOLD_ARRAY_ITEM-unset}" > item.txt\n'
                  'mkdir -p sub && echo "$SPOOLD_ARRAY_INDEX" > sub/n.csv\n')
        items = ["a.tif", "b c.tif", "\u00fc,'q'.tif", "d"]
        # `indexes` with `items` picks the items that run, by position.
        spool.drop_job("tiles", script=script, array={"items": items, "indexes": "0,2-3", "parallel": 2})
        spool.drop_job("nums", script=script, array={"indexes": "5,7"})
        st = spool.wait_terminal("tiles", timeout=60)
        self.assertEqual((st["state"], st["tasks"]), ("succeeded", counts(3, succeeded=3)), st)
        self.assertEqual(self.started(spool, "tiles"), [0, 2, 3])
        for i in (0, 2, 3):
            t = self.assert_task_ended(spool, "tiles", i, "succeeded")
            self.assertEqual(t["id"], f"tiles:{i}")
            folder = self.task_dir(spool, "tiles", i)
            results = os.path.join(folder, "results")
            with open(os.path.join(folder, "attempts", "1", "stdout.log"), encoding="utf-8") as f:
                self.assertEqual(f.read().splitlines(),
                                 [f"tiles:{i}", "tiles", str(i), "3", items[i], folder, results, results])
            self.assertEqual(self.ctl(spool, "logs", f"tiles:{i}", expect=0).out.splitlines()[0], f"tiles:{i}")
            # Laid out like a job folder, without the job file and the script.
            self.assertFalse(os.path.exists(os.path.join(folder, "script")))
            self.assertFalse(os.path.exists(os.path.join(folder, "job.toml")))
            # Each task writes its own results.json...
            own = read_json(os.path.join(folder, "results.json"))
            self.assertEqual(own["id"], f"tiles:{i}")
            self.assertEqual({k: a["href"] for k, a in own["assets"].items()},
                             {"item.txt": "results/item.txt", "sub/n.csv": "results/sub/n.csv"})

        # ...and the array's lists them all, keyed tasks/<index>/<path>.
        path = os.path.join(spool.job_dir("tiles"), "results.json")
        item = read_json(path)
        self.assertEqual((item["id"], item["properties"]["spoold:state"]), ("tiles", "succeeded"))
        want = {f"tasks/{i}/{p}" for i in (0, 2, 3) for p in ("item.txt", "sub/n.csv")}
        self.assertEqual(set(item["assets"]), want)
        for i in (0, 2, 3):
            for rel, content in (("item.txt", items[i].encode()), ("sub/n.csv", f"{i}\n".encode())):
                asset = item["assets"][f"tasks/{i}/{rel}"]
                self.assertEqual(asset["href"], f"tasks/{i}/results/{rel}")
                with open(os.path.join(spool.job_dir("tiles"), asset["href"]), "rb") as f:
                    self.assertEqual(f.read(), content)
                self.assertEqual(asset["file:checksum"], "1220" + hashlib.sha256(content).hexdigest())
                self.assertEqual(asset["file:size"], len(content))
        proc = subprocess.run(["/usr/bin/python3", stac_validator(), path], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, f"STAC validation failed:\n{proc.stdout}{proc.stderr}")

        # Without items there is no SPOOLD_ARRAY_ITEM.
        st = spool.wait_terminal("nums", timeout=60)
        self.assertEqual(st["tasks"], counts(2, succeeded=2), st)
        for i in (5, 7):
            out = spool.attempt_log(f"nums/tasks/{i}")
            self.assertEqual(out.splitlines()[:5], [f"nums:{i}", "nums", str(i), "2", "unset"])


if __name__ == "__main__":
    unittest.main()
