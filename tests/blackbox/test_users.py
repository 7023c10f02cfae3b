"""Jobs run as their submitter when spoold runs as root (SPEC.md section 5,
issue 5): two real users made with useradd; each test proves one promise of the
permission model with the real daemon."""
import grp
import json
import os
import pwd
import shutil
import subprocess
import unittest
import uuid

from harness import SpoolTestMixin, cannot_run, job_toml
from harness_ctl import spoolctl_bin


def sh(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


class UsersTest(SpoolTestMixin, unittest.TestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP: needs root (useradd, and spoold switching users)")
        if shutil.which("useradd") is None or shutil.which("runuser") is None:
            cannot_run(self, "useradd or runuser missing")

    def make_user(self, extra_group=None):
        name = "sp" + uuid.uuid4().hex[:10]
        argv = ["useradd", "--no-create-home", "--user-group", "--shell", "/bin/sh", "--home-dir", "/nonexistent"]
        if extra_group:
            argv += ["--groups", extra_group]
        result = sh(*argv, name)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.addCleanup(sh, "userdel", name)
        return pwd.getpwnam(name)

    def make_group(self):
        name = "spg" + uuid.uuid4().hex[:8]
        self.assertEqual(sh("groupadd", name).returncode, 0)
        self.addCleanup(sh, "groupdel", name)
        return grp.getgrnam(name)

    def spool_for_users(self):
        spool = self.make_spool(config={"security": {"allow_root": False}})
        # The temporary base folder must be traversable by the users' jobs.
        os.chmod(spool.base, 0o755)
        return spool

    def drop_as(self, spool, user, name, content, folder="incoming"):
        """Write the file as `user` would: owned by them, then renamed in."""
        tmp = spool.path("tmp", "." + name + ".part")
        with open(tmp, "w") as f:
            f.write(content)
        os.chown(tmp, user.pw_uid, user.pw_gid)
        os.rename(tmp, spool.path(folder, name))

    def as_user(self, user, *argv):
        return sh("runuser", "-u", user.pw_name, "--", *argv)

    def test_job_runs_as_its_owner_with_groups(self):
        team = self.make_group()
        alice = self.make_user(extra_group=team.gr_name)
        spool = self.spool_for_users()
        self.drop_as(spool, alice, "who.toml", job_toml(
            command=["sh", "-c", "id -u; id -g; id -G; echo $HOME $USER $LOGNAME $SHELL; echo r > result.txt"]))
        st = spool.wait_terminal("who")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["owner"], alice.pw_name)
        out = spool.attempt_log("who").split("\n")
        self.assertEqual(out[0], str(alice.pw_uid))
        self.assertEqual(out[1], str(alice.pw_gid))
        self.assertEqual(sorted(out[2].split()), sorted([str(alice.pw_gid), str(team.gr_gid)]))
        self.assertEqual(out[3], f"/nonexistent {alice.pw_name} {alice.pw_name} /bin/sh")
        job = spool.job_dir("who")
        self.assertEqual(os.stat(os.path.join(job, "results")).st_uid, alice.pw_uid)
        self.assertEqual(os.stat(os.path.join(job, "results", "result.txt")).st_uid, alice.pw_uid)
        # Readable by the owner, writable by nobody but root.
        for name in ("status.json", "events.jsonl", "attempts/1/stdout.log", "job.toml"):
            path = os.path.join(job, name)
            self.assertEqual(self.as_user(alice, "test", "-r", path).returncode, 0, name)
            self.assertNotEqual(self.as_user(alice, "test", "-w", path).returncode, 0, name)
        self.assertNotEqual(self.as_user(alice, "touch", os.path.join(job, "planted")).returncode, 0)

    def test_other_user_can_neither_read_nor_cancel(self):
        alice = self.make_user()
        bob = self.make_user()
        spool = self.spool_for_users()
        self.drop_as(spool, alice, "private.toml", job_toml(command=["sleep", "30"]))
        spool.wait_state("private", ("running",))
        status = os.path.join(spool.job_dir("private"), "status.json")
        self.assertEqual(self.as_user(alice, "cat", status).returncode, 0)
        self.assertNotEqual(self.as_user(bob, "cat", status).returncode, 0, "bob read alice's job")
        self.drop_as(spool, bob, "bob-cancels.json", '{"action": "cancel", "job": "private"}', folder="control")
        err = spool.wait_rejected("bob-cancels.json")
        self.assertEqual(err["code"], "not_permitted")
        self.assertEqual(spool.status("private")["state"], "running")
        self.drop_as(spool, bob, "bob-pauses.json", '{"action": "pause", "pool": "default"}', folder="control")
        self.assertEqual(spool.wait_rejected("bob-pauses.json")["code"], "not_permitted")
        self.drop_as(spool, alice, "alice-cancels.json", '{"action": "cancel", "job": "private"}',
                     folder="control")
        st = spool.wait_terminal("private")
        self.assertEqual(st["state"], "cancelled")

    def test_a_damaged_folder_another_user_cannot_read_is_listed_with_the_daemons_problem(self):
        # bob cannot read alice's status.json, so spoolctl cannot tell a
        # damaged folder of hers from one that is merely not his to read:
        # index.json's "damaged", written by the daemon, says which it is.
        alice = self.make_user()
        bob = self.make_user()
        spool = self.spool_for_users()
        self.drop_as(spool, alice, "hers.toml", job_toml(command=["true"]))
        self.drop_as(spool, alice, "fine.toml", job_toml(command=["true"]))
        spool.wait_terminal("hers")
        spool.wait_terminal("fine")
        spool.stop()
        status = os.path.join(spool.job_dir("hers"), "status.json")
        with open(status, "r+b") as f:
            f.truncate(20)
        spool.start()
        problem = spool.wait_for(lambda: spool.index()["damaged"].get("hers", {}).get("problem"),
                                 what="hers listed as damaged")
        self.assertNotEqual(self.as_user(bob, "cat", status).returncode, 0, "bob read alice's status.json")
        # A copy bob can run: the build folder may be in a folder only root can
        # enter (CI's clone is in a mktemp -d folder).
        ctl = os.path.join(spool.base, "spoolctl")
        shutil.copy(spoolctl_bin(), ctl)
        os.chmod(ctl, 0o755)
        out = self.as_user(bob, ctl, "--root", spool.root, "list", "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        listed = {job["id"]: job for job in json.loads(out.stdout)}
        self.assertEqual(listed.get("fine", {}).get("state"), "succeeded", listed)
        self.assertEqual(listed.get("hers", {}).get("state"), "damaged", listed)
        self.assertEqual(listed["hers"].get("problem"), problem)

    def test_root_owned_job_file_refused_by_default(self):
        spool = self.spool_for_users()
        spool.drop("rooted.toml", job_toml())
        err = spool.wait_rejected("rooted.toml")
        self.assertEqual(err["code"], "not_permitted")
        self.assertIn("allow_root", err["error"])
        self.assertFalse(os.path.exists(spool.job_dir("rooted")))

    def test_planted_links_are_refused(self):
        alice = self.make_user()
        spool = self.spool_for_users()
        # A hard link to alice's file, planted by someone else.
        original = os.path.join(spool.base, "alice-job.toml")
        with open(original, "w") as f:
            f.write(job_toml(command=["touch", "/tmp/never"]))
        os.chown(original, alice.pw_uid, alice.pw_gid)
        os.link(original, spool.path("incoming", "hard.toml"))
        os.symlink(original, spool.path("incoming", "soft.toml"))
        self.assertEqual(spool.wait_rejected("hard.toml")["code"],
                         "not_permitted")
        self.assertEqual(spool.wait_rejected("soft.toml")["code"],
                         "not_regular_file")
        self.assertFalse(os.path.exists(spool.job_dir("hard")))
        self.assertFalse(os.path.exists(spool.job_dir("soft")))

    def test_loader_variables_refused_when_switching_users(self):
        alice = self.make_user()
        spool = self.spool_for_users()
        self.drop_as(spool, alice, "preload.toml", job_toml(env={"LD_PRELOAD": "/tmp/evil.so"}))
        err = spool.wait_rejected("preload.toml")
        self.assertEqual(err["code"], "invalid_field")
        self.assertEqual(err["field"], "env.LD_PRELOAD")
        self.drop_as(spool, alice, "tunables.toml", job_toml(env={"GLIBC_TUNABLES": "x"}))
        self.assertEqual(spool.wait_rejected("tunables.toml")["field"], "env.GLIBC_TUNABLES")

    def test_drop_folders_are_sticky_and_unlistable(self):
        alice = self.make_user()
        spool = self.spool_for_users()
        for sub in ("incoming", "tmp", "control"):
            self.assertEqual(os.stat(spool.path(sub)).st_mode & 0o7777, 0o1733, sub)
        self.assertNotEqual(self.as_user(alice, "ls", spool.path("incoming")).returncode, 0)
        # Alice can submit by herself: write in tmp/, rename into incoming/.
        script = (f"printf 'command = [\"true\"]\\n' > {spool.path('tmp', 'mine.toml')} && "
                  f"mv {spool.path('tmp', 'mine.toml')} {spool.path('incoming', 'mine.toml')}")
        result = self.as_user(alice, "sh", "-c", script)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(spool.wait_terminal("mine")["state"], "succeeded")
        self.assertEqual(spool.status("mine")["owner"], alice.pw_name)


if __name__ == "__main__":
    unittest.main()
