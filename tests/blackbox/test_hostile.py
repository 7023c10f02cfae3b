"""A corpus of hostile names and contents (issue 6 item 6), walked against the
real daemon: each entry is dropped, and must end exactly as the table says:
accepted and run, rejected with the given code (the file unchanged in
rejected/, its error file valid JSON that quotes nothing of the content), or
left alone (names spoold never reads). The daemon must survive them all."""
import json
import os
import re
import unittest

from harness import SpoolTestMixin

VALID = b'command = ["true"]\n'
SECRET = b"S3CR3T-CONTENT"

# (file name, content, expected): expected is "run", "ignored" or an error code.
CORPUS = [
    # Names
    (b"\xff\xfe.toml", VALID, "bad_id"),
    (b"new\nline.toml", VALID, "bad_id"),
    (b"ctrl\x01char.toml", VALID, "bad_id"),
    (b"tab\there.json", b'{"command": ["true"]}', "bad_id"),
    (b"-dash.toml", VALID, "bad_id"),
    (b"L" * 250 + b".toml", VALID, "bad_id"),          # 255 bytes: an id over 128
    (b"M" * 128 + b".toml", VALID, "run"),             # the longest valid id
    (b"a..b.toml", VALID, "run"),                      # dots inside an id are fine
    (b"..hidden.toml", VALID, "ignored"),              # a dot name is never read
    (b"x.toml.part", VALID, "ignored"),
    (b"\xc3\xa9t\xc3\xa9.toml", VALID, "bad_id"),      # valid UTF-8, not an id character
    (b"noext", VALID, "unsupported_type"),
    # Contents
    (b"bom.toml", b"\xef\xbb\xbf" + VALID, "run"),
    (b"bomjson.json", b'\xef\xbb\xbf{"command": ["true"]}', "run"),
    (b"crlf.toml", b'title = "crlf"\r\ncommand = ["true"]\r\n', "run"),
    (b"nul.toml", b'command = ["true"]\n# ' + SECRET + b"\x00\n", "parse_error"),
    (b"badutf8.toml", b'command = ["true"]\ntitle = "' + SECRET + b'\xff\xfe"\n', "parse_error"),
    (b"badutf8.json", b'{"command": ["true"], "title": "' + SECRET + b'\xc3"}', "parse_error"),
    (b"jsonnul.json", b'{"command": ["tr\\u0000ue"], "title": "' + SECRET + b'"}', "invalid_field"),
    (b"accent_in_string.toml", 'title = "Café ∑ 漢字"\ncommand = ["true"]\n'.encode(), "run"),
    (b"accent_outside.toml", 'command = ["true"]\nt\u00e9 = 1\n'.encode(), "parse_error"),
    (b"ctrl_in_string.toml", b'command = ["true"]\ntitle = "a\x07' + SECRET + b'"\n', "parse_error"),
    (b"empty.toml", b"", "missing_field"),             # valid TOML without command
    (b"comments.toml", b"# nothing\n\n", "missing_field"),
    (b"empty.json", b"", "parse_error"),                # not JSON
    (b"only_bom.json", b"\xef\xbb\xbf", "parse_error"),
    (b"crlf_bad.toml", b'command = ["true"]\r\nretry.attempts = -3\r\n', "invalid_field"),
    (b"secret_value.toml", b'command = ["true"]\npool = "' + SECRET + b'"\n', "unknown_pool"),
    # A key is named in the error (that is the point of unknown_field); values never are.
    (b"secret_key.toml", b'command = ["true"]\nretyr = "' + SECRET + b'"\n', "unknown_field"),
]


class HostileTest(SpoolTestMixin, unittest.TestCase):

    def test_corpus(self):
        spool = self.make_spool()
        root = os.fsencode(spool.root)
        for name, content, _ in CORPUS:
            tmp = os.path.join(root, b"tmp", b".drop-" + os.urandom(4).hex().encode())
            with open(tmp, "wb") as f:
                f.write(content)
            os.rename(tmp, os.path.join(root, b"incoming", name))
        for name, content, expected in CORPUS:
            with self.subTest(name=name, expected=expected):
                self.check(spool, root, name, content, expected)
        # Still alive and still taking work after all of it.
        self.assertTrue(spool.alive())
        spool.drop_job("after")
        self.assertEqual(spool.wait_terminal("after")["state"], "succeeded")
        for name, _, expected in CORPUS:
            if expected == "ignored":
                self.assertIn(name, os.listdir(os.path.join(root, b"incoming")), name)

    def test_names_and_values_cannot_forge_log_lines(self):
        spool = self.make_spool()
        root = os.fsencode(spool.root)
        forged = b"2026-01-01T00:00:00.000Z critical FAKE"
        drops = [(b"control", b"x\n" + forged + b".json", b'{"action": "cancel", "job": "x\\n' + forged + b'"}'),
                 (b"control", b"esc\x1b[2J\xc2\x9b.json", b'{"action": "pause", "pool": "a\\u001b[2J"}'),
                 (b"incoming", b"y\r\n" + forged + b".toml", VALID),
                 (b"incoming", b"title.toml", b'command = ["true"]\ntitle = "t\\n' + forged + b'"\n')]
        for folder, name, content in drops:
            tmp = os.path.join(root, b"tmp", b".drop-" + os.urandom(4).hex().encode())
            with open(tmp, "wb") as f:
                f.write(content)
            os.rename(tmp, os.path.join(root, folder, name))
        for folder, name, _ in drops:
            spool.wait_for(lambda: name not in os.listdir(os.path.join(root, folder)),
                           what=f"{folder}/{name!r} taken")
        spool.wait_terminal("title")
        spool.stop()
        line_start = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warning|error|critical) "
                                r"|===== start #\d+ at |$)")
        with open(spool.log_path, "rb") as f:
            log = f.read()
        for line in log.split(b"\n"):
            text = line.decode("utf-8", "replace")
            self.assertRegex(text, line_start, "every line of the log is one the daemon wrote")
            self.assertNotRegex(text, r"^2026-01-01T00:00:00.000Z critical FAKE")
        self.assertNotIn(b"\x1b", log, "no terminal escape reaches the log")
        self.assertNotIn(b"\xc2\x9b", log, "no 8-bit CSI reaches the log")
        self.assertIn(b"x\\n2026-01-01T00:00:00.000Z critical FAKE", log.replace(b"\\x0a", b"\\n"),
                      "the name is in the log, escaped")

    def check(self, spool, root, name, content, expected):
        if expected == "run":
            stem = name.rsplit(b".", 1)[0].decode()
            st = spool.wait_terminal(stem)
            self.assertEqual(st["state"], "succeeded", st)
            job_file = [f for f in os.listdir(spool.job_dir(stem)) if f.startswith("job.")][0]
            with open(os.path.join(spool.job_dir(stem), job_file), "rb") as f:
                self.assertEqual(f.read(), content, "the job file is kept byte for byte")
            return
        if expected == "ignored":
            return
        rejected = os.path.join(root, b"rejected")
        shown = name.decode("utf-8", "replace")

        def find_error():
            # Found by what it says, not by its name: a name near 255 bytes gets a
            # shortened error file name.
            for entry in os.listdir(rejected):
                if entry.endswith(b".error.json"):
                    with open(os.path.join(rejected, entry), "rb") as f:
                        raw_bytes = f.read()
                    if json.loads(raw_bytes.decode("utf-8")).get("file") == shown:
                        return raw_bytes
            return None
        raw = spool.wait_for(lambda: os.path.lexists(os.path.join(rejected, name)) and find_error(),
                             what=f"error file for {name!r}")
        error = json.loads(raw.decode("utf-8"))  # valid UTF-8 JSON, whatever the name
        self.assertEqual(error["code"], expected, error)
        self.assertNotIn(SECRET, raw, "the error quotes the file's content")
        with open(os.path.join(rejected, name), "rb") as f:
            self.assertEqual(f.read(), content, "the rejected file is unchanged")


if __name__ == "__main__":
    unittest.main()
