"""Resources (SPEC.md section 5, "Resources"): jobs ask for CPUs, memory and
GPUs; a pool starts them only within its capacity and the machine's, in queue
order but for jobs that cannot delay the one reserved; what each got is in
status.json and index.json."""
import os
import unittest

from harness import SpoolTestMixin, parse_time


def host_cpus():
    return len(os.sched_getaffinity(0))


class JobResourcesTest(SpoolTestMixin, unittest.TestCase):

    def spool_with(self, machine, workers=8, pool=None):
        config = {"machine": machine, "pools": {"default": {"workers": workers}}}
        if pool:
            config["pools"]["default"].update(pool)
        return self.make_spool(config=config)

    def span(self, st):
        a = st["attempts"][0]
        return parse_time(a["started"]), parse_time(a["finished"])

    def test_packing_by_cpus_and_memory_never_over_capacity_right_job_next(self):
        if host_cpus() < 2:
            self.skipTest("SKIP: needs 2 CPUs to pack 2 jobs by CPUs; this host has 1")
        spool = self.spool_with({"cpus": 2, "memory": "1G"})
        sleep = ["sh", "-c", "sleep 0.8"]
        # A job holding both CPUs while the others are accepted, so that they
        # all wait together; priorities fix their order whatever the order of
        # their intake.
        spool.drop_job("blocker", command=["sleep", "3"], resources={"cpus": 2}, priority=10)
        spool.wait_state("blocker", ["running"])
        jobs = [
            ("a", {"cpus": 1, "memory": "600M"}, "1h"),
            ("b", {"cpus": 2, "memory": "600M"}, "1h"),   # memory: not beside a
            ("c", {"cpus": 2}, "1h"),                     # both CPUs: not beside b
            ("d", {"cpus": 1, "memory": "300M"}, "2h"),   # would fit beside a, but would delay b
            ("e", {"cpus": 1, "memory": "100M"}, "30s"),  # ends before b could start: goes ahead
        ]
        for rank, (job_id, resources, timeout) in enumerate(jobs):
            spool.drop_job(job_id, command=sleep, resources=resources, timeout=timeout, priority=5 - rank)
        for job_id, _, _ in jobs:
            spool.wait_accepted(job_id)
        self.assertEqual(spool.status("blocker")["state"], "running", "the blocker ended too soon")
        for job_id, _, _ in jobs:
            st = spool.wait_terminal(job_id, timeout=30)
            self.assertEqual(st["state"], "succeeded", st)
        spans = {job_id: self.span(spool.status(job_id)) for job_id, _, _ in jobs}
        asked = {job_id: r for job_id, r, _ in jobs}
        # Never over capacity: at each start, what runs fits in 2 CPUs and 1G.
        for job_id, (start, _) in spans.items():
            running = [j for j, (s, f) in spans.items() if s <= start < f]
            cpus = sum(asked[j].get("cpus", 0) for j in running)
            memory = sum({"600M": 600, "300M": 300, "100M": 100}.get(asked[j].get("memory"), 0)
                         for j in running)
            self.assertLessEqual(cpus, 2, f"at {job_id}'s start: {running}")
            self.assertLessEqual(memory, 1024, f"at {job_id}'s start: {running}")
        # The right job next: a, b, c, d in order, each after the one before.
        for before, after in zip("abc", "bcd"):
            self.assertGreaterEqual(spans[after][0], spans[before][1],
                                    f"{after} started before {before} ended: {spans}")
        # e went ahead of the waiting ones, beside a.
        self.assertLess(spans["e"][0], spans["a"][1], spans)
        # The job that waited first for what a held said so.
        events = [e["event"] for e in spool.events("b")]
        self.assertIn("waiting_resources", events)
        reasons = [e.get("reason") for e in spool.events("b")]
        self.assertIn("resources", reasons)

    def test_request_over_the_pools_capacity_is_rejected_naming_it(self):
        spool = self.spool_with({"memory": "2G"}, pool={"cpus": 1})
        spool.drop_job("wide", resources={"cpus": 2})
        spool.wait_rejected("wide.toml")
        err = spool.rejection("wide.toml")
        self.assertEqual(err["code"], "invalid_field", err)
        self.assertEqual(err["field"], "resources.cpus", err)
        self.assertIn('pool "default" has 1 CPU', err["error"])
        spool.drop_job("big", resources={"memory": "3G"})
        spool.wait_rejected("big.toml")
        self.assertIn("has 2G of memory", spool.rejection("big.toml")["error"])

    def test_status_and_index_show_the_request_and_the_grant(self):
        spool = self.spool_with({"cpus": 1, "memory": "1G", "gpus": [3]})
        spool.drop_job("held", command=["sleep", "4"], resources={"cpus": 1, "memory": "256M", "gpus": 1})
        st = spool.wait_state("held", ["running"])
        self.assertEqual(st["resources"], {"cpus": 1, "memory": 256 << 20, "gpus": 1})
        cpu = os.sched_getaffinity(0)
        self.assertEqual(len(st["attempts"][0]["cpus"]), 1, st)
        self.assertIn(st["attempts"][0]["cpus"][0], cpu)
        self.assertEqual(st["attempts"][0]["gpus"], [3])

        def shown():
            index = spool.index()
            entry = index["jobs"].get("held", {})
            return index if entry.get("state") == "running" and "gpus" in entry else None
        index = spool.wait_for(shown, what="index.json to show the running job's grant")
        entry = index["jobs"]["held"]
        self.assertEqual(entry["resources"], st["resources"])
        self.assertEqual(entry["cpus"], st["attempts"][0]["cpus"])
        self.assertEqual(entry["gpus"], [3])
        pool = index["pools"]["default"]
        self.assertEqual(pool["capacity"], {"cpus": 1, "memory": 1 << 30, "gpus": [3]})
        self.assertEqual(pool["used"], {"cpus": 1, "memory": 256 << 20, "gpus": [3]})
        self.assertEqual(index["machine"]["used"]["gpus"], [3])
        # A job that asks for nothing has no resources entry.
        spool.drop_job("plain")
        spool.wait_terminal("plain")
        self.assertEqual(spool.status("plain")["resources"], {"cpus": 0, "memory": 0, "gpus": 0})
        plain = spool.wait_for(lambda: spool.index()["jobs"].get("plain"), what="plain in index.json")
        self.assertNotIn("resources", plain)
        # It ends by itself, and gives everything back (its cgroup goes with it).
        self.assertEqual(spool.wait_terminal("held")["state"], "succeeded")

        def given_back():
            pool = spool.index()["pools"]["default"]
            return pool if pool["used"] == {"cpus": 0, "memory": 0, "gpus": []} else None
        spool.wait_for(given_back, what="the pool's use back to nothing")

    def test_gpu_devices_are_distinct_across_running_jobs(self):
        spool = self.spool_with({"gpus": [0, 1, 2]})
        script = 'echo "$CUDA_VISIBLE_DEVICES $SPOOLD_GPUS"; sleep 1.5'
        for n in range(4):
            spool.drop_job(f"g{n}", script=script, resources={"gpus": 1}, timeout="1h")
        spool.drop_job("none", script='echo "[${CUDA_VISIBLE_DEVICES-unset}]"')
        seen = {}
        for n in range(4):
            st = spool.wait_terminal(f"g{n}", timeout=30)
            self.assertEqual(st["state"], "succeeded", st)
            cuda, ours = spool.attempt_log(f"g{n}").split()
            self.assertEqual(cuda, ours)
            self.assertEqual([int(cuda)], st["attempts"][0]["gpus"])
            seen[f"g{n}"] = (int(cuda), self.span(st))
        # Jobs that ran at the same time held different devices; the fourth
        # waited for one of the first three to end.
        for a, (dev_a, (sa, fa)) in seen.items():
            for b, (dev_b, (sb, fb)) in seen.items():
                if a < b and sa < fb and sb < fa:
                    self.assertNotEqual(dev_a, dev_b, f"{a} and {b} ran together on {dev_a}")
        first_end = min(f for _, (_, (_, f)) in seen.items())
        self.assertGreaterEqual(seen["g3"][1][0], first_end)
        # A job that asked for none sees no device.
        spool.wait_terminal("none")
        self.assertEqual(spool.attempt_log("none").strip(), "[]")


if __name__ == "__main__":
    unittest.main()
