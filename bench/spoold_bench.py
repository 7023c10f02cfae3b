#!/usr/bin/env python3
"""spoold_bench.py - spoold beside Task Spooler, nq, GNU parallel and a durable floor, in one run,
on this machine; prints ONE markdown table (median [min-max] over interleaved
rounds) and writes every sample to a JSON file.  Python 3 stdlib + three small C
helpers (stamp.c, spool_submit.c, and floor.c) compiled with cc into a temporary folder.

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
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TERMINAL = ("succeeded", "failed", "cancelled")
TICK = os.sysconf("SC_CLK_TCK")


def env_list(name, default):
    return os.environ.get(name, default).split()


PEERS = env_list("BENCH_PEERS", "spoold floor tsp nq parallel")
NS = [int(x) for x in env_list("BENCH_NS", "2000 20000")]
ROUNDS = [int(x) for x in env_list("BENCH_ROUNDS", "3 1")]
ROUNDS += [ROUNDS[-1]] * (len(NS) - len(ROUNDS))
SKIP = set(env_list("BENCH_SKIP", "nq@20000"))
RUN_TIMEOUT = float(os.environ.get("BENCH_RUN_TIMEOUT", "30"))
LAT_ROUNDS = int(os.environ.get("BENCH_LAT_ROUNDS", "3"))
LAT_PROBES = int(os.environ.get("BENCH_LAT_PROBES", "40"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "100000"))
HISTORY_N = int(os.environ.get("BENCH_HISTORY_N", "1000"))
HISTORY_ROUNDS = int(os.environ.get("BENCH_HISTORY_ROUNDS", "5"))
RESTARTS = int(os.environ.get("BENCH_RESTARTS", "3"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "20"))
WORK = os.environ.get("BENCH_WORK", "/var/tmp/spoold-bench")
OUT_JSON = os.environ.get("BENCH_JSON", os.path.join(HERE, "results", "last.json"))
SLOTS = 2


def log(*a):
    print("#", *a, file=sys.stderr, flush=True)


def find_spoold():
    s = os.environ.get("SPOOLD")
    if s:
        return os.path.abspath(s)
    for b in ("build-bench", "build"):
        p = os.path.join(REPO, b, "spoold")
        if os.access(p, os.X_OK):
            return p
    return None


# ---------------------------------------------------------------- /proc helpers
def proc_status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    """utime+stime of the process (all threads), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return None


def proc_ctxt(pid):
    """(voluntary, involuntary) context switches summed over all threads."""
    vol = inv = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        inv += int(line.split()[1])
        except OSError:
            pass
    return vol, inv, len(tids)


# ---------------------------------------------------------------- helpers (C)
def build_helpers(bindir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("bench: needs a C compiler (cc)")
    for name in ("stamp", "spool_submit", "floor"):
        subprocess.run([cc, "-O2", "-o", os.path.join(bindir, name),
                        os.path.join(HERE, name + ".c")], check=True)
    return os.path.join(bindir, "stamp"), os.path.join(bindir, "spool_submit")


def sh_loop(n, body, env=None):
    """One bash process running `body` n times (a client process per job)."""
    return subprocess.run(["bash", "-c", f'for ((i=0;i<{n};i++)); do {body}; done'],
                          env=env, stdout=subprocess.DEVNULL, check=False)


# ---------------------------------------------------------------- systems
class Spoold:
    name = "spoold"

    def __init__(self, binary, submit_bin, work):
        self.binary, self.submit_bin, self.work = binary, submit_bin, work
        self.proc = None

    def note(self):
        return f"spoold: {self.binary}; {SLOTS} workers; submit = write in tmp/ + rename() into incoming/"

    def available(self):
        if not self.binary:
            return "not built (cmake --build build-bench --target spoold)"
        return None

    def start(self, d, root=None, wait_ready=True):
        """Starts spoold on d/root (or `root`); returns seconds to READY=1."""
        self.dir = d
        self.root = root or os.path.join(d, "root")
        os.makedirs(self.root, exist_ok=True)
        self.cfg = os.path.join(d, "spoold.toml")
        with open(self.cfg, "w") as f:
            f.write(f'[spool]\nroot = "{self.root}"\nrescan_interval = "5s"\n'
                    f'[retention]\nfinished = "0"\n'
                    f'[security]\nallow_root = true\n'
                    f'[pools.default]\nworkers = {SLOTS}\nqueue_limit = 10000000\n')
        sock_path = os.path.join(d, "notify.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, **self.extra_env())
        env.pop("WATCHDOG_USEC", None)
        self.logf = open(os.path.join(d, "daemon.log"), "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "--config", self.cfg], env=env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        ready = None
        sock.settimeout(0.2)
        deadline = t0 + 600
        while time.monotonic() < deadline:
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"spoold exited with {self.proc.returncode}; see {d}/daemon.log")
                continue
            if "READY=1" in msg.split("\n"):
                ready = time.monotonic() - t0
                break
        sock.close()
        if ready is None:
            raise RuntimeError("spoold: no READY=1 within 600 s")
        self.submitted = []
        return ready

    def extra_env(self):
        return {}

    def submit(self, n, argv):
        """spool_submit: one client process writing n files (tmp + rename)."""
        r = subprocess.run([self.submit_bin, self.root, str(n)] + argv,
                           stdout=subprocess.PIPE, check=True, text=True)
        self.submitted += r.stdout.split()

    def submit_one(self, argv):
        self.submit(1, argv)

    def _terminal(self, jid):
        try:
            with open(os.path.join(self.root, "jobs", jid, "status.json")) as f:
                return json.load(f).get("state") in TERMINAL
        except (OSError, ValueError):
            return False

    def wait(self, deadline):
        """Polls status.json in submission order (jobs start FIFO) every 5 ms;
        returns the number of terminal jobs (all of them unless the deadline hit)."""
        ids, i = self.submitted, 0
        while True:
            while i < len(ids) and self._terminal(ids[i]):
                i += 1
            if i == len(ids):
                return i
            if time.monotonic() > deadline:
                return i + sum(1 for j in ids[i + 1:i + 64] if self._terminal(j))
            time.sleep(0.005)

    def verify(self):
        ok = 0
        for jid in self.submitted:
            try:
                with open(os.path.join(self.root, "jobs", jid, "status.json")) as f:
                    ok += json.load(f).get("state") == "succeeded"
            except (OSError, ValueError):
                pass
        return ok

    def rss_kb(self):
        return proc_status_kb(self.pid, "VmHWM")

    def stop(self):
        """SIGTERM; SIGKILL after 20 s. Returns seconds to exit (None: killed)."""
        took = 0.0
        if self.proc and self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
                took = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                log(f"spoold {self.pid} did not exit within 20 s of SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
                took = None
        self.proc = None
        self.logf.close()
        return took


class Floor(Spoold):
    """The durable floor (floor.c): spoold's drop protocol and its two promises
    (each change synced, renamed and synced again before it is acted on; a
    program runs only once its `running` state is durable), with spoold's
    batching and exec helper, and nothing else. A baseline, not a job runner."""
    name = "floor"

    def __init__(self, floor_bin, spoold_bin, submit_bin, work):
        super().__init__(floor_bin, submit_bin, work)
        self.helper = os.path.join(os.path.dirname(spoold_bin or ""), "spoold-exec")

    def note(self):
        return (f"floor: {self.binary}; {SLOTS} slots; spoold's protocol and syncs, "
                f"programs started through {self.helper}")

    def available(self):
        if not os.access(self.helper, os.X_OK):
            return f"needs spoold-exec beside spoold ({self.helper})"
        return None

    def extra_env(self):
        return {"FLOOR_HELPER": self.helper}


class Tsp:
    name = "tsp"
    servers = set()   # TS_SOCKETs not stopped yet (for cleanup on errors)

    def note(self):
        return f"tsp: Task Spooler server, -S {SLOTS}; a `tsp true` client process per job (it waits for its slot)"

    def available(self):
        return None if shutil.which("tsp") else "not installed (apt-get install task-spooler)"

    def env(self):
        return dict(os.environ, TS_SOCKET=os.path.join(self.dir, "sock"),
                    TMPDIR=os.path.join(self.dir, "out"), TS_MAXFINISHED="1000000")

    def start(self, d):
        self.dir = d
        os.makedirs(os.path.join(d, "out"), exist_ok=True)
        subprocess.run(["tsp", "-S", str(SLOTS)], env=self.env(), check=True)
        Tsp.servers.add(d)
        self.pid = None
        sock = os.path.join(d, "sock")
        for _ in range(200):
            out = subprocess.run(["ss", "-xlp"], stdout=subprocess.PIPE, text=True).stdout
            for line in out.splitlines():
                if sock in line.split():
                    m = re.search(r"pid=(\d+)", line)
                    if m:
                        self.pid = int(m.group(1))
            if self.pid:
                break
            time.sleep(0.01)
        self.count = 0

    def submit(self, n, argv):
        sh_loop(n, "tsp " + " ".join(argv) + " >/dev/null", env=self.env())
        self.count += n

    def submit_one(self, argv):
        subprocess.run(["tsp"] + argv, env=self.env(), stdout=subprocess.DEVNULL)
        self.count += 1

    def _busy(self):
        out = subprocess.run(["tsp", "-l"], env=self.env(), stdout=subprocess.PIPE, text=True).stdout
        lines = out.splitlines()[1:]
        return len(lines) < self.count or any(l.split()[1] != "finished" for l in lines if l.split())

    def wait(self, deadline):
        # tsp -w: until the last job added ends; then nothing unfinished in the list
        try:
            subprocess.run(["tsp", "-w"], env=self.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while self._busy():
            if time.monotonic() > deadline:
                out = subprocess.run(["tsp", "-l"], env=self.env(), stdout=subprocess.PIPE, text=True).stdout
                return sum(1 for l in out.splitlines()[1:] if l.split()[1:2] == ["finished"])
            time.sleep(0.01)
        return self.count

    def verify(self):
        out = subprocess.run(["tsp", "-l"], env=self.env(), stdout=subprocess.PIPE, text=True).stdout
        return sum(1 for l in out.splitlines()[1:]
                   if len(l.split()) > 3 and l.split()[1] == "finished" and l.split()[3] == "0")

    def rss_kb(self):
        return proc_status_kb(self.pid, "VmHWM") if self.pid else None

    def stop(self):
        subprocess.run(["tsp", "-K"], env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        Tsp.servers.discard(self.dir)
        time.sleep(0.05)


class Nq:
    name = "nq"

    def note(self):
        return (f"nq: no daemon; `nq true` forks a process that flock()s every earlier job "
                f"of its NQDIR; {SLOTS} NQDIRs round-robin = {SLOTS} slots")

    def available(self):
        return None if shutil.which("nq") else "not installed (apt-get install nq)"

    def start(self, d):
        self.dir, self.next = d, 0
        for q in range(SLOTS):
            os.makedirs(os.path.join(d, f"q{q}"), exist_ok=True)
        self.pid = None

    def submit(self, n, argv):
        cmd = " ".join(argv)
        sh_loop(n, f'NQDIR={self.dir}/q$(( (i + {self.next}) % {SLOTS} )) nq -q {cmd}')
        self.next = (self.next + n) % SLOTS

    def submit_one(self, argv):
        env = dict(os.environ, NQDIR=os.path.join(self.dir, f"q{self.next}"))
        subprocess.run(["nq", "-q"] + argv, env=env)
        self.next = (self.next + 1) % SLOTS

    def _count(self, marker):
        """Jobs whose nq log holds `marker`, over both queues."""
        n = 0
        for q in range(SLOTS):
            qd = os.path.join(self.dir, f"q{q}")
            for name in os.listdir(qd):
                try:
                    with open(os.path.join(qd, name), "rb") as f:
                        n += marker in f.read()
                except OSError:
                    pass
        return n

    def done_count(self):
        return self._count(b"[exited with status")

    def wait(self, deadline):
        procs = [subprocess.Popen(["nq", "-w"], env=dict(os.environ, NQDIR=os.path.join(self.dir, f"q{q}")))
                 for q in range(SLOTS)]
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for pp in procs:
                    pp.kill()
                    pp.wait()
                return self.done_count()
        return None  # all done; count taken by verify()

    def verify(self):
        return self._count(b"[exited with status 0.]")

    def rss_kb(self):
        return None

    def stop(self):
        # kill blocked nq processes of a cut run: they hold a lock on their job file
        for q in range(SLOTS):
            qd = os.path.join(self.dir, f"q{q}")
            for name in os.listdir(qd):
                m = re.match(r"^,[0-9a-f]+\.(\d+)$", name)
                if not m:
                    continue
                pid = int(m.group(1))
                try:  # only an nq process of this queue (the pid may be reused)
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if f"NQDIR={qd}".encode() not in f.read().split(b"\0"):
                            continue
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


class Parallel:
    name = "parallel"

    def note(self):
        return f"parallel: one perl controller per batch, -j {SLOTS} --joblog; each job through a shell"

    def available(self):
        return None if shutil.which("parallel") else "not installed (apt-get install parallel)"

    def start(self, d):
        self.dir, self.procs, self.seq = d, [], 0
        os.makedirs(os.path.join(d, "home"), exist_ok=True)
        self.maxrss = []
        self.pid = None

    def submit(self, n, argv):
        self.seq += 1
        env = dict(os.environ, PARALLEL_HOME=os.path.join(self.dir, "home"))
        p = subprocess.Popen(["parallel", "--will-cite", "-N0", "-j", str(SLOTS), "--joblog",
                              os.path.join(self.dir, f"joblog.{self.seq}")] + argv,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        self.procs.append(p)
        p.stdin.write(b"x\n" * n)
        p.stdin.close()

    def submit_one(self, argv):
        self.submit(1, argv)

    def wait(self, deadline):
        for p in self.procs:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    self.maxrss.append(ru.ru_maxrss)
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    _, _, ru = os.wait4(p.pid, 0)
                    self.procs = []
                    return self.verify()
                time.sleep(0.005)
        self.procs = []
        return None

    def verify(self):
        n = 0
        for name in os.listdir(self.dir):
            if name.startswith("joblog."):
                with open(os.path.join(self.dir, name)) as f:
                    for line in f.readlines()[1:]:
                        parts = line.split("\t")
                        n += len(parts) > 6 and parts[6] == "0"
        return n

    def rss_kb(self):
        return max(self.maxrss) if self.maxrss else None

    def stop(self):
        self.wait(time.monotonic() + 60)


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


# ---------------------------------------------------------------- the phases
def rotate(xs, k):
    return xs[k % len(xs):] + xs[:k % len(xs)] if xs else xs


def trash(path):
    """Deleting 20,000 job folders takes seconds on this disk: move them aside now
    and delete everything after the measurements."""
    if os.path.exists(path):
        os.makedirs(os.path.join(WORK, "trash"), exist_ok=True)
        os.rename(path, os.path.join(WORK, "trash", os.path.basename(path)))


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
    done = sysobj.wait(max(t0 + RUN_TIMEOUT, ts + 10))
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
    log(json.dumps(s))
    if not cut and ok != n:
        log(f"WARNING: {sysobj.name} ran {ok} of {n} jobs successfully")
    if root is None:
        trash(d)
    else:
        # keep the history spool pristine: move this run's jobs out. Not
        # deleted now: on this ext4 (no journal) every inode allocated within
        # 30 s of a deletion first skips the recently deleted ones in its
        # group, and 10,000 fresh deletions in the history spool's own group
        # would slow the next run by what the benchmark did, not the daemon.
        moved = os.path.join(WORK, "trash", os.path.basename(d) + "-jobs")
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
    for r in range(LAT_ROUNDS):
        for i in range(LAT_PROBES):
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
                    log(f"latency probe lost: {s.name}")
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
        log(f"history: reusing {root}")
        return root
    for old in os.listdir(work):
        if old.startswith(f"history-{count}-"):
            shutil.rmtree(os.path.join(work, old), ignore_errors=True)
    log(f"history: writing {count} terminal jobs into {root} (once; kept for later runs)")
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
    log(f"history: {count} jobs written in {time.monotonic() - t0:.1f} s")
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
        src = subprocess.run(["df", "--output=source,fstype", WORK], stdout=subprocess.PIPE, text=True).stdout.split("\n")[1].split()
        m["work_fs"] = f"{src[1]} on {src[0]}"
        dev = os.path.basename(src[0])
        rot = f"/sys/block/{re.sub(r'[0-9]+$', '', dev)}/queue/rotational"
        if os.path.exists(rot):
            m["work_disk_rotational"] = open(rot).read().strip()
    except (OSError, IndexError):
        pass
    return m


# ---------------------------------------------------------------- table
def table(res):
    names = [p for p in PEERS]
    avail = res["available"]
    tp = res["throughput"]
    rows = []

    def col(fn):
        return [fn(p) if avail.get(p) is None else "not installed" for p in names]

    def tp_cell(p, n, spool="empty"):
        xs = [s for s in tp if s["system"] == p and s["n"] == n and s["spool"] == spool]
        if not xs:
            return "skipped" if f"{p}@{n}" in SKIP else "–"
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

    targets = []

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

    for n in NS:
        tgt = ratio_target("spoold/tsp", med_of("spoold", n), med_of("tsp", n), ">=", 2)
        tgt += floor_note(med_of("floor", n), med_of("tsp", n))
        if med_of("floor", n) and med_of("spoold", n):
            tgt += f"; spoold/floor = {med_of('spoold', n) / med_of('floor', n):.2f}"
        rows.append([f"throughput, N={n:,}, jobs/s"] + col(lambda p: tp_cell(p, n)) + [tgt])

    lat = res["latency"]

    def lat_cells(p, q):
        per_round = []
        for r in range(LAT_ROUNDS):
            xs = [s["latency_ms"] for s in lat if s["system"] == p and s["round"] == r and s["latency_ms"] is not None]
            if xs:
                per_round.append(percentile(xs, q))
        return per_round

    def lat_med(p, q):
        xs = lat_cells(p, q)
        return statistics.median(xs) if xs else None

    rows.append(["drop-to-start latency p50, ms"] +
                col(lambda p: med_range(lat_cells(p, 50), "{:.2f}")) +
                [ratio_target("spoold/tsp", lat_med("spoold", 50), lat_med("tsp", 50), "<=", 1.2) +
                 floor_note(lat_med("floor", 50), lat_med("tsp", 50))])
    p99 = lat_med("spoold", 99)
    rows.append(["drop-to-start latency p99, ms"] +
                col(lambda p: med_range(lat_cells(p, 99), "{:.2f}")) +
                [f"{'✅' if p99 is not None and p99 <= 20 else '❌'} spoold p99 = "
                 f"{p99 if p99 is None else round(p99, 2)} ms (<= 20)"])

    h = res.get("history")
    dash = ["–"] * (len(names) - 1)
    if h:
        hn = HISTORY_N
        rows.append([f"throughput, N={hn:,}, empty spool, jobs/s"] + [tp_cell("spoold", hn, "empty-h")] + dash + [""])
        rows.append([f"throughput, N={hn:,}, {HISTORY:,} terminal jobs in jobs/, jobs/s"] +
                    [tp_cell("spoold", hn, "history")] + dash +
                    [ratio_target("history/empty", med_of("spoold", hn, "history"), med_of("spoold", hn, "empty-h"), ">=", 0.9)])
        rows.append([f"restart to READY=1, {HISTORY:,} jobs, s"] +
                     [med_range(h["restart_s"], "{:.2f}")] + dash +
                     [f"empty spool: {med_range(h['restart_empty_s'], '{:.3f}')} s"])
        rss_h = max([x for x in h["rss_kb_history"] if x] or [0]) or None
        rows.append([f"daemon peak RSS (VmHWM) with {HISTORY:,} jobs, MB"] +
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
        xs = [s["peak_rss_kb"] for s in tp if s["system"] == p and s["n"] == max(NS) and s["spool"] == "empty" and s["peak_rss_kb"]]
        return f"{max(xs) / 1024:.1f}" if xs else "–"

    rows.append(["daemon peak RSS idle (empty), MB"] + col(rss_idle) + [""])
    rows.append([f"daemon peak RSS during N={max(NS):,}, MB"] + col(peak_run) +
                ["tsp: server only (clients not counted); parallel: the perl controller"])
    sp = idle.get("spoold", {})
    rescan = 60 / 5
    wk = sp.get("ctxt_per_min_perf") if sp.get("ctxt_per_min_perf") is not None else sp.get("ctxt_per_min_proc")
    def cpu_cell(p):  # perf task-clock (µs resolution) when perf works, else /proc ticks
        if idle.get(p, {}).get("task_clock_ms_per_min_perf") is not None:
            return idle_cell(p, "task_clock_ms_per_min_perf", "{:.1f}")
        return idle_cell(p, "cpu_ms_per_min")

    rows.append([f"idle CPU, ms per minute ({IDLE_S:.0f} s window ×{60 / IDLE_S:g})"] + col(cpu_cell) +
                [f"spoold with {HISTORY:,} jobs: {cpu_cell('spoold-history')}" if "spoold-history" in idle else ""])
    rows.append(["idle wake-ups per minute (context switches, perf; /proc)"] +
                col(lambda p: f"{idle_cell(p, 'ctxt_per_min_perf', '{:.0f}')}; {idle_cell(p, 'ctxt_per_min_proc', '{:.0f}')}"
                    if p in idle else "–") +
                [(f"{'✅' if wk is not None and wk <= rescan * 1.5 + 1 else '❌'} spoold {wk} (rescan timer alone: {rescan:.0f}); "
                  f"with {HISTORY:,} jobs: {idle_cell('spoold-history', 'ctxt_per_min_perf', '{:.0f}')}")
                 if wk is not None else ""])
    header = ["metric"] + names + ["target (ratios in this run)"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------- main
def reprint(path):
    """--table FILE: print the table again from an earlier run's JSON."""
    global PEERS, NS, ROUNDS, SKIP, RUN_TIMEOUT, LAT_ROUNDS, LAT_PROBES, HISTORY, HISTORY_N, IDLE_S
    with open(path) as f:
        res = json.load(f)
    c = res["config"]
    PEERS, NS, ROUNDS, SKIP = c["peers"], c["ns"], c["rounds"], set(c["skip"])
    RUN_TIMEOUT, LAT_ROUNDS, LAT_PROBES = c["run_timeout_s"], c["lat_rounds"], c["lat_probes"]
    HISTORY, HISTORY_N, IDLE_S = c["history"], c["history_n"], c["idle_s"]
    print(table(res))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        return reprint(sys.argv[2])
    t_start = time.monotonic()
    os.makedirs(WORK, exist_ok=True)
    lock = open(os.path.join(WORK, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"bench: another benchmark is running on {WORK}")
    bindir = tempfile.mkdtemp(prefix="bin-", dir=WORK)
    stamp, submit_bin = build_helpers(bindir)
    spoold_bin = find_spoold()
    systems_all = {"spoold": Spoold(spoold_bin, submit_bin, WORK),
                   "floor": Floor(os.path.join(bindir, "floor"), spoold_bin, submit_bin, WORK),
                   "tsp": Tsp(), "nq": Nq(), "parallel": Parallel()}
    res = {"machine": machine(), "config": {
        "peers": PEERS, "ns": NS, "rounds": ROUNDS, "skip": sorted(SKIP), "run_timeout_s": RUN_TIMEOUT,
        "lat_rounds": LAT_ROUNDS, "lat_probes": LAT_PROBES, "history": HISTORY, "history_n": HISTORY_N,
        "history_rounds": HISTORY_ROUNDS, "restarts": RESTARTS, "idle_s": IDLE_S, "slots": SLOTS,
        "spoold": spoold_bin}, "available": {}, "notes": {}, "throughput": [], "latency": []}
    active = []
    for p in PEERS:
        s = systems_all.get(p)
        why = "unknown system" if s is None else s.available()
        res["available"][p] = why
        if why:
            log(f"{p}: {why}")
        else:
            active.append(s)
            res["notes"][p] = s.note()
    log(f"systems: {[s.name for s in active]}; N={NS} rounds={ROUNDS}; work={WORK}")
    try:
        # 1. throughput, interleaved
        for n, rounds in zip(NS, ROUNDS):
            for r in range(rounds):
                for s in rotate(active, r):
                    if f"{s.name}@{n}" in SKIP:
                        continue
                    run_throughput(s, n, WORK, res["throughput"])
        # 2. latency, all systems idle side by side
        run_latency(active, stamp, WORK, res["latency"])
        spoold = systems_all["spoold"]
        if spoold in active:
            # 3. idle: CPU, wake-ups, RSS; spoold empty, spoold with history, tsp
            hist = make_history(spoold, WORK, HISTORY) if HISTORY > 0 else None
            idle_targets, started = {}, []
            d_empty = tempfile.mkdtemp(prefix="idle-spoold-", dir=WORK)
            sp_empty = Spoold(spoold_bin, submit_bin, WORK)
            sp_empty.start(d_empty)
            started.append(sp_empty)
            idle_targets["spoold"] = sp_empty.pid
            sp_hist = None
            h = {"restart_s": [], "restart_empty_s": [], "rss_kb_history": [], "index_jobs": None}
            if hist:
                d_hist = tempfile.mkdtemp(prefix="idle-hist-", dir=WORK)
                sp_hist = Spoold(spoold_bin, submit_bin, WORK)
                h["first_start_s"] = sp_hist.start(d_hist, root=hist)
                started.append(sp_hist)
                idle_targets["spoold-history"] = sp_hist.pid
                h["index_jobs"] = index_job_count(hist)
                log(f"history spool: first start to READY {h['first_start_s']:.2f} s; index.json lists {h['index_jobs']} jobs")
            tsp = systems_all["tsp"]
            tsp_d = None
            if tsp in active:
                tsp_d = tempfile.mkdtemp(prefix="idle-tsp-", dir=WORK)
                tsp.start(tsp_d)
                if tsp.pid:
                    idle_targets["tsp"] = tsp.pid
            settle()
            time.sleep(2)  # the first index write, timers armed
            log(f"idle: measuring {IDLE_S:.0f} s on {idle_targets}")
            res["idle"] = idle_measure(idle_targets, IDLE_S)
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
            if hist:
                # 4. restart to READY, with history and empty, interleaved
                for r in range(RESTARTS):
                    for which in rotate(["history", "empty"], r):
                        settle()
                        d = tempfile.mkdtemp(prefix=f"restart-{which}-", dir=WORK)
                        sp = Spoold(spoold_bin, submit_bin, WORK)
                        t = sp.start(d, root=hist if which == "history" else None)
                        if which == "history":
                            h["restart_s"].append(round(t, 4))
                            h["rss_kb_history"].append(sp.rss_kb())
                        else:
                            h["restart_empty_s"].append(round(t, 4))
                        sp.stop()
                        shutil.rmtree(d, ignore_errors=True)
                        log(f"restart {which}: {t:.3f} s")
                # 5. throughput with history against empty, interleaved
                for r in range(HISTORY_ROUNDS):
                    for which in rotate(["empty-h", "history"], r):
                        sp = Spoold(spoold_bin, submit_bin, WORK)
                        s = run_throughput(sp, HISTORY_N, WORK, res["throughput"], tag=which,
                                           root=hist if which == "history" else None)
                        if which == "history":
                            h["rss_kb_history"].append(s["peak_rss_kb"])
                res["history"] = h
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
    os.makedirs(os.path.dirname(OUT_JSON), exist_ok=True)
    with open(OUT_JSON, "w") as f:
        json.dump(res, f, indent=1)
    m = res["machine"]
    print(f"\nspoold bench: {m.get('cpu')} ×{m['nproc']}, {m.get('mem_gib')} GiB, kernel {m['kernel']}, "
          f"{m.get('work_fs')} (rotational={m.get('work_disk_rotational', '?')}); load avg at start "
          f"{' '.join(m.get('loadavg_at_start', []))}, at end {' '.join(m.get('loadavg_at_end', []))}; "
          f"{SLOTS} workers/slots; {res['elapsed_s']:.0f} s\n")
    print(table(res))
    print()
    for p in PEERS:
        if res["available"].get(p):
            print(f"- {p}: {res['available'][p]}")
        else:
            print(f"- {res['notes'][p]}")
    print(f"- median [min–max] over interleaved rounds (×k = rounds); every sample: {OUT_JSON}")
    print(f"- latency: {LAT_ROUNDS} rounds × {LAT_PROBES} probes per system, p50/p99 per round; "
          f"t0 = just before the submitting client process starts (spoold: spool_submit, tmp + rename)")
    sys.stdout.flush()
    log("deleting the scratch folders (the history spool is kept for the next run)")
    shutil.rmtree(os.path.join(WORK, "trash"), ignore_errors=True)


if __name__ == "__main__":
    main()
