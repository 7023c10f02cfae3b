#!/bin/sh
# live-cluster.sh start|stop: the single-node Slurm cluster for the "slurm live:"
# test cases (tests/unit/slurm_test.cpp), for `make test`.
#
#   start  as root: runs ../shared/slurm/start-local-slurm.sh (installs the
#          Debian packages if missing) unless a controller already answers;
#          otherwise prints a visible SKIP. Never fails the build: without a
#          cluster the live cases print "SKIP: no Slurm cluster" and pass.
#   stop   stops the cluster only if `start` started it (a marker file), so a
#          developer's own cluster keeps running.
#
# Environment: SPOOLD_SHARED_DIR (default: ../shared beside the repository),
# and the SLURM_LOCAL_* settings of the start script.
set -u
here=$(cd "$(dirname "$0")" && pwd)
shared=${SPOOLD_SHARED_DIR:-$here/../../../shared}
marker=${TMPDIR:-/tmp}/spoold-test-started-slurm
export PATH="$PATH:/usr/sbin:/sbin"

case "${1:-}" in
  start)
    if [ "$(id -u)" != 0 ]; then
      echo "SKIP: Slurm live tests need root to start a cluster (sudo $shared/slurm/start-local-slurm.sh)"
      exit 0
    fi
    if command -v scontrol >/dev/null 2>&1 && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
      echo "slurm: a controller already answers; using it"
      exit 0
    fi
    if "$shared/slurm/start-local-slurm.sh"; then
      touch "$marker"
    else
      echo "SKIP: could not start the local Slurm cluster; the Slurm live tests will skip"
    fi
    ;;
  stop)
    if [ -e "$marker" ] && [ "$(id -u)" = 0 ]; then
      rm -f "$marker"
      "$shared/slurm/stop-local-slurm.sh"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
exit 0
