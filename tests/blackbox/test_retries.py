"""Retries (SPEC.md sections 2, 4 and 5): the wait between attempts, which exits
qualify, retry then success, and the persisted next_attempt_at."""
import unittest

from harness import SpoolTestMixin, parse_time
from harness_sched import event_names

# Timer and timestamp granularity: a gap may look this much shorter than configured.
EARLY = 0.005
# A generous bound on lateness: this is a behaviour check, not a benchmark.
SLACK = 1.5


class RetriesTest(SpoolTestMixin, unittest.TestCase):

    def gaps(self, st):
        atts = st["attempts"]
        return [(parse_time(b["started"]) - parse_time(a["finished"])).total_seconds()
                for a, b in zip(atts, atts[1:])]

    def assert_gaps(self, st, expected):
        gaps = self.gaps(st)
        self.assertEqual(len(gaps), len(expected), st["attempts"])
        for n, (gap, want) in enumerate(zip(gaps, expected), start=1):
            self.assertGreaterEqual(gap, want - EARLY,
                                    f"wait before retry {n} is {gap:.3f}s, configured "
                                    f"{want}s; all gaps {gaps}")
            self.assertLess(gap, want + SLACK,
                            f"wait before retry {n} is {gap:.3f}s, configured {want}s; "
                            f"all gaps {gaps}")

    def test_backoff_gaps(self):
        spool = self.make_spool()
        st = spool.run_job("backoff", command=["sh", "-c", "exit 3"],
                           retry={"attempts": 2, "delay": "300ms", "backoff": 2})
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "nonzero_exit", st)
        self.assertEqual(len(st["attempts"]), 3, st)
        self.assertEqual([a["attempt"] for a in st["attempts"]], [1, 2, 3])
        self.assertEqual([a["reason"] for a in st["attempts"]], ["nonzero_exit"] * 3)
        self.assertEqual(st["attempt"], 3)
        self.assertEqual(st["max_attempts"], 3)
        self.assertIsNone(st["next_attempt_at"], "no next attempt once failed")
        self.assert_gaps(st, [0.3, 0.6])
        names = event_names(spool, "backoff")
        self.assertEqual(names.count("retry_scheduled"), 2, names)
        self.assertEqual(names.count("started"), 3, names)

    def test_backoff_capped_by_max_delay(self):
        spool = self.make_spool()
        st = spool.run_job("capped", command=["sh", "-c", "exit 1"],
                           retry={"attempts": 3, "delay": "300ms", "backoff": 4,
                                  "max_delay": "500ms"})
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(len(st["attempts"]), 4, st)
        self.assert_gaps(st, [0.3, 0.5, 0.5])

    def test_exit_code_not_listed_is_not_retried(self):
        spool = self.make_spool()
        st = spool.run_job("four", command=["sh", "-c", "exit 4"],
                           retry={"attempts": 3, "delay": "100ms", "exit_codes": [3]})
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "nonzero_exit", st)
        self.assertEqual(st["exit_code"], 4)
        self.assertEqual(len(st["attempts"]), 1, st)
        self.assertNotIn("retry_scheduled", event_names(spool, "four"))

    def test_exit_code_listed_is_retried(self):
        spool = self.make_spool()
        st = spool.run_job("three", command=["sh", "-c", "exit 3"],
                           retry={"attempts": 2, "delay": "100ms", "exit_codes": [3, 5]})
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["exit_code"], 3)
        self.assertEqual(len(st["attempts"]), 3, st)
        self.assertEqual([a["exit_code"] for a in st["attempts"]], [3, 3, 3])

    def test_signal_death_retried_when_exit_codes_empty(self):
        spool = self.make_spool()
        st = spool.run_job("sig", command=["sh", "-c", "kill -9 $$"],
                           retry={"attempts": 1, "delay": "100ms"})
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(st["reason"], "signal", st)
        self.assertEqual([a["reason"] for a in st["attempts"]], ["signal", "signal"], st)

    def test_retry_then_success(self):
        spool = self.make_spool()
        script = ('m="$SPOOLD_RESULTS_DIR/marker"\n'
                  'echo "attempt $SPOOLD_ATTEMPT"\n'
                  'if [ -e "$m" ]; then exit 0; fi\n'
                  'touch "$m"\n'
                  'exit 7\n')
        st = spool.run_job("flaky", script=script, retry={"attempts": 3, "delay": "200ms"})
        self.assertEqual(st["state"], "succeeded", st)
        self.assertIsNone(st["reason"])
        self.assertEqual(st["exit_code"], 0)
        self.assertEqual(st["attempt"], 2)
        self.assertEqual(st["max_attempts"], 4)
        self.assertEqual(len(st["attempts"]), 2, st)
        self.assertEqual(st["attempts"][0]["exit_code"], 7)
        self.assertEqual(st["attempts"][0]["reason"], "nonzero_exit")
        self.assertEqual(st["attempts"][1]["exit_code"], 0)
        self.assertEqual(spool.attempt_log("flaky", 1), "attempt 1\n")
        self.assertEqual(spool.attempt_log("flaky", 2), "attempt 2\n")
        names = event_names(spool, "flaky")
        self.assertEqual(names.count("retry_scheduled"), 1, names)
        self.assertEqual(names[-1], "succeeded", names)

    def test_next_attempt_at_persisted_across_restart(self):
        spool = self.make_spool()
        spool.drop_job("later", command=["sh", "-c", "exit 3"],
                       retry={"attempts": 2, "delay": "3s"})

        def backing_off():
            st = spool.status("later")
            return st if st["reason"] == "retry_backoff" else None
        st = spool.wait_for(backing_off, what="job 'later' queued with retry_backoff")
        self.assertEqual(st["state"], "queued", st)
        self.assertEqual(st["attempt"], 1)
        self.assertEqual(st["max_attempts"], 3)
        self.assertEqual(st["exit_code"], 3)
        self.assertIsNone(st["pid"])
        self.assertEqual(len(st["attempts"]), 1)
        self.assert_time(st["next_attempt_at"], "next_attempt_at")
        next_at = parse_time(st["next_attempt_at"])
        finished = parse_time(st["attempts"][0]["finished"])
        wait = (next_at - finished).total_seconds()
        self.assertGreaterEqual(wait, 3 - 1.0, f"next_attempt_at {wait:.3f}s after the exit")
        self.assertLess(wait, 3 + 1.0, f"next_attempt_at {wait:.3f}s after the exit")
        # In UTC, dated only when the retry is not on the day of the exit (a
        # run just before midnight UTC).
        shown = next_at.strftime("%H:%M:%S UTC")
        if next_at.date() != finished.date():
            shown = next_at.strftime("%Y-%m-%d ") + shown
        self.assertEqual(st["message"], f"attempt 1 of 3 exited with code 3; retrying at {shown}",
                         "the message shows next_attempt_at")
        self.assertIn("retry_scheduled", event_names(spool, "later"))
        spool.wait_for(lambda: spool.index()["jobs"]["later"]["reason"] == "retry_backoff",
                       what="index.json shows retry_backoff")

        # Restart during the wait: the time is kept, not restarted from zero
        # and not dropped (which would run the job at once).
        spool.stop()
        st2 = spool.status("later")
        self.assertEqual((st2["state"], st2["reason"]), ("queued", "retry_backoff"), st2)
        self.assertEqual(st2["next_attempt_at"], st["next_attempt_at"])
        spool.start()
        st3 = spool.status("later")
        self.assertEqual(st3["next_attempt_at"], st["next_attempt_at"], st3)

        def second_started():
            s = spool.status("later")
            return s if len(s["attempts"]) >= 2 else None
        st = spool.wait_for(second_started, timeout=20, what="second attempt recorded")
        started2 = parse_time(st["attempts"][1]["started"])
        self.assertGreaterEqual((started2 - next_at).total_seconds(), -EARLY,
                                f"attempt 2 started before next_attempt_at: {st}")
        self.assertLess((started2 - next_at).total_seconds(), SLACK + 1.0, st)
        st = spool.wait_terminal("later", timeout=30)
        self.assertEqual(st["state"], "failed", st)
        self.assertEqual(len(st["attempts"]), 3, st)


if __name__ == "__main__":
    unittest.main()
