"""Shared helpers for the black-box tests of spoold (not a test file).

A `Spool` owns one temporary spool root, its configuration and the daemon
processes started on it. `SpoolTestMixin` gives each test `self.make_spool()`,
which registers the cleanup (kill the daemon and every job it left running,
remove the tree) so that it runs even when the test fails.

Two modules beside it hold the rest, and harness re-exports their names, so
that tests import everything from here: harness_files.py (reading files, RFC
3339 times, writing TOML job files and configurations) and harness_assert.py
(the fields of the spool's JSON files and SpoolTestMixin's assertions on them).

Rules the helpers follow (STYLE.md, tests): wait for a condition with a deadline
(`wait_for`), never sleep a fixed time and hope; print the daemon's log when a
test fails. Only the standard library is used.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Also re-exported: tests import these from harness.
from harness_assert import (ATTEMPT_FIELDS, ERROR_FIELDS, EVENT_FIELDS, EVENT_LEVELS, STATUS_FIELDS,
                            SpoolAssertions)
from harness_files import (deep_update, is_number, is_rfc3339_z, job_toml, parse_time, read_bytes,
                           read_json, toml_dumps)

TERMINAL = ("succeeded", "failed", "cancelled")

SPOOL_DIRS = ("tmp", "incoming", "control", "rejected", "jobs")

# A variable put in the daemon's own environment; it must never reach a job.
LEAK_CANARY = "SPOOLD_BLACKBOX_CANARY"


def spoold_bin():
    path = os.environ.get("SPOOLD_BIN")
    if not path:
        build = os.environ.get("SPOOLD_BUILD_DIR")
        if build:
            path = os.path.join(build, "spoold")
    if not path:
        raise RuntimeError("set SPOOLD_BIN to the spoold executable")
    return path


def spoold_exec_bin():
    """The exec helper, spoold-exec (daemon/exec_protocol.h): beside spoold."""
    return os.environ.get("SPOOLD_EXEC_BIN") or os.path.join(
        os.path.dirname(spoold_bin()), "spoold-exec")


def source_dir():
    return os.environ.get("SPOOLD_SOURCE_DIR",
                          os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))))


def stac_validator():
    return os.path.join(source_dir(), "tests", "stac", "validate_stac_item.py")


def cannot_run(test, reason):
    """A test that cannot run here. Run as root (how `make test` and CI run),
    nothing may be left out, so it fails, saying why; otherwise it skips, and
    ctest counts it as skipped (the "SKIP: " prefix), never as passed."""
    if os.geteuid() == 0:
        test.fail(f"CANNOT RUN, and every test must run as root: {reason}")
    test.skipTest(f"SKIP: {reason}")


def slurm_start_log_tail(lines=15):
    """The end of what tests/slurm/live-cluster.sh said when `make test` tried
    to start the cluster, or a note that it did not try."""
    path = os.environ.get("SPOOLD_SLURM_START_LOG") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "spoold-slurm-start.log")
    try:
        with open(path, errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
    except OSError:
        return f"(no {path}: tests/slurm/live-cluster.sh start did not run; `make test` runs it)"
    return f"last lines of {path}:\n" + "\n".join(tail)


# ---------------------------------------------------------------------------

class WaitTimeout(AssertionError):
    pass


class Spool:
    """One temporary spool root, its config and the daemons run on it."""

    def __init__(self, config=None, workers=2, env=None, name="spool", binary=None):
        self.binary = binary  # None: spoold_bin()
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="spoold-bb-"))
        self.root = os.path.join(self.base, name)
        self.config_path = os.path.join(self.base, "spoold.toml")
        self.log_path = os.path.join(self.base, "spoold.log")
        self.proc = None
        self.procs = []
        self.starts = 0
        self._seq = 0
        self.config = {
            "spool": {"root": self.root, "rescan_interval": "1s"},
            "security": {"allow_root": True},
            "pools": {"default": {"workers": workers}},
        }
        if config:
            deep_update(self.config, config)
        self.write_config()
        self.env = dict(os.environ)
        self.env[LEAK_CANARY] = "leaked-if-you-see-this"
        if env:
            self.env.update(env)

    # -- paths ---------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def job_dir(self, job_id):
        return self.path("jobs", job_id)

    def write_config(self, text=None):
        if text is None:
            text = toml_dumps(self.config)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)

    # -- the daemon ------------------------------------------------------------
    def start(self, wait_ready=True, extra_args=(), pass_fds=()):
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("start(): the daemon is already running")
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts} at {time.strftime('%H:%M:%S')} =====\n"
                  .encode())
        log.flush()
        self.proc = subprocess.Popen(
            [self.binary or spoold_bin(), "--config", self.config_path, *extra_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            pass_fds=pass_fds)
        log.close()
        self.procs.append(self.proc)
        if wait_ready:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout=20):
        """Ready: the folders exist and index.json names this daemon's pid."""
        pid = self.proc.pid

        def ready():
            if not all(os.path.isdir(self.path(d)) for d in SPOOL_DIRS):
                return False
            idx = self.index()
            return idx.get("daemon", {}).get("pid") == pid
        try:
            self.wait_for(ready, timeout=timeout,
                          what=f"daemon pid {pid} ready (spool folders created and "
                               f"index.json naming its pid)")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\nprocesses holding spoold.lock open: "
                              f"{self.lock_holders() or 'none'}") from None

    def lock_holders(self):
        """'pid (command) state' of each process with spoold.lock open."""
        lock = self.path("spoold.lock")
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fd_dir = f"/proc/{entry}/fd"
                if not any(os.readlink(os.path.join(fd_dir, fd)) == lock
                           for fd in os.listdir(fd_dir)):
                    continue
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            state = stat[stat.rindex(")") + 2:].split()[0]
            found.append(f"{entry} {stat[stat.index('('):stat.rindex(')') + 1]} {state}")
        return found

    def jobs_leftovers(self):
        """Entries of jobs/ that are not job folders (half-made .<id>.tmp, temps)."""
        return [n for n in os.listdir(self.path("jobs")) if n.startswith(".") or n.endswith(".tmp")]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, expect_code=0, timeout=30):
        """SIGTERM, wait, and check the exit code (None: do not check)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"daemon pid {proc.pid} did not exit within {timeout}s of SIGTERM\n"
                + self.log_tail())
        self.proc = None
        if expect_code is not None and code != expect_code:
            raise AssertionError(
                f"daemon exited with {code} after SIGTERM, expected {expect_code}\n"
                + self.log_tail())
        return code

    def stop_with_jobs(self, timeout=30):
        """Stops the daemon and its running jobs (SPEC.md section 6, control
        action shutdown with stop_jobs): SIGTERM alone leaves them running.
        Waits for the exit and checks that it is 0."""
        proc = self.proc
        if proc is None:
            return None
        self.drop("stop-with-jobs.toml", 'action = "shutdown"\nstop_jobs = true\n', folder="control")
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon pid {proc.pid} did not stop within {timeout}s of a "
                                 f"shutdown with stop_jobs\n" + self.log_tail())
        self.proc = None
        if code != 0:
            raise AssertionError(f"daemon exited with {code} after a shutdown, expected 0\n"
                                 + self.log_tail())
        return code

    def kill(self):
        """SIGKILL the daemon (its jobs, in their own sessions, keep running)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, limit=6000):
        text = self.log_text()
        if len(text) > limit:
            text = "...\n" + text[-limit:]
        return f"----- daemon log ({self.log_path}) -----\n{text}\n----- end of log -----"

    # -- waiting ---------------------------------------------------------------
    def wait_for(self, predicate, timeout=20, what="condition", interval=0.02,
                 daemon_must_live=True):
        """Polls `predicate` every `interval` s until it returns a truthy value,
        which is returned. OSError/ValueError (a file not there yet) count as not
        yet. Fails at the deadline, or at once if the daemon died."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
                last_error = None
            except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
                last_error = exc
            if daemon_must_live and self.proc is not None and self.proc.poll() is not None:
                raise WaitTimeout(
                    f"daemon exited (code {self.proc.returncode}) while waiting for "
                    f"{what}\n" + self.log_tail())
            if time.monotonic() > deadline:
                extra = f" (last error: {last_error!r})" if last_error else ""
                raise WaitTimeout(f"timed out after {timeout}s waiting for {what}{extra}\n"
                                  + self.log_tail())
            time.sleep(interval)

    # -- submitting ------------------------------------------------------------
    def drop(self, name, content, folder="incoming"):
        """Writes the whole file under tmp/, then renames it into `folder`/."""
        os.makedirs(self.path("tmp"), exist_ok=True)
        os.makedirs(self.path(folder), exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        self._seq += 1
        tmp = self.path("tmp", f".bb-{os.getpid()}-{self._seq}")
        with open(tmp, "wb") as f:
            f.write(content)
        dest = os.path.join(os.fsencode(self.path(folder)), os.fsencode(name))
        os.rename(tmp, dest)
        return dest

    def drop_job(self, job_id, fmt="toml", **fields):
        """Drops a job built from keyword fields; returns the bytes written."""
        if fmt == "toml":
            data = job_toml(**fields).encode()
        else:
            if "command" not in fields and "script" not in fields:
                fields["command"] = ["true"]
            data = json.dumps(fields).encode()
        self.drop(f"{job_id}.{fmt}", data)
        return data

    # -- reading -------------------------------------------------------------
    def status(self, job_id):
        with open(os.path.join(self.job_dir(job_id), "status.json"), "rb") as f:
            return json.loads(f.read())

    def status_or_none(self, job_id):
        try:
            return self.status(job_id)
        except FileNotFoundError:
            return None

    def events(self, job_id, complete_only=True):
        """events.jsonl parsed; a last line without its newline is left out."""
        with open(os.path.join(self.job_dir(job_id), "events.jsonl"), "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        if complete_only or not data.endswith(b"\n"):
            lines = lines[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def index(self):
        with open(self.path("index.json"), "rb") as f:
            return json.loads(f.read())

    def rejection(self, name):
        """The parsed rejected/<name>.error.json (name: str or bytes)."""
        path = os.path.join(os.fsencode(self.path("rejected")),
                            os.fsencode(name) + b".error.json")
        with open(path, "rb") as f:
            return json.loads(f.read())

    def attempt_log(self, job_id, attempt=1, stream="stdout"):
        path = os.path.join(self.job_dir(job_id), "attempts", str(attempt),
                            f"{stream}.log")
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def incoming(self):
        return sorted(os.listdir(os.fsencode(self.path("incoming"))))

    def rejected(self):
        try:
            return sorted(os.listdir(os.fsencode(self.path("rejected"))))
        except FileNotFoundError:
            return []

    # -- waiting on jobs --------------------------------------------------------
    def wait_accepted(self, job_id, timeout=20):
        return self.wait_for(lambda: self.status(job_id), timeout=timeout,
                             what=f"job {job_id!r} accepted (jobs/{job_id}/status.json)")

    def wait_state(self, job_id, states, timeout=20):
        if isinstance(states, str):
            states = (states,)
        seen = {}

        def check():
            st = self.status(job_id)
            seen["last"] = st.get("state")
            return st if st.get("state") in states else None
        try:
            return self.wait_for(check, timeout=timeout,
                                 what=f"job {job_id!r} in state {states}")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n(last state seen: {seen.get('last')!r})") from None

    def wait_terminal(self, job_id, timeout=20):
        st = self.wait_state(job_id, TERMINAL, timeout=timeout)
        return st

    def wait_rejected(self, name, timeout=20):
        """The error file of a refused file, once the refusal is complete: the
        error file is written first and the file moved beside it after."""
        def done():
            doc = self.rejection(name)
            stored = doc.get("stored_as") or os.fsdecode(name)
            os.lstat(os.path.join(os.fsencode(self.path("rejected")), os.fsencode(stored)))
            return doc
        return self.wait_for(done, timeout=timeout, what=f"rejected/{os.fsdecode(name)} with its error file")

    def wait_event(self, job_id, event, timeout=20):
        return self.wait_for(
            lambda: [e for e in self.events(job_id) if e.get("event") == event],
            timeout=timeout, what=f"event {event!r} in jobs/{job_id}/events.jsonl")

    def run_job(self, job_id, fmt="toml", timeout=20, **fields):
        """Drops a job and waits until it is terminal; returns its status."""
        self.drop_job(job_id, fmt=fmt, **fields)
        return self.wait_terminal(job_id, timeout=timeout)

    # -- cleanup ---------------------------------------------------------------
    def job_processes(self):
        """Pids of processes whose environment points into this spool root."""
        marker = ("SPOOLD_JOB_DIR=" + self.root).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if marker in env:
                found.append(int(entry))
        return found

    def stray_processes(self):
        """Job processes, plus any process (such as a daemon's child that has not
        exec'd yet) holding a descriptor or working directory in our temp dir."""
        found = set(self.job_processes())
        prefix = self.base + "/"
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                links = [os.readlink(f"/proc/{entry}/cwd")]
                fd_dir = f"/proc/{entry}/fd"
                for fd in os.listdir(fd_dir):
                    try:
                        links.append(os.readlink(os.path.join(fd_dir, fd)))
                    except OSError:
                        pass
            except OSError:
                continue
            if any(link.startswith(prefix) for link in links):
                found.add(int(entry))
        return sorted(found)

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(3):
            pids = self.stray_processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        if os.environ.get("SPOOLD_KEEP_TMP"):
            print(f"kept {self.base}", file=sys.stderr)
            return
        shutil.rmtree(self.base, ignore_errors=True)


class SpoolTestMixin(SpoolAssertions):
    """Mix into the file's one unittest.TestCase class."""

    def make_spool(self, start=True, **kwargs):
        spool = Spool(**kwargs)
        self.addCleanup(self._cleanup_spool, spool)
        if start:
            spool.start()
        return spool

    def _cleanup_spool(self, spool):
        outcome = getattr(self, "_outcome", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if failed:
            print("\n" + spool.log_tail(20000), file=sys.stderr)
        spool.cleanup()
