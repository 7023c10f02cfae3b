"""spoold under a real systemd (PID 1), from its .deb, in a Debian 12 container
(tests/systemd-box/): the package installs, the service starts as Type=notify
and runs a job, reloads on SIGHUP; a running job outlives `systemctl restart`,
an upgrade of the package and `systemctl stop`, and the next daemon adopts it
(issue 16); a purge stops the service and leaves the jobs running. Needs root
(the container), and the optimized build that `make test` makes
(SPOOLD_RELEASE_BUILD_DIR): the .deb of the sanitizer build would need the
sanitizers' runtimes in the box."""
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


def read_events(job_id):
    try:
        with open(host_path(f"{SPOOL}/jobs/{job_id}/events.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def describe(job_id):
    """What a failure message shows of a job: its state, attempts and last events."""
    st = read_status(job_id) or {}
    attempts = [{k: a.get(k) for k in ("attempt", "reason", "pid", "pid_start", "supervisor_pid")}
                for a in st.get("attempts", [])]
    events = [f"  {e.get('event')} (attempt {e.get('attempt')}): {e.get('message')}"
              for e in read_events(job_id)[-12:]]
    return (f"job {job_id}: state {st.get('state')}, reason {st.get('reason')}, attempt {st.get('attempt')}\n"
            f"attempts: {attempts}\nlast events:\n" + "\n".join(events))


def process_start(pid):
    """A live process of the box: its start time (clock ticks since boot, /proc/PID/stat
    field 22, what status.json's pid_start holds); None when it is gone or a zombie."""
    stat = box("cat", f"/proc/{pid}/stat", check=False).stdout
    if ")" not in stat:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # fields[0] is field 3, the state
    return None if fields[0] in ("Z", "X") else int(fields[19])


def journal():
    return box("journalctl", "-u", "spoold", "--no-pager", "-n", "40", check=False).stdout


def wait_for(predicate, what, timeout=60, detail=journal):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n" + detail())


def is_active():
    return box("systemctl", "is-active", "spoold", check=False).stdout.strip()


def main_pid():
    return box("systemctl", "show", "-p", "MainPID", "--value", "spoold").stdout.strip()


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

    def package(self, name, version=None):
        """The release build's .deb, copied into the box as /root/NAME; `version`
        overrides the package's version (cpack -R), to make an upgrade of it."""
        out = tempfile.mkdtemp(prefix="spoold-box-deb-")
        self.addCleanup(shutil.rmtree, out, ignore_errors=True)
        argv = ["cpack", "-G", "DEB", "-B", out] + (["-R", version] if version else [])
        proc = subprocess.run(argv, cwd=self.release, capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        deb = [f for f in os.listdir(out) if f.endswith(".deb")][0]
        shutil.copy(os.path.join(out, deb), host_path(f"/root/{name}"))
        return f"/root/{name}"

    def install(self, deb):
        return box("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", deb,
                   timeout=600)

    def start_job(self, job_id, command):
        """Drops a job and waits until it runs; returns its process (pid, pid_start)."""
        drop_job(job_id, f"command = {json.dumps(command)}\n")
        st = wait_for(lambda: (s := read_status(job_id)) and s["state"] == "running" and s["pid"] and s,
                      f"job {job_id} running", detail=lambda: describe(job_id) + "\n" + journal())
        pid, pid_start = st["attempts"][-1]["pid"], st["attempts"][-1]["pid_start"]
        self.assertEqual(process_start(pid), pid_start,
                         f"status.json's pid and pid_start name the job's process in the box\n{describe(job_id)}")
        return pid, pid_start

    def assert_kept(self, job_id, pid, pid_start, adoptions, after):
        """After `after` (the daemon was stopped and started), job_id's first
        attempt runs on as the same process and the daemon adopted it."""
        self.assertEqual(process_start(pid), pid_start,
                         f"job {job_id}'s process {pid} did not outlive {after}\n{describe(job_id)}")
        wait_for(lambda: sum(e.get("event") == "adopted" for e in read_events(job_id)) >= adoptions,
                 f"history event `adopted` number {adoptions} of job {job_id} after {after}", timeout=30,
                 detail=lambda: describe(job_id) + "\n" + journal())
        st = read_status(job_id)
        self.assertEqual((st["state"], st["attempt"], len(st["attempts"]), st["attempts"][0]["pid"]),
                         ("running", 1, 1, pid), f"after {after}\n{describe(job_id)}")

    def test_the_deb_under_systemd(self):
        # Jobs left by an earlier run outlive a purge: `systemctl kill` ends them.
        box("sh", "-c", "systemctl kill spoold 2>/dev/null; apt-get purge -y -qq spoold >/dev/null 2>&1;"
                        " rm -rf /var/spool/spoold /dev/shm/spoold-box-long; true")
        deb = self.package("spoold.deb")
        version = subprocess.run(["dpkg-deb", "-f", host_path(deb), "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        newer_version = version + "+1"
        newer_deb = self.package("spoold-newer.deb", newer_version)
        self.assertEqual(subprocess.run(["dpkg", "--compare-versions", newer_version, "gt", version]).returncode,
                         0, f"{newer_version} is an upgrade of {version}")
        box("apt-get", "update", "-qq", timeout=600)
        self.install(deb)
        self.addCleanup(box, "systemctl", "kill", "spoold", check=False)
        self.addCleanup(box, "apt-get", "purge", "-y", "-qq", "spoold", check=False, timeout=300)
        box("systemctl", "enable", "--now", "spoold")
        # Type=notify: active only once READY=1 came, with the counts in STATUS=.
        self.assertEqual(is_active(), "active")
        status_text = box("systemctl", "show", "-p", "StatusText", "--value", "spoold").stdout
        self.assertRegex(status_text, r"\d+ running")
        first_pid = main_pid()

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
        self.assertEqual(main_pid(), first_pid)

        # A job that outlives the daemon three times. It also keeps what the unit
        # gives it for one run of the service: its /tmp (not PrivateTmp, which
        # systemd deletes at stop) and its POSIX shared memory (not RemoveIPC).
        # 60 s covers the restart, the upgrade and the stop below.
        long_pid, long_start = self.start_job("long", [
            "sh", "-c", "echo kept > /tmp/mark; : > /dev/shm/spoold-box-long; sleep 60;"
                        " cat /tmp/mark > tmp.txt; ls /dev/shm > shm.txt; rm -f /dev/shm/spoold-box-long"])

        # Restart (KillMode=process): SIGTERM to spoold alone; the next spoold
        # adopts the job.
        box("systemctl", "restart", "spoold", timeout=180)
        self.assertEqual(is_active(), "active")
        self.assertNotEqual(main_pid(), first_pid)
        self.assert_kept("long", long_pid, long_start, 1, "`systemctl restart spoold`")

        # An upgrade: the new package's postinst restarts the service (a new
        # MainPID) and the new version adopts the job.
        before_upgrade = main_pid()
        self.install(newer_deb)
        self.assertEqual(box("dpkg-query", "-W", "--showformat=${Version}", "spoold").stdout, newer_version)
        self.assertEqual(is_active(), "active")
        self.assertNotEqual(main_pid(), before_upgrade, "postinst restarted the service on upgrade")
        self.assert_kept("long", long_pid, long_start, 2, "the upgrade to the newer .deb")

        # Stop, then start: the job runs on while no daemon runs; a job that ends
        # meanwhile is recorded at the start, in its one attempt.
        brief_pid, brief_start = self.start_job("brief", ["sleep", "5"])
        box("systemctl", "stop", "spoold", timeout=180)
        self.assertEqual(is_active(), "inactive")
        self.assertEqual(process_start(long_pid), long_start,
                         f"job long's process {long_pid} did not outlive `systemctl stop spoold`\n"
                         + describe("long"))
        wait_for(lambda: process_start(brief_pid) != brief_start, "job brief to end while spoold is stopped",
                 detail=lambda: describe("brief"))
        box("systemctl", "start", "spoold", timeout=180)
        self.assertEqual(is_active(), "active")
        self.assert_kept("long", long_pid, long_start, 3, "`systemctl stop spoold` and `systemctl start spoold`")
        st = wait_for(lambda: (s := read_status("brief")) and s["state"] in ("succeeded", "failed") and s,
                      "job brief recorded after the start", detail=lambda: describe("brief"))
        self.assertEqual((st["state"], len(st["attempts"])), ("succeeded", 1), describe("brief"))

        st = wait_for(lambda: (s := read_status("long")) and s["state"] != "running" and s, "job long to end",
                      timeout=120, detail=lambda: describe("long"))
        self.assertEqual((st["state"], len(st["attempts"]), st["attempts"][0]["pid"]),
                         ("succeeded", 1, long_pid), describe("long"))
        with open(host_path(f"{SPOOL}/jobs/long/results/tmp.txt")) as f:
            self.assertEqual(f.read(), "kept\n", "the job's /tmp outlived the daemon's stops")
        with open(host_path(f"{SPOOL}/jobs/long/results/shm.txt")) as f:
            self.assertIn("spoold-box-long", f.read().split(), "the job's shared memory outlived the stops")
        self.assertEqual(read_status("hello")["state"], "succeeded")

        # Purge: the service stops, its files go; a running job goes on (prerm
        # says so) until `systemctl kill spoold` ends it.
        orphan_pid, orphan_start = self.start_job("orphan", ["sleep", "300"])
        purge = box("apt-get", "purge", "-y", "-qq", "spoold", timeout=300)
        self.assertIn("its running jobs go on", purge.stdout + purge.stderr)
        self.assertNotEqual(is_active(), "active")
        self.assertFalse(os.path.exists(host_path("/usr/sbin/spoold")))
        self.assertEqual(process_start(orphan_pid), orphan_start, "a purge leaves the jobs running")
        box("systemctl", "kill", "spoold")
        wait_for(lambda: process_start(orphan_pid) != orphan_start, "`systemctl kill spoold` to end job orphan",
                 timeout=30, detail=lambda: box("ps", "-ef", check=False).stdout)


if __name__ == "__main__":
    unittest.main()
