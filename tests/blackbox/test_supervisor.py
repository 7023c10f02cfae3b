"""spoold-exec as the supervisor of a running job (daemon/exec_protocol.h,
protocol 2), driven directly through its protocol (harness_exec.py): once the
go byte has released the job, the helper stays its parent, stops it at its
timeout or its deadline, runs the kill sequence (the job's kill signal, SIGKILL
after the grace) on a cancel (SIGUSR1) or a stop (SIGTERM, SIGINT, SIGHUP),
kills what the job leaves behind, records the job's resource use and writes
outcome.json, also for a job process killed before the go. The job dies with
its helper, and outlives the daemon that started the helper. The protocol
itself (request, reply, lock, go byte, spawn errors) is in
test_exec_helper.py."""
import os
import signal
import sys
import time
import unittest

from harness_exec import (WAIT, ExecTestMixin, argv_of, kill_quietly, lock_holder, now_ms, poll,
                          stat_fields, term_ignoring_program)
from harness_sched import pid_alive, proc_stat, read_text


class SupervisorTest(ExecTestMixin, unittest.TestCase):

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

    def test_counts_the_timeout_from_the_go_not_from_the_request(self):
        # The job's process is forked before the request and waits for the go;
        # a slow round of syncs in the daemon must not eat into the job's time.
        h = self.helper()
        t_request = now_ms()
        h.start("/bin/sleep", self.dir, "-", ["sleep", "0.5"], timeout_ms=800)
        time.sleep(1.2)
        t_go = now_ms()
        h.go()
        self.assertEqual(h.wait(), 0)
        out = self.assert_outcome(h, exit_code=0, signal=None, cause="none", spawn_error=None)
        self.assertEqual(out["kills"], [], out)
        self.assertGreaterEqual(out["started_unix_ms"], t_go - 5, (t_request, t_go, out))

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
        code = term_ignoring_program(ready)
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
        code = term_ignoring_program(ready)
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
        # Reaped at once: the supervisor watches its job's process from before the go.
        poll(lambda: (proc_stat(job) or ("Z",))[0] == "Z", "the job's process killed")
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


if __name__ == "__main__":
    unittest.main()
