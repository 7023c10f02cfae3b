"""systems.py - the systems under test, each driven alike (start, submit,
submit_one, wait, verify, rss_kb, stop): spoold, the durable floor (floor.c),
Task Spooler, nq and GNU parallel; with the /proc readers and the C helpers
(stamp.c, spool_submit.c, floor.c) they need."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import config

TERMINAL = ("succeeded", "failed", "cancelled")
TICK = os.sysconf("SC_CLK_TCK")


def find_spoold():
    s = os.environ.get("SPOOLD")
    if s:
        return os.path.abspath(s)
    for b in ("build-bench", "build"):
        p = os.path.join(config.REPO, b, "spoold")
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
                        os.path.join(config.HERE, name + ".c")], check=True)
    return os.path.join(bindir, "stamp"), os.path.join(bindir, "spool_submit")


def standalone_setup(tool):
    """For a bench script run on its own (adopt.py, deps.py): the spoold binary,
    the scratch folder (BENCH_WORK) and the submit helper built into it."""
    import tempfile
    binary = find_spoold()
    if not binary:
        sys.exit(f"{tool}: no spoold (set SPOOLD)")
    work = os.environ.get("BENCH_WORK", "/var/tmp/spoold-bench")
    os.makedirs(work, exist_ok=True)
    bindir = tempfile.mkdtemp(prefix="bin-", dir=work)
    _, submit_bin = build_helpers(bindir)
    return binary, work, submit_bin


def wait_until(tool, what, check, limit_s=600):
    """Polls `check` every 50 ms; exits the script after `limit_s`."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"{tool}: timed out waiting for {what}")
        time.sleep(0.05)


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
        return f"spoold: {self.binary}; {config.SLOTS} workers; submit = write in tmp/ + rename() into incoming/"

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
                    f'[pools.default]\nworkers = {config.SLOTS}\nqueue_limit = 10000000\n')
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
                config.log(f"spoold {self.pid} did not exit within 20 s of SIGTERM; killed")
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
        return (f"floor: {self.binary}; {config.SLOTS} slots; spoold's protocol and syncs, "
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
        return f"tsp: Task Spooler server, -S {config.SLOTS}; a `tsp true` client process per job (it waits for its slot)"

    def available(self):
        return None if shutil.which("tsp") else "not installed (apt-get install task-spooler)"

    def env(self):
        return dict(os.environ, TS_SOCKET=os.path.join(self.dir, "sock"),
                    TMPDIR=os.path.join(self.dir, "out"), TS_MAXFINISHED="1000000")

    def start(self, d):
        self.dir = d
        os.makedirs(os.path.join(d, "out"), exist_ok=True)
        subprocess.run(["tsp", "-S", str(config.SLOTS)], env=self.env(), check=True)
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
                f"of its NQDIR; {config.SLOTS} NQDIRs round-robin = {config.SLOTS} slots")

    def available(self):
        return None if shutil.which("nq") else "not installed (apt-get install nq)"

    def start(self, d):
        self.dir, self.next = d, 0
        for q in range(config.SLOTS):
            os.makedirs(os.path.join(d, f"q{q}"), exist_ok=True)
        self.pid = None

    def submit(self, n, argv):
        cmd = " ".join(argv)
        sh_loop(n, f'NQDIR={self.dir}/q$(( (i + {self.next}) % {config.SLOTS} )) nq -q {cmd}')
        self.next = (self.next + n) % config.SLOTS

    def submit_one(self, argv):
        env = dict(os.environ, NQDIR=os.path.join(self.dir, f"q{self.next}"))
        subprocess.run(["nq", "-q"] + argv, env=env)
        self.next = (self.next + 1) % config.SLOTS

    def _count(self, marker):
        """Jobs whose nq log holds `marker`, over both queues."""
        n = 0
        for q in range(config.SLOTS):
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
                 for q in range(config.SLOTS)]
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
        for q in range(config.SLOTS):
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
        return f"parallel: one perl controller per batch, -j {config.SLOTS} --joblog; each job through a shell"

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
        p = subprocess.Popen(["parallel", "--will-cite", "-N0", "-j", str(config.SLOTS), "--joblog",
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
