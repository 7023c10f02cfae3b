"""spoolctl and job arrays (SPEC.md section 5, "Job arrays"), without the
daemon: the [array] that submit and run write for --array, --parallel and
--max-failed, and their option errors; status, list, wait, cancel and rerun
--failed against array and task folders written by hand, laid out as SPEC.md
sections 4, 5 and 7 give them; the help (the bash completion: test_spoolctl). What the
daemon does with an array is tested with the daemon, elsewhere."""
import json
import os
import select
import subprocess
import time
import unittest

from harness import SpoolTestMixin, read_json
from harness_ctl import CTL_TIMEOUT, SpoolctlMixin, clean_env, spoolctl_bin

TIME = "2026-12-05T10:00:00.000Z"
INDEX_KEYS = ("state", "reason", "pool", "title", "priority", "owner", "tags", "attempt",
              "exit_code", "progress", "created", "started", "finished", "updated")


def counts(total=0, queued=0, running=0, succeeded=0, failed=0, cancelled=0):
    return {"total": total, "queued": queued, "running": running, "succeeded": succeeded,
            "failed": failed, "cancelled": cancelled}


def status(job_id, state, reason=None, **fields):
    """A status.json with every field of SPEC.md section 4."""
    st = {"schema": "spoold/status/v1", "seq": 3, "id": job_id, "title": job_id, "pool": "default",
          "tags": [], "priority": 0, "owner": "alice", "owner_uid": 1000, "metadata": {},
          "state": state, "reason": reason, "message": "", "attempt": 0, "max_attempts": 1,
          "exit_code": None, "signal": None, "progress": None, "progress_message": None,
          "pid": None, "next_attempt_at": None, "created": TIME, "started": None,
          "finished": TIME if state in ("succeeded", "failed", "cancelled") else None,
          "updated": TIME, "interruptions": 0, "after": [], "waiting_on": [], "tasks": None,
          "failed_indexes": None, "halted_by": None, "array": None, "array_index": None,
          "attempts": []}
    st.update(fields)
    return st


def task_status(array, index, state, reason=None):
    return status(f"{array}:{index}", state, reason, array=array, array_index=index, attempt=1,
                  exit_code=0 if state == "succeeded" else 1)


def read_until(proc, text, timeout=20):
    """What `proc` writes to stdout until `text` is in it (it must come
    within `timeout` seconds, or before the process ends)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise AssertionError(f"no {text!r} within {timeout}s; got {seen!r}")
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"the process ended before {text!r}; got {seen!r}")
        seen += chunk
    return seen.decode()


class ArraysCliTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    # -- a spool written by hand -------------------------------------------------------

    def spool_folders(self):
        """A spool root with its folders and no daemon."""
        spool = self.make_spool(start=False)
        for folder in ("tmp", "incoming", "control", "rejected", "jobs"):
            os.makedirs(spool.path(folder), exist_ok=True)
        return spool

    def put(self, spool, relative, content):
        """Writes a file of the spool whole, by a rename, as spoold does: a
        reader never sees it half-written."""
        path = spool.path(*relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".part", "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        os.replace(path + ".part", path)
        return path

    def put_job(self, spool, job_id, job_toml, st, tasks=()):
        self.put(spool, f"jobs/{job_id}/job.toml", job_toml)
        self.put(spool, f"jobs/{job_id}/status.json", st)
        for task in tasks:
            self.put(spool, f"jobs/{job_id}/tasks/{task['array_index']}/status.json", task)

    def array_spool(self):
        """sweep: an ended array of 10 items, 3 failed; live: a running array of
        indexes 0-198:2, not in index.json yet, whose tasks 0 to 18 have
        folders; plain: a job; child: a job that waited for task sweep:3;
        index.json names sweep, plain and child."""
        spool = self.spool_folders()
        items = ", ".join(f'"{c}.tif"' for c in "abcdefghij")
        self.put_job(spool, "sweep", f'command = ["convert"]\n[array]\nitems = [{items}]\nparallel = 4\n',
                     status("sweep", "failed", "tasks_failed", tasks=counts(10, succeeded=7, failed=3),
                            failed_indexes="3,7-8", progress=100,
                            message="10 of 10 tasks ended (3 failed)"),
                     [task_status("sweep", i, "failed" if i in (3, 7, 8) else "succeeded",
                                  "nonzero_exit" if i in (3, 7, 8) else None) for i in range(10)])
        self.put_job(spool, "live", 'command = ["true"]\n[array]\nindexes = "0-198:2"\n',
                     status("live", "running", tasks=counts(100, 80, 8, 10, 2), failed_indexes="4,6",
                            progress=12, created="2026-12-05T10:00:01.000Z"),
                     [task_status("live", i, "succeeded") for i in range(0, 20, 2)])
        self.put_job(spool, "plain", 'command = ["true"]\n',
                     status("plain", "succeeded", attempt=1, exit_code=0,
                            created="2026-12-05T10:00:02.000Z"))
        self.put_job(spool, "child", 'command = ["true"]\nafter = ["sweep:3"]\n',
                     status("child", "cancelled", "dependency_failed",
                            after=[{"job": "sweep:3", "on": "success"}],
                            created="2026-12-05T10:00:03.000Z"))
        jobs = {}
        for job_id in ("sweep", "plain", "child"):
            st = read_json(spool.path("jobs", job_id, "status.json"))
            jobs[job_id] = {key: st[key] for key in INDEX_KEYS}
        jobs["sweep"]["tasks"] = read_json(spool.path("jobs", "sweep", "status.json"))["tasks"]
        jobs["child"]["after"] = ["sweep:3"]
        self.put(spool, "index.json", {
            "schema": "spoold/index/v1", "updated": TIME,
            "daemon": {"pid": 1, "version": "1.1.0", "started": TIME, "state": "stopped"},
            "pools": {"default": {"workers": 2, "queue_limit": 100, "paused": False,
                                  "auto_resume": False, "executor": "local", "running": 0,
                                  "queued": 0}},
            "damaged": {}, "jobs": jobs})
        return spool

    def incoming_json(self, spool, job_id):
        return read_json(spool.path("incoming", f"{job_id}.json"))

    # -- submit and run ----------------------------------------------------------------

    def test_submit_writes_the_array_table(self):
        spool = self.spool_folders()
        path = self.job_file(spool, "tiles.toml", '["convert-tile"]', 'title = "Tiles"\n')
        proc = self.ctl(spool, "submit", path, "--array", "0-99", "--parallel", "8",
                        "--max-failed", "5", "--json", expect=0)
        self.assertEqual(self.json_out(proc)["outcome"], "daemon_not_running")
        job = self.incoming_json(spool, "tiles")
        self.assertEqual(job["array"], {"indexes": "0-99", "parallel": 8, "max_failed": 5})
        self.assertEqual((job["command"], job["title"]), (["convert-tile"], "Tiles"))
        # Items in the file are kept: the indexes pick them by position; the
        # file's own limits stay unless an option replaces them.
        items = self.job_file(spool, "items.toml", extra='[array]\nitems = ["a", "b", "c", "d"]\n'
                                                         'parallel = 2\nmax_failed = 1\n')
        self.assertEqual(self.submit(spool, items, "--array", "1,3", "--max-failed", "0"), "items")
        self.assertEqual(self.incoming_json(spool, "items")["array"],
                         {"items": ["a", "b", "c", "d"], "indexes": "1,3", "parallel": 2, "max_failed": 0})
        # The file's [array] is validated as the daemon would: index 7 picks no item.
        proc = self.ctl(spool, "submit", items, "--array", "1-7", expect=1)
        self.assertIn("invalid_field (array.indexes)", proc.err)
        # validate --explain shows the array.
        plain = self.job_file(spool, "sweep.toml", extra='[array]\nindexes = "1,3,5-9:2"\nparallel = 3\n')
        effective = self.json_out(self.ctl(spool, "validate", "--explain", "--json", plain, expect=0))
        self.assertEqual(effective["effective"]["array"],
                         {"indexes": "1,3,5-9:2", "tasks": 5, "items": 0, "parallel": 3,
                          "max_failed": "no limit"})
        self.assertEqual(sorted(spool.incoming()), [b"items.json", b"tiles.json"])

    def test_array_option_errors(self):
        spool = self.spool_folders()
        path = self.job_file(spool, "job.toml")
        for command in ("submit", "run"):
            for args, message in (
                    (["--array", "5-3"], "--array '5-3' ends before it begins"),
                    (["--array", "1,,2"], "--array has an empty element"),
                    (["--array", "0-2000000"], "--array names more than 1000000 tasks"),
                    (["--array", "3,1"], "--array '1' does not come after 3"),
                    (["--array", "x"], "--array 'x' is not an index"),
                    (["--parallel", "4"], "--parallel is only valid with --array"),
                    (["--max-failed", "1"], "--max-failed is only valid with --array"),
                    (["--array", "0-9", "--parallel", "-1"], "--parallel must be an integer from 0 to 1000000"),
                    (["--array", "0-9", "--max-failed", "1000001"],
                     "--max-failed must be an integer from 0 to 1000000")):
                proc = self.ctl(spool, command, path, *args, expect=2)
                self.assertIn(message, proc.err, args)
        self.assertIn("unknown option --array", self.ctl(spool, "rerun", "x", "--array", "1", expect=2).err)
        self.assertEqual(spool.incoming(), [])

    def test_run_waits_for_the_whole_array(self):
        spool = self.spool_folders()
        path = self.job_file(spool, "arr.toml", '["sh", "-c", "exit 1"]')
        argv = [spoolctl_bin(), "--root", spool.root, "run", path, "--array", "0-3"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        self.addCleanup(proc.kill)
        spool.wait_for(lambda: os.path.exists(spool.path("incoming", "arr.json")), what="the array's file")
        self.assertEqual(self.incoming_json(spool, "arr")["array"], {"indexes": "0-3"})
        # As the daemon would: the folder, then the file leaves incoming/. A
        # running array does not end run.
        self.put_job(spool, "arr", "", status("arr", "running", tasks=counts(4, 1, 1, 1, 1),
                                              failed_indexes="2", progress=50))
        os.unlink(spool.path("incoming", "arr.json"))
        read_until(proc, "2/4 tasks, 1 running, 1 failed")
        self.assertIsNone(proc.poll())
        self.put(spool, "jobs/arr/status.json",
                 status("arr", "failed", "tasks_failed", tasks=counts(4, succeeded=3, failed=1),
                        failed_indexes="2", progress=100, message="4 of 4 tasks ended (1 failed)"))
        out, err = proc.communicate(timeout=CTL_TIMEOUT)
        self.assertEqual(proc.returncode, 125, err)
        self.assertIn("4/4 tasks, 1 failed", out.decode())
        self.assertIn("failed tasks: 2", err.decode())
        self.assertIn("rerun arr --failed", err.decode())

    # -- status --------------------------------------------------------------------------

    def test_status_of_an_array_and_of_its_tasks(self):
        spool = self.array_spool()
        out = self.ctl(spool, "status", "sweep", expect=0).out
        self.assertIn("sweep: failed (tasks_failed)", out)
        self.assertIn("tasks      10: 0 queued, 0 running, 7 succeeded, 3 failed, 0 cancelled", out)
        self.assertIn("progress   100% (10 of 10 tasks ended)", out)
        self.assertIn("failed     3,7-8", out)
        self.assertIn("spoolctl rerun sweep --failed", out)
        self.assertNotIn("attempt", out)
        out = self.ctl(spool, "status", "live", expect=0).out
        self.assertIn("tasks      100: 80 queued, 8 running, 10 succeeded, 2 failed, 0 cancelled", out)
        self.assertIn("progress   12% (12 of 100 tasks ended)", out)
        self.assertNotIn("--failed", out, "a running array has no rerun hint")
        self.assertEqual(self.json_out(self.ctl(spool, "status", "sweep", "--json", expect=0)),
                         read_json(spool.path("jobs", "sweep", "status.json")))
        # A task: its own folder, under its array's.
        out = self.ctl(spool, "status", "sweep:7", expect=0).out
        self.assertIn("sweep:7: failed (nonzero_exit)", out)
        self.assertIn("task 7 of array sweep", out)
        self.assertIn(spool.path("jobs", "sweep", "tasks", "7"), out)
        self.assertEqual(self.json_out(self.ctl(spool, "status", "sweep:7", "--json", expect=0)),
                         read_json(spool.path("jobs", "sweep", "tasks", "7", "status.json")))
        # Tasks without a folder: not started yet, or not there at all.
        for task, message in (
                ("live:20", "task live:20 has not started yet (array live is running"),
                ("live:7", "no task live:7: array live has the indexes 0-198:2 (100 tasks)"),
                ("sweep:10", "no task sweep:10: array sweep has the indexes 0-9"),
                ("plain:1", "no task plain:1: job plain is no array"),
                ("nosuch:1", "no task nosuch:1: no job nosuch in"),
                ("sweep:07", "sweep:07 is not a job id"),
                ("../sweep", "../sweep is not a job id")):
            self.assertIn(message, self.ctl(spool, "status", task, expect=1).err, task)
        self.put(spool, "incoming/later.toml", 'command = ["true"]\n[array]\nindexes = "0-3"\n')
        self.assertIn("task later:1 has not started: its array is not accepted yet (incoming/later.toml",
                      self.ctl(spool, "status", "later:1", expect=1).err)
        # logs and export send to the tasks.
        self.assertIn("its tasks have the logs (spoolctl logs sweep:INDEX)",
                      self.ctl(spool, "logs", "sweep", expect=0).err)
        self.assertIn("sweep:1 is a task: export its array, sweep",
                      self.ctl(spool, "export", "sweep:1", "-o", os.path.join(spool.base, "x.tgz"),
                               expect=1).err)

    # -- list ----------------------------------------------------------------------------

    def test_list_shows_each_array_once_with_its_counts(self):
        spool = self.array_spool()
        lines = self.ctl(spool, "list", expect=0).out.splitlines()
        header = lines[0].split()
        self.assertEqual(header, ["ID", "STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TASKS", "TITLE"])
        tasks_at = lines[0].index("TASKS")
        rows = {line.split()[0]: line[tasks_at:] for line in lines[1:]}
        self.assertEqual(sorted(rows), ["child", "live", "plain", "sweep"], "tasks are not listed")
        self.assertTrue(rows["sweep"].startswith("10/10 tasks, 3 failed "), rows)
        self.assertTrue(rows["live"].startswith("12/100 tasks, 8 running, 2 failed "), rows)
        self.assertTrue(rows["plain"].startswith("- "), rows)
        # Without an array listed, the table is as it always was.
        lines = self.ctl(spool, "list", "--state", "succeeded", expect=0).out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TITLE"])
        self.assertEqual(self.ctl(spool, "list", "-q", expect=0).out.split(), ["sweep", "live", "plain", "child"])
        listed = {j["id"]: j for j in self.json_out(self.ctl(spool, "list", "--json", expect=0))}
        self.assertEqual(listed["sweep"]["tasks"], counts(10, succeeded=7, failed=3))  # from index.json
        self.assertEqual(listed["live"]["tasks"], counts(100, 80, 8, 10, 2))  # from its status.json
        self.assertNotIn("tasks", listed["plain"])
        # The tree: one line per array, a job waiting for a task under the array.
        lines = self.ctl(spool, "list", "--tree", expect=0).out.splitlines()
        width = lines[0].index("STATE")
        self.assertEqual([line[:width].rstrip() for line in lines[1:]], ["sweep", "`- child", "live", "plain"])
        self.assertIn("10/10 tasks, 3 failed", lines[1])

    # -- wait and cancel of a task ------------------------------------------------------

    def test_wait_and_cancel_of_a_task_not_started(self):
        spool = self.array_spool()
        self.assertIn("no task live:7", self.ctl(spool, "wait", "live:7", expect=1).err)
        # A task its ended array never started will not run: as good as cancelled.
        self.put_job(spool, "halted", 'command = ["true"]\n[array]\nindexes = "0-2"\nmax_failed = 1\n',
                     status("halted", "failed", "tasks_failed", tasks=counts(3, failed=1, cancelled=2),
                            failed_indexes="0", halted_by="array_halted"),
                     [task_status("halted", 0, "failed", "nonzero_exit")])
        proc = self.ctl(spool, "wait", "halted:2", expect=125)
        self.assertIn("task halted:2 never started: cancelled (array_halted) with array halted, which is "
                      "failed (tasks_failed)", proc.err)
        # A task not started yet is waited for until its folder says it ended.
        argv = [spoolctl_bin(), "--root", spool.root, "wait", "live:20"]
        waiter = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        self.addCleanup(waiter.kill)
        self.assertIn("live:20  task live:20 has not started yet", read_until(waiter, "\n"))
        self.put(spool, "jobs/live/tasks/20/status.json", task_status("live", 20, "succeeded"))
        out, err = waiter.communicate(timeout=CTL_TIMEOUT)
        self.assertEqual(waiter.returncode, 0, err)
        self.assertIn("succeeded", out.decode())
        # cancel: a task not started yet may be cancelled; one that is no task of
        # the array may not.
        out = self.json_out(self.ctl(spool, "cancel", "live:30", "--json", expect=0))
        self.assertEqual((out["job"], out["outcome"]), ("live:30", "daemon_not_running"))
        request = read_json(spool.path(*out["request"].split("/")))
        self.assertEqual(request, {"action": "cancel", "job": "live:30"})
        self.assertIn("no task live:11", self.ctl(spool, "cancel", "live:11", expect=1).err)
        self.assertIn("live:01 is not a job id", self.ctl(spool, "cancel", "live:01", expect=1).err)
        self.assertEqual(len(os.listdir(spool.path("control"))), 1)

    # -- rerun --failed ------------------------------------------------------------------

    def test_rerun_failed_runs_the_failed_indexes_again(self):
        spool = self.array_spool()
        self.assertEqual(self.ctl(spool, "rerun", "sweep", "--failed", expect=0).out.strip(), "sweep.r2")
        job = self.incoming_json(spool, "sweep.r2")
        self.assertEqual(job["array"], {"items": [f"{c}.tif" for c in "abcdefghij"], "indexes": "3,7-8",
                                        "parallel": 4})
        self.assertEqual((job["command"], job["metadata"]), (["convert"], {"derived_from": "sweep"}))
        self.put_job(spool, "clean", 'command = ["true"]\n[array]\nindexes = "0-1"\n',
                     status("clean", "succeeded", tasks=counts(2, succeeded=2), failed_indexes=""))
        for job_id, message in (
                ("live", "array live has not ended (it is running, 12/100 tasks, 8 running, 2 failed)"),
                ("plain", "job plain is no array: --failed reruns an array's failed tasks"),
                ("clean", "array clean has no failed tasks (it ended succeeded, 2/2 tasks)"),
                ("sweep:3", "sweep:3 is a task: rerun its array's failed tasks with spoolctl rerun sweep"),
                ("nosuch", "no job nosuch")):
            self.assertIn(message, self.ctl(spool, "rerun", job_id, "--failed", expect=1).err, job_id)
        self.assertIn("sweep:3 is a task of array sweep", self.ctl(spool, "rerun", "sweep:3", expect=1).err)
        self.assertEqual(spool.incoming(), [b"sweep.r2.json"])
        # Without --failed an array is rerun whole, as any job.
        self.assertEqual(self.ctl(spool, "rerun", "sweep", expect=0).out.strip(), "sweep.r3")
        self.assertNotIn("indexes", self.incoming_json(spool, "sweep.r3")["array"])

    # -- help --------------------------------------------------------------

    def test_help(self):
        spool = self.spool_folders()
        for command in ("submit", "run"):
            out = self.ctl(spool, command, "--help", root=False, expect=0).out
            for option in ("--array INDEXES", "--parallel N", "--max-failed N"):
                self.assertIn(option, out, command)
        self.assertIn("--failed", self.ctl(spool, "rerun", "--help", root=False, expect=0).out)
        self.assertIn("ID:INDEX", self.ctl(spool, "--help", root=False, expect=0).out)


if __name__ == "__main__":
    unittest.main()
