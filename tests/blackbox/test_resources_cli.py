"""spoolctl and a job's resources (SPEC.md section 5, "Resources") against a
real daemon on a temporary spool: `submit`/`run` --cpus, --memory and --gpus
write the job's [resources] (merged into the file's, and into a definition's
for a run), are checked locally with the daemon's own rules and messages, and
a request over the pool's capacity is refused before anything is dropped;
`spoolctl pools` shows each pool's CPUs, memory and GPUs used of its capacity
and the machine's, from index.json, and "-" where an index (of an older
daemon) does not say. The helpers are harness.py's and harness_ctl.py's."""
import json
import os
import unittest

from harness import SpoolTestMixin, read_json
from harness_ctl import SpoolctlMixin

MiB = 1 << 20

# A pool that hands out one CPU and 64M: small enough to ask past it.
SMALL = {"pools": {"small": {"workers": 2, "cpus": 1, "memory": "64M"}}}


def pools_table(text):
    """`spoolctl pools` output: {name: {column: cell}}; the (machine) line's
    empty columns are left out of it."""
    lines = text.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        if not cells:
            continue
        if cells[0] == "(machine)":
            rows["(machine)"] = dict(zip(["POOL", "CPUS", "MEMORY", "GPUS"], cells))
        else:
            rows[cells[0]] = dict(zip(header, cells))
    return rows


class ResourcesCliTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    # -- helpers -------------------------------------------------------------------

    def by_config(self, spool, *args, expect=None):
        """spoolctl with the daemon's configuration (pools and capacity from it)."""
        return self.ctl(None, "--config", spool.config_path, *args, expect=expect)

    def jobs(self, spool):
        return sorted(os.listdir(spool.path("jobs")))

    def assert_nothing_dropped(self, spool, jobs_before):
        self.assertEqual(spool.incoming(), [])
        self.assertEqual(self.jobs(spool), jobs_before)

    def wait_rejection(self, spool, name):
        path = spool.path("rejected", name + ".error.json")
        spool.wait_for(lambda: os.path.exists(path), what=f"{name} rejected")
        return spool.rejection(name)

    def stopped_with_index(self, spool, pools, machine=None):
        """Stops the daemon and leaves an index.json whose head is `pools` (and
        `machine`, unless None): what an older or a newer daemon wrote."""
        spool.stop()
        head = {"schema": "spoold/index/v1", "updated": "2030-01-01T00:00:00.000Z",
                "daemon": {"pid": 1, "version": "0", "started": "2030-01-01T00:00:00.000Z",
                           "state": "stopped"},
                "pools": pools}
        if machine is not None:
            head["machine"] = machine
        head["jobs"] = {}
        for name in ("index.json", "index.active.json"):
            if os.path.exists(spool.path(name)):
                os.unlink(spool.path(name))
        with open(spool.path("index.json"), "w", encoding="utf-8") as f:
            json.dump(head, f)

    # -- submit --cpus --memory --gpus ---------------------------------------------

    def test_submit_writes_the_request_into_the_jobs_resources(self):
        spool = self.make_spool(config=SMALL)
        path = self.job_file(spool, "big.toml", extra='pool = "small"\n')
        job_id = self.submit(spool, path, "--cpus", "1", "--memory", "32M", "--gpus", "0")
        self.assertEqual(job_id, "big")
        st = spool.wait_accepted("big")
        # Rewritten as JSON with [resources], the size as it was given.
        job = read_json(os.path.join(spool.job_dir("big"), "job.json"))
        self.assertEqual(job["resources"], {"cpus": 1, "memory": "32M", "gpus": 0})
        self.assertEqual(job["pool"], "small")
        self.assertEqual(st["resources"], {"cpus": 1, "memory": 32 * MiB, "gpus": 0})
        self.assertEqual(spool.wait_terminal("big")["state"], "succeeded")

        # The file's own keys stay; an option replaces only its key.
        path = self.job_file(spool, "mixed.toml",
                             extra='pool = "small"\n[resources]\nmemory = "16M"\ncpus = 1\n')
        self.submit(spool, path, "--memory", "48M")
        self.assertEqual(spool.wait_accepted("mixed")["resources"], {"cpus": 1, "memory": 48 * MiB, "gpus": 0})
        job = read_json(os.path.join(spool.job_dir("mixed"), "job.json"))
        self.assertEqual(job["resources"], {"memory": "48M", "cpus": 1})

        # Without the options the file is dropped as it is (TOML, not rewritten).
        plain = self.job_file(spool, "plain.toml", extra='pool = "small"\n[resources]\nmemory = "8M"\n')
        self.submit(spool, plain)
        spool.wait_accepted("plain")
        self.assertTrue(os.path.exists(os.path.join(spool.job_dir("plain"), "job.toml")))

        # run takes the same options, and waits.
        path = self.job_file(spool, "waited.toml", command='["sh", "-c", "exit 3"]', extra='pool = "small"\n')
        self.ctl(spool, "run", path, "--cpus", "1", "--memory", "1G", "--pool", "default", expect=3)
        self.assertEqual(spool.status("waited")["resources"]["memory"], 1 << 30)
        self.assertEqual(spool.status("waited")["pool"], "default")

    def test_option_values_are_checked_and_named(self):
        spool = self.make_spool(config=SMALL)
        path = self.job_file(spool, "j.toml")
        before = self.jobs(spool)
        for args, words in [
                (["--cpus", "0"], ["--cpus", "from 1 to 4096", "0"]),
                (["--cpus", "two"], ["--cpus", "two"]),
                (["--cpus", "4097"], ["--cpus", "4097"]),
                (["--gpus", "-1"], ["--gpus", "from 0 to 256"]),
                (["--gpus", "257"], ["--gpus", "257"]),
                (["--memory", "12X"], ["--memory", "\"12X\"", "512M"]),
                (["--memory", "lots"], ["--memory", "lots"]),
                (["--memory", "512K"], ["--memory", "from 1M to 1P", "512K"]),
                (["--memory", "2P"], ["--memory", "from 1M to 1P"]),
                (["--memory", "0"], ["--memory", "from 1M to 1P"])]:
            proc = self.ctl(spool, "submit", path, *args, expect=2)
            for word in words:
                self.assertIn(word, proc.err, args)
            self.assert_nothing_dropped(spool, before)
        # --help names them, and the synopsis shows them.
        help_text = self.ctl(spool, "submit", "--help", expect=0).out
        for option in ("--cpus N", "--memory SIZE", "--gpus N", "[resources]"):
            self.assertIn(option, help_text)
        self.assertIn("--memory SIZE", self.ctl(spool, "run", "--help", expect=0).out)

    def test_a_request_over_the_pools_capacity_is_refused_as_the_daemon_would(self):
        spool = self.make_spool(config=SMALL)
        spool.wait_for(lambda: "small" in spool.index()["pools"], what="index lists small")
        # What the daemon says of the same request, dropped as a file.
        spool.drop("direct.json", json.dumps({"command": ["true"], "pool": "small", "resources": {"cpus": 2}}))
        daemon_error = self.wait_rejection(spool, "direct.json")
        self.assertEqual(daemon_error["code"], "invalid_field")
        self.assertEqual(daemon_error["field"], "resources.cpus")
        self.assertIn('pool "small" has 1 CPU', daemon_error["error"])
        spool.drop("direct-mem.json",
                   json.dumps({"command": ["true"], "pool": "small", "resources": {"memory": "128M"}}))
        daemon_mem_error = self.wait_rejection(spool, "direct-mem.json")
        self.assertEqual(daemon_mem_error["field"], "resources.memory")

        path = self.job_file(spool, "greedy.toml", extra='pool = "small"\n')
        before = self.jobs(spool)
        rejected_before = spool.rejected()
        # Pools and capacity from the configuration, and from index.json alone.
        for run in (lambda *a, **k: self.by_config(spool, *a, **k), lambda *a, **k: self.ctl(spool, *a, **k)):
            proc = run("submit", path, "--cpus", "2", expect=1)
            self.assertIn(daemon_error["error"], proc.err)
            self.assertIn("invalid_field", proc.err)
            proc = run("submit", path, "--memory", "128M", expect=1)
            self.assertIn(daemon_mem_error["error"], proc.err)
            self.assertIn("resources.memory", proc.err)
            # run too, and --json says why.
            proc = run("run", path, "--cpus", "2", "--json", expect=1)
            self.assertEqual(self.json_out(proc)["error"]["field"], "resources.cpus")
            self.assert_nothing_dropped(spool, before)
            self.assertEqual(spool.rejected(), rejected_before)
        # Within it, or in a pool with the machine's capacity, it goes.
        self.submit(spool, path, "--cpus", "1", "--memory", "64M")
        self.assertEqual(spool.wait_accepted("greedy")["resources"], {"cpus": 1, "memory": 64 * MiB, "gpus": 0})

    def test_unknown_capacity_bounds_nothing_locally(self):
        # An index.json of a daemon that does not write capacity: spoolctl
        # cannot judge, so the request goes to the daemon, which does.
        spool = self.make_spool(config=SMALL)
        self.stopped_with_index(spool, {"small": {"workers": 2, "queue_limit": 1000, "paused": False,
                                                  "auto_resume": False, "executor": "local",
                                                  "running": 0, "queued": 0}})
        path = self.job_file(spool, "later.toml", extra='pool = "small"\n')
        self.assertEqual(self.submit(spool, path, "--cpus", "64", "--memory", "1T"), "later")
        self.assertEqual(spool.incoming(), [b"later.json"])
        # An index that does: bounded by the pool's capacity, and a slurm
        # pool's 0 and [] bound nothing.
        self.stopped_with_index(
            spool,
            {"small": {"workers": 2, "executor": "local",
                       "capacity": {"cpus": 1, "memory": 64 * MiB, "gpus": []}},
             "cluster": {"workers": 2, "executor": "slurm",
                         "capacity": {"cpus": 0, "memory": 0, "gpus": []}}},
            machine={"cpus": 2, "memory": 1 << 30, "gpus": [], "used": {"cpus": 0, "memory": 0, "gpus": []}})
        proc = self.ctl(spool, "submit", path, "--cpus", "2", expect=1)
        self.assertIn('resources.cpus asks for 2 CPUs; pool "small" has 1 CPU', proc.err)
        proc = self.ctl(spool, "submit", path, "--gpus", "1", expect=1)
        self.assertIn("resources.gpus", proc.err)
        self.submit(spool, path, "--cpus", "64", "--memory", "1T", "--gpus", "3", "--pool", "cluster")
        self.assertEqual(spool.incoming(), [b"later-2.json", b"later.json"])

    def test_a_definitions_run_sets_resources_where_allowed(self):
        spool = self.make_spool(config=SMALL)
        spool.drop("fit.toml", 'command = ["true"]\npool = "small"\nallow_override = ["resources"]\n'
                               '[resources]\nmemory = "16M"\n', folder="definitions")
        spool.drop("fixed.toml", 'command = ["true"]\npool = "small"\n', folder="definitions")
        spool.wait_for(lambda: {"fit", "fixed"} <= set(
            self.json_out(self.ctl(spool, "definitions", "--json", expect=0))),
            what="both definitions listed")
        run_id = self.submit(spool, "fit", "--cpus", "1")
        self.assertEqual(run_id, "fit-1")
        st = spool.wait_accepted(run_id)
        run = read_json(os.path.join(spool.job_dir(run_id), "run.json"))
        self.assertEqual(run["resources"], {"cpus": 1})
        # Merged into the definition's [resources].
        self.assertEqual(st["resources"], {"cpus": 1, "memory": 16 * MiB, "gpus": 0})
        # Over the pool's capacity: the daemon's message, nothing dropped.
        before = self.jobs(spool)
        proc = self.ctl(spool, "submit", "fit", "--memory", "1G", expect=1)
        self.assertIn('pool "small" has 64M', proc.err)
        self.assertIn("resources.memory", proc.err)
        # A definition that does not let runs set them.
        proc = self.ctl(spool, "submit", "fixed", "--cpus", "1", expect=1)
        self.assertIn("override_not_allowed", proc.err)
        self.assertIn("resources", proc.err)
        self.assert_nothing_dropped(spool, before)

    def test_validate_explain_shows_the_request_with_the_pools_defaults(self):
        spool = self.make_spool(start=False, config={"pools": {
            "small": {"workers": 1, "cpus": 1, "memory": "64M", "default_memory": "16M"}}})
        path = self.job_file(spool, "e.toml", extra='pool = "small"\n[resources]\ncpus = 1\n')
        proc = self.by_config(spool, "validate", "--explain", "--json", path, expect=0)
        self.assertEqual(self.json_out(proc)["effective"]["resources"], {"cpus": 1, "memory": 16 * MiB, "gpus": 0})
        proc = self.by_config(spool, "validate", "--explain", path, expect=0)
        self.assertRegex(proc.out, r"(?m)^  resources +1 CPU, 16M of memory$")
        plain = self.job_file(spool, "p.toml")
        proc = self.by_config(spool, "validate", "--explain", plain, expect=0)
        self.assertRegex(proc.out, r"(?m)^  resources +none$")
        over = self.job_file(spool, "o.toml", extra='pool = "small"\n[resources]\nmemory = "1G"\n')
        proc = self.by_config(spool, "validate", over, expect=1)
        self.assertIn('resources.memory asks for 1G of memory; pool "small" has 64M of memory', proc.err)

    # -- pools ---------------------------------------------------------------------

    def test_pools_shows_what_each_pool_holds_of_its_capacity(self):
        spool = self.make_spool(config={"pools": {
            "small": {"workers": 2, "cpus": 1, "memory": "64M"},
            "cluster": {"executor": "slurm", "workers": 1, "slurm": {"partition": "nowhere"}}}})
        path = self.job_file(spool, "hold.toml", command='["sleep", "60"]',
                             extra='pool = "small"\n[resources]\ncpus = 1\nmemory = "32M"\n')
        self.submit(spool, path)
        spool.wait_state("hold", ("running",))

        def small_used():
            return spool.index()["pools"]["small"].get("used", {}).get("cpus") == 1
        spool.wait_for(small_used, what="index.json: small holds a CPU")
        head = spool.index()
        rows = pools_table(self.ctl(spool, "pools", expect=0).out)
        self.assertEqual(list(rows["default"])[-3:], ["CPUS", "MEMORY", "GPUS"])
        self.assertEqual((rows["small"]["CPUS"], rows["small"]["MEMORY"], rows["small"]["GPUS"]),
                         ("1/1", "32M/64M", "0/0"))
        machine = head["machine"]
        cpus = machine["cpus"] if isinstance(machine["cpus"], int) else len(machine["cpus"])
        self.assertEqual(rows["(machine)"]["CPUS"], f"1/{cpus}")
        self.assertEqual(rows["(machine)"]["MEMORY"].split("/")[0], "32M")
        self.assertEqual(rows["default"]["CPUS"], f"0/{cpus}")
        # A slurm pool without bounds: nothing to show as its capacity.
        self.assertEqual((rows["cluster"]["CPUS"], rows["cluster"]["MEMORY"], rows["cluster"]["GPUS"]),
                         ("0/-", "0/-", "0/-"))
        # --json: index.json's pools, capacity and use included.
        pools = self.json_out(self.ctl(spool, "pools", "--json", expect=0))
        self.assertEqual(pools["small"]["capacity"]["cpus"], 1)
        self.assertEqual(pools["small"]["capacity"]["memory"], 64 * MiB)
        self.assertEqual(pools["small"]["used"]["memory"], 32 * MiB)
        # -q: names only, no machine.
        self.assertEqual(self.ctl(spool, "pools", "-q", expect=0).out.split(), ["cluster", "default", "small"])
        self.ctl(spool, "cancel", "hold", expect=0)
        spool.wait_terminal("hold")

    def test_pools_of_an_index_without_resources_shows_dashes(self):
        spool = self.make_spool()
        self.stopped_with_index(spool, {"default": {"workers": 2, "queue_limit": 1000, "paused": False,
                                                    "auto_resume": False, "executor": "local",
                                                    "running": 1, "queued": 3}})
        proc = self.ctl(spool, "pools", expect=0)
        rows = pools_table(proc.out)
        self.assertEqual(rows["default"]["RUNNING"], "1")
        self.assertEqual((rows["default"]["CPUS"], rows["default"]["MEMORY"], rows["default"]["GPUS"]),
                         ("-", "-", "-"))
        self.assertNotIn("(machine)", rows)
        # Capacity without use (or the reverse) shows what it has; gpus as a
        # count is taken too. A size not in whole MiB (MemTotal) is shown to a
        # tenth of its unit.
        self.stopped_with_index(
            spool,
            {"default": {"workers": 2, "executor": "local",
                         "capacity": {"cpus": 8, "memory": 3 * (1 << 29), "gpus": [0, 1]}},
             "odd": {"workers": 1, "executor": "local", "used": {"cpus": 2, "memory": 5 * MiB, "gpus": 1}}},
            machine={"cpus": 8, "memory": 24683748 << 10, "gpus": [0, 1, 2]})
        rows = pools_table(self.ctl(spool, "pools", expect=0).out)
        self.assertEqual((rows["default"]["CPUS"], rows["default"]["MEMORY"], rows["default"]["GPUS"]),
                         ("-/8", "-/1536M", "-/2"))
        self.assertEqual((rows["odd"]["CPUS"], rows["odd"]["MEMORY"], rows["odd"]["GPUS"]),
                         ("2/-", "5M/-", "1/-"))
        self.assertEqual((rows["(machine)"]["CPUS"], rows["(machine)"]["MEMORY"], rows["(machine)"]["GPUS"]),
                         ("-/8", "-/23.5G", "-/3"))

    def test_pools_from_the_configuration_show_capacity(self):
        spool = self.make_spool(start=False, config={
            "pools": {"small": {"workers": 1, "cpus": 1, "memory": "64M"},
                      "cluster": {"executor": "slurm", "workers": 1, "memory": "2G"}}})
        os.makedirs(spool.path("jobs"))
        os.makedirs(spool.path("incoming"))
        rows = pools_table(self.by_config(spool, "pools", expect=0).out)
        self.assertEqual((rows["small"]["CPUS"], rows["small"]["MEMORY"]), ("-/1", "-/64M"))
        self.assertEqual((rows["cluster"]["CPUS"], rows["cluster"]["MEMORY"], rows["cluster"]["GPUS"]),
                         ("-", "-/2G", "-"))
        self.assertIn("(machine)", rows)
        pools = self.json_out(self.by_config(spool, "pools", "--json", expect=0))
        self.assertEqual(pools["small"]["capacity"], {"cpus": 1, "memory": 64 * MiB, "gpus": []})
        self.assertEqual(pools["cluster"]["capacity"], {"cpus": 0, "memory": 2 << 30, "gpus": []})


if __name__ == "__main__":
    unittest.main()
