"""usb4bench run --cable for real: two namespace hosts, one rank per host.

A tiny size set (seconds): every fabric that crosses hosts runs between the
hosts over the veth cable, shm is recorded as skipped, the rows carry the
cable placement and their series names, and the hosts are gone after.
"""

import pytest

from usb4fabric import nshosts
from usb4fabric.cli import main
from usb4fabric.results import load_results

pytestmark = pytest.mark.multihost


def test_usb4bench_runs_every_fabric_over_the_cable(tmp_path, provider_dir,
                                                    namespaces_usable, capsys):
    before = set(nshosts.list_namespaces())
    out = tmp_path / "cable"
    code = main(["run", "--cable", "--fabric", "usb4,ethernet,ethernet-btl,shm",
                 "--bench", "latency", "-m", "1:64", "-i", "20", "-x", "2", "--repeat", "1",
                 "--timeout", "60", "--provider-dir", str(provider_dir),
                 "--osu-dir", str(provider_dir.parent / "osu_bench"), "--output", str(out)])
    said = capsys.readouterr().out
    assert code == 0, said
    assert "cable section: usb4t-" in said and "MTU 65522" in said
    results, runs, meta = load_results(out)
    assert meta["placement"] == "cable" and meta["placement_missing"] is None
    status = dict(zip(runs["fabric"], runs["status"]))
    assert status == {"usb4": "ok", "ethernet": "ok", "ethernet-btl": "ok", "shm": "skipped"}
    assert set(results["placement"]) == {"cable"}
    assert set(results["series"]) == {"usb4 — 2 hosts, udp link over a veth cable",
                                      "Ethernet — libfabric tcp, 2 hosts",
                                      "Ethernet — Open MPI btl tcp, 2 hosts"}
    assert len(results[results["fabric"] == "usb4"]) == 7  # 1..64 B
    usb4_cmd = (out / "raw" / "usb4" / "latency" / "rep1.cmd").read_text()
    # mpirun in the first host, ranks on both, usb4 told the cable
    assert usb4_cmd.startswith("ip netns exec usb4t-") and "--host 10.77.0.1,10.77.0.2" \
        in usb4_cmd and "FI_USB4_IFACE=tb0" in usb4_cmd
    assert set(nshosts.list_namespaces()) <= before  # the hosts went with the run
