"""filesystems.py - the file systems a run is repeated on (BENCH_FS):

  disk   BENCH_WORK itself, on whatever this machine's disk is
  ext4   a journaled ext4 (data=ordered, the default) made for the run in an
         image file under BENCH_WORK, on a loop device; removed after
  tmpfs  a tmpfs mounted for the run: no disk at all, the CPU floor; removed
         after

ext4 and tmpfs need root (mount, losetup) and mkfs.ext4; without them the run
on that file system is left out and the table says why. Each is mounted under
BENCH_WORK/fs-<kind>, so a leftover of a killed run is found and cleaned up by
the next one."""
import contextlib
import os
import shutil
import subprocess

import config

KINDS = ("disk", "ext4", "tmpfs")


def _run(*cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout


def _mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _cleanup(mnt, image):
    """Unmounts what an earlier (killed) run left under `mnt`, and frees the
    loop device of `image`."""
    while _mounted(mnt):
        subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
    if os.path.exists(image):
        out = subprocess.run(["losetup", "-j", image], stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            subprocess.run(["losetup", "-d", line.split(":", 1)[0]], stderr=subprocess.DEVNULL)
        os.unlink(image)


def unavailable(kind):
    """Why a run on `kind` cannot be made here, or None."""
    if kind not in KINDS:
        return f"unknown file system {kind!r} (BENCH_FS takes {' '.join(KINDS)})"
    if kind == "disk":
        return None
    if os.geteuid() != 0:
        return "needs root (mount)"
    need = ["mount", "umount"] + (["losetup", "mkfs.ext4"] if kind == "ext4" else [])
    missing = [t for t in need if shutil.which(t) is None]
    return f"{' '.join(missing)} not found" if missing else None


@contextlib.contextmanager
def mounted(kind, base):
    """Yields the folder to run in: `base` for disk, else a fresh file system
    mounted under `base`, unmounted and deleted when the block ends."""
    if kind == "disk":
        yield base
        return
    mnt = os.path.join(base, f"fs-{kind}")
    image = os.path.join(base, f"fs-{kind}.img")
    _cleanup(mnt, image)
    os.makedirs(mnt, exist_ok=True)
    try:
        if kind == "tmpfs":
            _run("mount", "-t", "tmpfs", "-o", f"size={config.FS_SIZE_GIB}g,nr_inodes=0,mode=0755", "tmpfs", mnt)
        else:
            with open(image, "wb") as f:
                f.truncate(config.FS_SIZE_GIB << 30)
            # Inode tables and journal written now, not by a kernel thread
            # during the run; one inode per 4 KiB (a job folder is a dozen
            # small files).
            _run("mkfs.ext4", "-q", "-F", "-i", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", image)
            dev = _run("losetup", "--find", "--show", image).strip()
            try:
                _run("mount", "-t", "ext4", dev, mnt)
            except subprocess.CalledProcessError:
                subprocess.run(["losetup", "-d", dev])
                raise
        yield mnt
    finally:
        _cleanup(mnt, image)
        shutil.rmtree(mnt, ignore_errors=True)


def describe(path):
    """'ext4 on /dev/loop0, journal, data=ordered', 'tmpfs on tmpfs', ... for the table."""
    with open("/proc/self/mountinfo") as f:
        best = None
        for line in f:
            parts = line.split()
            mnt = parts[4]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and (best is None or len(mnt) > len(best[0])):
                sep = parts.index("-")
                best = (mnt, parts[sep + 1], parts[sep + 2])
    if best is None:
        return "?"
    _, fstype, source = best
    text = f"{fstype} on {source}"
    if fstype == "ext4":
        # The kernel's own view: a journaled ext4 lists its data= mode there.
        try:
            with open(f"/proc/fs/ext4/{os.path.basename(source)}/options") as f:
                mode = next((o for o in f.read().split() if o.startswith("data=")), None)
            text += f", journal, {mode}" if mode else ", no journal"
        except OSError:
            pass
    return text
