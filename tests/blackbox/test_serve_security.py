"""spoolctl serve (SPEC.md section 12, "Security"): nothing served from
outside the root, Host, Origin and token checks, cross-site reads, --read-only,
another local user who may only look, hostile files answered with an error,
and results served only from results/."""
import http.client
import json
import os
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run
from harness_ctl import clean_env

from harness_serve import PASSWD_MARK, RUNNING, Server, ServeMixin, hand_job


class ServeSecurityTest(ServeMixin, SpoolTestMixin, unittest.TestCase):

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
