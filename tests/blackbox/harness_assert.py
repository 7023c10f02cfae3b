"""The fields the spool's JSON files must hold and the assertions over them, for
the black-box tests of spoold (not a test file). `SpoolAssertions` is mixed into
harness.SpoolTestMixin; harness.py re-exports every name here, so tests import
them from harness. Only the standard library is used.
"""
from harness_files import is_rfc3339_z


# Every field of status.json (SPEC.md section 4).
STATUS_FIELDS = (
    "schema", "seq", "id", "title", "pool", "tags", "priority", "owner", "metadata",
    "state", "reason", "message", "attempt", "max_attempts", "exit_code", "signal",
    "progress", "pid", "next_attempt_at", "created", "started", "finished",
    "updated", "attempts")
ATTEMPT_FIELDS = (
    "attempt", "started", "finished", "exit_code", "signal", "reason", "duration_s",
    "cpu_user_s", "cpu_sys_s", "max_rss_kb")
ERROR_FIELDS = ("file", "time", "code", "field", "line", "column", "error")
EVENT_FIELDS = ("seq", "time", "level", "event", "attempt", "message")
EVENT_LEVELS = ("debug", "info", "warning", "error")


class SpoolAssertions:
    """Assertions on status.json, events.jsonl and a daemon's health; mixed into
    a unittest.TestCase through harness.SpoolTestMixin."""

    def assert_time(self, value, what="time"):
        self.assertTrue(is_rfc3339_z(value),
                        f"{what} must be UTC RFC 3339 ending in Z, got {value!r}")

    def assert_time_or_null(self, value, what="time"):
        if value is not None:
            self.assert_time(value, what)

    def assert_status_complete(self, st, job_id):
        missing = [k for k in STATUS_FIELDS if k not in st]
        self.assertEqual(missing, [], f"status.json of {job_id} lacks fields")
        self.assertEqual(st["schema"], "spoold/status/v1")
        self.assertEqual(st["id"], job_id)
        self.assertTrue(isinstance(st["seq"], int) and st["seq"] > 0,
                        f"seq must be a positive integer, got {st['seq']!r}")
        self.assert_time(st["created"], "created")
        self.assert_time(st["updated"], "updated")
        for key in ("started", "finished", "next_attempt_at"):
            self.assert_time_or_null(st[key], key)
        self.assertIsInstance(st["attempts"], list)
        for att in st["attempts"]:
            missing = [k for k in ATTEMPT_FIELDS if k not in att]
            self.assertEqual(missing, [], f"attempts[] entry of {job_id} lacks fields")

    def assert_events_wellformed(self, events, job_id):
        self.assertTrue(events, f"events.jsonl of {job_id} is empty")
        last = 0
        for ev in events:
            missing = [k for k in EVENT_FIELDS if k not in ev]
            self.assertEqual(missing, [], f"event {ev} of {job_id} lacks fields")
            self.assertIn(ev["level"], EVENT_LEVELS, f"event {ev}")
            self.assert_time(ev["time"], "event time")
            self.assertIsInstance(ev["seq"], int)
            self.assertGreater(ev["seq"], last, f"event seq must grow: {events}")
            last = ev["seq"]

    def assert_accepts_valid_job(self, spool, job_id):
        """The daemon is alive and still accepts and runs a valid job."""
        self.assertTrue(spool.alive(), "daemon died\n" + spool.log_tail())
        spool.drop_job(job_id, command=["true"])
        st = spool.wait_terminal(job_id)
        self.assertEqual(st["state"], "succeeded", st)
