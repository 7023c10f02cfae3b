"""spoold under systemd: the sd_notify protocol through a real datagram socket
(READY after recovery and the first scan, STATUS with counts, STOPPING, the
watchdog) and journald-friendly log lines (issue 5)."""
import os
import signal
import socket
import time
import unittest

from harness import SpoolTestMixin, job_toml


class SystemdTest(SpoolTestMixin, unittest.TestCase):

    def notify_socket(self, spool, abstract=False):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        if abstract:
            name = "spoold-test-%d-%d" % (os.getpid(), id(sock))
            sock.bind("\0" + name)
            spool.env["NOTIFY_SOCKET"] = "@" + name
        else:
            path = os.path.join(spool.base, "notify.sock")
            sock.bind(path)
            spool.env["NOTIFY_SOCKET"] = path
        sock.settimeout(0.2)
        return sock

    def receive_until(self, sock, predicate, timeout=20, what="message"):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                message = sock.recv(4096).decode()
            except socket.timeout:
                continue
            seen.append(message)
            if predicate(message):
                return message, seen
        self.fail(f"no {what} within {timeout}s; received {seen}")

    def test_ready_after_first_scan_then_status_and_stopping(self):
        spool = self.make_spool(start=False)
        sock = self.notify_socket(spool)
        # A job waiting before the start must be taken in before READY=1.
        os.makedirs(spool.path("incoming"), exist_ok=True)
        with open(spool.path("incoming", "early.toml"), "w") as f:
            f.write(job_toml(command=["sleep", "1"]))
        proc = spool.start(wait_ready=False)
        ready, _ = self.receive_until(sock, lambda m: "READY=1" in m.split("\n"), what="READY=1")
        self.assertIn(f"MAINPID={proc.pid}", ready.split("\n"))
        self.assertTrue(os.path.isdir(spool.job_dir("early")),
                        "READY=1 came before the first scan took in incoming/")
        status, _ = self.receive_until(sock, lambda m: m.startswith("STATUS=") and "1 running" in m,
                                       what="STATUS= with the running job")
        self.assertRegex(status, r"^STATUS=1 running, 0 queued, 1 jobs")
        spool.wait_terminal("early")
        self.receive_until(sock, lambda m: m.startswith("STATUS=0 running, 0 queued, 1 jobs"),
                           what="STATUS= after the job ended")
        spool.proc.send_signal(signal.SIGTERM)
        self.receive_until(sock, lambda m: "STOPPING=1" in m.split("\n"), what="STOPPING=1")
        self.assertEqual(spool.proc.wait(timeout=20), 0)

    def test_abstract_socket_name(self):
        spool = self.make_spool(start=False)
        sock = self.notify_socket(spool, abstract=True)
        spool.start(wait_ready=False)
        self.receive_until(sock, lambda m: "READY=1" in m.split("\n"), what="READY=1 on @socket")

    def test_watchdog_pings_at_half_the_interval(self):
        # WatchdogSec=2s: a ping every second. In 3.5 s that is 3 pings; a
        # daemon that pinged only once per interval would send 1, and systemd
        # would kill it whenever a ping came late.
        spool = self.make_spool(start=False)
        sock = self.notify_socket(spool)
        spool.env["WATCHDOG_USEC"] = "2000000"
        spool.start(wait_ready=False)
        self.receive_until(sock, lambda m: "READY=1" in m.split("\n"), what="READY=1")
        deadline = time.monotonic() + 3.5
        pings = 0
        while time.monotonic() < deadline:
            try:
                pings += sock.recv(4096).decode() == "WATCHDOG=1"
            except socket.timeout:
                pass
        self.assertGreaterEqual(pings, 2, "pings in 3.5 s with WATCHDOG_USEC=2 s")

    def test_no_watchdog_for_another_pid(self):
        spool = self.make_spool(start=False)
        sock = self.notify_socket(spool)
        spool.env["WATCHDOG_USEC"] = "200000"
        spool.env["WATCHDOG_PID"] = "1"  # meant for someone else
        spool.start(wait_ready=False)
        _, seen = self.receive_until(sock, lambda m: "READY=1" in m.split("\n"), what="READY=1")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                seen.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
        self.assertNotIn("WATCHDOG=1", seen)

    def test_journal_lines_carry_priorities_and_no_times(self):
        spool = self.make_spool(start=False)
        open(spool.log_path, "ab").close()
        st = os.stat(spool.log_path)
        spool.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        spool.start()
        spool.drop("bad.toml", "command = 3\n")
        spool.wait_rejected("bad.toml")
        spool.stop()
        lines = [l for l in spool.log_text().splitlines() if l and not l.startswith("=====")]
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[0-7]>", line)
            self.assertNotRegex(line, r"^<\d>\d{4}-\d\d-\d\d", line)
        self.assertTrue(any(l.startswith("<6>") and "running on" in l for l in lines), lines)
        self.assertTrue(any(l.startswith("<4>") and "rejected bad.toml" in l for l in lines), lines)

    def test_journal_stream_of_another_file_is_ignored(self):
        spool = self.make_spool(start=False)
        st = os.stat("/")
        spool.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        spool.start()
        spool.stop()
        lines = [l for l in spool.log_text().splitlines() if l and not l.startswith("=====")]
        self.assertTrue(any("running on" in l and l[:4].isdigit() for l in lines), lines)


if __name__ == "__main__":
    unittest.main()
