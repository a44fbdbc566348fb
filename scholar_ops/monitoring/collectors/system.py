"""The host: CPU, load, memory, disks (real filesystems only) and network (psutil)."""

from __future__ import annotations

import os

import psutil

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, counter, gauge

#: Filesystems that hold no data of their own (kernel views, RAM, containers' plumbing).
PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "fuse.lxcfs",
        "fuse.portal",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
        "nfsd",
        "iso9660",
    }
)  # overlay is kept: a container's root filesystem
_PSEUDO_PREFIXES = ("/proc", "/sys", "/dev", "/run/user", "/snap/")
_SKIP_INTERFACES = ("lo",)


def real_mountpoints() -> list[str]:
    """Mountpoints of real filesystems, one per device (bind mounts of a device count
    once: its shortest mountpoint), directories only, sorted."""
    best: dict[str, str] = {}
    for part in psutil.disk_partitions(all=True):
        mp = part.mountpoint
        if part.fstype in PSEUDO_FILESYSTEMS or not part.fstype:
            continue
        if any(mp == p.rstrip("/") or mp.startswith(p.rstrip("/") + "/") for p in _PSEUDO_PREFIXES):
            continue
        if not os.path.isdir(mp):
            continue  # a file bind-mounted by a container runtime (/etc/hosts)
        device = part.device or mp
        if device not in best or len(mp) < len(best[device]):
            best[device] = mp
    return sorted(set(best.values()))


def collect_system(cpu_interval: float = 0.5) -> list[Sample]:
    """CPU usage over ``cpu_interval`` seconds, load, memory, disks and network."""
    samples = [
        gauge(names.SYSTEM_CPU, psutil.cpu_percent(interval=cpu_interval) / 100.0),
        gauge(names.SYSTEM_LOAD1, psutil.getloadavg()[0]),
    ]
    mem = psutil.virtual_memory()
    samples += [
        gauge(names.SYSTEM_MEMORY_USED, mem.total - mem.available),
        gauge(names.SYSTEM_MEMORY_TOTAL, mem.total),
    ]
    for mp in real_mountpoints():
        try:
            usage = psutil.disk_usage(mp)
        except OSError:
            continue  # unmounted or unreadable meanwhile
        samples += [
            gauge(names.SYSTEM_DISK_USED, usage.used, {"mountpoint": mp}),
            gauge(names.SYSTEM_DISK_TOTAL, usage.total, {"mountpoint": mp}),
        ]
    for nic, io in sorted(psutil.net_io_counters(pernic=True).items()):
        if nic in _SKIP_INTERFACES:
            continue
        samples += [
            counter(names.SYSTEM_NET_RECEIVED, io.bytes_recv, {"interface": nic}),
            counter(names.SYSTEM_NET_SENT, io.bytes_sent, {"interface": nic}),
        ]
    return samples
