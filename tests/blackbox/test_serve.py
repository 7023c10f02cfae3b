"""spoolctl serve (issue 19, SPEC.md section 12): the JSON API over a real
spoold's spool, the cross-site and rebinding checks, --read-only, nothing
served from outside the root, logs ranged and followed, live updates, and a
clean stop on SIGTERM. The browser test (test_browser.py) checks the page."""
import hashlib
import http.client
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
import unittest

from harness import SpoolTestMixin, cannot_run
from harness_ctl import clean_env, spoolctl_bin

PASSWD_MARK = b"root:x:0:0"


class Server:
    """One `spoolctl serve` on a free port of 127.0.0.1."""

    def __init__(self, test, spool, *extra, listen="127.0.0.1:0"):
        self.log_path = os.path.join(spool.base, f"serve-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [spoolctl_bin(), "--root", spool.root, "serve", "--listen", listen, *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, env=clean_env())
        test.addCleanup(self.close)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\n", line)
        if not m:
            self.close()
            raise AssertionError(f"spoolctl serve printed {line!r}, not its URL\n{self.log_text()}")
        self.port = int(m.group(1))
        self.origin = f"http://127.0.0.1:{self.port}"

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def connection(self, timeout=20):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, headers=None, timeout=20):
        """(status, headers, body bytes)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, headers=headers or {})
            res = conn.getresponse()
            return res.status, res.headers, res.read()
        finally:
            conn.close()

    def get_json(self, path, expect=200):
        status, headers, body = self.request("GET", path)
        if status != expect:
            raise AssertionError(f"GET {path}: {status}, expected {expect}: {body[:500]!r}")
        if status != 206:
            assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
        return json.loads(body)

    def token(self):
        status, _, body = self.request("GET", "/")
        m = re.search(rb'<meta name="spoold-token" content="([0-9a-f]*)">', body)
        assert status == 200 and m, body[:500]
        return m.group(1).decode()

    def post(self, path, token=None, headers=None):
        h = {"X-Spoold-Token": token if token is not None else self.token(), "Origin": self.origin}
        h.update(headers or {})
        status, _, body = self.request("POST", path, headers=h)
        return status, json.loads(body) if body else None


def hand_job(spool, job_id, status, logs=None, events=None, files=None):
    """A job folder written by hand (no daemon): status.json as given (a dict,
    or text as it is), attempt logs {(attempt, stream): bytes}, events.jsonl
    lines (dicts or text), other files {relative path: bytes}."""
    job = spool.job_dir(job_id)
    os.makedirs(job, exist_ok=True)
    os.makedirs(spool.path("incoming"), exist_ok=True)
    with open(os.path.join(job, "status.json"), "w") as f:
        f.write(status if isinstance(status, str) else json.dumps({"id": job_id, **status}))
    for (attempt, stream), data in (logs or {}).items():
        os.makedirs(os.path.join(job, "attempts", str(attempt)), exist_ok=True)
        with open(os.path.join(job, "attempts", str(attempt), f"{stream}.log"), "wb") as f:
            f.write(data)
    if events is not None:
        with open(os.path.join(job, "events.jsonl"), "w") as f:
            for e in events:
                f.write((e if isinstance(e, str) else json.dumps(e)) + "\n")
    for rel, data in (files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(job, rel)), exist_ok=True)
        with open(os.path.join(job, rel), "wb") as f:
            f.write(data)
    return job


RUNNING = {"state": "running", "attempt": 1, "attempts": [{"attempt": 1, "started": "2026-01-01T00:00:00Z"}]}


class ServeTest(SpoolTestMixin, unittest.TestCase):

    def blocker(self, spool, job_id, lines=""):
        """A job that prints `lines`, then runs until its gate file exists."""
        gate = os.path.join(spool.base, f"gate-{job_id}")
        spool.drop_job(job_id, command=["sh", "-c", f'{lines}while [ ! -e "{gate}" ]; do sleep 0.02; done'])
        spool.wait_state(job_id, "running")
        return gate

    def assert_error(self, status, body, expect_status, code=None):
        self.assertEqual(status, expect_status, body)
        doc = json.loads(body) if isinstance(body, bytes) else body
        self.assertIsInstance(doc["error"]["message"], str)
        if code:
            self.assertEqual(doc["error"]["code"], code, doc)

    # -- reading ---------------------------------------------------------------

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

    def test_nothing_outside_the_root(self):
        spool = self.make_spool()
        spool.run_job("leak", command=["sh", "-c", "echo data > ok.txt; ln -s /etc/passwd link.txt"])
        job = spool.job_dir("leak")
        # Links planted after the end: in results/, for the events, for a log,
        # and a job folder that is a link.
        os.symlink("/etc/passwd", os.path.join(job, "results", "planted"))
        os.rename(os.path.join(job, "events.jsonl"), os.path.join(job, "events.saved"))
        os.symlink("/etc/passwd", os.path.join(job, "events.jsonl"))
        os.rename(os.path.join(job, "attempts", "1", "stdout.log"), os.path.join(job, "attempts", "1", "saved"))
        os.symlink("/etc/passwd", os.path.join(job, "attempts", "1", "stdout.log"))
        os.symlink("/etc", spool.path("jobs", "etc"))
        srv = Server(self, spool)
        self.assertEqual(srv.request("GET", "/api/jobs/leak/files/results/ok.txt")[2], b"data\n")
        for path in ("/api/jobs/leak/files/results/link.txt", "/api/jobs/leak/files/results/planted",
                     "/api/jobs/leak/events", "/api/jobs/leak/attempts/1/stdout",
                     "/api/jobs/leak/attempts/1/stdout?follow=1",
                     "/api/jobs/etc/files/results/passwd", "/api/jobs/etc", "/api/jobs/etc/events",
                     "/api/jobs/leak/files/results/../../../../../../etc/passwd",
                     "/api/jobs/leak/files/results/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/api/jobs/leak/files/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
                     "/api/jobs/leak/files//etc/passwd", "/api/jobs/leak/files/status.json",
                     "/../../../../etc/passwd", "/api/jobs/..%2f..%2f..%2fetc/events"):
            status, _, body = srv.request("GET", path)
            self.assertIn(status, (400, 404), path)
            self.assertNotIn(PASSWD_MARK, body, path)
            json.loads(body)  # an error document

    def test_post_needs_token_origin_and_host(self):
        spool = self.make_spool()
        gate = self.blocker(spool, "keep")
        self.addCleanup(lambda: open(gate, "w").close())
        srv = Server(self, spool)
        token = srv.token()
        self.assertRegex(token, "^[0-9a-f]{64}$")
        self.assertEqual(srv.get_json("/api/session")["token"], token)
        cancel = "/api/jobs/keep/cancel"
        status, body = srv.post(cancel, token="")
        self.assert_error(status, body, 403, "bad_token")
        status, body = srv.post(cancel, token="0" * 64)
        self.assert_error(status, body, 403, "bad_token")
        status, body = srv.post(cancel, token=token, headers={"Origin": "http://evil.example"})
        self.assert_error(status, body, 403, "bad_origin")
        status, body = srv.post(cancel, token=token, headers={"Origin": f"http://localhost:{srv.port + 1}"})
        self.assert_error(status, body, 403, "bad_origin")
        for host in ("evil.example", f"evil.example:{srv.port}", "127.0.0.1", f"127.0.0.2:{srv.port}"):
            status, _, body = srv.request("GET", "/api/index", headers={"Host": host})
            self.assert_error(status, body, 403, "bad_host")
            status, body = srv.post(cancel, token=token, headers={"Host": host})
            self.assert_error(status, body, 403, "bad_host")
        for host in (f"localhost:{srv.port}", f"[::1]:{srv.port}"):
            self.assertEqual(srv.request("GET", "/api/pools", headers={"Host": host})[0], 200, host)
        self.assertEqual(spool.status("keep")["state"], "running")
        self.assertNotIn("cancel_requested", [e["event"] for e in spool.events("keep")])
        self.assertEqual(os.listdir(spool.path("control")), [])
        # The page's own origin with the token: refused by the API only for
        # what the id is.
        status, body = srv.post("/api/jobs/nosuch/cancel", token=token)
        self.assert_error(status, body, 404, "unknown_job")
        status, body = srv.post("/api/jobs/-x/cancel", token=token)
        self.assert_error(status, body, 400, "bad_id")

    def test_read_only(self):
        spool = self.make_spool()
        gate = self.blocker(spool, "ro")
        self.addCleanup(lambda: open(gate, "w").close())
        srv = Server(self, spool, "--read-only")
        for path in ("/", "/pools", "/jobs/ro"):
            status, _, page = srv.request("GET", path)
            self.assertEqual(status, 200)
            self.assertNotIn(b'class="action', page)
            self.assertIn(b"read-only", page)
        self.assertIsNone(srv.get_json("/api/session")["token"])
        for path in ("/api/jobs/ro/cancel", "/api/pools/default/pause", "/api/jobs/ro/rerun"):
            status, body = srv.post(path, token="")
            self.assert_error(status, body, 403, "read_only")
        self.assertEqual(spool.status("ro")["state"], "running")

    # -- actions -----------------------------------------------------------------

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

    def test_hostile_files_do_not_break_answers(self):
        """status.json and events.jsonl of unexpected shapes (a job may be
        written by anyone who can write the spool) give answers, not a 500."""
        spool = self.make_spool(start=False)
        hand_job(spool, "odd", {"state": "failed", "after": ["a", 7, None, {"job": 5}, {"job": "p"}],
                                "attempt": "x", "attempts": "no"},
                 logs={(1, "stdout"): b"out\n"},
                 events=[{"seq": 1, "event": "a"}, {"seq": "bad", "event": "b"}, {"seq": 2.5, "event": "c"},
                         {"event": "d"}, "[1]", {"seq": 3, "event": "e"}])
        with open(spool.path("index.json"), "w") as f:
            json.dump({"updated": "2026-01-01T00:00:00Z", "pools": {}, "jobs": {"odd": {"state": "running"}}}, f)
        with open(spool.path("index.active.json"), "w") as f:
            json.dump({"updated": "2026-01-02T00:00:00Z", "pools": {}, "jobs": {}}, f)
        srv = Server(self, spool)
        entry = srv.get_json("/api/index")["jobs"]["odd"]
        self.assertEqual((entry["state"], entry["after"]), ("failed", ["p"]), entry)
        self.assertEqual([e["event"] for e in srv.get_json("/api/jobs/odd/events")], ["a", "b", "c", "d", "e"])
        self.assertEqual([e["event"] for e in srv.get_json("/api/jobs/odd/events?after=1")], ["e"])
        # A follow of a job whose status has odd fields: ended (failed), sent whole.
        status, _, body = srv.request("GET", "/api/jobs/odd/attempts/1/stdout?follow=1", timeout=10)
        self.assertEqual((status, body), (200, b"out\n"))

    def test_reads_refuse_other_sites(self):
        """A GET of /api/ or /metrics from another site (Origin, Sec-Fetch-Site)
        is 403 bad_origin: a page elsewhere cannot use up the stream slots with
        <img src=.../api/live>. Tools that send neither, the page's own
        requests and navigations to the page still work."""
        spool = self.make_spool(start=False)
        hand_job(spool, "j", {"state": "succeeded"})
        srv = Server(self, spool)

        def refused(path, headers):
            conn = srv.connection(timeout=10)
            try:
                conn.request("GET", path, headers=headers)
                res = conn.getresponse()
                # An event stream served (200) would never end: not read then.
                self.assert_error(res.status, res.read() if res.status != 200 else b"{}", 403, "bad_origin")
            finally:
                conn.close()
        for path in ("/api/live", "/api/session", "/api/jobs/j", "/metrics"):
            for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                            {"Origin": "http://evil.example"}, {"Origin": f"http://localhost:{srv.port}"}):
                refused(path, headers)
        for headers in ({}, {"Sec-Fetch-Site": "same-origin", "Origin": srv.origin}, {"Sec-Fetch-Site": "none"}):
            self.assertEqual(srv.request("GET", "/api/jobs/j", headers=headers)[0], 200, headers)
        self.assertEqual(srv.request("GET", "/jobs/j", headers={"Sec-Fetch-Site": "cross-site"})[0], 200)
        conn = srv.connection(timeout=10)
        conn.request("GET", "/api/live", headers={"Sec-Fetch-Site": "same-origin"})
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        self.assertIn(b"event: hello", res.read1(65536))
        conn.close()

    def test_result_paths_are_results_only(self):
        """/files/ serves results/... and tasks/<index>/results/... only, not
        any path with /results/ in it."""
        spool = self.make_spool(start=False)
        hand_job(spool, "arr", {"state": "succeeded"}, files={
            "results/a.txt": b"a", "tasks/3/results/b.txt": b"b",
            "tasks/3/attempts/1/results/x": b"x", "tasks/03/results/b.txt": b"z",
            "attempts/1/results/y": b"y"})
        srv = Server(self, spool)
        self.assertEqual(srv.request("GET", "/api/jobs/arr/files/results/a.txt")[2], b"a")
        self.assertEqual(srv.request("GET", "/api/jobs/arr/files/tasks/3/results/b.txt")[2], b"b")
        for path in ("tasks/3/attempts/1/results/x", "tasks/03/results/b.txt", "attempts/1/results/y",
                     "tasks/x/results/b.txt", "tasks//results/b.txt"):
            status, _, body = srv.request("GET", "/api/jobs/arr/files/" + path)
            self.assert_error(status, body, 404, "not_found")

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

    def test_port_80_host_without_port(self):
        """On port 80 a browser sends Host without ":80": accepted."""
        if os.geteuid() != 0:
            cannot_run(self, "listening on port 80 needs root")
        import socket
        probe = socket.socket()
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", 80))
        except OSError as exc:
            self.skipTest(f"SKIP: 127.0.0.1:80 is taken here ({exc})")
        finally:
            probe.close()
        spool = self.make_spool(start=False)
        hand_job(spool, "j", {"state": "succeeded"})
        srv = Server(self, spool, listen="127.0.0.1:80")
        for host in ("127.0.0.1", "localhost", "[::1]", "127.0.0.1:80"):
            self.assertEqual(srv.request("GET", "/api/jobs/j", headers={"Host": host})[0], 200, host)
        for host in ("evil.example", "127.0.0.1:81"):
            status, _, body = srv.request("GET", "/api/jobs/j", headers={"Host": host})
            self.assert_error(status, body, 403, "bad_host")

    def test_another_local_user_may_only_look(self):
        """Another user of the machine who connects to the port gets the
        read-only view: no token in /api/session or the page, and a POST even
        with the serving user's token is 403 not_owner."""
        if os.geteuid() != 0:
            cannot_run(self, "connecting as another user needs root (runuser)")
        spool = self.make_spool(start=False)
        hand_job(spool, "keep", RUNNING)
        srv = Server(self, spool)
        token = srv.token()
        self.assertRegex(token, "^[0-9a-f]{64}$")
        session = srv.get_json("/api/session")
        self.assertEqual((session["token"], session["read_only"]), (token, False))
        code = (
            "import http.client, json, sys\n"
            "port, token = int(sys.argv[1]), sys.argv[2]\n"
            "def ask(method, path, headers={}):\n"
            "    c = http.client.HTTPConnection('127.0.0.1', port, timeout=20)\n"
            "    c.request(method, path, headers=headers)\n"
            "    r = c.getresponse()\n"
            "    return [r.status, r.read().decode()]\n"
            "origin = 'http://127.0.0.1:%d' % port\n"
            "print(json.dumps({\n"
            "    'session': ask('GET', '/api/session'),\n"
            "    'page': ask('GET', '/jobs/keep'),\n"
            "    'cancel': ask('POST', '/api/jobs/keep/cancel', {'X-Spoold-Token': token, 'Origin': origin}),\n"
            "    'pause': ask('POST', '/api/pools/default/pause', {'X-Spoold-Token': token}),\n"
            "}))\n")
        proc = subprocess.run(["runuser", "-u", "nobody", "--", "python3", "-c", code, str(srv.port), token],
                              cwd="/", env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        got = json.loads(proc.stdout)
        status, body = got["session"]
        self.assertEqual(status, 200)
        session = json.loads(body)
        self.assertIsNone(session["token"])
        self.assertTrue(session["read_only"])
        self.assertEqual(session["read_only_reason"], "not_owner")
        status, page = got["page"]
        self.assertEqual(status, 200)
        self.assertNotIn(token, page)
        self.assertIn('<meta name="spoold-token" content="">', page)
        self.assertIn("read-only: you are not root", page)
        for action in ("cancel", "pause"):
            status, body = got[action]
            self.assert_error(status, body.encode(), 403, "not_owner")
        self.assertFalse(os.path.exists(spool.path("control")) and os.listdir(spool.path("control")))
        # The serving user still may.
        self.assertEqual(srv.token(), token)

if __name__ == "__main__":
    unittest.main()
