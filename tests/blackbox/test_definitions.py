"""Job definitions and their runs (SPEC.md section 2, "Definitions"):
revisions of definitions/ files, a bad edit keeping the last good revision,
runs pinned or not, params substituted (never twice, never through a shell),
each rejection code, and accepted runs untouched by later edits."""
import json
import os
import unittest

from harness import SpoolTestMixin, read_json

ETL_V1 = """\
title = "ETL of {{day}}"
command = ["sh", "-c", "printf '%s|%s|%s|%s\\\\n' \\"$1\\" \\"$2\\" \\"$SPOOLD_PARAM_DAY\\" \\"$SPOOLD_PARAM_N\\"", "etl", "{{day}}", "v1 n={{n}}"]
allow_override = ["priority"]

[params.day]
pattern = "[0-9]{4}-[0-9]{2}-[0-9]{2}"

[params.n]
type = "integer"
default = 2
"""

ETL_V2 = ETL_V1.replace("v1 n=", "v2 n=")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class DefinitionsTest(SpoolTestMixin, unittest.TestCase):

    def put_definition(self, spool, name, text):
        """Writes definitions/<name> the way an editor that renames does."""
        tmp = spool.path("definitions", f".{name}.swp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, spool.path("definitions", name))

    def definition_entry(self, spool, name):
        return spool.index().get("definitions", {}).get(name)

    def wait_revision(self, spool, name, revision):
        return spool.wait_for(
            lambda: (self.definition_entry(spool, name) or {}).get("revision") == revision
            and self.definition_entry(spool, name),
            what=f"revision {revision} of {name} in index.json")

    def run_file(self, spool, run_id, definition, fmt="toml", **params):
        if fmt == "json":
            spool.drop(f"{run_id}.json", json.dumps({"definition": definition, "params": params}))
        else:
            lines = [f'definition = "{definition}"', "[params]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in params.items()]
            spool.drop(f"{run_id}.toml", "\n".join(lines) + "\n")

    def test_revisions_runs_and_edits_that_do_not_touch_accepted_runs(self):
        spool = self.make_spool()
        self.put_definition(spool, "etl.toml", ETL_V1)
        entry = self.wait_revision(spool, "etl", 1)
        self.assertEqual((entry["file"], entry["present"], entry["runs"], entry["error"]),
                         ("etl.toml", True, 0, None))
        with open(spool.path("revisions", "etl", "1.toml"), encoding="utf-8") as f:
            self.assertEqual(f.read(), ETL_V1, "the revision is kept byte for byte")

        # A held run of revision 1, accepted before the edit.
        spool.drop("held.toml", 'definition = "etl"\nhold = true\n[params]\nday = "2026-12-01"\n')
        self.assertEqual(spool.wait_state("held", ["queued"])["definition"]["revision"], 1)

        self.put_definition(spool, "etl.toml", ETL_V2)
        self.wait_revision(spool, "etl", 2)
        history = read_lines(spool.path("revisions", "etl", "history.jsonl"))
        self.assertEqual([h["revision"] for h in history], [1, 2])
        self.assertEqual(history[1]["file"], "etl.toml")

        # The latest, a pinned one, and the held run of revision 1.
        self.run_file(spool, "latest", "etl", day="2026-12-02")
        self.run_file(spool, "pinned", "etl:1", fmt="json", day="2026-12-03", n="7")
        latest = spool.wait_terminal("latest")
        pinned = spool.wait_terminal("pinned")
        self.assertEqual(latest["state"], "succeeded", spool.log_tail())
        self.assertEqual(spool.attempt_log("latest").strip(), "2026-12-02|v2 n=2|2026-12-02|2")
        self.assertEqual(pinned["definition"], {"name": "etl", "revision": 1,
                                                "params": {"day": "2026-12-03", "n": 7}})
        self.assertEqual(spool.attempt_log("pinned").strip(), "2026-12-03|v1 n=7|2026-12-03|7")
        self.assertEqual(latest["title"], "ETL of 2026-12-02")
        spool.drop("start-held.json", json.dumps({"action": "start", "job": "held"}), folder="control")
        spool.wait_terminal("held")
        self.assertIn("v1 n=2", spool.attempt_log("held"), "an edit never changes an accepted run")

        # The folder keeps the run file, the revision and the resolved job.
        folder = spool.job_dir("pinned")
        with open(os.path.join(folder, "definition.toml"), encoding="utf-8") as f:
            self.assertEqual(f.read(), ETL_V1)
        with open(os.path.join(folder, "run.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["definition"], "etl:1")
        with open(os.path.join(folder, "job.json"), encoding="utf-8") as f:
            job = json.load(f)
        self.assertNotIn("definition", job)
        self.assertIn("2026-12-03", job["command"])

        entry = spool.wait_for(lambda: (self.definition_entry(spool, "etl") or {}).get("last_run_state")
                               == "succeeded" and self.definition_entry(spool, "etl"),
                               what="the last run's end in index.json")
        self.assertEqual((entry["runs"], entry["last_run"]), (3, "pinned"))
        runs = [r["run"] for r in read_lines(spool.path("revisions", "etl", "runs.jsonl"))]
        self.assertEqual(runs, ["held", "latest", "pinned"])

        # A restart keeps revisions and counts, and a re-dropped run is a no-op.
        spool.stop()
        spool.start()
        entry = self.wait_revision(spool, "etl", 2)
        self.assertEqual(entry["runs"], 3)
        with open(os.path.join(folder, "run.json"), "rb") as f:
            spool.drop("pinned.json", f.read())
        spool.wait_event("pinned", "duplicate_ignored")

    def test_a_bad_edit_keeps_the_last_good_revision(self):
        spool = self.make_spool()
        self.put_definition(spool, "etl.toml", ETL_V1)
        self.wait_revision(spool, "etl", 1)
        self.put_definition(spool, "etl.toml", ETL_V1.replace('type = "integer"', 'type = "int"'))
        err_path = spool.path("definitions", "etl.toml.error.json")
        err = spool.wait_for(lambda: read_json(err_path), what="the error file")
        self.assertEqual((err["file"], err["code"], err["field"], err["line"]),
                         ("etl.toml", "invalid_field", "params.n.type", 9))
        entry = spool.wait_for(lambda: self.definition_entry(spool, "etl")["error"],
                               what="the error in index.json") and self.definition_entry(spool, "etl")
        self.assertEqual(entry["revision"], 1)
        self.run_file(spool, "still-v1", "etl", day="2026-12-01")
        self.assertEqual(spool.wait_terminal("still-v1")["state"], "succeeded")
        self.assertIn("v1 n=2", spool.attempt_log("still-v1"))
        # Fixed: a new revision, and the error file goes.
        self.put_definition(spool, "etl.toml", ETL_V2)
        self.wait_revision(spool, "etl", 2)
        spool.wait_for(lambda: not os.path.exists(err_path), what="the error file removed")
        self.assertIsNone(self.definition_entry(spool, "etl")["error"])
        # An edit written in place, not renamed, is read once it is complete.
        with open(spool.path("definitions", "etl.toml"), "w", encoding="utf-8") as f:
            f.write(ETL_V1[:40])
            f.flush()
            f.write(ETL_V1[40:])
        self.wait_revision(spool, "etl", 3)
        self.assertFalse(os.path.exists(err_path))
        # Removed: unpinned runs are refused, pinned ones still run.
        os.unlink(spool.path("definitions", "etl.toml"))
        spool.wait_for(lambda: not self.definition_entry(spool, "etl")["present"], what="removed")
        self.run_file(spool, "gone", "etl", day="2026-12-01")
        self.assertEqual(spool.wait_rejected("gone.toml")["code"], "unknown_definition")
        self.run_file(spool, "pinned", "etl:2", day="2026-12-01")
        self.assertEqual(spool.wait_terminal("pinned")["state"], "succeeded")

    def test_files_that_cannot_be_definitions_get_an_error_file_and_no_revision(self):
        spool = self.make_spool()
        self.put_definition(spool, "my.etl.toml", ETL_V1)
        err = spool.wait_for(lambda: read_json(spool.path("definitions", "my.etl.toml.error.json")),
                             what="the bad name's error file")
        self.assertEqual(err["code"], "bad_name")
        self.put_definition(spool, "etl.toml", ETL_V1)
        self.wait_revision(spool, "etl", 1)
        self.put_definition(spool, "etl.json", json.dumps({"command": ["false"]}))
        err = spool.wait_for(lambda: read_json(spool.path("definitions", "etl.json.error.json")),
                             what="the second file's error file")
        self.assertEqual(err["code"], "duplicate_definition")
        self.run_file(spool, "both", "etl", day="2026-12-01")
        spool.wait_terminal("both")
        self.assertIn("v1", spool.attempt_log("both"), "revision 1 stays in force")
        os.unlink(spool.path("definitions", "etl.json"))
        spool.wait_for(lambda: not os.path.exists(spool.path("definitions", "etl.json.error.json"))
                       and not os.path.exists(spool.path("definitions", "etl.toml.error.json")),
                       what="both error files gone with the second file")
        # A hard link (to a file another user may not read) is never copied into revisions/.
        with open(spool.path("other-src.toml"), "w", encoding="utf-8") as f:
            f.write(ETL_V2)
        os.link(spool.path("other-src.toml"), spool.path("other-link.toml"))
        os.rename(spool.path("other-src.toml"), spool.path("definitions", "other.toml"))
        err = spool.wait_for(lambda: read_json(spool.path("definitions", "other.toml.error.json")),
                             what="the hard link's error file")
        self.assertEqual(err["code"], "not_permitted")
        self.assertFalse(os.path.exists(spool.path("revisions", "other")))
        other = spool.wait_for(lambda: self.definition_entry(spool, "other"), what="other in index.json")
        self.assertEqual((other["revision"], other["error"]["code"]), (None, "not_permitted"))

    def test_only_its_owner_or_root_gives_a_definition_its_next_revision(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: files of several users")
        spool = self.make_spool()

        def put_as(uid, text):
            tmp = spool.path("definitions", ".etl.swp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.chown(tmp, uid, uid)
            os.rename(tmp, spool.path("definitions", "etl.toml"))

        put_as(65534, ETL_V1)
        self.wait_revision(spool, "etl", 1)
        # Another user replaces the file: refused, revision 1 stays in force.
        put_as(65533, ETL_V2)
        err = spool.wait_for(lambda: read_json(spool.path("definitions", "etl.toml.error.json")),
                             what="the error file")
        self.assertEqual(err["code"], "not_permitted")
        self.assertEqual(self.definition_entry(spool, "etl")["revision"], 1)
        # Nor can they block the owner with a second file: theirs is refused.
        tmp = spool.path("definitions", ".etl.json.swp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({"command": ["false"]}))
        os.chown(tmp, 65533, 65533)
        os.rename(tmp, spool.path("definitions", "etl.json"))
        spool.wait_for(lambda: read_json(spool.path("definitions", "etl.json.error.json")),
                       what="the second file's error file")
        put_as(65534, ETL_V2)
        self.wait_revision(spool, "etl", 2)
        # Root may.
        put_as(0, ETL_V1)
        self.wait_revision(spool, "etl", 3)

    def test_each_rejection_names_its_param_or_key(self):
        spool = self.make_spool()
        self.put_definition(spool, "etl.toml", ETL_V1)
        self.wait_revision(spool, "etl", 1)
        cases = [
            ("nodef", 'definition = "nope"\n', "unknown_definition", "definition", 1),
            ("norev", 'definition = "etl:9"\n[params]\nday = "2026-12-01"\n', "unknown_definition",
             "definition", 1),
            ("missing", 'definition = "etl"\n', "missing_param", "params.day", None),
            ("unknown", 'definition = "etl"\n[params]\nday = "2026-12-01"\nmonth = 1\n', "unknown_param",
             "params.month", 4),
            ("badtype", 'definition = "etl"\n[params]\nday = "2026-12-01"\nn = "two"\n', "invalid_param",
             "params.n", 4),
            ("badpattern", 'definition = "etl"\n[params]\nday = "1st of May"\n', "invalid_param",
             "params.day", 3),
            ("override", 'definition = "etl"\ncommand = ["rm", "-rf", "/"]\n[params]\nday = "2026-12-01"\n',
             "override_not_allowed", "command", 2),
        ]
        for run_id, text, code, field, line in cases:
            with self.subTest(run_id):
                spool.drop(f"{run_id}.toml", text)
                err = spool.wait_rejected(f"{run_id}.toml")
                self.assertEqual((err["code"], err["field"]), (code, field), err)
                if line is not None:
                    self.assertEqual(err["line"], line, err)
        # An allowed override runs.
        spool.drop("urgent.toml", 'definition = "etl"\npriority = 9\n[params]\nday = "2026-12-01"\n')
        self.assertEqual(spool.wait_terminal("urgent")["priority"], 9)

    def test_param_values_reach_the_program_as_given(self):
        spool = self.make_spool()
        self.put_definition(spool, "echo.toml", """\
command = ["printf", "[%s]\\n", "{{a}}", "{{b}}"]
env = { A = "{{a}}" }
[params.a]
[params.b]
""")
        self.wait_revision(spool, "echo", 1)
        a = "it's \"quoted\"; $(touch /tmp/x) {{b}}\nsecond line"
        b = "{{a}}"
        spool.drop("tricky.json", json.dumps({"definition": "echo", "params": {"a": a, "b": b}}))
        self.assertEqual(spool.wait_terminal("tricky")["state"], "succeeded")
        self.assertEqual(spool.attempt_log("tricky"), f"[{a}]\n[{b}]\n")
        with open(os.path.join(spool.job_dir("tricky"), "job.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["env"]["A"], a)


if __name__ == "__main__":
    unittest.main()
