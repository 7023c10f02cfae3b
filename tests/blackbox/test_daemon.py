"""The daemon process: one per root, --check, --version, signals, folders."""
import os
import signal
import subprocess
import time
import unittest

from harness import SPOOL_DIRS, SpoolTestMixin, spoold_bin
from test_spoolctl import spoolctl_bin


class DaemonTest(SpoolTestMixin, unittest.TestCase):

    def run_spoold(self, *args, timeout=10):
        return subprocess.run([spoold_bin(), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def test_version(self):
        proc = self.run_spoold("--version")
        self.assertEqual(proc.returncode, 0, proc)
        self.assertRegex(proc.stdout + proc.stderr, r"\d+\.\d+\.\d+")

    def test_second_daemon_refused(self):
        spool = self.make_spool()
        first = spool.proc.pid
        t0 = time.monotonic()
        proc = self.run_spoold("--config", spool.config_path, timeout=10)
        elapsed = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertLess(elapsed, 5, "the second daemon exits at once")
        self.assertIn(spool.root, out, "the message names the spool root")
        self.assertRegex(out, rf"\b{first}\b", "the message names the running daemon's pid")
        self.assertTrue(spool.alive(), "the first daemon keeps running")
        self.assertEqual(spool.index()["daemon"]["pid"], first)
        self.assert_accepts_valid_job(spool, "still-works")
        spool.stop()

    def test_deleting_or_replacing_the_lock_file_lets_no_second_daemon_in(self):
        spool = self.make_spool()
        first = spool.proc.pid
        spool.drop_job("long", command=["sleep", "60"])
        job_pid = spool.wait_for(lambda: spool.status("long")["pid"], what="long running")
        for how in ("deleted", "replaced"):
            with self.subTest(how):
                if how == "deleted":
                    os.unlink(spool.path("spoold.lock"))
                else:
                    with open(spool.path("tmp/fake.lock"), "w") as f:
                        f.write("1\n")
                    os.rename(spool.path("tmp/fake.lock"), spool.path("spoold.lock"))
                proc = self.run_spoold("--config", spool.config_path, timeout=10)
                out = proc.stdout + proc.stderr
                self.assertNotEqual(proc.returncode, 0, out)
                self.assertIn("another spoold", out)
                self.assertIn(spool.root, out)
                # The daemon puts a lock file with its pid back for readers.
                spool.wait_for(lambda: open(spool.path("spoold.lock")).read().strip() == str(first),
                               what="spoold.lock holding the daemon's pid again")
                self.assertIn(f"spoold.lock was removed or replaced", spool.log_text())
        # A lock file that cannot be put back (a folder took its name): still no
        # second daemon, the problem is logged once, and spoolctl still sees the
        # daemon (by the root's lock).
        # The daemon puts a deleted lock file back within milliseconds: the folder
        # may lose that race, and is tried again.
        for _ in range(100):
            try:
                os.unlink(spool.path("spoold.lock"))
                os.mkdir(spool.path("spoold.lock"))
                break
            except (FileExistsError, FileNotFoundError):
                continue
        self.assertTrue(os.path.isdir(spool.path("spoold.lock")))
        spool.wait_for(lambda: "could not be put in place" in spool.log_text(), what="the problem logged")
        proc = self.run_spoold("--config", spool.config_path, timeout=10)
        self.assertNotEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("another spoold", proc.stdout + proc.stderr)
        ctl = subprocess.run([spoolctl_bin(), "--root", spool.root, "pause", "default"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)
        self.assertNotIn("not running", ctl.stderr)
        spool.wait_for(lambda: spool.index()["pools"]["default"]["paused"], what="the pause acted on")
        os.rmdir(spool.path("spoold.lock"))
        spool.wait_for(lambda: open(spool.path("spoold.lock")).read().strip() == str(first),
                       what="spoold.lock back once its name is free")
        self.assertEqual(spool.log_text().count("could not be put in place"), 1, "said once")
        # The running job was never touched: same attempt, same process.
        status = spool.status("long")
        self.assertEqual((status["state"], status["attempt"], status["pid"]), ("running", 1, job_pid))
        os.kill(job_pid, 0)
        self.assertEqual(spool.index()["daemon"]["pid"], first)
        spool.stop()

    def test_a_root_moved_away_stops_the_daemon_at_once(self):
        spool = self.make_spool()
        spool.drop_job("long", command=["sleep", "60"])
        spool.wait_for(lambda: spool.status("long")["pid"], what="long running")
        moved = spool.root + ".moved"
        os.rename(spool.root, moved)
        self.addCleanup(lambda: os.path.isdir(moved) and os.rename(moved, spool.root))
        code = spool.proc.wait(timeout=10)
        self.assertEqual(code, 1, spool.log_tail())
        self.assertIn("was moved or deleted while spoold ran", spool.log_text())
        spool.proc = None
        # Nothing was written at the old path after the move.
        self.assertFalse(os.path.exists(spool.root))
        os.rename(moved, spool.root)
        spool.start()
        spool.wait_for(lambda: spool.status("long")["state"] in ("running", "queued"),
                       what="the job recovered after the restart")
        spool.stop()

    def test_check_valid_config(self):
        spool = self.make_spool(start=False)
        proc = self.run_spoold("--config", spool.config_path, "--check")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_check_bad_configs(self):
        spool = self.make_spool(start=False)
        cases = [
            # (text, line of the error, key named in the message)
            ('[spool]\nroot = "/tmp/x"\n\n[pools.default]\nworkers = "many"\n', 5, "workers"),
            ('[spool]\nroot = "/tmp/x"\nrescan_interval = "often"\n', 3, "rescan_interval"),
            ('[spool]\nroot = "/tmp/x"\nmax_job_file_size = -1\n', 3, "max_job_file_size"),
            ('[spool]\nroot = "/tmp/x"\n[pools.default]\nexecutor = "k8s"\n', 4, "executor"),
            ('[spool]\nroot = "/tmp/x"\n[security]\nallow_root = "yes"\n', 4, "allow_root"),
            ('[spool]\nroot = "/tmp/x"\nrescan_interval = \n', 3, None),  # TOML syntax
        ]
        for n, (text, line, key) in enumerate(cases):
            with self.subTest(case=n):
                path = os.path.join(spool.base, f"bad{n}.toml")
                with open(path, "w") as f:
                    f.write(text)
                proc = self.run_spoold("--config", path, "--check")
                out = proc.stdout + proc.stderr
                self.assertEqual(proc.returncode, 1, out)
                self.assertIn(f"{path}:{line}:", out, "FILE:LINE:COLUMN: key: message")
                if key is not None:
                    self.assertIn(key, out)
        proc = self.run_spoold("--config", os.path.join(spool.base, "absent.toml"), "--check")
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)

    def test_misspelt_config_key_stops_start(self):
        # Named with file, line, key and the key it is close to, before the bad
        # value that comes first in the file.
        spool = self.make_spool(start=False)
        spool.write_config(f'[spool]\nroot = "{spool.root}"\n[pools.default]\nexecutor = "k8s"\n'
                           '[pools.gpu]\nwokers = 2\n')
        proc = self.run_spoold("--config", spool.config_path, timeout=10)
        out = proc.stdout + proc.stderr
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertIn(f"{spool.config_path}:6:1: pools.gpu.wokers: unknown key 'pools.gpu.wokers'; "
                      "did you mean 'pools.gpu.workers'?", out)

    def test_bad_config_stops_start(self):
        spool = self.make_spool(start=False)
        spool.write_config(f'[spool]\nroot = "{spool.root}"\n[pools.default]\nworkers = -2\n')
        proc = self.run_spoold("--config", spool.config_path, timeout=10)
        out = proc.stdout + proc.stderr
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertIn(f"{spool.config_path}:4:", out)
        self.assertIn("workers", out)

    def test_sigterm_exits_zero(self):
        spool = self.make_spool()
        spool.run_job("one")
        spool.stop(expect_code=0)
        spool.start()
        self.assertEqual(spool.status("one")["state"], "succeeded")
        spool.stop(expect_code=0)

    def test_repeated_sigterm_during_the_stop_still_exits_zero(self):
        # An operator (or a test harness) may send SIGTERM again while the daemon
        # is already stopping, up to its very last instructions. The window
        # this once hit is microseconds wide (1 of 80 and 2 of 300 rounds failed):
        # SPOOLD_TEST_SIGTERM_ROUNDS=300 runs it longer.
        for round_ in range(int(os.environ.get("SPOOLD_TEST_SIGTERM_ROUNDS", "3"))):
            with self.subTest(round=round_):
                spool = self.make_spool()
                spool.run_job("one", command=["true"])
                proc = spool.proc
                deadline = time.monotonic() + 30
                while proc.poll() is None and time.monotonic() < deadline:
                    proc.send_signal(signal.SIGTERM)
                    time.sleep(0.002)
                self.assertEqual(proc.wait(timeout=5), 0, spool.log_tail())
                spool.proc = None

    def test_shutdown_with_stop_jobs_stops_running_job(self):
        spool = self.make_spool()
        marker = os.path.join(spool.base, "first-run")
        script = f'if [ ! -e "{marker}" ]; then : > "{marker}"; sleep 60; fi\necho done\n'
        spool.drop_job("long", script=script,
                       kill={"grace": "5s"})
        st = spool.wait_state("long", "running")
        spool.wait_for(lambda: os.path.exists(marker), what="the job's first run started")
        pid = st["pid"] or spool.status("long")["pid"]
        self.assertIsInstance(pid, int, st)
        t0 = time.monotonic()
        spool.stop_with_jobs(timeout=20)
        self.assertLess(time.monotonic() - t0, 10, "the shutdown ends the job with its kill.signal")
        self.assertEqual(spool.job_processes(), [], "no job process left running")
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        st = spool.status("long")
        self.assertEqual(st["attempts"][0]["reason"], "interrupted", st)
        self.assertNotIn(st["state"], ("running", "succeeded"), st)
        spool.start()
        st = spool.wait_terminal("long")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertIn("done", spool.attempt_log("long", st["attempt"]))

    def test_missing_folders_created(self):
        spool = self.make_spool(start=False)
        self.assertFalse(os.path.exists(spool.root))
        spool.start()  # the root itself is missing: created with all its folders
        for name in SPOOL_DIRS:
            self.assertTrue(os.path.isdir(spool.path(name)), name)
        self.assertTrue(os.path.isfile(spool.path("spoold.lock")))
        spool.stop()
        # Some folders removed while stopped: created again at the next start.
        for name in ("tmp", "incoming", "control", "rejected"):
            os.rmdir(spool.path(name))
        spool.start()
        for name in SPOOL_DIRS:
            self.assertTrue(os.path.isdir(spool.path(name)), name)
        self.assert_accepts_valid_job(spool, "works")
        spool.stop()

    def test_restart_after_sigkill(self):
        spool = self.make_spool()
        spool.run_job("before")
        spool.kill()  # the lock dies with the process
        spool.start()
        self.assertEqual(spool.status("before")["state"], "succeeded")
        self.assert_accepts_valid_job(spool, "after")

    def test_sighup_keeps_running(self):
        spool = self.make_spool()
        spool.config["pools"]["default"]["workers"] = 1
        spool.write_config()
        spool.proc.send_signal(signal.SIGHUP)
        spool.wait_for(lambda: spool.index()["pools"]["default"]["workers"] == 1,
                       timeout=5, what="workers = 1 after SIGHUP")
        spool.write_config("this is = = not toml")
        spool.proc.send_signal(signal.SIGHUP)
        spool.wait_for(lambda: "reload failed, keeping the old configuration" in spool.log_text(),
                       timeout=5, what="the bad reload refused")
        self.assert_accepts_valid_job(spool, "after-bad-reload")
        self.assertEqual(spool.index()["pools"]["default"]["workers"], 1)
        spool.stop()


if __name__ == "__main__":
    unittest.main()
