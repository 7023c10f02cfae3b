"""Shared by the black-box tests of job arrays (test_arrays.py,
test_arrays_lifecycle.py): expected task counts and index ranges, a task's
folder and status, waiting for tasks, and the runs file that shows each task
ran once."""
import os

from harness import read_json

# A task that waits for the file $GO (at most about 60 s, then it fails).
WAIT_GO = 'n=0; while [ ! -e "$GO" ]; do n=$((n+1)); [ $n -lt 1200 ] || exit 99; sleep 0.05; done'


def counts(total, queued=0, running=0, succeeded=0, failed=0, cancelled=0):
    return {"total": total, "queued": queued, "running": running, "succeeded": succeeded,
            "failed": failed, "cancelled": cancelled}


def ranges(indexes):
    """Indexes as SPEC.md writes failed_indexes: "3,7-9"."""
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def tree(folder):
    """Every entry under `folder` (relative paths) and the bytes of its files."""
    entries, size = [], 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            entries.append(os.path.relpath(path, folder))
            if name in files:
                size += os.path.getsize(path)
    return sorted(entries), size


class ArraysMixin:
    """Helpers of a test case that runs arrays through the daemon."""

    def task_dir(self, spool, array, index):
        return spool.path("jobs", array, "tasks", str(index))

    def task(self, spool, array, index):
        return read_json(os.path.join(self.task_dir(spool, array, index), "status.json"))

    def started(self, spool, array):
        """The indexes that have a task folder."""
        try:
            names = os.listdir(spool.path("jobs", array, "tasks"))
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def wait_task(self, spool, array, index, states, timeout=30):
        states = (states,) if isinstance(states, str) else states
        return spool.wait_for(lambda: (lambda st: st if st["state"] in states else None)(
            self.task(spool, array, index)), timeout=timeout, what=f"task {array}:{index} in {states}")

    def wait_running(self, spool, array, indexes, timeout=30):
        return [self.wait_task(spool, array, i, "running", timeout) for i in indexes]

    def task_pids(self, spool, array, index):
        st = self.task(spool, array, index)
        return [st["attempts"][-1]["pid"], st["attempts"][-1]["supervisor_pid"]]

    def gated(self, spool, name="go"):
        """A path the tasks wait for (WAIT_GO), and the env that names it."""
        path = os.path.join(spool.base, name)
        return path, {"GO": path}

    def wait_ran(self, spool, runs_file, indexes):
        """The tasks' programs have begun: their indexes are in the runs file
        (a task is `running` a moment before its program runs)."""
        want = {str(i) for i in indexes}
        spool.wait_for(lambda: want <= set(lines(runs_file)), what=f"tasks {sorted(indexes)} in {runs_file}")

    def assert_ran_once_each(self, runs_file, indexes):
        ran = lines(runs_file)
        self.assertEqual(sorted(ran, key=int), [str(i) for i in sorted(indexes)],
                         f"each task runs exactly once ({runs_file})")

    def assert_task_ended(self, spool, array, index, state, reason=None, attempts=1):
        st = self.task(spool, array, index)
        self.assert_status_complete(st, f"{array}:{index}")
        self.assertEqual((st["state"], st["reason"], st["array"], st["array_index"]),
                         (state, reason, array, index), st)
        if attempts is not None:
            self.assertEqual(len(st["attempts"]), attempts, st)
        return st
