#!/usr/bin/env bash
# start-cluster.sh - bring up a real single-node Slurm cluster (munged +
# slurmctld + slurmd) on this machine without systemd, e.g. inside a CI job.
#
# Idempotent: a second run with the same settings leaves running daemons alone;
# a run with changed settings rewrites slurm.conf and restarts slurmctld/slurmd.
# Must run as root. Uses only Debian packages (slurmctld slurmd slurm-client munge).
#
# Usage: start-cluster.sh [--clean] [--no-install] [--no-smoke] [-h]
#   --clean       stop our daemons (if running) and wipe job state/logs first
#                 (job ids restart at 1)
#   --no-install  never call apt-get; fail if a package is missing
#   --no-smoke    skip the final one-job smoke test
#
# Environment (all optional):
#   SLURM_LOCAL_DIR        state/spool/logs/pid files   [/tmp/local-slurm]
#   SLURM_LOCAL_CONF       slurm.conf to write          [/etc/slurm/slurm.conf]
#                          (any other path: export SLURM_CONF=<it> for clients;
#                          $SLURM_LOCAL_DIR/env.sh does that)
#   SLURM_LOCAL_FORCE=1    overwrite a slurm.conf this script did not write
#   SLURM_LOCAL_PARTITION  partition name               [debug]
#   SLURM_LOCAL_CLUSTER    ClusterName                  [localci]
#   SLURM_LOCAL_CPUS       CPUs to advertise (default: real count). A value
#                          above the real count oversubscribes the machine
#                          (more concurrent jobs); uses config_overrides.
#   SLURM_LOCAL_CTLD_PORT  / SLURM_LOCAL_SLURMD_PORT    [6817 / 6818]
#   SLURM_LOCAL_MIN_JOB_AGE seconds a finished job stays visible in
#                          scontrol/squeue (no accounting DB here)  [86400]
#   SLURM_LOCAL_KILL_WAIT  SIGTERM->SIGKILL grace on cancel/timeout [5]
#   SLURM_LOCAL_WAIT       seconds to wait for each daemon          [60]
set -Eeuo pipefail

PROG=start-cluster
export PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"

DIR=${SLURM_LOCAL_DIR:-/tmp/local-slurm}
CONF=${SLURM_LOCAL_CONF:-/etc/slurm/slurm.conf}
FORCE=${SLURM_LOCAL_FORCE:-0}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
CLUSTER=${SLURM_LOCAL_CLUSTER:-localci}
CPUS_WANTED=${SLURM_LOCAL_CPUS:-}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
MIN_JOB_AGE=${SLURM_LOCAL_MIN_JOB_AGE:-86400}
KILL_WAIT=${SLURM_LOCAL_KILL_WAIT:-5}
WAIT=${SLURM_LOCAL_WAIT:-60}
NODE=localhost
. "$(dirname "$(readlink -f "$0")")/common.sh"

CLEAN=0 INSTALL=1 SMOKE=1
for a in "$@"; do
  case "$a" in
    --clean) CLEAN=1 ;;
    --no-install) INSTALL=0 ;;
    --no-smoke) SMOKE=0 ;;
    -h|--help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$PROG: ERROR: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done

trap 'echo "$PROG: ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

show_log() { # file [lines]
  if [ -s "$1" ]; then
    echo "----- last ${2:-25} lines of $1 -----" >&2
    tail -n "${2:-25}" "$1" >&2
    echo "-----" >&2
  fi
}


case "$DIR" in /|"") die "SLURM_LOCAL_DIR must not be empty or /";; esac
for v in CTLD_PORT SLURMD_PORT MIN_JOB_AGE KILL_WAIT WAIT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done
[ -z "$CPUS_WANTED" ] || [[ "$CPUS_WANTED" =~ ^[1-9][0-9]*$ ]] \
  || die "SLURM_LOCAL_CPUS must be a positive number (got '$CPUS_WANTED')"
[ "$(id -u)" = 0 ] || die "must run as root (slurmd has to start jobs as the submitting user)"
if [ -e "$CONF" ] && [ "$FORCE" != 1 ] && ! ours "$CONF"; then
  die "$CONF exists and was not written by this script; move it away, set SLURM_LOCAL_CONF to another path, or set SLURM_LOCAL_FORCE=1"
fi

# ---------------------------------------------------------------- packages
missing=()
command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
command -v slurmd    >/dev/null 2>&1 || missing+=(slurmd)
command -v sbatch    >/dev/null 2>&1 || missing+=(slurm-client)
command -v munged    >/dev/null 2>&1 || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (and --no-install given)"
  command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get"
  log "installing ${missing[*]} with apt-get"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 \
      install -y --no-install-recommends "${missing[@]}" > "/tmp/$PROG-apt.log" 2>&1
  }
  if ! apt_install; then
    log "apt-get install failed; running apt-get update and retrying"
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update \
      > "/tmp/$PROG-apt-update.log" 2>&1 || { show_log "/tmp/$PROG-apt-update.log"; die "apt-get update failed"; }
    apt_install || { show_log "/tmp/$PROG-apt.log"; die "apt-get install ${missing[*]} failed"; }
  fi
  hash -r
  for c in slurmctld slurmd sbatch munged; do
    command -v $c >/dev/null 2>&1 || die "'$c' still not found after installing packages"
  done
fi
VERSION=$(slurmctld -V 2>/dev/null | awk '{print $2}' || true)
log "slurm $VERSION, munge $(munged --version 2>&1 | awk '{print $1}' | sed 's/munge-//')"

# Stop whatever this script started earlier (used by --clean and by restarts).
stop_ours() {
  local stop
  stop="$(dirname "$(readlink -f "$0")")/stop-cluster.sh"
  [ -x "$stop" ] || die "$stop not found/executable (it must sit beside this script)"
  SLURM_LOCAL_DIR="$DIR" SLURM_LOCAL_CONF="$CONF" "$stop" "$@"
}

if [ "$CLEAN" = 1 ]; then
  log "--clean: stopping our daemons and wiping job state in $DIR"
  stop_ours --keep-munge || die "could not stop the running daemons"
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/smoke"
fi

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/smoke" \
  || die "cannot create folders under $DIR"
chmod 0755 "$DIR" "$DIR/log"
chmod 0700 "$DIR/state"
# job scripts are exec'ed from the spool dir as the submitting user: keep it 0755
chmod 0755 "$DIR/spool"
chmod 1777 "$DIR/smoke"
touch "$DIR/.start-local-slurm"

# ---------------------------------------------------------------- munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
KEY=/etc/munge/munge.key
if [ ! -s "$KEY" ]; then
  log "creating munge key $KEY"
  install -d -o munge -g munge -m 0700 /etc/munge
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile="$KEY" || die "mungekey failed"
  else
    dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none || die "cannot write $KEY"
  fi
fi
chown munge:munge "$KEY" && chmod 0400 "$KEY"

if munge_ok; then
  log "munged already running (reused)"
else
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  rm -f /run/munge/munged.pid
  log "starting munged"
  if ! runuser -u munge -- /usr/sbin/munged 2>"$DIR/log/munged.start.err"; then
    log "munged refused to start ($(tr '\n' ' ' < "$DIR/log/munged.start.err")); retrying with --force"
    runuser -u munge -- /usr/sbin/munged --force 2>>"$DIR/log/munged.start.err" \
      || { show_log "$DIR/log/munged.start.err"; show_log /var/log/munge/munged.log; die "munged failed to start"; }
  fi
  for i in $(seq 1 50); do munge_ok && break; sleep 0.2; done
  munge_ok || { show_log /var/log/munge/munged.log; die "munged started but munge/unmunge round-trip fails"; }
  pid_of /run/munge/munged.pid > "$DIR/run/munged.ours"
  log "munged up (pid $(cat "$DIR/run/munged.ours"))"
fi

# ---------------------------------------------------------------- slurm.conf
HW=$(slurmd -C 2>/dev/null | head -n 1) || true
hw() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
HW_CPUS=$(hw CPUs); HW_MEM=$(hw RealMemory)
[ -n "$HW_CPUS" ] || HW_CPUS=$(nproc)
FREE_MEM=$(free -m | awk '/^Mem:/{print $2}')
[ -n "$HW_MEM" ] || HW_MEM=$FREE_MEM
[ "$FREE_MEM" -lt "$HW_MEM" ] && HW_MEM=$FREE_MEM
# a little below what slurmd reports, so the node is never drained for "Low RealMemory"
MEM=$(( HW_MEM > 1024 ? HW_MEM - 128 : HW_MEM * 9 / 10 ))
[ "$MEM" -ge 1 ] || MEM=1
if [ -n "$CPUS_WANTED" ] && [ "$CPUS_WANTED" != "$HW_CPUS" ]; then
  NODE_HW="CPUs=$CPUS_WANTED"
  SLURMD_PARAMS="SlurmdParameters=config_overrides"
else
  NODE_HW="CPUs=$HW_CPUS Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore)"
  [ -n "$(hw CoresPerSocket)" ] || NODE_HW="CPUs=$HW_CPUS"
  SLURMD_PARAMS="#SlurmdParameters="
fi

NEW_CONF=$(cat <<EOF
$MARKER
# Regenerate with start-cluster.sh; stop with stop-cluster.sh.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups: process tracking by parent pid, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no slurmdbd: sacct does not work; finished jobs stay in scontrol for MinJobAge
# seconds and every finished job is appended to the jobcomp file below
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
MinJobAge=$MIN_JOB_AGE
MaxJobCount=100000
# a job never runs twice by itself
JobRequeue=0
ReturnToService=2
KillWait=$KILL_WAIT
InactiveLimit=0
OverTimeLimit=0
SchedulerType=sched/backfill
# start jobs as soon as a CPU frees up (default waits up to 3 s per batch)
SchedulerParameters=batch_sched_delay=0
$SLURMD_PARAMS
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost $NODE_HW RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)

CONF_CHANGED=0
if [ -e "$CONF" ]; then
  if ! ours "$CONF"; then
    [ "$FORCE" = 1 ] || die "$CONF exists and was not written by this script; move it away, set SLURM_LOCAL_CONF to another path, or set SLURM_LOCAL_FORCE=1"
    cp -p "$CONF" "$CONF.bak.$(date +%s)"
    log "saved foreign $CONF to $CONF.bak.*"
  fi
  [ "$NEW_CONF" = "$(cat "$CONF")" ] || CONF_CHANGED=1
else
  CONF_CHANGED=1
fi
if [ "$CONF_CHANGED" = 1 ]; then
  mkdir -p "$(dirname "$CONF")" || die "cannot create $(dirname "$CONF")"
  printf '%s\n' "$NEW_CONF" > "$CONF.tmp.$$" && chmod 0644 "$CONF.tmp.$$" && mv -f "$CONF.tmp.$$" "$CONF" \
    || die "cannot write $CONF"
  log "wrote $CONF"
fi
export SLURM_CONF="$CONF"
printf 'export SLURM_CONF=%q\n' "$CONF" > "$DIR/env.sh"

# ---------------------------------------------------------------- daemons
CTLD_PIDF=$DIR/run/slurmctld.pid
SLURMD_PIDF=$DIR/run/slurmd.pid
ctld_pid=$(pid_of "$CTLD_PIDF"); slurmd_pid=$(pid_of "$SLURMD_PIDF")
ctld_up=0; slurmd_up=0
alive "$ctld_pid" slurmctld && ctld_up=1
alive "$slurmd_pid" slurmd && slurmd_up=1

if [ "$CONF_CHANGED" = 1 ] && { [ $ctld_up = 1 ] || [ $slurmd_up = 1 ]; }; then
  log "configuration changed: restarting slurmctld/slurmd"
  stop_ours --keep-munge --keep-jobs || die "could not stop the running daemons"
  ctld_up=0; slurmd_up=0
fi

port_busy() { # port -> true if something listens on it (ss or /proc fallback)
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
  else
    local hex; hex=$(printf '%04X' "$1")
    awk -v p=":$hex" '$2 ~ p"$" && $4=="0A"{f=1} END{exit !f}' /proc/net/tcp /proc/net/tcp6 2>/dev/null
  fi
}

if [ $ctld_up = 1 ]; then
  log "slurmctld already running (pid $ctld_pid)"
else
  port_busy "$CTLD_PORT" && die "port $CTLD_PORT is in use by another process (another slurmctld? set SLURM_LOCAL_CTLD_PORT)"
  rm -f "$CTLD_PIDF"
  log "starting slurmctld"
  slurmctld -f "$CONF" >>"$DIR/log/slurmctld.stdout" 2>&1 \
    || { show_log "$DIR/log/slurmctld.stdout"; show_log "$DIR/log/slurmctld.log"; die "slurmctld failed to start"; }
fi
ok=0
for i in $(seq 1 $((WAIT * 4))); do
  if scontrol ping 2>/dev/null | grep -q 'is UP'; then ok=1; break; fi
  if [ $i -gt 8 ] && ! alive "$(pid_of "$CTLD_PIDF")" slurmctld; then break; fi
  sleep 0.25
done
[ $ok = 1 ] || { show_log "$DIR/log/slurmctld.stdout"; show_log "$DIR/log/slurmctld.log"; die "slurmctld did not answer 'scontrol ping' within ${WAIT}s"; }
log "slurmctld up (pid $(pid_of "$CTLD_PIDF"), port $CTLD_PORT)"

if [ $slurmd_up = 1 ]; then
  log "slurmd already running (pid $slurmd_pid)"
else
  port_busy "$SLURMD_PORT" && die "port $SLURMD_PORT is in use by another process (another slurmd? set SLURM_LOCAL_SLURMD_PORT)"
  rm -f "$SLURMD_PIDF"
  log "starting slurmd (node $NODE)"
  slurmd -f "$CONF" -N "$NODE" >>"$DIR/log/slurmd.stdout" 2>&1 \
    || { show_log "$DIR/log/slurmd.stdout"; show_log "$DIR/log/slurmd.log"; die "slurmd failed to start"; }
fi

state=""; resumed=0
for i in $(seq 1 $((WAIT * 4))); do
  state=$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mix|mixed|alloc|allocated|comp|completing) break ;;
    down*|drain*|drng*|fail*)
      if [ $resumed = 0 ] && [ $i -gt 8 ]; then
        log "node is '$state' ($(sinfo -h -N -n "$NODE" -o '%E')); resuming it"
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        resumed=1
      fi ;;
  esac
  if [ $i -gt 8 ] && ! alive "$(pid_of "$SLURMD_PIDF")" slurmd; then break; fi
  sleep 0.25
done
case "$state" in
  idle|mix|mixed|alloc|allocated|comp|completing) ;;
  *) show_log "$DIR/log/slurmd.stdout"; show_log "$DIR/log/slurmd.log"; show_log "$DIR/log/slurmctld.log" 10
     die "node $NODE did not become idle within ${WAIT}s (state '${state:-unknown}', reason '$(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null)')" ;;
esac
log "slurmd up (pid $(pid_of "$SLURMD_PIDF"), port $SLURMD_PORT); node $NODE is $state"

# ---------------------------------------------------------------- smoke test
if [ "$SMOKE" = 1 ]; then
  jid=$(sbatch --parsable --job-name=smoke --time=1 -p "$PARTITION" --chdir="$DIR/smoke" \
        --output="$DIR/smoke/%j.out" --wrap 'echo smoke-ok' 2>"$DIR/smoke/sbatch.err") \
    || { show_log "$DIR/smoke/sbatch.err"; die "smoke test: sbatch failed"; }
  jid=${jid%%;*}
  st=""
  for i in $(seq 1 $((WAIT * 10))); do
    st=$(scontrol show job -o "$jid" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
    case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|BOOT_FAIL|OUT_OF_MEMORY|DEADLINE|PREEMPTED) break ;; esac
    sleep 0.1
  done
  [ "$st" = COMPLETED ] && grep -q smoke-ok "$DIR/smoke/$jid.out" 2>/dev/null \
    || { scontrol show job -o "$jid" >&2 || true; show_log "$DIR/log/slurmd.log" 15; die "smoke test job $jid ended as '${st:-unknown}'"; }
  log "smoke test job $jid COMPLETED"
fi

log "ready: partition '$PARTITION' on node $NODE; SLURM_CONF=$CONF (source $DIR/env.sh); stop with stop-cluster.sh"
