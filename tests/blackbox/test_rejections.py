"""Rejections (SPEC.md section 3): bad files go to rejected/ with an error file,
and the daemon survives every hostile input."""
import json
import os
import stat
import unittest

from harness import ERROR_FIELDS, SpoolTestMixin, job_toml, read_bytes, read_json

SECRET = "Zq7-SECRET-VALUE-41f9"
KNOWN_CODES = ("parse_error", "invalid_field", "unknown_field", "missing_field",
               "unknown_pool", "bad_id", "duplicate_id", "queue_full", "too_large",
               "not_regular_file", "unsupported_type", "not_permitted")


class RejectionsTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        self.valid_count = 0

    # -- helpers -----------------------------------------------------------
    def drop_and_check(self, spool, name, content, codes, field=None, line=None):
        """Drops a bad file and checks rejected/<name> and its error file."""
        if isinstance(codes, str):
            codes = (codes,)
        raw = content.encode() if isinstance(content, str) else content
        spool.drop(name, raw)
        err = spool.wait_rejected(name)
        self.check_error(err, name, codes, field, line)
        with open(os.path.join(os.fsencode(spool.path("rejected")), os.fsencode(name)),
                  "rb") as f:
            self.assertEqual(f.read(), raw, "the rejected file is kept unchanged")
        self.assertNotIn(os.fsencode(name), spool.incoming())
        return err

    def check_error(self, err, name, codes, field=None, line=None):
        missing = [k for k in ERROR_FIELDS if k not in err]
        self.assertEqual(missing, [], f"error file lacks keys: {err}")
        self.assertIn(err["code"], codes, err)
        self.assertIn(err["code"], KNOWN_CODES)
        self.assert_time(err["time"], "error time")
        self.assertIsInstance(err["error"], str)
        self.assertTrue(err["error"], "the error names the problem")
        if isinstance(name, str):
            self.assertEqual(err["file"], name)
        if field is not None:
            self.assertEqual(err["field"], field, err)
        if line is not None:
            self.assertEqual(err["line"], line, err)
        for key in ("line", "column"):
            self.assertTrue(err[key] is None or isinstance(err[key], int), err)

    def still_accepts(self, spool):
        self.valid_count += 1
        self.assert_accepts_valid_job(spool, f"valid-{self.valid_count}")

    # -- codes ---------------------------------------------------------------
    def test_parse_error_toml(self):
        spool = self.make_spool()
        text = 'title = "x"\ncommand = ["true"]\nbroken = = 1\n'
        err = self.drop_and_check(spool, "p1.toml", text, "parse_error", line=3)
        self.drop_and_check(spool, "p2.toml", 'command = ["true"\n', "parse_error")
        # An empty file, or one of comments, is valid TOML without a command.
        self.drop_and_check(spool, "p3.toml", "", "missing_field", field="command")
        self.drop_and_check(spool, "p4.toml", "# to do\n\n", "missing_field", field="command")
        self.assertFalse(os.path.exists(spool.job_dir("p1")))
        self.assertIsInstance(err["line"], int)
        self.still_accepts(spool)

    def test_parse_error_json(self):
        spool = self.make_spool()
        self.drop_and_check(spool, "j1.json", '{"command": ["true"],}', "parse_error")
        self.drop_and_check(spool, "j2.json", '{"command": ["true"]', "parse_error")
        self.drop_and_check(spool, "j3.json", "", "parse_error")
        self.drop_and_check(spool, "j4.json", '["true"]', ("parse_error", "invalid_field"))
        self.drop_and_check(spool, "j5.json", b'{"command": ["\xff\xfe"]}',
                            ("parse_error", "invalid_field"))
        self.still_accepts(spool)

    def test_invalid_field_line(self):
        spool = self.make_spool()
        text = '# nightly\ncommand = ["true"]\n\n[retry]\nattempts = -3\n'
        err = self.drop_and_check(spool, "inv1.toml", text, "invalid_field",
                                  field="retry.attempts", line=5)
        self.assertEqual(err["column"], 12, err)
        self.assertIn("retry.attempts", err["error"])
        text = 'command = ["true"]\nretry.attempts = 101\n'
        self.drop_and_check(spool, "inv2.toml", text, "invalid_field",
                            field="retry.attempts", line=2)
        text = 'command = ["true"]\npriority = "high"\n'
        self.drop_and_check(spool, "inv3.toml", text, "invalid_field",
                            field="priority", line=2)
        self.drop_and_check(spool, "inv4.json",
                            '{"command": ["true"], "timeout": "soon"}',
                            "invalid_field", field="timeout")
        self.drop_and_check(spool, "inv5.toml", 'command = []\n', "invalid_field",
                            field="command")
        self.drop_and_check(spool, "inv6.toml", 'command = ["true"]\nscript = "true"\n',
                            ("invalid_field",))
        self.drop_and_check(spool, "inv7.toml", 'command = ["true"]\ncwd = "rel/dir"\n',
                            "invalid_field", field="cwd")
        self.still_accepts(spool)

    def test_nan_and_inf_are_invalid_values(self):
        # Valid TOML: each is refused as the value of its key, not as a parse error.
        spool = self.make_spool()
        for name, text, field, line in (
                ("nan1.toml", 'command = ["true"]\ntimeout = nan\n', "timeout", 2),
                ("nan2.toml", 'command = ["true"]\npriority = inf\n', "priority", 2),
                ("nan3.toml", 'command = ["true"]\n[retry]\nbackoff = -inf\n', "retry.backoff", 3),
                ("nan4.toml", 'command = ["true"]\n[metadata]\nloss = [0.5, nan]\n', "metadata.loss[1]", 3)):
            err = self.drop_and_check(spool, name, text, "invalid_field", field=field, line=line)
            self.assertIn(field, err["error"])
        self.still_accepts(spool)

    def test_unknown_field(self):
        spool = self.make_spool()
        text = 'command = ["true"]\ncomand = ["true"]\n'
        self.drop_and_check(spool, "u1.toml", text, "unknown_field", field="comand", line=2)
        text = 'command = ["true"]\n[retry]\nattempt = 2\n'
        self.drop_and_check(spool, "u2.toml", text, "unknown_field",
                            field="retry.attempt", line=3)
        self.drop_and_check(spool, "u3.json", '{"command": ["true"], "priorty": 1}',
                            "unknown_field", field="priorty")
        self.still_accepts(spool)

    def test_misspelt_key(self):
        # Reported as the typo it is, not as the missing command it leads to.
        spool = self.make_spool()
        err = self.drop_and_check(spool, "t1.toml", 'comand = ["true"]\n', "unknown_field",
                                  field="comand", line=1)
        self.assertEqual(err["error"], "unknown key 'comand'; did you mean 'command'?", err)
        text = '{\n  "command": ["true"],\n  "retry": {"max-delay": 5}\n}'
        err = self.drop_and_check(spool, "t2.json", text, "unknown_field",
                                  field="retry.max-delay", line=3)
        self.assertEqual(err["error"],
                         "unknown key 'retry.max-delay'; did you mean 'retry.max_delay'?", err)
        # Before any other error, and without a suggestion when no key is close.
        err = self.drop_and_check(spool, "t3.toml", 'command = []\ncolour = "' + SECRET + '"\n',
                                  "unknown_field", field="colour", line=2)
        self.assertNotIn("did you mean", err["error"])
        self.assertNotIn(SECRET, json.dumps(err))
        self.still_accepts(spool)

    def test_missing_field(self):
        spool = self.make_spool()
        err = self.drop_and_check(spool, "m1.toml", 'title = "no command"\n',
                                  "missing_field")
        self.assertIn("command", err["error"] + str(err["field"]))
        self.drop_and_check(spool, "m2.json", "{}", "missing_field")
        self.still_accepts(spool)

    def test_unknown_pool(self):
        spool = self.make_spool()
        text = 'command = ["true"]\npool = "nope"\n'
        self.drop_and_check(spool, "up.toml", text, "unknown_pool", field="pool", line=2)
        self.still_accepts(spool)

    def test_bad_id(self):
        spool = self.make_spool()
        for name in ("-bad.toml", "a" * 129 + ".toml", "bad id.toml", "_x.json",
                     "a+b.toml", "caf\u00e9.toml"):
            with self.subTest(name=name):
                self.drop_and_check(spool, name, job_toml(), "bad_id")
        # 128 characters is still a valid id.
        ok = "b" * 128
        spool.drop_job(ok)
        self.assertEqual(spool.wait_terminal(ok)["state"], "succeeded")
        self.still_accepts(spool)

    def test_invalid_utf8_name(self):
        spool = self.make_spool()
        name = b"\xff\xfe.toml"
        spool.drop(name, job_toml())
        path = os.path.join(os.fsencode(spool.path("rejected")), name + b".error.json")
        spool.wait_rejected(name)
        raw = read_bytes(path)
        err = json.loads(raw.decode("utf-8"))  # strict: must be valid UTF-8 JSON
        self.check_error(err, name, "bad_id")
        self.assertIsInstance(err["file"], str)
        self.assertTrue(os.path.exists(os.path.join(os.fsencode(spool.path("rejected")),
                                                    name)))
        spool.drop(b"ok\xc3(.json", b'{"command": ["true"]}')  # invalid UTF-8 too
        path = os.path.join(os.fsencode(spool.path("rejected")), b"ok\xc3(.json.error.json")
        raw = spool.wait_for(lambda: read_bytes(path), what="second error file")
        self.check_error(json.loads(raw.decode("utf-8")), None, "bad_id")
        self.still_accepts(spool)

    def test_long_name_error_file(self):
        # rejected/<name>.error.json would exceed 255 bytes: still one error file.
        spool = self.make_spool()
        name = "L" * 245 + ".toml"
        spool.drop(name, job_toml())
        spool.wait_for(lambda: os.fsencode(name) in spool.rejected(),
                       what="long name moved to rejected/")

        def error_files():
            return [n for n in spool.rejected() if n.endswith(b".error.json")]
        files = spool.wait_for(error_files, what="an error file for the long name")
        self.assertEqual(len(files), 1, files)
        with open(os.path.join(os.fsencode(spool.path("rejected")), files[0]), "rb") as f:
            err = json.loads(f.read())
        self.check_error(err, None, "bad_id")
        self.still_accepts(spool)

    def test_unsupported_type(self):
        spool = self.make_spool()
        for name in ("x.yaml", "noext", "z.toml.bak"):
            with self.subTest(name=name):
                self.drop_and_check(spool, name, job_toml(), "unsupported_type")
        self.still_accepts(spool)

    def test_too_large(self):
        spool = self.make_spool(config={"spool": {"max_job_file_size": 1024}})
        small = job_toml() + "# " + "x" * 900 + "\n"
        self.assertLess(len(small), 1024)
        spool.drop("fits.toml", small)
        self.assertEqual(spool.wait_terminal("fits")["state"], "succeeded")
        big = job_toml() + "# " + "x" * 1100 + "\n"
        self.drop_and_check(spool, "big.toml", big, "too_large")
        self.drop_and_check(spool, "big.json",
                            json.dumps({"command": ["true"], "description": "d" * 2000}),
                            "too_large")
        self.still_accepts(spool)

    def test_huge_file(self):
        spool = self.make_spool()  # default max_job_file_size is 1 MiB
        data = job_toml() + "".join(f"# filler line {i:08d} {'y' * 60}\n"
                                    for i in range(2 * 1024 * 1024 // 80))
        self.assertGreater(len(data), 2_000_000)
        self.drop_and_check(spool, "huge.toml", data, "too_large")
        self.still_accepts(spool)

    # -- not regular files ---------------------------------------------------
    def test_symlink(self):
        spool = self.make_spool()
        target = spool.path("tmp", "target.toml")
        with open(target, "w") as f:
            f.write(job_toml())
        os.symlink(target, spool.path("tmp", "link.toml"))
        os.rename(spool.path("tmp", "link.toml"), spool.path("incoming", "link.toml"))
        err = spool.wait_rejected("link.toml")
        self.check_error(err, "link.toml", "not_regular_file")
        kept = spool.path("rejected", "link.toml")
        self.assertTrue(stat.S_ISLNK(os.lstat(kept).st_mode), "the link itself is kept")
        self.assertFalse(os.path.exists(spool.job_dir("link")))
        with open(target) as f:
            self.assertEqual(f.read(), job_toml(), "the link's target is untouched")
        self.still_accepts(spool)

    def test_fifo(self):
        spool = self.make_spool()
        os.mkfifo(spool.path("tmp", "fifo.toml"))
        os.rename(spool.path("tmp", "fifo.toml"), spool.path("incoming", "fifo.toml"))
        # Nobody ever writes to the FIFO: a daemon that opens it blocking hangs here.
        self.still_accepts(spool)
        err = spool.wait_rejected("fifo.toml")
        self.check_error(err, "fifo.toml", "not_regular_file")
        self.assertTrue(stat.S_ISFIFO(os.lstat(spool.path("rejected", "fifo.toml")).st_mode))
        self.still_accepts(spool)

    def test_directory(self):
        spool = self.make_spool()
        os.mkdir(spool.path("tmp", "d.toml"))
        with open(spool.path("tmp", "d.toml", "inner.toml"), "w") as f:
            f.write(job_toml())
        os.rename(spool.path("tmp", "d.toml"), spool.path("incoming", "d.toml"))
        err = spool.wait_rejected("d.toml")
        self.check_error(err, "d.toml", "not_regular_file")
        kept = spool.path("rejected", "d.toml")
        self.assertTrue(os.path.isdir(kept))
        self.assertEqual(os.listdir(kept), ["inner.toml"], "nothing is deleted")
        self.still_accepts(spool)

    # -- hostile content -------------------------------------------------------
    def test_deep_json(self):
        spool = self.make_spool()
        depth = 100_000
        data = '{"command":' + "[" * depth + "]" * depth + "}"
        self.drop_and_check(spool, "deep.json", data, ("parse_error", "invalid_field"))
        data = '{"metadata":' + '{"a":' * depth + "1" + "}" * depth + ',"command":["true"]}'
        self.drop_and_check(spool, "deep2.json", data, ("parse_error", "invalid_field"))
        self.still_accepts(spool)

    def test_deep_toml(self):
        spool = self.make_spool()
        data = "a." * 200_000 + "a = 1\n"
        self.assertGreater(len(data), 400_000)
        err = self.drop_and_check(spool, "dotted.toml", data,
                                  ("parse_error", "unknown_field", "invalid_field"))
        size = os.path.getsize(spool.path("rejected", "dotted.toml.error.json"))
        self.assertLess(size, 64 * 1024, f"error file is bounded, got {size} bytes")
        data = 'command = ["true"]\nmetadata = ' + "[" * 100_000 + "]" * 100_000 + "\n"
        self.drop_and_check(spool, "arrays.toml", data, ("parse_error", "invalid_field"))
        data = 'command = ["true"]\nmetadata = ' + "{a=" * 50_000 + "1" + "}" * 50_000 + "\n"
        self.drop_and_check(spool, "inline.toml", data, ("parse_error", "invalid_field"))
        self.assertIsInstance(err["error"], str)
        self.still_accepts(spool)

    def test_binary_garbage(self):
        spool = self.make_spool()
        garbage = bytes(range(256)) * 64
        self.drop_and_check(spool, "bin.toml", garbage, "parse_error")
        self.drop_and_check(spool, "bin.json", garbage, "parse_error")
        self.drop_and_check(spool, "nul.toml", b'command = ["tr\x00ue"]\n',
                            ("parse_error", "invalid_field"))
        self.still_accepts(spool)

    # -- what errors say -------------------------------------------------------
    def test_error_never_quotes_content(self):
        spool = self.make_spool()
        cases = [
            ("s1.toml", f'command = ["true"]\nretry.delay = "{SECRET}"\n', "invalid_field"),
            ("s2.toml", f'command = ["true"]\nkill.signal = "{SECRET}"\n', "invalid_field"),
            ("s3.toml", f'command = ["true"]\ntimeout = "{SECRET}"\n', "invalid_field"),
            ("s4.toml", f'command = ["true"]\ncwd = "{SECRET}"\n', "invalid_field"),
            ("s5.toml", f'command = ["true"]\npool = "{SECRET}"\n', "unknown_pool"),
            ("s6.toml", f'command = ["true"]\ntitle = "{SECRET}" x\n', "parse_error"),
            ("s7.toml", f'command = "{SECRET}"\n', "invalid_field"),
            ("s8.json", f'{{"command": ["true"], "title": "{SECRET}", }}', "parse_error"),
            ("s9.json", f'{{"command": ["true"], "priority": "{SECRET}"}}', "invalid_field"),
            ("s10.toml", f'command = ["true"]\nretry.attempts = "{SECRET}"\n', "invalid_field"),
        ]
        for name, text, code in cases:
            with self.subTest(name=name):
                self.drop_and_check(spool, name, text, code)
                path = spool.path("rejected", name + ".error.json")
                with open(path, "rb") as f:
                    raw = f.read()
                self.assertNotIn(SECRET.encode(), raw, f"{name}: {raw!r}")
        self.assertNotIn(SECRET, spool.log_text(), "nor does the daemon's log")
        self.still_accepts(spool)

    def test_start_repairs_what_a_crash_left_in_rejected(self):
        spool = self.make_spool()
        spool.stop()
        # A file moved here without its reason (how spoold before 1.1 could
        # leave one), and a reason whose file was never moved (a crash now).
        with open(spool.path("rejected", "old.toml"), "w") as f:
            f.write("command = 3\n")
        with open(spool.path("rejected", "gone.toml.error.json"), "w") as f:
            f.write('{"file": "gone.toml", "code": "invalid_field"}\n')
        # A file that was dropped as x.toml.error.json and refused, with its own
        # error file: a refused file, not an orphan, and kept.
        with open(spool.path("rejected", "x.toml.error.json"), "w") as f:
            f.write('{"file": "x.toml", "code": "invalid_field"}\n')
        with open(spool.path("rejected", "x.toml.error.json.error.json"), "w") as f:
            f.write('{"file": "x.toml.error.json", "code": "unsupported_type"}\n')
        spool.start()
        error = read_json(spool.path("rejected", "old.toml.error.json"))
        self.assertEqual((error["code"], error["field"], error["recovered"]), ("invalid_field", "command", True))
        self.assertFalse(os.path.exists(spool.path("rejected", "gone.toml.error.json")))
        self.assertTrue(os.path.exists(spool.path("rejected", "x.toml.error.json")))
        self.assertIn("removed 1 error files in rejected/ whose file was never moved there", spool.log_text())
        self.assertIn("wrote the missing error files of 1 rejected files", spool.log_text())

    def test_same_name_twice(self):
        spool = self.make_spool()
        first = 'command = ["true"\n'
        second = '{"not": "toml" at all\n'
        self.drop_and_check(spool, "twice.toml", first, "parse_error")
        spool.drop("twice.toml", second)
        err = spool.wait_rejected("twice.toml~2")
        self.check_error(err, None, "parse_error")
        with open(spool.path("rejected", "twice.toml"), "r") as f:
            self.assertEqual(f.read(), first)
        with open(spool.path("rejected", "twice.toml~2"), "r") as f:
            self.assertEqual(f.read(), second)
        self.assertEqual(spool.rejection("twice.toml")["code"], "parse_error")
        spool.drop("twice.toml", first)
        spool.wait_rejected("twice.toml~3")
        self.assertEqual(sorted(spool.rejected()),
                         [b"twice.toml", b"twice.toml.error.json", b"twice.toml~2",
                          b"twice.toml~2.error.json", b"twice.toml~3",
                          b"twice.toml~3.error.json"])
        self.still_accepts(spool)


if __name__ == "__main__":
    unittest.main()
