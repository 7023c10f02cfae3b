#!/usr/bin/env bash
# stop-cluster.sh - stop the single-node Slurm cluster started by
# start-cluster.sh. Stops only processes whose pid files the start script
# wrote (and munged only if that script started it). Safe to run repeatedly.
#
# Usage: stop-cluster.sh [--keep-jobs] [--keep-munge] [--purge] [-h]
#   --keep-jobs   do not scancel queued/running jobs first (they survive a
#                 slurmd restart; used by start-cluster.sh on config change)
#   --keep-munge  leave munged running
#   --purge       afterwards delete SLURM_LOCAL_DIR and the generated slurm.conf
#
# Environment: SLURM_LOCAL_DIR [/tmp/local-slurm], SLURM_LOCAL_CONF
# [/etc/slurm/slurm.conf] - the same values given to start-cluster.sh.
set -Euo pipefail

PROG=stop-cluster
export PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"
DIR=${SLURM_LOCAL_DIR:-/tmp/local-slurm}
CONF=${SLURM_LOCAL_CONF:-/etc/slurm/slurm.conf}
. "$(dirname "$(readlink -f "$0")")/common.sh"

KEEP_JOBS=0 KEEP_MUNGE=0 PURGE=0
for a in "$@"; do
  case "$a" in
    --keep-jobs) KEEP_JOBS=1 ;;
    --keep-munge) KEEP_MUNGE=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,/^set -Euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$PROG: ERROR: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || die "must run as root"
case "$DIR" in /|"") die "SLURM_LOCAL_DIR must not be empty or /";; esac


# stop_pid PID NAME SECONDS: SIGTERM, wait, then SIGKILL. Returns 1 if it survives.
stop_pid() {
  local pid=$1 name=$2 secs=$3 _
  alive "$pid" "$name" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 10))); do alive "$pid" "$name" || return 0; sleep 0.1; done
  log "$name (pid $pid) ignored SIGTERM for ${secs}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do alive "$pid" "$name" || return 0; sleep 0.1; done
  echo "$PROG: ERROR: $name (pid $pid) still running" >&2
  return 1
}

rc=0
export SLURM_CONF="$CONF"
ctld_pid=$(pid_of "$DIR/run/slurmctld.pid")
slurmd_pid=$(pid_of "$DIR/run/slurmd.pid")

if [ $KEEP_JOBS = 0 ] && alive "$ctld_pid" slurmctld && [ -r "$CONF" ]; then
  jobs=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    kw=$(scontrol show config 2>/dev/null | awk '$1=="KillWait"{print $3}'); kw=${kw:-30}
    for _ in $(seq 1 $(((kw + 15) * 5))); do
      [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] && break
      sleep 0.2
    done
    left=$(squeue -h -o '%A %T' 2>/dev/null | tr '\n' ' ')
    [ -z "$left" ] || log "WARNING: jobs still not finished: $left"
  fi
fi

stop_pid "$slurmd_pid" slurmd 20 || rc=1
stop_pid "$ctld_pid" slurmctld 30 || rc=1
rm -f "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid"

if [ $KEEP_MUNGE = 0 ] && [ -s "$DIR/run/munged.ours" ]; then
  mpid=$(pid_of "$DIR/run/munged.ours")
  stop_pid "$mpid" munged 10 || rc=1
  rm -f "$DIR/run/munged.ours"
fi

# Job step daemons of jobs that did not die (only possible with --keep-jobs or
# if scancel failed). Reported, not killed: they may belong to another cluster.
steps=$(ps -eo pid=,stat=,comm= 2>/dev/null | awk '$3 ~ /^slurmstepd/ && $2 !~ /^Z/ {print $1}' | tr '\n' ' ')
[ -z "${steps// /}" ] || log "note: slurmstepd processes still running: $steps"

if [ $PURGE = 1 ]; then
  if [ -e "$DIR/.start-local-slurm" ]; then rm -rf "$DIR" && log "removed $DIR"
  elif [ -e "$DIR" ]; then log "WARNING: $DIR lacks the start-local-slurm marker; not removed"; fi
  if [ -e "$CONF" ]; then
    if ours "$CONF"; then rm -f "$CONF" && log "removed $CONF"
    else log "WARNING: $CONF was not written by start-cluster.sh; not removed"; fi
  fi
fi

[ $rc = 0 ] && log "stopped" || log "ERROR: some daemons could not be stopped"
exit $rc
