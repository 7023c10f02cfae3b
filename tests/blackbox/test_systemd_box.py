"""spoold under a real systemd (PID 1), from its .deb, in a Debian 12 container
(tests/systemd-box/): the package installs, the service starts as Type=notify
and runs a job, reloads on SIGHUP, survives a restart without losing a job,
takes a reinstall over it, and purges cleanly. Needs root (the container), and
the optimized build that `make test` makes (SPOOLD_RELEASE_BUILD_DIR): the
.deb of the sanitizer build would need the sanitizers' runtimes in the box."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import cannot_run, source_dir

BOX = os.path.join(source_dir(), "tests", "systemd-box")
BOX_DIR = os.environ.get("BOX_DIR", "/var/lib/machines/spoold-box")
SPOOL = "/var/spool/spoold"


def box(*argv, timeout=120, check=True):
    proc = subprocess.run([os.path.join(BOX, "box.sh"), *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"in the box: {' '.join(argv)} exited {proc.returncode}\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc


def host_path(path):
    """The box's root file system is a folder of this machine."""
    return BOX_DIR + path


def read_status(job_id):
    try:
        with open(host_path(f"{SPOOL}/jobs/{job_id}/status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                         + box("journalctl", "-u", "spoold", "--no-pager", "-n", "40", check=False).stdout)


def drop_job(job_id, toml):
    """Submits as the user spoold, the way SPEC.md section 2 says."""
    box("runuser", "-u", "spoold", "--", "sh", "-c",
        f"printf '%s' '{toml}' > {SPOOL}/tmp/{job_id}.toml && mv {SPOOL}/tmp/{job_id}.toml {SPOOL}/incoming/")


class SystemdBoxTest(unittest.TestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP: the systemd box (a container) needs root")
        release = os.environ.get("SPOOLD_RELEASE_BUILD_DIR")
        if not release or not os.path.isfile(os.path.join(release, "spoold")):
            cannot_run(self, "SPOOLD_RELEASE_BUILD_DIR does not name an optimized build with spoold "
                             "(make test builds one in build/)")
        self.release = release
        start = subprocess.run([os.path.join(BOX, "start-box.sh")], capture_output=True, text=True,
                               timeout=900, stdin=subprocess.DEVNULL)
        if start.returncode != 0:
            cannot_run(self, f"the systemd box did not start:\n{start.stdout}{start.stderr}")

    def package(self):
        out = tempfile.mkdtemp(prefix="spoold-box-deb-")
        self.addCleanup(shutil.rmtree, out, ignore_errors=True)
        proc = subprocess.run(["cpack", "-G", "DEB", "-B", out], cwd=self.release, capture_output=True,
                              text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        deb = [f for f in os.listdir(out) if f.endswith(".deb")][0]
        shutil.copy(os.path.join(out, deb), host_path("/root/spoold.deb"))
        return "/root/spoold.deb"

    def test_the_deb_under_systemd(self):
        box("sh", "-c", "apt-get purge -y -qq spoold >/dev/null 2>&1; rm -rf /var/spool/spoold; true")
        deb = self.package()
        box("apt-get", "update", "-qq", timeout=600)
        box("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", deb, timeout=600)
        self.addCleanup(box, "apt-get", "purge", "-y", "-qq", "spoold", check=False, timeout=300)
        box("systemctl", "enable", "--now", "spoold")
        # Type=notify: active only once READY=1 came, with the counts in STATUS=.
        self.assertEqual(box("systemctl", "is-active", "spoold", check=False).stdout.strip(), "active")
        status_text = box("systemctl", "show", "-p", "StatusText", "--value", "spoold").stdout
        self.assertRegex(status_text, r"\d+ running")
        main_pid = box("systemctl", "show", "-p", "MainPID", "--value", "spoold").stdout.strip()

        drop_job("hello", 'command = ["sh", "-c", "echo hello from the box > out.txt"]\n')
        st = wait_for(lambda: (s := read_status("hello")) and s["state"] in ("succeeded", "failed") and s,
                      "job hello to end")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["owner"], "spoold")
        with open(host_path(f"{SPOOL}/jobs/hello/results/out.txt")) as f:
            self.assertEqual(f.read(), "hello from the box\n")

        # Reload: SIGHUP to the same process, which stays active.
        box("systemctl", "reload", "spoold")
        wait_for(lambda: "reloaded" in box("journalctl", "-u", "spoold", "--no-pager").stdout,
                 "the reload in the journal")
        self.assertEqual(box("systemctl", "show", "-p", "MainPID", "--value", "spoold").stdout.strip(), main_pid)

        # Restart with a job running: the job is not lost. (Today it is stopped
        # and runs again as the next attempt; jobs that outlive the daemon are
        # the next step.)
        drop_job("long", 'command = ["sleep", "30"]\n')
        wait_for(lambda: (s := read_status("long")) and s["state"] == "running", "job long running")
        box("systemctl", "restart", "spoold", timeout=180)
        self.assertEqual(box("systemctl", "is-active", "spoold", check=False).stdout.strip(), "active")
        st = wait_for(lambda: (s := read_status("long")) and s["state"] == "running" and s["attempt"] == 2 and s,
                      "job long running again after the restart")
        self.assertEqual(st["attempts"][0]["reason"], "interrupted", st["attempts"])

        # A reinstall over the running service keeps it running and its jobs known.
        box("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "--reinstall", deb,
            timeout=600)
        self.assertEqual(box("systemctl", "is-active", "spoold", check=False).stdout.strip(), "active")
        self.assertEqual(read_status("hello")["state"], "succeeded")

        # Purge: the service stops, its files go.
        box("apt-get", "purge", "-y", "-qq", "spoold", timeout=300)
        self.assertNotEqual(box("systemctl", "is-active", "spoold", check=False).stdout.strip(), "active")
        self.assertFalse(os.path.exists(host_path("/usr/sbin/spoold")))


if __name__ == "__main__":
    unittest.main()
