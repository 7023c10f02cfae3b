"""spoold-exec, the helper each local attempt starts as (daemon/exec_protocol.h),
driven directly through its protocol: it waits for one byte on descriptor 3,
reports a failed step on descriptor 4, and runs nothing if the daemon is gone.
The daemon side (finding the helper, refusing to start without it) is tested
at the end."""
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

from harness import SpoolTestMixin, spoold_bin, spoold_exec_bin

STAGE_CHDIR, STAGE_ARGUMENTS, STAGE_EXEC, STAGE_USER = 1, 2, 3, 5


class Helper:
    """spoold-exec started as the daemon starts it: go pipe on 3, report on 4."""

    def __init__(self, exe, cwd, ids, argv, env=None):
        self.go_r, self.go_w = os.pipe()
        self.rep_r, self.rep_w = os.pipe()
        self.out = tempfile.TemporaryFile()

        def place():
            os.dup2(self.go_r, 3)
            os.dup2(self.rep_w, 4)

        self.proc = subprocess.Popen(
            [spoold_exec_bin(), exe, cwd, ids, *argv], executable=spoold_exec_bin(),
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
            env=env or {"PATH": "/usr/bin:/bin"}, preexec_fn=place, pass_fds=(3, 4))
        os.close(self.go_r)
        os.close(self.rep_w)

    def release(self):
        os.write(self.go_w, b"g")
        os.close(self.go_w)

    def abandon(self):
        os.close(self.go_w)

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
        h = Helper("/bin/sh", self.dir, "-",
                   ["sh", "-c", "pwd; echo \"$MARK\"; ls /proc/self/fd"],
                   env={"PATH": "/usr/bin:/bin", "MARK": "from-the-job-env"})
        h.release()
        code, report, out = h.finish()
        self.assertEqual(code, 0, out)
        self.assertEqual(report, b"", "the report pipe closes on exec, silently")
        lines = out.split()
        self.assertEqual(lines[0], self.dir, "it entered CWD")
        self.assertEqual(lines[1], "from-the-job-env", "the environment is the job's")
        # ls lists 0, 1, 2 and the descriptor of the folder it reads (3): the
        # go pipe (3) was closed and the report pipe (4) closed on exec.
        self.assertEqual(lines[2:], ["0", "1", "2", "3"], out)

    def test_runs_nothing_when_the_daemon_goes_away_before_the_go_byte(self):
        marker = os.path.join(self.dir, "ran")
        h = Helper("/usr/bin/touch", self.dir, "-", ["touch", marker])
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
                h = Helper(exe, cwd, ids, ["prog"])
                h.release()
                code, report, out = h.finish()
                self.assertEqual(code, 127, out)
                self.assertEqual(struct.unpack("ii", report), (stage, err))

    def test_switches_to_the_submitter_with_its_groups(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP: switching users needs root")
        h = Helper("/usr/bin/id", self.dir, "65534:65534:65534,100", ["id"])
        h.release()
        code, report, out = h.finish()
        self.assertEqual(code, 0, out)
        self.assertEqual(report, b"")
        self.assertIn("uid=65534", out)
        self.assertIn("gid=65534", out)
        self.assertRegex(out, r"groups=.*\b100\b")
        self.assertNotIn("(root)", out)

    def test_refuses_to_run_outside_the_protocol(self):
        proc = subprocess.run([spoold_exec_bin(), "/bin/true", "/", "-", "true"],
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not for direct use", proc.stderr)

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
