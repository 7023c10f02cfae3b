"""Helpers for the black-box tests of spoold-exec (not a test file): the
protocol's constants and request builder (daemon/exec_protocol.h, protocol 2),
Helper, which starts spoold-exec as the daemon does and drives it over its
socket, readers of /proc and of the lock, and ExecTestMixin, which gives a test
class a helper per attempt folder and checks outcome.json. Used by
test_exec_helper.py (the protocol) and test_supervisor.py (the supervision)."""
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from harness import spoold_exec_bin
from harness_sched import children_of, pid_alive, proc_stat, stat_after_name


STAGE_CHDIR, STAGE_ARGUMENTS, STAGE_EXEC, STAGE_LOCK, STAGE_USER = 1, 2, 3, 4, 5
MAGIC = 0x73706532        # "spe2"
OLD_MAGIC = 0x73706531    # "spe1", protocol 1
REPLY_MAGIC = 0x73707232  # "spr2"
REPLY = struct.Struct("=Iiii")  # magic, job_pid, stage, err
FLOCK = "hhqqi4x"  # struct flock on x86_64: l_type, l_whence, l_start, l_len, l_pid
ENV = ("PATH=/usr/bin:/bin",)
WAIT = 20  # seconds: the deadline of every wait below


def request(exe, cwd, ids, argv, env=ENV, timeout_ms=0, deadline_ms=0, kill_signal=15,
            grace_ms=10000):
    strings = [exe, cwd, ids, str(timeout_ms), str(deadline_ms), str(kill_signal), str(grace_ms),
               str(len(argv)), *argv, *env]
    body = b"".join(os.fsencode(x) + b"\0" for x in strings)
    return struct.pack("=II", MAGIC, len(body)) + body


def lock_holder(path):
    """The pid holding a POSIX record lock on `path` (F_GETLK), None if free.
    Opening and closing the file drops only this process's own locks: the
    tests hold none."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    finally:
        os.close(fd)
    l_type, _, _, _, l_pid = struct.unpack(FLOCK, got)
    return None if l_type == fcntl.F_UNLCK else l_pid


def term_ignoring_program(ready):
    """Python code that ignores SIGTERM, then writes its pid to `ready`
    (renamed into place: whoever sees the file reads the whole pid) and sleeps."""
    return ("import os, signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"with open({ready!r} + '.tmp', 'w') as f: f.write(str(os.getpid()))\n"
            f"os.rename({ready!r} + '.tmp', {ready!r})\n"
            "time.sleep(30)\n")


def stat_fields(pid):
    """(ppid, pgrp, session) of a process from /proc/PID/stat, None if gone."""
    rest = stat_after_name(pid)
    return None if rest is None else (int(rest[1]), int(rest[2]), int(rest[3]))


def argv_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return None


def fds_of(pid):
    return sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid):
    """{fd: "socket" | "pipe" | path} of a process."""
    out = {}
    for fd in fds_of(pid):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        out[fd] = link.split(":", 1)[0] if link.startswith(("socket:", "pipe:")) else link
    return out


def poll(predicate, what, timeout=WAIT, interval=0.01):
    """Polls until `predicate` returns a truthy value, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def now_ms():
    return time.time_ns() // 1_000_000


def reset_signals():
    """In the child before exec: default handling of every signal and an empty
    mask, as the daemon's posix_spawn gives the helper (the test runner may
    have been started with SIGINT ignored)."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


# Starts the helper from a process of its own, which then waits for its stdin
# to close and exits: the helper's parent ("the daemon") dies under it.
INTERMEDIATE = r"""
import os, signal, subprocess, sys
exe, label, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
def place():
    os.dup2(fd, 3)
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
p = subprocess.Popen(["spoold-exec", label], executable=exe, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={},
                     preexec_fn=place, pass_fds=(3,), start_new_session=True)
os.close(fd)  # the helper's end is the helper's alone
print(p.pid, flush=True)
sys.stdin.read()
"""


def exec_bin_anyone_can_run(test):
    """A copy of spoold-exec in a folder every user may enter: a helper started
    as another user cannot reach the build's own when it lies under a private
    folder (CI builds in a mktemp -d, mode 0700)."""
    folder = tempfile.mkdtemp(prefix="spoold-exec-copy-")
    test.addCleanup(shutil.rmtree, folder, True)
    os.chmod(folder, 0o755)
    copy = os.path.join(folder, "spoold-exec")
    shutil.copy2(spoold_exec_bin(), copy)
    os.chmod(copy, 0o755)
    return copy


class Helper:
    """spoold-exec started as the daemon starts it: 0-2 /dev/null, a socket on
    3, nothing else, an empty environment, its own session, `spoold-exec LABEL`.
    Its job's stdout, stderr and attempt folder are `attempt`/stdout.log,
    stderr.log and `attempt` itself."""

    def __init__(self, test, attempt, label="/some/spool", user=None, orphan=False):
        self.attempt = attempt
        self.exe = spoold_exec_bin() if user is None else exec_bin_anyone_can_run(test)
        os.makedirs(attempt, exist_ok=True)
        self.label = label
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.job_pid = None
        self.job_start = None
        self.intermediate = None
        self.proc = None
        self.pid = None
        test.addCleanup(self.cleanup)
        fd = theirs.fileno()
        if orphan:
            self.intermediate = subprocess.Popen(
                [sys.executable, "-c", INTERMEDIATE, spoold_exec_bin(), label, str(fd)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(fd,))
            theirs.close()
            if not select.select([self.intermediate.stdout], [], [], WAIT)[0]:
                raise AssertionError("the intermediate process did not start the helper")
            self.pid = int(self.intermediate.stdout.readline())
        else:
            def place():
                os.dup2(fd, 3)
                reset_signals()
            extra = {} if user is None else {"user": user, "group": user, "extra_groups": []}
            self.proc = subprocess.Popen(
                ["spoold-exec", label], executable=self.exe,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={}, preexec_fn=place, pass_fds=(3,), start_new_session=True, **extra)
            theirs.close()
            self.pid = self.proc.pid

    def path(self, name):
        return os.path.join(self.attempt, name)

    def wait_exec(self):
        """Until the process is spoold-exec (not the Python child before exec)."""
        real = os.path.realpath(self.exe)
        poll(lambda: os.path.realpath(f"/proc/{self.pid}/exe") == real, "the helper's exec")

    def hand(self, *args, raw=None, fds=None, **limits):
        """Sends a request (raw bytes, or request(*args, **limits)) with the
        descriptors `fds` (default: stdout.log, stderr.log, the attempt folder)."""
        data = raw if raw is not None else request(*args, **limits)
        own = []
        if fds is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            own = [os.open(self.path("stdout.log"), flags, 0o644),
                   os.open(self.path("stderr.log"), flags, 0o644),
                   os.open(self.attempt, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
            fds = own
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        finally:
            for fd in own:
                os.close(fd)

    def read_reply(self):
        """The Reply as a tuple, or None at EOF with no byte."""
        data = b""
        while len(data) < REPLY.size:
            more = self.sock.recv(REPLY.size - len(data))
            if not more:
                if data:
                    raise AssertionError(f"a partial reply: {data!r}")
                return None
            data += more
        reply = REPLY.unpack(data)
        if reply[1] > 0:
            self.job_pid = reply[1]
            st = proc_stat(self.job_pid)
            self.job_start = st[3] if st else None
        return reply

    def start(self, *args, **limits):
        """Hands a job and checks the reply: the job's process exists."""
        self.hand(*args, **limits)
        reply = self.read_reply()
        if reply is None or reply[0] != REPLY_MAGIC or reply[1] <= 0 or reply[2:] != (0, 0):
            raise AssertionError(f"reply {reply}: the job's process was not started")
        return self.job_pid

    def go(self):
        """The daemon's go, read by the job's process. EPIPE when that process
        is gone (the daemon ignores SIGPIPE and goes on likewise)."""
        try:
            self.sock.sendall(b"g")
        except BrokenPipeError:
            pass

    def end_of_requests(self):
        """EOF on the helper's socket, keeping ours readable."""
        self.sock.shutdown(socket.SHUT_WR)

    def at_eof(self):
        """Whether the helper closed its end: nothing more comes, and EOF."""
        try:
            return self.sock.recv(64) == b""
        except ConnectionResetError:
            return True  # it exited with bytes of ours unread

    def wait(self, timeout=WAIT):
        """The helper's exit code (None when another process is its parent)."""
        if self.proc is not None:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"spoold-exec {self.pid} did not exit within {timeout}s; its children: "
                    f"{[(p, argv_of(p)) for p in children_of(self.pid)]}") from None
        poll(lambda: not pid_alive(self.pid), f"the end of spoold-exec {self.pid}", timeout)
        return None

    def job_running(self, program):
        """Whether the job's process has exec'd `program` (its argv[0])."""
        argv = argv_of(self.job_pid)
        return bool(argv) and os.path.basename(argv[0]) == os.fsencode(program)

    def outcome(self):
        try:
            with open(self.path("outcome.json"), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def read(self, name):
        with open(self.path(name), encoding="utf-8") as f:
            return f.read()

    def cleanup(self):
        if self.job_pid is not None:
            st = proc_stat(self.job_pid)
            if st is not None and st[3] == self.job_start:
                kill_quietly(self.job_pid)
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=WAIT)
        elif self.pid is not None and pid_alive(self.pid) and \
                (argv_of(self.pid) or [])[:2] == [b"spoold-exec", os.fsencode(self.label)]:
            kill_quietly(self.pid)
        if self.intermediate is not None:
            self.intermediate.stdin.close()
            self.intermediate.stdout.close()
            self.intermediate.wait(timeout=WAIT)
        self.sock.close()


def kill_quietly(pid, argv0=None):
    """SIGKILL `pid` if it lives (and its argv[0] ends with `argv0`, if given)."""
    argv = argv_of(pid)
    if not argv or (argv0 is not None and not argv[0].endswith(argv0)):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ExecTestMixin:
    """Mix into the file's one unittest.TestCase class: a temporary folder
    (self.dir), helper() and assert_outcome()."""

    def setUp(self):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="spoold-exec-test-"))
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.attempts = 0

    def helper(self, **kwargs):
        """A helper with a new, empty attempt folder."""
        self.attempts += 1
        return Helper(self, os.path.join(self.dir, "attempts", str(self.attempts)), **kwargs)

    def assert_outcome(self, h, **expected):
        """outcome.json is there, well formed, of this helper and job, and has
        the `expected` values."""
        out = h.outcome()
        self.assertIsNotNone(out, "outcome.json was written")
        self.assertFalse(os.path.exists(h.path("outcome.json.tmp")), "the temporary name is gone")
        keys = {"protocol", "supervisor_pid", "job_pid", "started_unix_ms", "ended_unix_ms",
                "exit_code", "signal", "cause", "spawn_error", "kills", "survivors",
                "cpu_user_s", "cpu_sys_s", "max_rss_kb"}
        self.assertEqual(set(out), keys, out)
        self.assertEqual(out["protocol"], 2, out)
        self.assertEqual(out["supervisor_pid"], h.pid, out)
        self.assertEqual(out["job_pid"], h.job_pid, out)
        self.assertLessEqual(out["started_unix_ms"], out["ended_unix_ms"], out)
        self.assertTrue((out["exit_code"] is None) != (out["signal"] is None), out)
        self.assertFalse(out["survivors"], out)
        for key in ("cpu_user_s", "cpu_sys_s"):
            self.assertIsInstance(out[key], float, out)
            self.assertGreaterEqual(out[key], 0, out)
        self.assertIsInstance(out["max_rss_kb"], int, out)
        for kill in out["kills"]:
            self.assertEqual(set(kill), {"signal", "unix_ms", "leftovers"}, out)
            self.assertLessEqual(out["started_unix_ms"], kill["unix_ms"], out)
            self.assertLessEqual(kill["unix_ms"], out["ended_unix_ms"], out)
        for key, value in expected.items():
            self.assertEqual(out[key], value, f"{key} in {out}")
        self.assertIsNone(lock_holder(h.path("supervisor.lock")), "the lock is free once it ended")
        return out
