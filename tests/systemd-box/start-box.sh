#!/usr/bin/env bash
# start-box.sh: boot a Debian 12 container whose PID 1 is systemd, on a machine whose
# own PID 1 is not (these machines), to test a unit as it really runs: Type=notify,
# the watchdog, reload, `systemctl restart` with jobs running, a .deb install/upgrade.
#
#   sudo ./start-box.sh          # 1-4 min the first time (debootstrap), ~5 s after
#   ./box.sh systemctl status    # run a command inside (nsenter into the container)
#   sudo ./stop-box.sh           # power it off
#
# Settings (environment): BOX_DIR (root file system, default /var/lib/machines/spoold-box;
# kept between runs), BOX_STATE (pid file and console log, default /tmp/spoold-box),
# BOX_PACKAGES (extra Debian packages in the image, comma-separated),
# BOX_BIND (space-separated host folders bind-mounted at the same path, read-only:
# e.g. the build folder), BOX_BIND_RW (the same, writable).
# The container shares the host's network (apt works inside) and has no private
# users. Needs root, systemd-container and debootstrap (installed when missing).
set -euo pipefail
BOX_DIR=${BOX_DIR:-/var/lib/machines/spoold-box}
BOX_STATE=${BOX_STATE:-/tmp/spoold-box}
BOX_PACKAGES=${BOX_PACKAGES:-}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "start-box: run as root" >&2; exit 1; }
mkdir -p "$BOX_STATE"

if [ -s "$BOX_STATE/init.pid" ] && "$here/box.sh" true 2>/dev/null; then
  echo "start-box: already running (init pid $(cat "$BOX_STATE/init.pid"))"; exit 0
fi

need=""
command -v systemd-nspawn >/dev/null || need+=" systemd-container"
command -v debootstrap >/dev/null || need+=" debootstrap"
if [ -n "$need" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# The image: minbase plus systemd, dbus and what a C++ daemon of this project links.
if [ ! -x "$BOX_DIR/usr/lib/systemd/systemd" ]; then
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  pkgs="systemd,systemd-sysv,dbus,procps,python3,libuv1,libspdlog1.10,libfmt9${BOX_PACKAGES:+,$BOX_PACKAGES}"
  rm -rf "$BOX_DIR.partial"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$BOX_DIR.partial" "$mirror" >"$BOX_STATE/debootstrap.log" 2>&1 \
    || { tail -20 "$BOX_STATE/debootstrap.log"; echo "start-box: debootstrap failed" >&2; exit 1; }
  cp /etc/apt/sources.list.d/debian.sources "$BOX_DIR.partial/etc/apt/sources.list.d/" 2>/dev/null || true
  echo spoold-box > "$BOX_DIR.partial/etc/hostname"
  mv "$BOX_DIR.partial" "$BOX_DIR"
fi

binds=()
for b in ${BOX_BIND:-}; do binds+=("--bind-ro=$b"); done
for b in ${BOX_BIND_RW:-}; do binds+=("--bind=$b"); done

# The host has a hybrid cgroup setup; the container gets a unified (v2) hierarchy.
# --register=no: no machined on the host. setsid: the container must not share the
# caller's process group, or the caller's end takes it down.
mkdir -p /run/systemd/nspawn
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 setsid systemd-nspawn --quiet --register=no --keep-unit \
  --console=passive -D "$BOX_DIR" "${binds[@]}" -b >"$BOX_STATE/console.log" 2>&1 </dev/null &
echo $! >"$BOX_STATE/nspawn.pid"

for _ in $(seq 1 100); do
  init=$(pgrep -P "$(cat "$BOX_STATE/nspawn.pid")" 2>/dev/null | head -1 || true)
  if [ -n "$init" ]; then
    echo "$init" >"$BOX_STATE/init.pid"
    s=$(nsenter -t "$init" -a systemctl is-system-running 2>/dev/null || true)
    case "$s" in running|degraded) echo "start-box: systemd is $s (init pid $init)"; exit 0;; esac
  fi
  sleep 0.2
done
tail -20 "$BOX_STATE/console.log"; echo "start-box: systemd did not come up" >&2; exit 1
