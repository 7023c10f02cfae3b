"""The systemd unit, tmpfiles.d, sysusers.d and the Debian package (issue 5):
the unit verifies and its exposure stays at or below 2.0; the package holds
what make install puts in place and its maintainer scripts work."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import cannot_run, source_dir, spoold_bin

UNIT = os.path.join(source_dir(), "systemd", "spoold.service")


def run(*argv, **kwargs):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, **kwargs)


class PackagingTest(unittest.TestCase):

    def tmpdir(self):
        path = tempfile.mkdtemp(prefix="spoold-pkg-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def require(self, program):
        if shutil.which(program) is None:
            cannot_run(self, f"{program} is not installed")

    def test_unit_verifies(self):
        self.require("systemd-analyze")
        # verify checks that ExecStart exists: point it at the built binary.
        folder = self.tmpdir()
        with open(UNIT) as f:
            text = f.read().replace("/usr/sbin/spoold", spoold_bin())
        unit = os.path.join(folder, "spoold.service")
        with open(unit, "w") as f:
            f.write(text)
        result = run("systemd-analyze", "verify", unit)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertNotIn("spoold.service:", result.stdout + result.stderr)

    def test_unit_is_a_notify_service_with_reload_whose_jobs_outlive_it(self):
        with open(UNIT) as f:
            keys = dict(re.findall(r"^(\w+)=(.*)$", f.read(), re.M))
        self.assertEqual(keys["Type"], "notify")
        self.assertIn("-HUP", keys["ExecReload"])
        self.assertEqual(keys["Restart"], "on-failure")
        # Stop and restart signal spoold alone; jobs stay for the next start
        # (test_systemd_box checks it under systemd). Nothing of one run of the
        # service may be deleted from under them when it stops: PrivateTmp's
        # folder and RemoveIPC's objects are.
        self.assertEqual(keys["KillMode"], "process")
        self.assertNotEqual(keys.get("PrivateTmp", "no"), "yes")
        self.assertNotEqual(keys.get("RemoveIPC", "no"), "yes")
        self.assertRegex(keys["TemporaryFileSystem"], r"(^| )/tmp:")
        # spoold exits within a second of SIGTERM and SIGKILL would reach it
        # alone: a short timeout.
        self.assertLessEqual(int(keys["TimeoutStopSec"]), 30)

    def test_exposure_at_most_two(self):
        self.require("systemd-analyze")
        result = run("systemd-analyze", "security", "--offline=true", UNIT)
        match = re.search(r"Overall exposure level for spoold.service: ([0-9.]+)", result.stdout)
        self.assertIsNotNone(match, result.stdout + result.stderr)
        self.assertLessEqual(float(match.group(1)), 2.0, result.stdout)

    def test_sysusers_and_tmpfiles_create_user_and_folders(self):
        self.require("systemd-sysusers")
        if os.geteuid() != 0:
            self.skipTest("SKIP: needs root to create files owned by the new user")
        root = self.tmpdir()
        os.makedirs(os.path.join(root, "etc"))
        result = run("systemd-sysusers", f"--root={root}",
                     os.path.join(source_dir(), "systemd", "spoold.sysusers"))
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(root, "etc", "passwd")) as f:
            passwd = f.read()
        match = re.search(r"^spoold:x:(\d+):(\d+):[^:]*:/var/spool/spoold:", passwd, re.M)
        self.assertIsNotNone(match, passwd)
        result = run("systemd-tmpfiles", "--create", f"--root={root}",
                     os.path.join(source_dir(), "systemd", "spoold.tmpfiles"))
        self.assertEqual(result.returncode, 0, result.stderr)
        for sub in ("", "tmp", "incoming", "control", "rejected", "jobs"):
            st = os.stat(os.path.join(root, "var/spool/spoold", sub))
            self.assertEqual(st.st_uid, int(match.group(1)), sub)
            self.assertEqual(st.st_mode & 0o777, 0o750, sub)

    def build_package(self):
        self.require("cpack")
        self.require("dpkg-deb")
        out = self.tmpdir()
        build = os.environ["SPOOLD_BUILD_DIR"]
        result = run("cpack", "-G", "DEB", "-B", out, cwd=build)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, os.listdir(out))
        return os.path.join(out, debs[0])

    def test_package_contents_and_scripts(self):
        deb = self.build_package()
        listing = run("dpkg-deb", "-c", deb).stdout
        for path in ("./usr/sbin/spoold", "./usr/libexec/spoold/spoold-exec",
                     "./usr/lib/systemd/system/spoold.service",
                     "./usr/lib/tmpfiles.d/spoold.conf", "./usr/lib/sysusers.d/spoold.conf",
                     "./etc/spoold/spoold.toml", "./usr/share/doc/spoold/README.md",
                     "./usr/share/doc/spoold/spoold-multiuser.conf"):
            self.assertRegex(listing, r"\s" + re.escape(path) + r"\n", path)
        info = run("dpkg-deb", "-I", deb).stdout
        for script in ("postinst", "prerm", "postrm", "conffiles"):
            self.assertIn(script, info)
        # libcrypto computes the checksums, /etc/mime.types gives the media types,
        # simdjson reads index.json for spoolctl.
        depends = re.search(r"^ Depends: (.*)$", info, re.M)
        self.assertIsNotNone(depends, info)
        for package in ("libssl3", "media-types", "libsimdjson14"):
            self.assertRegex(depends.group(1), r"(^|, )" + re.escape(package) + r"( |,|$)", package)
        control = self.tmpdir()
        self.assertEqual(run("dpkg-deb", "-e", deb, control).returncode, 0)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertIn("/etc/spoold/spoold.toml", f.read())
        for script in ("postinst", "prerm", "postrm"):
            self.assertEqual(run("sh", "-n", os.path.join(control, script)).returncode, 0, script)

    def test_package_installs_and_purges(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP: dpkg -i needs root")
        if run("dpkg-query", "-W", "spoold").returncode == 0:
            cannot_run(self, "a spoold package is installed on this machine; not touching it "
                             "(dpkg --purge spoold to let this test run)")
        deb = self.build_package()
        self.addCleanup(run, "dpkg", "--purge", "spoold")
        result = run("dpkg", "-i", deb)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertTrue(os.access("/usr/sbin/spoold", os.X_OK))
        self.assertEqual(run("getent", "passwd", "spoold").returncode, 0, "postinst created the user")
        self.assertTrue(os.path.isdir("/var/spool/spoold/incoming"), "postinst created the spool")
        check = run("/usr/sbin/spoold", "--config", "/etc/spoold/spoold.toml", "--check")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("exec helper /usr/sbin/../libexec/spoold/spoold-exec", check.stdout,
                      "the installed spoold finds its installed helper")
        result = run("dpkg", "--purge", "spoold")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertFalse(os.path.exists("/usr/sbin/spoold"))
        self.assertFalse(os.path.exists("/etc/spoold/spoold.toml"))


if __name__ == "__main__":
    unittest.main()
