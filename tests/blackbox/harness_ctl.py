"""spoolctl helpers for the black-box tests of spoold (not a test file): where
spoolctl is, an environment that does not name a spool, and `SpoolctlMixin`,
which runs spoolctl against a test's spool. Used by test_spoolctl.py and
test_spoolctl_control.py, beside harness.SpoolTestMixin.
"""
import json
import os
import subprocess
import unittest

CTL_TIMEOUT = 60


def spoolctl_bin():
    build = os.environ.get("SPOOLD_BUILD_DIR")
    path = os.environ.get("SPOOLCTL_BIN") or (build and os.path.join(build, "spoolctl"))
    if not path:
        raise unittest.SkipTest("set SPOOLCTL_BIN to the spoolctl executable")
    return path


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("SPOOLD_ROOT", "NO_COLOR")}
    env.update(extra)
    return env


class SpoolctlMixin:
    """Mix into the file's one unittest.TestCase class, with harness.SpoolTestMixin."""

    def ctl(self, spool, *args, input=None, env=None, root=True, expect=None):
        """Runs spoolctl (with --root of `spool` unless root=False); checks the
        exit code when `expect` is given."""
        argv = [spoolctl_bin()]
        if root and spool is not None:
            argv += ["--root", spool.root]
        argv += list(args)
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=CTL_TIMEOUT,
                              env=env or clean_env(), cwd=spool.base if spool else None)
        proc.out = proc.stdout.decode("utf-8", "replace")
        proc.err = proc.stderr.decode("utf-8", "replace")
        if expect is not None:
            self.assertEqual(proc.returncode, expect,
                             f"spoolctl {' '.join(args)}\nstdout: {proc.out}\nstderr: {proc.err}")
        return proc

    def json_out(self, proc):
        return json.loads(proc.out)

    def write(self, spool, name, text):
        path = os.path.join(spool.base, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def job_file(self, spool, name, command='["true"]', extra=""):
        return self.write(spool, name, f"command = {command}\n{extra}")

    def submit(self, spool, path, *args):
        proc = self.ctl(spool, "submit", path, *args, expect=0)
        return proc.out.strip()
