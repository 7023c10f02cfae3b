"""Jobs outlive the daemon (issue 16): each local attempt runs under its own
supervisor (spoold-exec), so a daemon stop (SIGTERM) or crash (SIGKILL) leaves
the job running, and the next daemon adopts it: same pid, same attempt, same
log files. The supervisor enforces the timeout while no daemon runs, output
never passes the daemon, a cancel left in control/ is applied at the next start,
a recorded pid now owned by another process is never signalled, and nothing the
job started (setsid, double fork) outlives it.

The chaos test of the same feature is test_outlive_chaos.py."""
import json
import os
import signal
import subprocess
import time
import unittest

from harness import SpoolTestMixin, WaitTimeout, parse_time
from harness_sched import (OrphanReaper, describe_pids, drop_control, event_names,
                           group_members, pid_alive, proc_stat, read_pidfile)

TICKS = 40  # 40 lines, one every 0.5 s: a 20 s job

# Prints a counter every 0.5 s to stdout (its attempt's stdout.log).
COUNTER = (
    'i=0\n'
    f'while [ "$i" -lt {TICKS} ]; do\n'
    '  echo "tick $i"\n'
    '  i=$((i + 1))\n'
    '  sleep 0.5\n'
    'done\n')

# Records each run's pid; the first run blocks, later runs succeed at once.
FIRST_RUN_BLOCKS = (
    'echo $$ >> "$SPOOLD_RESULTS_DIR/pids"\n'
    'if [ -e "$SPOOLD_RESULTS_DIR/ran" ]; then exit 0; fi\n'
    'touch "$SPOOLD_RESULTS_DIR/ran"\n'
    'sleep 300\n')

# Starts a child that leaves the job's session (setsid) and one whose parent
# exits at once (double fork), records their pids, and waits until the setsid
# child has its own session before it goes on.
ESCAPERS = (
    'setsid sleep 1000 &\n'
    'p=$!\n'
    'echo "$p" > "$SPOOLD_RESULTS_DIR/setsid.pid"\n'
    '(sleep 1001 & echo "$!" > "$SPOOLD_RESULTS_DIR/double.pid")\n'
    'n=0\n'
    'while [ "$(cut -d" " -f6 /proc/$p/stat 2>/dev/null)" != "$p" ] && [ "$n" -lt 1000 ]; do\n'
    '  n=$((n + 1)); sleep 0.01\n'
    'done\n'
    'echo started\n')

MIB = 1024 * 1024
BIG = 100 * MIB  # "100 MB" written to stdout

# The daemon's stop must take about a second (design: "exits 0 within a
# second"); a little slack for a shared machine and a sanitized build.
STOP_LIMIT_S = 1.5


def start_ticks(pid):
    """/proc/PID/stat field 22 of a live (not zombie) process, else None."""
    st = proc_stat(pid)
    if st is None or st[0] == "Z":
        return None
    return st[3]


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def count_events(spool, job_id, name):
    return event_names(spool, job_id).count(name)


class OutliveTest(SpoolTestMixin, unittest.TestCase):

    def make_outlive_spool(self, **kwargs):
        spool = self.make_spool(**kwargs)
        # Supervisors whose daemon exited are reparented: reap them as a prompt
        # init would (only pids that are not daemons are reaped).
        reaper = OrphanReaper(lambda: [p.pid for p in spool.procs])
        self.addCleanup(reaper.stop)
        return spool

    # -- helpers ---------------------------------------------------------------

    def running_attempt(self, spool, job_id):
        """(status, pid, pid_start) once the job runs and its attempt names its
        process."""
        def check():
            st = spool.status(job_id)
            if st["state"] != "running" or not st["attempts"]:
                return None
            att = st["attempts"][-1]
            if not isinstance(att.get("pid"), int) or not isinstance(att.get("pid_start"), int):
                return None
            return st
        st = spool.wait_for(check, what=f"job {job_id} running with its pid recorded")
        att = st["attempts"][-1]
        self.assertEqual(st["pid"], att["pid"], st)
        return st, att["pid"], att["pid_start"]

    def assert_same_process(self, pid, pid_start, when):
        ticks = start_ticks(pid)
        if ticks is None:
            self.fail(f"{when}: the job's process {pid} is gone: the job must outlive the daemon")
        if ticks != pid_start:
            self.fail(f"{when}: pid {pid} is now another process (start {ticks}, recorded "
                      f"{pid_start}): the job's process died")

    def stop_fast(self, spool, when):
        """SIGTERM; the daemon must exit 0 within STOP_LIMIT_S. Returns the time
        it took."""
        proc = spool.proc
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.fail(f"{when}: the daemon did not exit within 15 s of SIGTERM\n"
                      + spool.log_tail())
        took = time.monotonic() - began
        spool.proc = None
        self.assertEqual(code, 0, f"{when}: exit code after SIGTERM\n" + spool.log_tail())
        return took

    def wait_log_grows(self, spool, job_id, when, timeout=5):
        """New output in attempt 1's stdout.log (whatever the daemon is doing)."""
        before = spool.attempt_log(job_id, 1)
        spool.wait_for(lambda: len(spool.attempt_log(job_id, 1)) > len(before), timeout=timeout,
                       what=f"{when}: new lines in jobs/{job_id}/attempts/1/stdout.log",
                       daemon_must_live=False)

    def wait_adopted(self, spool, job_id, n, when, timeout=15):
        try:
            spool.wait_for(lambda: count_events(spool, job_id, "adopted") >= n, timeout=timeout,
                           what=f"{when}: adopted event number {n} of job {job_id}")
        except WaitTimeout as exc:
            self.fail(f"{exc}\nevents of {job_id}: {event_names(spool, job_id)}")

    def wait_gone(self, spool, pids, timeout, what):
        spool.wait_for(lambda: not [p for p in pids if pid_alive(p)], timeout=timeout,
                       what=what, daemon_must_live=False)

    # -- 1. one attempt across three restarts ----------------------------------

    def test_job_survives_three_daemon_restarts(self):
        spool = self.make_outlive_spool(workers=2)
        spool.drop_job("long", script=COUNTER, kill={"grace": "5s"})
        st, pid, pid_start = self.running_attempt(spool, "long")
        spool.wait_for(lambda: "tick 1\n" in spool.attempt_log("long", 1),
                       what="the job's first lines in stdout.log")

        # 1) SIGTERM: exits 0 at once, the job runs on.
        took = self.stop_fast(spool, "SIGTERM")
        self.assert_same_process(pid, pid_start, "after the daemon's SIGTERM")
        self.assertLessEqual(took, STOP_LIMIT_S,
                             f"the daemon took {took:.2f}s to exit after SIGTERM (it leaves "
                             f"the jobs running and exits within a second)")
        st = spool.status("long")
        self.assertEqual((st["state"], st["pid"]), ("running", pid),
                         f"status.json after the SIGTERM: the attempt is not ended: {st}")
        self.wait_log_grows(spool, "long", "daemon stopped by SIGTERM")
        spool.start()
        self.wait_adopted(spool, "long", 1, "after the SIGTERM")
        self.assert_same_process(pid, pid_start, "after the first restart")

        # 2) SIGKILL.
        spool.kill()
        self.assert_same_process(pid, pid_start, "after the daemon's SIGKILL")
        self.wait_log_grows(spool, "long", "daemon killed")
        spool.start()
        self.wait_adopted(spool, "long", 2, "after the SIGKILL")
        self.assert_same_process(pid, pid_start, "after the second restart")

        # 3) SIGKILL while another job starts: the moment its attempt folder
        # appears or its status says running.
        spool.drop_job("other", command=["sleep", "1"])
        other_attempt = spool.path("jobs", "other", "attempts", "1")

        def other_starting():
            if os.path.isdir(other_attempt):
                return "attempt folder"
            return "running" if spool.status("other")["state"] == "running" else None
        seen = spool.wait_for(other_starting, interval=0.002,
                              what="the second job starting")
        spool.kill()
        print(f"\nkilled the daemon when the second job showed its {seen}")
        self.assert_same_process(pid, pid_start, "after the SIGKILL during a start")
        spool.start()
        self.wait_adopted(spool, "long", 3, "after the SIGKILL during a start")
        self.assert_same_process(pid, pid_start, "after the third restart")

        st = spool.wait_terminal("long", timeout=60)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(st["attempts"]), 1, f"one attempt: {st['attempts']}")
        self.assertEqual(st["attempt"], 1, st)
        self.assertEqual(st.get("interruptions", 0), 0, st)
        att = st["attempts"][0]
        self.assertEqual((att["pid"], att["pid_start"]), (pid, pid_start),
                         f"the pid of the attempt never changed: {att}")
        self.assertEqual(att["reason"], None, att)
        self.assertEqual(att["exit_code"], 0, att)
        self.assertEqual(sorted(os.listdir(spool.path("jobs", "long", "attempts"))), ["1"])
        lines = spool.attempt_log("long", 1).splitlines()
        self.assertEqual(lines, [f"tick {i}" for i in range(TICKS)],
                         "stdout.log holds every counter value once, in order")
        names = event_names(spool, "long")
        self.assertEqual(names.count("exited"), 1, names)
        self.assertGreaterEqual(names.count("adopted"), 3, names)
        for bad in ("recovered", "requeued"):
            self.assertNotIn(bad, names)
        supervisor = att.get("supervisor_pid")
        self.assertIsInstance(supervisor, int, f"attempts[0].supervisor_pid: {att}")
        self.assertEqual(att.get("boot_id"), boot_id(), att)
        for ev in spool.events("long"):
            if ev["event"] == "adopted":
                self.assertIn(str(supervisor), ev["message"],
                              f"the adopted event names the supervisor: {ev}")
                self.assertEqual(ev["attempt"], 1, ev)
        results = os.path.join(spool.job_dir("long"), "results.json")
        spool.wait_for(lambda: os.path.exists(results), timeout=5, what="results.json")
        with open(results, "rb") as f:
            self.assertEqual(json.loads(f.read())["properties"]["spoold:state"], "succeeded")
        self.assertFalse(pid_alive(pid), "the job's process is gone")

    # -- 2. the timeout while the daemon is down --------------------------------

    def test_timeout_enforced_while_daemon_down(self):
        spool = self.make_outlive_spool()
        spool.drop_job("slow", command=["sleep", "60"], timeout="3s", kill={"grace": "1s"},
                       retry={"attempts": 1, "delay": "100ms", "on_timeout": True})
        st, pid, pid_start = self.running_attempt(spool, "slow")
        started = parse_time(st["attempts"][-1]["started"]).timestamp()
        spool.stop(expect_code=0, timeout=15)
        down = time.monotonic()
        died = None
        while time.monotonic() - down < 10:  # the daemon stays down 10 s
            if died is None and start_ticks(pid) != pid_start:
                died = time.time()
                if died - started < 2.5:
                    break  # killed by the stop: fails below at once
            time.sleep(0.02)
        if died is None:
            self.fail(f"the job (pid {pid}, timeout 3s, grace 1s) still ran 10 s "
                      f"after the daemon stopped: {describe_pids([pid])}")
        lived = died - started
        self.assertGreaterEqual(lived, 2.5,
                                f"the job died {lived:.2f}s after it started, before its 3 s "
                                f"timeout: the daemon's stop killed it (it must outlive it)")
        self.assertLessEqual(lived, 8, f"the job died {lived:.2f}s after it started "
                                       f"(timeout 3 s + grace 1 s)")
        print(f"\nthe job died {lived:.2f}s after its start, the daemon being down")

        spool.start()
        st = spool.wait_terminal("slow", timeout=30)
        att = st["attempts"]
        self.assertEqual(att[0]["reason"], "timeout", f"attempt 1 recorded as timed out: {st}")
        self.assertEqual((att[0]["pid"], att[0]["pid_start"]), (pid, pid_start), att[0])
        self.assertLessEqual(att[0]["duration_s"], 8,
                             f"attempt 1 lasted its timeout, not the daemon's absence: {att[0]}")
        self.assertGreaterEqual(att[0]["duration_s"], 2.5, att[0])
        self.assertEqual(st.get("interruptions", 0), 0, st)
        first = [e["event"] for e in spool.events("slow") if e["attempt"] == 1]
        self.assertIn("timeout", first)
        self.assertIn("kill_sent", first)
        self.assertLess(first.index("timeout"), first.index("kill_sent"), first)
        self.assertEqual(first.count("exited"), 1, first)
        self.assertNotIn("recovered", first)
        self.assertEqual(len(att), 2, f"a second attempt ran (on_timeout retry): {st}")
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)
        self.assertEqual(att[1]["reason"], "timeout", st)
        self.assertIn("retry_scheduled", event_names(spool, "slow"))

    # -- 3. output does not need the daemon -------------------------------------

    def big_output_run(self, spool, job_id, daemon_down):
        """Seconds from opening the job's gate to its process's end; the job
        writes BIG bytes of zeros to stdout once the gate exists."""
        gate = os.path.join(spool.base, f"gate-{job_id}")
        spool.drop_job(job_id, script=(f'while [ ! -e "{gate}" ]; do sleep 0.01; done\n'
                                       f'head -c {BIG} /dev/zero\n'), kill={"grace": "5s"})
        _, pid, pid_start = self.running_attempt(spool, job_id)
        if daemon_down:
            spool.stop(expect_code=0, timeout=15)
            self.assert_same_process(pid, pid_start, "after the daemon's SIGTERM")
        began = time.monotonic()
        with open(gate, "w"):
            pass
        spool.wait_for(lambda: start_ticks(pid) != pid_start, timeout=120, interval=0.005,
                       what=f"job {job_id} writing {BIG} bytes ended", daemon_must_live=False)
        took = time.monotonic() - began
        if daemon_down:
            size = os.path.getsize(spool.path("jobs", job_id, "attempts", "1", "stdout.log"))
            self.assertEqual(size, BIG, "the whole output was written with the daemon down")
            spool.start()
        st = spool.wait_terminal(job_id, timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(st["attempts"]), 1, st)
        size = os.path.getsize(spool.path("jobs", job_id, "attempts", "1", "stdout.log"))
        self.assertEqual(size, BIG, f"{job_id}: stdout.log size")
        return took

    def test_big_output_while_daemon_down(self):
        spool = self.make_outlive_spool()
        up = self.big_output_run(spool, "up", daemon_down=False)
        down = self.big_output_run(spool, "down", daemon_down=True)
        print(f"\n{BIG} bytes to stdout: {up:.2f}s with the daemon up, {down:.2f}s with it down")
        limit = max(3 * up, up + 5)
        self.assertLessEqual(down, limit,
                             f"with the daemon down the job took {down:.2f}s, with it up "
                             f"{up:.2f}s (limit {limit:.2f}s)")
        self.assertEqual(count_events(spool, "down", "exited"), 1)

    # -- 4. a cancel left while the daemon was down ---------------------------

    def test_cancel_dropped_while_daemon_down(self):
        spool = self.make_outlive_spool()
        spool.drop_job("victim", command=["sleep", "300"], kill={"grace": "5s"})
        st, pid, pid_start = self.running_attempt(spool, "victim")
        spool.stop(expect_code=0, timeout=15)
        self.assert_same_process(pid, pid_start, "after the daemon's SIGTERM")
        supervisor = spool.status("victim")["attempts"][-1].get("supervisor_pid")
        drop_control(spool, "cancel-victim", {"action": "cancel", "job": "victim"})
        self.assert_same_process(pid, pid_start, "the cancel waits for the daemon")
        spool.start()
        st = spool.wait_terminal("victim", timeout=30)
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertFalse(pid_alive(pid), f"the job's process is gone: {describe_pids([pid])}")
        self.assertEqual(group_members(pid), [], "nothing of the job's group is left")
        self.assertEqual(len(st["attempts"]), 1, f"the adopted attempt was cancelled: {st}")
        self.assertEqual(st["attempts"][0]["reason"], "cancelled_by_user", st)
        self.assertEqual(st.get("interruptions", 0), 0, st)
        names = event_names(spool, "victim")
        for name in ("adopted", "cancel_requested", "kill_sent"):
            self.assertIn(name, names)
        self.assertNotIn("recovered", names)
        self.assertEqual(names[-1], "cancelled", names)
        spool.wait_for(lambda: not os.path.exists(spool.path("control", "cancel-victim.json")),
                       timeout=5, what="the cancel request removed once applied")
        if supervisor is not None:
            self.wait_gone(spool, [supervisor], 5, f"the supervisor {supervisor} exited")

    # -- 5. a recorded pid that is now another process -------------------------

    def test_reused_pid_never_signalled(self):
        spool = self.make_outlive_spool()
        spool.drop_job("reuse", script=FIRST_RUN_BLOCKS, kill={"grace": "1s"})
        pids = os.path.join(spool.job_dir("reuse"), "results", "pids")
        ran = os.path.join(spool.job_dir("reuse"), "results", "ran")
        # Its marker too: a run killed before it, the next run would block as well.
        spool.wait_for(lambda: len(read_pidfile(pids)) == 1 and os.path.exists(ran),
                       what="the first run started")
        st, pid, pid_start = self.running_attempt(spool, "reuse")
        att = st["attempts"][-1]
        self.assertIn("supervisor_pid", att, f"status.json attempts[-1]: {att}")
        supervisor = att["supervisor_pid"]
        self.assertIsInstance(supervisor, int, att)
        self.assertTrue(pid_alive(supervisor), f"supervisor {supervisor} runs")
        spool.kill()
        # The supervisor and the job die without a daemon to see it.
        os.kill(supervisor, signal.SIGKILL)
        self.wait_gone(spool, [supervisor], 10, f"supervisor {supervisor} killed")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone with its supervisor
        spool.wait_for(lambda: not group_members(pid), timeout=10, daemon_must_live=False,
                       what=f"the job's group {pid} killed")
        decoy = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL,
                                 start_new_session=True, env={"PATH": os.environ["PATH"]})
        self.addCleanup(lambda: (decoy.kill(), decoy.wait()))
        self.assertNotEqual(start_ticks(decoy.pid), pid_start)
        path = os.path.join(spool.job_dir("reuse"), "status.json")
        with open(path, "rb") as f:
            st = json.loads(f.read())
        st["pid"] = decoy.pid
        st["attempts"][-1]["pid"] = decoy.pid  # pid_start kept: it does not match
        with open(path + ".bb", "w") as f:
            json.dump(st, f)
        os.rename(path + ".bb", path)

        spool.start()
        st = spool.wait_for(lambda: (lambda s: s if s["attempts"][0]["reason"] else None)(
            spool.status("reuse")), what="attempt 1 recorded ended")
        self.assertEqual(st["attempts"][0]["reason"], "interrupted", st)
        self.assertIn("recovered", event_names(spool, "reuse"))
        st = spool.wait_terminal("reuse", timeout=30)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(read_pidfile(pids)), 2, "ran again")
        state = proc_stat(decoy.pid)
        self.assertIsNone(decoy.poll(), f"the unrelated process {decoy.pid} was killed "
                                        f"(exit {decoy.returncode})")
        self.assertNotIn(state[0], ("T", "t", "Z"), f"the unrelated process was signalled: "
                                                    f"state {state}")

    # -- 6. nothing the job started outlives it ---------------------------------

    def assert_escapers_gone(self, spool, job_id, st):
        res = os.path.join(spool.job_dir(job_id), "results")
        left = []
        for pid in spool.job_processes():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args[:2] in ([b"sleep", b"1000"], [b"sleep", b"1001"]) and pid_alive(pid):
                left.append(pid)
        if left:
            self.fail(f"job {job_id} is {st['state']}/{st['reason']} but processes it started "
                      f"still run: {describe_pids(left)}")
        escaped = read_pidfile(os.path.join(res, "setsid.pid"))
        doubled = read_pidfile(os.path.join(res, "double.pid"))
        self.assertEqual((len(escaped), len(doubled)), (1, 1), "both children were started")
        alive = [p for p in escaped + doubled if pid_alive(p)]
        self.assertEqual(alive, [], f"still running: {describe_pids(alive)}")

    def test_setsid_and_double_fork_killed_when_job_ends(self):
        spool = self.make_outlive_spool()
        spool.drop_job("escape", script=ESCAPERS, timeout="60s", kill={"grace": "2s"})
        st = spool.wait_terminal("escape", timeout=30)
        self.assert_escapers_gone(spool, "escape", st)
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.attempt_log("escape"), "started\n")

    def test_setsid_and_double_fork_killed_on_timeout(self):
        spool = self.make_outlive_spool()
        spool.drop_job("escape", script=ESCAPERS + "sleep 100\n", timeout="1s",
                       kill={"grace": "1s"})
        st = spool.wait_terminal("escape", timeout=30)
        self.assert_escapers_gone(spool, "escape", st)
        self.assertEqual((st["state"], st["reason"]), ("failed", "timeout"), st)

    def test_the_stop_signal_reaches_what_a_thread_forked_and_grandchildren_in_their_own_session(self):
        # The job (it takes SIGTERM and lives on) starts catchers, each in a
        # session of its own, out of the job's process group: one forked by a
        # second thread (the kernel lists it as that thread's child, not the
        # main one's), and grandchildren whose parent shell dies of SIGTERM at
        # once: two such parents in sessions of their own, six in the job's
        # group. A parent signalled before its children were read hands them
        # to the supervisor unseen. The cancel's SIGTERM must reach every
        # catcher while the job still runs (a catcher says so in a file);
        # SIGKILL, after the grace, would leave no word.
        spool = self.make_outlive_spool()
        catcher = ('trap \'echo TERM > "$1.sig"; exit 0\' TERM\n'
                   'echo $$ > "$1.tmp"; mv "$1.tmp" "$1.pid"\n'
                   'while :; do sleep 0.05; done\n')
        grands = [f"grand{i}" for i in range(8)]
        script = (
            'import os, signal, subprocess, threading, time\n'
            'signal.signal(signal.SIGTERM, lambda *_: None)\n'
            'res = os.environ["SPOOLD_RESULTS_DIR"]\n'
            'catcher = os.path.join(res, "catcher.sh")\n'
            f'open(catcher, "w").write({catcher!r})\n'
            'def fork():  # the thread stays: its child stays its own\n'
            '    subprocess.Popen(["setsid", "sh", catcher, os.path.join(res, "thread")])\n'
            '    while True:\n'
            '        time.sleep(1000)\n'
            'threading.Thread(target=fork, daemon=True).start()\n'
            f'for i, name in enumerate({grands!r}):\n'
            '    own = ["setsid"] if i < 2 else []\n'
            '    subprocess.Popen(own + ["sh", "-c", \'setsid sh "$0" "$1"; :\', catcher, os.path.join(res, name)])\n'
            f'while not all(os.path.exists(os.path.join(res, f + ".pid")) for f in ["thread"] + {grands!r}):\n'
            '    time.sleep(0.01)\n'
            'print("started", flush=True)\n'
            'while True:\n'
            '    time.sleep(1000)\n')
        spool.drop_job("tree", command=["python3", "-c", script], kill={"grace": "3s"})
        spool.wait_for(lambda: spool.attempt_log("tree") == "started\n", timeout=30,
                       what="the job started its catchers")
        res = spool.path("jobs", "tree", "results")
        drop_control(spool, "cancel-tree", {"action": "cancel", "job": "tree"})
        st = spool.wait_terminal("tree", timeout=30)
        self.assertEqual(st["state"], "cancelled", st)
        for name in ["thread"] + grands:
            pids = read_pidfile(os.path.join(res, f"{name}.pid"))
            self.assertTrue(os.path.exists(os.path.join(res, f"{name}.sig")),
                            f"the {name} catcher got no SIGTERM (it was killed later, or runs: "
                            f"{describe_pids(pids)}); the kills: {st['attempts'][-1].get('kills')}")
            self.assertEqual([p for p in pids if pid_alive(p)], [], describe_pids(pids))

if __name__ == "__main__":
    unittest.main()
