#!/usr/bin/env python3
"""What a job array (`[array]`, SPEC.md section 5) of 100,000 tasks costs at
intake and while it runs.

  SPOOLD=build-bench/spoold python3 bench/arrays.py      (make bench-arrays)

Each round starts a fresh spoold (8 workers) and, in it:
  plain    drops one plain job with `hold = true`: its intake time (from the
           rename into incoming/ until jobs/<id>/status.json exists, polled
           every 0.5 ms; and the daemon's `accepted` event time minus the
           drop's wall-clock time), the entries and bytes of its folder, and
           index.json's size before and after;
  array    the same for an array of N tasks of `true` (`indexes = "0-N-1"`,
           `parallel = 8`, held), and the daemon's VmRSS before the drop and
           with the array held;
  run      a `start` request, then RUN_S seconds of tasks 8 at a time: VmRSS
           sampled every 100 ms (the largest), VmHWM at the end, and the tasks
           ended per second;
  cancel   a `cancel` request: the time until the array's status.json says
           cancelled (every task not started cancelled at once, the 8
           running stopped).
Environment: BENCH_ARRAYS_N [100000], BENCH_ARRAYS_PARALLEL [8],
BENCH_ARRAYS_RUN_S [5], BENCH_ARRAYS_ROUNDS [3], BENCH_WORK as in
spoold_bench.py. Prints one JSON line per round, then the medians [min-max]
as a table.
"""
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import measure  # noqa: E402
import systems  # noqa: E402

N = int(os.environ.get("BENCH_ARRAYS_N", "100000"))
PARALLEL = int(os.environ.get("BENCH_ARRAYS_PARALLEL", "8"))
RUN_S = float(os.environ.get("BENCH_ARRAYS_RUN_S", "5"))
ROUNDS = int(os.environ.get("BENCH_ARRAYS_ROUNDS", "3"))


def wait_until(what, check, limit_s=600):
    systems.wait_until("arrays", what, check, limit_s)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def tree(folder):
    """(entries, bytes) under `folder`: files and folders, file sizes."""
    entries = size = 0
    for root, dirs, files in os.walk(folder):
        entries += len(dirs) + len(files)
        size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return entries, size


def index_size(root, want=None):
    """index.json's size once it names `want` (or, without, once it is there)."""
    def ready():
        doc = read_json(os.path.join(root, "index.json"))
        return doc is not None and (want is None or want in doc.get("jobs", {}))
    wait_until(f"index.json naming {want}", ready)
    return os.path.getsize(os.path.join(root, "index.json"))


def intake(root, jid, text):
    """Drops jobs/<jid> (tmp/ then rename) and times its intake: seconds until
    status.json exists (polled), and the `accepted` event's time minus the
    wall-clock time of the rename (the daemon's clock, to the millisecond)."""
    tmp = os.path.join(root, "tmp", f".{jid}.toml")
    with open(tmp, "w") as f:
        f.write(text)
    status = os.path.join(root, "jobs", jid, "status.json")
    wall = time.time()
    t0 = time.monotonic()
    os.rename(tmp, os.path.join(root, "incoming", f"{jid}.toml"))
    while not os.path.exists(status):
        if time.monotonic() - t0 > 600:
            sys.exit(f"arrays: {jid} not accepted within 600 s")
        time.sleep(0.0005)
    polled = time.monotonic() - t0
    with open(os.path.join(root, "jobs", jid, "events.jsonl")) as f:
        accepted = json.loads(f.readline())
    return polled, parse_time(accepted["time"]) - wall


def control(root, name, request):
    tmp = os.path.join(root, "tmp", f".{name}.json")
    with open(tmp, "w") as f:
        json.dump(request, f)
    os.rename(tmp, os.path.join(root, "control", f"{name}.json"))


def run(binary, submit_bin, work):
    d = tempfile.mkdtemp(prefix="arrays-", dir=work)
    sp = systems.Spoold(binary, submit_bin, work)
    sp.start(d)
    root, out = sp.root, {"n": N, "parallel": PARALLEL}
    try:
        out["index_empty_b"] = index_size(root)
        measure.settle()
        out["plain_intake_ms"], out["plain_accepted_ms"] = (round(x * 1000, 2) for x in intake(
            root, "plain", 'command = ["true"]\nhold = true\n'))
        out["plain_entries"], out["plain_bytes"] = tree(os.path.join(root, "jobs", "plain"))
        out["index_plain_b"] = index_size(root, "plain")

        time.sleep(0.5)
        out["rss_before_kb"] = systems.proc_status_kb(sp.pid, "VmRSS")
        measure.settle()
        text = (f'command = ["true"]\nhold = true\n[array]\nindexes = "0-{N - 1}"\n'
                f'parallel = {PARALLEL}\n')
        out["array_intake_ms"], out["array_accepted_ms"] = (round(x * 1000, 2) for x in intake(
            root, "sweep", text))
        out["array_entries"], out["array_bytes"] = tree(os.path.join(root, "jobs", "sweep"))
        out["index_array_b"] = index_size(root, "sweep")
        time.sleep(0.5)
        out["rss_held_kb"] = systems.proc_status_kb(sp.pid, "VmRSS")

        status = os.path.join(root, "jobs", "sweep", "status.json")
        control(root, "start-sweep", {"action": "start", "job": "sweep"})
        wait_until("the array running", lambda: (read_json(status) or {}).get("state") == "running")
        t0 = time.monotonic()
        rss = []
        while time.monotonic() - t0 < RUN_S:
            rss.append(systems.proc_status_kb(sp.pid, "VmRSS") or 0)
            time.sleep(0.1)
        tasks = read_json(status)["tasks"]
        out["run_s"] = round(time.monotonic() - t0, 2)
        out["tasks_ended"] = tasks["succeeded"] + tasks["failed"]
        out["tasks_per_s"] = round(out["tasks_ended"] / out["run_s"], 1)
        out["rss_running_max_kb"] = max(rss)

        t0 = time.monotonic()
        control(root, "cancel-sweep", {"action": "cancel", "job": "sweep"})
        wait_until("the array cancelled", lambda: (read_json(status) or {}).get("state") == "cancelled")
        out["cancel_s"] = round(time.monotonic() - t0, 3)
        out["peak_rss_kb"] = sp.rss_kb()
    finally:
        sp.stop()
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return out


def fmt(values, scale=1.0, digits=1):
    vals = sorted(v / scale for v in values)
    med = statistics.median(vals)
    if len(vals) == 1 or vals[0] == vals[-1]:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} [{vals[0]:,.{digits}f}–{vals[-1]:,.{digits}f}]"


def table(runs):
    col = lambda key: [r[key] for r in runs]  # noqa: E731
    rows = [
        ("intake, rename to status.json, ms", fmt(col("plain_intake_ms"), digits=2),
         fmt(col("array_intake_ms"), digits=2)),
        ("intake, `accepted` event minus drop time, ms", fmt(col("plain_accepted_ms"), digits=2),
         fmt(col("array_accepted_ms"), digits=2)),
        ("entries written under jobs/<id>/ (files and folders)", fmt(col("plain_entries"), digits=0),
         fmt(col("array_entries"), digits=0)),
        ("bytes written under jobs/<id>/", fmt(col("plain_bytes"), digits=0), fmt(col("array_bytes"), digits=0)),
        ("index.json growth, bytes (empty: " + fmt(col("index_empty_b"), digits=0) + ")",
         fmt([r["index_plain_b"] - r["index_empty_b"] for r in runs], digits=0),
         fmt([r["index_array_b"] - r["index_plain_b"] for r in runs], digits=0)),
        ("daemon VmRSS, MB (before the array: " + fmt(col("rss_before_kb"), 1024) + ")", "–",
         fmt(col("rss_held_kb"), 1024) + " held"),
        (f"daemon VmRSS while tasks run {PARALLEL} at a time ({RUN_S:g} s), MB", "–",
         fmt(col("rss_running_max_kb"), 1024) + " max; VmHWM " + fmt(col("peak_rss_kb"), 1024)),
        ("tasks ended per second while running", "–", fmt(col("tasks_per_s"))),
        ("cancel of the array (all not started, 8 running), s", "–", fmt(col("cancel_s"), digits=3)),
    ]
    lines = [f"| measure | plain held job | array of {N:,} tasks, held |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main():
    binary, work, submit_bin = systems.standalone_setup("arrays")
    config.SLOTS = max(PARALLEL, 2)  # workers (Spoold.start writes them): parallel is the limit
    print(json.dumps({"machine": measure.machine(), "spoold": binary}), flush=True)
    runs = [run(binary, submit_bin, work) for _ in range(ROUNDS)]
    print(f"\n{len(runs)} rounds; medians [min–max]:\n")
    print(table(runs))


if __name__ == "__main__":
    main()
