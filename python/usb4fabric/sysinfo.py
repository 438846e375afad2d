"""What this machine has: USB4 links, libfabric and MPI versions, git commit.

Every probe runs a command through ``launch.run`` with a timeout and returns
None (or an empty list) when the tool is missing: nothing here raises for a
missing tool, and nothing prints.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import socket
from collections.abc import Mapping
from pathlib import Path

from . import launch, locations

THUNDERBOLT_NET_DRIVER = "thunderbolt-net"
ENV_PREFIXES = ("FI_", "OMPI_", "USB4_", "OSU_", "PMIX_")


@dataclasses.dataclass
class Usb4Link:
    interface: str  # "thunderbolt0"
    driver: str  # "thunderbolt-net"
    device: str  # the thunderbolt device (sysfs name) it sits on, or ""
    rx_speed: str = ""  # as sysfs says it ("20.0 Gb/s")
    tx_speed: str = ""
    rx_lanes: str = ""
    tx_lanes: str = ""
    operstate: str = ""


@dataclasses.dataclass
class Usb4Device:
    name: str  # sysfs name, "0-1"
    rx_speed: str = ""
    tx_speed: str = ""
    rx_lanes: str = ""
    tx_lanes: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def thunderbolt_devices(sysfs_root: Path) -> list[Usb4Device]:
    """Devices under /sys/bus/thunderbolt/devices that report link speed."""
    found = []
    folder = sysfs_root / "bus" / "thunderbolt" / "devices"
    for dev in sorted(folder.glob("*")) if folder.is_dir() else []:
        attrs = {a: _read(dev / a) for a in ("rx_speed", "tx_speed", "rx_lanes", "tx_lanes")}
        if any(attrs.values()):
            found.append(Usb4Device(dev.name, **attrs))
    return found


def usb4_links(sysfs_root: str | Path = "/sys") -> list[Usb4Link]:
    """thunderbolt-net interfaces, with the speed and lanes of their device.

    The interface's device is a thunderbolt service (``0-1.0``); its parent
    (``0-1``) carries rx/tx_speed and _lanes.  When that cannot be resolved
    (a fake tree, an older kernel) the one device that reports a speed is
    used, if there is exactly one.
    """
    root = Path(sysfs_root)
    devices = thunderbolt_devices(root)
    by_name = {d.name: d for d in devices}
    links = []
    net = root / "class" / "net"
    for iface in sorted(net.glob("*")) if net.is_dir() else []:
        driver_link = iface / "device" / "driver"
        try:
            driver = Path(os.readlink(driver_link)).name
        except OSError:
            driver = _read(iface / "device" / "driver_name")
        if driver != THUNDERBOLT_NET_DRIVER:
            continue
        try:
            service = Path(os.readlink(iface / "device")).name
        except OSError:
            service = ""
        dev = by_name.get(service.split(".")[0]) or (devices[0] if len(devices) == 1 else None)
        link = Usb4Link(iface.name, driver, dev.name if dev else "",
                        operstate=_read(iface / "operstate"))
        if dev:
            link.rx_speed, link.tx_speed = dev.rx_speed, dev.tx_speed
            link.rx_lanes, link.tx_lanes = dev.rx_lanes, dev.tx_lanes
        links.append(link)
    return links


def libfabric_version() -> dict[str, str | None]:
    """libfabric as pkg-config and fi_info see it."""
    pkg = launch.output_of(["pkg-config", "--modversion", "libfabric"])
    fi = launch.output_of(["fi_info", "--version"])
    return {"pkg-config": pkg.strip() if pkg else None,
            "fi_info": " ".join(fi.split()) if fi else None}


def mpi_version(mpirun: str = "mpirun") -> str | None:
    """First line of ``mpirun --version`` ("mpirun (Open MPI) 4.1.4")."""
    out = launch.output_of([mpirun, "--version"])
    return out.strip().splitlines()[0] if out and out.strip() else None


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD of the repository (default: the checkout usb4bench runs from), with
    "-dirty" when the tree has changes; None outside a checkout."""
    repo = repo or locations.checkout()
    if repo is None:
        return None
    head = launch.output_of(["git", "-C", str(repo), "rev-parse", "HEAD"])
    if not head:
        return None
    status = launch.output_of(["git", "-C", str(repo), "status", "--porcelain",
                               "--untracked-files=no"])
    return head.strip() + ("-dirty" if status else "")


def relevant_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that changes what MPI and libfabric do."""
    env = os.environ if env is None else env
    return {k: v for k, v in sorted(env.items()) if k.startswith(ENV_PREFIXES)}


def machine() -> dict[str, str]:
    return {"hostname": socket.gethostname(), "kernel": platform.release(),
            "machine": platform.machine(), "python": platform.python_version(),
            "cpus": str(os.cpu_count())}


def parse_fi_info_list(text: str) -> list[dict[str, str]]:
    """Providers of ``fi_info -l`` output ("usb4:" then "    version: 1.0")."""
    providers: list[dict[str, str]] = []
    for line in text.splitlines():
        if re.match(r"^\S+:\s*$", line):
            providers.append({"name": line.strip().rstrip(":")})
        elif providers and ":" in line:
            key, value = line.split(":", 1)
            providers[-1][key.strip()] = value.strip()
    return providers


def fi_info_providers(provider_path: Path | None = None) -> list[dict[str, str]] | None:
    """Providers libfabric lists, through ``fi_info -l``; None if it fails."""
    env = dict(os.environ)
    if provider_path:
        env["FI_PROVIDER_PATH"] = str(provider_path)
    done = launch.run(["fi_info", "-l"], env=env)
    return parse_fi_info_list(done.stdout) if done.ok else None
