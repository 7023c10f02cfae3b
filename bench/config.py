"""config.py - the benchmark's settings, read from the environment once, on
import (the knobs are described in spoold_bench.py's docstring). The other
modules read them as `config.X` when they run, so a value set later (SLOTS by
adopt.py, the saved run's settings by `spoold_bench.py --table`) is the one
they see."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def env_list(name, default):
    return os.environ.get(name, default).split()


PEERS = env_list("BENCH_PEERS", "spoold floor tsp nq parallel")
NS = [int(x) for x in env_list("BENCH_NS", "2000 20000")]
ROUNDS = [int(x) for x in env_list("BENCH_ROUNDS", "3 1")]
ROUNDS += [ROUNDS[-1]] * (len(NS) - len(ROUNDS))
SKIP = set(env_list("BENCH_SKIP", "nq@20000 parallel@20000"))
RUN_TIMEOUT = float(os.environ.get("BENCH_RUN_TIMEOUT", "600"))
LAT_ROUNDS = int(os.environ.get("BENCH_LAT_ROUNDS", "3"))
LAT_PROBES = int(os.environ.get("BENCH_LAT_PROBES", "40"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "100000"))
HISTORY_N = int(os.environ.get("BENCH_HISTORY_N", "1000"))
HISTORY_ROUNDS = int(os.environ.get("BENCH_HISTORY_ROUNDS", "5"))
RESTARTS = int(os.environ.get("BENCH_RESTARTS", "3"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "20"))
WORK = os.environ.get("BENCH_WORK", "/var/tmp/spoold-bench")
OUT_JSON = os.environ.get("BENCH_JSON", os.path.join(HERE, "results", "last.json"))
FS = env_list("BENCH_FS", "disk ext4 tmpfs")
FS_SIZE_GIB = int(os.environ.get("BENCH_FS_GIB", "12"))
SLOTS = 2   # workers (spoold, floor) or slots (tsp, nq, parallel); adopt.py sets it


def log(*a):
    print("#", *a, file=sys.stderr, flush=True)
