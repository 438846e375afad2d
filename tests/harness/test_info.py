"""usb4bench info on a fake sysfs tree, and where the OSU suite is found."""

import sys
from pathlib import Path

from conftest import write_script
from usb4fabric import osu_locate, sysinfo
from usb4fabric.cli import main


def fake_sysfs(root: Path) -> Path:
    """thunderbolt0 on service 0-1.0 of device 0-1 (20 Gb/s x 2), and eth0 on e1000e."""
    drivers = root / "bus" / "thunderbolt" / "drivers" / "thunderbolt-net"
    drivers.mkdir(parents=True)
    dev = root / "bus" / "thunderbolt" / "devices" / "0-1"
    service = root / "bus" / "thunderbolt" / "devices" / "0-1.0"
    dev.mkdir(parents=True)
    service.mkdir()
    for name, value in (("rx_speed", "20.0 Gb/s"), ("tx_speed", "20.0 Gb/s"),
                        ("rx_lanes", "2"), ("tx_lanes", "2")):
        (dev / name).write_text(value + "\n")
    (service / "driver").symlink_to(drivers)
    net = root / "class" / "net"
    (net / "thunderbolt0").mkdir(parents=True)
    (net / "thunderbolt0" / "device").symlink_to(service)
    (net / "thunderbolt0" / "operstate").write_text("up\n")
    pci = root / "devices" / "pci0000:00" / "0000:00:1f.6"
    pci.mkdir(parents=True)
    (root / "bus" / "pci" / "drivers" / "e1000e").mkdir(parents=True)
    (pci / "driver").symlink_to(root / "bus" / "pci" / "drivers" / "e1000e")
    (net / "eth0").mkdir()
    (net / "eth0" / "device").symlink_to(pci)
    return root


def test_links_from_fake_sysfs(tmp_path):
    links = sysinfo.usb4_links(fake_sysfs(tmp_path))
    assert [(link.interface, link.driver, link.device, link.rx_speed, link.tx_lanes, link.operstate)
            for link in links] == [("thunderbolt0", "thunderbolt-net", "0-1", "20.0 Gb/s", "2", "up")]


def test_info_prints_links(tmp_path, capsys):
    assert main(["info", "--sysfs-root", str(fake_sysfs(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "thunderbolt0: driver thunderbolt-net, device 0-1, rx 20.0 Gb/s x 2 lanes" in out
    assert "libfabric providers (from " in out and "MPI: " in out and "OSU: " in out


def test_info_says_none_found(tmp_path, capsys):
    assert main(["info", "--sysfs-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "usb4 links (thunderbolt-net interfaces):\n  none found" in out


def test_fi_info_list_parsing():
    text = "usb4:\n    version: 0.1\ntcp;ofi_rxm:\n    version: 117.0\n"
    assert sysinfo.parse_fi_info_list(text) == [{"name": "usb4", "version": "0.1"},
                                                {"name": "tcp;ofi_rxm", "version": "117.0"}]


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_script(path, "#!/bin/sh\n")


def test_locate_osu_layouts(tmp_path):
    lat, allr = osu_locate.BENCHMARKS["latency"], osu_locate.BENCHMARKS["allreduce"]
    v5 = tmp_path / "v5" / "libexec" / "osu-micro-benchmarks" / "mpi"
    _exe(v5 / "pt2pt" / "osu_latency")
    _exe(v5 / "collective" / "osu_allreduce")
    assert osu_locate.find_program(tmp_path / "v5", lat) == v5 / "pt2pt" / "osu_latency"
    assert osu_locate.find_program(tmp_path / "v5", allr) == v5 / "collective" / "osu_allreduce"
    v7 = tmp_path / "v7" / "c" / "mpi"
    _exe(v7 / "pt2pt" / "standard" / "osu_latency")
    _exe(v7 / "collective" / "blocking" / "osu_allreduce")
    assert osu_locate.find_program(tmp_path / "v7", lat) == v7 / "pt2pt" / "standard" / "osu_latency"
    assert osu_locate.find_program(tmp_path / "v7", allr) == \
        v7 / "collective" / "blocking" / "osu_allreduce"
    assert osu_locate.find_program(tmp_path / "v7", osu_locate.BENCHMARKS["bw"]) is None


def test_locate_order(tmp_path):
    prefix = tmp_path / "prefix"
    _exe(prefix / "libexec" / "osu-micro-benchmarks" / "mpi" / "pt2pt" / "osu_latency")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "osu_latency").symlink_to(
        prefix / "libexec" / "osu-micro-benchmarks" / "mpi" / "pt2pt" / "osu_latency")
    assert osu_locate.locate("/given", {"OSU_DIR": "/env"}).how == "--osu-dir"
    assert osu_locate.locate(None, {"OSU_DIR": "/env"}).root == Path("/env")
    found = osu_locate.locate(None, {"PATH": str(bindir)})
    assert (found.kind, found.how, found.root) == ("osu", "PATH", prefix)
    fallback = osu_locate.locate(None, {"PATH": str(tmp_path / "empty")})
    assert (fallback.kind, fallback.root) == ("osu_bench", osu_locate.OSU_BENCH_DIR)


def test_info_falls_back_to_fi_info_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "usb4fabric.info", None)  # the binding is missing
    assert main(["info", "--sysfs-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "libfabric providers (from `fi_info -l` (the usb4fabric binding is not usable" in out
    assert "  tcp" in out  # fi_info -l lists libfabric's own providers
