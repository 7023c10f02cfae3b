"""Intake (SPEC.md sections 2 and 4): accepted job files become job folders."""
import json
import os
import time
import unittest

from harness import SpoolTestMixin, job_toml, parse_time


class IntakeTest(SpoolTestMixin, unittest.TestCase):

    def test_toml_job_accepted(self):
        spool = self.make_spool()
        text = job_toml(command=["sleep", "0.5"]) + "# a comment, kept byte for byte\n"
        spool.drop("hello.toml", text)
        first = spool.wait_accepted("hello")
        self.assert_status_complete(first, "hello")
        with open(os.path.join(spool.job_dir("hello"), "job.toml"), "rb") as f:
            self.assertEqual(f.read(), text.encode())
        self.assertFalse(os.path.exists(os.path.join(spool.job_dir("hello"), "job.json")))
        spool.wait_for(lambda: spool.incoming() == [], what="incoming/ emptied")
        self.assertEqual(first["title"], "hello", "title defaults to the id")
        self.assertEqual(first["pool"], "default")
        self.assertEqual(first["tags"], [])
        self.assertEqual(first["priority"], 0)
        self.assertEqual(first["metadata"], {})
        self.assertIn(first["state"], ("queued", "running"))

        last = spool.wait_terminal("hello")
        self.assert_status_complete(last, "hello")
        self.assertEqual(last["state"], "succeeded", last)
        self.assertGreater(last["seq"], first["seq"], "seq grows with every write")
        self.assertGreaterEqual(parse_time(last["updated"]), parse_time(first["updated"]))
        self.assertLessEqual(parse_time(last["created"]), parse_time(last["started"]))
        self.assertLessEqual(parse_time(last["started"]), parse_time(last["finished"]))

        events = spool.events("hello")
        self.assert_events_wellformed(events, "hello")
        names = [e["event"] for e in events]
        self.assertIn("accepted", names)
        self.assertLess(names.index("accepted"), len(names) - 1)
        self.assertIn("started", names)
        self.assertIn("succeeded", names)
        self.assertEqual(spool.rejected(), [])

    def test_json_job_accepted(self):
        spool = self.make_spool()
        doc = {"command": ["true"], "title": "A JSON job", "tags": ["x", "y"],
               "priority": 3, "metadata": {"k": [1, 2, {"n": None}], "s": "v"}}
        data = json.dumps(doc, indent=1).encode() + b"\n"
        spool.drop("j-1.json", data)
        st = spool.wait_terminal("j-1")
        self.assert_status_complete(st, "j-1")
        self.assertEqual(st["state"], "succeeded", st)
        with open(os.path.join(spool.job_dir("j-1"), "job.json"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertFalse(os.path.exists(os.path.join(spool.job_dir("j-1"), "job.toml")))
        self.assertEqual(st["title"], "A JSON job")
        self.assertEqual(st["tags"], ["x", "y"])
        self.assertEqual(st["priority"], 3)
        self.assertEqual(st["metadata"], doc["metadata"], "metadata kept as given")
        spool.wait_for(lambda: spool.incoming() == [], what="incoming/ emptied")
        events = spool.events("j-1")
        self.assert_events_wellformed(events, "j-1")
        self.assertIn("accepted", [e["event"] for e in events])

    def test_seq_grows_across_reads(self):
        spool = self.make_spool()
        spool.drop_job("slow", command=["sleep", "1"])
        seqs = [spool.wait_accepted("slow")["seq"]]
        spool.wait_state("slow", "running")
        seqs.append(spool.status("slow")["seq"])
        seqs.append(spool.wait_terminal("slow")["seq"])
        self.assertEqual(seqs, sorted(seqs), f"seq never decreases: {seqs}")
        self.assertLess(seqs[0], seqs[2], f"seq grows: {seqs}")

    def test_ignored_names_untouched(self):
        spool = self.make_spool()
        spool.stop()
        # Written in place, as a slow writer would: the daemon must not read them.
        ignored = {".hidden.toml": job_toml(), "half.toml.tmp": job_toml(),
                   "half.toml.part": job_toml(), ".x.json": "{}",
                   "garbage.tmp": "not a job", "garbage.part": "[[["}
        for name, text in ignored.items():
            with open(spool.path("incoming", name), "w") as f:
                f.write(text)
        before = {n: os.stat(spool.path("incoming", n)).st_mtime_ns for n in ignored}
        spool.drop_job("first")
        t0 = time.monotonic()
        spool.start()  # the start-up scan sees all of them
        spool.wait_terminal("first")
        # A periodic rescan (1 s) happens too; a later job proves the daemon is
        # still scanning after that.
        while time.monotonic() - t0 < 2.5:
            time.sleep(0.1)  # let at least two rescan intervals pass
        spool.drop_job("second")
        spool.wait_terminal("second")
        names = sorted(os.fsdecode(n) for n in spool.incoming())
        self.assertEqual(names, sorted(ignored))
        for name, text in ignored.items():
            path = spool.path("incoming", name)
            with open(path) as f:
                self.assertEqual(f.read(), text, name)
            self.assertEqual(os.stat(path).st_mtime_ns, before[name], name)
        self.assertEqual(spool.rejected(), [])
        jobs = sorted(os.listdir(spool.path("jobs")))
        self.assertEqual([j for j in jobs if not j.startswith(".")], ["first", "second"])

    def test_duplicate_identical_ignored(self):
        spool = self.make_spool()
        data = spool.drop_job("dup", command=["true"], title="dup job")
        st1 = spool.wait_terminal("dup")
        spool.drop("dup.toml", data)
        spool.wait_event("dup", "duplicate_ignored")
        spool.wait_for(lambda: spool.incoming() == [], what="duplicate removed from incoming/")
        st2 = spool.status("dup")
        self.assertEqual(st2["state"], "succeeded")
        self.assertEqual(len(st2["attempts"]), 1, "a duplicate must not run the job again")
        self.assertEqual(st2["created"], st1["created"])
        with open(os.path.join(spool.job_dir("dup"), "job.toml"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(spool.rejected(), [])
        self.assert_events_wellformed(spool.events("dup"), "dup")

    def test_duplicate_different_rejected(self):
        spool = self.make_spool()
        data = spool.drop_job("dup", command=["true"])
        spool.wait_terminal("dup")
        other = job_toml(command=["false"]).encode()
        spool.drop("dup.toml", other)
        err = spool.wait_rejected("dup.toml")
        self.assertEqual(err["code"], "duplicate_id", err)
        self.assertEqual(err["file"], "dup.toml")
        with open(spool.path("rejected", "dup.toml"), "rb") as f:
            self.assertEqual(f.read(), other)
        with open(os.path.join(spool.job_dir("dup"), "job.toml"), "rb") as f:
            self.assertEqual(f.read(), data, "the accepted job is untouched")
        st = spool.status("dup")
        self.assertEqual(st["state"], "succeeded")
        self.assertEqual(len(st["attempts"]), 1)
        self.assertEqual(spool.incoming(), [])

    def test_duplicate_of_queued_job(self):
        # The same content again while the job is still running is a no-op too.
        spool = self.make_spool()
        data = spool.drop_job("busy", command=["sleep", "1"])
        spool.wait_state("busy", "running")
        spool.drop("busy.toml", data)
        spool.wait_event("busy", "duplicate_ignored")
        st = spool.wait_terminal("busy")
        self.assertEqual(st["state"], "succeeded")
        self.assertEqual(len(st["attempts"]), 1)

    def test_dropped_while_stopped(self):
        spool = self.make_spool()
        spool.stop()
        spool.drop_job("offline", command=["true"])
        spool.drop_job("offline2", fmt="json", command=["true"])
        spool.start()
        for job_id in ("offline", "offline2"):
            st = spool.wait_terminal(job_id)
            self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(spool.incoming(), [])


if __name__ == "__main__":
    unittest.main()
