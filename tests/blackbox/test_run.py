"""How a job runs (SPEC.md section 5): outcome, resources, environment,
descriptors, session, working directory, scripts, worker limits."""
import os
import pwd
import unittest

from harness import LEAK_CANARY, SpoolTestMixin, is_number, parse_time

PY = "/usr/bin/python3"


class RunTest(SpoolTestMixin, unittest.TestCase):

    def test_success_and_logs(self):
        spool = self.make_spool()
        st = spool.run_job("ok", command=["sh", "-c", "echo out-marker; echo err-marker >&2"])
        self.assert_status_complete(st, "ok")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertIsNone(st["reason"])
        self.assertEqual(st["exit_code"], 0)
        self.assertIsNone(st["signal"])
        self.assertIsNone(st["pid"], "no pid once the job has ended")
        self.assertEqual(st["attempt"], 1)
        self.assertEqual(len(st["attempts"]), 1)
        att = st["attempts"][0]
        self.assertEqual(att["attempt"], 1)
        self.assertEqual(att["exit_code"], 0)
        self.assertIsNone(att["signal"])
        self.assertIsInstance(att.get("pid"), int, f"attempts[] carries pid: {att}")
        for key in ("duration_s", "cpu_user_s", "cpu_sys_s", "max_rss_kb"):
            self.assertTrue(is_number(att[key]), f"{key} must be a number: {att}")
            self.assertGreaterEqual(att[key], 0, key)
        self.assertLessEqual(parse_time(att["started"]), parse_time(att["finished"]))
        self.assertEqual(spool.attempt_log("ok", 1, "stdout"), "out-marker\n")
        self.assertEqual(spool.attempt_log("ok", 1, "stderr"), "err-marker\n")
        names = [e["event"] for e in spool.events("ok")]
        for name in ("accepted", "started", "exited", "succeeded"):
            self.assertIn(name, names)

    def test_cpu_and_memory_measured(self):
        spool = self.make_spool()
        burn = ("import os\nt = os.times().user\n"
                "while os.times().user - t < 0.4:\n    pass\n")  # user time only
        alloc = "b = b'x' * (60 * 1024 * 1024)\nprint(len(b))\n"
        spool.drop_job("burn", command=[PY, "-c", burn])
        spool.drop_job("alloc", command=[PY, "-c", alloc])
        st = spool.wait_terminal("burn")
        self.assertEqual(st["state"], "succeeded", st)
        att = st["attempts"][0]
        self.assertGreater(att["cpu_user_s"], 0.1, att)
        self.assertGreater(att["duration_s"], 0.1, att)
        st = spool.wait_terminal("alloc")
        self.assertEqual(st["state"], "succeeded", st)
        att = st["attempts"][0]
        self.assertGreater(att["max_rss_kb"], 40000, att)
        self.assertLess(att["max_rss_kb"], 10_000_000, att)

    def test_nonzero_exit(self):
        spool = self.make_spool()
        st = spool.run_job("three", command=["sh", "-c", "exit 3"])
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "nonzero_exit")
        self.assertEqual(st["exit_code"], 3)
        self.assertIsNone(st["signal"])
        self.assertEqual(st["attempts"][0]["exit_code"], 3)
        self.assertEqual(st["attempts"][0]["reason"], "nonzero_exit")
        self.assertIn("failed", [e["event"] for e in spool.events("three")])

    def test_killed_by_signal(self):
        spool = self.make_spool()
        st = spool.run_job("sig", command=["sh", "-c", "kill -9 $$"])
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "signal")
        self.assertIn(st["signal"], ("KILL", 9, "SIGKILL"), st)
        self.assertIsNone(st["exit_code"], "no exit code when killed by a signal")
        att = st["attempts"][0]
        self.assertEqual(att["reason"], "signal")
        self.assertIn(att["signal"], ("KILL", 9, "SIGKILL"), att)

    def test_spawn_failed(self):
        spool = self.make_spool()
        spool.drop_job("nocmd", command=["no-such-command-spoold-bb"])
        spool.drop_job("nopath", command=["/nonexistent/dir/cmd"])
        spool.drop_job("noexec", command=["/etc/hostname"])
        for job_id in ("nocmd", "nopath", "noexec"):
            with self.subTest(job=job_id):
                st = spool.wait_terminal(job_id)
                self.assertEqual(st["state"], "failed", st)
                self.assertEqual(st["reason"], "spawn_failed", st)
                self.assertIsInstance(st["message"], str)
                self.assertTrue(st["message"], "spawn_failed comes with a message")
        self.assert_accepts_valid_job(spool, "after")

    def test_environment_clean_and_complete(self):
        spool = self.make_spool()
        st = spool.run_job("envjob", command=["/usr/bin/env"],
                           **{"=env": {"MY_VAR": "hello world", "OTHER": "x=y"}})
        self.assertEqual(st["state"], "succeeded", st)
        env = {}
        for line in spool.attempt_log("envjob").splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        self.assertNotIn(LEAK_CANARY, env, "the daemon's environment leaked")
        expected = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "MY_VAR", "OTHER",
                    "SPOOLD_JOB_ID", "SPOOLD_ATTEMPT", "SPOOLD_POOL", "SPOOLD_JOB_DIR",
                    "SPOOLD_RESULTS_DIR", "SPOOLD_PROGRESS_FILE"}
        self.assertEqual(set(env), expected)
        job_dir = os.path.realpath(spool.job_dir("envjob"))
        self.assertEqual(env["MY_VAR"], "hello world")
        self.assertEqual(env["OTHER"], "x=y")
        self.assertEqual(env["SPOOLD_JOB_ID"], "envjob")
        self.assertEqual(env["SPOOLD_ATTEMPT"], "1")
        self.assertEqual(env["SPOOLD_POOL"], "default")
        self.assertEqual(os.path.realpath(env["SPOOLD_JOB_DIR"]), job_dir)
        self.assertEqual(os.path.realpath(env["SPOOLD_RESULTS_DIR"]),
                         os.path.join(job_dir, "results"))
        self.assertEqual(os.path.realpath(env["SPOOLD_PROGRESS_FILE"]),
                         os.path.join(job_dir, "progress"))
        user = pwd.getpwuid(os.geteuid())  # the owner of the job file: us
        self.assertEqual(env["USER"], user.pw_name)
        self.assertEqual(env["LOGNAME"], user.pw_name)
        self.assertEqual(env["HOME"], user.pw_dir)
        self.assertTrue(env["SHELL"].startswith("/"), env["SHELL"])
        self.assertTrue(env["LANG"], "LANG is set")
        self.assertIn("/usr/bin", env["PATH"].split(":"))

    def test_shell_environment(self):
        # Through a shell, the only addition allowed is what the shell sets itself.
        spool = self.make_spool()
        st = spool.run_job("shenv", script="env\n")
        self.assertEqual(st["state"], "succeeded", st)
        keys = {line.partition("=")[0] for line in spool.attempt_log("shenv").splitlines()}
        extra = keys - {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "SPOOLD_JOB_ID",
                        "SPOOLD_ATTEMPT", "SPOOLD_POOL", "SPOOLD_JOB_DIR",
                        "SPOOLD_RESULTS_DIR", "SPOOLD_PROGRESS_FILE", "PWD"}
        self.assertEqual(extra, set())

    def test_descriptors_not_leaked(self):
        spool = self.make_spool()
        # /proc/$$/fd lists the shell's descriptors, not those of ls.
        st = spool.run_job("fds", command=["sh", "-c", "ls /proc/$$/fd"])
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("fds").split(), ["0", "1", "2"])
        st = spool.run_job("stdin", command=["readlink", "/proc/self/fd/0"])
        self.assertEqual(spool.attempt_log("stdin").strip(), "/dev/null")
        st = spool.run_job("stdout", command=["readlink", "/proc/self/fd/1",
                                              "/proc/self/fd/2"])
        out = spool.attempt_log("stdout").split()
        job_dir = os.path.realpath(spool.job_dir("stdout"))
        self.assertEqual(out, [os.path.join(job_dir, "attempts", "1", "stdout.log"),
                               os.path.join(job_dir, "attempts", "1", "stderr.log")])

    def test_inherited_descriptor_not_leaked(self):
        # A descriptor the daemon inherited without FD_CLOEXEC is still one of the
        # daemon's descriptors: it must not reach jobs.
        spool = self.make_spool(start=False)
        fd = os.open(spool.base, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        os.set_inheritable(fd, True)
        spool.start(pass_fds=(fd,))
        st = spool.run_job("fds", command=["sh", "-c", "ls /proc/$$/fd"])
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("fds").split(), ["0", "1", "2"])

    def test_working_directory(self):
        spool = self.make_spool()
        st = spool.run_job("cwd1", command=["readlink", "/proc/self/cwd"])
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("cwd1").strip(),
                         os.path.join(os.path.realpath(spool.job_dir("cwd1")), "results"))
        work = os.path.join(spool.base, "work dir")
        os.mkdir(work)
        st = spool.run_job("cwd2", command=["readlink", "/proc/self/cwd"], cwd=work)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("cwd2").strip(), work)
        st = spool.run_job("cwd3", command=["true"], cwd=os.path.join(spool.base, "absent"))
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "spawn_failed", st)

    def test_new_session_and_group(self):
        spool = self.make_spool()
        st = spool.run_job("sess", command=["cat", "/proc/self/stat"])
        self.assertEqual(st["state"], "succeeded", st)
        text = spool.attempt_log("sess")
        pid = int(text.split(" ", 1)[0])
        fields = text[text.rindex(")") + 2:].split()
        ppid, pgrp, session = int(fields[1]), int(fields[2]), int(fields[3])
        self.assertEqual(pgrp, pid, "the job leads its own process group")
        self.assertEqual(session, pid, "the job leads its own session")
        self.assertEqual(st["attempts"][0].get("pid"), pid)
        # Its parent is its supervisor (spoold-exec), the daemon's child, recorded
        # in the attempt: the job outlives a daemon restart (SPEC.md section 5).
        self.assertEqual(ppid, st["attempts"][0].get("supervisor_pid"), "the supervisor is the job's parent")
        self.assertNotEqual(ppid, spool.proc.pid, st)

    def test_script(self):
        spool = self.make_spool()
        script = 'echo "script ran as $0"\necho "$SPOOLD_JOB_ID"\n'
        st = spool.run_job("scr", script=script)
        self.assertEqual(st["state"], "succeeded", st)
        out = spool.attempt_log("scr").splitlines()
        self.assertEqual(out[1], "scr")
        with open(os.path.join(spool.job_dir("scr"), "script")) as f:
            self.assertEqual(f.read(), script)
        # -e: the first failing command ends the script.
        st = spool.run_job("scr-e", script="echo a\nfalse\necho b\n")
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["exit_code"], 1)
        self.assertEqual(spool.attempt_log("scr-e"), "a\n")
        # -u: an unset variable is an error.
        st = spool.run_job("scr-u", script='echo "$NOT_SET_ANYWHERE"\necho after\n')
        self.assertEqual(st["state"], "failed", st)
        self.assertNotIn("after", spool.attempt_log("scr-u"))
        # shell: another interpreter, with the script's path appended.
        st = spool.run_job("scr-py", script="import sys\nprint('py', len(sys.argv))\n",
                           shell=[PY])
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("scr-py"), "py 1\n")

    def test_workers_limit(self):
        spool = self.make_spool(workers=1)
        for n in range(3):
            spool.drop_job(f"w{n}", command=["sleep", "0.4"])
        spans = []
        for n in range(3):
            st = spool.wait_terminal(f"w{n}")
            self.assertEqual(st["state"], "succeeded", st)
            spans.append((parse_time(st["started"]), parse_time(st["finished"])))
        spans.sort()
        for (s1, f1), (s2, f2) in zip(spans, spans[1:]):
            self.assertLessEqual(f1, s2, f"jobs overlapped with workers = 1: {spans}")

    def test_workers_run_in_parallel(self):
        spool = self.make_spool(workers=2)
        for n in range(2):
            spool.drop_job(f"p{n}", command=["sleep", "1"])
        spool.wait_for(lambda: all(spool.status(f"p{n}")["state"] == "running"
                                   for n in range(2)),
                       what="both jobs running at once with workers = 2")
        for n in range(2):
            self.assertEqual(spool.wait_terminal(f"p{n}")["state"], "succeeded")


if __name__ == "__main__":
    unittest.main()
