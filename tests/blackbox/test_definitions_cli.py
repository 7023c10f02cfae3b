"""spoolctl and job definitions (issue #20) against a real daemon on a
temporary spool: `definitions list|show|history` over the revisions the
daemon keeps, and `submit NAME -p k=v` / `run NAME -p k=v`: the run file they
drop, the job it makes, its exit code, the checks made before anything is
dropped (with the daemon's error codes), and --id making a run idempotent.
The helpers are harness.py's and harness_ctl.py's."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import SpoolTestMixin, read_bytes, read_json, source_dir
from harness_ctl import CTL_TIMEOUT, SpoolctlMixin, clean_env, spoolctl_bin

ETL_V1 = """title = "ETL {{day}}"
command = ["sh", "-c", "echo day={{day}} env=$SPOOLD_PARAM_DAY n={{n}}; exit {{code}}"]
allow_override = ["priority"]

[params.day]
type = "string"
pattern = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
description = "the day to load"

[params.n]
type = "integer"
default = 1

[params.code]
type = "integer"
default = 0
"""

# Revision 2: n defaults to 2.
ETL_V2 = ETL_V1.replace("default = 1\n", "default = 2\n")

BROKEN = """command = ["echo", "{{x}}"]

[params.x]
type = "float"
"""


class DefinitionsCliTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    # -- helpers -------------------------------------------------------------------

    def definitions(self, spool):
        return self.json_out(self.ctl(spool, "definitions", "list", "--json", expect=0))

    def wait_revision(self, spool, name, revision):
        spool.wait_for(lambda: self.definitions(spool).get(name, {}).get("revision") == revision,
                       what=f"definitions list naming {name} revision {revision}")

    def put_definition(self, spool, name, text, revision):
        """Drops definitions/<name> (whole, by rename) and waits for the revision."""
        spool.drop(name, text, folder="definitions")
        self.wait_revision(spool, name.rsplit(".", 1)[0], revision)

    def started_spool(self):
        spool = self.make_spool()
        self.put_definition(spool, "etl.toml", ETL_V1, 1)
        return spool

    def assert_nothing_dropped(self, spool, jobs_before):
        self.assertEqual(spool.incoming(), [])
        self.assertEqual(sorted(os.listdir(spool.path("jobs"))), jobs_before)

    # -- definitions list, show, history -----------------------------------------------

    def test_revisions_listed_shown_and_history(self):
        spool = self.started_spool()
        proc = self.ctl(spool, "definitions", expect=0)
        self.assertRegex(proc.out, r"(?m)^NAME\s+REV\s+UPDATED\s+RUNS\s+LAST RUN\s+STATE\s+NOTE$")
        self.assertRegex(proc.out, r"(?m)^etl\s+1\s+\S+ ago\s+0\s+-\s+-$")
        self.assertEqual(self.ctl(spool, "definitions", "list", "-q", expect=0).out, "etl\n")
        entry = self.definitions(spool)["etl"]
        self.assertEqual((entry["revision"], entry["file"], entry["runs"], entry["last_run"],
                          entry["last_run_state"], entry["error"], entry["present"]),
                         (1, "etl.toml", 0, None, None, None, True))

        # An edit is revision 2; history shows both, newest first.
        self.put_definition(spool, "etl.toml", ETL_V2, 2)
        proc = self.ctl(spool, "definitions", "history", "etl", expect=0)
        lines = proc.out.splitlines()
        self.assertRegex(lines[0], r"^REV\s+TIME\s+OWNER\s+SHA256\s+FILE\s+RUNS$")
        sha1 = hashlib.sha256(ETL_V1.encode()).hexdigest()
        sha2 = hashlib.sha256(ETL_V2.encode()).hexdigest()
        self.assertRegex(lines[1], rf"^2\s+\S+Z\s+\S+\s+{sha2[:12]}\s+etl.toml\s+0$")
        self.assertRegex(lines[2], rf"^1\s+\S+Z\s+\S+\s+{sha1[:12]}\s+etl.toml\s+0$")
        self.assertEqual(len(lines), 3)
        history = self.json_out(self.ctl(spool, "definitions", "history", "etl", "--json", expect=0))
        self.assertEqual([(r["revision"], r["sha256"], r["file"], r["format"], r["runs"])
                          for r in history["revisions"]],
                         [(2, sha2, "etl.toml", "toml", 0), (1, sha1, "etl.toml", "toml", 0)])

        # show: the revision's text byte for byte, nothing before it.
        self.assertEqual(self.ctl(spool, "definitions", "show", "etl:1", expect=0).stdout,
                         ETL_V1.encode())
        self.assertEqual(self.ctl(spool, "definitions", "show", "etl", expect=0).stdout,
                         ETL_V2.encode())
        proc = self.ctl(spool, "definitions", "show", "etl:3", expect=1)
        self.assertIn("no revision 3", proc.err)
        proc = self.ctl(spool, "definitions", "show", "nosuch", expect=1)
        self.assertIn(spool.path("definitions"), proc.err)
        self.ctl(spool, "definitions", "show", "etl", "--runs", expect=2)
        self.ctl(spool, "definitions", "frobnicate", expect=2)

        # show --params: the declared params, parsed as the daemon parses them.
        proc = self.ctl(spool, "definitions", "show", "etl:1", "--params", expect=0)
        self.assertRegex(proc.out, r"(?m)^day\s+string\s+\(required\)\s+\[0-9\]\{4\}-\S+\s+the day to load$")
        self.assertRegex(proc.out, r"(?m)^n\s+integer\s+1\s+-$")
        self.assertIn("a run may also set: priority, hold, after, metadata", proc.out)
        params = self.json_out(self.ctl(spool, "definitions", "show", "etl", "--params", "--json",
                                        expect=0))
        self.assertEqual(params["revision"], 2)
        self.assertEqual(params["allow_override"], ["priority"])
        self.assertEqual(params["params"]["n"]["default"], 2)
        self.assertEqual(params["params"]["day"]["variable"], "SPOOLD_PARAM_DAY")
        self.assertTrue(params["params"]["day"]["required"])

        # A file the daemon refuses: listed with its error, no revision.
        spool.drop("broken.toml", BROKEN, folder="definitions")
        spool.wait_for(lambda: self.definitions(spool).get("broken", {}).get("error"),
                       what="definitions list showing broken's error")
        entry = self.definitions(spool)["broken"]
        self.assertEqual((entry["revision"], entry["error"]["code"], entry["error"]["field"]),
                         (None, "invalid_field", "params.x.type"))
        proc = self.ctl(spool, "definitions", expect=0)
        self.assertRegex(proc.out, r"(?m)^broken\s+-\s+-\s+0\s+-\s+-\s+error: "
                                   r"definitions/broken.toml:\d+:\d+: invalid_field \(params.x.type\)")
        # The same entries as index.json's "definitions" (which lags by up to a second).
        spool.wait_for(lambda: self.definitions(spool) == spool.index()["definitions"],
                       what="definitions list --json equal to index.json's definitions")
        proc = self.ctl(spool, "submit", "broken", expect=1)
        self.assertIn("broken.toml was refused", proc.err)
        self.assertIn("invalid_field", proc.err)

        # Read from the files alone: an edit not taken in yet, then a removed file.
        spool.stop()
        with open(spool.path("definitions", "etl.toml"), "w", encoding="utf-8") as f:
            f.write(ETL_V2 + "# edited\n")
        self.assertIn("changed since revision 2, not taken in yet",
                      self.ctl(spool, "definitions", expect=0).out)
        os.remove(spool.path("definitions", "etl.toml"))
        self.assertRegex(self.ctl(spool, "definitions", expect=0).out, r"(?m)^etl\s+2\s.*\sremoved$")
        entry = self.definitions(spool)["etl"]
        self.assertEqual((entry["present"], entry["revision"], entry["file"]), (False, 2, None))
        self.ctl(spool, "definitions", "history", "etl", expect=0)
        # A removed definition runs only pinned to a revision, as the daemon rules.
        proc = self.ctl(spool, "submit", "etl", "-p", "day=2026-12-01", expect=1)
        self.assertIn("unknown_definition", proc.err)
        self.assertIn("was removed", proc.err)
        proc = self.ctl(spool, "submit", "etl:2", "-p", "day=2026-12-01", expect=0)
        self.assertEqual(proc.out, "etl-1\n")
        self.assertIn("spoold is not running", proc.err)
        spool.start()
        self.assertEqual(spool.wait_terminal("etl-1")["definition"]["revision"], 2)

    # -- submit and run ------------------------------------------------------------------

    def test_submit_and_run_make_jobs_with_params(self):
        spool = self.started_spool()
        job_id = self.submit(spool, "etl", "-p", "day=2026-12-01")
        self.assertEqual(job_id, "etl-1")
        st = spool.wait_terminal(job_id)
        self.assertEqual((st["state"], st["title"]), ("succeeded", "ETL 2026-12-01"))
        self.assertEqual(st["definition"], {"name": "etl", "revision": 1,
                                            "params": {"day": "2026-12-01", "n": 1, "code": 0}})
        self.assertEqual(spool.attempt_log(job_id).strip(), "day=2026-12-01 env=2026-12-01 n=1")
        folder = spool.job_dir(job_id)
        self.assertEqual(read_json(os.path.join(folder, "run.json")),
                         {"definition": "etl", "params": {"day": "2026-12-01"}})
        self.assertEqual(read_bytes(os.path.join(folder, "definition.toml")), ETL_V1.encode())
        self.assertEqual(read_json(os.path.join(folder, "job.json"))["title"], "ETL 2026-12-01")

        # run waits and exits with the job's code; the latest revision by default.
        self.put_definition(spool, "etl.toml", ETL_V2, 2)
        proc = self.ctl(spool, "run", "etl", "-p", "day=2026-12-02", "-p", "code=3", expect=3)
        self.assertIn("submitted etl-2", proc.out)
        self.assertIn("failed (nonzero_exit)", proc.out)
        self.assertEqual(spool.attempt_log("etl-2").strip(), "day=2026-12-02 env=2026-12-02 n=2")
        # A pinned revision, and an override the definition allows.
        proc = self.ctl(spool, "run", "etl:1", "-p", "day=2026-12-03", "--priority", "5", expect=0)
        self.assertIn("submitted etl-3", proc.out)
        st = spool.status("etl-3")
        self.assertEqual((st["state"], st["priority"], st["definition"]["revision"]),
                         ("succeeded", 5, 1))
        self.assertEqual(spool.attempt_log("etl-3").strip(), "day=2026-12-03 env=2026-12-03 n=1")
        # --hold is always allowed.
        held = self.submit(spool, "etl", "-p", "day=2026-12-04", "--hold")
        self.assertEqual(spool.wait_accepted(held)["reason"], "held")
        self.ctl(spool, "cancel", held, expect=0)
        spool.wait_terminal(held)

        # The runs, in list and history.
        entry = self.definitions(spool)["etl"]
        self.assertEqual((entry["runs"], entry["last_run"], entry["last_run_state"]),
                         (4, "etl-4", "cancelled"))
        self.assertRegex(self.ctl(spool, "definitions", expect=0).out,
                         r"(?m)^etl\s+2\s+\S+ ago\s+4\s+etl-4\s+cancelled$")
        proc = self.ctl(spool, "definitions", "history", "etl", "--runs", expect=0)
        rows = [line.split() for line in proc.out.splitlines()[1:]]
        self.assertEqual([(r[0], r[1], r[3]) for r in rows],
                         [("etl-4", "2", "cancelled"), ("etl-3", "1", "succeeded"),
                          ("etl-2", "2", "failed"), ("etl-1", "1", "succeeded")])
        history = self.json_out(self.ctl(spool, "definitions", "history", "etl", "--json", expect=0))
        self.assertEqual([r["runs"] for r in history["revisions"]], [2, 2])
        # A run whose folder is gone is "removed".
        shutil.rmtree(spool.job_dir("etl-1"))
        history = self.json_out(self.ctl(spool, "definitions", "history", "etl", "--runs", "--json",
                                         expect=0))
        self.assertEqual(history["runs"][-1], {"run": "etl-1", "revision": 1,
                                               "time": history["runs"][-1]["time"],
                                               "state": "removed"})
        # A last run whose status.json cannot be read (another user's, say): as
        # index.json has it.
        spool.stop()
        with open(os.path.join(spool.job_dir("etl-4"), "status.json"), "w", encoding="utf-8") as f:
            f.write("not json")
        self.assertEqual(self.definitions(spool)["etl"]["last_run_state"], "cancelled")
        proc = self.ctl(spool, "definitions", "history", "etl", "--runs", expect=0)
        self.assertRegex(proc.out.splitlines()[1], r"^etl-4\s+2\s+\S+\s+\?$")

    def test_rerun_of_a_run_is_a_run_of_the_same_revision_and_params(self):
        spool = self.started_spool()
        job_id = self.submit(spool, "etl", "-p", "day=2026-12-01", "--priority", "4")
        spool.wait_terminal(job_id)
        self.put_definition(spool, "etl.toml", ETL_V2, 2)
        proc = self.ctl(spool, "rerun", job_id, expect=0)
        again = proc.out.strip().splitlines()[-1].split()[-1]
        st = spool.wait_terminal(again)
        self.assertEqual((st["state"], st["priority"]), ("succeeded", 4), st)
        self.assertEqual(st["definition"], {"name": "etl", "revision": 1,
                                            "params": {"day": "2026-12-01", "n": 1, "code": 0}})
        self.assertEqual(st["metadata"]["derived_from"], job_id)
        # The params reach the environment again, from revision 1.
        self.assertEqual(spool.attempt_log(again).strip(), "day=2026-12-01 env=2026-12-01 n=1")

    def test_runs_are_checked_before_anything_is_dropped(self):
        spool = self.started_spool()
        jobs_before = sorted(os.listdir(spool.path("jobs")))
        refused = [
            (("-p", "day=2026-12-01", "-p", "bogus=1"), "unknown_param (params.bogus)"),
            ((), "missing_param (params.day)"),
            (("-p", "day=yesterday"), "invalid_param (params.day)"),
            (("-p", "day=2026-12-01", "-p", "n=many"), "invalid_param (params.n)"),
            (("-p", "day=2026-12-01", "--pool", "default"), "override_not_allowed (pool)"),
        ]
        for args, expected in refused:
            for command in ("submit", "run"):
                proc = self.ctl(spool, command, "etl", *args, expect=1)
                self.assertIn(expected, proc.err, args)
                self.assertIn("run of etl", proc.err)
        proc = self.ctl(spool, "submit", "etl", "-p", "bogus=1", "-p", "day=2026-12-01", "--json",
                        expect=1)
        self.assertEqual(self.json_out(proc)["error"]["code"], "unknown_param")
        # Usage errors.
        self.assertIn("no '='", self.ctl(spool, "submit", "etl", "-p", "day", expect=2).err)
        self.assertIn("twice", self.ctl(spool, "submit", "etl", "-p", "day=2026-12-01",
                                        "-p", "day=2026-12-02", expect=2).err)
        job_file = self.job_file(spool, "plain.toml")
        self.assertIn("is a job file", self.ctl(spool, "submit", job_file, "-p", "a=b", expect=2).err)
        # Unknown definitions and revisions.
        proc = self.ctl(spool, "submit", "nosuch", "-p", "a=b", expect=1)
        self.assertIn("unknown_definition", proc.err)
        self.assertIn(spool.path("definitions"), proc.err)
        proc = self.ctl(spool, "run", "etl:9", "-p", "day=2026-12-01", expect=1)
        self.assertIn("no revision 9", proc.err)
        self.assert_nothing_dropped(spool, jobs_before)

    def test_a_revision_that_no_longer_checks_out_is_not_run(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 1}}})
        self.put_definition(spool, "train.toml", 'pool = "gpu"\ncommand = ["true"]\n', 1)
        spool.stop()
        del spool.config["pools"]["gpu"]
        spool.write_config()
        spool.start()
        # Pools from index.json (no --config), or from the configuration.
        for extra in ((), ("--config", spool.config_path)):
            proc = self.ctl(spool, *extra, "submit", "train", expect=1)
            self.assertIn("unknown_definition (definition)", proc.err)
            self.assertIn("no longer checks out", proc.err)
            self.assertIn("unknown_pool (pool)", proc.err)
        self.assertEqual(spool.incoming(), [])
        # What it declares is still shown.
        self.assertEqual(self.ctl(spool, "definitions", "show", "train", expect=0).out,
                         'pool = "gpu"\ncommand = ["true"]\n')

    def test_id_makes_a_run_idempotent(self):
        spool = self.started_spool()
        args = ("etl", "-p", "day=2026-12-01", "--id", "nightly-1201")
        self.assertEqual(self.submit(spool, *args), "nightly-1201")
        self.assertEqual(spool.wait_terminal("nightly-1201")["state"], "succeeded")
        jobs_before = sorted(os.listdir(spool.path("jobs")))
        proc = self.ctl(spool, "submit", *args, expect=0)
        self.assertEqual(proc.out, "nightly-1201\n")
        self.assertIn("nothing was dropped", proc.err)
        out = self.json_out(self.ctl(spool, "submit", *args, "--json", expect=0))
        self.assertEqual((out["id"], out["outcome"]), ("nightly-1201", "already_submitted"))
        proc = self.ctl(spool, "run", *args, expect=0)
        self.assertIn("succeeded", proc.out)
        self.assert_nothing_dropped(spool, jobs_before)
        self.assertEqual(self.definitions(spool)["etl"]["runs"], 1)
        # Another run under that id is refused.
        proc = self.ctl(spool, "submit", "etl", "-p", "day=2026-12-02", "--id", "nightly-1201",
                        expect=1)
        self.assertIn("nightly-1201 is taken", proc.err)
        self.assert_nothing_dropped(spool, jobs_before)
        self.ctl(spool, "submit", "etl", "-p", "day=2026-12-02", "--id", "bad/id", expect=2)

    # -- help and completion ---------------------------------------------------------------

    def test_help_and_completion(self):
        spool = self.started_spool()
        self.assertIn("definitions", self.ctl(spool, "--help", root=False, expect=0).out)
        proc = self.ctl(spool, "definitions", "--help", root=False, expect=0)
        self.assertIn("usage: spoolctl definitions", proc.out)
        self.assertIn("-p, --param NAME=VALUE", self.ctl(spool, "submit", "--help", root=False,
                                                         expect=0).out)
        script = os.path.join(source_dir(), "cli", "spoolctl.bash")
        bindir = tempfile.mkdtemp(dir=spool.base)
        os.symlink(spoolctl_bin(), os.path.join(bindir, "spoolctl"))

        def complete(*words):
            line = ["spoolctl", "--root", spool.root, *words]
            program = (f'source "{script}"; COMP_WORDS=({" ".join(json.dumps(w) for w in line)}); '
                       f'COMP_CWORD={len(line) - 1}; _spoolctl; printf "%s\\n" "${{COMPREPLY[@]}}"')
            env = clean_env(PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
            proc = subprocess.run(["bash", "-c", program], capture_output=True, env=env,
                                  timeout=CTL_TIMEOUT, cwd=spool.base)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return proc.stdout.decode().split()
        self.assertEqual(complete("defin"), ["definitions"])
        self.assertEqual(complete("definitions", "h"), ["history"])
        self.assertEqual(complete("definitions", "show", "e"), ["etl"])
        self.assertIn("etl", complete("submit", "e"))
        self.assertEqual(complete("definitions", "--par"), ["--params"])
        self.assertEqual(complete("submit", "--par"), ["--parallel"])
        self.assertIn("-p", complete("run", "-"))


if __name__ == "__main__":
    unittest.main()
