"""The test bed's private network namespace.

Pod IPs must be real addresses a process can bind and the EndpointSlice controller accepts
(loopback ones it refuses), yet nothing may leave the machine. So the whole test bed (control
plane, Prometheus, model-server processes, gateway, kube-proxy, tests) runs inside one network
namespace of its own: loopback up, the pod CIDR and the Service CIDR routed locally. Inside, any
process can bind `podIP:port`, kube-proxy's rules make ClusterIPs answer, and no packet can reach
another host. One namespace per cluster work dir, named after it, so two checkouts never share one.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN); `sudo` is used when not root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
NETNS_DIR = Path("/run/netns")
ENV_MARK = "MODELPILOT_NETNS"


def name_for(workdir: Path) -> str:
    """The namespace of the cluster whose state lives in `workdir`."""
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:8]
    return f"modelpilot-{digest}"


def _sudo() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        raise RuntimeError("the test bed's network namespace needs root (or sudo)")
    return ["sudo", "-E"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_sudo(), "ip", *args], check=check, text=True, capture_output=True)


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def inside(name: str) -> bool:
    """Whether this process already runs in namespace `name`."""
    try:
        mine, theirs = os.stat("/proc/self/ns/net"), os.stat(NETNS_DIR / name)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def ensure(name: str) -> None:
    """Create the namespace when missing; (re)apply loopback and the local routes either way."""
    if not exists(name):
        result = _ip("netns", "add", name, check=False)
        if result.returncode != 0 and not exists(name):
            raise RuntimeError(f"ip netns add {name} failed: {result.stderr.strip()}")
    _ip("-n", name, "link", "set", "lo", "up")
    for cidr in (POD_CIDR, SERVICE_CIDR):
        # `local` routes make every address of the range this host's own: bindable, reachable.
        _ip("-n", name, "route", "replace", "local", cidr, "dev", "lo")


def delete(name: str) -> None:
    if exists(name):
        _ip("netns", "delete", name, check=False)


def wrap(name: str, argv: list[str]) -> list[str]:
    """`argv` as a command that runs inside the namespace (unchanged when already inside)."""
    if inside(name):
        return list(argv)
    return [*_sudo(), "ip", "netns", "exec", name, *argv]
