"""The Prometheus text file (SPEC.md section 11), checked by the real tools:
promtool (Debian's prometheus package) lints it, and a real
prometheus-node-exporter serves it from its textfile directory on a loopback
port, from which the test scrapes it as Prometheus would."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.request

from harness import SpoolTestMixin, cannot_run

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, labels-text): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[(m.group(1), labels(m.group(2)))] = float(m.group(3))
    return out


def labels(text):
    """Label text in one order (the node exporter sorts labels by name): the
    pairs sorted, so '{pool="a",le="1"}' and '{le="1",pool="a"}' are equal."""
    if not text:
        return ""
    pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', text)
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}"


def value(samples, name, label_text=""):
    return samples[(name, labels(label_text))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsTest(SpoolTestMixin, unittest.TestCase):

    def need(self, path, package):
        if not os.access(path, os.X_OK):
            cannot_run(self, f"{path} is missing (Debian package {package}; `make test` installs it)")

    def metrics_spool(self, **config):
        self.textfile_dir = None
        base_config = {"metrics": {"interval": "1s"},
                       "pools": {"default": {"workers": 2}, "batch": {"workers": 1, "paused": True}}}
        for key, value in config.items():
            base_config.setdefault(key, {}).update(value)
        return self.make_spool(config=base_config)

    def read_metrics(self, spool, path=None):
        path = path or spool.path("metrics.prom")
        with open(path, encoding="utf-8") as f:
            return f.read()

    def wait_sample(self, spool, name, label_text, value, path=None, timeout=20, since=None):
        """The samples once `name{label_text}` is `value`, in a file written
        by a daemon started after `since` (a spoold_start_time_seconds)."""
        def check():
            try:
                samples = parse(self.read_metrics(spool, path))
            except FileNotFoundError:
                return None
            if since is not None and samples.get(("spoold_start_time_seconds", "")) == since:
                return None  # the last daemon's file
            return samples if samples.get((name, labels(label_text))) == value else None
        return spool.wait_for(check, timeout=timeout, what=f"{name}{label_text} == {value} in the metrics file")

    def test_counts_and_promtool_accepts_the_file(self):
        self.need(PROMTOOL, "prometheus")
        spool = self.metrics_spool()
        spool.drop_job("ok", command=["true"])
        spool.drop_job("flaky", command=["sh", "-c", "exit 3"], retry={"attempts": 1, "delay": "0s"})
        spool.drop_job("slow", command=["sleep", "30"], timeout="1s")
        spool.drop_job("parked", command=["true"], pool="batch")
        spool.drop("typo.toml", 'comand = ["true"]\n')
        spool.drop("stop-nothing.toml", 'action = "cancel"\njob = "no-such-job"\n', folder="control")
        for job in ("ok", "flaky", "slow"):
            spool.wait_terminal(job)
        spool.wait_rejected("typo.toml")
        d = '{pool="default"}'
        samples = self.wait_sample(spool, "spoold_jobs_finished_total",
                                   '{pool="default",outcome="failed"}', 2)
        self.assertEqual(value(samples, "spoold_jobs_finished_total", '{pool="default",outcome="succeeded"}'), 1)
        self.assertEqual(value(samples, "spoold_jobs_accepted_total", d), 3)
        self.assertEqual(value(samples, "spoold_jobs_accepted_total", '{pool="batch"}'), 1)
        self.assertEqual(value(samples, "spoold_attempts_started_total", d), 4)  # ok, flaky twice, slow
        self.assertEqual(value(samples, "spoold_retries_total", d), 1)
        self.assertEqual(value(samples, "spoold_timeouts_total", d), 1)
        self.assertEqual(value(samples, "spoold_rejections_total", '{kind="job",code="unknown_field"}'), 1)
        self.assertEqual(value(samples, "spoold_attempt_duration_seconds_count", d), 4)
        self.assertGreaterEqual(value(samples, "spoold_attempt_duration_seconds_sum", d), 1.0)  # slow ran 1 s
        self.assertEqual(value(samples, "spoold_queue_wait_seconds_count", d), 3)
        # Gauges: the jobs by pool and state, the pools.
        self.assertEqual(value(samples, "spoold_jobs", '{pool="default",state="failed"}'), 2)
        self.assertEqual(value(samples, "spoold_jobs", '{pool="batch",state="queued"}'), 1)
        self.assertEqual(value(samples, "spoold_pool_paused", '{pool="batch"}'), 1)
        self.assertEqual(value(samples, "spoold_pool_queued", '{pool="batch"}'), 1)
        self.assertEqual(value(samples, "spoold_pool_workers", d), 2)
        self.assertEqual(value(samples, "spoold_build_info", '{version="%s"}' % spool.index()["daemon"]["version"]), 1)
        self.assertAlmostEqual(value(samples, "spoold_start_time_seconds", ""), time.time(), delta=120)
        # The control request refused (an unknown job) is counted by its code.
        rejected = {labels: v for (name, labels), v in samples.items() if name == "spoold_rejections_total"}
        self.assertTrue(any('kind="control"' in labels for labels in rejected), rejected)

        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=self.read_metrics(spool),
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(lint.returncode, 0, f"promtool: {lint.stdout}{lint.stderr}")
        self.assertEqual((lint.stdout + lint.stderr).strip(), "", "promtool found problems")

    def test_node_exporter_serves_the_file_from_its_textfile_directory(self):
        self.need(NODE_EXPORTER, "prometheus-node-exporter")
        spool = self.metrics_spool()
        textfile_dir = os.path.join(spool.base, "textfile")
        os.mkdir(textfile_dir)
        spool.stop()
        spool.config["metrics"]["path"] = os.path.join(textfile_dir, "spoold.prom")
        spool.write_config()
        spool.start()
        port = free_port()
        exporter = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
             "--collector.textfile", f"--collector.textfile.directory={textfile_dir}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop_exporter():
            exporter.send_signal(signal.SIGTERM)
            exporter.wait(timeout=10)
        self.addCleanup(stop_exporter)
        spool.run_job("hello", command=["true"])

        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    samples = parse(r.read().decode())
            except OSError:
                return None
            done = samples.get(("spoold_jobs_finished_total", labels('{pool="default",outcome="succeeded"}')))
            return samples if done == 1 else None
        samples = spool.wait_for(scrape, timeout=20, what="the node exporter serving spoold's metrics")
        self.assertEqual(value(samples, "node_textfile_scrape_error", ""), 0)
        self.assertEqual(value(samples, "spoold_attempt_duration_seconds_bucket", '{pool="default",le="+Inf"}'), 1)
        self.assertIn(("node_textfile_mtime_seconds", labels('{file="%s/spoold.prom"}' % textfile_dir)), samples)
        # The root keeps its own copy (what `spoolctl serve` serves at /metrics).
        self.assertIn("spoold_jobs_finished_total", self.read_metrics(spool))
        self.assertEqual([n for n in os.listdir(textfile_dir)], ["spoold.prom"])  # no temp file left

    def test_counters_restart_at_zero_with_a_new_start_time_while_job_counts_persist(self):
        spool = self.metrics_spool()
        spool.run_job("before", command=["true"])
        first = self.wait_sample(spool, "spoold_jobs_finished_total", '{pool="default",outcome="succeeded"}', 1)
        for how in ("stop", "kill"):
            if how == "stop":
                spool.stop()
            else:
                spool.kill()
            time.sleep(1.1)  # the start time is in milliseconds: make it differ plainly
            spool.start()
            samples = self.wait_sample(spool, "spoold_jobs", '{pool="default",state="succeeded"}', 1,
                                       since=value(first, "spoold_start_time_seconds"))
            self.assertEqual(value(samples, "spoold_jobs_finished_total", '{pool="default",outcome="succeeded"}'), 0,
                             f"after a {how}, counters start again at zero")
            self.assertEqual(value(samples, "spoold_attempts_started_total", '{pool="default"}'), 0)
            self.assertGreater(value(samples, "spoold_start_time_seconds", ""),
                               first[("spoold_start_time_seconds", "")], f"after a {how}")
            first = samples
        spool.run_job("after", command=["true"])
        self.wait_sample(spool, "spoold_jobs", '{pool="default",state="succeeded"}', 2)

    def test_a_metrics_path_that_cannot_be_written_is_said_and_the_daemon_runs_on(self):
        spool = self.metrics_spool(metrics={"path": "/proc/spoold-cannot-write-here.prom"})
        spool.run_job("fine", command=["true"])
        spool.wait_for(lambda: "cannot write metrics to /proc/spoold-cannot-write-here.prom" in spool.log_text(),
                       what="the metrics write failure in the log")
        self.wait_sample(spool, "spoold_jobs_finished_total", '{pool="default",outcome="succeeded"}', 1)
        self.assertEqual(spool.log_text().count("cannot write metrics to /proc"), 1, "said once, not at every write")


if __name__ == "__main__":
    unittest.main()
