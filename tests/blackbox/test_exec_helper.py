"""spoold-exec, the supervisor of each local attempt (daemon/exec_protocol.h,
protocol 2), driven directly through its protocol: started ahead of time, it
waits on descriptor 3 (a socket) for a request that brings the job's stdout,
stderr and attempt folder; it locks supervisor.lock there, forks the job's
process and answers with its pid; the job runs after one more byte (EOF
instead: nothing runs). It stays the job's parent, enforces the timeout and
the deadline, takes cancel and stop signals, kills what the job leaves behind
and writes outcome.json. The daemon side (the idle helper it keeps, finding the
helper, refusing to start without it) is tested at the end."""
import errno
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
import unittest

from harness import SpoolTestMixin, spoold_bin, spoold_exec_bin
from harness_sched import children_of, helpers_of, is_handed_a_job, pid_alive, proc_stat, read_text

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


def stat_fields(pid):
    """(ppid, pgrp, session) of a process from /proc/PID/stat, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[1]), int(rest[2]), int(rest[3])


def argv_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return None


def fds_of(pid):
    return sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))


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


class Helper:
    """spoold-exec started as the daemon starts it: 0-2 /dev/null, a socket on
    3, nothing else, an empty environment, its own session, `spoold-exec LABEL`.
    Its job's stdout, stderr and attempt folder are `attempt`/stdout.log,
    stderr.log and `attempt` itself."""

    def __init__(self, test, attempt, label="/some/spool", user=None, orphan=False):
        self.attempt = attempt
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
                ["spoold-exec", label], executable=spoold_exec_bin(),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={}, preexec_fn=place, pass_fds=(3,), start_new_session=True, **extra)
            theirs.close()
            self.pid = self.proc.pid

    def path(self, name):
        return os.path.join(self.attempt, name)

    def wait_exec(self):
        """Until the process is spoold-exec (not the Python child before exec)."""
        real = os.path.realpath(spoold_exec_bin())
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
        self.sock.sendall(b"g")

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


class ExecHelperTest(SpoolTestMixin, unittest.TestCase):

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

    def assert_ran_nothing(self, h, marker):
        self.assertFalse(os.path.exists(marker), "the job never ran")
        self.assertIsNone(h.outcome(), "no outcome.json: nothing ran")
        if h.job_pid is not None:
            st = proc_stat(h.job_pid)
            self.assertFalse(st is not None and st[3] == h.job_start and st[0] != "Z",
                             "the job's process is gone")

    # -- starting ------------------------------------------------------------

    def test_refuses_to_run_outside_the_protocol(self):
        proc = subprocess.run([spoold_exec_bin(), "/some/spool"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not for direct use", proc.stderr)
        # A descriptor 3 that is not a socket is no better.
        with open(os.path.join(self.dir, "file"), "w") as f:
            proc = subprocess.run([spoold_exec_bin(), "/some/spool"], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=WAIT,
                                  preexec_fn=lambda: os.dup2(f.fileno(), 3), pass_fds=(3,))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not for direct use", proc.stderr)

    def test_runs_the_job_after_the_go_byte_as_its_child_with_only_its_descriptors(self):
        h = self.helper()
        h.wait_exec()
        self.assertEqual(fds_of(h.pid), [0, 1, 2, 3], "an idle helper opens nothing")
        self.assertEqual(argv_of(h.pid), [b"spoold-exec", b"/some/spool"])
        env = ["PATH=/usr/bin:/bin", "MARK=from the job's env"]
        script = ("touch ran; pwd > cwd.txt; cp /proc/$$/stat stat.txt; "
                  "cp /proc/$$/environ environ.txt; readlink /proc/$$/fd/0 > stdin.txt; "
                  "ls /proc/self/fd > fds.txt; echo to-stdout; echo to-stderr >&2; exit 7")
        job = h.start("/bin/sh", self.dir, "-", ["sh", "-c", script], env=env)
        self.assertNotEqual(job, h.pid)
        # Before the go: locked; the job's process is the helper's child, in a
        # session of its own, and waits, still spoold-exec.
        self.assertEqual(lock_holder(h.path("supervisor.lock")), h.pid,
                         "the helper holds supervisor.lock in the attempt folder")
        poll(lambda: is_handed_a_job(h.pid), "the job's process with its stdout on stdout.log")
        poll(lambda: stat_fields(job) == (h.pid, job, job),
             f"the job's process {job}: a child of {h.pid}, leader of its own group and session")
        self.assertEqual(os.path.realpath(f"/proc/{job}/exe"), os.path.realpath(spoold_exec_bin()))
        # Nothing to poll for: it must not run. A short look.
        time.sleep(0.3)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")), "it waits for the go byte")
        self.assertIsNone(h.proc.poll())
        self.assertIsNone(h.outcome())
        self.assertTrue(h.job_running("spoold-exec"))
        before = now_ms()
        h.go()
        self.assertTrue(h.at_eof(), "after the go it closes its socket: it depends on nobody")
        self.assertEqual(h.wait(), 0)
        after = now_ms()
        out = self.assert_outcome(h, exit_code=7, signal=None, cause="none", spawn_error=None, kills=[])
        self.assertLessEqual(before, out["started_unix_ms"])
        self.assertLessEqual(out["ended_unix_ms"], after)
        self.assertGreater(out["max_rss_kb"], 0)
        files = {n: read_text(os.path.join(self.dir, n)) for n in
                 ("cwd.txt", "stat.txt", "stdin.txt", "fds.txt")}
        self.assertEqual(files["cwd.txt"].strip(), self.dir, "it entered CWD")
        stat = files["stat.txt"]
        ppid, pgrp, session = (int(x) for x in stat[stat.rindex(")") + 2:].split()[1:4])
        self.assertEqual((ppid, pgrp, session), (h.pid, job, job),
                         "the job is the helper's child, in its own group and session")
        self.assertEqual(int(stat.split()[0]), job, "the job runs in the process it announced")
        with open(os.path.join(self.dir, "environ.txt"), "rb") as f:
            self.assertEqual(f.read().split(b"\0")[:-1], [os.fsencode(e) for e in env],
                             "the environment is the job's, exactly")
        self.assertEqual(files["stdin.txt"].strip(), "/dev/null")
        # ls lists 0, 1, 2 and the descriptor of the folder it reads (3): the
        # socket, the lock, the folder and the pipes of the helper stay out.
        self.assertEqual(files["fds.txt"].split(), ["0", "1", "2", "3"], files["fds.txt"])
        self.assertEqual(h.read("stdout.log"), "to-stdout\n")
        self.assertEqual(h.read("stderr.log"), "to-stderr\n")

    def test_runs_nothing_when_the_daemon_goes_away_before_the_go_byte(self):
        marker = os.path.join(self.dir, "ran")
        with self.subTest("before the request"):
            h = self.helper()
            h.end_of_requests()
            self.assertEqual(h.wait(), 127)
            self.assertTrue(h.at_eof(), "no reply")
            self.assertFalse(os.path.exists(h.path("supervisor.lock")))
        with self.subTest("in the middle of the request"):
            h = self.helper()
            data = request("/usr/bin/touch", self.dir, "-", ["touch", marker])
            h.hand(raw=data[:len(data) - 5])
            h.end_of_requests()
            self.assertEqual(h.wait(), 127)
            self.assertTrue(h.at_eof(), "no reply")
            self.assert_ran_nothing(h, marker)
        with self.subTest("after the reply"):
            h = self.helper()
            h.start("/usr/bin/touch", self.dir, "-", ["touch", marker])
            h.end_of_requests()
            self.assertEqual(h.wait(), 127)
            self.assertTrue(h.at_eof())
            self.assert_ran_nothing(h, marker)
            self.assertIsNone(lock_holder(h.path("supervisor.lock")))

    def test_refuses_a_request_it_does_not_understand(self):
        marker = os.path.join(self.dir, "ran")
        good = request("/usr/bin/touch", self.dir, "-", ["touch", marker])
        body = good[8:]

        def header(length, magic=MAGIC):
            return struct.pack("=II", magic, length)

        def numbers(timeout="0", deadline="0", signal_="15", grace="10000"):
            strings = ["/usr/bin/touch", self.dir, "-", timeout, deadline, signal_, grace, "2",
                       "touch", marker]
            data = b"".join(os.fsencode(x) + b"\0" for x in strings)
            return header(len(data)) + data

        cases = {
            "wrong magic": (header(len(body), 0x12345678) + body, None),
            "protocol 1's magic": (header(len(body), OLD_MAGIC) + body, None),
            "no descriptors": (good, []),
            "one descriptor": (good, [0]),
            "four descriptors": (good, [0, 1, 2, 0]),
            "no argument": (request("/usr/bin/touch", self.dir, "-", []), None),
            "an unterminated string": (header(len(body) + 3) + body + b"X=1", None),
            "too few strings": (header(12) + b"/bin/true\0/\0", None),
            "no numbers": (header(15) + b"/bin/true\0/\0-\0\0", None),
            "empty": (header(0), None),
            "a timeout that is no number": (numbers(timeout="3s"), None),
            "a negative deadline": (numbers(deadline="-1"), None),
            "kill signal 0": (numbers(signal_="0"), None),
            "kill signal 65": (numbers(signal_="65"), None),
            "an argument count beyond the strings": (numbers().replace(b"\x002\x00", b"\x009\x00"), None),
        }
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.addCleanup(os.close, devnull)
        for name, (raw, fds) in cases.items():
            fds = None if fds is None else [devnull] * len(fds)
            with self.subTest(name):
                h = self.helper()
                h.hand(raw=raw, fds=fds)
                self.assertEqual(h.read_reply(), (REPLY_MAGIC, -1, STAGE_ARGUMENTS, errno.EINVAL))
                self.assertEqual(h.wait(), 127)
                self.assertTrue(h.at_eof(), "nothing after the reply")
                self.assertFalse(os.path.exists(h.path("supervisor.lock")), "no lock was taken")
                self.assert_ran_nothing(h, marker)
        # The numbers given as they should be: it runs.
        h = self.helper()
        h.hand(raw=numbers(timeout="60000", deadline=str(now_ms() + 60000), signal_="64", grace="1"))
        self.assertGreater(h.read_reply()[1], 0)
        h.go()
        self.assertEqual(h.wait(), 0)
        self.assert_outcome(h, exit_code=0, cause="none")
        self.assertTrue(os.path.exists(marker))

    def test_refuses_an_attempt_another_supervisor_holds(self):
        first = self.helper()
        first.start("/bin/true", self.dir, "-", ["true"])
        second = Helper(self, first.attempt)
        second.hand("/usr/bin/touch", self.dir, "-", ["touch", os.path.join(self.dir, "ran")])
        magic, pid, stage, err = second.read_reply()
        self.assertEqual((magic, pid, stage), (REPLY_MAGIC, -1, STAGE_LOCK))
        self.assertIn(err, (errno.EAGAIN, errno.EACCES))
        self.assertEqual(second.wait(), 127)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")))
        self.assertEqual(lock_holder(first.path("supervisor.lock")), first.pid)
        first.go()
        self.assertEqual(first.wait(), 0)
        self.assert_outcome(first, exit_code=0)

    # -- failed steps ----------------------------------------------------------

    def test_reports_the_step_that_failed_in_the_outcome(self):
        absent = os.path.join(self.dir, "absent")
        cases = [
            ("/bin/true", absent, "-", STAGE_CHDIR, errno.ENOENT),
            (absent, self.dir, "-", STAGE_EXEC, errno.ENOENT),
            (self.dir, self.dir, "-", STAGE_EXEC, errno.EACCES),
            ("/bin/true", self.dir, "1000", STAGE_ARGUMENTS, errno.EINVAL),
            ("/bin/true", self.dir, "1:2:3,x", STAGE_ARGUMENTS, errno.EINVAL),
            ("/bin/true", self.dir, "99999999999:1:", STAGE_ARGUMENTS, errno.EINVAL),
            ("/bin/true", self.dir, "1:x:", STAGE_ARGUMENTS, errno.EINVAL),
        ]
        for exe, cwd, ids, stage, err in cases:
            with self.subTest(exe=exe, cwd=cwd, ids=ids):
                h = self.helper()
                h.start(exe, cwd, ids, ["prog"])
                h.go()
                self.assertEqual(h.wait(), 0, "the outcome was written")
                self.assert_outcome(h, exit_code=127, signal=None, cause="none", kills=[],
                                    spawn_error={"stage": stage, "errno": err})

    def test_a_user_switch_it_may_not_make_fails_with_eperm(self):
        # As root, the helper itself runs as nobody (65534) for this test.
        user = 65534 if os.geteuid() == 0 else None
        h = self.helper(user=user)
        os.chmod(h.attempt, 0o777)
        target = 1000 if os.geteuid() != 1000 else 1001
        h.start("/bin/true", self.dir, f"{target}:{target}:", ["true"])
        h.go()
        self.assertEqual(h.wait(), 0)
        self.assert_outcome(h, exit_code=127, spawn_error={"stage": STAGE_USER, "errno": errno.EPERM})

    def test_switches_to_the_submitter_with_its_groups(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP: switching users needs root")
        h = self.helper()
        h.start("/usr/bin/id", self.dir, "65534:65534:65534,100", ["id"])
        h.go()
        self.assertEqual(h.wait(), 0)
        self.assert_outcome(h, exit_code=0, spawn_error=None)
        out = h.read("stdout.log")
        self.assertIn("uid=65534", out)
        self.assertIn("gid=65534", out)
        self.assertRegex(out, r"groups=.*\b100\b")
        self.assertNotIn("(root)", out)

    # -- limits, signals, leftovers ---------------------------------------------

    def test_stops_the_job_at_its_timeout(self):
        h = self.helper()
        h.start("/bin/sleep", self.dir, "-", ["sleep", "30"], timeout_ms=300)
        h.go()
        self.assertEqual(h.wait(), 0)
        out = self.assert_outcome(h, exit_code=None, signal=signal.SIGTERM, cause="timeout",
                                  spawn_error=None)
        self.assertEqual([(k["signal"], k["leftovers"]) for k in out["kills"]], [(15, False)], out)
        # Counted from the job's start (a monotonic clock; the stamps are
        # wall-clock milliseconds, truncated).
        self.assertGreaterEqual(out["kills"][0]["unix_ms"] - out["started_unix_ms"], 298, out)
        self.assertLess(out["ended_unix_ms"] - out["started_unix_ms"], 10000, out)

    def test_stops_the_job_at_its_deadline(self):
        h = self.helper()
        deadline = now_ms() + 300
        h.start("/bin/sleep", self.dir, "-", ["sleep", "30"], deadline_ms=deadline)
        h.go()
        self.assertEqual(h.wait(), 0)
        out = self.assert_outcome(h, exit_code=None, signal=signal.SIGTERM, cause="deadline")
        self.assertEqual([k["signal"] for k in out["kills"]], [15], out)
        self.assertGreaterEqual(out["kills"][0]["unix_ms"], deadline, out)
        self.assertLess(out["ended_unix_ms"], deadline + 10000, out)

    def test_sends_sigkill_after_the_grace_to_a_job_that_ignores_the_kill_signal(self):
        h = self.helper()
        ready = os.path.join(self.dir, "ready")
        code = ("import os, signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                f"open({ready!r}, 'w').close()\n"
                "time.sleep(30)\n")
        h.start(sys.executable, self.dir, "-", ["python3", "-c", code], grace_ms=300)
        h.go()
        poll(lambda: os.path.exists(ready), "the job ignoring SIGTERM")
        os.kill(h.pid, signal.SIGUSR1)
        self.assertEqual(h.wait(), 0)
        out = self.assert_outcome(h, exit_code=None, signal=signal.SIGKILL, cause="cancelled")
        self.assertEqual([(k["signal"], k["leftovers"]) for k in out["kills"]], [(15, False), (9, False)], out)
        self.assertGreaterEqual(out["kills"][1]["unix_ms"] - out["kills"][0]["unix_ms"], 298, out)

    def test_cancel_and_stop_signals_run_the_kill_sequence(self):
        cases = [(signal.SIGUSR1, "cancelled"), (signal.SIGTERM, "interrupted"),
                 (signal.SIGINT, "interrupted"), (signal.SIGHUP, "interrupted")]
        for sig, cause in cases:
            with self.subTest(sig.name):
                h = self.helper()
                # The kill signal is the job's own: SIGUSR2, not the one received.
                h.start("/bin/sleep", self.dir, "-", ["sleep", "30"], kill_signal=signal.SIGUSR2)
                h.go()
                poll(lambda: h.job_running("sleep"), "the job's exec")
                os.kill(h.pid, sig)
                self.assertEqual(h.wait(), 0)
                out = self.assert_outcome(h, exit_code=None, signal=signal.SIGUSR2, cause=cause)
                self.assertEqual([k["signal"] for k in out["kills"]], [signal.SIGUSR2], out)

    def test_kills_what_the_job_leaves_behind_before_it_ends(self):
        h = self.helper()
        # One in a session of its own, one orphaned by a subshell: neither is
        # in the job's process group, both are the helper's to reap.
        tag = f"{os.getpid()}{time.monotonic_ns() % 1000000:06d}"
        leftovers = [[b"sleep", f"1000.{tag}".encode()], [b"sleep", f"1001.{tag}".encode()]]

        def running():
            return [int(p) for p in os.listdir("/proc")
                    if p.isdigit() and pid_alive(int(p)) and argv_of(int(p)) in leftovers]

        self.addCleanup(lambda: [kill_quietly(p, b"sleep") for p in running()])
        script = (f"setsid sleep 1000.{tag} & echo $! > a.pid; "
                  f"(sleep 1001.{tag} & echo $! > b.pid); exit 0")
        h.start("/bin/sh", self.dir, "-", ["sh", "-c", script])
        h.go()
        self.assertEqual(h.wait(), 0)
        pids = [int(read_text(os.path.join(self.dir, n))) for n in ("a.pid", "b.pid")]
        self.assertEqual([p for p in pids if pid_alive(p)], [],
                         "the job's leftovers died before the helper exited")
        self.assertEqual(running(), [], "the job's leftovers died before the helper exited")
        out = self.assert_outcome(h, exit_code=0, signal=None, cause="none", survivors=False)
        self.assertEqual([(k["signal"], k["leftovers"]) for k in out["kills"]], [(15, True)], out)

    def test_kills_a_leftover_that_ignores_the_kill_signal_after_the_grace(self):
        h = self.helper()
        ready = os.path.join(self.dir, "ready")
        code = ("import os, signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                f"with open({ready!r} + '.tmp', 'w') as f: f.write(str(os.getpid()))\n"
                f"os.rename({ready!r} + '.tmp', {ready!r})\n"
                "time.sleep(30)\n")
        script = f"setsid {sys.executable} -c \"$1\" & while [ ! -e {ready} ]; do sleep 0.02; done; exit 0"
        h.start("/bin/sh", self.dir, "-", ["sh", "-c", script, "sh", code], grace_ms=300,
                timeout_ms=WAIT * 1000)
        h.go()
        self.assertEqual(h.wait(), 0)
        leftover = int(read_text(ready))
        self.addCleanup(kill_quietly, leftover, b"python3")
        self.assertFalse(pid_alive(leftover) and argv_of(leftover)[0].endswith(b"python3"),
                         "the leftover died before the helper exited")
        out = self.assert_outcome(h, exit_code=0, cause="none")
        self.assertEqual([(k["signal"], k["leftovers"]) for k in out["kills"]], [(15, True), (9, True)], out)
        self.assertGreaterEqual(out["kills"][1]["unix_ms"] - out["kills"][0]["unix_ms"], 298, out)

    def test_records_the_jobs_resource_use(self):
        h = self.helper()
        code = ("import time\n"
                "block = bytearray(64 << 20)\n"
                "for i in range(0, len(block), 4096): block[i] = 1\n"
                "end = time.process_time() + 0.3\n"
                "while time.process_time() < end: pass\n")
        h.start(sys.executable, self.dir, "-", ["python3", "-c", code])
        h.go()
        self.assertEqual(h.wait(), 0)
        out = self.assert_outcome(h, exit_code=0, cause="none")
        self.assertGreaterEqual(out["cpu_user_s"] + out["cpu_sys_s"], 0.25, out)
        self.assertGreaterEqual(out["max_rss_kb"], 64 << 10, out)

    def test_records_a_job_process_killed_before_the_go_byte(self):
        # Killed by someone (an administrator, the OOM killer) while it waited:
        # the go finds no reader; the helper still records what happened.
        h = self.helper()
        marker = os.path.join(self.dir, "ran")
        job = h.start("/usr/bin/touch", self.dir, "-", ["touch", marker])
        os.kill(job, signal.SIGKILL)
        poll(lambda: proc_stat(job) is None or proc_stat(job)[0] == "Z", "the job's process killed")
        h.go()
        self.assertEqual(h.wait(), 0, "it wrote the outcome and exited 0")
        self.assert_outcome(h, exit_code=None, signal=signal.SIGKILL, cause="none", spawn_error=None)
        self.assertFalse(os.path.exists(marker))

    # -- independence ------------------------------------------------------------

    def test_the_job_dies_with_its_helper(self):
        h = self.helper()
        job = h.start("/bin/sleep", self.dir, "-", ["sleep", "30"])
        h.go()
        poll(lambda: h.job_running("sleep"), "the job's exec")
        h.proc.kill()
        self.assertEqual(h.wait(), -signal.SIGKILL)
        poll(lambda: not pid_alive(job), f"the end of the job {job} (its parent-death signal)")
        self.assertIsNone(h.outcome())
        self.assertIsNone(lock_holder(h.path("supervisor.lock")))

    def test_the_job_outlives_the_daemon_that_started_its_helper(self):
        h = self.helper(orphan=True)
        release = os.path.join(self.dir, "release")
        script = f"while [ ! -e {release} ]; do sleep 0.02; done; echo released; exit 5"
        job = h.start("/bin/sh", self.dir, "-", ["sh", "-c", script], timeout_ms=WAIT * 1000)
        self.assertEqual(stat_fields(h.pid)[0], h.intermediate.pid)
        h.go()
        self.assertTrue(h.at_eof())
        h.sock.close()
        # The helper's parent, "the daemon", exits.
        h.intermediate.stdin.close()
        self.assertEqual(h.intermediate.wait(timeout=WAIT), 0)
        self.assertNotEqual(stat_fields(h.pid)[0], h.intermediate.pid)
        self.assertTrue(pid_alive(h.pid), "the helper lives on")
        self.assertTrue(pid_alive(job), "the job runs on")
        self.assertEqual(stat_fields(job)[0], h.pid, "still the helper's child")
        self.assertEqual(lock_holder(h.path("supervisor.lock")), h.pid)
        with open(release, "w"):
            pass
        h.wait()
        self.assert_outcome(h, exit_code=5, cause="none")
        self.assertEqual(h.read("stdout.log"), "released\n")

    # -- the daemon's side ----------------------------------------------------------

    def test_daemon_keeps_one_idle_helper_ready_and_hands_it_the_next_job(self):
        spool = self.make_spool()
        spool.wait_for(lambda: len(helpers_of(spool)) == 1, what="one idle helper")
        idle = helpers_of(spool)[0]
        self.assertFalse(is_handed_a_job(idle), "it holds no job")
        self.assertEqual(fds_of(idle), [0, 1, 2, 3], "its descriptors: /dev/null and the socket")
        self.assertEqual(proc_stat(idle)[1], spool.proc.pid, "a child of the daemon, which reaps it")
        # The next job goes to it: it becomes the job's supervisor and parent.
        release = os.path.join(self.dir, "release")
        spool.drop_job("in-the-idle-helper",
                       command=["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.02; done"])
        st = spool.wait_state("in-the-idle-helper", ["running"])
        attempt = st["attempts"][-1]
        self.assertEqual(attempt["supervisor_pid"], idle, st)
        self.assertNotEqual(st["pid"], idle, st)
        self.assertEqual(proc_stat(st["pid"])[1], idle, "the job is its supervisor's child")
        folder = spool.path("jobs", "in-the-idle-helper", "attempts", "1")
        self.assertEqual(lock_holder(os.path.join(folder, "supervisor.lock")), idle)
        # The daemon keeps another one ready meanwhile.
        spool.wait_for(lambda: [p for p in helpers_of(spool) if p != idle],
                       what="another idle helper while the job runs")
        with open(release, "w"):
            pass
        self.assertEqual(spool.wait_terminal("in-the-idle-helper")["state"], "succeeded")
        spool.wait_for(lambda: not pid_alive(idle), what="the supervisor's end")
        with open(os.path.join(folder, "outcome.json"), encoding="utf-8") as f:
            out = json.load(f)
        self.assertEqual((out["supervisor_pid"], out["job_pid"], out["exit_code"]), (idle, st["pid"], 0))
        spool.wait_for(lambda: len(helpers_of(spool)) == 1, what="one idle helper again")
        # Killed by someone: the daemon notices, starts another, and jobs run.
        idle = helpers_of(spool)[0]
        os.kill(idle, signal.SIGKILL)
        spool.wait_for(lambda: helpers_of(spool) not in ([], [idle]), what="a replacement")
        self.assertIn(f"the idle exec helper {idle} ended (signal 9)", spool.log_text())
        st = spool.run_job("after-the-kill", command=["true"])
        self.assertEqual(st["state"], "succeeded", st)
        # A stop lets the idle helper go at once; the supervisor of a running
        # job stays, and the job runs on.
        release2 = release + "2"
        spool.drop_job("runs-on", command=["sh", "-c", f"while [ ! -e {release2} ]; do sleep 0.02; done"])
        st = spool.wait_state("runs-on", ["running"])
        supervisor = st["attempts"][-1]["supervisor_pid"]
        idle = spool.wait_for(lambda: [p for p in helpers_of(spool) if p != supervisor],
                              what="an idle helper")
        spool.proc.send_signal(signal.SIGTERM)
        spool.wait_for(lambda: not [p for p in idle if pid_alive(p)], timeout=2,
                       daemon_must_live=False, what="the idle helper let go as the daemon stops")
        spool.stop()
        self.assertTrue(pid_alive(supervisor) and pid_alive(st["pid"]),
                        "the running job and its supervisor outlive the daemon")
        with open(release2, "w"):
            pass
        spool.wait_for(lambda: not pid_alive(supervisor), daemon_must_live=False,
                       what="the supervisor's end after its job's")
        with open(spool.path("jobs", "runs-on", "attempts", "1", "outcome.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["exit_code"], 0)

    def test_daemon_without_its_helper_refuses_to_start_and_says_where_it_looked(self):
        spool = self.make_spool(start=False)
        alone = os.path.join(self.dir, "bin")
        os.mkdir(alone)
        shutil.copy2(spoold_bin(), os.path.join(alone, "spoold"))
        binary = os.path.join(alone, "spoold")
        for args in ([], ["--check"]):
            with self.subTest(args=args):
                proc = subprocess.run([binary, "--config", spool.config_path, *args],
                                      capture_output=True, text=True, timeout=WAIT,
                                      stdin=subprocess.DEVNULL)
                out = proc.stdout + proc.stderr
                self.assertEqual(proc.returncode, 1, out)
                self.assertIn(os.path.join(alone, "spoold-exec"), out)
                self.assertIn(os.path.join(alone, "../libexec/spoold/spoold-exec"), out)
        self.assertFalse(os.path.exists(os.path.join(spool.root, "spoold.lock")),
                         "it stopped before touching the spool")
        # The install layout: sbin/spoold with libexec/spoold/spoold-exec.
        libexec = os.path.join(self.dir, "libexec", "spoold")
        os.makedirs(libexec)
        installed = os.path.join(libexec, "spoold-exec")
        shutil.copy2(spoold_exec_bin(), installed)
        proc = subprocess.run([binary, "--config", spool.config_path, "--check"],
                              capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("libexec/spoold/spoold-exec", proc.stdout)
        spool.binary = binary
        spool.start()
        helper = spool.wait_for(lambda: helpers_of(spool), what="an idle helper")[0]
        self.assertEqual(os.path.realpath(f"/proc/{helper}/exe"), os.path.realpath(installed))
        st = spool.run_job("through-the-installed-helper", command=["true"])
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["attempts"][-1]["supervisor_pid"], helper, st)
        spool.stop()


if __name__ == "__main__":
    unittest.main()
