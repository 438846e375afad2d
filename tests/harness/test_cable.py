"""usb4bench run --cable without root: plan, profiles, series names, and the
line and metadata saying why the cable section is missing.

The real run between two namespace hosts is tests/multihost/test_usb4bench_cable.py.
"""

import json
import os
import types

import pytest

from conftest import write_script
from usb4fabric import cable, placement, profiles, runner
from usb4fabric.cli import main
from usb4fabric.osu_locate import BENCHMARKS, Suite
from usb4fabric.results import METADATA, RESULTS, RUNS, ResultsWriter, load_results

NOT_ROOT = 1000


def test_missing_says_why_the_cable_cannot_be_made():
    assert "not root (euid 1000)" in cable.missing(euid=lambda: NOT_ROOT)
    assert "--hosts" in cable.missing(euid=lambda: NOT_ROOT)  # and what to do instead
    no_nsenter = cable.missing(euid=lambda: 0, which=lambda t: None if t == "nsenter" else t)
    assert no_nsenter.startswith("nsenter not found")
    assert cable.missing(euid=lambda: 0, which=lambda t: "/usr/bin/" + t) is None


def test_series_names_say_what_carried_the_bytes_and_where():
    name = placement.series_name
    assert name("usb4", "cable") == "usb4 — 2 hosts, udp link over a veth cable"
    assert name("usb4", "same-host") == "usb4 — same host, shm link"
    assert name("ethernet", "cable") == "Ethernet — libfabric tcp, 2 hosts"
    assert name("ethernet-btl", "cable") == "Ethernet — Open MPI btl tcp, 2 hosts"
    assert name("shm", "same-host") == "Shared memory — Open MPI vader, same host"
    assert name("ethernet", "same-host") == "Ethernet — libfabric tcp, same host (loopback)"
    assert name("usb4", "hosts", 3, "thunderbolt0") == \
        "usb4 — 3 hosts, udp link over thunderbolt0"
    assert name("tcp", "cable", stack_title="MPICH 4.2") == "tcp — MPICH 4.2, 2 hosts"
    assert placement.REPORT_ORDER[0] == placement.CABLE


def test_cable_profiles_tell_every_fabric_the_cable(tmp_path):
    (tmp_path / profiles.PROVIDER_LIB).touch()
    made = {p.name: p for p in profiles.build(tmp_path, True, iface=cable.IFACE)}
    assert made["usb4"].env["FI_USB4_IFACE"] == "tb0"
    assert made["ethernet"].env["FI_TCP_IFACE"] == "tb0"
    args = made["ethernet-btl"].mpi_args(False)
    assert args[args.index("btl_tcp_if_include") + 1] == "tb0"
    assert made["shm"].skip and made["ethernet"].one_sided_skip
    here = {p.name: p for p in profiles.build(tmp_path, False)}
    assert here["usb4"].env["FI_USB4_IFACE"] == "lo" and here["ethernet"].env[
        "FI_TCP_IFACE"] == "lo"


def test_a_cable_plan_starts_mpirun_in_the_first_host(tmp_path):
    (tmp_path / profiles.PROVIDER_LIB).touch()
    usb4 = profiles.build(tmp_path, True, ("usb4",), iface=cable.IFACE)[0]
    fake = types.SimpleNamespace(cables=[types.SimpleNamespace(subnet="10.77.0.0/24")])
    plan = runner.Plan([usb4], [BENCHMARKS["latency"]], Suite("osu_bench", tmp_path, "test"),
                       hosts=["10.77.0.1", "10.77.0.2"], cable=True,
                       prefix=["ip", "netns", "exec", "h1", "--"],
                       extra_mpirun=cable.launch_args(fake))
    argv = plan.mpirun_argv(usb4, BENCHMARKS["latency"], ["osu_latency"])
    assert argv[:6] == ["ip", "netns", "exec", "h1", "--", "mpirun"]
    assert argv[argv.index("--host") + 1] == "10.77.0.1,10.77.0.2"
    assert argv[argv.index("oob_tcp_if_include") + 1] == "10.77.0.0/24"
    assert argv[argv.index("--bind-to") + 1] == "none"  # the hosts share the cores
    assert os.access(argv[argv.index("plm_rsh_agent") + 1], os.X_OK)
    assert plan.placed(usb4) == {"placement": "cable",
                                 "series": "usb4 — 2 hosts, udp link over a veth cable"}
    assert runner.hosts_label(plan).startswith("2 namespace hosts joined by a veth cable")


def test_without_root_the_cable_section_says_why(tmp_path, monkeypatch, capsys, fixtures_dir):
    monkeypatch.setattr(os, "geteuid", lambda: NOT_ROOT)
    osu = tmp_path / "osu"
    osu.mkdir()
    write_script(osu / "osu_latency", f"#!/bin/sh\ncat {fixtures_dir / 'osu7_latency.txt'}\n")
    out = tmp_path / "res"
    code = main(["run", "--cable", "--fabric", "usb4,ethernet", "--bench", "latency",
                 "--repeat", "2", "--osu-dir", str(osu), "--mpirun", "/nonexistent/mpirun",
                 "--output", str(out)])
    assert code == 0
    said = capsys.readouterr().out
    assert "usb4bench: cable section missing: not root (euid 1000)" in said
    meta = json.loads((out / METADATA).read_text())
    assert meta["placement"] == "cable" and "not root" in meta["placement_missing"]
    results, runs, _ = load_results(out)
    assert results.empty
    assert list(runs["status"]) == ["skipped", "skipped"]  # one per profile x benchmark
    assert all(e.startswith("not root") for e in runs["error"])
    assert list(runs["series"]) == ["usb4 — 2 hosts, udp link over a veth cable",
                                    "Ethernet — libfabric tcp, 2 hosts"]


def test_cable_usage_errors(tmp_path, capsys):
    assert main(["run", "--cable", "--np", "4", "--output", str(tmp_path)]) == 2
    assert "one rank on each of its 2 hosts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--cable", "--hosts", "a,b", "--output", str(tmp_path)])


def test_a_folder_from_before_placement_loads_with_it(tmp_path):
    """results.csv/runs.csv without placement and series: filled from metadata."""
    writer = ResultsWriter(tmp_path)
    writer.write_metadata({"origin": "here", "hosts": "box"})
    writer.add_run({"fabric": "usb4", "benchmark": "latency", "repetition": 1,
                    "status": "ok"},
                   [{"fabric": "usb4", "benchmark": "latency", "size": 8, "metric": "latency",
                     "value": 1.5, "unit": "us", "repetition": 1}])
    for name in (RESULTS, RUNS):  # drop the two last columns, as older folders are
        path = tmp_path / name
        lines = path.read_text().splitlines()
        path.write_text("\n".join(",".join(line.split(",")[:-2]) for line in lines) + "\n")
    assert "placement" not in (tmp_path / RESULTS).read_text()
    results, runs, _ = load_results(tmp_path)
    for df in (results, runs):
        assert list(df["placement"]) == ["same-host"]
        assert list(df["series"]) == ["usb4 — same host, shm link"]
