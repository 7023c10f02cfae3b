"""measure.py - the measurements: throughput and drop-to-start latency of each
system, the history spool, restart to READY=1, idle CPU and wake-ups, and the
machine they ran on."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import config
from systems import Spoold, proc_cpu_s, proc_ctxt


# ---------------------------------------------------------------- the phases
def rotate(xs, k):
    return xs[k % len(xs):] + xs[:k % len(xs)] if xs else xs


def trash(path):
    """Deleting 20,000 job folders takes seconds on this disk: move them aside now
    and delete everything after the measurements."""
    if os.path.exists(path):
        os.makedirs(os.path.join(config.WORK, "trash"), exist_ok=True)
        os.rename(path, os.path.join(config.WORK, "trash", os.path.basename(path)))


def settle():
    """Write back every dirty page before a measured run: on ext4 one fsync
    commits the whole journal, so without this spoold's fsyncs would pay for the
    files the previous system left dirty (tsp/nq/parallel never fsync)."""
    os.sync()
    time.sleep(0.3)


def run_throughput(sysobj, n, work, samples, tag="empty", root=None):
    settle()
    d = tempfile.mkdtemp(prefix=f"{sysobj.name}-{n}-", dir=work)
    if isinstance(sysobj, Spoold):
        sysobj.start(d, root=root)
    else:
        sysobj.start(d)
    pid = getattr(sysobj, "pid", None)
    cpu0 = proc_cpu_s(pid) if pid else None
    t0 = time.monotonic()
    sysobj.submit(n, ["true"])
    ts = time.monotonic()
    # cut at BENCH_RUN_TIMEOUT from the first drop, but never sooner than 10 s
    # after the last one (tsp's and nq's client loops alone take ~45 s for 20,000)
    done = sysobj.wait(max(t0 + config.RUN_TIMEOUT, ts + 10))
    t1 = time.monotonic()
    cut = done is not None and done < n
    ok = sysobj.verify()
    if done is None:
        done = ok
    cpu1 = proc_cpu_s(pid) if pid else None
    rss = sysobj.rss_kb()
    stop_s = sysobj.stop()
    wall = t1 - t0
    s = {"system": sysobj.name, "n": n, "spool": tag, "wall_s": round(wall, 4),
         "submit_s": round(ts - t0, 4), "done": done, "ok": ok, "cut": cut,
         "jobs_per_s": round(done / wall, 2), "peak_rss_kb": rss,
         "daemon_cpu_ms_per_job": (round((cpu1 - cpu0) * 1000 / max(done, 1), 3)
                                   if cpu0 is not None and cpu1 is not None else None)}
    if isinstance(sysobj, Spoold):
        s["stop_s"] = None if stop_s is None else round(stop_s, 3)
    samples.append(s)
    config.log(json.dumps(s))
    if not cut and ok != n:
        config.log(f"WARNING: {sysobj.name} ran {ok} of {n} jobs successfully")
    if root is None:
        trash(d)
    else:
        # keep the history spool pristine: move this run's jobs out. Not
        # deleted now: on this ext4 (no journal) every inode allocated within
        # 30 s of a deletion first skips the recently deleted ones in its
        # group, and 10,000 fresh deletions in the history spool's own group
        # would slow the next run by what the benchmark did, not the daemon.
        moved = os.path.join(config.WORK, "trash", os.path.basename(d) + "-jobs")
        os.makedirs(moved, exist_ok=True)
        for jid in sysobj.submitted:
            try:
                os.rename(os.path.join(root, "jobs", jid), os.path.join(moved, jid))
            except OSError:
                pass
        for name in os.listdir(os.path.join(root, "incoming")):
            os.unlink(os.path.join(root, "incoming", name))
        shutil.rmtree(d, ignore_errors=True)
    time.sleep(0.3)
    return s


def run_latency(systems, stamp, work, samples):
    dirs = {}
    for s in systems:
        dirs[s.name] = tempfile.mkdtemp(prefix=f"lat-{s.name}-", dir=work)
        s.start(dirs[s.name])
    settle()
    k = 0
    for r in range(config.LAT_ROUNDS):
        for i in range(config.LAT_PROBES):
            for s in rotate(systems, k):
                f = os.path.join(dirs[s.name], f"probe.{r}.{i}")
                t0 = time.time()
                s.submit_one([stamp, f])
                deadline = time.monotonic() + 30
                while not (os.path.exists(f) and os.path.getsize(f) > 0):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.0005)
                lat = None
                try:
                    with open(f) as fh:
                        lat = (int(fh.read()) / 1e6 - t0) * 1000
                except (OSError, ValueError):
                    config.log(f"latency probe lost: {s.name}")
                samples.append({"system": s.name, "round": r, "probe": i, "latency_ms": lat})
                # idle again before the next probe: the job is terminal
                s.wait(time.monotonic() + 30)
                time.sleep(0.02)
            k += 1
    for s in systems:
        s.stop()
        trash(dirs[s.name])


def make_template(spoold, work):
    """Runs one real job through spoold; returns its finished folder's files."""
    d = tempfile.mkdtemp(prefix="template-", dir=work)
    spoold.start(d)
    spoold.submit(1, ["true"])
    spoold.wait(time.monotonic() + 60)
    spoold.stop()
    jid = spoold.submitted[0]
    jd = os.path.join(d, "root", "jobs", jid)
    files = {}
    for dirpath, dirnames, filenames in os.walk(jd):
        rel = os.path.relpath(dirpath, jd)
        for fn in filenames:
            with open(os.path.join(dirpath, fn), "rb") as f:
                files[os.path.normpath(os.path.join(rel, fn))] = f.read()
        for dn in dirnames:
            files.setdefault(os.path.normpath(os.path.join(rel, dn)) + "/", None)
    shutil.rmtree(d, ignore_errors=True)
    return jid, files


def make_history(spoold, work, count):
    """jobs/<id>/ for `count` terminal jobs, in the format spoold writes: a real
    finished job's folder (job.toml, status.json, events.jsonl, results.json,
    attempts/1/{stdout,stderr}.log, results/) with its id replaced.  Cached in
    BENCH_WORK while the template (with the id taken out) is unchanged."""
    jid, files = make_template(spoold, work)
    norm = {k: (v.replace(jid.encode(), b"@ID@") if v is not None else None) for k, v in files.items()}
    # the cache key: the template's structure with numbers (times, pids, sizes) blanked
    key = hashlib.sha256(json.dumps(sorted(
        (k, re.sub(rb"[0-9]+", b"0", v).decode() if v is not None else None) for k, v in norm.items())).encode()
    ).hexdigest()[:12]
    root = os.path.join(work, f"history-{count}-{key}")
    if os.path.exists(os.path.join(root, ".complete")):
        config.log(f"history: reusing {root}")
        return root
    for old in os.listdir(work):
        if old.startswith(f"history-{count}-"):
            shutil.rmtree(os.path.join(work, old), ignore_errors=True)
    config.log(f"history: writing {count} terminal jobs into {root} (once; kept for later runs)")
    t0 = time.monotonic()
    jobs = os.path.join(root, "jobs")
    os.makedirs(jobs)
    dirs = sorted(k.rstrip("/") for k, v in norm.items() if v is None)
    filelist = sorted((k, v) for k, v in norm.items() if v is not None)
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    for i in range(count):
        nid = f"h{i:07d}"
        jd = os.path.join(jobs, nid)
        os.mkdir(jd)
        for dd in dirs:  # sorted: parents first
            os.mkdir(os.path.join(jd, dd))
        bid = nid.encode()
        for rel, content in filelist:
            fd = os.open(os.path.join(jd, rel), flags, 0o644)
            os.write(fd, content.replace(b"@ID@", bid))
            os.close(fd)
    open(os.path.join(root, ".complete"), "w").close()
    config.log(f"history: {count} jobs written in {time.monotonic() - t0:.1f} s")
    return root


def index_job_count(root):
    try:
        with open(os.path.join(root, "index.json")) as f:
            return len(json.load(f).get("jobs", {}))
    except (OSError, ValueError):
        return None


def idle_measure(targets, seconds):
    """targets: {label: pid}. CPU (utime+stime) and wake-ups over the same window:
    voluntary+involuntary context switches of every thread (/proc), and perf stat
    context-switches when perf works."""
    perf = shutil.which("perf")
    before = {k: (proc_cpu_s(p), proc_ctxt(p)) for k, p in targets.items()}
    perfs = {}
    if perf:
        for k, p in targets.items():
            out = tempfile.NamedTemporaryFile(prefix="perf-", suffix=".txt", delete=False)
            perfs[k] = (subprocess.Popen([perf, "stat", "-x,", "-e", "context-switches,task-clock",
                                          "-p", str(p), "-o", out.name, "--", "sleep", str(seconds)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out.name)
    time.sleep(seconds)
    after = {k: (proc_cpu_s(p), proc_ctxt(p)) for k, p in targets.items()}
    res = {}
    scale = 60.0 / seconds
    for k in targets:
        (c0, x0), (c1, x1) = before[k], after[k]
        r = {"window_s": seconds, "threads": x1[2] if x1 else None,
             "cpu_ms_per_min": round((c1 - c0) * 1000 * scale, 1) if c0 is not None and c1 is not None else None,
             "ctxt_per_min_proc": round(((x1[0] + x1[1]) - (x0[0] + x0[1])) * scale, 1) if x0 and x1 else None,
             "ctxt_per_min_perf": None, "task_clock_ms_per_min_perf": None}
        if k in perfs:
            p, fn = perfs[k]
            try:
                p.wait(timeout=seconds + 10)
                with open(fn) as f:
                    for line in f:
                        parts = line.strip().split(",")
                        if len(parts) < 3 or parts[2] not in ("context-switches", "task-clock"):
                            continue
                        # "<not counted>": the task never ran in the window
                        v = 0.0 if parts[0] == "<not counted>" else float(parts[0])
                        if parts[2] == "context-switches":
                            r["ctxt_per_min_perf"] = round(v * scale, 1)
                        else:
                            r["task_clock_ms_per_min_perf"] = round(v * scale, 2)
            except (subprocess.TimeoutExpired, OSError):
                p.kill()
            os.unlink(fn)
        res[k] = r
    return res


# ---------------------------------------------------------------- machine
def machine():
    m = {"nproc": os.cpu_count(), "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo") as f:
            m["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            m["mem_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
        with open("/proc/loadavg") as f:
            m["loadavg_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    try:
        src = subprocess.run(["df", "--output=source,fstype", config.WORK], stdout=subprocess.PIPE, text=True).stdout.split("\n")[1].split()
        m["work_fs"] = f"{src[1]} on {src[0]}"
        dev = os.path.basename(src[0])
        rot = f"/sys/block/{re.sub(r'[0-9]+$', '', dev)}/queue/rotational"
        if os.path.exists(rot):
            m["work_disk_rotational"] = open(rot).read().strip()
    except (OSError, IndexError):
        pass
    return m


# ---------------------------------------------------------------- idle, restart, history
def idle_and_history(spoold, tsp, res):
    """Phases 3 to 5 of a run, spoold only (tsp, when given, is measured idle
    beside it); fills res["idle"], res["rss_idle_kb"] and res["history"]."""
    hist = make_history(spoold, config.WORK, config.HISTORY) if config.HISTORY > 0 else None
    h = run_idle(spoold, tsp, hist, res)
    if hist:
        run_restarts(spoold, hist, h)
        run_spoolctl(spoold, hist, h)
        run_history_throughput(spoold, hist, h, res)
        res["history"] = h


def run_idle(spoold, tsp, hist, res):
    """3. idle: CPU, wake-ups, RSS; spoold empty, spoold with history, tsp.
    Returns the history record, to which the restarts are added."""
    idle_targets, started = {}, []
    d_empty = tempfile.mkdtemp(prefix="idle-spoold-", dir=config.WORK)
    sp_empty = Spoold(spoold.binary, spoold.submit_bin, config.WORK)
    sp_empty.start(d_empty)
    started.append(sp_empty)
    idle_targets["spoold"] = sp_empty.pid
    sp_hist = None
    h = {"restart_s": [], "restart_empty_s": [], "rss_kb_history": [], "index_jobs": None}
    if hist:
        d_hist = tempfile.mkdtemp(prefix="idle-hist-", dir=config.WORK)
        sp_hist = Spoold(spoold.binary, spoold.submit_bin, config.WORK)
        h["first_start_s"] = sp_hist.start(d_hist, root=hist)
        started.append(sp_hist)
        idle_targets["spoold-history"] = sp_hist.pid
        h["index_jobs"] = index_job_count(hist)
        config.log(f"history spool: first start to READY {h['first_start_s']:.2f} s; index.json lists {h['index_jobs']} jobs")
    tsp_d = None
    if tsp is not None:
        tsp_d = tempfile.mkdtemp(prefix="idle-tsp-", dir=config.WORK)
        tsp.start(tsp_d)
        if tsp.pid:
            idle_targets["tsp"] = tsp.pid
    settle()
    time.sleep(2)  # the first index write, timers armed
    config.log(f"idle: measuring {config.IDLE_S:.0f} s on {idle_targets}")
    res["idle"] = idle_measure(idle_targets, config.IDLE_S)
    res["rss_idle_kb"] = {"spoold": sp_empty.rss_kb()}
    if "tsp" in idle_targets:
        res["rss_idle_kb"]["tsp"] = tsp.rss_kb()
    if sp_hist:
        h["rss_kb_history"].append(sp_hist.rss_kb())
    for s in started:
        s.stop()
    if tsp_d:
        tsp.stop()
        shutil.rmtree(tsp_d, ignore_errors=True)
    shutil.rmtree(d_empty, ignore_errors=True)
    if sp_hist:
        trash(d_hist)
    return h


def run_restarts(spoold, hist, h):
    """4. restart to READY, with history and empty, interleaved."""
    for r in range(config.RESTARTS):
        for which in rotate(["history", "empty"], r):
            settle()
            d = tempfile.mkdtemp(prefix=f"restart-{which}-", dir=config.WORK)
            sp = Spoold(spoold.binary, spoold.submit_bin, config.WORK)
            t = sp.start(d, root=hist if which == "history" else None)
            if which == "history":
                h["restart_s"].append(round(t, 4))
                h["rss_kb_history"].append(sp.rss_kb())
            else:
                h["restart_empty_s"].append(round(t, 4))
            sp.stop()
            shutil.rmtree(d, ignore_errors=True)
            config.log(f"restart {which}: {t:.3f} s")


SPOOLCTL_COMMANDS = {"list": ["list"], "list --json": ["list", "--json"], "status": ["status", None],
                     "pools": ["pools"]}


def run_spoolctl(spoold, hist, h):
    """4b. spoolctl's reading commands on the history spool, the daemon
    stopped (they read the files alone): wall time per run."""
    ctl = os.path.join(os.path.dirname(spoold.binary), "spoolctl")
    if not os.access(ctl, os.X_OK):
        config.log(f"spoolctl: {ctl} not built; not measured")
        return
    names = sorted(n for n in os.listdir(os.path.join(hist, "jobs")) if not n.startswith("."))
    some_job = names[len(names) // 2]
    h["spoolctl"] = {name: [] for name in SPOOLCTL_COMMANDS}
    for r in range(config.RESTARTS):
        for name in rotate(list(SPOOLCTL_COMMANDS), r):
            argv = [ctl, "--root", hist] + [a if a is not None else some_job for a in SPOOLCTL_COMMANDS[name]]
            t0 = time.monotonic()
            rc = subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t = time.monotonic() - t0
            if rc != 0:
                config.log(f"spoolctl {name}: exit {rc}")
                continue
            h["spoolctl"][name].append(round(t, 4))
            config.log(f"spoolctl {name}: {t:.3f} s")


def run_history_throughput(spoold, hist, h, res):
    """5. throughput with history against empty, interleaved."""
    for r in range(config.HISTORY_ROUNDS):
        for which in rotate(["empty-h", "history"], r):
            sp = Spoold(spoold.binary, spoold.submit_bin, config.WORK)
            s = run_throughput(sp, config.HISTORY_N, config.WORK, res["throughput"], tag=which,
                               root=hist if which == "history" else None)
            if which == "history":
                h["rss_kb_history"].append(s["peak_rss_kb"])
