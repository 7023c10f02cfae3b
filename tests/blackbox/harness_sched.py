"""Helpers for the scheduling, retry, timeout, control and recovery black-box
tests (not a test file). Builds on harness.py, which it does not change.

Only the standard library is used. Processes are found through /proc, so the
helpers work without pgrep.
"""
import json
import os
import time

from harness import parse_time


def stat_after_name(pid):
    """The fields of /proc/PID/stat from field 3 (state) on, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and ')'; the rest follows the last ')'.
    return data[data.rindex(b")") + 2:].split()


def proc_stat(pid):
    """(state, ppid, pgid, start_ticks) of a live process, or None if gone."""
    rest = stat_after_name(pid)
    if rest is None:
        return None
    return rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[19])


def group_members(pgid, include_zombies=False):
    """Pids of the processes whose process group is `pgid` (zombies left out:
    they have exited and only wait to be reaped by their parent)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st is None or st[2] != pgid:
            continue
        if st[0] == "Z" and not include_zombies:
            continue
        found.append(int(entry))
    return sorted(found)


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def describe_pids(pids):
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = "?"
        out.append(f"{pid} {proc_stat(pid)} {cmd}")
    return "; ".join(out)


def drop_control(spool, name, request, fmt="json"):
    """Drops control/<name>.<fmt> the safe way (tmp/ then rename)."""
    if fmt == "json":
        data = json.dumps(request)
    else:
        data = "".join(f"{k} = {json.dumps(v)}\n" for k, v in request.items())
    return spool.drop(f"{name}.{fmt}", data, folder="control")


def control_pending(spool, name):
    return os.path.exists(spool.path("control", name))


def wait_control_done(spool, name, timeout=20):
    """The daemon acted on control/<name> and deleted it (and did not reject it)."""
    def done():
        if os.path.exists(spool.path("rejected", name + ".error.json")):
            raise AssertionError(
                f"control/{name} was rejected: {spool.rejection(name)}")
        return not os.path.exists(spool.path("control", name))
    spool.wait_for(done, timeout=timeout, what=f"control/{name} acted on and removed")


def event_names(spool, job_id):
    return [e["event"] for e in spool.events(job_id)]


def attempt_times(st):
    """[(started, finished)] of each recorded attempt as aware datetimes."""
    return [(parse_time(a["started"]), parse_time(a["finished"]) if a["finished"] else None)
            for a in st["attempts"]]


def wait_pids_gone(spool, pids, timeout=15, what="processes gone"):
    spool.wait_for(lambda: not [p for p in pids if pid_alive(p)], timeout=timeout,
                   what=what, daemon_must_live=False)


def read_pidfile(path):
    """Integers, one a line, of a file written by a job (partial last line ignored)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")[:-1]
    return [int(x) for x in lines if x.strip()]


def monotonic_deadline(seconds):
    return time.monotonic() + seconds


# ---------------------------------------------------------------------------
# Orphan reaping. When the daemon dies by SIGKILL, its job processes are
# reparented to the nearest "child subreaper" ancestor, else to pid 1. In some
# containers pid 1 never reaps, so killed jobs stay zombies forever, and a zombie
# still counts as a member of its process group for kill(-pgid, 0). A real init
# reaps them; to get that behaviour the test process becomes a subreaper and
# reaps (by pid, never with waitpid(-1)) the zombies that are not daemons.

PR_SET_CHILD_SUBREAPER = 36


def flock_guarded(lock, overlap_line, overlap_log, body):
    """A job script that runs `body` holding an exclusive flock of `lock` for as
    long as any of its processes lives, so that a second run of the same job
    alongside it (across daemon crashes too) is caught: that run appends
    `overlap_line` to `overlap_log` and exits 99. The lines may use the shell."""
    return (f'exec 9>>"{lock}"\n'
            f'if ! flock -n 9; then echo "{overlap_line}" >> "{overlap_log}"; exit 99; fi\n'
            f"{body}")


def become_subreaper():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class OrphanReaper:
    """Makes this process a subreaper and reaps adopted zombies in a thread.
    `keep` returns the pids never to reap (the daemons, which Popen waits for)."""

    def __init__(self, keep):
        import threading
        self.keep = keep
        self.reaped = []
        self._stop = threading.Event()
        become_subreaper()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def reap_once(self):
        keep = set(self.keep())
        # waitid(WNOWAIT) names a zombie child without reaping it: cheap when
        # thousands of processes come and go. A daemon's zombie (Popen reaps
        # it) stops that; the scan of /proc below then finds the others.
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            if info.si_pid in keep:
                break
            if os.waitpid(info.si_pid, os.WNOHANG)[0] == info.si_pid:
                self.reaped.append(info.si_pid)
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in keep:
                continue
            st = proc_stat(pid)
            if st is None or st[1] != me or st[0] != "Z":
                continue
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self.reaped.append(pid)
            except ChildProcessError:
                pass

    def _run(self):
        while not self._stop.is_set():
            try:
                self.reap_once()
            except OSError:
                pass
            self._stop.wait(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def children_of(ppid):
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and (proc_stat(int(e)) or (None, None))[1] == ppid]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def is_exec_helper(pid, spool):
    """Whether `pid` runs spoold-exec for this spool: a supervisor (idle,
    holding a job, or watching one), or the job's process it forked, before
    that exec's the job's program. Its arguments are "spoold-exec ROOT"
    (daemon/exec_protocol.h)."""
    args = (cmdline(pid) or b"").split(b"\0")
    return len(args) >= 2 and args[0] == b"spoold-exec" and args[1] == os.fsencode(spool.root)


def waiting_job_log(pid):
    """The stdout log of the job that supervisor `pid` holds but has not let
    run yet (its forked process still runs spoold-exec), or None."""
    for child in children_of(pid):
        args = (cmdline(child) or b"").split(b"\0")
        if args and args[0] == b"spoold-exec":
            try:
                link = os.readlink(f"/proc/{child}/fd/1")
            except OSError:
                continue
            if link.endswith("/stdout.log"):
                return link
    return None


def is_unreleased_helper(pid, spool):
    """Whether `pid` is a supervisor of this spool whose job has not started:
    idle or handed a job that waits for the daemon's go. Either way its only
    child is the job's process, forked ahead, which still runs spoold-exec."""
    if not is_exec_helper(pid, spool):
        return False
    parent = (proc_stat(pid) or (None, None))[1]
    if parent is not None and is_exec_helper(parent, spool):
        return False  # the job's own process, forked by its supervisor
    children = children_of(pid)
    return all(is_exec_helper(child, spool) for child in children)


def is_handed_a_job(pid):
    """Whether the helper `pid` holds a job that waits for its go."""
    return waiting_job_log(pid) is not None


def helpers_of(spool):
    """The pids of this spool's supervisors whose job has not started."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and is_unreleased_helper(int(e), spool)]


def kill_unreleased_helpers(spool):
    """SIGKILLs the spoold-exec helpers of this spool that were never released
    (left behind when their daemon was killed: they should exit by themselves).
    Returns their pids."""
    import signal
    killed = []
    for pid in helpers_of(spool):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    return killed
