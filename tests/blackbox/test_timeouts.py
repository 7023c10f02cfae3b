"""Timeouts and deadlines (SPEC.md sections 2 and 5): the kill sequence reaches
the whole process group, TERM-ignoring jobs get KILL after the grace, a job is
never reported terminal while anything of it runs."""
import os
import unittest

from harness import SpoolTestMixin, parse_time
from harness_sched import (describe_pids, event_names, group_members, pid_alive,
                           read_text)

PY = "/usr/bin/python3"

# Ignores TERM, forks a child that ignores it too, records both pids, sleeps.
STUBBORN = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
res = os.environ["SPOOLD_RESULTS_DIR"]
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(100)
    os._exit(0)
with open(os.path.join(res, "pids.tmp"), "w") as f:
    f.write(f"{os.getpid()} {pid}\n")
os.rename(os.path.join(res, "pids.tmp"), os.path.join(res, "pids"))
time.sleep(100)
"""


class TimeoutsTest(SpoolTestMixin, unittest.TestCase):

    def wait_group(self, spool, job_id, count):
        """Waits until the running job's group has `count` live members; returns
        (pgid, pids)."""
        st = spool.wait_state(job_id, "running")
        pgid = st["pid"]
        self.assertIsInstance(pgid, int, st)
        pids = spool.wait_for(lambda: len(group_members(pgid)) >= count and group_members(pgid),
                              what=f"{count} processes in the group of job {job_id}")
        return pgid, pids

    def assert_group_gone(self, pgid, pids, when):
        left = group_members(pgid, include_zombies=True)
        self.assertEqual(left, [], f"{when}: processes of group {pgid} remain: "
                                   f"{describe_pids(left)}")
        alive = [p for p in pids if pid_alive(p)]
        self.assertEqual(alive, [], f"{when}: processes remain: {describe_pids(alive)}")

    def kill_signals(self, spool, job_id):
        return [e.get("signal") for e in spool.events(job_id) if e["event"] == "kill_sent"]

    def test_timeout_kills_grandchildren(self):
        spool = self.make_spool()
        spool.drop_job("grand", command=["sh", "-c", "sleep 100 & sleep 100 & wait"],
                       timeout="1s", kill={"grace": "3s"})
        pgid, pids = self.wait_group(spool, "grand", 3)
        st = spool.wait_terminal("grand", timeout=20)
        self.assert_group_gone(pgid, pids, "job reported terminal")
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "timeout", st)
        self.assertEqual(st["attempts"][0]["reason"], "timeout", st)
        self.assertIsNone(st["pid"])
        names = event_names(spool, "grand")
        self.assertIn("timeout", names)
        self.assertLess(names.index("timeout"), names.index("kill_sent"), names)
        self.assertEqual(self.kill_signals(spool, "grand")[0], "TERM")
        # sh and the sleeps die of TERM: no KILL was needed, and the attempt did
        # not wait the grace out.
        self.assertLess(st["attempts"][0]["duration_s"], 3.5, st)
        self.assertGreaterEqual(st["attempts"][0]["duration_s"], 0.95, st)

    def test_term_ignoring_shell_gets_kill(self):
        spool = self.make_spool()
        spool.drop_job("trap", command=["sh", "-c", "trap '' TERM; sleep 100; sleep 100"],
                       timeout="1s", kill={"grace": "1s"})
        pgid, pids = self.wait_group(spool, "trap", 2)
        st = spool.wait_terminal("trap", timeout=20)
        self.assert_group_gone(pgid, pids, "job reported terminal")
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)
        self.assertEqual(self.kill_signals(spool, "trap"), ["TERM", "KILL"])
        self.assertGreaterEqual(st["attempts"][0]["duration_s"], 1.9, st)

    def test_term_ignoring_python_and_child_get_kill(self):
        spool = self.make_spool()
        spool.drop_job("stubborn", command=[PY, "-c", STUBBORN], timeout="1s",
                       kill={"grace": "1s"})
        pidfile = os.path.join(spool.job_dir("stubborn"), "results", "pids")
        pids = spool.wait_for(lambda: [int(x) for x in read_text(pidfile).split()],
                              what="the stubborn job's pid file")
        pgid = spool.status("stubborn")["pid"]
        self.assertEqual(pids[0], pgid, "the job's main process leads its group")
        st = spool.wait_terminal("stubborn", timeout=20)
        self.assert_group_gone(pgid, pids, "job reported terminal")
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)
        self.assertEqual(self.kill_signals(spool, "stubborn"), ["TERM", "KILL"])
        events = [e for e in spool.events("stubborn") if e["event"] in ("timeout", "kill_sent")]
        # When each was sent ("at"): the supervisor reports them with the attempt's end.
        t = [parse_time(e.get("at", e["time"])) for e in events]
        self.assertGreaterEqual((t[2] - t[1]).total_seconds(), 0.95,
                                f"KILL follows TERM after the grace: {events}")
        att = st["attempts"][0]
        self.assertIn(att["signal"], ("KILL", 9, "SIGKILL"), att)

    def test_custom_kill_signal(self):
        spool = self.make_spool()
        script = ("import os, signal, sys, time\n"
                  "def on_int(sig, frame):\n"
                  "    open(os.path.join(os.environ['SPOOLD_RESULTS_DIR'], 'got-int'), 'w')"
                  ".close()\n"
                  "    sys.exit(0)\n"
                  "signal.signal(signal.SIGINT, on_int)\n"
                  "open(os.path.join(os.environ['SPOOLD_RESULTS_DIR'], 'ready'), 'w').close()\n"
                  "time.sleep(100)\n")
        spool.drop_job("intjob", command=[PY, "-c", script], timeout="1s",
                       kill={"signal": "INT", "grace": "5s"})
        st = spool.wait_terminal("intjob", timeout=20)
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)
        self.assertTrue(os.path.exists(os.path.join(spool.job_dir("intjob"), "results",
                                                    "got-int")), "the job got SIGINT")
        self.assertEqual(self.kill_signals(spool, "intjob"), ["INT"])

    def test_on_timeout_retried(self):
        spool = self.make_spool()
        spool.drop_job("again", command=["sleep", "100"], timeout="500ms",
                       retry={"attempts": 1, "delay": "100ms", "on_timeout": True},
                       kill={"grace": "2s"})
        st = spool.wait_terminal("again", timeout=20)
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)
        self.assertEqual([a["reason"] for a in st["attempts"]], ["timeout", "timeout"], st)
        names = event_names(spool, "again")
        self.assertEqual(names.count("timeout"), 2, names)
        self.assertIn("retry_scheduled", names)

    def test_timeout_not_retried_by_default(self):
        spool = self.make_spool()
        spool.drop_job("once", command=["sleep", "100"], timeout="500ms",
                       retry={"attempts": 3, "delay": "100ms"}, kill={"grace": "2s"})
        st = spool.wait_terminal("once", timeout=20)
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)
        self.assertEqual(len(st["attempts"]), 1, st)
        self.assertNotIn("retry_scheduled", event_names(spool, "once"))

    def test_deadline(self):
        spool = self.make_spool()
        spool.drop_job("dl", command=["sh", "-c", "sleep 100 & wait"], deadline="1500ms",
                       kill={"grace": "2s"})
        pgid, pids = self.wait_group(spool, "dl", 2)
        st = spool.wait_terminal("dl", timeout=20)
        self.assert_group_gone(pgid, pids, "job reported terminal")
        self.assertEqual((st["state"], st["reason"]), ("failed", "deadline"), st)
        self.assertEqual(st["attempts"][0]["reason"], "deadline", st)
        names = event_names(spool, "dl")
        self.assertIn("deadline", names)
        self.assertIn("kill_sent", names)
        took = (parse_time(st["finished"]) - parse_time(st["created"])).total_seconds()
        self.assertGreaterEqual(took, 1.45, st)
        self.assertLess(took, 6, st)

    def test_deadline_ends_retries(self):
        # Retries that would run forever stop at the deadline.
        spool = self.make_spool()
        spool.drop_job("dlretry", command=["sh", "-c", "sleep 0.2; exit 3"],
                       deadline="2s", retry={"attempts": 100, "delay": "200ms"},
                       kill={"grace": "1s"})
        st = spool.wait_terminal("dlretry", timeout=20)
        self.assertEqual(st["state"], "failed", st)
        self.assertIn(st["reason"], ("deadline", "nonzero_exit"), st)
        self.assertLess(len(st["attempts"]), 20, st)
        took = (parse_time(st["finished"]) - parse_time(st["created"])).total_seconds()
        self.assertLess(took, 5, st)

    def test_leftover_background_processes_killed(self):
        spool = self.make_spool()
        script = ('sleep 100 &\n'
                  'echo $! > "$SPOOLD_RESULTS_DIR/bg"\n'
                  # The subshell ignores TERM before the main process exits.
                  "(trap '' TERM; touch \"$SPOOLD_RESULTS_DIR/trapped\"; sleep 100; "
                  "sleep 100) &\n"
                  'echo $! >> "$SPOOLD_RESULTS_DIR/bg"\n'
                  'echo $$ >> "$SPOOLD_RESULTS_DIR/bg"\n'
                  'while [ ! -e "$SPOOLD_RESULTS_DIR/trapped" ]; do sleep 0.01; done\n'
                  'exit 0\n')
        spool.drop_job("leftover", script=script, kill={"grace": "1s"})
        bgfile = os.path.join(spool.job_dir("leftover"), "results", "bg")

        def pids():
            values = [int(x) for x in read_text(bgfile).split()]
            return values if len(values) == 3 else None
        pids = spool.wait_for(pids, what="the background pids written")
        pgid = pids[2]
        st = spool.wait_terminal("leftover", timeout=20)
        self.assert_group_gone(pgid, pids, "job reported terminal")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["exit_code"], 0)
        self.assertEqual(self.kill_signals(spool, "leftover"), ["TERM", "KILL"])


if __name__ == "__main__":
    unittest.main()
