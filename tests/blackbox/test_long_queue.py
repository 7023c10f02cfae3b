"""A long queue (issue 17, memory): past the first 64 queued jobs of a pool the
daemon keeps only the text each job was accepted from, and parses it again
when the job starts (spool/kept_spec.h). Whatever it keeps, every job must run
exactly its own definition: command, script, environment, format, hold, and
priority, also for jobs that were taken in again by a restarted daemon.
"""
import os
import unittest

from harness import SpoolTestMixin
from harness_sched import drop_control, wait_control_done

# More than the 64 jobs of a pool that keep their parsed spec, before and after
# the restart.
JOBS_BEFORE = 90
JOBS_AFTER = 90


def job_fields(n):
    """Job n writes its own number, from its argv and from its environment."""
    env = {"N": str(n)}
    if n % 5 == 0:
        return {"script": 'printf "%s %s" "$N" "script" > out.txt\n', "env": env}
    return {"command": ["sh", "-c", f'printf "%s %s" "$N" "{n}" > out.txt'], "env": env}


def expected(n):
    return f"{n} script" if n % 5 == 0 else f"{n} {n}"


class LongQueueTest(SpoolTestMixin, unittest.TestCase):

    def test_every_job_of_a_long_queue_runs_its_own_definition_across_a_restart(self):
        spool = self.make_spool(workers=1, config={"pools": {"default": {"paused": True}}})
        ids = []

        def drop(n):
            job_id = f"q{n:04d}"
            fmt = "json" if n % 2 else "toml"
            fields = job_fields(n)
            if n % 7 == 3:
                fields["hold"] = True
            if n % 11 == 4:
                fields["priority"] = 5
            spool.drop_job(job_id, fmt=fmt, **fields)
            ids.append(job_id)

        for n in range(JOBS_BEFORE):
            drop(n)
        for job_id in ids:
            spool.wait_accepted(job_id)
        # The restarted daemon takes all of them in again from their folders.
        spool.stop()
        spool.start()
        for n in range(JOBS_BEFORE, JOBS_BEFORE + JOBS_AFTER):
            drop(n)
        for job_id in ids:
            spool.wait_accepted(job_id)

        drop_control(spool, "resume", {"action": "resume", "pool": "default"})
        wait_control_done(spool, "resume.json")
        held = [f"q{n:04d}" for n in range(len(ids)) if n % 7 == 3]
        free = [job_id for job_id in ids if job_id not in held]
        for job_id in free:
            self.assertEqual(spool.wait_terminal(job_id, timeout=60)["state"], "succeeded", job_id)
        for job_id in held:
            st = spool.status(job_id)
            self.assertEqual((st["state"], st["reason"]), ("queued", "held"), job_id)
            drop_control(spool, f"start-{job_id}", {"action": "start", "job": job_id})
        for job_id in held:
            self.assertEqual(spool.wait_terminal(job_id, timeout=60)["state"], "succeeded", job_id)

        for n, job_id in enumerate(ids):
            with open(os.path.join(spool.job_dir(job_id), "results", "out.txt")) as f:
                self.assertEqual(f.read(), expected(n), job_id)
        # Priority 5 jobs (not held) ran before every priority 0 job of the queue.
        started = {job_id: spool.status(job_id)["started"] for job_id in free}
        high = [f"q{n:04d}" for n in range(len(ids)) if n % 11 == 4 and f"q{n:04d}" in started]
        low = [job_id for job_id in free if job_id not in high]
        self.assertLessEqual(max(started[j] for j in high), min(started[j] for j in low))


if __name__ == "__main__":
    unittest.main()
