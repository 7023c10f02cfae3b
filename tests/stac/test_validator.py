"""The offline STAC validator is a real check: the official examples pass, and
items broken in ways a results.json could be broken fail (ctest "stac: ...")."""
import copy
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
VALIDATOR = HERE / "validate_stac_item.py"


def run(doc):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        return subprocess.run([sys.executable, str(VALIDATOR), f.name],
                              capture_output=True, text=True, timeout=60)
    finally:
        pathlib.Path(f.name).unlink()


class StacValidatorTest(unittest.TestCase):
    def test_official_examples_pass(self):
        for name in ("simple-item.json", "core-item.json"):
            proc = subprocess.run([sys.executable, str(VALIDATOR), str(HERE / "examples" / name)],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertIn(": OK", proc.stdout)

    def test_broken_items_fail(self):
        good = {"type": "Feature", "stac_version": "1.0.0", "id": "job", "geometry": None,
                "properties": {"datetime": "2026-11-21T10:00:00Z"}, "links": [],
                "assets": {"out.txt": {"href": "results/out.txt", "roles": ["data"]}}}
        self.assertEqual(run(good).returncode, 0, run(good).stdout)
        broken = {
            "no assets": lambda d: d.pop("assets"),
            "asset without href": lambda d: d["assets"]["out.txt"].pop("href"),
            "datetime not UTC": lambda d: d["properties"].update(datetime="2026-11-21T10:00:00+02:00"),
            "datetime garbage": lambda d: d["properties"].update(datetime="garbageZ"),
            "stac_version 1.0": lambda d: d.update(stac_version="1.0"),
            "bbox with null geometry": lambda d: d.update(bbox=[0, 0, 1, 1]),
            "no id": lambda d: d.pop("id"),
        }
        for what, spoil in broken.items():
            with self.subTest(what):
                doc = copy.deepcopy(good)
                spoil(doc)
                proc = run(doc)
                self.assertEqual(proc.returncode, 1, f"{what}: {proc.stdout}{proc.stderr}")
                self.assertIn("INVALID", proc.stdout)


if __name__ == "__main__":
    unittest.main()
