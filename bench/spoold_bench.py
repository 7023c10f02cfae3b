#!/usr/bin/env python3
"""spoold_bench.py - spoold beside Task Spooler, nq, GNU parallel and a durable floor, in one run,
on this machine; prints ONE markdown table (median [min-max] over interleaved
rounds) and writes every sample to a JSON file.  Python 3 stdlib + three small C
helpers (stamp.c, spool_submit.c, and floor.c) compiled with cc into a temporary folder.
This file runs the phases; config.py reads the settings below, systems.py drives
the systems under test, measure.py measures, report.py renders the table.

    make bench                      # or: python3 bench/spoold_bench.py
    python3 bench/spoold_bench.py --table bench/results/last.json   # reprint
    SPOOLD=build-bench/spoold BENCH_NS="2000 20000" BENCH_ROUNDS="3 1" make bench

What is measured (details and method: bench/README.md):
  throughput   N jobs running `true`, 2 workers/slots; from the first drop (the
               client command for tsp/nq/parallel) to the last terminal status
  latency      drop-to-start on an idle daemon: the job (`stamp`) writes its own
               start clock; t0 = just before the submitting client process starts
  history      spoold throughput with 100,000 terminal jobs in jobs/, against an
               empty spool, interleaved
  restart      spoold start to READY=1 (sd_notify) with 100,000 jobs, and empty
  RSS          VmHWM of the daemon: idle (empty), with 100,000 jobs, during runs
  idle         CPU time and wake-ups (context switches of all threads) per minute

Environment (defaults in brackets):
  SPOOLD               spoold binary [build-bench/spoold, else build/spoold]
  BENCH_PEERS          systems ["spoold floor tsp nq parallel"]; missing ones are
                       listed. floor (floor.c) is the durable floor: spoold's
                       protocol, syncs and exec helper, and nothing else
  BENCH_NS             throughput sizes ["2000 20000"]
  BENCH_ROUNDS         interleaved rounds per size ["3 1"]
  BENCH_SKIP           system@N pairs not run ["nq@20000 parallel@20000"]
  BENCH_RUN_TIMEOUT    seconds from the first drop before a throughput run is cut
                       [600: runs go to the end] (at least 10 s after the last
                       drop); a cut run reports done/elapsed and is marked "cut"
  BENCH_LAT_ROUNDS     latency rounds [3]      BENCH_LAT_PROBES  probes/round [40]
  BENCH_HISTORY        terminal jobs in the history spool [100000]
  BENCH_HISTORY_N      jobs per history/empty throughput run [1000]
  BENCH_HISTORY_ROUNDS rounds of (empty, history) [5]
  BENCH_RESTARTS       restarts timed per spool [3]
  BENCH_IDLE_S         idle window in seconds, scaled to a minute [20]
  BENCH_WORK           scratch folder [/var/tmp/spoold-bench]; the generated
                       history is kept there and reused while its template matches
  BENCH_JSON           output file [bench/results/last.json]
  BENCH_FS             file systems the whole run is repeated on ["disk ext4 tmpfs"]:
                       disk = BENCH_WORK as it is; ext4 = a journaled ext4 on a
                       loop device and tmpfs, both made for the run under
                       BENCH_WORK and removed after (root only; filesystems.py)
  BENCH_FS_GIB         size of the ext4 image and the tmpfs limit [12]
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import config
import filesystems
from measure import idle_and_history, machine, rotate, run_latency, run_throughput
from report import table
from systems import Floor, Nq, Parallel, Spoold, Tsp, build_helpers, find_spoold


def settings():
    c = config
    return {"peers": c.PEERS, "ns": c.NS, "rounds": c.ROUNDS, "skip": sorted(c.SKIP), "run_timeout_s": c.RUN_TIMEOUT,
            "lat_rounds": c.LAT_ROUNDS, "lat_probes": c.LAT_PROBES, "history": c.HISTORY, "history_n": c.HISTORY_N,
            "history_rounds": c.HISTORY_ROUNDS, "restarts": c.RESTARTS, "idle_s": c.IDLE_S, "slots": c.SLOTS,
            "fs": c.FS}


def runs_of(res):
    """The runs of a result file, one per file system (older files hold one)."""
    return res["runs"] if "runs" in res else [dict(res, fs="disk", fs_desc=res["machine"].get("work_fs", "?"))]


def reprint(path):
    """--table FILE: print the tables again from an earlier run's JSON."""
    with open(path) as f:
        res = json.load(f)
    c = res["config"]
    config.PEERS, config.NS, config.ROUNDS, config.SKIP = c["peers"], c["ns"], c["rounds"], set(c["skip"])
    config.RUN_TIMEOUT, config.LAT_ROUNDS, config.LAT_PROBES = c["run_timeout_s"], c["lat_rounds"], c["lat_probes"]
    config.HISTORY, config.HISTORY_N, config.IDLE_S = c["history"], c["history_n"], c["idle_s"]
    print_tables(res)


def print_tables(res):
    m = res["machine"]
    print(f"\nspoold bench: {m.get('cpu')} ×{m['nproc']}, {m.get('mem_gib')} GiB, kernel {m['kernel']}; load avg at "
          f"start {' '.join(m.get('loadavg_at_start', []))}, at end {' '.join(m.get('loadavg_at_end', []))}; "
          f"{config.SLOTS} workers/slots; {res.get('elapsed_s', 0):.0f} s")
    for run in runs_of(res):
        print(f"\n### {run['fs']}: {run['fs_desc']}\n")
        if run.get("skipped"):
            print(f"not run: {run['skipped']}")
            continue
        print(table(dict(run, available=res["available"])))
    print()
    for p in config.PEERS:
        if res["available"].get(p):
            print(f"- {p}: {res['available'][p]}")
        else:
            print(f"- {res['notes'][p]}")
    print(f"- median [min–max] over interleaved rounds (×k = rounds); every sample: {config.OUT_JSON}")
    print(f"- latency: {config.LAT_ROUNDS} rounds × {config.LAT_PROBES} probes per system, p50/p99 per round; "
          f"t0 = just before the submitting client process starts (spoold: spool_submit, tmp + rename)")
    sys.stdout.flush()


def make_systems(work, bindir, submit_bin):
    """Every system, working under `work`, by name."""
    spoold_bin = find_spoold()
    return {"spoold": Spoold(spoold_bin, submit_bin, work),
            "floor": Floor(os.path.join(bindir, "floor"), spoold_bin, submit_bin, work),
            "tsp": Tsp(), "nq": Nq(), "parallel": Parallel()}


def run_on(work, bindir, stamp, submit_bin, active_names):
    """Every phase, on the file system that holds `work`; returns the run."""
    config.WORK = work
    systems_all = make_systems(work, bindir, submit_bin)
    active = [systems_all[p] for p in active_names]
    run = {"throughput": [], "latency": []}
    try:
        # 1. throughput, interleaved
        for n, rounds in zip(config.NS, config.ROUNDS):
            for r in range(rounds):
                for s in rotate(active, r):
                    if f"{s.name}@{n}" in config.SKIP:
                        continue
                    run_throughput(s, n, work, run["throughput"])
        # 2. latency, all systems idle side by side
        run_latency(active, stamp, work, run["latency"])
        spoold = systems_all["spoold"]
        if spoold in active:
            idle_and_history(spoold, systems_all["tsp"] if systems_all["tsp"] in active else None, run)
    finally:
        for s in active:
            if isinstance(s, Spoold) and s.proc:
                s.stop()
        for d in list(Tsp.servers):
            subprocess.run(["tsp", "-K"], env=dict(os.environ, TS_SOCKET=os.path.join(d, "sock")),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        Tsp.servers.clear()
    return run


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        return reprint(sys.argv[2])
    t_start = time.monotonic()
    base = config.WORK
    os.makedirs(base, exist_ok=True)
    lock = open(os.path.join(base, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"bench: another benchmark is running on {base}")
    bindir = tempfile.mkdtemp(prefix="bin-", dir=base)
    stamp, submit_bin = build_helpers(bindir)
    spoold_bin = find_spoold()
    probe = make_systems(base, bindir, submit_bin)
    res = {"machine": machine(), "config": dict(settings(), spoold=spoold_bin), "available": {}, "notes": {},
           "runs": []}
    active = []
    for p in config.PEERS:
        s = probe.get(p)
        why = "unknown system" if s is None else s.available()
        res["available"][p] = why
        if why:
            config.log(f"{p}: {why}")
        else:
            active.append(p)
            res["notes"][p] = s.note()
    config.log(f"systems: {active}; N={config.NS} rounds={config.ROUNDS}; file systems {config.FS}; work={base}")
    try:
        for kind in config.FS:
            why = filesystems.unavailable(kind)
            if why:
                config.log(f"{kind}: left out: {why}")
                res["runs"].append({"fs": kind, "fs_desc": "-", "skipped": why})
                continue
            with filesystems.mounted(kind, base) as work:
                desc = filesystems.describe(work)
                config.log(f"=== {kind}: {desc} ({work})")
                t0 = time.monotonic()
                run = {"fs": kind, "fs_desc": desc}
                run.update(run_on(work, bindir, stamp, submit_bin, active))
                run["elapsed_s"] = round(time.monotonic() - t0, 1)
                res["runs"].append(run)
    finally:
        config.WORK = base
        shutil.rmtree(bindir, ignore_errors=True)
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)
    with open("/proc/loadavg") as f:
        res["machine"]["loadavg_at_end"] = f.read().split()[:3]
    os.makedirs(os.path.dirname(config.OUT_JSON), exist_ok=True)
    with open(config.OUT_JSON, "w") as f:
        json.dump(res, f, indent=1)
    print_tables(res)
    config.log("deleting the scratch folders (the history spool on disk is kept for the next run)")
    shutil.rmtree(os.path.join(base, "trash"), ignore_errors=True)


if __name__ == "__main__":
    main()
