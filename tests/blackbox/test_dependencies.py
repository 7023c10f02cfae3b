"""Dependencies between jobs (`after`, SPEC.md sections 2, 4 and 5), through the
real daemon: files in any order, a failure cascading down a chain, the grace for
parents never submitted, cycles refused, parents that ended first, restarts, a
daemon killed between a parent's end and its children's release, and spoolctl."""
import datetime
import json
import os
import subprocess
import unittest

from harness import SpoolTestMixin, cannot_run, parse_time, spoold_bin
from harness_ctl import SpoolctlMixin
from harness_sched import event_names

PARENT_SLEEP = "sleep 0.5"


def count(names, name):
    return sum(1 for n in names if n == name)


class DependenciesTest(SpoolctlMixin, SpoolTestMixin, unittest.TestCase):

    def test_child_dropped_first_waits_and_runs_after_its_parent(self):
        spool = self.make_spool()
        spool.drop_job("report", command=["sh", "-c", "cat ../../prep/results/out > out"], after=["prep"])
        st = spool.wait_accepted("report")
        spool.wait_for(lambda: spool.status("report")["message"] == "waiting for prep (not submitted yet)",
                       what="the child's message naming its missing parent")
        st = spool.status("report")
        self.assertEqual((st["state"], st["reason"]), ("queued", "dependency"), st)
        self.assertEqual(st["waiting_on"], ["prep"])
        self.assertEqual(st["after"], [{"job": "prep", "on": "success"}])
        spool.wait_for(lambda: spool.index().get("jobs", {}).get("report", {}).get("reason") == "dependency",
                       what="index.json showing the child waiting")

        spool.drop_job("prep", command=["sh", "-c", f"{PARENT_SLEEP}; echo made > out"])
        st = spool.wait_terminal("report")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(st["waiting_on"], [])
        parent = spool.status("prep")
        # The child started only once its parent had ended.
        self.assertGreaterEqual(st["attempts"][0]["started"], parent["finished"])
        names = event_names(spool, "report")
        self.assertEqual(names[:3], ["accepted", "dependencies_met", "started"], names)
        met = [e for e in spool.events("report") if e["event"] == "dependencies_met"][0]
        self.assertEqual((met["from"], met["state"], met["reason"]), ("queued", "queued", "in_queue"))
        self.assertIn("prep", met["message"])

    def test_a_failure_cancels_the_chain_at_once_and_runs_the_failure_handler(self):
        spool = self.make_spool(workers=2)
        spool.drop_job("build", command=["sh", "-c", f"{PARENT_SLEEP}; exit 3"])
        spool.drop_job("test", after=["build"])
        spool.drop_job("deploy", after=["test"])
        spool.drop_job("alert", fmt="json", after=[{"job": "build", "on": "failure"}])
        spool.drop_job("tidy", fmt="json", after=[{"job": "deploy", "on": "any"}])
        for job in ("test", "deploy", "alert", "tidy"):
            spool.wait_accepted(job)
        st = spool.wait_terminal("deploy")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertEqual(st["message"], "parent test ended cancelled (dependency_failed); after requires success "
                                        "(0 other parents still open)")
        st = spool.status("test")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertTrue(st["message"].startswith("parent build ended failed (nonzero_exit); after requires success"),
                        st["message"])
        self.assertEqual(st["attempts"], [], "a cancelled dependent never ran")
        self.assertEqual(spool.wait_terminal("alert")["state"], "succeeded")
        self.assertEqual(spool.wait_terminal("tidy")["state"], "succeeded")
        self.assertEqual(count(event_names(spool, "deploy"), "cancelled"), 1)

    def test_a_parent_that_fails_then_succeeds_on_retry_releases_its_child(self):
        spool = self.make_spool()
        flaky = ('test -e "$SPOOLD_RESULTS_DIR/tried" && exit 0; touch "$SPOOLD_RESULTS_DIR/tried"; exit 1')
        spool.drop_job("flaky", command=["sh", "-c", flaky], retry={"attempts": 1, "delay": "300ms"})
        spool.drop_job("after-flaky", after=["flaky"])
        spool.wait_event("flaky", "retry_scheduled")
        self.assertEqual(spool.status("after-flaky")["reason"], "dependency")
        st = spool.wait_terminal("after-flaky")
        self.assertEqual(st["state"], "succeeded", st)
        self.assertEqual(len(spool.status("flaky")["attempts"]), 2)

    def test_a_parent_never_submitted_ends_its_child_after_the_grace(self):
        spool = self.make_spool(config={"dependencies": {"missing_grace": "1s"}})
        spool.drop_job("orphan", after=["ghost"])
        st = spool.wait_terminal("orphan", timeout=15)
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_missing"), st)
        self.assertEqual(st["message"], "parent ghost was not submitted within dependencies.missing_grace (1s)")

    def test_a_parent_that_ended_before_its_child_decides_it_at_intake(self):
        spool = self.make_spool()
        self.assertEqual(spool.run_job("done")["state"], "succeeded")
        self.assertEqual(spool.run_job("broke", command=["false"])["state"], "failed")
        self.assertEqual(spool.run_job("ok", after=["done"])["state"], "succeeded")
        st = spool.run_job("not-ok", after=["done", "broke"])
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertTrue(st["message"].startswith("parent broke ended failed (nonzero_exit);"), st["message"])

    def test_cycles_are_refused_with_the_chain_named(self):
        spool = self.make_spool()
        spool.drop_job("self", after=["self"])
        spool.wait_rejected("self.toml")
        err = spool.rejection("self.toml")
        self.assertEqual((err["code"], err["field"]), ("dependency_cycle", "after[0]"), err)

        # Two files.
        spool.drop_job("x", after=["y"])
        spool.wait_accepted("x")
        spool.drop_job("y", fmt="json", after=[{"job": "x", "on": "any"}])
        spool.wait_rejected("y.json")
        err = spool.rejection("y.json")
        self.assertEqual((err["code"], err["field"]), ("dependency_cycle", "after"), err)
        self.assertEqual(err["error"], "after would close a cycle: this job waits on x, which waits on this job (y)")

        # Three files.
        spool.drop_job("a", after=["b"])
        spool.drop_job("c", after=["a"])
        spool.wait_accepted("c")
        spool.drop_job("b", after=["c"])
        spool.wait_rejected("b.toml")
        err = spool.rejection("b.toml")
        self.assertEqual(err["code"], "dependency_cycle", err)
        self.assertEqual(err["error"], "after would close a cycle: this job waits on c, which waits on a, "
                                         "which waits on this job (b)")
        self.assertEqual(spool.status("a")["reason"], "dependency")
        # b may still come, without the loop: a and c then run in order.
        os.unlink(spool.path("rejected", "b.toml"))
        os.unlink(spool.path("rejected", "b.toml.error.json"))
        spool.drop_job("b")
        self.assertEqual(spool.wait_terminal("c")["state"], "succeeded")
        self.assertLessEqual(spool.status("a")["finished"], spool.status("c")["attempts"][0]["started"])

    def test_a_list_over_max_after_is_refused(self):
        spool = self.make_spool(config={"dependencies": {"max_after": 2}})
        spool.drop_job("many", after=["x", "y", "z"])
        spool.wait_rejected("many.toml")
        err = spool.rejection("many.toml")
        self.assertEqual((err["code"], err["field"]), ("invalid_field", "after"), err)
        self.assertIn("dependencies.max_after", err["error"])

    def test_waiting_survives_a_restart(self):
        spool = self.make_spool()
        spool.drop_job("later", after=["first"])
        spool.wait_accepted("later")
        spool.stop()
        spool.start()
        st = spool.status("later")
        self.assertEqual((st["reason"], st["waiting_on"]), ("dependency", ["first"]), st)
        spool.drop_job("first")
        self.assertEqual(spool.wait_terminal("later")["state"], "succeeded")
        self.assertEqual(count(event_names(spool, "later"), "dependencies_met"), 1)

    def test_a_parent_that_ends_while_the_daemon_is_down(self):
        spool = self.make_spool()
        spool.drop_job("parent", command=["sh", "-c", "sleep 1; exit 4"])
        spool.drop_job("child", after=["parent"])
        spool.drop_job("handler", fmt="json", after=[{"job": "parent", "on": "failure"}])
        spool.wait_state("parent", ["running"])
        spool.wait_accepted("handler")
        spool.stop()  # the parent runs on under its supervisor and ends meanwhile
        spool.wait_for(lambda: os.path.exists(os.path.join(spool.job_dir("parent"), "attempts", "1",
                                                           "outcome.json")),
                       what="the parent's outcome while the daemon is down")
        spool.start()
        st = spool.wait_terminal("child")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertEqual(spool.wait_terminal("handler")["state"], "succeeded")

    def test_sigkill_between_a_parents_end_and_its_childrens_release(self):
        out = subprocess.run([spoold_bin(), "--version"], capture_output=True, text=True).stdout
        if "(failpoints)" not in out:
            cannot_run(self, "this spoold was built without -DSPOOLD_FAILPOINTS=ON")
        spool = self.make_spool(start=False, workers=1)
        # The first supervisor the daemon reaps is the parent's: it dies there,
        # with the parent's outcome on disk and nothing of it recorded.
        spool.env["SPOOLD_FAILPOINTS"] = "attempt.after_reap=kill"
        spool.start()
        spool.drop_job("parent", command=["sh", "-c", PARENT_SLEEP])
        children = {"c1": "success", "c2": "success", "c3": "any", "c4": "failure"}
        for child, on in children.items():
            spool.drop_job(child, fmt="json", after=[{"job": "parent", "on": on}])
        spool.proc.wait(timeout=30)
        self.assertEqual(spool.proc.returncode, -9, spool.log_tail())
        for child in children:
            self.assertEqual(spool.status(child)["reason"], "dependency", child)
        del spool.env["SPOOLD_FAILPOINTS"]
        spool.start()
        self.assertEqual(spool.wait_terminal("parent")["state"], "succeeded")
        for child, on in children.items():
            st = spool.wait_terminal(child)
            names = event_names(spool, child)
            if on == "failure":
                self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
                self.assertEqual(count(names, "cancelled"), 1, names)
                self.assertEqual(count(names, "started"), 0, names)
            else:
                self.assertEqual(st["state"], "succeeded", st)
                self.assertEqual(count(names, "dependencies_met"), 1, names)
                self.assertEqual(count(names, "started"), 1, names)
                self.assertEqual(len(st["attempts"]), 1, st)

    def test_parents_removed_by_retention_are_known_by_their_tombstones(self):
        spool = self.make_spool(config={"retention": {"finished": "1s"}})
        self.assertEqual(spool.run_job("made")["state"], "succeeded")
        broke = spool.run_job("broke", command=["false"])
        self.assertEqual(broke["state"], "failed")
        # A child that needs a living parent besides an ended one, across the removal.
        spool.drop_job("gate", command=["sh", "-c", "sleep 1"])
        spool.drop_job("waiter", after=["made", "gate"])
        spool.wait_accepted("waiter")
        spool.wait_for(lambda: spool.status("waiter")["waiting_on"] == ["gate"], what="made decided at intake")
        spool.stop()
        now = lambda: datetime.datetime.now(datetime.timezone.utc)
        spool.wait_for(lambda: (now() - parse_time(broke["finished"])).total_seconds() > 1.3,
                       what="retention passed", daemon_must_live=False)
        spool.start()
        spool.wait_for(lambda: not os.path.exists(spool.job_dir("made")) and
                       not os.path.exists(spool.job_dir("broke")), what="retention removed the parents")
        with open(spool.path(".tombstones")) as f:
            lines = sorted(json.loads(line)["id"] + ":" + json.loads(line)["state"] for line in f if line.strip())
        self.assertEqual(lines, ["broke:failed", "made:succeeded"])
        with open(spool.path(".tombstones")) as f:
            reasons = {json.loads(line)["id"]: json.loads(line)["reason"] for line in f if line.strip()}
        self.assertEqual(reasons, {"broke": "nonzero_exit", "made": None})
        self.assertEqual(spool.wait_terminal("waiter")["state"], "succeeded")
        # Children submitted after the removal are decided by the parents' real ends.
        self.assertEqual(spool.run_job("uses-made", after=["made"])["state"], "succeeded")
        st = spool.run_job("uses-broke", after=["broke"])
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertTrue(st["message"].startswith("parent broke ended failed (nonzero_exit);"), st["message"])
        st = spool.run_job("handles-broke", fmt="json", after=[{"job": "broke", "on": "failure"}])
        self.assertEqual(st["state"], "succeeded", st)
        # A new job under a removed id binds only children accepted after it.
        spool.drop_job("broke", command=["sh", "-c", "sleep 0.5"])
        spool.wait_accepted("broke")
        spool.drop_job("uses-new-broke", after=["broke"])
        self.assertEqual(spool.wait_terminal("uses-new-broke")["state"], "succeeded")
        self.assertEqual(spool.status("uses-broke")["state"], "cancelled", "an older child stays decided")
        # The tombstones outlive a restart.
        spool.stop()
        spool.start()
        self.assertEqual(spool.run_job("after-restart", after=["made"])["state"], "succeeded")

    def test_dependents_far_back_in_a_long_queue(self):
        # Past the 64 queued jobs a pool keeps parsed, a waiting job keeps only
        # its file's text and the part of its status the file does not hold
        # (daemon/sched_job.h); its decision and its start are the same.
        spool = self.make_spool(workers=1)
        for n in range(70):
            spool.drop_job(f"held{n:02d}", hold=True)
        for n in range(70):
            spool.wait_accepted(f"held{n:02d}")
        spool.drop_job("stops", after=["gate"])
        spool.drop_job("runs", fmt="json", after=[{"job": "gate", "on": "failure"}], title="handler")
        for job in ("stops", "runs"):
            spool.wait_accepted(job)
            spool.wait_for(lambda j=job: spool.status(j)["message"] == "waiting for gate (not submitted yet)",
                           what=f"{job} waiting")
        spool.drop_job("gate", command=["false"])
        st = spool.wait_terminal("stops")
        self.assertEqual((st["state"], st["reason"]), ("cancelled", "dependency_failed"), st)
        self.assertEqual(st["after"], [{"job": "gate", "on": "success"}])
        st = spool.wait_terminal("runs")
        self.assertEqual((st["state"], st["title"]), ("succeeded", "handler"), st)
        self.assertEqual(count(event_names(spool, "runs"), "dependencies_met"), 1)

    def test_spoolctl_list_tree(self):
        spool = self.make_spool(workers=1)
        spool.drop_job("root", command=["sleep", "30"])
        spool.wait_state("root", ["running"])
        spool.drop_job("mid", after=["root"])
        spool.drop_job("leaf", after=["mid", "root"])
        spool.drop_job("side", after=["root"])
        spool.drop_job("alone")
        for job in ("mid", "leaf", "side", "alone"):
            spool.wait_accepted(job)
        spool.wait_for(lambda: spool.index().get("jobs", {}).get("leaf", {}).get("after") == ["mid", "root"],
                       what="index.json listing leaf's parents")
        self.assertNotIn("after", spool.index()["jobs"]["alone"])
        out = self.ctl(spool, "list", "--tree", expect=0).out.splitlines()
        width = out[0].index("STATE")  # the ID column, drawn as a tree
        self.assertEqual([line[:width].rstrip() for line in out[1:]],
                         ["root", "|- mid", "|  `- leaf", "`- side", "alone"], out)
        listed = self.json_out(self.ctl(spool, "list", "--json", expect=0))
        self.assertEqual({j["id"]: j.get("after") for j in listed},
                         {"root": None, "mid": ["root"], "leaf": ["mid", "root"], "side": ["root"], "alone": None})
        spool.drop("c.json", '{"action": "cancel", "job": "root"}', folder="control")
        self.assertEqual(spool.wait_terminal("leaf")["reason"], "dependency_failed")

    def test_spoolctl_submit_after_and_status(self):
        spool = self.make_spool()
        path = self.job_file(spool, "step2.toml")
        proc = self.ctl(spool, "submit", path, "--after", "step1,step0", expect=0)
        job = proc.out.strip()
        spool.wait_accepted(job)
        spool.wait_for(lambda: "waiting for step1" in spool.status(job)["message"], what="the wait message")
        shown = self.ctl(spool, "status", job, expect=0).out
        self.assertIn("(dependency)", shown)
        self.assertIn("waiting on step1, step0", shown)
        bad = self.ctl(spool, "submit", path, "--after", "ok,../x")
        self.assertEqual(bad.returncode, 2, bad.err)  # a usage error
        self.assertIn("--after takes job ids", bad.err)
        refused = self.ctl(spool, "start", job)
        self.assertEqual(refused.returncode, 1, refused.out + refused.err)
        self.assertIn("waiting for its dependencies", refused.out + refused.err)
        spool.drop_job("step0")
        spool.drop_job("step1")
        self.assertEqual(spool.wait_terminal(job)["state"], "succeeded")


if __name__ == "__main__":
    unittest.main()
