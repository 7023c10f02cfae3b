#!/usr/bin/env python3
"""profile.py - where spoold's time goes while it runs N jobs of `true`
(2 workers), with the tools this machine has.  Not part of `make bench`.

    python3 bench/profile.py [strace|perf|callgrind|history ...]   (default: all)

  strace     strace -w -c attached to the daemon: wall-clock time per syscall
             of its one thread (children not traced)
             and syscalls per job                              N = PROFILE_N [300]
  perf       perf record -e cpu-clock --call-graph dwarf on the daemon; top symbols
             by self time, then spoold's functions by inclusive time (this VM has
             no hardware counters; cpu-clock sampling works)
  callgrind  valgrind --tool=callgrind on the daemon (needs a build with symbols:
             PROFILE_SPOOLD, default build-bench/spoold; RelWithDebInfo is better)
             N = PROFILE_CG_N [200]; top functions by inclusive instructions
  history    perf + strace with BENCH_HISTORY terminal jobs in jobs/ (reuses
             the history spool that spoold_bench.py keeps in BENCH_WORK);
             N = PROFILE_HIST_N [20]
Output: text on stdout; raw files in PROFILE_OUT [/var/tmp/spoold-bench/profile].
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import measure  # noqa: E402
import systems  # noqa: E402

N = int(os.environ.get("PROFILE_N", "300"))
CALLGRAPH = os.environ.get("PROFILE_CALLGRAPH", "dwarf,16384")   # or "fp"
CG_N = int(os.environ.get("PROFILE_CG_N", "200"))
OUT = os.environ.get("PROFILE_OUT", os.path.join(config.WORK, "profile"))
BIN = os.path.abspath(os.environ.get("PROFILE_SPOOLD", systems.find_spoold() or "build-bench/spoold"))


class Wrapped(systems.Spoold):
    """spoold started under a wrapper command (valgrind)."""

    def __init__(self, wrapper, *a):
        super().__init__(*a)
        self.wrapper = wrapper
        real = self.binary
        self.binary = os.path.join(OUT, "wrapped-spoold.sh")
        with open(self.binary, "w") as f:
            f.write("#!/bin/sh\nexec " + " ".join(wrapper) + f" {real} \"$@\"\n")
        os.chmod(self.binary, 0o755)


def run_jobs(sp, n, d, root=None, attach=None):
    """Start spoold, optionally attach a profiler to it, run n jobs, stop."""
    sp.start(d, root=root)
    tool = None
    if attach:
        tool = subprocess.Popen([a.replace("@PID@", str(sp.pid)) for a in attach],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    cpu0 = systems.proc_cpu_s(sp.pid)
    t0 = time.monotonic()
    sp.submit(n, ["true"])
    done = sp.wait(t0 + 600)
    wall = time.monotonic() - t0
    cpu = systems.proc_cpu_s(sp.pid) - cpu0
    if tool:
        tool.send_signal(signal.SIGINT)
        tool.wait(timeout=120)
    sp.stop()
    print(f"  {done} jobs in {wall:.2f} s = {done / wall:.1f} jobs/s; daemon CPU {cpu:.2f} s "
          f"= {cpu * 1000 / max(done, 1):.2f} ms/job ({100 * cpu / wall:.0f}% of one core)")
    return done, wall


def strace_profile(root=None, n=N, tag="empty"):
    print(f"\n== strace -w -c (daemon thread only), {n} jobs, {tag} spool")
    d = tempfile.mkdtemp(prefix="strace-", dir=OUT)
    out = os.path.join(OUT, f"strace-{tag}.txt")
    sp = systems.Spoold(BIN, SUBMIT, OUT)
    done, wall = run_jobs(sp, n, d, root=root,
                          attach=["strace", "-w", "-c", "-o", out, "-p", "@PID@"])
    time.sleep(0.5)
    lines = open(out).read().splitlines()
    print("  " + "\n  ".join(lines[:2]))
    for line in lines[2:16]:
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit():
            print(f"  {line}   [{int(parts[3]) / max(done, 1):.1f}/job]")
    print("  " + lines[-1])
    cleanup(d, root, sp)


def perf_profile(root=None, n=N, tag="empty"):
    print(f"\n== perf record -e cpu-clock -g, {n} jobs, {tag} spool")
    d = tempfile.mkdtemp(prefix="perf-", dir=OUT)
    data = os.path.join(OUT, f"perf-{tag}.data")
    sp = systems.Spoold(BIN, SUBMIT, OUT)
    run_jobs(sp, n, d, root=root,
             attach=["perf", "record", "-e", "cpu-clock", "-F", "1000", "--call-graph", CALLGRAPH,
                     "-o", data, "-p", "@PID@"])
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                          "--percent-limit", "1.5", "--sort", "dso,sym"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    for line in rep.splitlines():
        if line.strip() and not line.startswith("#"):
            print("  " + line.rstrip()[:150])
    if CALLGRAPH.startswith("dwarf"):
        # inclusive time of spoold's own functions (dwarf unwinding: no frame pointers needed)
        rep = subprocess.run(["perf", "report", "-i", data, "--comm", "spoold", "--children", "--stdio",
                              "-g", "none", "--percent-limit", "2", "--sort", "sym"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        print("  -- inclusive (children), spoold's functions and syscalls:")
        for line in rep.splitlines():
            if re.search(r"spoold::|__x64_sys_|kernel_clone", line):
                print("  " + re.sub(r"\s+", " ", line.strip())[:150])
    cleanup(d, root, sp)


def callgrind_profile():
    print(f"\n== valgrind --tool=callgrind, {CG_N} jobs, empty spool ({BIN})")
    d = tempfile.mkdtemp(prefix="cg-", dir=OUT)
    cg = os.path.join(OUT, "callgrind.out")
    sp = Wrapped(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
                  "--trace-children=no"], BIN, SUBMIT, OUT)
    run_jobs(sp, CG_N, d)
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99", cg],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    shown = 0
    for line in ann.splitlines():
        if re.match(r"^\s*[\d,]+ \(", line) or "PROGRAM TOTALS" in line:
            print("  " + re.sub(r"\s+", " ", line.strip())[:170])
            shown += 1
            if shown > 45:
                break
    shutil.rmtree(d, ignore_errors=True)


def cleanup(d, root, sp):
    if root:
        for jid in sp.submitted:
            shutil.rmtree(os.path.join(root, "jobs", jid), ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)


def main():
    global SUBMIT
    what = sys.argv[1:] or ["strace", "perf", "callgrind", "history"]
    os.makedirs(OUT, exist_ok=True)
    bindir = tempfile.mkdtemp(prefix="bin-", dir=OUT)
    _, SUBMIT = systems.build_helpers(bindir)
    print(f"spoold: {BIN}; load average {open('/proc/loadavg').read().split()[:3]}")
    if "strace" in what:
        strace_profile()
    if "perf" in what:
        perf_profile()
    if "callgrind" in what:
        callgrind_profile()
    if "history" in what:
        hist = measure.make_history(systems.Spoold(BIN, SUBMIT, config.WORK), config.WORK, config.HISTORY)
        hn = int(os.environ.get("PROFILE_HIST_N", "20"))
        perf_profile(root=hist, n=hn, tag="history")
        strace_profile(root=hist, n=hn, tag="history")
    shutil.rmtree(bindir, ignore_errors=True)


if __name__ == "__main__":
    main()
