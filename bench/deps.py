#!/usr/bin/env python3
"""What jobs waiting for others (`after`, SPEC.md section 5) cost the rest of
the spool, and how fast a parent's end decides them.

  SPOOLD=build-bench/spoold python3 bench/deps.py      (make bench-deps)

Rounds alternate two spools, each started fresh:
  empty    N jobs of `true` (2 workers), timed from the first drop to the last
           end, with the daemon's CPU time per job;
  waiting  the same N jobs, with W jobs accepted before them that wait for a
           parent not submitted yet (`after = ["gate"]`): what the scheduler's
           waiting jobs cost each start. Then the parent `gate` is dropped and
           fails, and the time from its drop until all W are cancelled
           (dependency_failed, one status write and event each) is taken.
           VmRSS is read just before the drop (rss_waiting_kb), VmHWM at the end.
Environment: BENCH_DEPS_N [2000], BENCH_DEPS_W [10000], BENCH_DEPS_ROUNDS [3],
BENCH_WORK as in spoold_bench.py. Prints one JSON line per run and the medians.
"""
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import measure  # noqa: E402
import systems  # noqa: E402

N = int(os.environ.get("BENCH_DEPS_N", "2000"))
W = int(os.environ.get("BENCH_DEPS_W", "10000"))
ROUNDS = int(os.environ.get("BENCH_DEPS_ROUNDS", "3"))


def drop(root, name, text):
    tmp = os.path.join(root, "tmp", "." + name)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(root, "incoming", name))


def index_active(root):
    try:
        with open(os.path.join(root, "index.active.json")) as f:
            return json.load(f).get("jobs", {})
    except (OSError, ValueError):
        return {}


def wait_until(what, check, limit_s=900):
    systems.wait_until("deps", what, check, limit_s)


def state_of(root, jid):
    try:
        with open(os.path.join(root, "jobs", jid, "status.json")) as f:
            return json.load(f).get("state")
    except (OSError, ValueError):
        return None


def run(binary, submit_bin, work, waiting):
    d = tempfile.mkdtemp(prefix="deps-", dir=work)
    sp = systems.Spoold(binary, submit_bin, work)
    sp.start(d)
    out = {"spool": "waiting" if waiting else "empty", "n": N}
    if waiting:
        t0 = time.monotonic()
        for i in range(W):
            drop(sp.root, f"w{i:06d}.toml", 'command = ["true"]\nafter = ["gate"]\n')
        wait_until(f"{W} waiting jobs accepted", lambda: len(index_active(sp.root)) >= W)
        out["w"] = W
        out["intake_w_s"] = round(time.monotonic() - t0, 3)
    measure.settle()
    cpu0 = systems.proc_cpu_s(sp.pid)
    t0 = time.monotonic()
    sp.submit(N, ["true"])
    sp.wait(t0 + 900)
    wall = time.monotonic() - t0
    cpu1 = systems.proc_cpu_s(sp.pid)
    out["jobs_per_s"] = round(N / wall, 1)
    out["daemon_cpu_ms_per_job"] = round((cpu1 - cpu0) * 1000 / N, 3)
    if waiting:
        # What the waiting jobs hold, before the cascade makes each whole.
        out["rss_waiting_kb"] = systems.proc_status_kb(sp.pid, "VmRSS")
        t0 = time.monotonic()
        drop(sp.root, "gate.toml", 'command = ["false"]\n')
        last = f"w{W - 1:06d}"
        wait_until("the cascade", lambda: state_of(sp.root, last) == "cancelled" and
                   state_of(sp.root, "w000000") == "cancelled")
        out["cascade_w_s"] = round(time.monotonic() - t0, 3)
    out["peak_rss_kb"] = sp.rss_kb()
    sp.stop()
    print(json.dumps(out), flush=True)
    return out


def main():
    binary, work, submit_bin = systems.standalone_setup("deps")
    print(json.dumps({"machine": measure.machine(), "spoold": binary}), flush=True)
    runs = {"empty": [], "waiting": []}
    for _ in range(ROUNDS):
        for waiting in (False, True):
            r = run(binary, submit_bin, work, waiting)
            runs[r["spool"]].append(r)
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0] if m not in ("spool",)}
           for k, v in runs.items()}
    med["ratio_jobs_per_s_waiting_over_empty"] = round(med["waiting"]["jobs_per_s"] / med["empty"]["jobs_per_s"], 3)
    print(json.dumps({"median": med}, indent=1))


if __name__ == "__main__":
    main()
