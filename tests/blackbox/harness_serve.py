"""Helpers of the spoolctl serve tests (test_serve.py, test_serve_security.py):
a running `spoolctl serve` on a test spool, job folders written by hand, and
checks of the API's JSON errors."""
import http.client
import json
import os
import re
import select
import subprocess
import time

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


class ServeMixin:
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
