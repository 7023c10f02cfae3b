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
  BENCH_SKIP           system@N pairs not run ["nq@20000"]
  BENCH_RUN_TIMEOUT    seconds from the first drop before a throughput run is cut
                       [30] (at least 10 s after the last drop); a cut run
                       reports done/elapsed and is marked "cut"
  BENCH_LAT_ROUNDS     latency rounds [3]      BENCH_LAT_PROBES  probes/round [40]
  BENCH_HISTORY        terminal jobs in the history spool [100000]
  BENCH_HISTORY_N      jobs per history/empty throughput run [1000]
  BENCH_HISTORY_ROUNDS rounds of (empty, history) [5]
  BENCH_RESTARTS       restarts timed per spool [3]
  BENCH_IDLE_S         idle window in seconds, scaled to a minute [20]
  BENCH_WORK           scratch folder [/var/tmp/spoold-bench]; the generated
                       history is kept there and reused while its template matches
  BENCH_JSON           output file [bench/results/last.json]
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
from measure import idle_and_history, machine, rotate, run_latency, run_throughput
from report import table
from systems import Floor, Nq, Parallel, Spoold, Tsp, build_helpers, find_spoold


def reprint(path):
    """--table FILE: print the table again from an earlier run's JSON."""
    with open(path) as f:
        res = json.load(f)
    c = res["config"]
    config.PEERS, config.NS, config.ROUNDS, config.SKIP = c["peers"], c["ns"], c["rounds"], set(c["skip"])
    config.RUN_TIMEOUT, config.LAT_ROUNDS, config.LAT_PROBES = c["run_timeout_s"], c["lat_rounds"], c["lat_probes"]
    config.HISTORY, config.HISTORY_N, config.IDLE_S = c["history"], c["history_n"], c["idle_s"]
    print(table(res))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        return reprint(sys.argv[2])
    t_start = time.monotonic()
    os.makedirs(config.WORK, exist_ok=True)
    lock = open(os.path.join(config.WORK, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"bench: another benchmark is running on {config.WORK}")
    bindir = tempfile.mkdtemp(prefix="bin-", dir=config.WORK)
    stamp, submit_bin = build_helpers(bindir)
    spoold_bin = find_spoold()
    systems_all = {"spoold": Spoold(spoold_bin, submit_bin, config.WORK),
                   "floor": Floor(os.path.join(bindir, "floor"), spoold_bin, submit_bin, config.WORK),
                   "tsp": Tsp(), "nq": Nq(), "parallel": Parallel()}
    c = config
    res = {"machine": machine(), "config": {
        "peers": c.PEERS, "ns": c.NS, "rounds": c.ROUNDS, "skip": sorted(c.SKIP), "run_timeout_s": c.RUN_TIMEOUT,
        "lat_rounds": c.LAT_ROUNDS, "lat_probes": c.LAT_PROBES, "history": c.HISTORY, "history_n": c.HISTORY_N,
        "history_rounds": c.HISTORY_ROUNDS, "restarts": c.RESTARTS, "idle_s": c.IDLE_S, "slots": c.SLOTS,
        "spoold": spoold_bin}, "available": {}, "notes": {}, "throughput": [], "latency": []}
    active = []
    for p in config.PEERS:
        s = systems_all.get(p)
        why = "unknown system" if s is None else s.available()
        res["available"][p] = why
        if why:
            config.log(f"{p}: {why}")
        else:
            active.append(s)
            res["notes"][p] = s.note()
    config.log(f"systems: {[s.name for s in active]}; N={config.NS} rounds={config.ROUNDS}; work={config.WORK}")
    try:
        # 1. throughput, interleaved
        for n, rounds in zip(config.NS, config.ROUNDS):
            for r in range(rounds):
                for s in rotate(active, r):
                    if f"{s.name}@{n}" in config.SKIP:
                        continue
                    run_throughput(s, n, config.WORK, res["throughput"])
        # 2. latency, all systems idle side by side
        run_latency(active, stamp, config.WORK, res["latency"])
        spoold = systems_all["spoold"]
        if spoold in active:
            idle_and_history(spoold, systems_all["tsp"] if systems_all["tsp"] in active else None, res)
    finally:
        for s in active:
            if isinstance(s, Spoold) and s.proc:
                s.stop()
        for d in list(Tsp.servers):
            subprocess.run(["tsp", "-K"], env=dict(os.environ, TS_SOCKET=os.path.join(d, "sock")),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(bindir, ignore_errors=True)
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)
    with open("/proc/loadavg") as f:
        res["machine"]["loadavg_at_end"] = f.read().split()[:3]
    os.makedirs(os.path.dirname(config.OUT_JSON), exist_ok=True)
    with open(config.OUT_JSON, "w") as f:
        json.dump(res, f, indent=1)
    m = res["machine"]
    print(f"\nspoold bench: {m.get('cpu')} ×{m['nproc']}, {m.get('mem_gib')} GiB, kernel {m['kernel']}, "
          f"{m.get('work_fs')} (rotational={m.get('work_disk_rotational', '?')}); load avg at start "
          f"{' '.join(m.get('loadavg_at_start', []))}, at end {' '.join(m.get('loadavg_at_end', []))}; "
          f"{config.SLOTS} workers/slots; {res['elapsed_s']:.0f} s\n")
    print(table(res))
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
    config.log("deleting the scratch folders (the history spool is kept for the next run)")
    shutil.rmtree(os.path.join(config.WORK, "trash"), ignore_errors=True)


if __name__ == "__main__":
    main()
