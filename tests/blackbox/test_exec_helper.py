"""spoold-exec, the supervisor of each local attempt (daemon/exec_protocol.h,
protocol 2), driven directly through its protocol: started ahead of time, it
waits on descriptor 3 (a socket) for a request that brings the job's stdout,
stderr and attempt folder; it locks supervisor.lock there, forks the job's
process and answers with its pid; the job runs after one more byte (EOF
instead: nothing runs). Tested here: the request and reply, the lock, the go
byte, malformed requests, each failed step of the spawn, the descriptors the
job gets, the user switch. The daemon side (the idle helper it keeps, finding
the helper, refusing to start without it) is tested at the end. What the
helper does once the job runs (timeout, deadline, signals, kill sequence,
leftovers, resource use, outliving the daemon) is in test_supervisor.py;
the helpers shared by both files are in harness_exec.py."""
import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import unittest

from harness import SpoolTestMixin, spoold_bin, spoold_exec_bin
from harness_exec import (MAGIC, OLD_MAGIC, REPLY_MAGIC, STAGE_ARGUMENTS, STAGE_CHDIR, STAGE_EXEC,
                          STAGE_LOCK, STAGE_USER, WAIT, ExecTestMixin, Helper, argv_of, fd_kinds,
                          lock_holder, now_ms, poll, request, stat_fields)
from harness_sched import children_of, helpers_of, is_handed_a_job, pid_alive, proc_stat, read_text


class ExecHelperTest(ExecTestMixin, SpoolTestMixin, unittest.TestCase):

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
        # Idle, it has forked the job's process ahead, and opened nothing but
        # the ends it keeps to that process.
        poll(lambda: children_of(h.pid), "the job's process, forked before any request")
        self.assertEqual(sorted(fd_kinds(h.pid).values()), ["/dev/null"] * 3 + ["pipe", "socket", "socket"])
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

    # -- the daemon's side ----------------------------------------------------------

    def test_daemon_keeps_one_idle_helper_ready_and_hands_it_the_next_job(self):
        spool = self.make_spool()
        spool.wait_for(lambda: len(helpers_of(spool)) == 1, what="one idle helper")
        idle = helpers_of(spool)[0]
        self.assertFalse(is_handed_a_job(idle), "it holds no job")
        poll(lambda: children_of(idle), "the job's process, created before any request")
        self.assertEqual(sorted(fd_kinds(idle).values()), ["/dev/null"] * 3 + ["pipe", "socket", "socket"],
                         "its descriptors: /dev/null, the daemon's socket, and the feed and error pipe of "
                         "the job's process it forked ahead")
        job_to_be = children_of(idle)
        self.assertEqual(len(job_to_be), 1, "one child: the job's process, forked ahead")
        self.assertEqual(os.readlink(f"/proc/{job_to_be[0]}/fd/1"), "/dev/null", "no job's log yet")
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
        # Its job's process, forked ahead, is orphaned by the kill and looks
        # like an idle helper until it sees its feed closed and exits.
        forked_ahead = children_of(idle)
        os.kill(idle, signal.SIGKILL)
        spool.wait_for(lambda: f"the idle exec helper {idle} ended (signal 9)" in spool.log_text(),
                       what="the daemon's notice of the kill")
        spool.wait_for(lambda: [p for p in helpers_of(spool) if p != idle and p not in forked_ahead],
                       what="a replacement")
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
