"""spoolctl serve (issue 19, SPEC.md section 12): the JSON API over a real
spoold's spool: the index, status and events, logs ranged and followed,
result downloads, /metrics, actions, live updates and a clean stop on
SIGTERM. Who may do what, and what is never served, is
test_serve_security.py; the page is test_browser.py."""
import hashlib
import http.client
import json
import os
import signal
import threading
import time
import unittest

from harness import SpoolTestMixin

from harness_serve import RUNNING, Server, ServeMixin, hand_job


class ServeTest(ServeMixin, SpoolTestMixin, unittest.TestCase):

    def test_index_status_and_events(self):
        spool = self.make_spool()
        title = "<img src=x onerror=alert(1)>"
        spool.drop_job("hello", title=title, tags=["t1"], command=["sh", "-c", "echo hi"])
        spool.wait_terminal("hello")
        srv = Server(self, spool)
        index = spool.wait_for(lambda: (lambda i: i if "hello" in i["jobs"] else None)(
            srv.get_json("/api/index")), what="hello in /api/index")
        self.assertEqual(index["jobs"]["hello"]["state"], "succeeded")
        self.assertIn("default", index["pools"])
        status, headers, body = srv.request("GET", "/api/jobs/hello")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertIn("default-src 'self'", headers["Content-Security-Policy"])
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        self.assertEqual(json.loads(body), spool.status("hello"))
        self.assertEqual(json.loads(body)["title"], title, "the title comes back as JSON data")
        _, _, page = srv.request("GET", "/jobs/hello")
        self.assertNotIn(b"<img", page, "the page holds no job text: the script inserts it as text")
        self.assertEqual(srv.get_json("/api/jobs/hello/events"), spool.events("hello"))
        self.assertEqual(srv.get_json("/api/pools")["pools"]["default"]["workers"], 2)
        status, _, body = srv.request("GET", "/api/jobs/nosuchjob")
        self.assert_error(status, body, 404, "unknown_job")
        status, _, body = srv.request("GET", "/api/jobs/-bad%20id")
        self.assert_error(status, body, 400, "bad_id")
        status, _, body = srv.request("GET", "/api/nothing-here")
        self.assert_error(status, body, 404)

    def test_logs_ranged_and_follow(self):
        spool = self.make_spool()
        gate = self.blocker(spool, "talk", lines="echo first; ")
        srv = Server(self, spool)
        log = "/api/jobs/talk/attempts/1/stdout"
        spool.wait_for(lambda: spool.attempt_log("talk") == "first\n", what="the first line")
        status, headers, body = srv.request("GET", log + "?offset=1&length=3")
        self.assertEqual((status, body), (200, b"irs"))
        self.assertEqual(headers["Content-Length"], "3")
        status, headers, body = srv.request("GET", log, headers={"Range": "bytes=0-2"})
        self.assertEqual((status, body), (206, b"fir"))
        self.assertEqual(headers["Content-Range"], "bytes 0-2/6")
        status, _, body = srv.request("GET", "/api/jobs/talk/attempts/7/stdout")
        self.assert_error(status, body, 404)

        got = []
        ended = threading.Event()

        def follow():
            conn = srv.connection(timeout=30)
            conn.request("GET", log + "?follow=1")
            res = conn.getresponse()
            got.append(res.status)
            while True:
                chunk = res.read1(65536)
                if not chunk:
                    break
                got.append(chunk)
            conn.close()
            ended.set()
        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        spool.wait_for(lambda: b"first\n" in b"".join(got[1:]), what="the follow stream's first line")
        self.assertFalse(ended.is_set(), "the stream ended while the job runs")
        with open(gate, "w"):  # the job ends, and with it the stream
            pass
        spool.wait_terminal("talk")
        self.assertTrue(ended.wait(15), "the follow stream did not end with the attempt")
        self.assertEqual(got[0], 200)
        self.assertEqual(b"".join(got[1:]).decode(), spool.attempt_log("talk"))

    def test_follow_sees_new_lines(self):
        spool = self.make_spool()
        gate = os.path.join(spool.base, "gate")
        spool.drop_job("late", command=["sh", "-c", f'echo one; while [ ! -e "{gate}" ]; do sleep 0.02; done; '
                                                    'echo two; sleep 0.3; echo three'])
        spool.wait_state("late", "running")
        srv = Server(self, spool)
        conn = srv.connection(timeout=30)
        # As a browser asks: a client that accepts compressed answers still
        # gets each line as it is written (a compressed stream would hold
        # them back until the end).
        conn.request("GET", "/api/jobs/late/attempts/1/stdout?follow=1",
                     headers={"Accept-Encoding": "gzip, deflate, br"})
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        self.assertIsNone(res.getheader("Content-Encoding"))
        self.assertEqual(res.read1(65536), b"one\n")
        with open(gate, "w"):
            pass
        rest = res.read()  # to the end of the stream: the attempt's end
        conn.close()
        self.assertEqual(rest, b"two\nthree\n")
        self.assertEqual(spool.status("late")["state"], "succeeded")

    def test_result_download(self):
        spool = self.make_spool()
        spool.run_job("res", command=["sh", "-c", "printf 'a\\000b\\377c' > data.bin; echo '{\"k\":1}' > out.json"])
        srv = Server(self, spool)
        results = srv.get_json("/api/jobs/res/results")
        with open(os.path.join(spool.job_dir("res"), "results.json"), "rb") as f:
            self.assertEqual(results, json.loads(f.read()))
        for key in ("data.bin", "out.json"):
            asset = results["assets"][key]
            status, headers, body = srv.request("GET", "/api/jobs/res/files/" + asset["href"])
            self.assertEqual(status, 200, body)
            with open(os.path.join(spool.job_dir("res"), "results", key), "rb") as f:
                self.assertEqual(body, f.read())
            self.assertEqual(int(headers["Content-Length"]), asset["file:size"])
            self.assertEqual("1220" + hashlib.sha256(body).hexdigest(), asset["file:checksum"])
            self.assertEqual(headers["Content-Type"], asset["type"])
            self.assertTrue(headers["Content-Disposition"].startswith("attachment;"), headers)
        self.assertEqual(srv.request("GET", "/api/jobs/res/files/results/none.txt")[0], 404)

    def test_metrics_file(self):
        spool = self.make_spool(start=False)  # no daemon: nothing else writes metrics.prom
        for folder in ("jobs", "incoming"):
            os.makedirs(spool.path(folder))
        srv = Server(self, spool)
        status, _, body = srv.request("GET", "/metrics")
        self.assert_error(status, body, 404, "no_metrics")
        text = b"# HELP spoold_up up\n# TYPE spoold_up gauge\nspoold_up 1\n"
        with open(spool.path("metrics.prom"), "wb") as f:
            f.write(text)
        status, headers, body = srv.request("GET", "/metrics")
        self.assertEqual((status, body), (200, text))
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers)
        status, _, body = srv.request("GET", "/api/index")
        self.assert_error(status, body, 503, "no_index")

    # -- safety ------------------------------------------------------------------

    def test_cancel_rerun_pause_resume(self):
        spool = self.make_spool()
        self.blocker(spool, "victim")
        srv = Server(self, spool)
        token = srv.token()
        status, body = srv.post("/api/jobs/victim/cancel", token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["action"], body["job"], body["outcome"]), ("cancel", "victim", "done"))
        st = spool.wait_terminal("victim")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"))
        self.assertIn("cancel_requested", [e["event"] for e in spool.events("victim")])
        status, body = srv.post("/api/jobs/victim/cancel", token=token)
        self.assert_error(status, body, 409, "invalid_state")
        status, body = srv.post("/api/jobs/victim/rerun", token=token)
        self.assertEqual((status, body["id"], body["outcome"]), (201, "victim.r2", "accepted"), body)
        self.assertEqual(spool.status("victim.r2")["metadata"]["derived_from"], "victim")
        status, body = srv.post("/api/pools/default/pause", token=token)
        self.assertEqual((status, body["outcome"]), (200, "done"), body)
        spool.wait_for(lambda: srv.get_json("/api/pools")["pools"]["default"]["paused"], what="paused")
        status, body = srv.post("/api/pools/default/resume", token=token)
        self.assertEqual((status, body["outcome"]), (200, "done"), body)
        spool.wait_for(lambda: not srv.get_json("/api/pools")["pools"]["default"]["paused"], what="resumed")
        status, body = srv.post("/api/pools/-no/pause", token=token)
        self.assert_error(status, body, 400)

    # -- live updates and stopping -------------------------------------------------

    def test_live_events_and_clean_stop(self):
        spool = self.make_spool()
        gate = self.blocker(spool, "open")
        self.addCleanup(lambda: open(gate, "w").close())
        srv = Server(self, spool)
        conn = srv.connection(timeout=10)
        conn.request("GET", "/api/live")
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        self.assertTrue(res.headers["Content-Type"].startswith("text/event-stream"))
        self.assertIn(b"event: hello", res.read1(65536))
        spool.drop_job("newcomer")
        seen = b""
        deadline = time.monotonic() + 5
        while b"event: index" not in seen and time.monotonic() < deadline:
            seen += res.read1(65536)
        self.assertIn(b"event: index", seen)
        self.assertIn("newcomer", srv.get_json("/api/index")["jobs"])
        # A followed log and the event stream stay open; SIGTERM ends both.
        follow = srv.connection(timeout=10)
        follow.request("GET", "/api/jobs/open/attempts/1/stdout?follow=1")
        self.assertEqual(follow.getresponse().status, 200)
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(timeout=10), 0, srv.log_text())
        conn.close()
        follow.close()


    # -- review fixes: ranges, hostile files, cross-site reads, peers ------------

    def test_ranges_checked_against_the_file(self):
        """A Range is checked against the file (416 with bytes */SIZE beyond it,
        the end cut to the size), applies to an ?offset&length window, and is
        ignored by every other answer (JSON, the page, errors)."""
        spool = self.make_spool(start=False)
        hand_job(spool, "six", {"state": "succeeded"}, logs={(1, "stdout"): b"first\n"})
        srv = Server(self, spool)
        log = "/api/jobs/six/attempts/1/stdout"
        for rng, body, content_range in (("bytes=2-100", b"rst\n", "bytes 2-5/6"),
                                         ("bytes=0-2", b"fir", "bytes 0-2/6"),
                                         ("bytes=-2", b"t\n", "bytes 4-5/6"),
                                         ("bytes=-100", b"first\n", "bytes 0-5/6"),
                                         ("bytes=5-1000000000000", b"\n", "bytes 5-5/6")):
            status, headers, got = srv.request("GET", log, headers={"Range": rng})
            self.assertEqual((status, got), (206, body), rng)
            self.assertEqual(headers["Content-Range"], content_range, rng)
            self.assertEqual(headers["Content-Length"], str(len(body)), rng)
        for rng in ("bytes=100-", "bytes=6-", "bytes=-0"):
            status, headers, got = srv.request("GET", log, headers={"Range": rng})
            self.assert_error(status, got, 416, "range_not_satisfiable")
            self.assertEqual(headers["Content-Range"], "bytes */6", rng)
        # Several ranges: the whole (RFC 9110 allows it).
        status, headers, got = srv.request("GET", log, headers={"Range": "bytes=0-1,3-4"})
        self.assertEqual((status, got), (200, b"first\n"))
        self.assertIsNone(headers["Content-Range"])
        # The window of ?offset&length is what the range counts in.
        status, headers, got = srv.request("GET", log + "?offset=1&length=3", headers={"Range": "bytes=1-"})
        self.assertEqual((status, got, headers["Content-Range"]), (206, b"rs", "bytes 1-2/3"))
        # JSON answers, the page and errors take no range.
        status, _, got = srv.request("GET", "/api/jobs/nope", headers={"Range": "bytes=500-"})
        self.assert_error(status, got, 404, "unknown_job")
        status, headers, got = srv.request("GET", "/api/jobs/six", headers={"Range": "bytes=0-5"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(got)["state"], "succeeded")
        self.assertIsNone(headers["Content-Range"])
        status, _, got = srv.request("GET", "/", headers={"Range": "bytes=0-5"})
        self.assertEqual(status, 200)
        self.assertIn(b"</html>", got)

    def test_empty_answers_have_a_length(self):
        """An empty log, or an offset at or past the end, is a 200 with
        Content-Length: 0 (not an answer that ends only when the connection
        closes); the connection then serves the next request."""
        spool = self.make_spool(start=False)
        hand_job(spool, "quiet", {"state": "succeeded"},
                 logs={(1, "stdout"): b"abc", (1, "stderr"): b""})
        srv = Server(self, spool)
        conn = srv.connection(timeout=5)
        try:
            for path in ("/api/jobs/quiet/attempts/1/stderr", "/api/jobs/quiet/attempts/1/stdout?offset=3",
                         "/api/jobs/quiet/attempts/1/stdout?offset=99"):
                conn.request("GET", path)
                res = conn.getresponse()
                self.assertEqual((res.status, res.headers["Content-Length"]), (200, "0"), path)
                self.assertEqual(res.read(), b"", path)
            conn.request("GET", "/api/jobs/quiet/attempts/1/stdout")  # the same connection
            self.assertEqual(conn.getresponse().read(), b"abc")
        finally:
            conn.close()

    def test_fast_log_follow_stops_on_sigterm(self):
        """A followed log with much to send (a job like `yes`) still sees a
        stop: the server exits soon after SIGTERM, not once all is sent."""
        spool = self.make_spool(start=False)
        hand_job(spool, "loud", RUNNING, logs={(1, "stdout"): b"y\n" * (24 << 20)})  # 48 MiB
        srv = Server(self, spool)
        conn = srv.connection(timeout=30)
        conn.request("GET", "/api/jobs/loud/attempts/1/stdout?follow=1")
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        stop = threading.Event()

        def slow_reader():  # about 1 MiB/s: the whole would take most of a minute
            while not stop.is_set():
                try:
                    if not res.read1(65536):
                        break
                except OSError:
                    break
                time.sleep(0.05)
        reader = threading.Thread(target=slow_reader, daemon=True)
        reader.start()
        time.sleep(1)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            self.assertEqual(srv.proc.wait(timeout=15), 0, srv.log_text())
        finally:
            stop.set()
            conn.close()
        self.assertLess(time.monotonic() - started, 10)

    def test_client_gone_frees_its_stream(self):
        """A follow of a quiet log whose client went frees its slot within a
        second or so: after 32 such clients came and went, a new one is served."""
        spool = self.make_spool(start=False)
        hand_job(spool, "still", RUNNING, logs={(1, "stdout"): b"once\n"})
        srv = Server(self, spool)
        conns = []
        for _ in range(32):
            conn = srv.connection(timeout=10)
            conn.request("GET", "/api/jobs/still/attempts/1/stdout?follow=1")
            res = conn.getresponse()
            self.assertEqual(res.status, 200)
            self.assertEqual(res.read1(65536), b"once\n")
            conns.append(conn)
        status, _, body = srv.request("GET", "/api/jobs/still/attempts/1/stdout?follow=1")
        self.assert_error(status, body, 503, "too_many_streams")
        for conn in conns:
            conn.close()

        def served():
            conn = srv.connection(timeout=10)
            try:
                conn.request("GET", "/api/jobs/still/attempts/1/stdout?follow=1")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        spool.wait_for(served, timeout=5, what="a follow served after the 32 clients went")


if __name__ == "__main__":
    unittest.main()
