"""The web view, `spoolctl serve` (issue #19), in a real browser: Debian's
chromium, headless, driven by playwright-core (tests/browser/, installed by
`npm ci` there, which `make test` runs; no browser is ever downloaded).

Each test starts spoold on a temporary spool and `spoolctl serve --listen
127.0.0.1:0` on it, prepares jobs, and runs one scenario script of
tests/browser/ (node SCRIPT.mjs JSON) that opens the pages, acts like a user
and checks the pages against the spool files; the test passes when the script
prints PASS and exits 0. The scripts print timings ("TIMING name=ms": chromium's
start, each scenario's total) and, with SPOOLD_SCREENSHOTS=DIR, the filters and
download scenarios save DIR/jobs.png and DIR/job.png (`make screenshots`).

Without chromium, node or tests/browser/node_modules the tests cannot run: run
as root (as `make test` and CI do) they fail and say what is missing; otherwise
they skip.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

from harness import SpoolTestMixin, cannot_run, source_dir
from harness_ctl import clean_env, spoolctl_bin

BROWSER_DIR = os.path.join(source_dir(), "tests", "browser")
CHROMIUM = os.environ.get("SPOOLD_CHROMIUM", "/usr/bin/chromium")
SCENARIO_TIMEOUT = 150
SERVE_START_TIMEOUT = 20

# A job that prints "line N" every 0.2 s (and "err N" on stderr every fifth
# line) until the file $1 exists, for at most two minutes.
FOLLOW_SCRIPT = ('i=0; while [ ! -e "$1" ] && [ $i -lt 600 ]; do i=$((i+1)); echo "line $i"; '
                 'if [ $((i % 5)) -eq 0 ]; then echo "err $i" >&2; fi; sleep 0.2; done')


class BrowserTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        missing = []
        if not os.access(CHROMIUM, os.X_OK):
            missing.append(f"no chromium at {CHROMIUM} (Debian package chromium; `make deps` "
                           f"installs it as root)")
        if not shutil.which("node"):
            missing.append("no `node` command (Debian packages nodejs and npm; `make test` "
                           "installs them as root)")
        if not os.path.isfile(os.path.join(BROWSER_DIR, "node_modules", "playwright-core",
                                           "package.json")):
            missing.append(f"no playwright-core in {BROWSER_DIR}/node_modules (`make test` runs "
                           f"`npm ci --no-audit --no-fund` there; did it fail?)")
        if missing:
            print("\n" + "!" * 72 + "\nTHE BROWSER TEST CANNOT RUN: " + "; ".join(missing)
                  + "\n" + "!" * 72, flush=True)
            cannot_run(self, "the browser test needs " + "; ".join(missing))

    # -- the server ----------------------------------------------------------

    def serve(self, spool, *extra):
        """Starts `spoolctl serve` on the spool on a free port; returns its URL
        (the first line of its stdout). It is stopped when the test ends."""
        log_path = os.path.join(spool.base, f"serve-{len(extra)}-{time.monotonic_ns()}.log")
        log = open(log_path, "wb")
        argv = [spoolctl_bin(), "--root", spool.root, "serve", "--listen", "127.0.0.1:0", *extra]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=log, env=clean_env(), cwd=spool.base)
        log.close()
        self.addCleanup(self._stop_serve, proc, log_path)
        first = b""
        deadline = time.monotonic() + SERVE_START_TIMEOUT
        while not first.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1)
                if not chunk:
                    break
                first += chunk
        match = re.search(rb"https?://[^\s]+", first)
        if not match:
            proc.kill()
            proc.wait()
            self.fail(f"{' '.join(argv)}: no URL on the first line of stdout within "
                      f"{SERVE_START_TIMEOUT}s (exit {proc.returncode}; got {first!r}); "
                      f"does `spoolctl help` list serve?\n{self._read(log_path)}")
        # Whatever else it prints is drained, so that a full pipe never blocks it.
        proc.drain = threading.Thread(target=proc.stdout.read, daemon=True)
        proc.drain.start()
        url = match.group(0).decode()
        print(f"{' '.join(argv[3:])}: {url}", flush=True)
        return url.rstrip("/") + "/"

    def _stop_serve(self, proc, log_path):
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drain = getattr(proc, "drain", None)
        if drain is not None:
            drain.join(timeout=5)
        proc.stdout.close()
        outcome = getattr(self, "_outcome", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if failed or not alive:
            print(f"\n----- spoolctl serve's stderr ({'exited ' + str(proc.returncode) if not alive else 'was running'}) -----\n"
                  f"{self._read(log_path)}\n----- end -----", file=sys.stderr)

    @staticmethod
    def _read(path, limit=8000):
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return text if len(text) <= limit else "...\n" + text[-limit:]

    # -- a scenario ----------------------------------------------------------

    def scenario(self, script, **args):
        """Runs tests/browser/SCRIPT with the arguments as JSON; passes when it
        prints PASS and exits 0. Returns its output."""
        env = dict(os.environ)
        env["SPOOLD_CHROMIUM"] = CHROMIUM
        argv = ["node", os.path.join(BROWSER_DIR, script), json.dumps(args)]
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=BROWSER_DIR, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=SCENARIO_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode("utf-8", "replace")
            self.fail(f"{script} did not end within {SCENARIO_TIMEOUT}s:\n{out}")
        out = proc.stdout.decode("utf-8", "replace")
        print(f"----- {script} ({time.monotonic() - started:.1f} s) -----\n{out}----- end -----",
              flush=True)
        self.assertEqual(proc.returncode, 0, f"{script} failed:\n{out}")
        self.assertIn("PASS", out.splitlines(), f"{script} did not say PASS:\n{out}")
        return out

    # -- spools and jobs -----------------------------------------------------

    def browser_spool(self):
        return self.make_spool(config={"pools": {"default": {"workers": 2},
                                                 "batch": {"workers": 1}}})

    def follow_job(self, spool, job_id, **fields):
        """Drops a job printing a line every 0.2 s until release(); waits until it runs."""
        gate = os.path.join(spool.base, f"gate-{job_id}")
        spool.drop_job(job_id, command=["sh", "-c", FOLLOW_SCRIPT, "follow", gate], **fields)
        spool.wait_state(job_id, "running")
        self.addCleanup(self._touch, gate)
        return gate

    @staticmethod
    def _touch(path):
        with open(path, "w"):
            pass

    def cancel(self, spool, job_id):
        spool.drop(f"cancel-{job_id}.json", json.dumps({"action": "cancel", "job": job_id}),
                   folder="control")
        return spool.wait_state(job_id, "cancelled")

    # -- the tests -------------------------------------------------------------

    def test_dropped_job_shows_live(self):
        """A job dropped while / is open shows as a row without a reload and
        without polling (the scenario prints how soon), and its row follows it
        to its end."""
        spool = self.browser_spool()
        spool.run_job("earlier", title="Earlier job")
        url = self.serve(spool)
        toml = 'title = "Dropped while watching"\ncommand = ["sleep", "1"]\n'
        self.scenario("live_list.mjs", url=url, root=spool.root, id="dropped",
                      title="Dropped while watching", toml=toml)
        self.assertEqual(spool.status("dropped")["state"], "succeeded")

    def test_log_follows_a_running_job(self):
        """#log-stdout and #log-stderr of a running job grow with lines printed
        after the page opened, and equal the log files once the job ends."""
        spool = self.browser_spool()
        gate = self.follow_job(spool, "chatty", title="Chatty job")
        url = self.serve(spool)
        self.scenario("log_follow.mjs", url=url, root=spool.root, id="chatty", gate=gate)
        self.assertEqual(spool.wait_terminal("chatty")["state"], "succeeded")

    def test_cancel_button_cancels(self):
        """#action-cancel on a running job's page cancels it: page and status.json."""
        spool = self.browser_spool()
        spool.drop_job("long", title="Long job", command=["sleep", "600"], kill={"grace": "2s"})
        spool.wait_state("long", "running")
        url = self.serve(spool)
        self.scenario("cancel.mjs", url=url, root=spool.root, id="long")
        st = spool.wait_terminal("long")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "cancelled_by_user"), st)
        self.assertTrue(any(e["event"] == "cancel_requested" for e in spool.events("long")),
                        spool.events("long"))

    def test_result_downloads_with_its_checksum(self):
        """a.download of a binary and of a text result saves bytes whose sha256
        is results.json's checksum and the page's sha256 cell."""
        spool = self.browser_spool()
        script = (
            'echo "fetching the 2026-11 extract"; echo "tiling 12 tiles at zoom 9"\n'
            'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "tile $i/12 written"; done\n'
            'echo "warning: tile 7 has no data, written empty" >&2\n'
            'mkdir -p out\n'
            'head -c 300000 /dev/urandom > out/tiles.bin\n'
            'printf "tiles: 12\\nempty: 1\\nzoom: 9\\n" > summary.txt\n'
            'echo "done: 2 result files"\n')
        st = spool.run_job("render-tiles", title="Render map tiles", script=script,
                           tags=["maps", "nightly"])
        self.assertEqual(st["state"], "succeeded", st)
        url = self.serve(spool)
        self.scenario("download.mjs", url=url, root=spool.root, id="render-tiles",
                      paths=["out/tiles.bin", "summary.txt"])

    def test_read_only_offers_no_action(self):
        """With --read-only no page has an action (the normal server's do), and
        each says read-only."""
        spool = self.browser_spool()
        spool.run_job("ended", title="An ended job")
        spool.drop_job("waiting", title="A held job", hold=True, pool="batch")
        spool.wait_state("waiting", "queued")
        self.follow_job(spool, "busy", title="A running job")
        url = self.serve(spool)
        ro_url = self.serve(spool, "--read-only")
        self.scenario("read_only.mjs", url=url, ro_url=ro_url, root=spool.root,
                      jobs=["busy", "waiting", "ended"], pool="default")
        self.assertEqual(spool.status("busy")["state"], "running")
        self.assertEqual(spool.status("waiting")["state"], "queued")

    def test_job_view_edges(self):
        """A bad id in the address, a long log (its tail and a link to the
        whole), results.json hrefs outside results/ (no link), and a job not
        there yet that appears while its page is open."""
        spool = self.browser_spool()
        st = spool.run_job("big-log", title="Big log",
                           script="seq 1 150000 | sed 's/^/line /'\n")
        self.assertEqual(st["state"], "succeeded", st)
        st = spool.run_job("odd-results", title="Odd results", script="echo good > good.txt\n")
        self.assertEqual(st["state"], "succeeded", st)
        results = os.path.join(spool.job_dir("odd-results"), "results.json")
        with open(results) as f:
            doc = json.load(f)
        for key, href in (("up", "../../../session"), ("dots", "results/../status.json"),
                          ("empty", "results//good.txt"), ("attempts", "attempts/1/stdout.log"),
                          ("task-attempt", "tasks/3/attempts/1/results/x")):
            doc["assets"][key] = {"href": href, "type": "text/plain", "file:size": 1}
        doc["assets"]["good"] = doc["assets"].pop("good.txt")
        with open(results, "w") as f:
            json.dump(doc, f)
        url = self.serve(spool)
        self.scenario("job_edges.mjs", url=url, root=spool.root, big="big-log", hostile="odd-results",
                      pending="later", toml='title = "Dropped later"\ncommand = ["true"]\n')

    def test_job_text_is_not_markup(self):
        """A title, a tag, log lines and a result name made of HTML show as text
        and run nothing."""
        spool = self.browser_spool()
        title = '<img src=x onerror="window.__xss=1">'
        tag = '<svg onload="window.__xss=2">'
        marker = '<script>window.__xss=3</script><img src=y onerror="window.__xss=4">'
        result = '<img src=z onerror="window.__xss=5">.txt'
        script = f"printf '%s\\n' '{marker}'\nprintf 'x' > '{result}'\n"
        st = spool.run_job("markup", title=title, tags=[tag], script=script)
        self.assertEqual(st["state"], "succeeded", st)
        url = self.serve(spool)
        self.scenario("xss.mjs", url=url, root=spool.root, id="markup", title=title, tag=tag,
                      marker=marker, result=result)

    def test_filters_hide_rows(self):
        """Text, state, pool and tag filters of the job list (and, with
        SPOOLD_SCREENSHOTS, jobs.png of jobs in every state)."""
        spool = self.browser_spool()
        spool.run_job("nightly-etl", title="Nightly ETL", tags=["etl", "nightly"],
                      script='echo "loaded 18220 rows"\n')
        spool.run_job("weekly-report", title="Weekly report", tags=["report", "nightly"],
                      script='echo "report.pdf written"\n')
        st = spool.run_job("backup-db", title="Back up the database", tags=["backup"],
                           script='echo "pg_dump: connection refused" >&2; exit 3\n')
        self.assertEqual(st["state"], "failed", st)
        spool.drop_job("cleanup-scratch", title="Clean up scratch space", pool="batch",
                       tags=["maintenance"], hold=True)
        spool.wait_state("cleanup-scratch", "queued")
        self.cancel(spool, "cleanup-scratch")
        spool.drop_job("train-model", title="Train the model", pool="batch", tags=["ml"],
                       hold=True)
        spool.wait_state("train-model", "queued")
        gate = os.path.join(spool.base, "gate-render")
        spool.drop_job("render-tiles", title="Render map tiles", tags=["maps"], script=(
            'i=0; while [ ! -e "$GATE" ] && [ $i -lt 600 ]; do i=$((i+1)); '
            'echo "42 tile 5 of 12" > "$SPOOLD_PROGRESS_FILE"; echo "tile $i"; sleep 0.2; done\n'),
            **{"=env": {"GATE": gate}})
        spool.wait_state("render-tiles", "running")
        self.addCleanup(self._touch, gate)
        spool.wait_for(lambda: spool.status("render-tiles")["progress"] == 42,
                       what="render-tiles reporting progress 42")
        jobs = {job_id: {"state": spool.status(job_id)["state"], "pool": spool.status(job_id)["pool"]}
                for job_id in ("nightly-etl", "weekly-report", "backup-db", "cleanup-scratch",
                               "train-model", "render-tiles")}
        spool.wait_for(lambda: all(spool.index()["jobs"].get(j, {}).get("state") == v["state"]
                                   for j, v in jobs.items()),
                       what="index.json listing every job in its state")
        cases = [
            {"control": "filter-text", "value": "report", "expect": ["weekly-report"]},
            {"control": "filter-state", "value": "failed", "expect": ["backup-db"]},
            {"control": "filter-state", "value": "succeeded",
             "expect": ["nightly-etl", "weekly-report"]},
            {"control": "filter-pool", "value": "batch",
             "expect": ["cleanup-scratch", "train-model"]},
            {"control": "filter-tag", "value": "nightly",
             "expect": ["nightly-etl", "weekly-report"]},
        ]
        url = self.serve(spool)
        self.scenario("filters.mjs", url=url, root=spool.root, jobs=jobs, cases=cases)


if __name__ == "__main__":
    unittest.main()
