"""results.json (SPEC.md section 4): a valid STAC 1.0.0 Item of the results."""
import hashlib
import os
import subprocess
import unittest

from harness import SpoolTestMixin, parse_time, read_json, stac_validator


class ResultsTest(SpoolTestMixin, unittest.TestCase):

    def results(self, spool, job_id):
        path = os.path.join(spool.job_dir(job_id), "results.json")
        return spool.wait_for(lambda: read_json(path),
                              what=f"jobs/{job_id}/results.json")

    def validate(self, spool, job_id):
        path = os.path.join(spool.job_dir(job_id), "results.json")
        proc = subprocess.run(["/usr/bin/python3", stac_validator(), path],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0,
                         f"STAC validation failed:\n{proc.stdout}{proc.stderr}")

    def check_asset(self, spool, job_id, item, key, content, media_type):
        self.assertIn(key, item["assets"])
        asset = item["assets"][key]
        self.assertEqual(asset["roles"], ["data"], asset)
        self.assertEqual(asset["file:size"], len(content), asset)
        self.assertEqual(asset["file:checksum"],
                         "1220" + hashlib.sha256(content).hexdigest(), asset)
        if media_type is not None:
            self.assertEqual(asset["type"].split(";")[0].strip(), media_type, asset)
        self.assertFalse(os.path.isabs(asset["href"]), "href is relative")
        with open(os.path.join(spool.job_dir(job_id), asset["href"]), "rb") as f:
            self.assertEqual(f.read(), content, f"href {asset['href']} names the file")

    def test_results_item(self):
        spool = self.make_spool()
        script = ("mkdir -p sub\nprintf 'hello\\n' > a.txt\n"
                  "printf 'x,y\\n1,2\\n' > sub/b.csv\n: > empty.dat\n")
        st = spool.run_job("res", script=script, title="Results job")
        self.assertEqual(st["state"], "succeeded", st)
        item = self.results(spool, "res")
        self.validate(spool, "res")
        self.assertEqual(item["type"], "Feature")
        self.assertEqual(item["stac_version"], "1.0.0")
        self.assertEqual(item["id"], "res")
        self.assertIsNone(item["geometry"])
        props = item["properties"]
        self.assertEqual(props["spoold:state"], "succeeded")
        self.assertEqual(props["spoold:pool"], "default")
        self.assertEqual(props["title"], "Results job")
        final = spool.status("res")
        self.assertEqual(parse_time(props["datetime"]), parse_time(final["finished"]),
                         "properties.datetime is the finish time")
        self.assertEqual(set(item["assets"]), {"a.txt", "sub/b.csv", "empty.dat"})
        self.check_asset(spool, "res", item, "a.txt", b"hello\n", "text/plain")
        self.check_asset(spool, "res", item, "sub/b.csv", b"x,y\n1,2\n", "text/csv")
        self.check_asset(spool, "res", item, "empty.dat", b"", None)
        self.assertEqual(item["assets"]["a.txt"]["href"], "results/a.txt")
        self.assertEqual(item["assets"]["sub/b.csv"]["href"], "results/sub/b.csv")

    def test_failed_job_has_results(self):
        spool = self.make_spool()
        st = spool.run_job("bad", script="printf 'partial' > out.txt\nexit 2\n")
        self.assertEqual(st["state"], "failed", st)
        item = self.results(spool, "bad")
        self.validate(spool, "bad")
        self.assertEqual(item["properties"]["spoold:state"], "failed")
        self.check_asset(spool, "bad", item, "out.txt", b"partial", "text/plain")

    def test_no_results(self):
        spool = self.make_spool()
        st = spool.run_job("none", command=["true"])
        self.assertEqual(st["state"], "succeeded", st)
        item = self.results(spool, "none")
        self.validate(spool, "none")
        self.assertEqual(item["assets"], {})

    def test_results_not_following_symlinks(self):
        # A link out of results/ must not turn a secret file into an asset.
        # The secret is readable by the job's user: only not following the
        # link keeps it out (an unreadable target would be skipped anyway).
        spool = self.make_spool()
        secret = os.path.join(spool.base, "secret.txt")
        with open(secret, "w") as f:
            f.write("s3cret")
        st = spool.run_job("links", script=f'ln -s "{secret}" leak\nprintf x > real.txt\n')
        self.assertEqual(st["state"], "succeeded", st)
        item = self.results(spool, "links")
        self.validate(spool, "links")
        self.assertEqual(set(item["assets"]), {"real.txt"})


if __name__ == "__main__":
    unittest.main()
