"""spoolctl (issue 4) against a real daemon on a temporary spool: help and root
discovery, submit, run and wait, status, list, logs and pools, validate and
bash completion; their exit codes, their --json output parsed, and their
messages for unknown ids, bad files and a missing root. The commands that act
on jobs, pools and the daemon, and on results and archives, are tested in
test_spoolctl_control.py; the helpers both use are in harness_ctl.py."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import SpoolTestMixin, read_bytes, read_json, source_dir
from harness_ctl import CTL_TIMEOUT, SpoolctlMixin, clean_env, spoolctl_bin


class SpoolctlTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):


    # -- help, usage, root discovery ------------------------------------------

    def test_help_and_usage_errors(self):
        spool = self.make_spool(start=False)
        top = self.ctl(spool, "--help", root=False, expect=0)
        for command in ("submit", "run", "wait", "status", "list", "logs", "cancel", "start",
                        "pause", "resume", "pools", "results", "rerun", "duplicate", "export",
                        "import", "validate", "shutdown"):
            self.assertIn(command, top.out)
            sub = self.ctl(spool, command, "--help", root=False, expect=0)
            self.assertIn(f"usage: spoolctl {command}", sub.out)
        self.ctl(spool, root=False, expect=2)
        self.assertIn("unknown command", self.ctl(spool, "frobnicate", expect=2).err)
        self.assertIn("unknown option --bogus", self.ctl(spool, "list", "--bogus", expect=2).err)
        self.assertIn("needs a value", self.ctl(spool, "logs", "x", "--attempt", expect=2).err)
        spool.start()
        self.ctl(spool, "status", expect=2)
        self.ctl(spool, "duplicate", "x", "-n", "0", expect=2)
        self.ctl(spool, "wait", expect=2)

    def test_missing_root_is_named(self):
        spool = self.make_spool(start=False)
        missing = os.path.join(spool.base, "nowhere")
        proc = self.ctl(None, "--root", missing, "list", expect=1)
        self.assertIn(missing, proc.err)
        self.assertIn("is not a spool", proc.err)
        proc = self.ctl(None, "list", env=clean_env(SPOOLD_ROOT=spool.base), expect=1)
        self.assertIn("$SPOOLD_ROOT", proc.err)
        self.assertIn("no jobs/ and incoming/", proc.err)
        if not os.path.exists("/etc/spoold/spoold.toml"):
            proc = self.ctl(None, "list", expect=1)
            self.assertIn("no spool root", proc.err)
            self.assertIn("/etc/spoold/spoold.toml", proc.err)
        bad_config = self.write(spool, "bad.toml", "[spool]\nroot = 5\n")
        proc = self.ctl(None, "--config", bad_config, "list", expect=1)
        self.assertIn("bad.toml", proc.err)
        # The same root found three ways.
        spool.start()
        self.ctl(None, "--config", spool.config_path, "list", expect=0)
        self.ctl(None, "list", env=clean_env(SPOOLD_ROOT=spool.root), expect=0)
        self.ctl(spool, "list", expect=0)

    # -- submit ----------------------------------------------------------------

    def test_submit_twice_makes_two_jobs(self):
        spool = self.make_spool()
        path = self.job_file(spool, "twice.toml", '["sh", "-c", "echo hi"]', 'title = "Twice"\n')
        first = self.submit(spool, path)
        second = self.submit(spool, path)
        self.assertEqual((first, second), ("twice", "twice-2"))
        for job_id in (first, second):
            self.assertEqual(spool.wait_terminal(job_id)["state"], "succeeded")
            self.assertEqual(read_bytes(os.path.join(spool.job_dir(job_id), "job.toml")),
                             read_bytes(path), "the file is kept byte for byte")
        self.assertEqual(spool.incoming(), [])
        out = self.json_out(self.ctl(spool, "submit", path, "--json", expect=0))
        self.assertEqual((out["id"], out["outcome"], out["file"]),
                         ("twice-3", "accepted", "incoming/twice-3.toml"))

    def test_submit_refuses_invalid_file_like_the_daemon(self):
        spool = self.make_spool()
        bad = self.write(spool, "bad.toml", 'command = ["true"]\n[retry]\nattempts = -3\n')
        proc = self.ctl(spool, "submit", bad, expect=1)
        self.assertIn("bad.toml:3:12: invalid_field (retry.attempts): retry.attempts must be an "
                      "integer from 0 to 100, got -3", proc.err)
        self.assertEqual(proc.out, "")
        err = self.json_out(self.ctl(spool, "submit", bad, "--json", expect=1))["error"]
        # The daemon's own error for the same file, field by field.
        spool.drop("bad.toml", read_bytes(bad))
        daemon = spool.wait_rejected("bad.toml")
        for key in ("code", "field", "line", "column", "error"):
            self.assertEqual(err[key], daemon[key], key)
        self.assertEqual(spool.incoming(), [])
        self.assertFalse(os.path.exists(spool.job_dir("bad")))
        # Unknown pool: checked against the pools index.json lists.
        nopool = self.job_file(spool, "nopool.toml", extra='pool = "nope"\n')
        self.assertIn("unknown_pool (pool)", self.ctl(spool, "submit", nopool, expect=1).err)
        other = self.write(spool, "job.yaml", "command: [true]\n")
        self.assertIn("unsupported_type", self.ctl(spool, "submit", other, expect=1).err)
        missing = os.path.join(spool.base, "missing.toml")
        self.assertIn("missing.toml", self.ctl(spool, "submit", missing, expect=1).err)
        self.assertEqual(spool.incoming(), [])

    def test_submit_overrides_and_stdin(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 1}}})
        path = self.job_file(spool, "ov.toml", '["true"]', 'title = "Overridden"\n')
        job_id = self.submit(spool, path, "--id", "custom", "--pool", "gpu", "--priority", "7", "--hold")
        self.assertEqual(job_id, "custom")
        st = spool.wait_accepted("custom")
        self.assertEqual((st["state"], st["reason"], st["pool"], st["priority"], st["title"]),
                         ("queued", "held", "gpu", 7, "Overridden"))
        job = read_json(os.path.join(spool.job_dir("custom"), "job.json"))
        self.assertEqual((job["pool"], job["priority"], job["hold"]), ("gpu", 7, True))
        proc = self.ctl(spool, "submit", path, "--id", "custom", expect=1)
        self.assertIn("custom is taken", proc.err)
        self.ctl(spool, "submit", path, "--priority", "high", expect=2)
        # Standard input: JSON sniffed, id "stdin".
        proc = self.ctl(spool, "submit", "-", input=b'{"command": ["true"]}', expect=0)
        self.assertEqual(proc.out.strip(), "stdin")
        self.assertEqual(spool.wait_terminal("stdin")["state"], "succeeded")
        proc = self.ctl(spool, "submit", "-", "--id", "piped", input=b'command = ["true"]\n', expect=0)
        self.assertEqual(proc.out.strip(), "piped")
        self.assertTrue(os.path.exists(os.path.join(spool.job_dir("piped"), "job.toml")))

    # -- run and wait ------------------------------------------------------------

    def test_run_exit_codes(self):
        spool = self.make_spool()
        ok = self.job_file(spool, "ok.toml", '["sh", "-c", "sleep 0.5; echo fine"]')
        proc = self.ctl(spool, "run", ok, expect=0)
        self.assertIn("succeeded", proc.out)
        self.assertIn("running", proc.out, "a line per state change")
        script = "echo 40 working > $SPOOLD_PROGRESS_FILE; sleep 2; for i in $(seq 1 15); do echo err$i >&2; done; exit 3"
        fail = self.job_file(spool, "fail.toml", json.dumps(["sh", "-c", script]))
        proc = self.ctl(spool, "run", fail, expect=3)
        self.assertIn("failed (nonzero_exit)", proc.out)
        self.assertIn("40% working", proc.out, "progress is shown")
        self.assertIn("err15", proc.err)
        self.assertIn("err6", proc.err)
        self.assertNotIn("err5\n", proc.err, "only the last 10 lines of stderr")
        self.assertIn(os.path.join(spool.job_dir("fail"), "attempts", "1"), proc.err)
        slow = self.job_file(spool, "slow.toml", '["sleep", "30"]', 'timeout = "300ms"\n[kill]\ngrace = "1s"\n')
        proc = self.ctl(spool, "run", slow, expect=124)
        self.assertIn("failed (timeout)", proc.out)
        # Cancelled while run waits: 125.
        long_job = self.job_file(spool, "long.toml", '["sleep", "30"]', '[kill]\ngrace = "1s"\n')
        run = subprocess.Popen([spoolctl_bin(), "--root", spool.root, "run", long_job],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        try:
            spool.wait_state("long", "running")
            self.ctl(spool, "cancel", "long", expect=0)
            out, _ = run.communicate(timeout=CTL_TIMEOUT)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        self.assertEqual(run.returncode, 125, out)
        proc = self.ctl(spool, "run", ok, "--json", expect=0)
        lines = proc.out.strip().splitlines()
        self.assertEqual(json.loads(lines[-1])["state"], "succeeded")

    def test_wait_several_exits_with_the_worst(self):
        spool = self.make_spool(workers=4)
        spool.drop_job("w_ok", command=["true"])
        spool.drop_job("w_four", command=["sh", "-c", "exit 4"])
        spool.drop_job("w_five", command=["sh", "-c", "exit 5"])
        spool.drop_job("w_slow", command=["sleep", "30"], timeout="200ms", kill={"grace": "1s"})
        for job_id in ("w_ok", "w_four", "w_five", "w_slow"):
            spool.wait_accepted(job_id)
        self.ctl(spool, "wait", "w_ok", expect=0)
        self.ctl(spool, "wait", "w_ok", "w_four", "w_five", expect=4)
        self.ctl(spool, "wait", "w_five", "w_four", expect=5)
        self.ctl(spool, "wait", "w_four", "w_slow", "w_ok", expect=124)
        proc = self.ctl(spool, "wait", "w_ok", "nosuchjob", expect=1)
        self.assertIn("no job nosuchjob", proc.err)
        proc = self.ctl(spool, "wait", "w_ok", "w_four", "--json", expect=4)
        states = [json.loads(line)["state"] for line in proc.out.splitlines()]
        self.assertEqual(states, ["succeeded", "failed"])

    # -- reading -------------------------------------------------------------------

    def test_status_human_and_json(self):
        spool = self.make_spool()
        st = spool.run_job("st", command=["sh", "-c", "exit 2"], title="Status test")
        proc = self.ctl(spool, "status", "st", expect=0)
        self.assertIn("st: failed (nonzero_exit)", proc.out)
        self.assertIn("Status test", proc.out)
        self.assertIn("exit code  2", proc.out)
        self.assertEqual(self.json_out(self.ctl(spool, "status", "st", "--json", expect=0)), st)
        proc = self.ctl(spool, "status", "nope", expect=1)
        self.assertIn(f"no job nope in {spool.root}", proc.err)
        spool.drop("rej.toml", 'command = "true"\n')
        spool.wait_rejected("rej.toml")
        proc = self.ctl(spool, "status", "rej", expect=1)
        self.assertIn("rejected", proc.err)
        self.assertIn("invalid_field (command)", proc.err)

    def test_list_filters_json_and_fallback(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 1}}})
        spool.run_job("l_a", command=["true"], tags=["nightly"], title="A")
        spool.run_job("l_b", command=["false"], pool="gpu")
        spool.drop_job("l_c", command=["true"], hold=True)
        spool.wait_accepted("l_c")
        spool.wait_for(lambda: "l_c" in spool.index()["jobs"], what="index names l_c")
        proc = self.ctl(spool, "list", expect=0)
        self.assertTrue(proc.out.startswith("ID"), proc.out)
        for header in ("STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TITLE"):
            self.assertIn(header, proc.out.splitlines()[0])
        rows = self.json_out(self.ctl(spool, "list", "--json", expect=0))
        self.assertEqual([r["id"] for r in rows], ["l_a", "l_b", "l_c"])
        by_id = {r["id"]: r for r in rows}
        self.assertEqual((by_id["l_c"]["state"], by_id["l_c"]["reason"]), ("queued", "held"))

        def ids(*args):
            return [r["id"] for r in self.json_out(self.ctl(spool, "list", "--json", *args, expect=0))]
        self.assertEqual(ids("--state", "failed,queued"), ["l_b", "l_c"])
        self.assertEqual(ids("--pool", "gpu"), ["l_b"])
        self.assertEqual(ids("--tag", "nightly"), ["l_a"])
        self.assertEqual(ids("--since", "1h"), ["l_a", "l_b", "l_c"])
        self.assertEqual(ids("--owner", "nobody-at-all"), [])
        self.assertEqual(self.ctl(spool, "list", "-q", expect=0).out.split(), ["l_a", "l_b", "l_c"])
        self.ctl(spool, "list", "--state", "bogus", expect=2)
        self.ctl(spool, "list", "--since", "soon", expect=2)
        # Without a (readable) index.json, the job folders are scanned.
        spool.stop()
        with open(spool.path("index.json"), "w") as f:
            f.write("{torn")
        self.assertEqual(ids(), ["l_a", "l_b", "l_c"])
        os.unlink(spool.path("index.json"))
        self.assertEqual(ids("--state", "succeeded"), ["l_a"])

    def test_list_orders_by_creation_time_then_id(self):
        # Dropped in an order that is not the ids' order: list follows creation.
        spool = self.make_spool(workers=1)
        order = ["z_first", "m_second", "a_third", "y_tie", "x_tie"]
        for job_id in order:
            spool.run_job(job_id, command=["true"])
        spool.wait_for(lambda: all(spool.index()["jobs"].get(j, {}).get("state") == "succeeded"
                                   for j in order), what="index has all five ended")

        def listed():
            return [r["id"] for r in self.json_out(self.ctl(spool, "list", "--json", expect=0))]
        self.assertEqual(listed(), order)
        self.assertEqual(self.ctl(spool, "list", "-q", expect=0).out.split(), order)
        # Times as index.json gives them, one not in spoold's own shape (no
        # fraction): ordered as text, equal times by id.
        spool.stop()
        index = read_json(spool.path("index.json"))
        created = {"z_first": "2030-01-01T00:00:00.000Z", "m_second": "2020-01-01T00:00:00Z",
                   "a_third": "2025-06-01T00:00:00.000Z", "y_tie": "2025-06-01T00:00:00.000Z",
                   "x_tie": "2025-06-01T00:00:00.000Z"}
        for job_id, time in created.items():
            index["jobs"][job_id]["created"] = time
        with open(spool.path("index.json"), "w") as f:
            json.dump(index, f)
        self.assertEqual(listed(), ["m_second", "a_third", "x_tie", "y_tie", "z_first"])

    def test_list_reads_escaped_strings_of_the_index_as_they_were_written(self):
        # An ended job is listed from its index.json entry, where JSON escapes
        # its quotes, backslashes and control characters.
        spool = self.make_spool()
        title = 'say "hi" \\ back\tslash \u00fcn\u00efcode'
        tag = 'nightly "eu"'
        spool.run_job("esc", command=["true"], title=title, tags=[tag])
        spool.wait_for(lambda: spool.index()["jobs"].get("esc", {}).get("state") == "succeeded",
                       what="index has esc ended")
        raw = read_bytes(spool.path("index.json"))
        self.assertIn(b'say \\"hi\\"', raw, "index.json escapes the title's quotes")
        rows = self.json_out(self.ctl(spool, "list", "--json", expect=0))
        self.assertEqual([(r["id"], r["title"], r["tags"]) for r in rows], [("esc", title, [tag])])
        table = self.ctl(spool, "list", expect=0).out.splitlines()
        self.assertEqual(len(table), 2, table)
        self.assertTrue(table[1].startswith("esc "), table)
        self.assertTrue(table[1].endswith(title), table)
        self.assertEqual(self.ctl(spool, "list", "-q", "--tag", tag, expect=0).out, "esc\n")

    def test_logs_attempts_events_and_follow(self):
        spool = self.make_spool()
        script = 'echo "out $SPOOLD_ATTEMPT"; echo "err $SPOOLD_ATTEMPT" >&2; [ "$SPOOLD_ATTEMPT" = 2 ]'
        spool.run_job("lg", command=["sh", "-c", script], retry={"attempts": 1, "delay": "0"})
        self.assertEqual(self.ctl(spool, "logs", "lg", expect=0).out, "out 2\n")
        self.assertEqual(self.ctl(spool, "logs", "lg", "--stderr", expect=0).out, "err 2\n")
        self.assertEqual(self.ctl(spool, "logs", "lg", "--attempt", "1", expect=0).out, "out 1\n")
        self.ctl(spool, "logs", "lg", "--attempt", "9", expect=1)
        events = self.ctl(spool, "logs", "lg", "--events", expect=0).out
        self.assertIn("accepted", events)
        self.assertIn("[attempt 2]  attempt 2 exited with code 0", events)
        lines = self.ctl(spool, "logs", "lg", "--events", "--json", expect=0).out.splitlines()
        self.assertEqual([json.loads(x) for x in lines], spool.events("lg"))
        self.assertIn("no job nope", self.ctl(spool, "logs", "nope", expect=1).err)
        # --follow streams until the job ends, then exits with everything.
        follow_script = "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done"
        spool.drop_job("fl", command=["sh", "-c", follow_script])
        spool.wait_accepted("fl")
        proc = self.ctl(spool, "logs", "fl", "--follow", expect=0)
        self.assertEqual(proc.out, "".join(f"line{i}\n" for i in range(1, 6)))
        self.assertIn(spool.status("fl")["state"], ("succeeded",))
        proc = self.ctl(spool, "logs", "fl", "--events", "--follow", "--json", expect=0)
        self.assertEqual(json.loads(proc.out.splitlines()[-1])["event"], "succeeded")

    def test_pools(self):
        spool = self.make_spool(config={"pools": {"gpu": {"workers": 3, "queue_limit": 7}}})
        spool.wait_for(lambda: "gpu" in spool.index()["pools"], what="index lists gpu")
        pools = self.json_out(self.ctl(spool, "pools", "--json", expect=0))
        self.assertEqual(pools, spool.index()["pools"])
        proc = self.ctl(spool, "pools", expect=0)
        self.assertIn("gpu", proc.out)
        self.assertIn("WORKERS", proc.out)
        self.assertEqual(self.ctl(spool, "pools", "-q", expect=0).out.split(), ["default", "gpu"])
        # "jobs" is index.json's last member (SPEC.md section 7), so pools reads
        # the head alone: a broken entry after it does not matter.
        spool.stop()
        with open(spool.path("index.json"), "rb") as f:
            members = json.loads(f.read(), object_pairs_hook=lambda pairs: [k for k, _ in pairs])
        self.assertEqual(members[-1], "jobs")
        head = read_json(spool.path("index.json"))
        del head["jobs"]
        with open(spool.path("index.json"), "w") as f:
            f.write(json.dumps(head)[:-1] + ', "jobs": {"x": {"state": tor')
        self.assertEqual(self.json_out(self.ctl(spool, "pools", "--json", expect=0)), head["pools"])

    # -- validate ------------------------------------------------------------------------

    def test_validate_explain(self):
        spool = self.make_spool(start=False, config={
            "defaults": {"timeout": "2h"},
            "pools": {"gpu": {"workers": 1, "timeout": "30s"}}})
        gpu = self.job_file(spool, "g.toml", extra='pool = "gpu"\n[retry]\nattempts = 2\n')
        own = self.job_file(spool, "own.toml", extra='timeout = "5m"\n')
        plain = self.job_file(spool, "plain.toml")
        bad = self.job_file(spool, "bad.toml", extra="colour = 1\n")

        def explain(path):
            proc = self.ctl(None, "--config", spool.config_path, "validate", "--explain", "--json",
                            path, expect=0)
            out = self.json_out(proc)
            self.assertTrue(out["valid"])
            return out["effective"]
        e = explain(gpu)
        self.assertEqual((e["pool"], e["timeout"], e["timeout_from"]), ("gpu", "30s", "pool gpu"))
        self.assertEqual(e["retry"]["attempts"], 2)
        self.assertEqual(e["kill"], {"signal": "TERM", "grace": "10s"})
        self.assertEqual((explain(own)["timeout"], explain(own)["timeout_from"]), ("5m", "the job file"))
        self.assertEqual(explain(plain)["timeout"], "2h")
        proc = self.ctl(None, "--config", spool.config_path, "validate", plain, "--explain", expect=0)
        self.assertIn("plain.toml: valid", proc.out)
        self.assertIn("timeout", proc.out)
        proc = self.ctl(None, "--config", spool.config_path, "validate", plain, bad, expect=1)
        self.assertIn("unknown_field (colour)", proc.err)
        typo = self.job_file(spool, "typo.toml", extra="titel = \"x\"\n")
        proc = self.ctl(None, "--config", spool.config_path, "validate", typo, expect=1)
        self.assertIn("unknown_field (titel): unknown key 'titel'; did you mean 'title'?", proc.err)
        # Offline with no configuration and no spool: the pool is not checked.
        env = clean_env()
        if not os.path.exists("/etc/spoold/spoold.toml"):
            proc = self.ctl(None, "validate", "--explain", "--json", gpu, env=env, expect=0)
            self.assertFalse(self.json_out(proc)["effective"]["pool_checked"])
        proc = self.ctl(None, "--config", spool.config_path, "validate",
                        self.job_file(spool, "np.toml", extra='pool = "cpu"\n'), expect=1)
        self.assertIn("unknown_pool", proc.err)

    def test_validate_durations(self):
        # SPEC section 2: decimals in any unit, blanks, long unit names, rounded to the ms.
        spool = self.make_spool(start=False)
        ok = self.job_file(spool, "dec.toml", extra='timeout = "0.5h"\ndeadline = "1 hour 30 min"\n'
                                                    '[retry]\ndelay = 1.5\n[kill]\ngrace = "2.5s"\n')
        proc = self.ctl(None, "--config", spool.config_path, "validate", "--explain", "--json", ok,
                        expect=0)
        e = self.json_out(proc)["effective"]
        self.assertEqual((e["timeout"], e["deadline"], e["retry"]["delay"], e["kill"]["grace"]),
                         ("30m", "1h30m", "1s500ms", "2s500ms"))
        for value, reason in (('"1.5.5s"', "more than one decimal point"),
                              ('"-1s"', "cannot be negative"),
                              ('"5 s s"', "expected a number before each unit"),
                              ('"36501d"', "at most 100 years")):
            bad = self.job_file(spool, "bad.toml", extra=f"timeout = {value}\n")
            proc = self.ctl(None, "--config", spool.config_path, "validate", bad, expect=1)
            self.assertIn("invalid_field (timeout)", proc.err)
            self.assertIn(reason, proc.err)

    # -- bash completion --------------------------------------------------------------------

    def test_bash_completion(self):
        spool = self.make_spool()
        spool.run_job("comp_one", command=["true"])
        spool.wait_for(lambda: "comp_one" in spool.index()["jobs"], what="index names comp_one")
        script = os.path.join(source_dir(), "cli", "spoolctl.bash")
        bindir = tempfile.mkdtemp(dir=spool.base)
        os.symlink(spoolctl_bin(), os.path.join(bindir, "spoolctl"))

        def complete(*words):
            line = ["spoolctl", *words]
            program = (f'source "{script}"; COMP_WORDS=({" ".join(json.dumps(w) for w in line)}); '
                       f'COMP_CWORD={len(line) - 1}; _spoolctl; printf "%s\\n" "${{COMPREPLY[@]}}"')
            env = clean_env(PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
            proc = subprocess.run(["bash", "-c", program], capture_output=True, env=env,
                                  timeout=CTL_TIMEOUT)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return proc.stdout.decode().split()
        self.assertIn("submit", complete("su"))
        self.assertEqual(complete("--root", spool.root, "status", "comp"), ["comp_one"])
        self.assertEqual(complete("submit", "job.toml", "--ar"), ["--array"])
        self.assertEqual(complete("run", "--max"), ["--max-failed"])
        self.assertEqual(complete("submit", "--par"), ["--parallel"])
        self.assertEqual(complete("rerun", "--fa"), ["--failed"])
        self.assertEqual(complete("submit", "--array", ""), [], "no guess at indexes")
        self.assertIn("--follow", complete("logs", "--f"))
        self.assertEqual(complete("shutdown", "--st"), ["--stop-jobs"])
        self.assertEqual(complete("--root", spool.root, "pause", ""), ["default"])


if __name__ == "__main__":
    unittest.main()
