"""When the machine runs short (issue 6 item 2): a full disk and a low limit on
open files. spoold reports the problem once, keeps running, loses nothing,
records no state it did not write, and carries on when the resource returns."""
import os
import resource
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run, job_toml, read_json


class ResourcesTest(SpoolTestMixin, unittest.TestCase):

    def tmpfs_spool(self, size="4m"):
        if os.geteuid() != 0:
            self.skipTest("SKIP: mounting a small tmpfs needs root")
        spool = self.make_spool(start=False)
        os.makedirs(spool.root)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", spool.root],
                                capture_output=True, text=True)
        if result.returncode != 0:
            cannot_run(self, f"cannot mount tmpfs here: {result.stderr.strip()}")
        # Cleanups run last-in first-out: unmount after the daemon is gone.
        self.addCleanup(subprocess.run, ["umount", "-l", spool.root])
        return spool

    def fill(self, spool):
        """Fills the file system; returns the filler's path."""
        filler = spool.path("filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        return filler

    def test_disk_full_reports_once_loses_nothing_and_recovers(self):
        spool = self.tmpfs_spool()
        spool.start()
        # A job that runs across the moment the disk fills.
        spool.drop_job("before", command=["sh", "-c", "sleep 1.5"])
        spool.wait_state("before", ("running",))
        # Job files are written while there is room, and renamed in once it is full.
        for n in range(5):
            with open(spool.path("tmp", f"full{n}.toml"), "w") as f:
                f.write(job_toml())
        filler = self.fill(spool)
        for n in range(5):
            os.rename(spool.path("tmp", f"full{n}.toml"), spool.path("incoming", f"full{n}.toml"))
        # Nothing can be accepted: the files wait in incoming/, whole.
        spool.wait_for(lambda: "cannot take in job files now" in spool.log_text(),
                       what="the problem reported")
        spool.wait_for(lambda: spool.status("before")["state"] != "running" or
                       "cannot write job status" in spool.log_text(), timeout=10,
                       what="the running job ended (its status write may fail)")
        self.assertTrue(spool.alive(), "spoold died on a full disk")
        self.assertEqual(sorted(os.listdir(spool.path("incoming"))), [f"full{n}.toml" for n in range(5)])
        self.assertEqual(sorted(os.listdir(spool.path("jobs"))), ["before"], "a job was half accepted")
        # What is on disk is only what was written: a state on disk is whole.
        on_disk = spool.status("before")
        self.assertIn(on_disk["state"], ("running", "succeeded"))
        # Over two rescans the problem is reported once, not at every retry.
        spool.wait_for(lambda: spool.log_text().count("cannot take in job files now") == 1, timeout=3)
        import time
        time.sleep(2.5)  # two more rescan intervals: must not log again
        self.assertEqual(spool.log_text().count("cannot take in job files now"), 1)
        # Room again: everything carries on.
        os.unlink(filler)
        for n in range(5):
            self.assertEqual(spool.wait_terminal(f"full{n}", timeout=30)["state"], "succeeded")
        self.assertEqual(spool.wait_terminal("before", timeout=30)["state"], "succeeded")
        self.assertEqual(os.listdir(spool.path("incoming")), [])
        self.assertIn("recovered: intake works again", spool.log_text())

    def test_disk_full_refusals_wait_with_their_reason_and_go_when_room_returns(self):
        spool = self.tmpfs_spool()
        spool.start()
        bad_job = "bad\n2026-01-01T00:00:00.000Z critical FAKE.toml"
        bad_control = "ctl.json"
        with open(spool.path("tmp", "bad"), "w") as f:
            f.write("command = 3\n")
        with open(spool.path("tmp", "ctl"), "w") as f:
            f.write('{"action": "cancel", "job": "nobody"}')
        filler = self.fill(spool)
        os.rename(spool.path("tmp", "bad"), spool.path("incoming", bad_job))
        os.rename(spool.path("tmp", "ctl"), spool.path("control", bad_control))

        def rejected_without_reason():
            names = set(os.listdir(spool.path("rejected")))
            return [n for n in names if not n.endswith(".error.json") and n + ".error.json" not in names]

        def both_reported():
            self.assertEqual(rejected_without_reason(), [], "a refused file sits in rejected/ without its reason")
            log = spool.log_text()
            return "cannot refuse bad\\x0a" in log and "cannot refuse control request ctl.json" in log
        spool.wait_for(both_reported, what="both refusals reported as waiting")
        log = spool.log_text()
        self.assertIn("it waits in incoming/, with no error file", log)
        self.assertIn("it stays in control/, with no error file", log)
        self.assertNotRegex(log, r"(?m)^2026-01-01T00:00:00.000Z critical FAKE", "a forged log line")
        # Where the log says they are, whole, and nothing half-written in rejected/.
        self.assertEqual(os.listdir(spool.path("incoming")), [bad_job])
        self.assertEqual(os.listdir(spool.path("control")), [bad_control])
        self.assertEqual(os.listdir(spool.path("rejected")), [])
        # Room again: refused at the next scan, without a restart, each with its reason.
        os.unlink(filler)
        spool.wait_for(lambda: os.path.exists(spool.path("rejected", bad_job + ".error.json")) and
                       os.path.exists(spool.path("rejected", bad_control + ".error.json")),
                       what="both refused once there is room", timeout=15)
        self.assertEqual(rejected_without_reason(), [])
        self.assertEqual(read_json(spool.path("rejected", bad_job + ".error.json"))["code"], "bad_id")
        self.assertEqual(read_json(spool.path("rejected", bad_control + ".error.json"))["code"],
                         "unknown_job")
        self.assertEqual(os.listdir(spool.path("incoming")), [])
        self.assertEqual(os.listdir(spool.path("control")), [])
        self.assertTrue(spool.alive())
        spool.stop()

    def test_low_descriptor_limit_backs_off_and_loses_no_job(self):
        # As many workers as jobs, all dropped before the start: the first turn
        # starts them together, and each start holds a descriptor until its
        # record is written, so 40 cannot fit in 32 (the daemon itself uses 15).
        spool = self.make_spool(start=False, workers=40)
        for n in range(40):
            spool.drop_job(f"fd{n}", command=["sh", "-c", "sleep 0.2"])

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))

        # The harness starts spoold with Popen; give it a lower limit first.
        original = subprocess.Popen.__init__

        def popen_with_limit(self_, *args, **kwargs):
            kwargs.setdefault("preexec_fn", low_limit)
            original(self_, *args, **kwargs)
        subprocess.Popen.__init__ = popen_with_limit
        try:
            spool.start()
        finally:
            subprocess.Popen.__init__ = original
        for n in range(40):
            st = spool.wait_terminal(f"fd{n}", timeout=60)
            self.assertEqual(st["state"], "succeeded", st)
            self.assertEqual(len(st["attempts"]), 1, "a job lost an attempt to the shortage")
        self.assertTrue(spool.alive())
        # It ran short and said so once.
        log = spool.log_text()
        self.assertEqual(log.count("cannot start jobs now"), 1, log[-3000:])


if __name__ == "__main__":
    unittest.main()
