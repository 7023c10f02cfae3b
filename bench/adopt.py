#!/usr/bin/env python3
"""How long a restarted spoold takes to re-adopt N running attempts (SPEC.md
section 5): N jobs `sleep` under their supervisors, the daemon stopped (SIGTERM,
then SIGKILL), started again, and timed to READY=1 (adoption happens before it)
and until every job's history says `adopted`. Then the shutdown with
stop_jobs, which stops all N with their kill sequence, is timed too.

  SPOOLD=build-bench/spoold python3 bench/adopt.py      (make bench-adopt)

Environment: BENCH_ADOPT_N [1000], BENCH_ADOPT_ROUNDS [3], BENCH_WORK as in
spoold_bench.py. Prints one JSON line per measurement and a summary; medians
over the rounds.
"""
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import systems  # noqa: E402  (its Spoold class starts and times spoold)

N = int(os.environ.get("BENCH_ADOPT_N", "1000"))
ROUNDS = int(os.environ.get("BENCH_ADOPT_ROUNDS", "3"))


def adopted(root, jid):
    """How many `adopted` events job `jid` has."""
    try:
        with open(os.path.join(root, "jobs", jid, "events.jsonl")) as f:
            return sum(1 for line in f if '"event": "adopted"' in line or '"event":"adopted"' in line)
    except OSError:
        return 0


def states(root, ids):
    out = {}
    for jid in ids:
        try:
            with open(os.path.join(root, "jobs", jid, "status.json")) as f:
                s = json.load(f)["state"]
        except (OSError, ValueError, KeyError):
            s = "?"
        out[s] = out.get(s, 0) + 1
    return out


def wait_until(what, check, limit_s=600):
    systems.wait_until("adopt", what, check, limit_s)


def main():
    binary, work, submit_bin = systems.standalone_setup("adopt")
    config.SLOTS = N  # every job runs at once (Spoold.start writes it)
    results = {"n": N, "ready_after_sigterm_s": [], "ready_after_sigkill_s": [], "all_adopted_s": [],
               "sigterm_exit_s": [], "stop_with_jobs_s": []}
    for r in range(ROUNDS):
        d = tempfile.mkdtemp(prefix="adopt-", dir=work)
        sp = systems.Spoold(binary, submit_bin, work)
        sp.start(d)
        sp.submit(N, ["sleep", "3600"])
        ids = list(sp.submitted)
        wait_until(f"{N} jobs running", lambda: states(sp.root, ids).get("running", 0) == N)
        for how in ("sigterm", "sigkill"):
            t0 = time.monotonic()
            if how == "sigterm":
                exited = sp.stop()
                results["sigterm_exit_s"].append(exited)
            else:
                sp.proc.kill()
                sp.proc.wait()
                sp.logf.close()
            ready = sp.start(d, root=sp.root)
            sp.submitted = ids
            results[f"ready_after_{how}_s"].append(round(ready, 3))
            want = 1 if how == "sigterm" else 2
            wait_until("every job adopted", lambda: all(adopted(sp.root, j) >= want for j in ids))
            if how == "sigkill":
                results["all_adopted_s"].append(round(time.monotonic() - t0, 3))
            print(json.dumps({"round": r, "after": how, "ready_s": round(ready, 3),
                              "states": states(sp.root, ids)}), flush=True)
        t0 = time.monotonic()
        with open(os.path.join(sp.root, "tmp", "stop.toml"), "w") as f:
            f.write('action = "shutdown"\nstop_jobs = true\n')
        os.rename(os.path.join(sp.root, "tmp", "stop.toml"), os.path.join(sp.root, "control", "stop.toml"))
        sp.proc.wait(timeout=600)
        results["stop_with_jobs_s"].append(round(time.monotonic() - t0, 3))
        sp.logf.close()
        sp.proc = None
        print(json.dumps({"round": r, "states_after_stop": states(sp.root, ids)}), flush=True)
    summary = {k: (statistics.median(v) if isinstance(v, list) and v and None not in v else v)
               for k, v in results.items()}
    print(json.dumps({"runs": results, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
