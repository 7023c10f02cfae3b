"""index.json (SPEC.md section 7): a cache of every pool and job, rebuilt from jobs/."""
import datetime
import json
import os
import shutil
import subprocess
import unittest

from harness import SpoolTestMixin, TERMINAL, parse_time, read_json, spoold_bin
from harness_ctl import SpoolctlMixin
from test_spoolctl import spoolctl_bin

INDEX_JOB_FIELDS = ("state", "reason", "pool", "title", "priority", "attempt",
                    "exit_code", "progress", "created", "started", "finished", "updated")
POOL_FIELDS = ("workers", "queue_limit", "paused", "executor", "running", "queued")


class IndexTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    def mismatches(self, spool, ids):
        """Differences between index.json and the status.json files (empty: agree)."""
        idx = spool.index()
        diffs = []
        jobs = idx.get("jobs", {})
        if set(jobs) != set(ids):
            diffs.append(f"index jobs {sorted(set(jobs) ^ set(ids))} differ from jobs/")
        for job_id in ids:
            st = spool.status(job_id)
            entry = jobs.get(job_id)
            if entry is None:
                continue
            for key in INDEX_JOB_FIELDS:
                if key not in entry:
                    diffs.append(f"{job_id}: index lacks {key}")
                elif entry[key] != st[key]:
                    diffs.append(f"{job_id}.{key}: index {entry[key]!r} != "
                                 f"status {st[key]!r}")
        return diffs

    def wait_agree(self, spool, ids, timeout=3):
        last = {}

        def agree():
            last["diffs"] = self.mismatches(spool, ids)
            return not last["diffs"]
        try:
            spool.wait_for(agree, timeout=timeout, what="index.json to agree with jobs/")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast differences: {last.get('diffs')}") from None

    def check_header(self, spool, idx):
        self.assertEqual(idx["schema"], "spoold/index/v1")
        self.assert_time(idx["updated"], "index updated")
        daemon = idx["daemon"]
        self.assertEqual(daemon["pid"], spool.proc.pid)
        self.assertEqual(daemon["state"], "running")
        self.assert_time(daemon["started"], "daemon started")
        version = subprocess.run([spoold_bin(), "--version"], capture_output=True,
                                 text=True, timeout=10).stdout
        self.assertTrue(daemon["version"], daemon)
        self.assertIn(daemon["version"], version)

    def test_index_after_burst(self):
        spool = self.make_spool()
        ids = [f"burst-{n:02d}" for n in range(50)]
        for n, job_id in enumerate(ids):
            if n % 5 == 0:
                spool.drop_job(job_id, command=["sh", "-c", "exit 4"], priority=n % 3)
            else:
                spool.drop_job(job_id, command=["true"], title=f"Job {n}", priority=n % 3)
        for job_id in ids:
            spool.wait_terminal(job_id, timeout=60)
        # Lagging by at most one second: allow a little more for a loaded machine.
        self.wait_agree(spool, ids, timeout=3)
        idx = spool.index()
        self.check_header(spool, idx)
        pool = idx["pools"]["default"]
        for key in POOL_FIELDS:
            self.assertIn(key, pool)
        self.assertEqual(pool["workers"], 2)
        self.assertIsInstance(pool["queue_limit"], int)
        self.assertIs(pool["paused"], False)
        self.assertEqual(pool["executor"], "local")
        self.assertEqual(pool["running"], 0)
        self.assertEqual(pool["queued"], 0)
        states = {job_id: idx["jobs"][job_id]["state"] for job_id in ids}
        self.assertEqual(sum(s == "failed" for s in states.values()), 10, states)
        self.assertTrue(all(s in TERMINAL for s in states.values()))

    def test_index_counts_running_and_queued(self):
        spool = self.make_spool(workers=1,
                                config={"pools": {"other": {"workers": 3,
                                                            "queue_limit": 7}}})
        for n in range(3):
            spool.drop_job(f"s{n}", command=["sleep", "2"])
        spool.wait_state("s0", "running")
        spool.wait_accepted("s2")

        def counted():
            pool = spool.index()["pools"]["default"]
            return pool["running"] == 1 and pool["queued"] == 2
        spool.wait_for(counted, timeout=3, what="default pool: running 1, queued 2")
        other = spool.index()["pools"]["other"]
        self.assertEqual(other["workers"], 3)
        self.assertEqual(other["queue_limit"], 7)
        self.assertEqual(other["running"], 0)
        self.assertEqual(other["queued"], 0)
        self.wait_agree(spool, ["s0", "s1", "s2"], timeout=3)
        self.assertEqual(spool.index()["jobs"]["s1"]["reason"], "in_queue")

    def test_a_large_index_waits_its_lag_while_index_active_json_and_spoolctl_stay_current(self):
        # With large_index_jobs = 0 every spool is large: index.json, written
        # at start, then waits an hour. index.active.json follows the jobs
        # within a second, and spoolctl shows what happened since, from it and
        # the job folders. A clean stop writes index.json whole.
        spool = self.make_spool(config={"spool": {"large_index_jobs": 0, "large_index_lag": "1h"}})
        spool.run_job("done")
        spool.drop_job("long", command=["sleep", "60"])
        spool.wait_state("long", "running")
        last = {}

        def active_current():
            last["doc"] = doc = read_json(spool.path("index.active.json"))
            return (doc["schema"] == "spoold/index.active/v1" and list(doc["jobs"]) == ["long"]
                    and doc["jobs"]["long"]["state"] == "running"
                    and doc["pools"]["default"]["running"] == 1
                    and doc["daemon"]["pid"] == spool.proc.pid)
        spool.wait_for(active_current, timeout=3,
                       what="index.active.json: the running job only, and the pool's count")
        self.assertEqual(spool.index()["jobs"], {}, "index.json was written again within its lag")
        listed = {job["id"]: job["state"] for job in self.json_out(self.ctl(spool, "list", "--json", expect=0))}
        self.assertEqual(listed, {"done": "succeeded", "long": "running"})
        pools = self.json_out(self.ctl(spool, "pools", "--json", expect=0))
        self.assertEqual((pools["default"]["running"], pools["default"]["queued"]), (1, 0), pools)
        self.ctl(spool, "pause", "default", expect=0)
        spool.wait_for(lambda: self.json_out(self.ctl(spool, "pools", "--json", expect=0))
                       ["default"]["paused"] is True, timeout=5,
                       what="spoolctl pools showing the pause")

        self.ctl(spool, "cancel", "long", expect=0)
        spool.wait_terminal("long", timeout=30)
        spool.wait_for(lambda: read_json(spool.path("index.active.json"))["jobs"] == {}, timeout=3,
                       what="index.active.json without the ended job")
        listed = {job["id"]: job["state"] for job in self.json_out(self.ctl(spool, "list", "--json", expect=0))}
        self.assertEqual(listed, {"done": "succeeded", "long": "cancelled"})
        spool.stop()
        whole = spool.index()
        self.assertEqual(whole["daemon"]["state"], "stopped")
        self.assertEqual({i: e["state"] for i, e in whole["jobs"].items()},
                         {"done": "succeeded", "long": "cancelled"})
        self.assertIs(whole["pools"]["default"]["paused"], True)

    def test_index_deleted_is_rebuilt(self):
        spool = self.make_spool()
        for job_id in ("a", "b"):
            spool.run_job(job_id)
        self.wait_agree(spool, ["a", "b"])
        # Let the daemon go quiet (its last index write is over) before deleting.
        spool.wait_for(lambda: (datetime.datetime.now(datetime.timezone.utc)
                                - parse_time(spool.index()["updated"])).total_seconds() > 0.5,
                       what="index.json last written over 0.5 s ago")
        os.unlink(spool.path("index.json"))
        spool.wait_for(lambda: os.path.exists(spool.path("index.json")), timeout=5,
                       what="index.json rebuilt after deletion (no other activity)")
        self.wait_agree(spool, ["a", "b"])
        self.check_header(spool, spool.index())
        os.unlink(spool.path("index.active.json"))
        spool.wait_for(lambda: os.path.exists(spool.path("index.active.json")), timeout=5,
                       what="index.active.json rebuilt after deletion (no other activity)")
        self.assertEqual(read_json(spool.path("index.active.json"))["jobs"], {})

    def test_index_deleted_right_after_write(self):
        # Deleted the moment a fresh index appears (the daemon may still be
        # syncing its folder): it must come back all the same.
        spool = self.make_spool()
        for n in range(5):
            job_id = f"j{n}"
            spool.drop_job(job_id)
            spool.wait_for(lambda: spool.index()["jobs"][job_id]["state"] == "succeeded",
                           interval=0.001, what=f"index.json showing {job_id} succeeded")
            os.unlink(spool.path("index.json"))
            spool.wait_for(lambda: os.path.exists(spool.path("index.json")), timeout=4,
                           what=f"round {n}: index.json rebuilt after a deletion right "
                                f"after it was written (no other activity)")
        self.wait_agree(spool, [f"j{n}" for n in range(5)])

    def test_index_corrupt_is_rebuilt_at_start(self):
        spool = self.make_spool()
        for job_id in ("a", "b", "c"):
            spool.run_job(job_id, command=["sh", "-c", "exit 1"] if job_id == "b" else ["true"])
        self.wait_agree(spool, ["a", "b", "c"])
        spool.stop()
        with open(spool.path("index.json"), "wb") as f:
            f.write(b"\x00garbage{{{ not json")
        spool.start()  # ready means index.json parses and names the new pid
        self.wait_agree(spool, ["a", "b", "c"])
        self.check_header(spool, spool.index())

    def test_index_wrong_content_is_rebuilt_at_start(self):
        # Valid JSON that lies about jobs: the job folders are the truth.
        spool = self.make_spool()
        spool.run_job("real")
        spool.stop()
        with open(spool.path("index.json"), "w") as f:
            f.write('{"schema": "spoold/index/v1", "jobs": {"ghost": {"state": "running"}}}')
        spool.start()
        self.wait_agree(spool, ["real"])


    def test_a_clean_restart_takes_ended_jobs_back_unread_and_reads_those_that_changed(self):
        # SPEC.md section 7: after a clean stop the next start does not read
        # the status.json of an ended job whose file is unchanged (inode, size,
        # modification time); after a crash it reads every one.
        spool = self.make_spool()
        for job_id in ("kept", "rewritten"):
            spool.run_job(job_id, command=["true"])
        self.wait_agree(spool, ["kept", "rewritten"])
        spool.stop()
        self.assertTrue(os.path.exists(spool.path(".index.ended.keys")), "a clean stop leaves its manifest")
        # kept: its bytes changed in place, its inode, size and time as they
        # were. Were it read, it would be damaged (an unknown state).
        kept = spool.path("jobs", "kept", "status.json")
        st = os.stat(kept)
        with open(kept, "rb") as f:
            original = f.read()
        self.assertIn(b'"succeeded"', original)
        with open(kept, "r+b") as f:
            f.write(original.replace(b'"succeeded"', b'"SUCCEEDED"', 1))
        os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
        # rewritten: replaced by a rename, as spoold writes it, with a new title.
        rewritten = spool.path("jobs", "rewritten", "status.json")
        with open(rewritten, encoding="utf-8") as f:
            doc = json.load(f)
        doc["title"] = "a title set while the daemon was down"
        with open(rewritten + ".new", "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(rewritten + ".new", rewritten)
        spool.start()
        self.assertFalse(os.path.exists(spool.path(".index.ended.keys")), "read once, then deleted")
        self.assertIn("1 ended jobs taken back unread", spool.log_text())
        jobs = spool.wait_for(lambda: (lambda j: j if "rewritten" in j else None)(spool.index()["jobs"]),
                              what="both jobs listed")
        self.assertEqual(jobs["kept"]["state"], "succeeded", "taken back as it was, unread")
        self.assertEqual(jobs["rewritten"]["title"], "a title set while the daemon was down")
        self.assertEqual(spool.index()["damaged"], {})
        # A crash leaves no manifest: the next start reads every job.
        spool.kill()
        self.assertFalse(os.path.exists(spool.path(".index.ended.keys")))
        spool.start()
        damaged = spool.wait_for(lambda: spool.index()["damaged"].get("kept"), what="kept read, and damaged")
        self.assertIn("status.json", damaged["problem"])
        with open(kept, "wb") as f:
            f.write(original)
        spool.wait_for(lambda: spool.index()["jobs"].get("kept", {}).get("state") == "succeeded",
                       what="kept taken in once mended")

    def list_json(self, spool):
        proc = subprocess.run([spoolctl_bin(), "--root", spool.root, "--json", "list"],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return {j["id"]: j for j in json.loads(proc.stdout)}

    def test_a_damaged_job_folder_is_shown_with_its_problem_and_taken_in_when_mended(self):
        spool = self.make_spool()
        spool.run_job("good", command=["true"])
        spool.run_job("hurt", command=["true"])
        spool.stop()
        with open(spool.path("jobs", "hurt", "status.json"), "rb") as f:
            whole = f.read()
        with open(spool.path("jobs", "hurt", "status.json"), "wb") as f:
            f.write(whole[:20])
        spool.start()
        damaged = spool.wait_for(lambda: spool.index()["damaged"].get("hurt"), what="hurt listed as damaged")
        self.assertIn("status.json", damaged["problem"])
        self.assertIn("good", spool.index()["jobs"])
        self.assertNotIn("hurt", spool.index()["jobs"])
        self.assertRegex(spool.log_text(), r"job hurt is damaged and left as it is: .*status\.json")
        listed = self.list_json(spool)
        self.assertEqual(listed["hurt"]["state"], "damaged")
        self.assertIn("status.json", listed["hurt"]["problem"])
        self.assertEqual(listed["good"]["state"], "succeeded")
        # Mended: taken in at the next scan, without a restart.
        with open(spool.path("jobs", "hurt", "status.json"), "wb") as f:
            f.write(whole)
        spool.wait_for(lambda: spool.index()["jobs"].get("hurt", {}).get("state") == "succeeded",
                       what="hurt taken in once mended")
        self.assertEqual(spool.index()["damaged"], {})
        spool.stop()

    def test_a_job_folder_removed_while_its_job_runs_is_stopped_and_forgotten(self):
        spool = self.make_spool()
        spool.run_job("done", command=["true"])
        spool.drop_job("long", command=["sleep", "60"])
        pid = spool.wait_for(lambda: spool.status("long")["pid"], what="long running")
        spool.drop_job("waiting", command=["true"], hold=True)
        spool.wait_accepted("waiting")
        for job_id in ("long", "waiting", "done"):
            shutil.rmtree(spool.job_dir(job_id))
        # The same id dropped again at once, while the old job is still being
        # stopped: it waits in incoming/, then runs as a new job.
        spool.drop_job("long", command=["sh", "-c", "echo second > out.txt"])
        spool.wait_for(lambda: not set(spool.index()["jobs"]) & {"waiting", "done"},
                       what="the removed jobs gone from index.json")
        spool.wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                       open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z",
                       what="the removed job's process stopped")
        # The log is written by the daemon's logger, which may not have
        # flushed its lines yet when the process is seen stopped.
        spool.wait_for(lambda: "was removed while the job was queued" in spool.log_text()
                       and "was removed while the job was running" in spool.log_text(),
                       what="the log naming both removed folders")
        log = spool.log_text()
        self.assertIn("its folder", log)
        self.assertRegex(log, r"job long: its folder .* was removed while the job was running")
        self.assertRegex(log, r"job waiting: its folder .* was removed while the job was queued")
        spool.wait_for(lambda: (spool.index()["pools"]["default"]["running"],
                                spool.index()["pools"]["default"]["queued"]) == (0, 0),
                       what="the pool counts without them")
        # The second "long" is a job of its own; nothing of the removed ones is
        # written again, and the daemon carries on.
        st = spool.wait_terminal("long", timeout=30)
        self.assertEqual((st["state"], st["attempt"]), ("succeeded", 1), st)
        with open(os.path.join(spool.job_dir("long"), "results", "out.txt")) as f:
            self.assertEqual(f.read(), "second\n")
        spool.run_job("after", command=["true"])
        self.assertEqual(sorted(os.listdir(spool.path("jobs"))), ["after", "long"])
        self.assertEqual(set(self.list_json(spool)), {"after", "long"})
        self.assertTrue(spool.alive())
        spool.stop()

if __name__ == "__main__":
    unittest.main()
