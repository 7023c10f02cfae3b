"""spoold-exec, the helper each local attempt's process starts as
(daemon/exec_protocol.h), driven directly through its protocol: started ahead
of time, it waits on descriptor 3 (a socket) for a job and then for one byte,
reports a failed step on descriptor 4, and runs nothing if the daemon is gone.
The daemon side (the idle helper it keeps, finding the helper, refusing to
start without it) is tested at the end."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from harness import SpoolTestMixin, spoold_bin, spoold_exec_bin
from harness_sched import helpers_of, is_handed_a_job, pid_alive

STAGE_CHDIR, STAGE_ARGUMENTS, STAGE_EXEC, STAGE_USER = 1, 2, 3, 5
MAGIC = 0x73706531
EINVAL = 22


def request(exe, cwd, ids, argv, env):
    body = b"".join(os.fsencode(x) + b"\0" for x in [exe, cwd, ids, str(len(argv)), *argv, *env])
    return struct.pack("=II", MAGIC, len(body)) + body


class Helper:
    """spoold-exec started as the daemon starts it: socket on 3, report on 4."""

    def __init__(self, label="/some/spool"):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.rep_r, self.rep_w = os.pipe()
        self.out = tempfile.TemporaryFile()
        fd = theirs.fileno()

        def place():
            os.dup2(fd, 3)
            os.dup2(self.rep_w, 4)

        self.proc = subprocess.Popen(
            [spoold_exec_bin(), label], executable=spoold_exec_bin(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={}, preexec_fn=place, pass_fds=(3, 4))
        theirs.close()
        os.close(self.rep_w)

    def hand(self, exe, cwd, ids, argv, env=("PATH=/usr/bin:/bin",), raw=None, fds=None):
        """Hands it a job whose stdout and stderr go to self.out."""
        fds = [self.out.fileno(), self.out.fileno()] if fds is None else fds
        data = raw if raw is not None else request(exe, cwd, ids, argv, env)
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)

    def release(self):
        try:
            self.sock.sendall(b"g")
        except (BrokenPipeError, ConnectionResetError):
            pass  # it refused the request and exited before the go byte
        self.sock.close()

    def abandon(self):
        self.sock.close()

    def finish(self):
        code = self.proc.wait(timeout=20)
        report = os.read(self.rep_r, 64)
        os.close(self.rep_r)
        self.out.seek(0)
        return code, report, self.out.read().decode()


class ExecHelperTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="spoold-exec-test-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_runs_the_program_after_the_go_byte_with_only_its_descriptors(self):
        marker = os.path.join(self.dir, "ran")
        h = Helper()
        h.hand("/bin/sh", self.dir, "-",
               ["sh", "-c", f"touch {marker}; pwd; echo \"$MARK\"; ls /proc/self/fd"],
               env=["PATH=/usr/bin:/bin", "MARK=from-the-job-env"])
        time.sleep(0.3)
        self.assertFalse(os.path.exists(marker), "it waits for the go byte")
        self.assertIsNone(h.proc.poll())
        h.release()
        code, report, out = h.finish()
        self.assertEqual(code, 0, out)
        self.assertEqual(report, b"", "the report pipe closes on exec, silently")
        lines = out.split()
        self.assertEqual(lines[0], self.dir, "it entered CWD")
        self.assertEqual(lines[1], "from-the-job-env", "the environment is the job's")
        # ls lists 0, 1, 2 and the descriptor of the folder it reads (3): the
        # socket (3) and the descriptors that came through it were closed, and
        # the report pipe (4) closed on exec.
        self.assertEqual(lines[2:], ["0", "1", "2", "3"], out)

    def test_runs_nothing_when_the_daemon_goes_away_before_the_go_byte(self):
        marker = os.path.join(self.dir, "ran")
        for handed in (False, True):
            with self.subTest(handed_a_job=handed):
                h = Helper()
                if handed:
                    h.hand("/usr/bin/touch", self.dir, "-", ["touch", marker])
                h.abandon()
                code, report, out = h.finish()
                self.assertEqual(code, 127, out)
                self.assertEqual(report, b"", "nothing failed: it had nothing to run")
                self.assertFalse(os.path.exists(marker), "the program never ran")

    def test_reports_the_step_that_failed(self):
        cases = [
            ("/bin/true", os.path.join(self.dir, "absent"), "-", STAGE_CHDIR, 2),   # ENOENT
            (os.path.join(self.dir, "absent"), self.dir, "-", STAGE_EXEC, 2),       # ENOENT
            ("/bin/true", self.dir, "1000", STAGE_ARGUMENTS, 22),                   # EINVAL
            ("/bin/true", self.dir, "1:2:3,x", STAGE_ARGUMENTS, 22),
            ("/bin/true", self.dir, "99999999999:1:", STAGE_ARGUMENTS, 22),
        ]
        for exe, cwd, ids, stage, err in cases:
            with self.subTest(exe=exe, cwd=cwd, ids=ids):
                h = Helper()
                h.hand(exe, cwd, ids, ["prog"])
                h.release()
                code, report, out = h.finish()
                self.assertEqual(code, 127, out)
                self.assertEqual(struct.unpack("ii", report), (stage, err))

    def test_refuses_a_request_it_does_not_understand(self):
        good = request("/bin/true", self.dir, "-", ["true"], [])
        body = good[8:]
        cases = {
            "wrong magic": (struct.pack("=II", 0x12345678, len(body)) + body, None),
            "no descriptors": (good, []),
            "one descriptor": (good, [0]),
            "no argument": (request("/bin/true", self.dir, "-", [], []), None),
            "an unterminated string": (struct.pack("=II", MAGIC, len(body) + 3) + body + b"X=1", None),
            "too few strings": (struct.pack("=II", MAGIC, 12) + b"/bin/true\0/\0", None),
            "empty": (struct.pack("=II", MAGIC, 0), None),
        }
        for name, (raw, fds) in cases.items():
            with self.subTest(name):
                h = Helper()
                h.hand(None, None, None, None, raw=raw, fds=fds)
                h.release()
                code, report, out = h.finish()
                self.assertEqual(code, 127, out)
                self.assertEqual(struct.unpack("ii", report), (STAGE_ARGUMENTS, EINVAL))

    def test_switches_to_the_submitter_with_its_groups(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP: switching users needs root")
        h = Helper()
        h.hand("/usr/bin/id", self.dir, "65534:65534:65534,100", ["id"])
        h.release()
        code, report, out = h.finish()
        self.assertEqual(code, 0, out)
        self.assertEqual(report, b"")
        self.assertIn("uid=65534", out)
        self.assertIn("gid=65534", out)
        self.assertRegex(out, r"groups=.*\b100\b")
        self.assertNotIn("(root)", out)

    def test_refuses_to_run_outside_the_protocol(self):
        proc = subprocess.run([spoold_exec_bin(), "/some/spool"],
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not for direct use", proc.stderr)

    def test_daemon_keeps_one_idle_helper_ready_and_replaces_it(self):
        spool = self.make_spool()
        spool.wait_for(lambda: len(helpers_of(spool)) == 1, what="one idle helper")
        idle = helpers_of(spool)[0]
        self.assertFalse(is_handed_a_job(idle), "it holds no job: its stdout is /dev/null")
        with open(f"/proc/{idle}/status") as f:
            ppid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
        self.assertEqual(ppid, spool.proc.pid, "a child of the daemon, which reaps it")
        # The next job runs in it: its pid is the job's.
        spool.drop_job("in-the-idle-helper", command=["sleep", "0.5"])
        st = spool.wait_state("in-the-idle-helper", ["running"])
        self.assertEqual(st["pid"], idle, st)
        self.assertEqual(spool.wait_terminal("in-the-idle-helper")["state"], "succeeded")
        spool.wait_for(lambda: len(helpers_of(spool)) == 1, what="another idle helper")
        # Killed by someone: the daemon notices, starts another, and jobs run.
        idle = helpers_of(spool)[0]
        os.kill(idle, signal.SIGKILL)
        spool.wait_for(lambda: helpers_of(spool) not in ([], [idle]), what="a replacement")
        self.assertIn(f"the idle exec helper {idle} ended (signal 9)", spool.log_text())
        st = spool.run_job("after-the-kill", command=["true"])
        self.assertEqual(st["state"], "succeeded", st)
        # A stop lets it go at once, not only when the daemon exits: here the
        # daemon lives on while a job that ignores SIGTERM finishes.
        spool.drop_job("slow-to-stop", command=["sh", "-c", "trap '' TERM; sleep 1.5"])
        spool.wait_state("slow-to-stop", ["running"])
        idle = spool.wait_for(lambda: helpers_of(spool), what="an idle helper")
        spool.proc.send_signal(signal.SIGTERM)
        spool.wait_for(lambda: not [p for p in idle if pid_alive(p)], timeout=1,
                       what="the idle helper let go while the daemon stops")
        spool.stop()

    def test_daemon_without_its_helper_refuses_to_start_and_says_where_it_looked(self):
        spool = self.make_spool(start=False)
        alone = os.path.join(self.dir, "bin")
        os.mkdir(alone)
        shutil.copy2(spoold_bin(), os.path.join(alone, "spoold"))
        binary = os.path.join(alone, "spoold")
        for args in ([], ["--check"]):
            with self.subTest(args=args):
                proc = subprocess.run([binary, "--config", spool.config_path, *args],
                                      capture_output=True, text=True, timeout=20,
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
        shutil.copy2(spoold_exec_bin(), os.path.join(libexec, "spoold-exec"))
        proc = subprocess.run([binary, "--config", spool.config_path, "--check"],
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("libexec/spoold/spoold-exec", proc.stdout)
        spool.binary = binary
        spool.start()
        spool.run_job("through-the-installed-helper", command=["true"])
        self.assertEqual(spool.status("through-the-installed-helper")["state"], "succeeded")
        spool.stop()


if __name__ == "__main__":
    unittest.main()
