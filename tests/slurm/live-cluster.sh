#!/bin/sh
# live-cluster.sh start|stop: the single-node Slurm cluster for the Slurm live
# tests ("slurm live:" cases in tests/unit/slurm_live_test.cpp and
# blackbox/test_slurm.py), for `make test`.
#
#   start  as root: runs start-cluster.sh beside this script (it installs the
#          Debian packages if missing) unless a controller already answers. Its
#          output also goes to $SPOOLD_SLURM_START_LOG. It never stops `make
#          test`: when the cluster cannot start, the live tests run and FAIL,
#          quoting that log. Not root: prints a visible SKIP; the live tests
#          then skip (ctest counts them as skipped, not passed).
#   stop   stops the cluster only if `start` started it (a marker file), so a
#          developer's own cluster keeps running.
#
# Environment: the SLURM_LOCAL_* settings of start-cluster.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
marker=${TMPDIR:-/tmp}/spoold-test-started-slurm
log=${SPOOLD_SLURM_START_LOG:-${TMPDIR:-/tmp}/spoold-slurm-start.log}
export PATH="$PATH:/usr/sbin:/sbin"

case "${1:-}" in
  start)
    rm -f "$log"
    if [ "$(id -u)" != 0 ]; then
      echo "SKIP: Slurm live tests need root to start a cluster (sudo $here/start-cluster.sh)"
      exit 0
    fi
    if command -v scontrol >/dev/null 2>&1 && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
      echo "slurm: a controller already answers; using it"
      exit 0
    fi
    # The exit status of start-cluster.sh, not tee's.
    if { "$here/start-cluster.sh" 2>&1; echo "exit status $?" >"$log.rc"; } | tee "$log"; \
       grep -qx "exit status 0" "$log.rc"; then
      touch "$marker"
    else
      echo "ERROR: could not start the local Slurm cluster ($(cat "$log.rc")); the Slurm live tests will fail" | tee -a "$log"
    fi
    rm -f "$log.rc"
    ;;
  stop)
    if [ -e "$marker" ] && [ "$(id -u)" = 0 ]; then
      rm -f "$marker"
      "$here/stop-cluster.sh"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
exit 0
