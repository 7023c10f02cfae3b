"""report.py - the one markdown table of a run (median [min-max] per cell, and
the targets), from the results as written to BENCH_JSON."""
import statistics

import config


# ---------------------------------------------------------------- statistics
def med_range(xs, fmt="{:.0f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)



# ---------------------------------------------------------------- table
def table(res):
    names = [p for p in config.PEERS]
    avail = res["available"]
    tp = res["throughput"]
    rows = []

    def col(fn):
        return [fn(p) if avail.get(p) is None else "not installed" for p in names]

    def tp_cell(p, n, spool="empty"):
        xs = [s for s in tp if s["system"] == p and s["n"] == n and s["spool"] == spool]
        if not xs:
            return "skipped" if f"{p}@{n}" in config.SKIP else "–"
        rates = [s["jobs_per_s"] for s in xs]
        cell = med_range(rates, "{:.0f}" if min(rates) >= 10 else "{:.1f}")
        cut = [s for s in xs if s["cut"]]
        if cut:
            lo, hi = min(s["done"] for s in cut), max(s["done"] for s in cut)
            cell += (f" (cut {len(cut)}/{len(xs)} at {min(s['wall_s'] for s in cut):.0f} s: "
                     f"{lo if lo == hi else f'{lo}–{hi}'} of {n:,} done)")
        return cell + f" ×{len(xs)}" if len(xs) > 1 else cell

    def med_of(p, n, spool="empty"):
        xs = [s["jobs_per_s"] for s in tp if s["system"] == p and s["n"] == n and s["spool"] == spool]
        return statistics.median(xs) if xs else None

    def ratio_target(label, a, b, op, want):
        if a is None or b is None or b == 0:
            return f"{label}: n/a"
        r = a / b
        ok = r >= want if op == ">=" else r <= want
        return f"{'✅' if ok else '❌'} {label} = {r:.2f} ({op} {want})"

    def floor_note(a, b):  # the floor's own ratio to tsp, and spoold's share of the floor
        if a is None or b is None or not a or not b:
            return ""
        return f"; floor/tsp = {a / b:.2f}"

    # The targets of issue #17: against the floor (the least work SPEC.md
    # promises), flat in queue depth, and tsp where the floor allows it.
    for n in config.NS:
        tgt = ratio_target("spoold/floor", med_of("spoold", n), med_of("floor", n), ">=", 0.9)
        if n != min(config.NS):
            tgt += "; " + ratio_target(f"spoold N={n:,} / N={min(config.NS):,}", med_of("spoold", n),
                                       med_of("spoold", min(config.NS)), ">=", 0.9)
        tgt += "; " + ratio_target("spoold/tsp", med_of("spoold", n), med_of("tsp", n), ">=", 2)
        tgt += floor_note(med_of("floor", n), med_of("tsp", n))
        rows.append([f"throughput, N={n:,}, jobs/s"] + col(lambda p: tp_cell(p, n)) + [tgt])

    lat = res["latency"]

    def lat_cells(p, q):
        per_round = []
        for r in range(config.LAT_ROUNDS):
            xs = [s["latency_ms"] for s in lat if s["system"] == p and s["round"] == r and s["latency_ms"] is not None]
            if xs:
                per_round.append(percentile(xs, q))
        return per_round

    def lat_med(p, q):
        xs = lat_cells(p, q)
        return statistics.median(xs) if xs else None

    rows.append(["drop-to-start latency p50, ms"] +
                col(lambda p: med_range(lat_cells(p, 50), "{:.2f}")) +
                [ratio_target("spoold/tsp", lat_med("spoold", 50), lat_med("tsp", 50), "<=", 1.0) +
                 floor_note(lat_med("floor", 50), lat_med("tsp", 50))])
    p99 = lat_med("spoold", 99)
    rows.append(["drop-to-start latency p99, ms"] +
                col(lambda p: med_range(lat_cells(p, 99), "{:.2f}")) +
                [f"{'✅' if p99 is not None and p99 <= 20 else '❌'} spoold p99 = "
                 f"{p99 if p99 is None else round(p99, 2)} ms (<= 20)"])

    h = res.get("history")
    dash = ["–"] * (len(names) - 1)
    if h:
        hn = config.HISTORY_N
        rows.append([f"throughput, N={hn:,}, empty spool, jobs/s"] + [tp_cell("spoold", hn, "empty-h")] + dash + [""])
        rows.append([f"throughput, N={hn:,}, {config.HISTORY:,} terminal jobs in jobs/, jobs/s"] +
                    [tp_cell("spoold", hn, "history")] + dash +
                    [ratio_target("history/empty", med_of("spoold", hn, "history"), med_of("spoold", hn, "empty-h"), ">=", 0.95)])
        rows.append([f"restart to READY=1, {config.HISTORY:,} jobs, s"] +
                     [med_range(h["restart_s"], "{:.2f}")] + dash +
                     [f"{'✅' if h['restart_s'] and statistics.median(h['restart_s']) <= 1 else '❌'} <= 1 s; "
                      f"empty spool: {med_range(h['restart_empty_s'], '{:.3f}')} s"])
        for name, times in h.get("spoolctl", {}).items():
            target = ""
            if name in ("list", "status"):
                ok = times and statistics.median(times) <= 0.2
                target = f"{'✅' if ok else '❌'} <= 0.2 s"
            rows.append([f"spoolctl {name}, {config.HISTORY:,} jobs, s"] + [med_range(times, "{:.3f}")] + dash +
                        [target])
        rss_h = max([x for x in h["rss_kb_history"] if x] or [0]) or None
        rows.append([f"daemon peak RSS (VmHWM) with {config.HISTORY:,} jobs, MB"] +
                    [med_range([x / 1024 for x in h["rss_kb_history"] if x], "{:.1f}")] + dash +
                    [f"{'✅' if rss_h and rss_h <= 30 * 1024 else '❌'} max {rss_h / 1024 if rss_h else 0:.1f} MB (<= 30)"])
    idle = res.get("idle", {})

    def idle_cell(p, key, fmt="{:.1f}"):
        v = idle.get(p, {}).get(key)
        return "–" if v is None else fmt.format(v)

    def rss_idle(p):
        v = res.get("rss_idle_kb", {}).get(p)
        return "–" if v is None else f"{v / 1024:.1f}"

    def peak_run(p):
        xs = [s["peak_rss_kb"] for s in tp if s["system"] == p and s["n"] == max(config.NS) and s["spool"] == "empty" and s["peak_rss_kb"]]
        return f"{max(xs) / 1024:.1f}" if xs else "–"

    rows.append(["daemon peak RSS idle (empty), MB"] + col(rss_idle) + [""])
    burst = [s["peak_rss_kb"] for s in tp if s["system"] == "spoold" and s["n"] == max(config.NS)
             and s["spool"] == "empty" and s["peak_rss_kb"]]
    rows.append([f"daemon peak RSS during N={max(config.NS):,}, MB"] + col(peak_run) +
                [(f"{'✅' if max(burst) <= 24 * 1024 else '❌'} spoold {max(burst) / 1024:.1f} MB (<= 24); " if burst else "") +
                 "tsp: server only (clients not counted); parallel: the perl controller"])
    sp = idle.get("spoold", {})
    rescan = 60 / 5
    wk = sp.get("ctxt_per_min_perf") if sp.get("ctxt_per_min_perf") is not None else sp.get("ctxt_per_min_proc")
    def cpu_cell(p):  # perf task-clock (µs resolution) when perf works, else /proc ticks
        if idle.get(p, {}).get("task_clock_ms_per_min_perf") is not None:
            return idle_cell(p, "task_clock_ms_per_min_perf", "{:.1f}")
        return idle_cell(p, "cpu_ms_per_min")

    rows.append([f"idle CPU, ms per minute ({config.IDLE_S:.0f} s window ×{60 / config.IDLE_S:g})"] + col(cpu_cell) +
                [f"spoold with {config.HISTORY:,} jobs: {cpu_cell('spoold-history')}" if "spoold-history" in idle else ""])
    rows.append(["idle wake-ups per minute (context switches, perf; /proc)"] +
                col(lambda p: f"{idle_cell(p, 'ctxt_per_min_perf', '{:.0f}')}; {idle_cell(p, 'ctxt_per_min_proc', '{:.0f}')}"
                    if p in idle else "–") +
                [(f"{'✅' if wk is not None and wk <= rescan * 1.5 + 1 else '❌'} spoold {wk} (rescan timer alone: {rescan:.0f}); "
                  f"with {config.HISTORY:,} jobs: {idle_cell('spoold-history', 'ctxt_per_min_perf', '{:.0f}')}")
                 if wk is not None else ""])
    header = ["metric"] + names + ["target (ratios in this run)"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)
